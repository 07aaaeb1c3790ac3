//! A container's output as Docker's `json-file` log: one JSON object per
//! line, `{"log":"…\n","stream":"stdout","time":"2026-11-22T14:05:06.123456789Z"}`,
//! with `max-size` / `max-file` rotation (`c.log`, `c.log.1`, … oldest last).
//!
//! Layout: the monitor owns `<container dir>/<id>-json.log` and its rotated
//! copies; `berth logs` only reads them. Output is cut into lines at `\n`;
//! a line longer than 16 KiB is written in 16 KiB pieces whose `log` does not
//! end in `\n` (Docker's partial messages), and so is a last line that never
//! got its newline.

use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The longest piece of a line written as one entry, as Docker.
pub const MAX_PIECE: usize = 16 * 1024;

/// Which output a piece came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub log: String,
    pub stream: Stream,
    pub time: String,
}

/// A `--log-opt` value that cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LogOptError {
    #[error("invalid max-size {0:?}: expected a size such as 10m, 512k or 1g")]
    MaxSize(String),
    #[error("invalid max-file {0:?}: expected a positive number")]
    MaxFile(String),
    #[error("max-file {0} needs max-size: without a size limit the log never rotates")]
    MaxFileWithoutSize(u32),
}

/// Rotation settings (`logging.options` `max-size`, `max-file`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate once the current file would grow past this many bytes.
    pub max_size: Option<u64>,
    /// Files kept, the current one included (Docker's default: 1).
    pub max_file: u32,
}

impl Rotation {
    /// From the `max-size` and `max-file` options, as Docker reads them
    /// (sizes in binary units: `k` = 1024).
    pub fn from_options(
        max_size: Option<&str>,
        max_file: Option<&str>,
    ) -> Result<Self, LogOptError> {
        let max_size = max_size.map(parse_size).transpose()?;
        let max_file = match max_file {
            None => 1,
            Some(s) => match s.parse::<u32>() {
                Ok(n) if n > 0 => n,
                _ => return Err(LogOptError::MaxFile(s.to_owned())),
            },
        };
        if max_file > 1 && max_size.is_none() {
            return Err(LogOptError::MaxFileWithoutSize(max_file));
        }
        Ok(Rotation { max_size, max_file })
    }
}

