//! End to end, names: a project found by name alone (`-p NAME` with no
//! compose file in reach), images named by their ID, link aliases on a
//! project network (DNS) and on the default bridge (`/etc/hosts`), and a
//! service pinned to another platform. Needs root; every test runs berth in
//! a network namespace of its own (`tests/e2e_support`), as it makes
//! bridges, and its Drop guard takes the stack down even on failure.

mod e2e_support;

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use berth::image::{Reference, Store};
use e2e_support::Setup;

/// The shared e2e env, with a directory where no compose file is in reach
/// and the id of its image.
struct Env {
    env: e2e_support::Env,
    /// A directory with no compose file in it or above it.
    elsewhere: PathBuf,
    /// The image id (config digest hex) of `bb:latest`.
    image_id: String,
}

impl Deref for Env {
    type Target = e2e_support::Env;

    fn deref(&self) -> &e2e_support::Env {
        &self.env
    }
}

impl Env {
    /// Project `nm<tag><pid>` with `compose`, in which `@ID@` stands for the
    /// image id of `bb:latest`.
    fn new(tag: &str, compose: &str) -> Env {
        let env = Setup::new(format!("nm{tag}{}", std::process::id()))
            .netns()
            .build();
        let elsewhere = env.tmp.join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        for d in elsewhere.ancestors() {
            for f in [
                "compose.yaml",
                "compose.yml",
                "docker-compose.yaml",
                "docker-compose.yml",
            ] {
                assert!(
                    !d.join(f).exists(),
                    "precondition: no compose file above the temp dir ({} exists)",
                    d.join(f).display()
                );
            }
        }
        let store = Store::open(&env.root).unwrap();
        let desc = store
            .resolve(&Reference::parse("bb:latest").unwrap())
            .unwrap();
        let image_id = store.manifest(&desc).unwrap().config.digest[7..].to_owned();
        env.write_compose(&compose.replace("@ID@", &image_id));
        Env {
            env,
            elsewhere,
            image_id,
        }
    }

