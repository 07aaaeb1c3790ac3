//! End to end, the service features of issue 6 a user notices: secrets and
//! configs in the container with their owner and mode, anonymous volumes
//! kept across recreation and removed by `down -v`, `init: true` (zombies
//! reaped, signals forwarded, exit code kept), tmpfs size and mode,
//! `pull_policy` against a registry on loopback, a recreated dependency
//! restarting its `restart: true` dependents, and `depends_on` waits that
//! fail at once when a dependency dies. Needs root; run it in a network
//! namespace of its own (`unshare -n`), as every berth end-to-end test.

mod image_support;

mod e2e_support;

use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use e2e_support::Setup;

/// The shared env, with this file's own `container(service)`.
struct Env(e2e_support::Env);

impl Env {
    /// A project named after the test, with `bb:latest` imported: Debian's
    /// busybox-static, `VOLUME /vol` holding `/vol/seed`.
    fn new(tag: &str, compose: &str) -> Env {
        Env(Setup::new(format!("svc{tag}{}", std::process::id()))
            .compose(compose)
            .image_config(&["VOLUME /vol"])
            .seed(|rootfs| {
                std::fs::create_dir_all(rootfs.join("vol")).unwrap();
                std::fs::write(rootfs.join("vol/seed"), "from the image\n").unwrap();
            })
            .build())
    }

    fn write(&self, compose: &str) {
        self.write_compose(compose);
    }

    fn container(&self, service: &str) -> serde_json::Value {
        let ps = self.ps_json();
        self.0.container(&ps, service).clone()
    }

    /// The volume directories under `$BERTH_ROOT/volumes`.
    fn volumes(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.root.join("volumes"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The container's init pid, from the monitor's state file.
    fn init_pid(&self, service: &str) -> i32 {
        let id = self.container(service)["ID"].as_str().unwrap().to_owned();
        let dir = std::fs::read_dir(self.root.join("containers"))
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with(&id))
            .expect("the container's directory");
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("state.json")).unwrap()).unwrap();
        state["pid"].as_i64().unwrap() as i32
    }

    /// Mounts naming this env's state: none may be left after `down`.
    fn leftover_mounts(&self) -> Vec<String> {
        self.mounts()
    }
}

impl Deref for Env {
    type Target = e2e_support::Env;

    fn deref(&self) -> &e2e_support::Env {
        &self.0
    }
}

impl DerefMut for Env {
    fn deref_mut(&mut self) -> &mut e2e_support::Env {
        &mut self.0
    }
}

/// The processes in the pid namespace of `pid`: (pid, state letter, parent
/// pid, command name), all as the host sees them.
fn namespace_processes(pid: i32) -> Vec<(i32, char, i32, String)> {
    let ns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).expect("the init's pid namespace");
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if std::fs::read_link(format!("/proc/{p}/ns/pid"))
            .ok()
            .as_ref()
            != Some(&ns)
        {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let comm = stat
            .split_once('(')
            .and_then(|(_, r)| r.rsplit_once(')'))
            .map_or("", |(c, _)| c)
            .to_owned();
        let rest: Vec<&str> = stat
            .rsplit_once(") ")
            .map_or(Vec::new(), |(_, r)| r.split_whitespace().collect());
        let state = rest.first().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = rest.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        out.push((p, state, ppid, comm));
    }
    out
}

/// Zombies whose parent is the namespace's PID 1 (`pid`): orphans PID 1
/// did not reap. (A shell's own children are briefly zombies until it
/// waits for them; those are not PID 1's.)
fn unreaped_orphans(pid: i32) -> Vec<(i32, char, i32, String)> {
    namespace_processes(pid)
        .into_iter()
        .filter(|p| p.1 == 'Z' && p.2 == pid)
        .collect()
}

