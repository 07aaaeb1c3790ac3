//! Restart policies and Docker's restart back-off, as pure decisions.
//!
//! The monitor asks [`Restarter::on_exit`] what to do each time the
//! container's init exits; it never sleeps or looks at a clock itself here,
//! so every rule is unit-tested: `no`, `always`, `on-failure[:N]`,
//! `unless-stopped`, and Compose's `deploy.restart_policy` (`condition:
//! none | on-failure | any`, `max_attempts`), with Docker's back-off — 100 ms,
//! doubling, capped at 60 s, back to 100 ms after a run of 10 s or more.

use std::time::Duration;

/// When a container is started again after its process exits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Never (`restart: "no"`, `condition: none`).
    #[default]
    No,
    /// After every exit (`always`, `condition: any`), unless the user stopped it.
    Always,
    /// After a non-zero exit, at most `max_retries` times when set
    /// (`on-failure[:N]`, `condition: on-failure` with `max_attempts`).
    OnFailure { max_retries: Option<u32> },
    /// Like `always`, except that a container the user stopped stays stopped
    /// across daemon or host restarts.
    UnlessStopped,
}

/// A restart policy that cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RestartPolicyError {
    #[error("invalid restart policy {0:?}: must be one of \"no\", \"always\", \"on-failure[:max-retries]\", \"unless-stopped\"")]
    Unknown(String),
    #[error("invalid restart policy {0:?}: maximum retry count must be a non-negative number")]
    BadCount(String),
    #[error(
        "invalid restart policy {0:?}: maximum retry count can only be used with \"on-failure\""
    )]
    CountNotAllowed(String),
    #[error(
        "invalid restart_policy condition {0:?}: must be one of \"none\", \"on-failure\", \"any\""
    )]
    UnknownCondition(String),
}

impl RestartPolicy {
    /// Parses a service's `restart:` value as Docker does.
    pub fn parse(s: &str) -> Result<Self, RestartPolicyError> {
        let (name, count) = match s.split_once(':') {
            Some((n, c)) => (n, Some(c)),
            None => (s, None),
        };
        let policy = match name {
            "" | "no" => RestartPolicy::No,
            "always" => RestartPolicy::Always,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            "on-failure" => RestartPolicy::OnFailure { max_retries: None },
            _ => return Err(RestartPolicyError::Unknown(s.to_owned())),
        };
        match (policy, count) {
            (p, None) => Ok(p),
            (RestartPolicy::OnFailure { .. }, Some(c)) => {
                let n: u32 = c
                    .parse()
                    .map_err(|_| RestartPolicyError::BadCount(s.to_owned()))?;
                // Docker treats `on-failure:0` as unlimited.
                Ok(RestartPolicy::OnFailure {
                    max_retries: (n > 0).then_some(n),
                })
            }
            _ => Err(RestartPolicyError::CountNotAllowed(s.to_owned())),
        }
    }

    /// Compose's `deploy.restart_policy`, which Docker Compose maps onto the
    /// engine's policy (`delay` and `window` only matter to Swarm).
    pub fn from_deploy(
        condition: Option<&str>,
        max_attempts: Option<u32>,
    ) -> Result<Self, RestartPolicyError> {
        Ok(match condition.unwrap_or("any") {
            "none" => RestartPolicy::No,
            "on-failure" => RestartPolicy::OnFailure {
                max_retries: max_attempts.filter(|n| *n > 0),
            },
            "any" => RestartPolicy::Always,
            other => return Err(RestartPolicyError::UnknownCondition(other.to_owned())),
        })
    }
}

/// First back-off delay.
pub const BACKOFF_START: Duration = Duration::from_millis(100);
/// The longest back-off delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A run at least this long resets the back-off.
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(10);

/// How a container's process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// The exit code (128 + signal for a signal death, as Docker reports it).
    pub code: i32,
    /// How long the process had been running.
    pub ran_for: Duration,
    /// The user asked for it (`stop`, `down`, `kill`): no policy restarts it.
    pub stopped_by_user: bool,
}

/// What to do after an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Start it again after this delay.
    RestartAfter(Duration),
    /// Leave it exited.
    Stay,
}

/// The restart state of one container: its policy, how many times it has
/// been restarted and the next back-off delay.
#[derive(Clone, Debug)]
pub struct Restarter {
    policy: RestartPolicy,
    restarts: u32,
    delay: Duration,
}

impl Restarter {
    pub fn new(policy: RestartPolicy) -> Self {
        Restarter {
            policy,
            restarts: 0,
            delay: BACKOFF_START,
        }
    }

