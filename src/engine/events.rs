//! The per-project event journal: what happened to a project's containers,
//! as `docker compose events` reports it (create, start, die, stop, kill,
//! pause, unpause, restart, destroy, `health_status: …`, oom).
//!
//! Layout: `$BERTH_RUN/events/<project>.json`, one JSON object a line, in
//! the shape `events --json` prints (`time`, `type`, `action`, `id`,
//! `service`, `attributes`; one-off containers carry `"oneoff": true`).
//! It lives in the run directory: it does not survive a reboot, as
//! Docker's event stream does not; past 8 MiB `up` starts a new one (the
//! previous one kept as `<project>.json.1`).
//!
//! Writers are the engine (create, destroy, stop, kill, pause, unpause) and
//! the monitors (start, restart, die, health_status, oom); each event is one
//! `write(2)` of one line to a file opened with `O_APPEND`, so concurrent
//! writers never interleave or tear lines. Writing is best effort: a
//! container's life never fails because its journal cannot be written.
//! Readers follow the file with inotify on its directory.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::naming;
use super::state::{ContainerRecord, Paths};

/// One event, as stored and as `events --json` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// RFC 3339, UTC, nanoseconds (sorts as text).
    pub time: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub action: String,
    pub id: String,
    pub service: String,
    pub attributes: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oneoff: bool,
}

impl Event {
    /// The container's name, from the attributes.
    pub fn name(&self) -> &str {
        self.attributes.get("name").map_or("", String::as_str)
    }
}

/// The text form: `2024-01-01T00:00:00.000000000Z container start <id>
/// (image=…, name=…)`.
impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let attrs: Vec<String> = self
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        write!(
            f,
            "{} {} {} {} ({})",
            self.time,
            self.kind,
            self.action,
            self.id,
            attrs.join(", ")
        )
    }
}

/// The journal of `project`.
pub fn journal_path(paths: &Paths, project: &str) -> PathBuf {
    journal_dir(paths).join(format!("{project}.json"))
}

/// The directory of every project's journal.
pub fn journal_dir(paths: &Paths) -> PathBuf {
    paths.run.join("events")
}