#[test]
fn secrets_and_configs_are_files_with_their_owner_and_mode() {
    let env = Env::new(
        "sec",
        r#"
services:
  app:
    image: bb:latest
    network_mode: none
    stop_signal: SIGKILL
    secrets:
      - token
      - source: from_env
        target: env_secret
        uid: "65534"
        gid: "65534"
        mode: 0400
    configs:
      - inline
      - source: file_conf
        target: /etc/app/app.conf
        mode: 0640
    command:
      - sh
      - -c
      - |
        for f in /run/secrets/token /run/secrets/env_secret /inline /etc/app/app.conf; do
          echo "$$f $$(stat -c '%u:%g %a' $$f) $$(cat $$f)"
        done
        echo x > /run/secrets/token 2>/dev/null && echo WRITABLE || echo read-only
        echo done
        exec sleep 1000
secrets:
  token:
    file: ./token.txt
  from_env:
    environment: APP_SECRET
configs:
  inline:
    content: "inline content"
  file_conf:
    file: ./app.conf
"#,
    );
    std::fs::write(env.dir.join("token.txt"), "s3cret").unwrap();
    std::fs::write(env.dir.join("app.conf"), "key=value").unwrap();
    std::fs::write(env.dir.join(".env"), "APP_SECRET=from-the-environment\n").unwrap();
    env.ok(&["up", "-d"]);
    let log = env.log_with("app", "done");
    for want in [
        "/run/secrets/token 0:0 444 s3cret",
        "/run/secrets/env_secret 65534:65534 400 from-the-environment",
        "/inline 0:0 444 inline content",
        "/etc/app/app.conf 0:0 640 key=value",
        "read-only",
    ] {
        assert!(log.contains(want), "{want:?} not in:\n{log}");
    }
    // The host file is not what the container sees: its own copy is.
    assert_eq!(
        std::fs::read_to_string(env.dir.join("token.txt")).unwrap(),
        "s3cret"
    );
    env.ok(&["down", "-t", "0"]);
    assert!(
        env.leftover_mounts().is_empty(),
        "{:?}",
        env.leftover_mounts()
    );

    // A secret whose file is missing fails before anything is made.
    std::fs::remove_file(env.dir.join("token.txt")).unwrap();
    let out = env.berth(&["up", "-d"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("token.txt"), "{err}");
    assert!(env.ps_json().is_empty(), "nothing is made");
}

const ANON: &str = r#"
services:
  app:
    image: bb:latest
    network_mode: none
    stop_signal: SIGKILL
    environment: {GENERATION: "@GEN@"}
    volumes: ["/data"]
    command:
      - sh
      - -c
      - |
        echo "gen $$GENERATION data: $$(cat /data/mark 2>/dev/null) vol: $$(cat /vol/mark 2>/dev/null) seed: $$(cat /vol/seed)"
        echo "$$GENERATION" > /data/mark; echo "$$GENERATION" > /vol/mark
        exec sleep 1000
"#;

#[test]
fn anonymous_volumes_follow_recreation_and_go_with_down_v() {
    let env = Env::new("anon", &ANON.replace("@GEN@", "one"));
    env.ok(&["up", "-d"]);
    let log = env.log_with("app", "gen one");
    // `- /data` and the image's `VOLUME /vol` are fresh anonymous volumes;
    // /vol was filled from the image.
    assert!(
        log.contains("gen one data:  vol:  seed: from the image"),
        "{log}"
    );
    let first = env.volumes();
    assert_eq!(first.len(), 2, "two anonymous volumes: {first:?}");

    // A changed service: the new container takes over both volumes.
    env.write(&ANON.replace("@GEN@", "two"));
    let out = env.ok(&["up", "-d"]);
    let _ = out;
    let log = env.log_with("app", "gen two");
    assert!(log.contains("gen two data: one vol: one"), "{log}");
    assert_eq!(env.volumes(), first, "the same volumes");

    // `-V`: new ones; the old ones are gone with the old container.
    env.write(&ANON.replace("@GEN@", "three"));
    env.ok(&["up", "-d", "-V"]);
    let log = env.log_with("app", "gen three");
    assert!(
        log.contains("gen three data:  vol:  seed: from the image"),
        "{log}"
    );
    let renewed = env.volumes();
    assert_eq!(renewed.len(), 2, "{renewed:?}");
    assert!(renewed.iter().all(|v| !first.contains(v)), "{renewed:?}");

    // `down` keeps them; a new container gets new ones (as Docker's);
    // `down -v` removes the project's anonymous volumes, held or not.
    env.ok(&["down", "-t", "0"]);
    assert_eq!(env.volumes(), renewed);
    env.ok(&["up", "-d"]);
    env.log_with("app", "gen three");
    assert_eq!(env.volumes().len(), 4, "{:?}", env.volumes());
    env.ok(&["down", "-v", "-t", "0"]);
    assert!(env.volumes().is_empty(), "{:?}", env.volumes());
    assert!(
        env.leftover_mounts().is_empty(),
        "{:?}",
        env.leftover_mounts()
    );
}

#[test]
fn rm_v_removes_a_containers_anonymous_volumes() {
    let env = Env::new("rmv", &ANON.replace("@GEN@", "one"));
    env.ok(&["up", "-d"]);
    env.log_with("app", "gen one");
    assert_eq!(env.volumes().len(), 2);
    env.ok(&["stop", "-t", "0"]);
    env.ok(&["rm", "-f"]);
    assert_eq!(env.volumes().len(), 2, "rm without -v keeps them");
    env.ok(&["up", "-d"]);
    env.log_with("app", "gen one");
    env.ok(&["stop", "-t", "0"]);
    env.ok(&["rm", "-f", "-v"]);
    assert_eq!(env.volumes().len(), 2, "only the new container's went");
    env.ok(&["down", "-v"]);
}

#[test]
fn init_true_reaps_zombies_forwards_signals_and_keeps_the_exit_code() {
    // An orphan re-parented to PID 1 that then exits: the init reaps it;
    // without one, `sleep` as PID 1 never does.
    let env = Env::new(
        "init",
        r#"
services:
  with:
    image: bb:latest
    network_mode: none
    init: true
    command: ["sh", "-c", "sh -c 'sleep 0.2 &'; trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.1; done"]
  without:
    image: bb:latest
    network_mode: none
    stop_signal: SIGKILL
    command: ["sh", "-c", "sh -c 'sleep 0.2 &'; exec sleep 1000"]
"#,
    );
    env.ok(&["up", "-d"]);
    env.log_with("with", "ready");
    let with = env.init_pid("with");
    let without = env.init_pid("without");
    env.wait_for(
        "control: without an init the orphan stays a zombie",
        Duration::from_secs(10),
        || !unreaped_orphans(without).is_empty(),
    );
    // The orphan under the init (made before "ready") ends and is reaped:
    // then the service's shell is PID 1's only child.
    env.wait_for("the init to reap", Duration::from_secs(10), || {
        namespace_processes(with)
            .iter()
            .all(|p| p.2 != with || p.3 == "sh")
    });
    assert!(unreaped_orphans(with).is_empty());
    assert!(
        !unreaped_orphans(without).is_empty(),
        "the control's zombie stays: {:?}",
        namespace_processes(without)
    );
    // PID 1 is the init, the service its child.
    let procs = namespace_processes(with);
    assert!(
        procs.iter().any(|p| p.3 == "sh" && p.2 == with),
        "{procs:?}"
    );
    // `stop` sends SIGTERM to PID 1; it reaches the service, whose exit
    // code is the container's.
    env.ok(&["stop", "with"]);
    let log = env.log_with("with", "got TERM");
    assert!(log.contains("got TERM"), "{log}");
    let c = env.container("with");
    assert_eq!(c["ExitCode"], 7, "{c:#}");
    env.ok(&["down", "-t", "0"]);
    assert!(env.leftover_mounts().is_empty());
}

#[test]
fn tmpfs_size_and_mode() {
    let env = Env::new(
        "tmpfs",
        r#"
services:
  app:
    image: bb:latest
    network_mode: none
    stop_signal: SIGKILL
    tmpfs: ["/short:size=2m,mode=700"]
    volumes:
      - type: tmpfs
        target: /long
        tmpfs: {size: 1m, mode: 01777}
    command:
      - sh
      - -c
      - |
        for d in /short /long; do echo "$$d $$(stat -c %a $$d) $$(df -k $$d | tail -1 | awk '{print $$2}')"; done
        echo done
        exec sleep 1000
"#,
    );
    env.ok(&["up", "-d"]);
    let log = env.log_with("app", "done");
    assert!(log.contains("/short 700 2048"), "{log}");
    assert!(log.contains("/long 1777 1024"), "{log}");
}

#[test]
fn a_recreated_dependency_restarts_its_restart_true_dependents() {
    let stack = |marker: &str| {
        format!(
            r#"
services:
  dep:
    image: bb:latest
    network_mode: none
    stop_signal: SIGKILL
    command: ["sh", "-c", "echo dep {marker}; exec sleep 1000"]
  web:
    image: bb:latest
    network_mode: none
    stop_signal: SIGKILL
    depends_on:
      dep: {{condition: service_started, restart: true}}
    command: ["sh", "-c", "echo web started; exec sleep 1000"]
  other:
    image: bb:latest
    network_mode: none
    stop_signal: SIGKILL
    depends_on: [dep]
    command: ["sh", "-c", "echo other started; exec sleep 1000"]
"#
        )
    };
    let env = Env::new("rdep", &stack("one"));
    env.ok(&["up", "-d"]);
    env.log_with("web", "web started");
    env.write(&stack("two"));
    env.ok(&["up", "-d"]);
    env.log_with("dep", "dep two");
    env.wait_for("web restarted", Duration::from_secs(20), || {
        env.ok(&["logs", "web"]).matches("web started").count() >= 2
    });
    let web = env.ok(&["logs", "web"]);
    assert_eq!(web.matches("web started").count(), 2, "{web}");
    let other = env.ok(&["logs", "other"]);
    assert_eq!(other.matches("other started").count(), 1, "{other}");
    assert_eq!(env.container("web")["State"], "running");
    // `up -d dep` alone: web, outside this up, follows all the same.
    env.write(&stack("three"));
    env.ok(&["up", "-d", "dep"]);
    env.log_with("dep", "dep three");
    env.wait_for("web restarted again", Duration::from_secs(20), || {
        env.ok(&["logs", "web"]).matches("web started").count() >= 3
    });
    assert_eq!(env.container("web")["State"], "running");
}

#[test]
fn a_dependency_that_dies_fails_the_wait_and_one_that_recovers_does_not() {
    let env = Env::new(
        "wait",
        r#"
services:
  dies:
    image: bb:latest
    network_mode: none
    command: ["sh", "-c", "sleep 0.3; exit 3"]
    healthcheck:
      test: ["CMD", "false"]
      interval: 1h
      start_period: 1h
  web:
    image: bb:latest
    network_mode: none
    stop_signal: SIGKILL
    depends_on:
      dies: {condition: service_healthy}
    command: ["sleep", "1000"]
"#,
    );
    let start = Instant::now();
    let out = env.berth(&["up", "-d"]);
    let took = start.elapsed();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("dependency failed to start: container") && err.contains("exited (3)"),
        "{err}"
    );
    // Not the healthcheck's hour, nor the wait's ten minutes: the exit
    // itself ended the wait.
    assert!(took < Duration::from_secs(60), "took {took:?}");
    env.ok(&["down", "-t", "0"]);

    // A dependency whose restart policy brings it back healthy is waited
    // for: its first run fails, the second (a mark in its volume) passes.
    env.write(
        r#"
services:
  flaky:
    image: bb:latest
    network_mode: none
    stop_signal: SIGKILL
    restart: on-failure
    volumes: ["state:/state"]
    command: ["sh", "-c", "if [ -e /state/second ]; then touch /tmp/ok; exec sleep 1000; fi; touch /state/second; exit 1"]
    healthcheck:
      test: ["CMD", "test", "-e", "/tmp/ok"]
      interval: 200ms
      start_interval: 100ms
      start_period: 10s
  web:
    image: bb:latest
    network_mode: none
    stop_signal: SIGKILL
    depends_on:
      flaky: {condition: service_healthy}
    command: ["sh", "-c", "echo web up; exec sleep 1000"]
volumes:
  state: {}
"#,
    );
    env.ok(&["up", "-d", "--remove-orphans"]);
    env.log_with("web", "web up");
    let flaky = env.container("flaky");
    assert_eq!(flaky["Health"], "healthy", "{flaky:#}");
}