fn parse_size(s: &str) -> Result<u64, LogOptError> {
    let bad = || LogOptError::MaxSize(s.to_owned());
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let t = t.strip_suffix('i').unwrap_or(t);
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(bad()),
    };
    let bytes = n * mult as f64;
    if !(bytes >= 1.0 && bytes.is_finite()) {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// Writes one container's log, rotating as configured.
pub struct JsonFileWriter {
    path: PathBuf,
    file: std::fs::File,
    size: u64,
    rotation: Rotation,
    pending: [Vec<u8>; 2],
}

impl JsonFileWriter {
    /// Opens (appending to) the log at `path`.
    pub fn open(path: &Path, rotation: Rotation) -> io::Result<Self> {
        let file = fs_err::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?
            .into_parts()
            .0;
        let size = file.metadata()?.len();
        Ok(JsonFileWriter {
            path: path.to_owned(),
            file,
            size,
            rotation,
            pending: [Vec::new(), Vec::new()],
        })
    }

    /// Takes output read from `stream`; whole lines are written now, the
    /// rest waits for its newline.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        self.write_at(stream, data, SystemTime::now())
    }

    /// [`write`](Self::write) with the time given (for tests).
    pub fn write_at(&mut self, stream: Stream, data: &[u8], now: SystemTime) -> io::Result<()> {
        let i = stream as usize;
        let mut buf = std::mem::take(&mut self.pending[i]);
        buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(nl) = buf[start..].iter().position(|b| *b == b'\n') {
            let end = start + nl + 1;
            self.emit(stream, &buf[start..end], now)?;
            start = end;
        }
        while buf.len() - start >= MAX_PIECE {
            self.emit(stream, &buf[start..start + MAX_PIECE], now)?;
            start += MAX_PIECE;
        }
        buf.drain(..start);
        self.pending[i] = buf;
        Ok(())
    }

    /// Writes what is left without a newline (the process ended).
    pub fn flush_partial(&mut self) -> io::Result<()> {
        let now = SystemTime::now();
        for stream in [Stream::Stdout, Stream::Stderr] {
            let rest = std::mem::take(&mut self.pending[stream as usize]);
            if !rest.is_empty() {
                self.emit(stream, &rest, now)?;
            }
        }
        Ok(())
    }

    fn emit(&mut self, stream: Stream, piece: &[u8], now: SystemTime) -> io::Result<()> {
        let entry = Entry {
            log: String::from_utf8_lossy(piece).into_owned(),
            stream,
            time: rfc3339_nanos(now),
        };
        let mut line = serde_json::to_vec(&entry).map_err(io::Error::other)?;
        line.push(b'\n');
        if let Some(max) = self.rotation.max_size {
            if self.size > 0 && self.size + line.len() as u64 > max {
                self.rotate()?;
            }
        }
        self.file.write_all(&line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let keep = self.rotation.max_file;
        if keep <= 1 {
            self.file.set_len(0)?;
        } else {
            let _ = std::fs::remove_file(rotated(&self.path, keep - 1));
            for n in (1..keep - 1).rev() {
                let from = rotated(&self.path, n);
                if from.exists() {
                    fs_err::rename(&from, rotated(&self.path, n + 1))?;
                }
            }
            fs_err::rename(&self.path, rotated(&self.path, 1))?;
            self.file = fs_err::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?
                .into_parts()
                .0;
        }
        self.size = 0;
        Ok(())
    }
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Every entry of the log at `path`, its rotated copies first, oldest first.
/// A line that is not an entry (a torn last write) is skipped.
pub fn read_entries(path: &Path) -> io::Result<Vec<Entry>> {
    let mut files = Vec::new();
    let mut n = 1;
    while rotated(path, n).exists() {
        files.push(rotated(path, n));
        n += 1;
    }
    files.reverse();
    files.push(path.to_owned());
    let mut out = Vec::new();
    for f in files {
        let file = match fs_err::File::open(&f) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for line in io::BufReader::new(file).lines() {
            if let Ok(entry) = serde_json::from_str::<Entry>(&line?) {
                out.push(entry);
            }
        }
    }
    Ok(out)
}

/// `t` as RFC 3339 in UTC with nanoseconds, as Docker writes log times.
pub fn rfc3339_nanos(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Days since 1970-01-01 to a (year, month, day) date in the proleptic
/// Gregorian calendar (Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn times_are_rfc3339_utc_with_nanoseconds() {
        let t = UNIX_EPOCH + Duration::new(1_795_875_906, 123_456_789);
        assert_eq!(rfc3339_nanos(t), "2026-11-28T14:25:06.123456789Z");
        assert_eq!(rfc3339_nanos(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert!(rfc3339_nanos(leap).starts_with("2000-02-29T00:00:00"));
    }

    #[test]
    fn sizes_and_counts() {
        assert_eq!(
            Rotation::from_options(Some("10m"), Some("3")),
            Ok(Rotation {
                max_size: Some(10 << 20),
                max_file: 3
            })
        );
        assert_eq!(
            Rotation::from_options(Some("1k"), None),
            Ok(Rotation {
                max_size: Some(1024),
                max_file: 1
            })
        );
        assert!(Rotation::from_options(Some("ten"), None).is_err());
        assert!(Rotation::from_options(Some("1k"), Some("0")).is_err());
        assert!(Rotation::from_options(None, Some("2")).is_err());
    }

    #[test]
    fn lines_partials_and_streams() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c-json.log");
        let mut w = JsonFileWriter::open(&p, Rotation::default()).unwrap();
        let now = UNIX_EPOCH;
        w.write_at(Stream::Stdout, b"hel", now).unwrap();
        w.write_at(Stream::Stderr, b"oops\n", now).unwrap();
        w.write_at(Stream::Stdout, b"lo\nwor", now).unwrap();
        w.write_at(Stream::Stdout, &vec![b'x'; MAX_PIECE + 5], now)
            .unwrap();
        w.flush_partial().unwrap();
        let e = read_entries(&p).unwrap();
        let got: Vec<(&str, Stream)> = e.iter().map(|e| (e.log.as_str(), e.stream)).collect();
        assert_eq!(got[0], ("oops\n", Stream::Stderr));
        assert_eq!(got[1], ("hello\n", Stream::Stdout));
        assert_eq!(got[2].0.len(), MAX_PIECE);
        assert!(got[2].0.starts_with("worx"));
        assert_eq!(got[3].0, "x".repeat(8));
        assert_eq!(e.len(), 4);
        let raw = std::fs::read_to_string(&p).unwrap();
        assert!(raw.starts_with(
            r#"{"log":"oops\n","stream":"stderr","time":"1970-01-01T00:00:00.000000000Z"}"#
        ));
    }

    #[test]
    fn rotation_keeps_max_file_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c-json.log");
        let rotation = Rotation::from_options(Some("200"), Some("3")).unwrap();
        let mut w = JsonFileWriter::open(&p, rotation).unwrap();
        for i in 0..20 {
            w.write(Stream::Stdout, format!("line {i:02}\n").as_bytes())
                .unwrap();
        }
        assert!(rotated(&p, 1).exists() && rotated(&p, 2).exists());
        assert!(!rotated(&p, 3).exists());
        for f in [p.clone(), rotated(&p, 1), rotated(&p, 2)] {
            assert!(std::fs::metadata(&f).unwrap().len() <= 200, "{f:?}");
        }
        let e = read_entries(&p).unwrap();
        assert_eq!(e.last().unwrap().log, "line 19\n");
        let nums: Vec<u32> = e.iter().map(|e| e.log[5..7].parse().unwrap()).collect();
        assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "{nums:?}");
        assert!(nums[0] > 0, "oldest lines rotated away");

        // max-file 1 truncates in place.
        let q = dir.path().join("d-json.log");
        let rotation = Rotation::from_options(Some("200"), None).unwrap();
        let mut w = JsonFileWriter::open(&q, rotation).unwrap();
        for i in 0..20 {
            w.write(Stream::Stdout, format!("line {i:02}\n").as_bytes())
                .unwrap();
        }
        assert!(!rotated(&q, 1).exists());
        assert_eq!(read_entries(&q).unwrap().last().unwrap().log, "line 19\n");
    }
}