    fn ok_in(&self, cwd: &Path, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.ok_bytes_in(cwd, args)).into_owned()
    }

    /// `berth -p NAME ps -a --format json` from the directory without a
    /// compose file: (service, state) pairs, sorted.
    fn ps_by_name(&self) -> Vec<(String, String)> {
        let out = self.ok_in(
            &self.elsewhere,
            &["-p", &self.project, "ps", "-a", "--format", "json"],
        );
        let mut rows: Vec<(String, String)> = out
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["Service"].as_str().unwrap().to_owned(),
                    v["State"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        rows.sort();
        rows
    }

    fn exec(&self, service: &str, cmd: &str) -> Output {
        self.berth(&["exec", "-T", service, "sh", "-c", cmd])
    }

    /// Retries `cmd` in `service` until its output contains `want`.
    fn exec_until(&self, service: &str, cmd: &str, want: &str) -> String {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let o = self.exec(service, cmd);
            let got = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            if got.contains(want) || Instant::now() > end {
                return got;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Network state files (`$BERTH_ROOT/networks`) whose name contains `s`.
    fn network_files(&self, s: &str) -> Vec<String> {
        std::fs::read_dir(self.root.join("networks"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.contains(s))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// `ps`, `stop`, `start`, `logs` and `down` with `-p NAME` where no compose
/// file is in reach work from the containers' records and labels, as
/// docker compose's do; without a name they fail for want of a file.
#[test]
fn a_project_is_found_by_name_without_its_compose_file() {
    let env = Env::new(
        "p",
        r#"
services:
  a:
    image: bb:latest
    command: ["sh", "-c", "echo a is up; exec sleep 1000"]
    stop_signal: SIGKILL
  b:
    image: bb:latest
    depends_on: [a]
    command: ["sh", "-c", "exec sleep 1000"]
    stop_signal: SIGKILL
"#,
    );
    env.ok(&["up", "-d"]);
    let p = env.project.as_str();
    let running = vec![
        ("a".to_owned(), "running".to_owned()),
        ("b".to_owned(), "running".to_owned()),
    ];
    assert_eq!(env.ps_by_name(), running);
    assert!(
        !env.network_files(p).is_empty(),
        "the project network exists"
    );

    // No name and no file: an error, not an empty project.
    let out = env.berth_in(&env.elsewhere, &["ps"]);
    assert!(!out.status.success(), "ps without -p and without a file");

    let logs = env.ok_in(&env.elsewhere, &["-p", p, "logs", "a"]);
    assert!(logs.contains("a is up"), "{logs}");

    env.ok_in(&env.elsewhere, &["-p", p, "stop", "-t", "0"]);
    assert_eq!(
        env.ps_by_name(),
        vec![
            ("a".to_owned(), "exited".to_owned()),
            ("b".to_owned(), "exited".to_owned()),
        ]
    );
    env.ok_in(&env.elsewhere, &["-p", p, "start"]);
    assert_eq!(env.ps_by_name(), running);

    env.ok_in(&env.elsewhere, &["-p", p, "down", "-t", "0"]);
    assert_eq!(env.ps_by_name(), vec![]);
    assert_eq!(
        env.network_files(p),
        Vec::<String>::new(),
        "down by name removes the project's network"
    );
}

/// A service's image named by its ID (64 hex, `sha256:`-prefixed, or a
/// unique short prefix) is the local image; an ID not in the store fails
/// and is never pulled.
#[test]
fn an_image_id_names_the_local_image() {
    let env = Env::new(
        "i",
        r#"
services:
  full:
    image: "@ID@"
    network_mode: none
    command: ["sleep", "1000"]
    stop_signal: SIGKILL
  prefixed:
    image: "sha256:@ID@"
    network_mode: none
    command: ["sleep", "1000"]
    stop_signal: SIGKILL
"#,
    );
    // A short prefix too.
    let short = format!(
        "services:\n  short:\n    image: \"{}\"\n    network_mode: none\n    command: [\"sleep\", \"1000\"]\n    stop_signal: SIGKILL\n",
        &env.image_id[..12]
    );
    std::fs::write(env.dir.join("compose.override.yaml"), short).unwrap();
    env.ok(&["up", "-d"]);
    assert_eq!(
        env.ps_by_name(),
        vec![
            ("full".to_owned(), "running".to_owned()),
            ("prefixed".to_owned(), "running".to_owned()),
            ("short".to_owned(), "running".to_owned()),
        ]
    );
    env.ok(&["down", "-t", "0"]);

    // An ID that is not here.
    let missing = "0123456789abcdef".repeat(4);
    assert_ne!(missing, env.image_id);
    std::fs::write(
        env.dir.join("missing.yaml"),
        format!(
            "name: {}\nservices:\n  gone:\n    image: \"{missing}\"\n    network_mode: none\n",
            env.project
        ),
    )
    .unwrap();
    let out = env.berth(&["-f", "missing.yaml", "up", "-d"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "up with a missing image ID");
    assert!(err.contains("never pulled"), "{err}");
    assert!(!err.contains("library/"), "taken for a name: {err}");
}

/// `links: [web:backend]` on a project network: `backend` resolves for the
/// linking container only (berth's DNS server, as Docker's links on a
/// user-defined network).
#[test]
fn a_link_alias_resolves_for_the_linking_service_only() {
    let env = Env::new(
        "l",
        r#"
services:
  web:
    image: bb:latest
    command: ["sh", "-c", "mkdir -p /www && echo hello from web > /www/index.html && exec httpd -f -p 80 -h /www"]
    stop_signal: SIGKILL
  client:
    image: bb:latest
    links: ["web:backend"]
    command: ["sleep", "1000"]
    stop_signal: SIGKILL
  other:
    image: bb:latest
    depends_on: [web]
    command: ["sleep", "1000"]
    stop_signal: SIGKILL
"#,
    );
    env.ok(&["up", "-d"]);
    let got = env.exec_until(
        "client",
        "timeout 5 wget -q -O - http://backend/",
        "hello from web",
    );
    assert!(got.contains("hello from web"), "client -> backend: {got}");
    // The service name still resolves for everyone; the alias does not.
    let got = env.exec_until(
        "other",
        "timeout 5 wget -q -O - http://web/",
        "hello from web",
    );
    assert!(got.contains("hello from web"), "other -> web: {got}");
    let o = env.exec("other", "timeout 5 wget -q -O - http://backend/");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("bad address"),
        "backend must not resolve for a container without the link: {err}"
    );
    env.ok(&["down", "-t", "0"]);
}

/// `network_mode: bridge`: the containers share the default bridge, with no
/// DNS names; `links` go into `/etc/hosts` (alias, `service-N`, container
/// name) as Docker writes them; the default bridge goes with its last
/// container.
#[test]
fn links_on_the_default_bridge_go_into_etc_hosts() {
    let env = Env::new(
        "b",
        r#"
services:
  container1:
    image: bb:latest
    network_mode: bridge
    command: ["sh", "-c", "mkdir -p /www && echo hello from c1 > /www/index.html && exec httpd -f -p 80 -h /www"]
    stop_signal: SIGKILL
  container2:
    image: bb:latest
    network_mode: bridge
    links: ["container1", "container1:web"]
    command: ["sleep", "1000"]
    stop_signal: SIGKILL
"#,
    );
    env.ok(&["up", "-d"]);
    assert_eq!(env.network_files("bridge").len(), 1, "the default bridge");
    let hosts =
        String::from_utf8_lossy(&env.exec("container2", "cat /etc/hosts").stdout).into_owned();
    let c1 = format!("{}-container1-1", env.project);
    let line = hosts
        .lines()
        .find(|l| l.split_whitespace().any(|w| w == "web"))
        .unwrap_or_else(|| panic!("no link line in /etc/hosts:\n{hosts}"));
    for name in ["web", "container1-1", c1.as_str()] {
        assert!(
            line.split_whitespace().any(|w| w == name),
            "{name} in {line:?}"
        );
    }
    assert!(
        hosts
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some("container1")),
        "container1 in /etc/hosts:\n{hosts}"
    );
    for url in ["http://container1/", "http://web/"] {
        let got = env.exec_until(
            "container2",
            &format!("timeout 5 wget -q -O - {url}"),
            "hello from c1",
        );
        assert!(got.contains("hello from c1"), "{url}: {got}");
    }
    // No link the other way: container1 has no name for container2.
    let hosts1 =
        String::from_utf8_lossy(&env.exec("container1", "cat /etc/hosts").stdout).into_owned();
    assert!(!hosts1.contains("container2"), "{hosts1}");
    env.ok(&["down", "-t", "0"]);
    assert_eq!(
        env.network_files("bridge"),
        Vec::<String>::new(),
        "the default bridge is removed with its last container"
    );
}

/// A service pinned to another platform than its local image's is refused
/// with Docker's words, never run.
#[test]
fn a_service_pinned_to_another_platform_is_refused() {
    let other = if cfg!(target_arch = "x86_64") {
        "linux/arm64"
    } else {
        "linux/amd64"
    };
    let env = Env::new(
        "f",
        &format!(
            r#"
services:
  pinned:
    image: bb:latest
    platform: {other}
    pull_policy: never
    network_mode: none
    command: ["sleep", "1000"]
"#
        ),
    );
    let out = env.berth(&["up", "-d"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "up of a pinned service");
    assert!(
        err.contains(&format!(
            "was found but does not match the specified platform: wanted {other}"
        )),
        "{err}"
    );
    assert_eq!(env.ps_by_name(), vec![]);
}