/// An event about `record` now. Docker's attributes: the image, the name,
/// the container's own labels (not Compose's), and `extra`.
pub fn event(record: &ContainerRecord, action: &str, extra: &[(&str, String)]) -> Event {
    let mut attributes: BTreeMap<String, String> = record
        .labels
        .iter()
        .filter(|(k, _)| !k.starts_with("com.docker.compose."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    attributes.insert("image".into(), record.image.clone());
    attributes.insert("name".into(), record.name.clone());
    for (k, v) in extra {
        attributes.insert((*k).to_owned(), v.clone());
    }
    Event {
        time: crate::monitor::log::rfc3339_nanos(SystemTime::now()),
        kind: "container".into(),
        action: action.to_owned(),
        id: record.id.clone(),
        service: record.service.clone(),
        attributes,
        oneoff: record.oneoff || record.label(naming::LABEL_ONEOFF) == "True",
    }
}

/// Appends `event` to the journal of `project`. Best effort: a failure is
/// logged, never returned.
pub fn append(paths: &Paths, project: &str, event: &Event) {
    if let Err(e) = try_append(paths, project, event) {
        tracing::warn!(error = %e, project, action = %event.action, "writing the event journal");
    }
}

fn try_append(paths: &Paths, project: &str, event: &Event) -> std::io::Result<()> {
    let path = journal_path(paths, project);
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let mut line = serde_json::to_vec(event).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    // One write: O_APPEND places it whole at the end.
    f.write_all(&line)
}

/// Past this size, [`compact`] starts a fresh journal.
const MAX_JOURNAL: u64 = 8 << 20;

/// Keeps a project's journal bounded: past [`MAX_JOURNAL`] bytes it is
/// renamed to `<project>.json.1` (replacing the previous one) and a new
/// one begins. Followers notice the shorter file and read it from its
/// start. Called by `up`, under the project lock.
pub fn compact(paths: &Paths, project: &str) {
    let path = journal_path(paths, project);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() > MAX_JOURNAL) {
        let mut old = path.clone().into_os_string();
        old.push(".1");
        if let Err(e) = std::fs::rename(&path, &old) {
            tracing::warn!(error = %e, "rotating the event journal");
        }
    }
}

/// Records `action` for `record` (the usual entry point).
pub fn emit(paths: &Paths, record: &ContainerRecord, action: &str, extra: &[(&str, String)]) {
    append(paths, &record.project, &event(record, action, extra));
}

/// Records `action` for container `id`, if it still has a record.
pub fn emit_id(paths: &Paths, id: &str, action: &str, extra: &[(&str, String)]) {
    if let Ok(record) = ContainerRecord::load(paths, id) {
        emit(paths, &record, action, extra);
    }
}

/// Reads a journal from an offset on, a whole line at a time.
pub struct Journal {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl Journal {
    /// From the beginning of the journal.
    pub fn from_start(paths: &Paths, project: &str) -> Journal {
        Journal {
            path: journal_path(paths, project),
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// From its current end: only what happens from now on.
    pub fn from_end(paths: &Paths, project: &str) -> Journal {
        let mut j = Journal::from_start(paths, project);
        j.offset = std::fs::metadata(&j.path).map_or(0, |m| m.len());
        j
    }

    /// The events appended since the last call (complete lines only).
    pub fn read_new(&mut self) -> std::io::Result<Vec<Event>> {
        let mut f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let len = f.metadata()?.len();
        if len < self.offset {
            // Replaced (a new run directory): start over.
            self.offset = 0;
            self.partial.clear();
        }
        f.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let mut events = Vec::new();
        let Some(last_nl) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Ok(events);
        };
        let rest = self.partial.split_off(last_nl + 1);
        for line in self.partial.split(|&b| b == b'\n') {
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice::<Event>(line) {
                Ok(e) => events.push(e),
                Err(e) => tracing::debug!(error = %e, "skipping a bad journal line"),
            }
        }
        self.partial = rest;
        Ok(events)
    }
}

/// Wakes a reader when a journal changes: inotify on the journal
/// directory (the file may not exist yet).
pub struct Watch {
    fd: OwnedFd,
}

impl Watch {
    pub fn new(paths: &Paths) -> std::io::Result<Watch> {
        use rustix::fs::inotify;
        let dir = journal_dir(paths);
        std::fs::create_dir_all(&dir)?;
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)?;
        inotify::add_watch(
            &fd,
            &dir,
            inotify::WatchFlags::MODIFY
                | inotify::WatchFlags::CREATE
                | inotify::WatchFlags::MOVED_TO,
        )?;
        Ok(Watch { fd })
    }

    /// Blocks until something changed in the journal directory or
    /// `timeout` passed (`None`: no limit). True if something changed.
    pub fn wait(&self, timeout: Option<Duration>) -> std::io::Result<bool> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let t = match timeout {
            None => PollTimeout::NONE,
            Some(d) => PollTimeout::try_from(d.as_millis().min(i32::MAX as u128) as i32)
                .unwrap_or(PollTimeout::MAX),
        };
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, t) {
            Ok(0) => return Ok(false),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        // Drain what is queued; which file changed does not matter.
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
        let mut reader = rustix::fs::inotify::Reader::new(&self.fd, &mut buf);
        while reader.next().is_ok() {}
        Ok(true)
    }
}

/// Parses a time bound as Docker takes one (`--since`, `--until`): RFC 3339
/// (`2024-01-02T13:23:37Z`, fractions, `+01:00`), a date
/// (`2024-01-02`), Unix seconds (`1704200617.5`), or a duration before
/// now (`10m`, `1h30m`, `45s`). Returns the bound as RFC 3339 nanoseconds
/// in UTC, which compares as text with journal and log times.
pub fn parse_time_bound(s: &str, now: SystemTime) -> Result<String, TimeBoundError> {
    let bad = || TimeBoundError(s.to_owned());
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    if let Some(d) = parse_go_duration(t) {
        let at = now.checked_sub(d).ok_or_else(bad)?;
        return Ok(crate::monitor::log::rfc3339_nanos(at));
    }
    if t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let (secs, frac) = t.split_once('.').unwrap_or((t, ""));
        let secs: u64 = secs.parse().map_err(|_| bad())?;
        let mut nanos = 0u32;
        if !frac.is_empty() {
            let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
            nanos = digits.parse().map_err(|_| bad())?;
        }
        let at = SystemTime::UNIX_EPOCH + Duration::new(secs, nanos);
        return Ok(crate::monitor::log::rfc3339_nanos(at));
    }
    let secs_nanos = parse_rfc3339(t).ok_or_else(bad)?;
    let at = if secs_nanos.0 >= 0 {
        SystemTime::UNIX_EPOCH + Duration::new(secs_nanos.0 as u64, secs_nanos.1)
    } else {
        SystemTime::UNIX_EPOCH
    };
    Ok(crate::monitor::log::rfc3339_nanos(at))
}

/// A time bound that is neither a time nor a duration.
#[derive(Debug, thiserror::Error)]
#[error("invalid time {0:?}: expected RFC 3339 (2024-01-02T13:23:37Z), a Unix timestamp or a duration (10m, 1h30m)")]
pub struct TimeBoundError(pub String);

