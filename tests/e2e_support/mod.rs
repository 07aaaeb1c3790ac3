//! Shared by the end-to-end tests: a compose project in throw-away state
//! dirs (`BERTH_ROOT`, `BERTH_RUN`) with Debian's busybox-static imported
//! as `bb:latest`, berth run against it (optionally inside a network
//! namespace of its own), polling, and the inventory of what the kernel and
//! the disk still hold of it after `down`.
//!
//! The Drop guard takes the stack down, ends every process this env
//! started that is still there and deletes its namespace, even when the
//! test failed. A missing tool is a failed precondition, never a pass.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use berth::image::import::import;
use berth::image::{Reference, Store};

static NEXT_NS: AtomicU32 = AtomicU32::new(0);

/// Writes more files into a rootfs before it is imported.
pub type Seed = Box<dyn FnOnce(&Path)>;

/// How an [`Env`] is made; [`Env::new`] is the common case.
pub struct Setup {
    project: String,
    compose: String,
    image_config: Vec<String>,
    seed: Option<Seed>,
    netns: bool,
    poll: Duration,
}

impl Setup {
    /// A project called `project` (the process id is appended by callers
    /// that run beside other test binaries).
    pub fn new(project: impl Into<String>) -> Setup {
        Setup {
            project: project.into(),
            compose: String::new(),
            image_config: vec!["CMD [\"sh\"]".into()],
            seed: None,
            netns: false,
            poll: Duration::from_millis(50),
        }
    }

    /// The compose file, without its `name:` line (the env writes that).
    pub fn compose(mut self, compose: &str) -> Setup {
        self.compose = compose.to_owned();
        self
    }

    /// More `--change` lines for the image (after `CMD ["sh"]`).
    pub fn image_config(mut self, lines: &[&str]) -> Setup {
        self.image_config
            .extend(lines.iter().map(|l| (*l).to_owned()));
        self
    }

    /// Writes more files into the busybox rootfs before it is imported.
    pub fn seed(mut self, f: impl FnOnce(&Path) + 'static) -> Setup {
        self.seed = Some(Box::new(f));
        self
    }

    /// Runs every berth command (and [`Env::in_ns`]) inside a network
    /// namespace of its own (`ip netns add`), deleted on drop.
    pub fn netns(mut self) -> Setup {
        self.netns = true;
        self
    }

    /// How often [`Env::wait_for`] looks again (50 ms unless set).
    pub fn poll(mut self, every: Duration) -> Setup {
        self.poll = every;
        self
    }

    pub fn build(self) -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().to_path_buf();
        let dir = base.join("proj");
        std::fs::create_dir_all(&dir).unwrap();
        let netns = self.netns.then(|| {
            let n = NEXT_NS.fetch_add(1, Ordering::SeqCst);
            let name = format!("berthe2e-{}-{n}", std::process::id());
            let st = Command::new("ip")
                .args(["netns", "add", &name])
                .status()
                .expect("precondition: iproute2 (ip netns add)");
            assert!(st.success(), "precondition: ip netns add {name} (root?)");
            name
        });
        let env = Env {
            _tmp: tmp,
            root: base.join("root"),
            run: base.join("run"),
            tmp: base,
            dir,
            project: self.project,
            extra_env: Vec::new(),
            netns,
            poll: self.poll,
        };
        if env.netns.is_some() {
            let up = env.in_ns(&["ip", "link", "set", "lo", "up"]);
            assert!(up.status.success(), "ip link set lo up in the namespace");
        }
        env.write_compose(&self.compose);
        let config: Vec<&str> = self.image_config.iter().map(String::as_str).collect();
        import_busybox(&env.root, &env.tmp.join("bb"), &config, self.seed);
        env
    }
}

