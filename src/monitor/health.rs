//! Healthchecks as Docker runs them, as a pure state machine: the monitor
//! runs the probe inside the container when [`Health::next_probe_in`] says,
//! and feeds each result to [`Health::record`].
//!
//! Docker's rules: the status starts as `starting`; a passing probe makes it
//! `healthy` and clears the failing streak; a failing one adds to the streak
//! — except while the container is still `starting` inside its
//! `start_period` — and `retries` failures in a row make it `unhealthy`.
//! Probes run every `interval` (every `start_interval` while starting inside
//! the start period); one that runs past `timeout` fails. The last five
//! results are kept, each output cut to 4 KiB.

use std::collections::VecDeque;
use std::time::Duration;

/// Docker's defaults.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_RETRIES: u32 = 3;
/// Results kept in the log.
pub const MAX_LOG_ENTRIES: usize = 5;
/// Bytes of a probe's output kept.
pub const MAX_OUTPUT: usize = 4096;

/// What a probe runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// `["CMD", argv…]`: run directly.
    Exec(Vec<String>),
    /// `["CMD-SHELL", cmd]` (or a plain string): `/bin/sh -c cmd`.
    Shell(String),
}

/// A `healthcheck.test` that cannot be run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HealthError {
    #[error("healthcheck test is empty")]
    Empty,
    #[error("healthcheck test must start with \"CMD\", \"CMD-SHELL\" or \"NONE\", not {0:?}")]
    Kind(String),
    #[error("healthcheck test {0:?} has no command")]
    NoCommand(String),
}

impl Probe {
    /// From `healthcheck.test` as Compose normalizes it. `Ok(None)` is
    /// `NONE`: no healthcheck (it also disables the image's).
    pub fn from_test(test: &[String]) -> Result<Option<Probe>, HealthError> {
        let (kind, rest) = test.split_first().ok_or(HealthError::Empty)?;
        match kind.as_str() {
            "NONE" => Ok(None),
            "CMD" if rest.is_empty() => Err(HealthError::NoCommand(kind.clone())),
            "CMD" => Ok(Some(Probe::Exec(rest.to_vec()))),
            "CMD-SHELL" if rest.is_empty() => Err(HealthError::NoCommand(kind.clone())),
            "CMD-SHELL" => Ok(Some(Probe::Shell(rest.join(" ")))),
            other => Err(HealthError::Kind(other.to_owned())),
        }
    }

    /// The argv run inside the container.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Probe::Exec(argv) => argv.clone(),
            Probe::Shell(cmd) => vec!["/bin/sh".into(), "-c".into(), cmd.clone()],
        }
    }
}

/// Timing and threshold of a healthcheck, defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthConfig {
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub start_interval: Duration,
    pub retries: u32,
}

impl HealthConfig {
    /// A probe with Docker's defaults; zero or missing durations and
    /// retries fall back to them, as Docker does.
    pub fn new(probe: Probe) -> Self {
        HealthConfig {
            probe,
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            start_period: Duration::ZERO,
            start_interval: DEFAULT_START_INTERVAL,
            retries: DEFAULT_RETRIES,
        }
    }
}

/// `docker inspect`'s `State.Health.Status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Starting,
    Healthy,
    Unhealthy,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Starting => "starting",
            Status::Healthy => "healthy",
            Status::Unhealthy => "unhealthy",
        })
    }
}

/// How one probe ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProbeResult {
    /// When it started, as time since the container started.
    pub at: Duration,
    /// Exit code; -1 when it timed out or could not run.
    pub exit_code: i32,
    pub output: String,
}

/// The health of one running container.
#[derive(Clone, Debug)]
pub struct Health {
    config: HealthConfig,
    status: Status,
    failing_streak: u32,
    log: VecDeque<ProbeResult>,
}

impl Health {
    pub fn new(config: HealthConfig) -> Self {
        Health {
            config,
            status: Status::Starting,
            failing_streak: 0,
            log: VecDeque::new(),
        }
    }

    /// Goes on from what an earlier monitor of the same running container
    /// had recorded (adoption after its kill -9): the status and failing
    /// streak stay, the log starts empty.
    pub fn resume(config: HealthConfig, status: Status, failing_streak: u32) -> Self {
        Health {
            config,
            status,
            failing_streak,
            log: VecDeque::new(),
        }
    }

    pub fn status(&self) -> Status {
        self.status
    }

    pub fn failing_streak(&self) -> u32 {
        self.failing_streak
    }

    pub fn log(&self) -> impl Iterator<Item = &ProbeResult> {
        self.log.iter()
    }

    pub fn config(&self) -> &HealthConfig {
        &self.config
    }

    /// How long to wait before the next probe, given the time since the
    /// container started.
    pub fn next_probe_in(&self, since_start: Duration) -> Duration {
        if self.status == Status::Starting && since_start < self.config.start_period {
            self.config.start_interval
        } else {
            self.config.interval
        }
    }