/// Go's `time.ParseDuration` for what users type: sequences of a number
/// and a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`).
fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut rest = s;
    let mut total = 0f64;
    let mut any = false;
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if n_end == 0 {
            return None;
        }
        let n: f64 = rest[..n_end].parse().ok()?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[u_end..];
        total += n * unit;
        any = true;
    }
    any.then(|| Duration::from_secs_f64(total))
}

/// `YYYY-MM-DD[THH:MM[:SS[.frac]]][Z|±HH:MM]` → (seconds, nanoseconds)
/// since the epoch; no zone means UTC.
pub(crate) fn parse_rfc3339(s: &str) -> Option<(i64, u32)> {
    let num = |t: &str| -> Option<i64> {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    let (date, time) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    };
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let (clock, offset) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, 0i64)
    } else if let Some(i) = time.rfind(['+', '-']) {
        let (c, z) = time.split_at(i);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let (hh, mm) = z[1..].split_once(':').unwrap_or((&z[1..], "0"));
        (c, sign * (num(hh)? * 3600 + num(mm)? * 60))
    } else {
        (time, 0)
    };
    let (mut h, mut mi, mut sec, mut nanos) = (0, 0, 0, 0u32);
    if !clock.is_empty() {
        let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
        let mut p = hms.split(':');
        h = num(p.next()?)?;
        mi = num(p.next()?)?;
        sec = p.next().map_or(Some(0), num)?;
        if !frac.is_empty() {
            let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
            nanos = digits.parse().ok()?;
        }
    }
    let days = days_from_civil(y, m as u32, day as u32);
    Some((days * 86_400 + h * 3600 + mi * 60 + sec - offset, nanos))
}

/// (year, month, day) → days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_bounds_parse_as_docker_takes_them() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_200_617);
        assert_eq!(
            parse_time_bound("2024-01-02T13:03:37Z", now).unwrap(),
            "2024-01-02T13:03:37.000000000Z"
        );
        assert_eq!(
            parse_time_bound("2024-01-02T14:03:37.5+01:00", now).unwrap(),
            "2024-01-02T13:03:37.500000000Z"
        );
        assert_eq!(
            parse_time_bound("2024-01-02", now).unwrap(),
            "2024-01-02T00:00:00.000000000Z"
        );
        assert_eq!(
            parse_time_bound("1704200617", now).unwrap(),
            "2024-01-02T13:03:37.000000000Z"
        );
        assert_eq!(
            parse_time_bound("10m", now).unwrap(),
            "2024-01-02T12:53:37.000000000Z"
        );
        assert_eq!(
            parse_time_bound("1h30m", now).unwrap(),
            "2024-01-02T11:33:37.000000000Z"
        );
        assert!(parse_time_bound("yesterday", now).is_err());
        assert!(parse_time_bound("10x", now).is_err());
    }

    #[test]
    fn the_text_form_is_time_type_action_id_attributes() {
        let e = Event {
            time: "2024-01-01T00:00:00.000000000Z".into(),
            kind: "container".into(),
            action: "start".into(),
            id: "abc".into(),
            service: "web".into(),
            attributes: [("image", "bb:latest"), ("name", "p-web-1")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            oneoff: false,
        };
        assert_eq!(
            e.to_string(),
            "2024-01-01T00:00:00.000000000Z container start abc (image=bb:latest, name=p-web-1)"
        );
        assert!(!serde_json::to_string(&e).unwrap().contains("oneoff"));
    }

    #[test]
    fn the_journal_is_read_a_whole_line_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths {
            root: dir.path().join("root"),
            run: dir.path().join("run"),
        };
        let mut j = Journal::from_start(&paths, "p");
        assert!(j.read_new().unwrap().is_empty());
        let rec = |id: &str| Event {
            time: "t".into(),
            kind: "container".into(),
            action: "create".into(),
            id: id.into(),
            service: "s".into(),
            attributes: BTreeMap::new(),
            oneoff: false,
        };
        append(&paths, "p", &rec("a"));
        let path = journal_path(&paths, "p");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"time\":\"t\",\"type\":\"container\",")
            .unwrap();
        let got = j.read_new().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, "a");
        f.write_all(b"\"action\":\"x\",\"id\":\"b\",\"service\":\"s\",\"attributes\":{}}\n")
            .unwrap();
        let got = j.read_new().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, "b");
        let mut tail = Journal::from_end(&paths, "p");
        append(&paths, "p", &rec("c"));
        assert_eq!(tail.read_new().unwrap()[0].id, "c");
    }
}