    /// Restarts made so far (Docker's `RestartCount`).
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// Decides what follows `exit`, and advances the back-off.
    pub fn on_exit(&mut self, exit: Exit) -> Decision {
        if exit.ran_for >= BACKOFF_RESET_AFTER {
            self.delay = BACKOFF_START;
        }
        let restart = !exit.stopped_by_user
            && match self.policy {
                RestartPolicy::No => false,
                RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
                RestartPolicy::OnFailure { max_retries } => {
                    exit.code != 0 && max_retries.is_none_or(|max| self.restarts < max)
                }
            };
        if !restart {
            return Decision::Stay;
        }
        let delay = self.delay;
        self.delay = (self.delay * 2).min(BACKOFF_MAX);
        self.restarts += 1;
        Decision::RestartAfter(delay)
    }

    /// A restart asked for from outside the policy (an unhealthy container
    /// with berth's restart-on-unhealthy, or a dependency that restarted):
    /// counted and backed off like any other.
    pub fn forced(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= BACKOFF_RESET_AFTER {
            self.delay = BACKOFF_START;
        }
        let delay = self.delay;
        self.delay = (self.delay * 2).min(BACKOFF_MAX);
        self.restarts += 1;
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: i32, secs: u64) -> Exit {
        Exit {
            code,
            ran_for: Duration::from_secs(secs),
            stopped_by_user: false,
        }
    }

    #[test]
    fn parses_docker_policies() {
        assert_eq!(RestartPolicy::parse("no"), Ok(RestartPolicy::No));
        assert_eq!(RestartPolicy::parse("always"), Ok(RestartPolicy::Always));
        assert_eq!(
            RestartPolicy::parse("unless-stopped"),
            Ok(RestartPolicy::UnlessStopped)
        );
        assert_eq!(
            RestartPolicy::parse("on-failure:3"),
            Ok(RestartPolicy::OnFailure {
                max_retries: Some(3)
            })
        );
        assert_eq!(
            RestartPolicy::parse("on-failure:0"),
            Ok(RestartPolicy::OnFailure { max_retries: None })
        );
        assert!(matches!(
            RestartPolicy::parse("always:2"),
            Err(RestartPolicyError::CountNotAllowed(_))
        ));
        assert!(matches!(
            RestartPolicy::parse("on-failure:x"),
            Err(RestartPolicyError::BadCount(_))
        ));
        assert!(matches!(
            RestartPolicy::parse("sometimes"),
            Err(RestartPolicyError::Unknown(_))
        ));
        assert_eq!(
            RestartPolicy::from_deploy(Some("on-failure"), Some(2)),
            Ok(RestartPolicy::OnFailure {
                max_retries: Some(2)
            })
        );
        assert_eq!(
            RestartPolicy::from_deploy(None, None),
            Ok(RestartPolicy::Always)
        );
    }

    #[test]
    fn backoff_doubles_to_a_minute_and_resets_after_ten_seconds() {
        let mut r = Restarter::new(RestartPolicy::Always);
        let delays: Vec<u64> = (0..12)
            .map(|_| match r.on_exit(exit(1, 0)) {
                Decision::RestartAfter(d) => d.as_millis() as u64,
                Decision::Stay => panic!("always restarts"),
            })
            .collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000]
        );
        assert_eq!(
            r.on_exit(exit(0, 10)),
            Decision::RestartAfter(BACKOFF_START)
        );
        assert_eq!(r.restarts(), 13);
    }

    #[test]
    fn on_failure_counts_and_ignores_success() {
        let mut r = Restarter::new(RestartPolicy::OnFailure {
            max_retries: Some(2),
        });
        assert_eq!(r.on_exit(exit(0, 0)), Decision::Stay);
        assert!(matches!(r.on_exit(exit(3, 0)), Decision::RestartAfter(_)));
        assert!(matches!(r.on_exit(exit(3, 0)), Decision::RestartAfter(_)));
        assert_eq!(r.on_exit(exit(3, 0)), Decision::Stay);
    }

    #[test]
    fn a_user_stop_is_never_restarted() {
        for p in [
            RestartPolicy::Always,
            RestartPolicy::UnlessStopped,
            RestartPolicy::OnFailure { max_retries: None },
        ] {
            let mut r = Restarter::new(p);
            let e = Exit {
                stopped_by_user: true,
                ..exit(137, 0)
            };
            assert_eq!(r.on_exit(e), Decision::Stay, "{p:?}");
        }
        assert_eq!(
            Restarter::new(RestartPolicy::No).on_exit(exit(1, 0)),
            Decision::Stay
        );
    }
}