/// Debian's busybox-static as a rootfs in `rootfs` (made by
/// `shared/bench/busybox-rootfs.sh`, then `seed`), imported into the store
/// at `root` as `bb:latest` with the `--change` lines `config`.
pub fn import_busybox(root: &Path, rootfs: &Path, config: &[&str], seed: Option<Seed>) {
    let st = Command::new("sh")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/bench/busybox-rootfs.sh"
        ))
        .arg(rootfs)
        .status()
        .expect("precondition: sh and ../shared/bench/busybox-rootfs.sh");
    assert!(st.success(), "precondition: busybox-rootfs.sh failed");
    if let Some(seed) = seed {
        seed(rootfs);
    }
    let tar = Command::new("tar")
        .arg("-C")
        .arg(rootfs)
        .args(["-cf", "-", "."])
        .output()
        .expect("precondition: tar");
    assert!(tar.status.success(), "tar of {}", rootfs.display());
    let store = Store::open(root).unwrap();
    let config: Vec<String> = config.iter().map(|l| (*l).to_owned()).collect();
    import(
        &store,
        &tar.stdout[..],
        &Reference::parse("bb:latest").unwrap(),
        &config,
    )
    .unwrap();
}

/// A project in its own state dirs; see the module doc.
pub struct Env {
    _tmp: tempfile::TempDir,
    /// The temporary directory holding everything below.
    pub tmp: PathBuf,
    pub root: PathBuf,
    pub run: PathBuf,
    /// The project directory (`compose.yaml`, the commands' cwd).
    pub dir: PathBuf,
    pub project: String,
    /// Set for every berth command.
    pub extra_env: Vec<(String, String)>,
    pub netns: Option<String>,
    poll: Duration,
}

impl Env {
    /// Project `e2e<pid>` with `compose`, in the host network namespace.
    pub fn new(compose: &str) -> Env {
        Setup::new(format!("e2e{}", std::process::id()))
            .compose(compose)
            .build()
    }

    pub fn write_compose(&self, compose: &str) {
        std::fs::write(
            self.dir.join("compose.yaml"),
            format!("name: {}\n{compose}", self.project),
        )
        .unwrap();
    }

