//! Docker Compose's end-to-end scenarios with berth in place of `docker
//! compose` (`compose_tests::scenario`). Needs root (network namespaces,
//! containers), `nsenter`/`ip`/`tar`/`busybox` and Debian's `docker-registry`
//! (the images are also served from a loopback registry, Docker Hub's mirror
//! for berth, so the scenarios' pulls work offline).
//!
//! The images the scenarios name (`alpine`, `nginx`, `bash`, …) are made here
//! from Debian's busybox-static (`../shared/bench/busybox-rootfs.sh`) plus a
//! few files standing in for the real images' content: every busybox applet
//! also under `/usr/bin`, a `curl` that is `wget -O -` (the nginx image is
//! Debian-based and has curl), a `bash` that is busybox `sh`, nginx's welcome
//! page served by busybox `httpd` on port 80, an `nginx` whose `-t` (the
//! configuration test) succeeds and which otherwise serves that page,
//! `/hello` for `hello-world`.
//! Scenarios relying on more of a real image than that fail, and are listed.
//!
//! Every scenario that does not pass is listed in `scenario-differences.txt`
//! with its reason; the test fails if an unlisted one fails or a listed one
//! passes. `BERTH_UPDATE_KNOWN=1` rewrites the list from this run (keeping
//! the reasons already written). `BERTH_SCENARIOS=TestA,TestB` runs only
//! those (then the list is checked for them only); `BERTH_SCENARIO_JOBS=N`
//! sets the parallelism (default 4).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use compose_tests::scenario::{self, World};
use compose_tests::{berth_binary, fixtures, known_differences};

const BASE_ENV: &str = "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const CURL: &str = r#"#!/bin/sh
# curl for the test images: the last non-option argument is the URL,
# fetched with busybox wget to stdout.
url=
for a in "$@"; do case "$a" in -*) ;; *) url=$a ;; esac; done
exec wget -q -O - "$url"
"#;

const NGINX_INDEX: &str = "<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n</head>\n<body>\n<h1>Welcome to nginx!</h1>\n</body>\n</html>\n";

const NGINX: &str = r#"#!/bin/sh
# nginx for the test images: `-t` tests the configuration (there is none to
# get wrong); anything else serves the welcome page as the image's CMD does.
case "$1" in
-t) echo "nginx: configuration file /etc/nginx/nginx.conf test is successful" >&2; exit 0 ;;
esac
exec httpd -f -p 80 -h /usr/share/nginx/html
"#;

/// The busybox root filesystem, with the stand-ins above, as a tarball.
fn make_rootfs(tmp: &Path) -> PathBuf {
    let dir = tmp.join("rootfs");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/bench/busybox-rootfs.sh");
    let st = Command::new("sh")
        .arg(&script)
        .arg(&dir)
        .status()
        .unwrap_or_else(|e| panic!("precondition: sh {}: {e}", script.display()));
    assert!(st.success(), "{} failed", script.display());
    let w = |rel: &str, text: &str, mode: u32| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, text).expect("write");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    for d in ["usr/bin", "usr/sbin", "sbin", "usr/local/bin", "run", "mnt"] {
        std::fs::create_dir_all(dir.join(d)).expect("mkdir");
    }
    // As in alpine: /var/run is /run (secrets are looked for under both).
    std::os::unix::fs::symlink("/run", dir.join("var/run")).expect("symlink /var/run");
    for e in std::fs::read_dir(dir.join("bin")).expect("bin").flatten() {
        let name = e.file_name();
        if name != "busybox" {
            std::os::unix::fs::symlink("/bin/busybox", dir.join("usr/bin").join(&name))
                .expect("symlink");
        }
    }
    w("usr/bin/curl", CURL, 0o755);
    w("usr/sbin/nginx", NGINX, 0o755);
    w(
        "usr/local/bin/bash",
        "#!/bin/sh\nexec /bin/sh \"$@\"\n",
        0o755,
    );
    w(
        "hello",
        "#!/bin/sh\necho\necho 'Hello from Docker!'\n",
        0o755,
    );
    w("usr/share/nginx/html/index.html", NGINX_INDEX, 0o644);
    let tar = tmp.join("rootfs.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .expect("precondition: tar");
    assert!(st.success(), "tar of the rootfs failed");
    tar
}

