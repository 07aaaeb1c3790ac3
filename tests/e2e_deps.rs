//! End to end: how `up` and `run` treat dependencies and one-offs, as
//! Docker Compose does — a `service_healthy` dependency that exits, an
//! optional (`required: false`) dependency that fails, `up --no-deps` of a
//! service sharing a removed container's network namespace, two services
//! with one `container_name`, a detached `run` whose stdin stays open (and
//! `run --interactive=false`, whose stdin is empty), the
//! orphan warning of `run`, and foreground `up`'s exit lines. Needs root;
//! every container is `network_mode: none` (or shares one), so nothing
//! touches the host's network. Each test takes its stack down on drop.

mod e2e_support;

use std::ops::Deref;
use std::process::Output;
use std::time::{Duration, Instant};

use e2e_support::Setup;

/// The shared env; berth runs with stdin from /dev/null, and `ok` returns
/// stdout and stderr together.
struct Env(e2e_support::Env);

impl Env {
    fn new(tag: &str, compose: &str) -> Env {
        assert!(
            nix::unistd::geteuid().is_root(),
            "precondition: these tests run containers and need root"
        );
        Env(Setup::new(format!("deps{}{tag}", std::process::id()))
            .compose(compose)
            .build())
    }

    fn berth_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(args)
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }

    fn berth(&self, args: &[&str]) -> Output {
        self.berth_env(args, &[])
    }

    /// Runs berth, which must succeed; returns stdout and stderr together.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        both(&out)
    }

    /// `ps -a --format json`: (name, service, state) of each container.
    fn ps(&self) -> Vec<(String, String, String)> {
        self.ok(&["ps", "-a", "--format", "json"])
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["Name"].as_str().unwrap_or("").to_owned(),
                    v["Service"].as_str().unwrap_or("").to_owned(),
                    v["State"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }

    fn state_of(&self, name: &str) -> Option<String> {
        self.ps()
            .into_iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, s)| s)
    }
}

impl Deref for Env {
    type Target = e2e_support::Env;

    fn deref(&self) -> &e2e_support::Env {
        &self.0
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Whatever happened, take the stack (and its one-offs) down; the
        // shared guard follows.
        let _ = self.berth(&["down", "-v", "-t", "0", "--remove-orphans"]);
    }
}

/// The name `run -d` printed for a one-off of service `test`.
fn one_off_name(out: &str) -> String {
    out.lines()
        .find(|l| l.contains("-test-run-"))
        .unwrap_or_else(|| panic!("no one-off name in {out:?}"))
        .trim()
        .to_owned()
}