#[test]
fn pull_policy_pulls_from_a_registry_and_never_refuses_a_missing_image() {
    use image_support::*;
    need("docker-registry");
    need("skopeo");
    let reg = Registry::start(None);
    let host = reg.host();
    let mut env = Env::new(
        "pull",
        &format!(
            r#"
services:
  app:
    image: {host}/pulled/bb:1
    network_mode: none
    pull_policy: never
    stop_signal: SIGKILL
    command: ["sh", "-c", "echo pulled image runs; exec sleep 1000"]
"#
        ),
    );
    env.extra_env = vec![
        (
            "DOCKER_CONFIG".into(),
            env.tmp.join("docker").display().to_string(),
        ),
        (
            "BERTH_REGISTRIES_CONFIG".into(),
            env.tmp.join("none.json").display().to_string(),
        ),
    ];
    let layout = env.tmp.join("layout");
    oci_image(&layout, "t", &[(busybox_layer(), Compression::Gzip)]);
    skopeo_copy(
        &format!("oci:{}:t", layout.display()),
        &format!("docker://{host}/pulled/bb:1"),
    );
    // never: the store lacks it, so nothing is made.
    let out = env.berth(&["up", "-d"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pull_policy is \"never\""), "{err}");
    assert!(env.ps_json().is_empty());
    // --pull missing overrides the policy: pulled, then run.
    env.ok(&["up", "-d", "--pull", "missing"]);
    env.log_with("app", "pulled image runs");
    // Now present: never is satisfied from the store.
    env.ok(&["down", "-t", "0"]);
    drop(reg);
    env.ok(&["up", "-d"]);
    env.log_with("app", "pulled image runs");
    // always must reach the registry, which is gone.
    let out = env.berth(&["up", "-d", "--pull", "always"]);
    assert!(!out.status.success(), "always pulls");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pulling"), "{err}");
}

