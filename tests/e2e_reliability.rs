//! Reliability, end to end (issue 6): a kill -9 of a monitor, of the CLI in
//! the middle of `up`, or of the DNS server loses no container and no data,
//! and the next command repairs; two `up`s of one project are serialized;
//! `down` is idempotent; `up -d`/`down` cycles of a 20-service stack leave
//! nothing behind and do not grow berth's memory or fds.
//!
//! Needs root. Every test runs berth in a network namespace of its own
//! (`ip netns add`, through `nsenter --net`), with its own `BERTH_ROOT` and
//! `BERTH_RUN`, so tests run in parallel without sharing nft rules; a Drop
//! guard takes the stack down, ends the processes this test started (found
//! by their `BERTH_ROOT`) and deletes the namespace even when it fails.
//!
//! The cycle count of the leak test is `BERTH_LEAK_CYCLES` (default 100:
//! about 3.6 min on the 2-core CI machine, loaded; `benches/leak_cycles.sh
//! [N]` runs it alone with its figures).

mod e2e_support;

use std::collections::BTreeSet;
use std::ops::Deref;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use e2e_support::Setup;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A project in its own state dirs and network namespace.
struct Env(e2e_support::Env);

impl Env {
    fn new(compose: &str) -> Env {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        Env(Setup::new(format!("rel{}x{n}", std::process::id()))
            .compose(compose)
            .netns()
            .poll(Duration::from_millis(20))
            .build())
    }
}

impl Deref for Env {
    type Target = e2e_support::Env;

    fn deref(&self) -> &e2e_support::Env {
        &self.0
    }
}

fn pid_alive(pid: i64) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.is_empty()
        && !stat
            .rsplit_once(") ")
            .is_some_and(|(_, r)| r.starts_with('Z') || r.starts_with('X'))
}

fn kill9(pid: i64) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

/// The `tick N` numbers in a log, in order.
fn ticks(log: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|l| l.trim().strip_prefix("tick "))
        .filter_map(|n| n.parse().ok())
        .collect()
}

const MONITOR_STACK: &str = r#"
services:
  talker:
    image: bb:latest
    restart: always
    stop_signal: SIGKILL
    command: ["sh", "-c", "i=0; while true; do echo tick $$i; i=$$((i+1)); sleep 0.02; done"]
    healthcheck:
      test: ["CMD-SHELL", "true"]
      interval: 200ms
      start_period: 5s
      start_interval: 100ms
  graceful:
    image: bb:latest
    network_mode: none
    stop_grace_period: 20s
    command: ["sh", "-c", "trap 'echo got TERM; exit 7' TERM; echo ready; while true; do sleep 0.1; done"]
"#;

