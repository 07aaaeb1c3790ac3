//! `.env` files (the project's `.env`, `--env-file`, a service's `env_file`),
//! read as compose-go's godotenv-derived parser reads them.
//!
//! This module owns the syntax: `KEY=value` and `KEY: value`, `export KEY=…`,
//! comments (`#` lines, and ` #` after an unquoted value), single quotes
//! (literal; `\'` escapes the quote), double quotes (multi-line, shell escapes
//! `\n \t \\ \" \$ \0ooo …`, then `${}` expansion), unquoted values (expanded,
//! trimmed), bare `KEY` lines (inherited from the lookup, dropped when unset),
//! a UTF-8 byte-order mark, and the `raw` format (`KEY=VALUE` taken literally,
//! as `docker run --env-file` reads it). Expansion resolves a name with the
//! lookup first (the environment), then with the values read so far.
//!
//! It does not decide which files are read (the loader does).

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use super::interpolate::{self, TemplateError};

/// Why an env file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DotenvError {
    /// compose-go's wording after the file: `line 7: key cannot contain a space`.
    #[error("failed to read {}: line {line}: {message}", .file.display())]
    Syntax {
        file: PathBuf,
        line: u32,
        message: String,
    },
    #[error("failed to read {}: line {line}: {source}", .file.display())]
    Template {
        file: PathBuf,
        line: u32,
        source: TemplateError,
    },
    #[error("couldn't find env file: {}", .0.display())]
    NotFound(PathBuf),
    #[error("{} is a directory", .0.display())]
    IsDirectory(PathBuf),
    #[error("env file {} is not valid UTF-8", .0.display())]
    NotUtf8(PathBuf),
    #[error("unsupported env_file format {0:?}")]
    UnsupportedFormat(String),
    #[error(transparent)]
    Read(#[from] std::io::Error),
}

/// The formats `env_file: {format: …}` accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// The `.env` syntax (quotes, escapes, expansion).
    #[default]
    DotEnv,
    /// `KEY=VALUE` lines taken literally.
    Raw,
}

impl Format {
    /// The format named in a Compose file (`""` is the default).
    pub fn from_name(name: &str) -> Result<Format, DotenvError> {
        match name {
            "" | ".env" => Ok(Format::DotEnv),
            "raw" => Ok(Format::Raw),
            other => Err(DotenvError::UnsupportedFormat(other.to_owned())),
        }
    }
}

/// Parses the `.env` text of `file` (named in errors). `lookup` resolves
/// bare `KEY` lines and, before the file's own earlier values, `${}`
/// references.
pub fn parse(
    text: &str,
    file: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<IndexMap<String, String>, DotenvError> {
    let mut out = IndexMap::new();
    parse_into(text, file, lookup, &mut out)?;
    Ok(out)
}

/// Parses `text` in `format`, adding to `out` (values already in `out` are
/// visible to expansion after `lookup`).
pub fn parse_format_into(
    text: &str,
    file: &Path,
    format: Format,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut IndexMap<String, String>,
) -> Result<(), DotenvError> {
    match format {
        Format::DotEnv => parse_into(text, file, lookup, out),
        Format::Raw => parse_raw_into(text, file, lookup, out),
    }
}

/// Reads several files in order into one map: later files override earlier
/// ones and see their values (after `lookup`) in expansions, as Compose reads
/// `--env-file a --env-file b`.
pub fn read_files(
    paths: &[PathBuf],
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<IndexMap<String, String>, DotenvError> {
    let mut out = IndexMap::new();
    for path in paths {
        read_file_into(path, Format::DotEnv, lookup, &mut out)?;
    }
    Ok(out)
}

/// Reads one file into `out` (see [`parse_format_into`]).
pub fn read_file_into(
    path: &Path,
    format: Format,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut IndexMap<String, String>,
) -> Result<(), DotenvError> {
    super::inputs::note_kind(path);
    let meta = match fs_err::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DotenvError::NotFound(path.to_owned()))
        }
        Err(e) => return Err(e.into()),
    };
    if meta.is_dir() {
        return Err(DotenvError::IsDirectory(path.to_owned()));
    }
    let bytes = fs_err::read(path);
    super::inputs::note_read(path, bytes.as_deref().ok());
    let bytes = bytes?;
    let text = String::from_utf8(bytes).map_err(|_| DotenvError::NotUtf8(path.to_owned()))?;
    parse_format_into(&text, path, format, lookup, out)
}

/// Go's `unicode.IsSpace`.
fn is_unicode_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{a0}'
    ) || (c > '\u{ff}' && c.is_whitespace())
}

/// godotenv's `isSpace`: a space that is not a line break.
fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{a0}'
    )
}

struct Reader<'a> {
    file: &'a Path,
    line: u32,
}