#[test]
fn volume_nocopy_and_subpath() {
    let env = Env::new(
        "vopt",
        r#"
services:
  maker:
    image: bb:latest
    network_mode: none
    volumes: ["data:/d"]
    command: ["sh", "-c", "mkdir -p /d/sub && echo in-sub > /d/sub/f"]
  app:
    image: bb:latest
    network_mode: none
    stop_signal: SIGKILL
    depends_on:
      maker: {condition: service_completed_successfully}
    volumes:
      - {type: volume, source: data, target: /s, volume: {subpath: sub}}
      - {type: volume, source: empty, target: /vol, volume: {nocopy: true}}
      - {type: volume, source: filled, target: /copy}
    command: ["sh", "-c", "echo \"sub: $(cat /s/f) nocopy: $(ls /vol | wc -l)\"; echo done; exec sleep 1000"]
  control:
    image: bb:latest
    network_mode: none
    stop_signal: SIGKILL
    volumes: ["filled:/vol"]
    command: ["sh", "-c", "echo \"copied: $(cat /vol/seed)\"; exec sleep 1000"]
volumes:
  data: {}
  empty: {}
  filled: {}
"#,
    );
    env.ok(&["up", "-d"]);
    let log = env.log_with("app", "done");
    assert!(log.contains("sub: in-sub nocopy: 0"), "{log}");
    // Without nocopy an empty named volume is filled from the image.
    env.log_with("control", "copied: from the image");
    env.ok(&["down", "-v", "-t", "0"]);
    assert!(env.volumes().is_empty(), "{:?}", env.volumes());
}