#[test]
fn a_killed_monitor_is_replaced_and_its_container_loses_nothing() {
    let env = Env::new(MONITOR_STACK);
    env.ok(&["up", "-d"]);
    let talker = env.id_of(&format!("{}-talker-1", env.project));
    let graceful = env.id_of(&format!("{}-graceful-1", env.project));
    env.wait_for("talker to be healthy", Duration::from_secs(20), || {
        env.state(&talker)["health"] == "healthy"
    });
    let before = env.state(&talker);
    let (m1, p1) = (
        before["monitor_pid"].as_i64().unwrap(),
        before["pid"].as_i64().unwrap(),
    );
    assert!(pid_alive(m1) && pid_alive(p1), "{before}");

    // kill -9 of the monitor: the container runs on, writing into the FIFO
    // (no SIGPIPE, no lost output), until the next command adopts it.
    kill9(m1);
    env.wait_for("the monitor to die", Duration::from_secs(5), || {
        !pid_alive(m1)
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(pid_alive(p1), "the container died with its monitor");
    let ps = env.ok(&["ps"]);
    assert!(ps.contains("talker"), "{ps}");
    let after = env.state(&talker);
    let m2 = after["monitor_pid"].as_i64().unwrap();
    assert!(m2 > 0 && m2 != m1 && pid_alive(m2), "not adopted: {after}");
    assert_eq!(after["pid"].as_i64(), Some(p1), "{after}");
    assert_eq!(after["status"], "running");
    assert_eq!(after["health"], "healthy", "{after}");
    // Output written while nobody watched is in the log, in order, none
    // lost: the ticks count up without a gap across the adoption.
    std::thread::sleep(Duration::from_millis(500));
    let t = ticks(&env.logs("talker"));
    assert!(t.len() > 40, "too few ticks: {}", t.len());
    for (i, n) in t.iter().enumerate() {
        assert_eq!(
            *n,
            i as u64,
            "a gap in the log at line {i}: {:?}",
            &t[i.saturating_sub(3)..(i + 3).min(t.len())]
        );
    }
    // The healthchecks go on under the new monitor.
    let probes = after["health_log"].as_array().map_or(0, Vec::len);
    env.wait_for("a probe by the new monitor", Duration::from_secs(5), || {
        env.state(&talker)["health_log"]
            .as_array()
            .map_or(0, Vec::len)
            > probes
    });

    // Its restart policy is the new monitor's: the container dies, the
    // monitor (not its parent) sees it through the pidfd, records an exit
    // code (the zombie's, or 255 when its reaper was faster) and restarts.
    kill9(p1);
    env.wait_for("talker to restart", Duration::from_secs(10), || {
        let s = env.state(&talker);
        s["status"] == "running" && s["pid"].as_i64().is_some_and(|p| p != p1 && p > 0)
    });
    let s = env.state(&talker);
    assert_eq!(s["restart_count"], 1, "{s}");
    assert_eq!(s["monitor_pid"].as_i64(), Some(m2), "{s}");
    let code = s["exit_code"].as_i64().unwrap();
    assert!(code == 137 || code == 255, "exit code {code}");
    env.wait_for(
        "the restarted talker's output",
        Duration::from_secs(5),
        || env.logs("talker").matches("tick 0\n").count() == 2,
    );

    // Stop through an adopted monitor: the stop signal (TERM, trapped),
    // the container's own last words in the log, no grace-period wait.
    let g = env.state(&graceful);
    let gm = g["monitor_pid"].as_i64().unwrap();
    kill9(gm);
    env.wait_for("graceful's monitor to die", Duration::from_secs(5), || {
        !pid_alive(gm)
    });
    let t0 = Instant::now();
    env.ok(&["stop", "graceful"]);
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "stop waited {:?}",
        t0.elapsed()
    );
    let log = env.logs("graceful");
    assert!(log.contains("ready") && log.contains("got TERM"), "{log:?}");
    let g = env.state(&graceful);
    assert_eq!(g["status"], "exited", "{g}");
    assert_eq!(g["monitor_pid"], 0, "{g}");
    let code = g["exit_code"].as_i64().unwrap();
    assert!(code == 7 || code == 255, "exit code {code}");

    let ids: BTreeSet<String> = env.containers().into_iter().map(|(_, id)| id).collect();
    env.ok(&["down", "-t", "1"]);
    let left = env.leftovers(&ids);
    assert!(left.is_empty(), "left behind: {left:#?}");
}

/// Any command repairs any project (`../DESIGN.md`: "the next `berth`
/// command notices and repairs"): `ps` of another project adopts this
/// one's orphan, and lists none of its containers.
#[test]
fn the_ps_of_another_project_adopts_an_orphan_too() {
    let env = Env::new(
        "services:\n  sleeper:\n    image: bb:latest\n    network_mode: none\n    command: [\"sleep\", \"600\"]\n",
    );
    env.ok(&["up", "-d"]);
    let id = env.id_of(&format!("{}-sleeper-1", env.project));
    let before = env.state(&id);
    let (m1, p1) = (
        before["monitor_pid"].as_i64().unwrap(),
        before["pid"].as_i64().unwrap(),
    );
    kill9(m1);
    env.wait_for("the monitor to die", Duration::from_secs(5), || {
        !pid_alive(m1)
    });
    let other = env.dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(
        other.join("compose.yaml"),
        format!(
            "name: {}o\nservices:\n  a:\n    image: bb:latest\n",
            env.project
        ),
    )
    .unwrap();
    let ps = String::from_utf8(env.ok_bytes_in(&other, &["ps", "-a"])).unwrap();
    assert!(!ps.contains("sleeper"), "{ps}");
    let after = env.state(&id);
    let m2 = after["monitor_pid"].as_i64().unwrap();
    assert!(m2 > 0 && m2 != m1 && pid_alive(m2), "not adopted: {after}");
    assert_eq!(after["pid"].as_i64(), Some(p1), "{after}");
    assert_eq!(after["status"], "running", "{after}");

    let ids: BTreeSet<String> = env.containers().into_iter().map(|(_, id)| id).collect();
    env.ok(&["down", "-t", "0"]);
    let left = env.leftovers(&ids);
    assert!(left.is_empty(), "left behind: {left:#?}");
}

#[test]
fn a_container_that_ended_without_a_monitor_gets_its_restart_policy() {
    let env = Env::new(
        r#"
services:
  always:
    image: bb:latest
    network_mode: none
    restart: always
    command: ["sh", "-c", "echo started; exec sleep 1000"]
  never:
    image: bb:latest
    network_mode: none
    command: ["sh", "-c", "echo started; exec sleep 1000"]
"#,
    );
    env.ok(&["up", "-d"]);
    // `up -d` returns once the containers started, maybe before their
    // first output: what is still in the output pipe when the monitor and
    // then the container are killed dies with the pipe (process.rs).
    env.log_with("always", "started");
    let mut pids = Vec::new();
    for s in ["always", "never"] {
        let id = env.id_of(&format!("{}-{s}-1", env.project));
        let st = env.state(&id);
        let (m, p) = (
            st["monitor_pid"].as_i64().unwrap(),
            st["pid"].as_i64().unwrap(),
        );
        kill9(m);
        env.wait_for("the monitor to die", Duration::from_secs(5), || {
            !pid_alive(m)
        });
        kill9(p);
        env.wait_for("the container to die", Duration::from_secs(5), || {
            !pid_alive(p)
        });
        pids.push((id, p));
    }
    // Unwatched, both ended; the next command notices.
    env.ok(&["ps", "-a"]);
    let (always, p_always) = &pids[0];
    env.wait_for("`always` to be restarted", Duration::from_secs(10), || {
        let s = env.state(always);
        s["status"] == "running" && s["pid"].as_i64().is_some_and(|p| p != *p_always)
    });
    let s = env.state(always);
    assert_eq!(s["restart_count"], 1, "{s}");
    assert!(pid_alive(s["monitor_pid"].as_i64().unwrap()), "{s}");
    let (never, _) = &pids[1];
    env.wait_for(
        "`never` to be recorded as exited",
        Duration::from_secs(10),
        || {
            let s = env.state(never);
            s["status"] == "exited" && s["monitor_pid"] == 0
        },
    );
    let s = env.state(never);
    assert_eq!(s["status"], "exited", "{s}");
    assert_eq!(s["monitor_pid"], 0, "{s}");
    // Reaped by someone else: the code is unknown, as Docker says it.
    let code = s["exit_code"].as_i64().unwrap();
    assert!(code == 137 || code == 255, "exit code {code}");
    let ps = env.ok(&["ps", "-a", "--format", "json"]);
    assert!(ps.contains("never"), "{ps}");
    // Both runs' output: the first one's, logged before the kills, and the
    // restarted one's.
    let end = Instant::now() + Duration::from_secs(5);
    while env.logs("always").matches("started").count() != 2 {
        if Instant::now() > end {
            let log = env.ok(&["logs", "-t", "always"]);
            panic!(
                "timed out waiting for the restarted container's output; log:\n{log}state: {}",
                env.state(always)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    let ids: BTreeSet<String> = env.containers().into_iter().map(|(_, id)| id).collect();
    env.ok(&["down", "-t", "0"]);
    let left = env.leftovers(&ids);
    assert!(left.is_empty(), "left behind: {left:#?}");
}

const SLOW_STACK: &str = r#"
services:
  db:
    image: bb:latest
    command: ["sh", "-c", "mkdir -p /www; echo hello from db > /www/index.html; (sleep 3; touch /tmp/ok) & exec httpd -f -p 80 -h /www"]
    stop_signal: SIGKILL
    healthcheck:
      test: ["CMD-SHELL", "test -e /tmp/ok"]
      interval: 200ms
      start_period: 20s
      start_interval: 100ms
  writer:
    image: bb:latest
    stop_signal: SIGKILL
    command: ["sh", "-c", "echo boot >> /data/boots; exec sleep 1000"]
    volumes: ["data:/data"]
  web:
    image: bb:latest
    stop_signal: SIGKILL
    depends_on:
      db: {condition: service_healthy}
    command: ["sleep", "1000"]
  web2:
    image: bb:latest
    stop_signal: SIGKILL
    depends_on:
      db: {condition: service_healthy}
    command: ["sleep", "1000"]
volumes:
  data: {}
"#;

#[test]
fn a_cli_killed_in_the_middle_of_up_loses_nothing_and_the_next_up_converges() {
    let env = Env::new(SLOW_STACK);
    let p = env.project.clone();
    let mut up = env.spawn(&["up", "-d"]);
    // Wait until some containers run and the dependents wait on db.
    env.wait_for("db and writer to run", Duration::from_secs(30), || {
        env.containers()
            .iter()
            .any(|(n, _)| n == &format!("{p}-db-1"))
            && env
                .containers()
                .iter()
                .any(|(n, _)| n == &format!("{p}-writer-1"))
            && ["db", "writer"].iter().all(|s| {
                let id = env.id_of(&format!("{p}-{s}-1"));
                env.state(&id)["status"] == "running"
            })
    });
    let db = env.id_of(&format!("{p}-db-1"));
    assert_ne!(
        env.state(&db)["health"],
        "healthy",
        "db became healthy too soon for this test"
    );
    up.kill().unwrap();
    let _ = up.wait();
    let writer = env.id_of(&format!("{p}-writer-1"));
    let writer_pid = env.state(&writer)["pid"].as_i64().unwrap();

    // And the DNS server, while we are at it.
    env.kill_dns();

    env.ok(&["up", "-d"]);
    let names: Vec<String> = env.containers().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["db", "web", "web2", "writer"]
            .iter()
            .map(|s| format!("{p}-{s}-1"))
            .collect::<Vec<_>>(),
        "duplicates or missing containers"
    );
    // What ran before the kill is the same container, untouched.
    assert_eq!(env.id_of(&format!("{p}-db-1")), db);
    assert_eq!(env.id_of(&format!("{p}-writer-1")), writer);
    assert_eq!(env.state(&writer)["pid"].as_i64(), Some(writer_pid));
    for (name, id) in env.containers() {
        assert_eq!(env.state(&id)["status"], "running", "{name}");
    }
    let boots = env.ok(&["exec", "-T", "writer", "cat", "/data/boots"]);
    assert_eq!(boots, "boot\n");
    // Names resolve through the DNS server the second `up` started.
    let mut got = String::new();
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end && !got.contains("hello from db") {
        let o = env.berth(&[
            "exec",
            "-T",
            "web",
            "timeout",
            "5",
            "wget",
            "-q",
            "-O",
            "-",
            "http://db/",
        ]);
        got = String::from_utf8_lossy(&o.stdout).into_owned();
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        got.contains("hello from db"),
        "web cannot reach db: {got:?}"
    );
    // The volume's data survives down/up.
    env.ok(&["down", "-t", "0"]);
    env.ok(&["up", "-d", "writer"]);
    let boots = env.ok(&["exec", "-T", "writer", "cat", "/data/boots"]);
    assert_eq!(boots, "boot\nboot\n");

    let ids: BTreeSet<String> = env.containers().into_iter().map(|(_, id)| id).collect();
    let mut all = ids.clone();
    all.insert(db);
    all.insert(writer);
    env.ok(&["down", "-v", "-t", "0"]);
    let left = env.leftovers(&all);
    assert!(left.is_empty(), "left behind: {left:#?}");
    assert!(!env.root.join("volumes").join(format!("{p}_data")).exists());
}

#[test]
fn a_cli_killed_at_any_point_of_up_is_repaired_by_the_next_up_and_down() {
    let mut compose = String::from("services:\n");
    for i in 1..=8 {
        compose.push_str(&format!(
            "  s{i}:\n    image: bb:latest\n    stop_signal: SIGKILL\n    command: [\"sleep\", \"1000\"]\n"
        ));
        if i % 4 == 0 {
            compose.push_str("    network_mode: none\n");
        }
    }
    let env = Env::new(&compose);
    let mut all = BTreeSet::new();
    // Kills spread over the whole `up`: before, during and after the
    // containers are made and started (a full `up -d` of this stack takes
    // a few hundred milliseconds here).
    for (round, delay_ms) in [0u64, 40, 80, 120, 160, 240, 320, 480]
        .into_iter()
        .enumerate()
    {
        let mut up = env.spawn(&["up", "-d"]);
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = up.kill();
        let _ = up.wait();
        all.extend(env.containers().into_iter().map(|(_, id)| id));
        let out = env.berth(&["up", "-d"]);
        assert!(
            out.status.success(),
            "round {round}: the next up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let names: Vec<String> = env.containers().into_iter().map(|(n, _)| n).collect();
        let want: Vec<String> = (1..=8).map(|i| format!("{}-s{i}-1", env.project)).collect();
        let mut sorted_want = want.clone();
        sorted_want.sort();
        assert_eq!(
            names, sorted_want,
            "round {round} (kill after {delay_ms} ms)"
        );
        for (name, id) in env.containers() {
            all.insert(id.clone());
            assert_eq!(env.state(&id)["status"], "running", "round {round}: {name}");
        }
        env.ok(&["down", "-t", "0"]);
        let left = env.leftovers(&all);
        assert!(
            left.is_empty(),
            "round {round} (kill after {delay_ms} ms) left behind: {left:#?}"
        );
    }
}

#[test]
fn two_ups_are_serialized_by_the_lock_and_down_is_idempotent() {
    let env = Env::new(
        r#"
services:
  a:
    image: bb:latest
    stop_signal: SIGKILL
    command: ["sleep", "1000"]
  b:
    image: bb:latest
    stop_signal: SIGKILL
    command: ["sleep", "1000"]
  c:
    image: bb:latest
    network_mode: none
    stop_signal: SIGKILL
    command: ["sleep", "1000"]
"#,
    );
    // While someone holds the project's lock, `up` waits and makes nothing.
    let lock_path = env
        .root
        .join("projects")
        .join(format!("{}.lock", env.project));
    let lock = berth::engine::state::Lock::acquire(&lock_path).unwrap();
    let mut up = env.spawn(&["up", "-d"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        up.try_wait().unwrap().is_none(),
        "up did not wait for the lock"
    );
    assert!(
        env.containers().is_empty(),
        "up made containers without the lock"
    );
    drop(lock);
    let st = up.wait().unwrap();
    assert!(st.success(), "up after the lock was released: {st}");
    assert_eq!(env.containers().len(), 3);
    env.ok(&["down", "-t", "0"]);

    // Two at once: one makes the stack, the other finds it made.
    let first = env.spawn(&["up", "-d"]);
    let second = env.spawn(&["up", "-d"]);
    for (i, c) in [first, second].into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "up #{i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let names: Vec<String> = env.containers().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["a", "b", "c"]
            .iter()
            .map(|s| format!("{}-{s}-1", env.project))
            .collect::<Vec<_>>()
    );
    for (name, id) in env.containers() {
        assert_eq!(env.state(&id)["status"], "running", "{name}");
    }
    let ids: BTreeSet<String> = env.containers().into_iter().map(|(_, id)| id).collect();

    // `down` with a dead monitor, then again, then concurrently, then of a
    // project that never existed: each succeeds, the later ones do nothing.
    let a = env.id_of(&format!("{}-a-1", env.project));
    kill9(env.state(&a)["monitor_pid"].as_i64().unwrap());
    env.ok(&["down", "-t", "0"]);
    let again = env.berth(&["down", "-t", "0"]);
    assert!(again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(!err.contains("Removed"), "the second down removed: {err}");
    let d1 = env.spawn(&["down"]);
    let d2 = env.spawn(&["down"]);
    assert!(d1.wait_with_output().unwrap().status.success());
    assert!(d2.wait_with_output().unwrap().status.success());
    env.ok(&["-p", "neverexisted", "down"]);
    let left = env.leftovers(&ids);
    assert!(left.is_empty(), "left behind: {left:#?}");
}

/// Resident memory (KiB) and open fds of a process.
fn rss_fds(pid: i64) -> Option<(u64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((rss, fds))
}

fn leak_stack(ports: [u16; 2]) -> String {
    let mut s = String::from("services:\n");
    for i in 1..=20 {
        s.push_str(&format!(
            "  s{i}:\n    image: bb:latest\n    stop_signal: SIGKILL\n"
        ));
        if i <= 2 {
            s.push_str(&format!(
                "    command: [\"sh\", \"-c\", \"mkdir -p /www && echo hello from s{i} > /www/index.html && exec httpd -f -p 80 -h /www\"]\n    ports: [\"127.0.0.1:{}:80\"]\n",
                ports[i - 1]
            ));
        } else {
            s.push_str("    command: [\"sleep\", \"1000\"]\n");
        }
    }
    s
}

fn http_get(env: &Env, port: u16) -> String {
    let url = format!("http://127.0.0.1:{port}/");
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let o = env.in_ns(&["curl", "-s", "-m", "2", &url]);
        let body = String::from_utf8_lossy(&o.stdout).into_owned();
        if !body.is_empty() || Instant::now() > end {
            return body;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn up_down_cycles_of_20_services_leave_nothing_and_do_not_grow() {
    let cycles: usize = std::env::var("BERTH_LEAK_CYCLES")
        .ok()
        .map(|v| v.parse().expect("BERTH_LEAK_CYCLES: a number"))
        .unwrap_or(100);
    assert!(cycles >= 4, "BERTH_LEAK_CYCLES must be at least 4");
    let ports = [18081, 18082];
    let env = Env::new(&leak_stack(ports));
    assert!(
        env.in_ns(&["curl", "--version"]).status.success(),
        "precondition: curl"
    );
    // A second project stays up the whole time, so one DNS server lives
    // through every cycle and its memory and fds can be followed.
    let keep = env.tmp.join("keep");
    std::fs::create_dir_all(&keep).unwrap();
    std::fs::write(
        keep.join("compose.yaml"),
        "name: keep\nservices:\n  k:\n    image: bb:latest\n    stop_signal: SIGKILL\n    command: [\"sleep\", \"1000\"]\n",
    )
    .unwrap();
    let keep_file = keep.join("compose.yaml").display().to_string();
    env.ok(&["-f", &keep_file, "up", "-d"]);
    let keep_id = env.containers()[0].1.clone();
    let dns = berth_network::dns::running(&env.run)
        .unwrap()
        .expect("a DNS server runs")
        .as_raw() as i64;

    let mut all_ids = BTreeSet::new();
    let mut dns_samples = Vec::new();
    let mut monitor_samples: Vec<(u64, usize)> = Vec::new();
    let mut up_times = Vec::new();
    let mut down_times = Vec::new();
    let started = Instant::now();
    for cycle in 0..cycles {
        let t = Instant::now();
        env.ok(&["up", "-d"]);
        up_times.push(t.elapsed());
        let mine: Vec<(String, String)> = env
            .containers()
            .into_iter()
            .filter(|(_, id)| *id != keep_id)
            .collect();
        assert_eq!(mine.len(), 20, "cycle {cycle}");
        if cycle == 0 || cycle == cycles - 1 {
            for (i, port) in ports.iter().enumerate() {
                let body = http_get(&env, *port);
                assert!(
                    body.contains(&format!("hello from s{}", i + 1)),
                    "cycle {cycle}: port {port} gave {body:?}"
                );
            }
        }
        // Every monitor of this cycle, and the DNS server.
        // The median of the monitors' fd counts: a monitor caught writing
        // its state holds one more for a moment; a leak into monitors (all
        // made afresh each cycle) would show in every one of them.
        let mut rss = 0;
        let mut fds = Vec::new();
        for (name, id) in &mine {
            all_ids.insert(id.clone());
            let m = env.state(id)["monitor_pid"].as_i64().unwrap_or(0);
            let (r, f) =
                rss_fds(m).unwrap_or_else(|| panic!("cycle {cycle}: no monitor for {name}"));
            rss += r;
            fds.push(f);
        }
        fds.sort_unstable();
        monitor_samples.push((rss / mine.len() as u64, fds[fds.len() / 2]));
        assert_eq!(
            berth_network::dns::running(&env.run)
                .unwrap()
                .map(|p| p.as_raw() as i64),
            Some(dns),
            "cycle {cycle}: the DNS server changed"
        );
        dns_samples.push(rss_fds(dns).expect("the DNS server's /proc"));
        let t = Instant::now();
        env.ok(&["down", "-t", "0"]);
        down_times.push(t.elapsed());
        assert_eq!(
            env.containers().len(),
            1,
            "cycle {cycle}: down left containers"
        );
    }
    let total = started.elapsed();
    let avg = |v: &[Duration]| v.iter().sum::<Duration>() / v.len() as u32;
    eprintln!(
        "leak test: {cycles} cycles in {total:?}; up -d avg {:?}, down avg {:?}",
        avg(&up_times),
        avg(&down_times)
    );
    let every = |v: &[(u64, usize)]| -> Vec<(usize, u64, usize)> {
        let step = (v.len() / 10).max(1);
        v.iter()
            .enumerate()
            .filter(|(i, _)| i % step == 0 || *i == v.len() - 1)
            .map(|(i, s)| (i, s.0, s.1))
            .collect()
    };
    eprintln!(
        "  monitors (cycle, avg RSS KiB, median fds): {:?}",
        every(&monitor_samples)
    );
    eprintln!(
        "  DNS server (cycle, RSS KiB, fds): {:?}",
        every(&dns_samples)
    );

    env.ok(&["-f", &keep_file, "down", "-t", "0"]);
    all_ids.insert(keep_id);
    let left = env.leftovers(&all_ids);
    assert!(
        left.is_empty(),
        "left behind after {cycles} cycles: {left:#?}"
    );

    // Growth: the later half of the cycles against the earlier half (the
    // first cycle, which warms caches, left out). A leak grows with the
    // cycles; the noise of one sample (a transient fd) is in both halves.
    let half = cycles / 2;
    let early = |v: &[(u64, usize)]| {
        (
            v[1..half].iter().map(|s| s.0).max().unwrap(),
            v[1..half].iter().map(|s| s.1).max().unwrap(),
        )
    };
    let late = |v: &[(u64, usize)]| {
        (
            v[half..].iter().map(|s| s.0).max().unwrap(),
            v[half..].iter().map(|s| s.1).max().unwrap(),
        )
    };
    let ((dns_rss0, dns_fds0), (dns_rss1, dns_fds1)) = (early(&dns_samples), late(&dns_samples));
    assert!(
        dns_fds1 <= dns_fds0,
        "the DNS server's fds grew: {dns_fds0} -> {dns_fds1}"
    );
    assert!(
        dns_rss1 <= dns_rss0 + 512,
        "the DNS server's RSS grew: {dns_rss0} KiB -> {dns_rss1} KiB"
    );
    let ((m_rss0, m_fds0), (m_rss1, m_fds1)) = (early(&monitor_samples), late(&monitor_samples));
    assert!(
        m_fds1 <= m_fds0,
        "the monitors' fds grew: {m_fds0} -> {m_fds1}"
    );
    assert!(
        m_rss1 <= m_rss0 + 256,
        "monitors' RSS grew: {m_rss0} KiB -> {m_rss1} KiB"
    );
}