    /// Records a probe's result; returns the new status when it changed.
    pub fn record(&mut self, mut result: ProbeResult) -> Option<Status> {
        let before = self.status;
        if result.exit_code == 0 {
            self.failing_streak = 0;
            self.status = Status::Healthy;
        } else {
            let grace = self.status == Status::Starting && result.at < self.config.start_period;
            if !grace {
                self.failing_streak += 1;
                if self.failing_streak >= self.config.retries {
                    self.status = Status::Unhealthy;
                }
            }
        }
        if result.output.len() > MAX_OUTPUT {
            let mut cut = MAX_OUTPUT;
            while !result.output.is_char_boundary(cut) {
                cut -= 1;
            }
            result.output.truncate(cut);
        }
        if self.log.len() == MAX_LOG_ENTRIES {
            self.log.pop_front();
        }
        self.log.push_back(result);
        (self.status != before).then_some(self.status)
    }

    /// The result recorded for a probe that ran past its timeout.
    pub fn timed_out(&self, at: Duration) -> ProbeResult {
        ProbeResult {
            at,
            exit_code: -1,
            output: format!(
                "Health check exceeded timeout ({})",
                humantime(self.config.timeout)
            ),
        }
    }
}

/// Go's `time.Duration` text for whole seconds and milliseconds (`30s`,
/// `1m30s`, `500ms`), as Docker prints the timeout.
fn humantime(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m, s, frac) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if frac > 0 {
        let f = format!("{frac:03}");
        out.push_str(&format!("{s}.{}s", f.trim_end_matches('0')));
    } else {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn res(at_secs: u64, code: i32) -> ProbeResult {
        ProbeResult {
            at: Duration::from_secs(at_secs),
            exit_code: code,
            output: String::new(),
        }
    }

    #[test]
    fn test_forms() {
        assert_eq!(Probe::from_test(&s(&["NONE"])), Ok(None));
        assert_eq!(
            Probe::from_test(&s(&["CMD", "curl", "-f", "x"])),
            Ok(Some(Probe::Exec(s(&["curl", "-f", "x"]))))
        );
        let p = Probe::from_test(&s(&["CMD-SHELL", "curl -f x || exit 1"]))
            .unwrap()
            .unwrap();
        assert_eq!(p.argv(), s(&["/bin/sh", "-c", "curl -f x || exit 1"]));
        assert!(Probe::from_test(&s(&["RUN", "x"])).is_err());
        assert!(Probe::from_test(&s(&["CMD"])).is_err());
        assert!(Probe::from_test(&[]).is_err());
    }

    #[test]
    fn retries_failures_make_it_unhealthy_and_one_success_heals() {
        let mut h = Health::new(HealthConfig::new(Probe::Shell("x".into())));
        assert_eq!(h.status(), Status::Starting);
        assert_eq!(h.record(res(30, 1)), None);
        assert_eq!(h.record(res(60, 1)), None);
        assert_eq!(h.record(res(90, 1)), Some(Status::Unhealthy));
        assert_eq!(h.failing_streak(), 3);
        assert_eq!(h.record(res(120, 0)), Some(Status::Healthy));
        assert_eq!(h.failing_streak(), 0);
    }

    #[test]
    fn start_period_failures_do_not_count_while_starting() {
        let mut cfg = HealthConfig::new(Probe::Shell("x".into()));
        cfg.start_period = Duration::from_secs(20);
        cfg.start_interval = Duration::from_secs(2);
        cfg.retries = 1;
        let mut h = Health::new(cfg);
        assert_eq!(
            h.next_probe_in(Duration::from_secs(1)),
            Duration::from_secs(2)
        );
        for t in [2, 4, 6] {
            assert_eq!(h.record(res(t, 1)), None);
        }
        assert_eq!(h.failing_streak(), 0);
        assert_eq!(h.record(res(8, 0)), Some(Status::Healthy));
        // Once healthy, a failure inside the start period counts.
        assert_eq!(h.record(res(10, 1)), Some(Status::Unhealthy));
        assert_eq!(h.next_probe_in(Duration::from_secs(11)), DEFAULT_INTERVAL);
    }

    #[test]
    fn log_keeps_five_and_cuts_output() {
        let mut h = Health::new(HealthConfig::new(Probe::Shell("x".into())));
        for t in 0..7 {
            let mut r = res(t, 0);
            r.output = "é".repeat(3000);
            h.record(r);
        }
        let log: Vec<_> = h.log().collect();
        assert_eq!(log.len(), 5);
        assert_eq!(log[0].at, Duration::from_secs(2));
        assert!(log[0].output.len() <= MAX_OUTPUT);
        assert_eq!(
            h.timed_out(Duration::ZERO).output,
            "Health check exceeded timeout (30s)"
        );
        assert_eq!(humantime(Duration::from_millis(1500)), "1.5s");
        assert_eq!(humantime(Duration::from_secs(90)), "1m30s");
    }

    #[test]
    fn a_resumed_health_keeps_status_and_streak() {
        let mut config = HealthConfig::new(Probe::Shell("true".into()));
        config.retries = 2;
        let mut h = Health::resume(config, Status::Healthy, 1);
        assert_eq!(h.status(), Status::Healthy);
        let fail = ProbeResult {
            at: Duration::from_secs(100),
            exit_code: 1,
            output: String::new(),
        };
        // One more failure reaches `retries`.
        assert_eq!(h.record(fail), Some(Status::Unhealthy));
    }
}
