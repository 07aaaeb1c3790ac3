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

/// A table as `docker` prints one: left-aligned columns separated by at least
/// three spaces, a header row first.
pub fn table<const N: usize>(header: &[String; N], rows: &[[String; N]]) -> String {
    let mut widths = header.each_ref().map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < N {
                let pad = widths[i] - cell.chars().count() + 3;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_aligns_columns() {
        let header = ["NAME".to_string(), "X".to_string()];
        let rows = [["a-long-name".to_string(), "1".to_string()]];
        assert_eq!(
            super::table(&header, &rows),
            "NAME          X\na-long-name   1\n"
        );
    }
}
