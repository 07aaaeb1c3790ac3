//! One function per verb. No clap types in here: verbs take settings.

pub mod config;
pub mod cp;
pub mod events;
pub mod export;
pub mod image;
pub mod lifecycle;
pub mod project;
pub mod publish;
pub mod runtime;
pub mod scale;
pub mod stats;
pub mod version;
pub mod wait;