impl Env {
    /// The container directories under `$BERTH_ROOT/containers`: a hook's
    /// short-lived container must not be left among them.
    fn container_dirs(&self) -> usize {
        std::fs::read_dir(self.root.join("containers"))
            .map(|d| {
                d.flatten()
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .count()
            })
            .unwrap_or(0)
    }

    fn volume_file(&self, volume: &str, file: &str) -> String {
        let p = self
            .root
            .join("volumes")
            .join(format!("{}_{volume}", self.project))
            .join("_data")
            .join(file);
        std::fs::read_to_string(&p).unwrap_or_default()
    }

    fn ids(&self, service: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .ps_json()
            .iter()
            .filter(|c| c["Service"] == service)
            .map(|c| c["ID"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    }
}

const HOOKED: &str = r#"
services:
  app:
    image: bb:latest
    stop_signal: SIGKILL
    deploy: {replicas: 2}
    environment: {FROM_SVC: svc, GEN: "@GEN@"}
    volumes: ["data:/shared"]
    command: ["sh", "-c", "echo \"saw: $(cat /shared/log | tr '\\n' ' ')\"; exec sleep 1000"]
    pre_start:
      - command: ["sh", "-c", "echo \"A $$FROM_SVC $$FROM_HOOK $$GEN $(id -u)\" >> /shared/log; chmod 777 /shared; chmod 666 /shared/log"]
        environment: {FROM_HOOK: hook}
      - command: ["sh", "-c", "echo \"B $(id -u)\" >> /shared/log; @SECOND@"]
        user: "65534"
volumes:
  data: {}
"#;

#[test]
fn pre_start_hooks_run_in_order_once_per_service_before_its_containers_start() {
    let compose = |generation: &str, second: &str| {
        HOOKED
            .replace("@GEN@", generation)
            .replace("@SECOND@", second)
    };
    let env = Env::new("prestart", &compose("one", "true"));
    env.ok(&["up", "-d"]);
    // In order, in their own containers (the hook's environment over the
    // service's, its own user), once for both replicas, before either
    // started: each replica saw both lines.
    assert_eq!(
        env.volume_file("data", "log"),
        "A svc hook one 0\nB 65534\n"
    );
    let mut log = String::new();
    env.wait_for("both replicas' output", Duration::from_secs(20), || {
        log = env.ok(&["logs", "--no-log-prefix", "app"]);
        log.matches("saw:").count() == 2
    });
    assert_eq!(
        log.matches("saw: A svc hook one 0 B 65534").count(),
        2,
        "{log}"
    );
    assert_eq!(env.ids("app").len(), 2);
    assert_eq!(env.container_dirs(), 2, "no hook container left behind");

    // Nothing changed: no container starts, no hook runs.
    let before = env.ids("app");
    env.ok(&["up", "-d"]);
    assert_eq!(env.ids("app"), before);
    assert_eq!(
        env.volume_file("data", "log"),
        "A svc hook one 0\nB 65534\n"
    );

    // A replica added beside running ones starts without the hooks.
    env.ok(&["up", "-d", "--scale", "app=3"]);
    assert_eq!(env.ids("app").len(), 3);
    assert_eq!(
        env.volume_file("data", "log"),
        "A svc hook one 0\nB 65534\n"
    );

    // A changed service is recreated, and the hooks run again.
    env.write(&compose("two", "true"));
    env.ok(&["up", "-d"]);
    assert_eq!(
        env.volume_file("data", "log"),
        "A svc hook one 0\nB 65534\nA svc hook two 0\nB 65534\n"
    );
    let after = env.ids("app");
    assert!(after.iter().all(|id| !before.contains(id)), "recreated");

    // A failing hook fails the `up`, names itself, its exit code and its
    // output; the service's new containers are left created, not started.
    env.write(&compose("three", "echo oops >&2; exit 17"));
    let out = env.berth(&["up", "-d"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("service \"app\" pre_start[1] exited with code 17: oops"),
        "{err}"
    );
    let states: Vec<String> = env
        .ps_json()
        .iter()
        .map(|c| c["State"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(states, ["created", "created"], "{:#?}", env.ps_json());
    assert_eq!(
        env.container_dirs(),
        2,
        "the failed hook's container is gone"
    );

    env.ok(&["down", "-v", "-t", "0"]);
    assert_eq!(env.container_dirs(), 0);
    assert!(
        env.leftover_mounts().is_empty(),
        "{:?}",
        env.leftover_mounts()
    );
}

const SHARING: &str = r#"
services:
  db:
    image: bb:latest
    stop_signal: SIGKILL
    environment: {GEN: "@GEN@"}
    volumes: ["/var/data", "named:/named", "./conf:/conf:ro"]
    command: ["sh", "-c", "echo db > /var/data/f; echo n > /named/g; exec sleep 1000"]
  app:
    image: bb:latest
    stop_signal: SIGKILL
    volumes_from: [db]
    command: ["sh", "-c", "sleep 1; echo \"app: $(cat /var/data/f) $(cat /named/g) $(cat /conf/c)\"; echo w > /var/data/by-app && echo wrote; exec sleep 1000"]
  reader:
    image: bb:latest
    stop_signal: SIGKILL
    volumes_from: ["db:ro", "container:@PROJECT@-app-1"]
    depends_on: [app]
    command: ["sh", "-c", "sleep 1; echo \"reader: $(cat /var/data/f)\"; touch /var/data/x 2>/dev/null || echo read-only; exec sleep 1000"]
volumes:
  named: {}
"#;

#[test]
fn volumes_from_shares_the_donors_volumes_and_follows_the_donor() {
    let compose = |env: &Env, generation: &str| {
        SHARING
            .replace("@GEN@", generation)
            .replace("@PROJECT@", &env.project)
    };
    let env = Env::new("vfrom", "services: {}\n");
    std::fs::create_dir_all(env.dir.join("conf")).unwrap();
    std::fs::write(env.dir.join("conf/c"), "bound").unwrap();
    env.write(&compose(&env, "one"));
    env.ok(&["up", "-d"]);
    // The donor's anonymous and named volumes and its bind, writable where
    // the donor's are; `:ro` makes them all read-only.
    env.log_with("app", "wrote");
    assert!(env.log_with("app", "app:").contains("app: db n bound"));
    let reader = env.log_with("reader", "read-only");
    assert!(reader.contains("reader: db"), "{reader}");
    let db = env.container("db")["ID"].as_str().unwrap().to_owned();
    let app = env.container("app")["ID"].as_str().unwrap().to_owned();

    // `up --no-deps app` with the donor there: nothing to do.
    env.ok(&["up", "-d", "--no-deps", "app"]);
    assert_eq!(env.container("app")["ID"], app.as_str());

    // The donor recreated: the container sharing its volumes follows it.
    env.write(&compose(&env, "two"));
    env.ok(&["up", "-d", "db", "app"]);
    assert_ne!(env.container("db")["ID"], db.as_str());
    assert_ne!(env.container("app")["ID"], app.as_str());
    env.log_with("app", "wrote");

    // The donor gone: `up --no-deps` cannot make the container again, and
    // says so in Docker Compose's words.
    env.ok(&["rm", "-s", "-f", "db"]);
    let out = env.berth(&["up", "-d", "--no-deps", "app"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot share volume with service db: container missing"),
        "{err}"
    );
    env.ok(&["down", "-v", "-t", "0"]);
    assert!(env.volumes().is_empty(), "{:?}", env.volumes());
    assert!(
        env.leftover_mounts().is_empty(),
        "{:?}",
        env.leftover_mounts()
    );
}

#[test]
fn image_volumes_mount_an_image_read_only_at_its_subpath() {
    use image_support::{layer_tar, oci_image, Compression, E};
    let env = Env::new(
        "imgvol",
        r#"
services:
  app:
    image: bb:latest
    network_mode: none
    stop_signal: SIGKILL
    volumes:
      - {type: image, source: "content:2", target: /mnt/www, image: {subpath: srv/www/}}
      - {type: image, source: "bb:latest", target: /mnt/bb, image: {subpath: vol}}
      - {type: image, source: "content:2", target: /mnt/all}
    command: ["sh", "-c", "echo \"www: $(cat /mnt/www/index.html) $(cat /mnt/www/extra) bb: $(cat /mnt/bb/seed) all: $(ls /mnt/all/srv)\"; touch /mnt/www/x 2>/dev/null || echo read-only; exec sleep 1000"]
"#,
    );
    // A two-layer image (mounted as a read-only overlay), the second layer
    // adding a file and a symlink leading out of the image.
    let layout = env.tmp.join("content-layout");
    let base = layer_tar(&[
        E::Dir("srv", 0o755),
        E::Dir("srv/www", 0o755),
        E::File("srv/www/index.html", 0o644, b"v1"),
    ]);
    let top = layer_tar(&[
        E::Dir("srv", 0o755),
        E::Dir("srv/www", 0o755),
        E::File("srv/www/extra", 0o644, b"two"),
        E::Symlink("srv/out", "/etc"),
    ]);
    oci_image(
        &layout,
        "content:2",
        &[(base, Compression::None), (top, Compression::Gzip)],
    );
    let mut b = tar::Builder::new(Vec::new());
    b.append_dir_all(".", &layout).unwrap();
    let store = berth::image::Store::open(&env.root).unwrap();
    berth::image::archive::load(&store, &b.into_inner().unwrap()[..]).unwrap();

    env.ok(&["up", "-d"]);
    let log = env.log_with("app", "read-only");
    assert!(
        log.contains("www: v1 two bb: from the image all: out\nwww\n"),
        "{log}"
    );
    // An unchanged `up` leaves it be.
    let id = env.container("app")["ID"].as_str().unwrap().to_owned();
    env.ok(&["up", "-d"]);
    assert_eq!(env.container("app")["ID"], id.as_str());
    env.ok(&["down", "-t", "0"]);
    assert!(
        env.leftover_mounts().is_empty(),
        "the image mounts go with the container: {:?}",
        env.leftover_mounts()
    );

    // A subpath through a symlink out of the image, or one the image does
    // not have, is refused by name, and nothing is left mounted.
    for (sub, why) in [
        ("srv/out", "leads out of the image"),
        ("nope", "not found in image"),
    ] {
        env.write(&format!(
            "services:\n  app:\n    image: bb:latest\n    network_mode: none\n    volumes:\n      - {{type: image, source: \"content:2\", target: /m, image: {{subpath: {sub}}}}}\n"
        ));
        let out = env.berth(&["up", "-d"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(why), "{sub}: {err}");
        assert_eq!(env.container_dirs(), 0, "{sub}");
        assert!(env.leftover_mounts().is_empty(), "{sub}");
    }
}