fn images() -> Vec<(String, Vec<String>)> {
    let sh = |cmd: &str| vec![BASE_ENV.to_owned(), cmd.to_owned()];
    let mut v = Vec::new();
    for name in [
        "alpine",
        "alpine:3.12",
        "alpine:3.15",
        "alpine:3.19",
        "alpine:3.20",
        "alpine:3.22",
        "busybox",
    ] {
        v.push((name.to_owned(), sh(r#"CMD ["/bin/sh"]"#)));
    }
    v.push(("bash".into(), sh(r#"CMD ["bash"]"#)));
    v.push(("hello-world".into(), sh(r#"CMD ["/hello"]"#)));
    v.push(("alpine/curl".into(), sh(r#"CMD ["curl"]"#)));
    for name in ["nginx", "nginx:alpine"] {
        let mut c = sh(r#"CMD ["httpd", "-f", "-p", "80", "-h", "/usr/share/nginx/html"]"#);
        c.push("EXPOSE 80".into());
        c.push("STOPSIGNAL SIGQUIT".into());
        v.push((name.to_owned(), c));
    }
    // Stands in for fluent-bit's forward input (it only listens).
    v.push((
        "fluent/fluent-bit:3.1.7-debug".into(),
        sh(r#"CMD ["nc", "-ll", "-p", "24224", "-e", "cat"]"#),
    ));
    v
}

#[test]
fn docker_compose_scenarios() {
    assert!(
        nix_is_root(),
        "precondition: the scenarios need root (network namespaces, containers)"
    );
    for tool in ["nsenter", "ip", "tar", "busybox", "docker-registry"] {
        let ok = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(ok, "precondition: `{tool}` is missing");
    }
    let dir = fixtures().join("docker-compose");
    let mut all = scenario::load(&dir);
    assert_eq!(all.len(), 105, "scenarios.json should hold 105 scenarios");
    let only: Option<Vec<String>> = std::env::var("BERTH_SCENARIOS")
        .ok()
        .filter(|s| !s.is_empty())
        .map(|s| s.split(',').map(str::to_owned).collect());
    if let Some(only) = &only {
        all.retain(|s| only.contains(&s.test));
        assert!(!all.is_empty(), "BERTH_SCENARIOS selects nothing");
    }
    let jobs = std::env::var("BERTH_SCENARIO_JOBS")
        .ok()
        .and_then(|j| j.parse().ok())
        .unwrap_or(4);

    let tmp = tempfile::tempdir().expect("tempdir");
    let bin = berth_binary();
    let rootfs_tar = make_rootfs(tmp.path());
    let images = images();
    let registry = scenario::seed_registry(&bin, &rootfs_tar, &images, tmp.path())
        .unwrap_or_else(|e| panic!("{e}"));
    let world = World {
        bin,
        rootfs_tar,
        images,
        registry,
    };
    let begin = Instant::now();
    let outcomes = scenario::run_all(&world, &all, jobs);
    let took = begin.elapsed();

    let known_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenario-differences.txt");
    let known = known_differences(&known_path);
    for o in &outcomes {
        if let Some(f) = &o.failure {
            eprintln!("--- {}: {f}", o.test);
            for t in &o.transcript {
                eprintln!("{t}");
            }
        }
    }
    if std::env::var_os("BERTH_UPDATE_KNOWN").is_some() {
        let mut text = String::from(
            "# Docker Compose e2e scenarios (scenarios.json) that berth does not pass, and why.\n\
             # Test<TAB>reason. Kept true by tests/scenarios.rs.\n",
        );
        let mut listed: std::collections::BTreeMap<String, String> = known.clone();
        for o in &outcomes {
            match &o.failure {
                Some(f) => {
                    let reason = known.get(&o.test).cloned().unwrap_or_else(|| {
                        format!("UNEXPLAINED: {}", f.lines().next().unwrap_or_default())
                    });
                    listed.insert(o.test.clone(), reason);
                }
                None => {
                    listed.remove(&o.test);
                }
            }
        }
        for (t, r) in &listed {
            text.push_str(&format!("{t}\t{r}\n"));
        }
        std::fs::write(&known_path, text).expect("write scenario-differences.txt");
    }
    let mut problems = Vec::new();
    for o in &outcomes {
        match (&o.failure, known.get(&o.test)) {
            (Some(f), None) => problems.push(format!(
                "{}: fails and is not listed: {}",
                o.test,
                f.lines().next().unwrap_or_default()
            )),
            (None, Some(_)) => problems.push(format!("{}: listed but passes now", o.test)),
            _ => {}
        }
    }
    let passed = outcomes.iter().filter(|o| o.failure.is_none()).count();
    eprintln!(
        "scenarios: {passed}/{} pass in {:.0}s ({jobs} at a time); {} listed in scenario-differences.txt",
        outcomes.len(),
        took.as_secs_f64(),
        known.len()
    );
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}