impl Reader<'_> {
    fn syntax(&self, message: String) -> DotenvError {
        DotenvError::Syntax {
            file: self.file.to_owned(),
            line: self.line,
            message,
        }
    }

    /// Skips blank space and comment lines; `None` at the end of the text.
    fn statement_start<'t>(&mut self, mut src: &'t str) -> Option<&'t str> {
        loop {
            let mut start = None;
            for (i, c) in src.char_indices() {
                if c == '\n' {
                    self.line += 1;
                }
                if !is_unicode_space(c) {
                    start = Some(i);
                    break;
                }
            }
            src = &src[start?..];
            if !src.starts_with('#') {
                return Some(src);
            }
            src = &src[src.find('\n')?..];
        }
    }

    /// The key of a statement, the text after its separator, and whether the
    /// line was a bare `KEY` (inherited).
    fn key<'t>(&mut self, mut src: &'t str) -> Result<(&'t str, &'t str, bool), DotenvError> {
        if let Some(rest) = src.strip_prefix("export") {
            // `^export\s+` (RE2 `\s`: tab, newline, form feed, return, space).
            if rest.starts_with(['\t', '\n', '\u{c}', '\r', ' ']) {
                src = rest.trim_start_matches(is_space);
            }
        }
        let mut key = "";
        let mut offset = 0;
        let mut inherited = false;
        for (i, c) in src.char_indices() {
            if is_space(c) {
                continue;
            }
            match c {
                '=' | ':' | '\n' => {
                    key = &src[..i];
                    offset = i + 1;
                    inherited = c == '\n';
                    break;
                }
                '_' | '.' | '-' | '[' | ']' => {}
                c if c.is_alphanumeric() => {}
                c => {
                    let first_line = src.split('\n').next().unwrap_or("");
                    return Err(self.syntax(format!(
                        "unexpected character {:?} in variable name {first_line:?}",
                        c.to_string()
                    )));
                }
            }
        }
        if inherited && !key.contains(' ') {
            self.line += 1;
        }
        let key = key.trim_end_matches(is_unicode_space);
        let rest = src[offset..].trim_start_matches(is_space);
        Ok((key, rest, inherited))
    }

    /// The value at the start of `src` and the text after it.
    fn value<'t>(
        &mut self,
        src: &'t str,
        lookup: &dyn Fn(&str) -> Option<String>,
        out: &IndexMap<String, String>,
    ) -> Result<(String, &'t str), DotenvError> {
        let start_line = self.line;
        let quote = match src.as_bytes().first() {
            Some(&q @ (b'"' | b'\'')) => q,
            _ => {
                let (value, rest) = src.split_once('\n').unwrap_or((src, ""));
                self.line += 1;
                let value = value.split_once(" #").map_or(value, |(v, _)| v);
                let value = value.trim_end_matches(is_unicode_space);
                let value = self.expand(value, start_line, lookup, out)?;
                return Ok((value, rest));
            }
        };
        let b = src.as_bytes();
        let mut chars: Vec<u8> = Vec::new();
        let mut escaped = false;
        for (i, &c) in b.iter().enumerate().skip(1) {
            if c == b'\n' {
                self.line += 1;
            }
            if c != quote {
                if !escaped && c == b'\\' {
                    escaped = true;
                    continue;
                }
                if escaped {
                    escaped = false;
                    chars.push(b'\\');
                }
                chars.push(c);
                continue;
            }
            if escaped {
                escaped = false;
                chars.push(c);
                continue;
            }
            let value = String::from_utf8_lossy(&chars).into_owned();
            let value = if quote == b'"' {
                self.expand(&expand_escapes(&value), start_line, lookup, out)?
            } else {
                value
            };
            return Ok((value, &src[i + 1..]));
        }
        let first_line = src.split('\n').next().unwrap_or("");
        Err(self.syntax(format!("unterminated quoted value {first_line}")))
    }

    fn expand(
        &self,
        value: &str,
        line: u32,
        lookup: &dyn Fn(&str) -> Option<String>,
        out: &IndexMap<String, String>,
    ) -> Result<String, DotenvError> {
        let resolve = |k: &str| lookup(k).or_else(|| out.get(k).cloned());
        interpolate::substitute(value, &resolve).map_err(|source| DotenvError::Template {
            file: self.file.to_owned(),
            line,
            source,
        })
    }
}

fn parse_into(
    text: &str,
    file: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut IndexMap<String, String>,
) -> Result<(), DotenvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader { file, line: 1 };
    let mut src = text;
    while let Some(statement) = reader.statement_start(src) {
        let (key, rest, inherited) = reader.key(statement)?;
        if key.contains(' ') {
            return Err(reader.syntax("key cannot contain a space".to_owned()));
        }
        if inherited {
            if let Some(v) = lookup(key) {
                out.insert(key.to_owned(), v);
            }
            src = rest;
            continue;
        }
        let (value, rest) = reader.value(rest, lookup, out)?;
        out.insert(key.to_owned(), value);
        src = rest;
    }
    Ok(())
}

