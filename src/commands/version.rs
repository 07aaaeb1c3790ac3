//! `berth version`.

use anyhow::Result;

use crate::cli::VersionFormat;
use crate::printer::Printer;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn version(printer: &Printer, format: VersionFormat, short: bool) -> Result<()> {
    if short {
        printer.line(VERSION)?;
        return Ok(());
    }
    match format {
        VersionFormat::Pretty => printer.line(&format!("berth version v{VERSION}"))?,
        VersionFormat::Json => {
            printer.line(&serde_json::json!({ "version": VERSION }).to_string())?
        }
    }
    Ok(())
}
