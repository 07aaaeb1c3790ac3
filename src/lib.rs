//! berth: Compose projects on a bare Linux kernel.
//!
//! The library behind the `berth` binary: the command line (`cli`, `settings`,
//! `commands`), the Compose model (`model`), and, as later stages land, the
//! engine, the image store and the monitor. Kernel work lives in the
//! `berth-runtime` and `berth-network` crates; this crate has no `unsafe`.
#![forbid(unsafe_code)]

pub mod cli;
pub mod commands;
pub mod engine;
pub mod image;
pub mod model;
pub mod monitor;
pub mod printer;
pub mod settings;
