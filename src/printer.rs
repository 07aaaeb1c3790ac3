//! All user-facing output goes through one [`Printer`]: it knows whether
//! standard output is a terminal, and turns a broken pipe into a quiet exit.

use std::io::{self, Write};

/// Writes what a command prints for the user (as opposed to `tracing` logs).
#[derive(Debug, Default)]
pub struct Printer;

impl Printer {
    /// Writes `text` to standard output as is.
    pub fn out(&self, text: &str) -> io::Result<()> {
        let mut out = io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()
    }

    /// Writes `text` and a newline to standard output.
    pub fn line(&self, text: &str) -> io::Result<()> {
        let mut out = io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.write_all(b"\n")?;
        out.flush()
    }
}
