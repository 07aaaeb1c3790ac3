//! Acceptance of the runc-compatible command line by a real container
//! engine: Debian's Docker Engine (dockerd 20.10 with its own containerd and
//! containerd-shim-runc-v2) given `berth-runtime` as an extra runtime runs,
//! execs into and stops busybox containers, and every answer matches the
//! same command under runc.
//!
//! The test starts its own dockerd (own data root, exec root, pid file,
//! socket, cgroup parent; no bridge, no iptables) and removes everything it
//! made when it ends, also on failure: containers, the daemon and its
//! containerd, mounts under its directory, its cgroups. Root required.
//! Run: `cargo test --release -p berth --test runtime_docker`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(cmd))
        .find(|p| p.is_file())
}

fn require(cmd: &str, package: &str) -> PathBuf {
    which(cmd).unwrap_or_else(|| {
        panic!("{cmd} is not installed: this test needs it (apt-get install {package})")
    })
}

/// A dockerd of this test's own, torn down on drop.
struct Daemon {
    dir: tempfile::TempDir,
    sock: PathBuf,
    child: std::process::Child,
    cgroup_parent: String,
}

impl Daemon {
    fn start() -> Self {
        let euid_root = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .map(|l| l.split_whitespace().nth(2) == Some("0"))
            })
            .unwrap_or(false);
        assert!(euid_root, "this test starts dockerd: run it as root");
        let dockerd = require("dockerd", "docker.io");
        require("docker", "docker.io");
        require("containerd", "containerd");
        require("containerd-shim-runc-v2", "containerd");
        require("runc", "runc");

        // Short paths: unix socket names are limited to 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("bdk")
            .tempdir_in("/tmp")
            .unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let runtime = bin.join("berth-runtime");
        std::os::unix::fs::symlink(BERTH, &runtime).unwrap();
        let cgroup_parent = format!("berth-docker-test-{}", std::process::id());
        let config = dir.path().join("daemon.json");
        std::fs::write(
            &config,
            serde_json::json!({
                "runtimes": {"berth": {"path": runtime}},
                "exec-opts": ["native.cgroupdriver=cgroupfs"],
                "cgroup-parent": format!("/{cgroup_parent}"),
                "storage-driver": "vfs",
            })
            .to_string(),
        )
        .unwrap();
        let sock = dir.path().join("docker.sock");
        let log = std::fs::File::create(dir.path().join("dockerd.log")).unwrap();
        let child = Command::new(dockerd)
            .arg("--config-file")
            .arg(&config)
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting dockerd");
        let daemon = Daemon {
            dir,
            sock,
            child,
            cgroup_parent,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if daemon.docker(&["version"]).status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer within 60s; its log:\n{}",
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        daemon
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running docker")
    }

    /// `docker args…`, asserting success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {}: exit {:?}\nstdout: {}\nstderr: {}\ndockerd log tail:\n{}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(&self.log(), 30)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Pids of processes whose command line mentions `needle`.