    /// A host command, inside the env's network namespace if it has one.
    fn host(&self, program: &str) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}")).arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    /// Runs a host command in the env's network namespace.
    pub fn in_ns(&self, argv: &[&str]) -> Output {
        self.host(argv[0])
            .args(&argv[1..])
            .output()
            .expect("precondition: nsenter (util-linux)")
    }

    /// berth with `args`, in `dir`, against this env's state.
    pub fn command_in(&self, dir: &Path, args: &[&str]) -> Command {
        let mut c = self.host(env!("CARGO_BIN_EXE_berth"));
        c.args(args)
            .current_dir(dir)
            .env("BERTH_ROOT", &self.root)
            .env("BERTH_RUN", &self.run)
            // The caller's project settings must not reach the test's.
            .env_remove("COMPOSE_PROJECT_NAME")
            .env_remove("COMPOSE_FILE");
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c
    }

    pub fn command(&self, args: &[&str]) -> Command {
        self.command_in(&self.dir, args)
    }

    pub fn berth_in(&self, dir: &Path, args: &[&str]) -> Output {
        self.command_in(dir, args).output().unwrap()
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        self.berth_in(&self.dir, args)
    }

    /// berth in the background: stdout dropped, stderr piped.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// berth in `dir` that must succeed; its stdout.
    pub fn ok_bytes_in(&self, dir: &Path, args: &[&str]) -> Vec<u8> {
        let out = self.berth_in(dir, args);
        assert!(
            out.status.success(),
            "berth {args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// berth that must succeed; its stdout as text.
    pub fn ok(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.ok_bytes_in(&self.dir, args)).into_owned()
    }

    /// `ps -a --format json`, one value a container.
    pub fn ps_json(&self) -> Vec<serde_json::Value> {
        self.ok(&["ps", "-a", "--format", "json"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The container of `service` in a `ps_json` listing.
    pub fn container<'a>(
        &self,
        ps: &'a [serde_json::Value],
        service: &str,
    ) -> &'a serde_json::Value {
        ps.iter()
            .find(|c| c["Service"] == service)
            .unwrap_or_else(|| panic!("no {service} in {ps:#?}"))
    }

    /// Container records of this env (`container.json`): (name, id). A
    /// directory being made (`.new-<id>-<pid>`, its record maybe half
    /// written) is not a container yet.
    pub fn containers(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir(self.root.join("containers")) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with('.') {
                    continue;
                }
                if let Ok(text) = std::fs::read_to_string(e.path().join("container.json")) {
                    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                    out.push((
                        v["name"].as_str().unwrap().to_owned(),
                        v["id"].as_str().unwrap().to_owned(),
                    ));
                }
            }
        }
        out.sort();
        out
    }

    /// The id of the one container called `name`.
    pub fn id_of(&self, name: &str) -> String {
        let all = self.containers();
        let found: Vec<_> = all.iter().filter(|(n, _)| n == name).collect();
        assert_eq!(found.len(), 1, "{name} in {all:?}");
        found[0].1.clone()
    }

    /// The monitor's view of a container (`state.json`), Null if none.
    pub fn state(&self, id: &str) -> serde_json::Value {
        let p = self.root.join("containers").join(id).join("state.json");
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null),
            Err(_) => serde_json::Value::Null,
        }
    }

    /// Polls `f` until it holds; fails after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
        let end = Instant::now() + timeout;
        while !f() {
            assert!(Instant::now() < end, "timed out waiting for {what}");
            std::thread::sleep(self.poll);
        }
    }

    /// The service's log without prefixes.
    pub fn logs(&self, service: &str) -> String {
        self.ok(&["logs", "--no-log-prefix", service])
    }

    /// Waits until the service's log holds `text`; returns the log.
    pub fn log_with(&self, service: &str, text: &str) -> String {
        let mut log = String::new();
        self.wait_for(
            &format!("{text:?} in the log of {service}"),
            Duration::from_secs(20),
            || {
                log = self.logs(service);
                log.contains(text)
            },
        );
        log
    }

    /// A kill -9 of the env's DNS server; returns once it is gone.
    pub fn kill_dns(&self) {
        let dns = berth_network::dns::running(&self.run)
            .unwrap()
            .expect("a DNS server runs");
        nix::sys::signal::kill(dns, nix::sys::signal::Signal::SIGKILL).unwrap();
        self.wait_for("the DNS server to die", Duration::from_secs(5), || {
            berth_network::dns::running(&self.run).unwrap().is_none()
        });
    }

    /// Mounts naming this env's state.
    pub fn mounts(&self) -> Vec<String> {
        let root = self.root.display().to_string();
        let run = self.run.display().to_string();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&root) || l.contains(&run))
            .map(str::to_owned)
            .collect()
    }

    /// Processes this env started, but the test itself: berth's own
    /// (monitors, DNS server: their environment names our `BERTH_ROOT`) and
    /// the containers' (their cgroup or command line names one of `ids`).
    pub fn processes<'a>(&self, ids: impl IntoIterator<Item = &'a String>) -> Vec<(i32, String)> {
        let ids: Vec<&String> = ids.into_iter().collect();
        let marker = format!("BERTH_ROOT={}", self.root.display());
        let me = std::process::id() as i32;
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if pid == me {
                continue;
            }
            let environ = std::fs::read(e.path().join("environ")).unwrap_or_default();
            let ours = environ.split(|b| *b == 0).any(|kv| kv == marker.as_bytes());
            let cgroup = std::fs::read_to_string(e.path().join("cgroup")).unwrap_or_default();
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let named = ids
                .iter()
                .any(|id| cgroup.contains(id.as_str()) || cmd.contains(id.as_str()));
            if ours || named {
                out.push((pid, cmd));
            }
        }
        out
    }

    /// Everything the kernel or the disk still holds of this env and of
    /// the containers `ids`: mounts, processes (zombies aside), cgroups,
    /// state dirs, networks; in a namespace of its own also links and nft
    /// tables.
    pub fn leftovers<'a>(&self, ids: impl IntoIterator<Item = &'a String>) -> Vec<String> {
        let ids: BTreeSet<&String> = ids.into_iter().collect();
        let mut left: Vec<String> = self
            .mounts()
            .into_iter()
            .map(|l| format!("mount: {l}"))
            .collect();
        for (pid, cmd) in self.processes(ids.iter().copied()) {
            // A zombie that only waits for its reaper holds nothing, and a
            // child of the test is a berth command the test itself runs
            // (an `events` follower ending with the stack, say).
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let fields: Vec<&str> = stat
                .rsplit_once(") ")
                .map_or(Vec::new(), |(_, r)| r.split_whitespace().collect());
            let zombie = fields.first().is_some_and(|s| s.starts_with('Z'));
            let ppid: Option<u32> = fields.get(1).and_then(|p| p.parse().ok());
            if zombie || ppid == Some(std::process::id()) {
                continue;
            }
            left.push(format!("process {pid}: {cmd}"));
        }
        for ctl in [
            "memory", "pids", "cpu", "cpuacct", "freezer", "devices", "blkio",
        ] {
            // Below `berth/` unless a `cgroup_parent` put it elsewhere.
            let mut found = Vec::new();
            cgroups_named(&Path::new("/sys/fs/cgroup").join(ctl), 3, &ids, &mut found);
            left.extend(
                found
                    .into_iter()
                    .map(|p| format!("cgroup: {}", p.display())),
            );
        }
        for d in [self.root.join("containers"), self.run.join("containers")] {
            if let Ok(e) = std::fs::read_dir(&d) {
                for e in e.flatten() {
                    left.push(format!("state: {}", e.path().display()));
                }
            }
        }
        let paths = berth::engine::state::Paths {
            root: self.root.clone(),
            run: self.run.clone(),
        };
        for n in berth::engine::net::networks(&paths)
            .list()
            .unwrap_or_default()
        {
            left.push(format!("network: {}", n.name));
        }
        if self.netns.is_some() {
            // A removed container's veth pair dies with its network
            // namespace, in the kernel's cleanup worker, a few milliseconds
            // after berth returns: it is given 2 s to go, and reported if it
            // is still there then.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            let links = loop {
                let out = self.in_ns(&["ip", "-o", "link"]);
                let links: Vec<String> = String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter(|l| l.split(':').nth(1).unwrap_or("").trim() != "lo")
                    .map(str::to_owned)
                    .collect();
                if links.is_empty() || std::time::Instant::now() > deadline {
                    break links;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            };
            left.extend(links.into_iter().map(|l| format!("link: {l}")));
            let nft = self.in_ns(&["nft", "list", "tables"]);
            assert!(nft.status.success(), "precondition: nft list tables");
            for l in String::from_utf8_lossy(&nft.stdout).lines() {
                if l.contains("berth") {
                    left.push(format!("nft: {l}"));
                }
            }
        }
        left
    }
}

/// Directories at most `depth` levels below `dir` whose name holds one of
/// `ids`.
fn cgroups_named(dir: &Path, depth: u32, ids: &BTreeSet<&String>, out: &mut Vec<PathBuf>) {
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        if ids.iter().any(|id| name.contains(id.as_str())) {
            out.push(e.path());
        } else {
            cgroups_named(&e.path(), depth - 1, ids, out);
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Whatever happened, take the stack down, end what is left of ours
        // and remove the namespace.
        let _ = self.berth(&["down", "-v", "-t", "0"]);
        let ids: Vec<String> = self.containers().into_iter().map(|(_, id)| id).collect();
        for (pid, _) in self.processes(&ids) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if let Some(ns) = &self.netns {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Waits at most `t` for a child to exit; kills it (and fails) after.
pub fn wait_child(mut child: Child, t: Duration, what: &str) -> Output {
    let end = Instant::now() + t;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > end {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what} did not end within {t:?}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