/// Shell escapes of double-quoted values: `\a \b \f \n \r \t \v \" \\`, `\$`
/// (kept as `$$` so expansion leaves a literal `$`) and `\0ooo` octal; any
/// other backslash stays as written.
fn expand_escapes(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        let (len, replacement): (usize, Option<char>) = match b[i + 1] {
            b'a' => (2, Some('\u{7}')),
            b'b' => (2, Some('\u{8}')),
            b'f' => (2, Some('\u{c}')),
            b'n' => (2, Some('\n')),
            b'r' => (2, Some('\r')),
            b't' => (2, Some('\t')),
            b'v' => (2, Some('\u{b}')),
            b'"' => (2, Some('"')),
            b'\\' => (2, Some('\\')),
            // `\c` matches the escape pattern but is no escape: kept.
            b'c' => (2, None),
            b'$' => {
                out.push_str(&s[last..i]);
                out.push_str("$$");
                i += 2;
                last = i;
                continue;
            }
            b'0' => {
                let digits = b[i + 2..]
                    .iter()
                    .take(3)
                    .take_while(|c| c.is_ascii_digit())
                    .count();
                let d = &b[i + 2..i + 2 + digits];
                let value = (digits == 3 && d.iter().all(|c| (b'0'..=b'7').contains(c)))
                    .then(|| d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0')))
                    .filter(|&v| v <= 255)
                    .and_then(char::from_u32);
                (2 + digits, value)
            }
            _ => {
                i += 1;
                continue;
            }
        };
        if let Some(c) = replacement {
            out.push_str(&s[last..i]);
            out.push(c);
            last = i + len;
        }
        i += len;
    }
    out.push_str(&s[last..]);
    out
}

/// The `raw` format, as `docker run --env-file` reads a file: one `KEY=VALUE`
/// per line, the value taken literally; blank and `#` lines skipped; a bare
/// `KEY` is inherited from `lookup` when set.
fn parse_raw_into(
    text: &str,
    file: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut IndexMap<String, String>,
) -> Result<(), DotenvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (n, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let line = line.trim_start_matches(is_unicode_space);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let syntax = |message: String| DotenvError::Syntax {
            file: file.to_owned(),
            line: u32::try_from(n + 1).unwrap_or(u32::MAX),
            message,
        };
        if key_has_space(line) {
            let key = line.split_once('=').map_or(line, |(k, _)| k);
            return Err(syntax(format!("variable '{key}' contains whitespaces")));
        }
        match line.split_once('=') {
            Some(("", _)) => return Err(syntax(format!("no variable name on line '{line}'"))),
            Some((key, value)) => {
                out.insert(key.to_owned(), value.to_owned());
            }
            None => {
                if let Some(v) = lookup(line) {
                    out.insert(line.to_owned(), v);
                }
            }
        }
    }
    Ok(())
}

fn key_has_space(line: &str) -> bool {
    let key = line.split_once('=').map_or(line, |(k, _)| k);
    key.contains([' ', '\t', '\n', '\u{b}', '\u{c}', '\r'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn escapes_in_double_quotes() {
        assert_eq!(expand_escapes(r"a\nb\tc\\d\$e\0101\x"), "a\nb\tc\\d$$eA\\x");
        assert_eq!(expand_escapes(r"\012"), r"\012");
        let m = parse("A=\"x\\$Y\"\nB='lit $A'\n", Path::new("t.env"), &none).unwrap();
        assert_eq!(m["A"], "x$Y");
        assert_eq!(m["B"], "lit $A");
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = parse("A=1\n\nB C=2\n", Path::new("t.env"), &none).unwrap_err();
        assert_eq!(
            e.to_string(),
            "failed to read t.env: line 3: key cannot contain a space"
        );
    }

    #[test]
    fn raw_takes_values_literally() {
        let mut out = IndexMap::new();
        let text = "# c\nA=\"q\" $B # x\n  C=\nD\n";
        let lookup = |k: &str| (k == "D").then(|| "d".to_owned());
        parse_format_into(text, Path::new("r"), Format::Raw, &lookup, &mut out).unwrap();
        assert_eq!(out["A"], "\"q\" $B # x");
        assert_eq!(out["C"], "");
        assert_eq!(out["D"], "d");
        let err = parse_format_into("A B=1", Path::new("r"), Format::Raw, &none, &mut out);
        assert!(err
            .unwrap_err()
            .to_string()
            .contains("contains whitespaces"));
    }
}