fn pids_mentioning(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            out.push(pid);
        }
    }
    out
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Containers first (while the daemon can still do it properly).
        let ids = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        // SAFETY-free: signal our own child by its pid.
        let pid = self.child.id() as i32;
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Its containerd and shims, should any survive the daemon.
        let dir = self.dir.path().to_string_lossy().into_owned();
        for _ in 0..2 {
            for pid in pids_mentioning(&dir) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        // Mounts under our directory, deepest first.
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mounts: Vec<&str> = mountinfo
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4))
            .filter(|m| m.starts_with(&dir))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
        // Our cgroup parent in every v1 controller (and the v2 mount).
        for ctrl in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let parent = ctrl.path().join(&self.cgroup_parent);
            if let Ok(children) = std::fs::read_dir(&parent) {
                for c in children.flatten() {
                    if c.path().is_dir() {
                        let _ = std::fs::remove_dir(c.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(&parent);
        }
    }
}

/// `docker run --rm --runtime R bb:latest args…`: (exit code, stdout).
fn run(d: &Daemon, runtime: &str, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["run", "--rm", "--runtime", runtime, "bb:latest"];
    all.extend_from_slice(args);
    let out = d.docker(&all);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const PROBE: &str = "echo pid=$$; hostname | wc -c; id; \
    grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status; ls /dev | sort | tr '\\n' ' '; echo; \
    wc -c < /proc/timer_list; (echo x > /proc/sysrq-trigger) 2>/dev/null; echo sysrq=$?; \
    mount -t tmpfs none /mnt 2>/dev/null; echo mount=$?; cat /etc/hostname | wc -c; \
    echo to-stderr >&2; exit 7";

#[test]
fn docker_engine_drives_berth_runtime() {
    let d = Daemon::start();
    let info = d.ok(&["info", "--format", "{{json .Runtimes}}"]);
    assert!(info.contains("berth"), "docker info runtimes: {info}");

    // The image: a busybox rootfs imported as bb:latest.
    let rootfs = d.dir.path().join("rootfs");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/runtime/tests/busybox-rootfs.sh"
    );
    let st = Command::new("sh")
        .arg(script)
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(st.success(), "busybox-rootfs.sh failed");
    let tar = d.dir.path().join("rootfs.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success(), "tar of the rootfs failed");
    d.ok(&["import", tar.to_str().unwrap(), "bb:latest"]);

    // run --rm: output, stderr and exit code, as under runc.
    let ours = run(&d, "berth", &["sh", "-c", PROBE]);
    let theirs = run(&d, "runc", &["sh", "-c", PROBE]);
    assert_eq!(ours.0, 7, "exit code under berth; stderr: {}", ours.2);
    assert!(ours.1.starts_with("pid=1\n"), "{}", ours.1);
    assert!(ours.2.contains("to-stderr"), "stderr: {}", ours.2);
    assert_eq!(ours.1, theirs.1, "berth (left) and runc (right) disagree");
    assert_eq!(ours.0, theirs.0);

    // docker run -t: a pty through --console-socket, as under runc.
    let tty = |runtime: &str| {
        let out = d.docker(&[
            "run",
            "--rm",
            "-t",
            "--runtime",
            runtime,
            "bb:latest",
            "sh",
            "-c",
            "tty; exit 4",
        ]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let ours = tty("berth");
    assert_eq!(
        ours,
        (Some(4), "/dev/pts/0\r\n".to_string()),
        "run -t under berth"
    );
    assert_eq!(
        ours,
        tty("runc"),
        "run -t: berth (left) and runc (right) disagree"
    );

    // A missing command: Docker's 127 and a message naming it.
    let (code, _, err) = run(&d, "berth", &["no-such-cmd"]);
    assert_eq!(code, 127, "stderr: {err}");
    assert!(err.contains("no-such-cmd"), "{err}");

    // A detached container: exec into it, stop it.
    let name = format!("bdt-{}", std::process::id());
    d.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--runtime",
        "berth",
        "bb:latest",
        "sleep",
        "1000",
    ]);
    let out = d.ok(&[
        "exec",
        &name,
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].trim(), "sleep 1000", "{out}");
    assert!(lines[1].parse::<i32>().unwrap() > 1, "{out}");
    let out = d.docker(&["exec", &name, "sh", "-c", "exit 5"]);
    assert_eq!(out.status.code(), Some(5), "exec exit code");
    let top = d.ok(&["top", &name]);
    assert!(top.contains("sleep 1000"), "docker top: {top}");
    d.ok(&["pause", &name]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", &name]).trim(),
        "paused"
    );
    d.ok(&["unpause", &name]);
    // docker update: containerd's shim runs `update --resources -`.
    d.ok(&["update", "--memory", "64m", "--memory-swap", "64m", &name]);
    let limit = d.ok(&[
        "exec",
        &name,
        "cat",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]);
    assert_eq!(limit.trim(), "67108864", "memory limit after docker update");
    // A terminal: the shim's console socket gets the pty master.
    let out = d.docker(&["exec", "-t", &name, "sh", "-c", "tty; exit 6"]);
    assert_eq!(out.status.code(), Some(6), "exec -t exit code");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "/dev/pts/0\r\n");
    let t = Instant::now();
    d.ok(&["stop", "-t", "2", &name]);
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "stop took {:?}",
        t.elapsed()
    );
    let state = d.ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        &name,
    ]);
    assert_eq!(
        state.trim(),
        "exited 137",
        "sleep ignores SIGTERM as pid 1: killed after 2s"
    );
    d.ok(&["rm", &name]);
    assert!(
        d.ok(&["ps", "-aq"]).trim().is_empty(),
        "containers left behind"
    );
}