fn both(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_healthy_dependency_that_exits_is_reported_as_exited() {
    let env = Env::new(
        "exit",
        r#"
services:
  web:
    image: bb:latest
    network_mode: none
    command: sleep 1000
    depends_on:
      db:
        condition: service_healthy
  db:
    image: bb:latest
    network_mode: none
    command: sh -c "exit 1"
"#,
    );
    let out = env.berth(&["up", "-d"]);
    let text = both(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let want = format!(
        "dependency failed to start: container {}-db-1 exited (1)",
        env.project
    );
    assert!(text.contains(&want), "{want:?} not in:\n{text}");
    assert!(!text.contains("no healthcheck"), "{text}");
    assert_eq!(
        env.state_of(&format!("{}-web-1", env.project)).as_deref(),
        Some("created")
    );
}

#[test]
fn a_running_dependency_without_healthcheck_still_fails_service_healthy() {
    let env = Env::new(
        "nohc",
        r#"
services:
  web:
    image: bb:latest
    network_mode: none
    command: sleep 1000
    depends_on:
      db:
        condition: service_healthy
  db:
    image: bb:latest
    network_mode: none
    command: sleep 1000
    stop_signal: SIGKILL
"#,
    );
    let out = env.berth(&["up", "-d"]);
    let text = both(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let want = format!(
        "dependency failed to start: container {}-db-1 has no healthcheck configured",
        env.project
    );
    assert!(text.contains(&want), "{want:?} not in:\n{text}");
}

#[test]
fn an_optional_dependency_that_fails_only_warns() {
    let env = Env::new(
        "opt",
        r#"
services:
  foo:
    image: bb:latest
    network_mode: none
    command: sleep 1000
    stop_signal: SIGKILL
    depends_on:
      bar:
        required: false
        condition: service_healthy
      done:
        required: false
        condition: service_completed_successfully
  bar:
    image: bb:latest
    network_mode: none
    command: sleep 1000
    stop_signal: SIGKILL
  done:
    image: bb:latest
    network_mode: none
    command: sh -c "exit 4"
"#,
    );
    let text = env.ok(&["up", "-d"]);
    assert!(
        text.contains(r#"optional dependency "bar" failed to start"#),
        "{text}"
    );
    assert!(
        text.contains(r#"optional dependency "done" didn't complete successfully: exit 4"#),
        "{text}"
    );
    assert_eq!(
        env.state_of(&format!("{}-foo-1", env.project)).as_deref(),
        Some("running")
    );
}

#[test]
fn no_deps_needs_the_container_whose_network_namespace_it_shares() {
    let env = Env::new(
        "nsm",
        r#"
services:
  app:
    image: bb:latest
    command: sleep 1000
    stop_signal: SIGKILL
    network_mode: service:db
  db:
    image: bb:latest
    network_mode: none
    command: sleep 1000
    stop_signal: SIGKILL
"#,
    );
    env.ok(&["up", "-d"]);
    let ids = |env: &Env| env.ok(&["ps", "-a", "-q"]);
    let before = ids(&env);
    env.ok(&["up", "--no-deps", "-d", "app"]);
    assert_eq!(ids(&env), before, "nothing is recreated");
    env.ok(&["rm", "-f", "-s", "db"]);
    let out = env.berth(&["up", "--no-deps", "-d", "app"]);
    let text = both(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("cannot share network namespace with service db: container missing"),
        "{text}"
    );
}

#[test]
fn one_container_name_for_two_services_fails_only_the_up_of_both() {
    let env = Env::new(
        "name",
        r#"
services:
  test:
    image: bb:latest
    network_mode: none
    container_name: ${FIXED}
    command: /bin/true
  another_test:
    image: bb:latest
    network_mode: none
    container_name: ${FIXED}
    command: /bin/true
"#,
    );
    let fixed = format!("{}-fixed", env.project);
    std::fs::write(env.dir.join(".env"), format!("FIXED={fixed}\n")).unwrap();
    let out = env.berth(&["up", "-d"]);
    let text = both(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("container name \"{fixed}\" is already in use")),
        "{text}"
    );
    assert!(env.ps().is_empty(), "a refused up makes nothing");
    // As compose, `config` refuses the file too (it checks the names
    // unless `--no-consistency`), but `down` and `up` of one service work.
    assert!(!env.berth(&["config"]).status.success());
    for args in [&["down"][..], &["up", "test"], &["down"]] {
        let out = env.berth(args);
        assert!(out.status.success(), "berth {args:?}: {}", both(&out));
    }
    let out = env.berth(&["up", "another_test"]);
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(env.state_of(&fixed).as_deref(), Some("exited"));
}

/// One service that idles, for one-offs of `test`.
const ONE_OFF_STACK: &str = r#"
services:
  test:
    image: bb:latest
    network_mode: none
    command: tail -f /dev/null
"#;

#[test]
fn a_detached_one_off_keeps_an_open_stdin() {
    let env = Env::new("cat", ONE_OFF_STACK);
    let name = env.ok(&["run", "-d", "test", "cat"]);
    let name = one_off_name(&name);
    // `cat` on a closed stdin would be gone well within this.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(env.state_of(&name).as_deref(), Some("running"));
    let ps = env.ok(&["exec", "-T", "test", "ps"]);
    assert!(ps.contains("cat"), "{ps}");
    // Stopped, it goes as any container does.
    let start = Instant::now();
    env.ok(&["down", "-t", "1", "--remove-orphans"]);
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(env.ps().is_empty(), "{:?}", env.ps());
}

/// `run -i/--interactive` (compose's default true): attached, the one-off
/// reads our stdin; with `--interactive=false` its stdin is empty, attached
/// or detached (a detached `cat` ends at once instead of waiting).
#[test]
fn run_interactive_false_gives_the_one_off_an_empty_stdin() {
    let env = Env::new("stdin", ONE_OFF_STACK);
    // Attached, with text on our stdin.
    let fed = |args: &[&str]| -> Output {
        use std::io::Write;
        let mut child = env
            .command(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"typed in\n").unwrap();
        drop(stdin);
        e2e_support::wait_child(child, Duration::from_secs(30), &format!("berth {args:?}"))
    };
    for args in [
        &["run", "--rm", "-T", "test", "cat"][..],
        &["run", "--rm", "-T", "-i", "test", "cat"],
        &["run", "--rm", "-T", "--interactive=true", "test", "cat"],
    ] {
        let out = fed(args);
        assert!(out.status.success(), "{args:?}: {}", both(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "typed in\n",
            "{args:?}"
        );
    }
    for args in [
        &["run", "--rm", "-T", "--interactive=false", "test", "cat"][..],
        &["run", "--rm", "-T", "-i=false", "test", "cat"],
    ] {
        let out = fed(args);
        assert!(out.status.success(), "{args:?}: {}", both(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "", "{args:?}");
    }

    // Detached: `cat` meets the end of its empty stdin and exits 0.
    let name = env.ok(&["run", "-d", "--interactive=false", "test", "cat"]);
    let name = one_off_name(&name);
    env.wait_for("the one-off `cat` to exit", Duration::from_secs(10), || {
        env.state_of(&name).as_deref() == Some("exited")
    });
    let ps = env.ok(&["ps", "-a", "--format", "json"]);
    let row = ps
        .lines()
        .find(|l| l.contains(&name))
        .unwrap_or_else(|| panic!("{name} in {ps}"));
    let v: serde_json::Value = serde_json::from_str(row).unwrap();
    assert_eq!(v["ExitCode"], 0, "{row}");
    env.ok(&["down", "-t", "0", "--remove-orphans"]);
}

#[test]
fn run_warns_about_exited_one_offs_unless_told_not_to() {
    let env = Env::new(
        "orph",
        r#"
services:
  back:
    image: bb:latest
    network_mode: none
    command: echo "Hello there!!"
    depends_on: [db]
  db:
    image: bb:latest
    network_mode: none
    command: sleep 1000
    stop_signal: SIGKILL
"#,
    );
    let first = env.ok(&["run", "back"]);
    assert!(first.contains("Hello there!!"), "{first}");
    assert!(!first.contains("orphan"), "{first}");
    let second = env.ok(&["run", "back", "echo", "again"]);
    assert!(second.contains("Found orphan containers"), "{second}");
    assert!(
        second.contains(&format!("{}-back-run-", env.project)),
        "{second}"
    );
    let out = env.berth_env(
        &["run", "back", "echo", "quiet"],
        &[("COMPOSE_IGNORE_ORPHANS", "True")],
    );
    assert!(out.status.success());
    assert!(!both(&out).contains("orphan"), "{}", both(&out));
    // `up --remove-orphans` removes the exited one-offs.
    env.ok(&["up", "-d", "--remove-orphans"]);
    assert!(
        env.ps().iter().all(|(n, _, _)| !n.contains("-run-")),
        "{:?}",
        env.ps()
    );
}

#[test]
fn foreground_up_reports_each_exit_by_its_short_name() {
    let env = Env::new(
        "fg",
        r#"
services:
  running:
    image: bb:latest
    network_mode: none
    command: sleep 1000
    init: true
  exit:
    image: bb:latest
    network_mode: none
    command: /bin/true
    depends_on:
      running:
        condition: service_started
  fail:
    image: bb:latest
    network_mode: none
    command: sh -c "echo failing; exit 111"
    depends_on:
      exit:
        condition: service_completed_successfully
"#,
    );
    let out = env.berth(&["up", "--abort-on-container-failure", "-t", "1"]);
    let text = both(&out);
    assert_eq!(out.status.code(), Some(111), "{text}");
    assert!(
        text.contains("Attaching to exit-1, fail-1, running-1\n"),
        "{text}"
    );
    assert!(text.contains("exit-1 exited with code 0"), "{text}");
    assert!(text.contains("fail-1 exited with code 111"), "{text}");
    assert!(
        !text.contains(&format!("{}-fail-1 exited", env.project)),
        "{text}"
    );
    // The log prefix is the short name too, and the exit line comes after
    // the container's output.
    let log = text
        .find("| failing")
        .filter(|&i| text[..i].rsplit('\n').next().unwrap_or("").trim() == "fail-1")
        .unwrap_or_else(|| panic!("no `fail-1 … | failing` line in:\n{text}"));
    let exit = text.find("fail-1 exited with code 111").unwrap();
    assert!(log < exit, "{text}");
}
