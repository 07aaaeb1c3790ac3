//! One function per verb. No clap types in here: verbs take settings.

pub mod config;
pub mod image;
pub mod lifecycle;
pub mod project;
pub mod runtime;
pub mod version;
