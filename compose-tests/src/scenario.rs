//! Docker Compose's end-to-end scenarios (`pkg/e2e`, transcribed into
//! `../shared/fixtures/docker-compose/scenarios.json`) run with berth in place
//! of `docker compose`.
//!
//! A scenario is a testdata directory and steps: a command (`ComposeCmd`,
//! `DockerCmd`, `probeVolume`) and checks on its output and on the project's
//! containers. This module reads them, runs each in a scratch copy of its
//! testdata with a fresh `BERTH_ROOT`/`BERTH_RUN` and its own network
//! namespace (every berth process is started through `nsenter --net`, so
//! berth's nft table and bridges never reach the host's), and reports the
//! first unmet expectation, as the Go framework (`scenario.go`, `checks.go`)
//! does. Whatever happens, the project is taken down
//! (`down -v --remove-orphans -t 0`), the deferred actions run, and then
//! anything berth left behind (processes, mounts) is removed and reported.
//!
//! `docker` commands have no daemon to talk to here; `Run::docker` maps the
//! ones berth can answer (images and `pull`, `ps`, `exec`/`rm`/`inspect` of a
//! compose container, `run --rm -v`) and reports the others as unsupported.
//! No registry on the internet is reachable: each scenario serves the test
//! images from a docker-registry on its own loopback, Docker Hub's mirror for
//! berth (`BERTH_REGISTRIES_CONFIG`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value as J;

/// The platform a "non-native" scenario asks for (the machines are amd64).
const NON_NATIVE_PLATFORM: &str = "linux/arm64";

/// The longest a step's command may run when the scenario sets no `within`:
/// a foreground `up` that never returns must not stall the suite.
const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(90);

/// One scenario of `scenarios.json`.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub test: String,
    pub intent: String,
    /// `testdata/<Test>/` under the fixtures.
    pub testdata: PathBuf,
    pub env: Vec<J>,
    pub steps: Vec<Step>,
    pub defer: Vec<Action>,
}

#[derive(Clone, Debug)]
pub struct Step {
    pub name: String,
    pub action: Action,
    pub checks: Vec<J>,
}

#[derive(Clone, Debug)]
pub struct Action {
    pub func: String,
    pub args: Vec<J>,
    pub with_env: Vec<J>,
    pub may_fail: bool,
    pub stdin: Option<String>,
    pub within: Option<Duration>,
}

fn duration_of(v: &J) -> Option<Duration> {
    v.get("duration_s")
        .and_then(J::as_f64)
        .map(Duration::from_secs_f64)
}

fn action_of(v: &J) -> Action {
    let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    Action {
        func: v["fn"].as_str().unwrap_or_default().to_owned(),
        args: list("args"),
        with_env: list("with_env"),
        may_fail: v["may_fail"].as_bool().unwrap_or(false),
        stdin: v["with_stdin"]
            .as_array()
            .map(|a| a.iter().filter_map(J::as_str).collect::<String>()),
        within: v["within"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(duration_of),
    }
}

/// Reads `scenarios.json` (its `scenarios` list) from the fixtures dir.
pub fn load(dir: &Path) -> Vec<Scenario> {
    let path = dir.join("scenarios.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let all: J = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    for s in all["scenarios"].as_array().expect("scenarios") {
        let td = s["testdata_dir"].as_str().unwrap_or_default();
        let td = td.trim_start_matches("pkg/e2e/").trim_end_matches('/');
        out.push(Scenario {
            test: s["test"].as_str().unwrap_or_default().to_owned(),
            intent: s["intent"].as_str().unwrap_or_default().to_owned(),
            testdata: dir.join(td),
            env: s["env"].as_array().cloned().unwrap_or_default(),
            steps: s["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|st| Step {
                    name: st["name"].as_str().unwrap_or_default().to_owned(),
                    action: action_of(&st["action"]),
                    checks: st["checks"].as_array().cloned().unwrap_or_default(),
                })
                .collect(),
            defer: s["defer"]
                .as_array()
                .into_iter()
                .flatten()
                .map(action_of)
                .collect(),
        });
    }
    out
}

/// The project name the Go framework derives from a test name:
/// `TestUpDryRunMissingImage` → `e2e-up-dry-run-missing-image`.
pub fn project_name_for(test: &str) -> String {
    let name = test.strip_prefix("Test").unwrap_or(test);
    let mut b = String::new();
    let mut prev: Option<char> = None;
    for (i, r) in name.chars().enumerate() {
        if r.is_uppercase() {
            if i > 0 && !prev.is_some_and(char::is_uppercase) {
                b.push('-');
            }
            b.extend(r.to_lowercase());
        } else if r.is_lowercase() || r.is_ascii_digit() {
            b.push(r);
        } else if r == '/' {
            b.push_str("--");
        } else {
            b.push('-');
        }
        prev = Some(r);
    }
    format!("e2e-{}", b.trim_matches('-'))
}

/// What a command did.
#[derive(Clone, Debug, Default)]
pub struct CmdResult {
    pub command: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// stdout and stderr interleaved as they were written.
    pub combined: String,
    pub timed_out: bool,
    pub took: Duration,
}

/// Runs `cmd` to completion or `timeout` (then kills it: its pid is ours),
/// capturing both streams and their interleaving.
fn run_captured(
    mut cmd: Command,
    stdin: Option<&str>,
    timeout: Duration,
    shown: String,
) -> CmdResult {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let begin = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return CmdResult {
                command: shown,
                code: -1,
                stderr: format!("cannot start: {e}"),
                combined: format!("cannot start: {e}"),
                ..CmdResult::default()
            }
        }
    };
    if let (Some(text), Some(mut w)) = (stdin, child.stdin.take()) {
        let text = text.to_owned();
        std::thread::spawn(move || {
            let _ = w.write_all(text.as_bytes());
        });
    }
    let combined = Arc::new(Mutex::new(Vec::new()));
    let pump = |mut r: Box<dyn Read + Send>, combined: Arc<Mutex<Vec<u8>>>| {
        std::thread::spawn(move || {
            let mut own = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                match r.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        own.extend_from_slice(&buf[..n]);
                        combined.lock().expect("lock").extend_from_slice(&buf[..n]);
                    }
                }
            }
            own
        })
    };
    let out = pump(
        Box::new(child.stdout.take().expect("stdout")),
        combined.clone(),
    );
    let err = pump(
        Box::new(child.stderr.take().expect("stderr")),
        combined.clone(),
    );
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if begin.elapsed() > timeout => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => break None,
        }
    };
    // A detached grandchild (a monitor) may hold the pipes open: read what
    // is there, but never wait for it forever.
    let join = |h: std::thread::JoinHandle<Vec<u8>>| -> Vec<u8> {
        let end = Instant::now() + Duration::from_secs(5);
        while !h.is_finished() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        if h.is_finished() {
            h.join().unwrap_or_default()
        } else {
            b"\n[harness: stream still held open by a child process]\n".to_vec()
        }
    };
    let stdout = String::from_utf8_lossy(&join(out)).into_owned();
    let stderr = String::from_utf8_lossy(&join(err)).into_owned();
    let combined = String::from_utf8_lossy(&combined.lock().expect("lock")).into_owned();
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .map(|s| s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)))
        .unwrap_or(-1);
    CmdResult {
        command: shown,
        code,
        stdout,
        stderr,
        combined,
        timed_out,
        took: begin.elapsed(),
    }
}

/// A container of the project as a snapshot sees it.
#[derive(Clone, Debug)]
struct Container {
    id: String,
    name: String,
    service: String,
    state: String,
    health: String,
    started_at: String,
    oneoff: bool,
    labels: BTreeMap<String, String>,
}

type Snapshot = Vec<Container>;

fn service_of<'a>(snap: &'a Snapshot, svc: &str) -> Vec<&'a Container> {
    snap.iter()
        .filter(|c| c.service == svc && !c.oneoff)
        .collect()
}
fn oneoffs_of<'a>(snap: &'a Snapshot, svc: &str) -> Vec<&'a Container> {
    snap.iter()
        .filter(|c| c.service == svc && c.oneoff)
        .collect()
}
fn ids(cs: &[&Container]) -> Vec<String> {
    let mut v: Vec<String> = cs.iter().map(|c| c.id.clone()).collect();
    v.sort();
    v
}

/// How a scenario ended.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub test: String,
    /// `None`: every step and check held.
    pub failure: Option<String>,
    pub took: Duration,
    /// The transcript: each step's command, exit code and time.
    pub transcript: Vec<String>,
}

/// What every scenario shares: the berth binary, the image tarball and the
/// images to make from it.
pub struct World {
    pub bin: PathBuf,
    /// A tar of the busybox root filesystem the images are made of.
    pub rootfs_tar: PathBuf,
    /// `(reference, changes)`: each image to import, with its config.
    pub images: Vec<(String, Vec<String>)>,
    /// A docker-registry storage holding the same images under Docker Hub's
    /// names (see [`seed_registry`]); each scenario serves it on its own
    /// loopback as berth's Docker Hub mirror, so pulls work offline.
    pub registry: PathBuf,
}

/// The port the per-scenario registry listens on (in the scenario's netns).
const REGISTRY_PORT: u16 = 5000;

/// Runs `berth <args>` in `netns` with `root`/`run` as its state.
fn berth_in(bin: &Path, netns: &str, root: &Path, args: &[String]) -> CmdResult {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{netns}"))
        .arg("--")
        .arg(bin)
        .args(args)
        .env("BERTH_ROOT", root.join("root"))
        .env("BERTH_RUN", root.join("run"));
    run_captured(
        cmd,
        None,
        Duration::from_secs(120),
        format!("berth {}", shell_words(args)),
    )
}

fn netns_add(name: &str) -> Result<(), Failed> {
    let ok = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .status()
            .map_err(|e| format!("harness: precondition `ip` (iproute2): {e}"))
            .and_then(|st| {
                st.success()
                    .then_some(())
                    .ok_or_else(|| format!("harness: ip {} failed", args.join(" ")))
            })
    };
    ok(&["netns", "add", name])?;
    ok(&["-n", name, "link", "set", "lo", "up"])
}

fn netns_del(name: &str) {
    let _ = Command::new("ip").args(["netns", "del", name]).status();
}

/// `docker-registry serve` on 127.0.0.1:5000 in `netns`, over `storage`;
/// returns once it answers. The child is ours to kill.
pub fn serve_registry(
    netns: &str,
    storage: &Path,
    dir: &Path,
) -> Result<std::process::Child, Failed> {
    let cfg = dir.join("registry.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{REGISTRY_PORT}\n",
            storage.display()
        ),
    )
    .map_err(|e| format!("harness: {e}"))?;
    let log =
        std::fs::File::create(dir.join("registry.log")).map_err(|e| format!("harness: {e}"))?;
    let mut child = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{netns}"))
        .args(["--", "docker-registry", "serve"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| format!("harness: {e}"))?)
        .stderr(log)
        .spawn()
        .map_err(|e| {
            format!("harness: precondition docker-registry (Debian's docker-registry): {e}")
        })?;
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let up = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{netns}"))
            .args(["--", "busybox", "wget", "-q", "-O", "/dev/null"])
            .arg(format!("http://127.0.0.1:{REGISTRY_PORT}/v2/"))
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if up {
            return Ok(child);
        }
        if Instant::now() > end || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default();
            return Err(format!(
                "harness: docker-registry did not come up: {}",
                short(log.trim(), 500)
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Fills a registry storage under `dir` with the world's images, named as
/// Docker Hub names them (`library/alpine:3.20`, `fluent/fluent-bit:…`):
/// imported into a scratch store, then pushed with `berth image push`.
pub fn seed_registry(
    bin: &Path,
    rootfs_tar: &Path,
    images: &[(String, Vec<String>)],
    dir: &Path,
) -> Result<PathBuf, Failed> {
    let storage = dir.join("registry");
    let state = dir.join("seed");
    std::fs::create_dir_all(&state).map_err(|e| format!("harness: {e}"))?;
    let netns = format!("berthsc-{}-seed", std::process::id());
    netns_add(&netns)?;
    let result = (|| {
        let mut reg = serve_registry(&netns, &storage, dir)?;
        let pushed = || -> Result<(), Failed> {
            for (name, changes) in images {
                let (repo, tag) = match name.rsplit_once(':') {
                    Some((r, t)) if !t.contains('/') => (r.to_owned(), t.to_owned()),
                    _ => (name.clone(), "latest".to_owned()),
                };
                let path = if repo.contains('/') {
                    repo.clone()
                } else {
                    format!("library/{repo}")
                };
                let target = format!("127.0.0.1:{REGISTRY_PORT}/{path}:{tag}");
                let mut import = vec!["image".to_owned(), "import".to_owned()];
                for c in changes {
                    import.push("-c".into());
                    import.push(c.clone());
                }
                import.push(rootfs_tar.display().to_string());
                import.push(target.clone());
                for args in [
                    import,
                    vec!["image".into(), "push".into(), "-q".into(), target.clone()],
                ] {
                    let r = berth_in(bin, &netns, &state, &args);
                    if r.code != 0 {
                        return Err(format!(
                            "harness: seeding the registry: {}: {}",
                            r.command,
                            r.combined.trim()
                        ));
                    }
                }
            }
            Ok(())
        };
        let r = pushed();
        let _ = reg.kill();
        let _ = reg.wait();
        r
    })();
    netns_del(&netns);
    let _ = std::fs::remove_dir_all(&state);
    result.map(|()| storage)
}

/// One running scenario: its scratch dirs, network namespace and state.
struct Run<'w> {
    world: &'w World,
    sc: &'w Scenario,
    _tmp: tempfile::TempDir,
    tmp: PathBuf,
    root: PathBuf,
    run: PathBuf,
    dir: PathBuf,
    home: PathBuf,
    netns: String,
    project: String,
    vars: BTreeMap<String, String>,
    env: Vec<(String, String)>,
    snaps: Vec<Snapshot>,
    transcript: Vec<String>,
    /// Set once `teardown` ran; a `Run` dropped before (a panic in the
    /// harness) still tears down.
    torn_down: bool,
    /// The scenario's registry (Docker Hub's mirror), while it runs.
    registry: Option<std::process::Child>,
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        if !self.torn_down {
            let _ = self.teardown();
        }
    }
}

/// A failure: the reason, and whether it happened in the harness's own
/// setup (then no step ran).
type Failed = String;

fn netns_name(project: &str) -> String {
    // ip netns names are file names; keep them short and ours.
    let mut h: u64 = 1469598103934665603;
    for b in project.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(1099511628211);
    }
    format!("berthsc-{}-{:08x}", std::process::id(), h as u32)
}

impl<'w> Run<'w> {
    fn new(world: &'w World, sc: &'w Scenario) -> Result<Run<'w>, Failed> {
        let tmp_dir = tempfile::Builder::new()
            .prefix("berth-scenario-")
            .tempdir()
            .map_err(|e| format!("harness: tempdir: {e}"))?;
        let tmp = std::fs::canonicalize(tmp_dir.path()).map_err(|e| format!("harness: {e}"))?;
        let project = project_name_for(&sc.test);
        let dir = tmp.join(&project);
        if !sc.testdata.join("compose.yaml").exists() {
            return Err(format!(
                "harness: testdata {} has no compose.yaml",
                sc.testdata.display()
            ));
        }
        crate::copy_dir(&sc.testdata, &dir);
        let mut vars = BTreeMap::new();
        vars.insert("project".to_owned(), project.clone());
        vars.insert("dir".to_owned(), dir.display().to_string());
        vars.insert(
            "non_native_platform".to_owned(),
            NON_NATIVE_PLATFORM.to_owned(),
        );
        // The `$var`s of the Go sources (commit_test.go, export_test.go,
        // volumes_test.go); `id` is computed once the images exist.
        let out_dir = tmp.join("out");
        std::fs::create_dir_all(&out_dir).map_err(|e| format!("harness: {e}"))?;
        vars.insert("image1".into(), format!("{project}:1"));
        vars.insert("image2".into(), format!("{project}:2"));
        vars.insert(
            "out".into(),
            out_dir.join("service.tar").display().to_string(),
        );
        vars.insert("r1".into(), out_dir.join("r1.tar").display().to_string());
        vars.insert("r2".into(), out_dir.join("r2.tar").display().to_string());
        vars.insert("vol1".into(), format!("{project}-ext-1"));
        vars.insert("vol2".into(), format!("{project}-ext-2"));
        vars.insert("s".into(), project.clone());
        let home = tmp.join("home");
        std::fs::create_dir_all(&home).map_err(|e| format!("harness: {e}"))?;
        let netns = netns_name(&project);
        Ok(Run {
            world,
            sc,
            _tmp: tmp_dir,
            root: tmp.join("root"),
            run: tmp.join("run"),
            tmp,
            dir,
            home,
            netns,
            project,
            vars,
            env: Vec::new(),
            snaps: vec![Vec::new()],
            transcript: Vec::new(),
            torn_down: false,
            registry: None,
        })
    }

    /// `{{project}}`, `{{dir}}`… replaced; `$var`s looked up; `$expr`s
    /// (`'NAME=' + var`) evaluated.
    fn value(&self, v: &J) -> Result<String, Failed> {
        match v {
            J::String(s) => {
                let mut s = s.clone();
                for (k, val) in &self.vars {
                    s = s.replace(&format!("{{{{{k}}}}}"), val);
                }
                Ok(s)
            }
            J::Number(n) => Ok(n.to_string()),
            J::Object(o) => {
                if let Some(name) = o.get("$var").and_then(J::as_str) {
                    return self
                        .vars
                        .get(name)
                        .cloned()
                        .ok_or_else(|| format!("harness: no value for $var {name}"));
                }
                if let Some(expr) = o.get("$expr").and_then(J::as_str) {
                    let (lit, var) = expr
                        .split_once('+')
                        .ok_or_else(|| format!("harness: cannot evaluate $expr {expr}"))?;
                    let lit = lit.trim().trim_matches('\'');
                    let var = var.trim();
                    let val = self
                        .vars
                        .get(var)
                        .ok_or_else(|| format!("harness: no value for {var} in $expr {expr}"))?;
                    return Ok(format!("{lit}{val}"));
                }
                Err(format!("harness: cannot read argument {v}"))
            }
            other => Err(format!("harness: cannot read argument {other}")),
        }
    }

    fn values(&self, vs: &[J]) -> Result<Vec<String>, Failed> {
        vs.iter().map(|v| self.value(v)).collect()
    }

    /// `berth <args>` in the scenario's netns, project dir and environment.
    fn berth_cmd(&self, args: &[String], extra_env: &[(String, String)], cwd: &Path) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.netns))
            .arg("--")
            .arg(&self.world.bin)
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("BERTH_ROOT", &self.root)
            .env("BERTH_RUN", &self.run)
            .env("TMPDIR", &self.tmp)
            .env("BERTH_REGISTRIES_CONFIG", self.tmp.join("registries.json"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(extra_env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    fn berth(
        &self,
        args: &[String],
        extra_env: &[(String, String)],
        stdin: Option<&str>,
        timeout: Duration,
    ) -> CmdResult {
        let shown = format!("berth {}", shell_words(args));
        run_captured(
            self.berth_cmd(args, extra_env, &self.dir),
            stdin,
            timeout,
            shown,
        )
    }

    /// `berth -f <dir>/compose.yaml -p <project> <args>`, as `ComposeCmd`.
    fn compose(
        &self,
        args: &[String],
        extra_env: &[(String, String)],
        stdin: Option<&str>,
        timeout: Duration,
    ) -> CmdResult {
        let mut full = vec![
            "-f".to_owned(),
            self.dir.join("compose.yaml").display().to_string(),
            "-p".to_owned(),
            self.project.clone(),
        ];
        full.extend(args.iter().cloned());
        self.berth(&full, extra_env, stdin, timeout)
    }

    fn setup(&mut self) -> Result<(), Failed> {
        netns_add(&self.netns)?;
        std::fs::write(
            self.tmp.join("registries.json"),
            format!("{{\"registry-mirrors\": {{\"docker.io\": [\"http://127.0.0.1:{REGISTRY_PORT}\"]}}}}\n"),
        )
        .map_err(|e| format!("harness: {e}"))?;
        self.registry = Some(serve_registry(
            &self.netns,
            &self.world.registry,
            &self.tmp,
        )?);
        for (name, changes) in &self.world.images {
            let mut args = vec!["image".to_owned(), "import".to_owned()];
            for c in changes {
                args.push("-c".into());
                args.push(c.clone());
            }
            args.push(self.world.rootfs_tar.display().to_string());
            args.push(name.clone());
            let r = self.berth(&args, &[], None, Duration::from_secs(60));
            if r.code != 0 {
                return Err(format!(
                    "harness: importing image {name} failed: {}",
                    r.combined.trim()
                ));
            }
        }
        // TestUpImageID: the bare ID of the alpine image.
        let r = self.berth(
            &["image".into(), "inspect".into(), "alpine".into()],
            &[],
            None,
            Duration::from_secs(30),
        );
        if let Ok(v) = serde_json::from_str::<J>(&r.stdout) {
            let id = v[0]["Id"].as_str().or(v["Id"].as_str()).unwrap_or_default();
            if let Some((_, hex)) = id.split_once(':') {
                self.vars.insert("id".into(), hex.to_owned());
            }
        }
        for e in &self.sc.env {
            let kv = self.value(e)?;
            let (k, v) = kv.split_once('=').unwrap_or((&kv, ""));
            self.env.push((k.to_owned(), v.to_owned()));
        }
        Ok(())
    }

    /// The project's containers, from `berth ps -a --format json` (run
    /// outside the project dir, by name only, as `docker ps --filter` does),
    /// the start time from the monitor's `state.json` (berth has no
    /// `inspect`). Helpers (neither numbered nor one-off) are left out.
    fn snapshot(&self) -> Result<Snapshot, Failed> {
        let args: Vec<String> = ["-p", &self.project, "ps", "-a", "--format", "json"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let r = run_captured(
            self.berth_cmd(&args, &[], &self.tmp),
            None,
            Duration::from_secs(30),
            "berth ps".into(),
        );
        if r.code != 0 {
            return Err(format!(
                "`berth -p {} ps -a --format json` failed ({}): {}",
                self.project,
                r.code,
                r.stderr.trim()
            ));
        }
        let text = r.stdout.trim();
        let rows: Vec<J> = if text.starts_with('[') {
            serde_json::from_str(text).map_err(|e| format!("ps --format json: {e}"))?
        } else {
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(serde_json::from_str)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("ps --format json: {e}: {text}"))?
        };
        let mut snap = Vec::new();
        for row in rows {
            let labels: BTreeMap<String, String> = row["Labels"]
                .as_str()
                .unwrap_or_default()
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            let oneoff =
                labels.get("com.docker.compose.oneoff").map(String::as_str) == Some("True");
            if !oneoff
                && labels
                    .get("com.docker.compose.container-number")
                    .is_none_or(String::is_empty)
            {
                continue;
            }
            let id = row["ID"].as_str().unwrap_or_default().to_owned();
            let state_json: J =
                std::fs::read(self.root.join("containers").join(&id).join("state.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or(J::Null);
            snap.push(Container {
                name: row["Name"].as_str().unwrap_or_default().to_owned(),
                service: row["Service"]
                    .as_str()
                    .map(str::to_owned)
                    .or_else(|| labels.get("com.docker.compose.service").cloned())
                    .unwrap_or_default(),
                state: row["State"].as_str().unwrap_or_default().to_owned(),
                health: row["Health"].as_str().unwrap_or_default().to_owned(),
                started_at: state_json["started_at"].to_string(),
                id,
                oneoff,
                labels,
            });
        }
        snap.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(snap)
    }

    fn run_action(&self, a: &Action) -> Result<CmdResult, Failed> {
        let args = self.values(&a.args)?;
        let mut env = Vec::new();
        for e in &a.with_env {
            let kv = self.value(e)?;
            let (k, v) = kv.split_once('=').unwrap_or((&kv, ""));
            env.push((k.to_owned(), v.to_owned()));
        }
        let timeout = a.within.unwrap_or(DEFAULT_STEP_TIMEOUT);
        match a.func.as_str() {
            "ComposeCmd" => Ok(self.compose(&args, &env, a.stdin.as_deref(), timeout)),
            "DockerCmd" => self.docker(&args, &env, a.stdin.as_deref(), timeout),
            "probeVolume" => {
                // hooks_test.go: docker run --rm -v <project>_data:/mnt alpine <args>
                let mut d = vec![
                    "run".to_owned(),
                    "--rm".into(),
                    "-v".into(),
                    format!("{}_data:/mnt", self.project),
                    "alpine".into(),
                ];
                d.extend(args.into_iter().skip(1));
                self.docker(&d, &env, None, timeout)
            }
            other => Err(format!("harness: unknown action {other}")),
        }
    }

    /// `docker <args>` answered by berth where berth has an equivalent.
    fn docker(
        &self,
        args: &[String],
        env: &[(String, String)],
        stdin: Option<&str>,
        timeout: Duration,
    ) -> Result<CmdResult, Failed> {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
        let unsupported = || {
            Err(format!(
                "unsupported: docker {}",
                args.first().map_or("", String::as_str)
            ))
        };
        let verb = args.first().map(String::as_str).unwrap_or_default();
        let rest = &args[1.min(args.len())..];
        match verb {
            // Image verbs: `berth image …` is docker's image CLI.
            "image" | "rmi" | "tag" => {
                let mut b = s(&["image"]);
                match verb {
                    "rmi" => b.push("rm".into()),
                    "tag" => b.push("tag".into()),
                    _ => {}
                }
                b.extend(rest.iter().cloned());
                Ok(self.berth(&b, env, stdin, timeout))
            }
            "pull" => {
                let mut platform = None;
                let mut refs = Vec::new();
                let mut it = rest.iter();
                while let Some(a) = it.next() {
                    match a.as_str() {
                        "-q" | "--quiet" => {}
                        "--platform" => platform = it.next().cloned(),
                        other => refs.push(other.to_owned()),
                    }
                }
                // From the scenario's registry, Docker Hub's mirror here.
                let mut b = s(&["image", "pull"]);
                if let Some(p) = platform {
                    b.push("--platform".into());
                    b.push(p);
                }
                b.extend(refs);
                Ok(self.berth(&b, env, stdin, timeout))
            }
            // `docker ps --filter label=com.docker.compose.project=P [--format {{.Names}}]`
            "ps" => {
                let mut project = None;
                let mut names = false;
                let mut it = rest.iter();
                while let Some(a) = it.next() {
                    match a.as_str() {
                        "--filter" => {
                            let f = it.next().cloned().unwrap_or_default();
                            match f.strip_prefix("label=com.docker.compose.project=") {
                                Some(p) => project = Some(p.to_owned()),
                                None => return unsupported(),
                            }
                        }
                        "--format" if it.next().map(String::as_str) == Some("{{.Names}}") => {
                            names = true
                        }
                        _ => return unsupported(),
                    }
                }
                let Some(project) = project else {
                    return unsupported();
                };
                let mut b = vec!["-p".to_owned(), project, "ps".into()];
                if !names {
                    return Ok(run_captured(
                        self.berth_cmd(&b, env, &self.tmp),
                        None,
                        timeout,
                        format!("berth {}", shell_words(&b)),
                    ));
                }
                b.extend(s(&["--format", "json"]));
                let mut r = run_captured(
                    self.berth_cmd(&b, env, &self.tmp),
                    None,
                    timeout,
                    format!("berth {} | .Name", shell_words(&b)),
                );
                let names: Vec<String> = r
                    .stdout
                    .lines()
                    .filter_map(|l| serde_json::from_str::<J>(l).ok())
                    .filter_map(|v| v["Name"].as_str().map(str::to_owned))
                    .collect();
                r.stdout = names.join("\n");
                r.combined = format!("{}\n{}", r.stdout, r.stderr);
                Ok(r)
            }
            // `docker inspect NAME -f …` for a container's address or MAC on
            // its network: berth has no inspect, so ask the container what
            // it got (`ip addr`, `/sys/class/net/eth0/address`).
            "inspect" => {
                let (Some(name), Some(format)) = (
                    rest.first(),
                    rest.iter()
                        .position(|a| a == "-f")
                        .and_then(|i| rest.get(i + 1)),
                ) else {
                    return unsupported();
                };
                let probe: &[&str] = if format.contains("IPAMConfig.IPv4Address") {
                    &["ip", "-4", "-o", "addr", "show"]
                } else if format.contains(".MacAddress") {
                    &["cat", "/sys/class/net/eth0/address"]
                } else {
                    return Err(format!(
                        "unsupported: docker inspect -f {format} (berth has no container inspect)"
                    ));
                };
                let mut d = vec!["exec".to_owned(), name.clone()];
                d.extend(s(probe));
                self.docker(&d, env, stdin, timeout)
            }
            // `docker exec|rm -f <project>-<service>-<n>` of a compose
            // container: the compose verb with --index.
            "exec" | "rm" => {
                let mut flags = Vec::new();
                let mut it = rest.iter();
                let name = loop {
                    match it.next() {
                        Some(f) if f.starts_with('-') => flags.push(f.clone()),
                        Some(n) => break n.clone(),
                        None => return unsupported(),
                    }
                };
                let Some((service, index)) = name
                    .strip_prefix(&format!("{}-", self.project))
                    .and_then(|r| r.rsplit_once('-'))
                    .filter(|(_, n)| n.parse::<u32>().is_ok())
                else {
                    return Err(format!(
                        "unsupported: docker {verb} of {name}, not a container of the project"
                    ));
                };
                let mut b = Vec::new();
                if verb == "exec" {
                    if !flags.is_empty() {
                        return unsupported();
                    }
                    b.extend(s(&["exec", "-T", &format!("--index={index}"), service]));
                    b.extend(it.cloned());
                } else {
                    if flags != ["-f"] || index != "1" {
                        return unsupported();
                    }
                    b.extend(s(&["rm", "-f", "-s", service]));
                }
                Ok(self.compose(&b, env, stdin, timeout))
            }
            // `docker run --rm -v VOLUME:PATH IMAGE ARGS…` (probeVolume): a
            // one-off of a throw-away project with the volume external.
            "run" => {
                let mut it = rest.iter();
                let mut vol = None;
                let image = loop {
                    match it.next().map(String::as_str) {
                        Some("--rm") => {}
                        Some("-v") => vol = it.next().cloned(),
                        Some(f) if f.starts_with('-') => return unsupported(),
                        Some(i) => break i.to_owned(),
                        None => return unsupported(),
                    }
                };
                let Some((vname, target)) = vol.as_deref().and_then(|v| v.split_once(':')) else {
                    return unsupported();
                };
                let probe_dir = self.tmp.join("probe");
                std::fs::create_dir_all(&probe_dir).map_err(|e| format!("harness: {e}"))?;
                let file = probe_dir.join("compose.yaml");
                std::fs::write(
                    &file,
                    format!(
                        "services:\n  probe:\n    image: {image}\n    volumes:\n      - {vname}:{target}\nvolumes:\n  {vname}:\n    external: true\n"
                    ),
                )
                .map_err(|e| format!("harness: {e}"))?;
                let mut b = vec![
                    "-f".to_owned(),
                    file.display().to_string(),
                    "-p".into(),
                    format!("{}-probe", self.project),
                    "run".into(),
                    "--rm".into(),
                    "-T".into(),
                    "probe".into(),
                ];
                b.extend(it.cloned());
                Ok(run_captured(
                    self.berth_cmd(&b, env, &probe_dir),
                    stdin,
                    timeout,
                    format!(
                        "berth {} (for docker {})",
                        shell_words(&b),
                        shell_words(args)
                    ),
                ))
            }
            _ => unsupported(),
        }
    }

    fn check(&mut self, c: &J, res: &CmdResult) -> Result<(), Failed> {
        let func = c["fn"].as_str().unwrap_or_default();
        let raw: Vec<J> = c["args"].as_array().cloned().unwrap_or_default();
        if func == "Eventually" {
            let inner = raw.first().cloned().unwrap_or(J::Null);
            let timeout = raw
                .get(1)
                .and_then(duration_of)
                .unwrap_or(Duration::from_secs(10));
            let end = Instant::now() + timeout;
            loop {
                match self.check(&inner, res) {
                    Ok(()) => return Ok(()),
                    Err(e) if Instant::now() >= end => {
                        return Err(format!("{e} (still after {}s)", timeout.as_secs()))
                    }
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(500));
                        let snap = self.snapshot()?;
                        *self.snaps.last_mut().expect("snapshot") = snap;
                    }
                }
            }
        }
        let a = self.values(&raw)?;
        let arg = |i: usize| a.get(i).cloned().unwrap_or_default();
        let prev = &self.snaps[self.snaps.len() - 2];
        let curr = self.snaps.last().expect("snapshot");
        let fail = |m: String| Err(format!("{func}({}): {m}", a.join(", ")));
        match func {
            "OutputContains" => {
                if !res.combined.contains(&arg(0)) {
                    return fail("not found in output".into());
                }
            }
            "StdoutContains" => {
                if !res.stdout.contains(&arg(0)) {
                    return fail("not found in stdout".into());
                }
            }
            "StderrContains" => {
                if !res.stderr.contains(&arg(0)) {
                    return fail("not found in stderr".into());
                }
            }
            "OutputNotContains" => {
                if res.combined.contains(&arg(0)) {
                    return fail("found in output".into());
                }
            }
            "OutputMatches" | "OutputMatchesCount" | "builtOnce" => {
                let (pattern, n) = match func {
                    "builtOnce" => (
                        format!(
                            "naming to .*{}-{}.* done",
                            regex::escape(&arg(0)),
                            regex::escape(&arg(1))
                        ),
                        Some(1),
                    ),
                    "OutputMatchesCount" => (arg(0), arg(1).parse::<usize>().ok()),
                    _ => (arg(0), None),
                };
                let re = regex::Regex::new(&pattern).map_err(|e| format!("harness: regex {pattern}: {e}"))?;
                let count = re.find_iter(&res.stdout).count();
                match n {
                    None if count == 0 => return fail("no match in stdout".into()),
                    Some(n) if count != n => return fail(format!("matched {count} time(s)")),
                    _ => {}
                }
            }
            "ExitCode" => {
                if res.code.to_string() != arg(0) {
                    return fail(format!("exit code is {}", res.code));
                }
            }
            "ServiceState" => {
                let cs = service_of(curr, &arg(0));
                if cs.is_empty() {
                    return fail("service has no container".into());
                }
                if let Some(c) = cs.iter().find(|c| c.state != arg(1)) {
                    return fail(format!("container {} is {}", c.name, c.state));
                }
            }
            "ServiceScale" => {
                let cs = service_of(curr, &arg(0));
                if cs.len().to_string() != arg(1) {
                    return fail(format!("found {}", cs.len()));
                }
            }
            "ReplicaNumbers" => {
                let mut got: Vec<String> = service_of(curr, &arg(0))
                    .iter()
                    .map(|c| c.labels.get("com.docker.compose.container-number").cloned().unwrap_or_default())
                    .collect();
                got.sort();
                let mut want: Vec<String> = a[1.min(a.len())..].to_vec();
                want.sort();
                if got != want {
                    return fail(format!("found replicas {got:?}"));
                }
            }
            "ServiceNotCreated" => {
                let names: Vec<&str> = curr.iter().filter(|c| c.service == arg(0)).map(|c| c.name.as_str()).collect();
                if !names.is_empty() {
                    return fail(format!("found {}", names.join(", ")));
                }
            }
            "NotRecreated" | "Recreated" => {
                for svc in &a {
                    let before = ids(&service_of(prev, svc));
                    let after = ids(&service_of(curr, svc));
                    if before.is_empty() {
                        return fail(format!("service {svc} had no container before the step"));
                    }
                    if func == "NotRecreated" && before != after {
                        return fail(format!("service {svc} containers changed: {before:?} -> {after:?}"));
                    }
                    if func == "Recreated" && after.iter().any(|id| before.contains(id)) {
                        return fail(format!("service {svc} kept its container"));
                    }
                }
            }
            "ServiceHealthy" => {
                let cs = service_of(curr, &arg(0));
                if cs.is_empty() {
                    return fail("service has no container".into());
                }
                if let Some(c) = cs.iter().find(|c| c.health != "healthy") {
                    return fail(format!("container {} is {:?}", c.name, c.health));
                }
            }
            "OneOffState" => {
                let cs = oneoffs_of(curr, &arg(0));
                if cs.is_empty() {
                    return fail("service has no one-off container".into());
                }
                if let Some(c) = cs.iter().find(|c| c.state != arg(1)) {
                    return fail(format!("container {} is {}", c.name, c.state));
                }
            }
            "OneOffsUntouched" => {
                let before = oneoffs_of(prev, &arg(0));
                let after = oneoffs_of(curr, &arg(0));
                if before.is_empty() {
                    return fail("service had no one-off container before the step".into());
                }
                if ids(&before) != ids(&after) {
                    return fail(format!("one-offs changed: {:?} -> {:?}", ids(&before), ids(&after)));
                }
                for (b, c) in before.iter().zip(&after) {
                    if b.state != c.state || b.started_at != c.started_at {
                        return fail(format!(
                            "{} touched: {} (started {}) -> {} (started {})",
                            b.name, b.state, b.started_at, c.state, c.started_at
                        ));
                    }
                }
            }
            "OneOffsRemoved" => {
                if oneoffs_of(prev, &arg(0)).is_empty() {
                    return fail("service had no one-off container before the step".into());
                }
                let left: Vec<&str> = oneoffs_of(curr, &arg(0)).iter().map(|c| c.name.as_str()).collect();
                if !left.is_empty() {
                    return fail(format!("still present: {}", left.join(", ")));
                }
            }
            "ImageExists" => {
                let r = self.berth(&["image".into(), "inspect".into(), arg(0)], &[], None, Duration::from_secs(30));
                if r.code != 0 {
                    return fail(format!("not found: {}", r.combined.trim()));
                }
            }
            "FileExists" => match std::fs::metadata(arg(0)) {
                Err(e) => return fail(e.to_string()),
                Ok(m) if m.len() == 0 => return fail("file is empty".into()),
                Ok(_) => {}
            },
            "FileContains" => match std::fs::read_to_string(arg(0)) {
                Err(e) => return fail(e.to_string()),
                Ok(t) if !t.contains(&arg(1)) => return fail(format!("not in {:?}", short(&t, 200))),
                Ok(_) => {}
            },
            "LabelSet" => {
                let cs = service_of(curr, &arg(0));
                if cs.is_empty() {
                    return fail("service has no container".into());
                }
                if let Some(c) = cs.iter().find(|c| c.labels.get(&arg(1)).is_none_or(String::is_empty)) {
                    return fail(format!("label empty on {}", c.name));
                }
            }
            "LabelsDistinct" => {
                let mut seen: BTreeMap<String, String> = BTreeMap::new();
                for svc in &a[1.min(a.len())..] {
                    let cs = service_of(curr, svc);
                    let Some(c) = cs.first() else {
                        return fail(format!("service {svc} has no container"));
                    };
                    let v = c.labels.get(&arg(0)).cloned().unwrap_or_default();
                    if let Some(other) = seen.insert(v.clone(), svc.clone()) {
                        return fail(format!("{other} and {svc} share {v:?}"));
                    }
                }
            }
            "LabelUnchanged" => {
                let (b, c) = (service_of(prev, &arg(0)), service_of(curr, &arg(0)));
                let (Some(b), Some(c)) = (b.first(), c.first()) else {
                    return fail("service has no container to compare".into());
                };
                if b.labels.get(&arg(1)) != c.labels.get(&arg(1)) {
                    return fail(format!("label changed: {:?} -> {:?}", b.labels.get(&arg(1)), c.labels.get(&arg(1))));
                }
            }
            "RunsOnPlatform" => {
                return Err(format!(
                    "unsupported: check RunsOnPlatform (docker inspect .ImageManifestDescriptor; berth has no container inspect) for {}",
                    arg(1)
                ))
            }
            other => return Err(format!("harness: unknown check {other}")),
        }
        Ok(())
    }

    fn steps(&mut self) -> Result<(), Failed> {
        let sc = self.sc;
        for (i, step) in sc.steps.iter().enumerate() {
            let res = self
                .run_action(&step.action)
                .map_err(|e| format!("step {} ({}): {e}", i + 1, step.name))?;
            self.transcript.push(format!(
                "  step {} {} — exit {}, {:.1}s",
                i + 1,
                res.command,
                res.code,
                res.took.as_secs_f64()
            ));
            let at = |m: String| {
                format!(
                    "step {} `{}`: {m}\n--- output (exit {}):\n{}",
                    i + 1,
                    res.command,
                    res.code,
                    short(res.combined.trim(), 1500)
                )
            };
            if res.timed_out {
                return Err(at(format!(
                    "timed out after {}s",
                    step.action.within.unwrap_or(DEFAULT_STEP_TIMEOUT).as_secs()
                )));
            }
            if !step.action.may_fail && res.code != 0 {
                return Err(at(format!("exited with code {}", res.code)));
            }
            let snap = self.snapshot().map_err(&at)?;
            self.snaps.push(snap);
            for c in &step.checks {
                self.check(c, &res).map_err(&at)?;
            }
        }
        Ok(())
    }

    /// What `down` should have removed and the netns deletion would hide:
    /// links other than `lo` and nft rules in the scenario's netns,
    /// cgroups and state dirs of the containers the scenario saw.
    fn kernel_leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        let ns = |args: &[&str]| -> String {
            Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", self.netns))
                .arg("--")
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        // A removed container's veth pair dies with its network namespace,
        // in the kernel's cleanup worker, a little after berth returns (more
        // under load): it is given 2 s to go, and reported if still there.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            let links: Vec<String> = ns(&["ip", "-o", "link", "show"])
                .lines()
                .map(|l| l.split(':').nth(1).unwrap_or_default().trim().to_owned())
                .filter(|name| !name.is_empty() && name != "lo")
                .map(|name| format!("link {}", name.split('@').next().unwrap_or(&name)))
                .collect();
            if links.is_empty() || std::time::Instant::now() > deadline {
                left.extend(links);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // An empty table or chain is not a leftover; a rule is.
        let rules = ns(&["nft", "list", "ruleset"]);
        let n_rules = rules
            .lines()
            .map(str::trim)
            .filter(|l| {
                !l.is_empty()
                    && !l.starts_with("table ")
                    && !l.starts_with("chain ")
                    && !l.starts_with("type ")
                    && !l.starts_with("policy ")
                    && *l != "}"
            })
            .count();
        if n_rules > 0 {
            left.push(format!("{n_rules} nft rule line(s)"));
        }
        let mut seen: Vec<&str> = self
            .snaps
            .iter()
            .flatten()
            .map(|c| c.id.as_str())
            .filter(|id| !id.is_empty())
            .collect();
        seen.sort();
        seen.dedup();
        for id in seen {
            for ctl in ["memory", "pids", "cpu", "freezer", "unified"] {
                let out = Command::new("find")
                    .arg(Path::new("/sys/fs/cgroup").join(ctl))
                    .args(["-maxdepth", "3", "-name"])
                    .arg(format!("*{id}*"))
                    .output();
                if let Ok(o) = out {
                    for l in String::from_utf8_lossy(&o.stdout).lines() {
                        left.push(format!("cgroup {l}"));
                    }
                }
            }
            if self.root.join("containers").join(id).exists() {
                left.push(format!("container state {id}"));
            }
        }
        left
    }

    /// `down`, the deferred actions, then whatever is still there: the
    /// processes started under this BERTH_ROOT and mounts under the scratch
    /// dir are removed and reported, and the netns deleted.
    fn teardown(&mut self) -> Vec<String> {
        self.torn_down = true;
        let mut problems = Vec::new();
        let down: Vec<String> = ["down", "-v", "--remove-orphans", "-t", "0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let r = self.compose(&down, &[], None, Duration::from_secs(60));
        if r.code != 0 {
            // A compose file that does not load: down by project name.
            let mut b = vec!["-p".to_owned(), self.project.clone()];
            b.extend(down.iter().cloned());
            let r2 = run_captured(
                self.berth_cmd(&b, &[], &self.tmp),
                None,
                Duration::from_secs(60),
                String::new(),
            );
            if r2.code != 0 {
                problems.push(format!(
                    "down failed: {} / {}",
                    short(r.combined.trim(), 300),
                    short(r2.combined.trim(), 300)
                ));
            }
        }
        let probe = self.tmp.join("probe/compose.yaml");
        if probe.exists() {
            let mut b = vec![
                "-f".to_owned(),
                probe.display().to_string(),
                "-p".into(),
                format!("{}-probe", self.project),
            ];
            b.extend(down.iter().cloned());
            run_captured(
                self.berth_cmd(&b, &[], &self.tmp),
                None,
                Duration::from_secs(60),
                String::new(),
            );
        }
        for a in self.sc.defer.clone() {
            let _ = self.run_action(&a);
        }
        let marker = format!("BERTH_ROOT={}", self.root.display());
        let mut left = Vec::new();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                    continue;
                };
                let Ok(environ) = std::fs::read(e.path().join("environ")) else {
                    continue;
                };
                if environ.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()) {
                    let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                    left.push(format!(
                        "process {pid}: {}",
                        String::from_utf8_lossy(&cmd).replace('\0', " ").trim()
                    ));
                    // Ours: started by this scenario's berth commands.
                    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                }
            }
        }
        let tmp = self.tmp.display().to_string();
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
            .filter(|m| m.starts_with(&tmp))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in &mounts {
            left.push(format!("mount {m}"));
            let _ = Command::new("umount").args(["-l", m]).status();
        }
        if let Some(mut reg) = self.registry.take() {
            let _ = reg.kill();
            let _ = reg.wait();
        }
        left.extend(self.kernel_leftovers());
        if !left.is_empty() {
            problems.push(format!("left behind after down: {}", left.join("; ")));
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
        problems
    }
}

fn short(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_owned();
    }
    let cut = s
        .char_indices()
        .map(|(i, _)| i)
        .take_while(|i| *i <= n)
        .last()
        .unwrap_or(0);
    format!("{}… ({} more bytes)", &s[..cut], s.len() - cut)
}

fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.is_empty()
                || a.contains(|c: char| c.is_whitespace() || "\"'$\\|&;<>(){}*".contains(c))
            {
                format!("'{}'", a.replace('\'', "'\\''"))
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs one scenario end to end, teardown included.
pub fn run(world: &World, sc: &Scenario) -> Outcome {
    let begin = Instant::now();
    let mut run = match Run::new(world, sc) {
        Ok(r) => r,
        Err(e) => {
            return Outcome {
                test: sc.test.clone(),
                failure: Some(e),
                took: begin.elapsed(),
                transcript: Vec::new(),
            }
        }
    };
    let result = run.setup().and_then(|()| run.steps());
    let problems = run.teardown();
    let failure = match (result, problems.is_empty()) {
        (Ok(()), true) => None,
        (Ok(()), false) => Some(format!("teardown: {}", problems.join("; "))),
        (Err(e), true) => Some(e),
        (Err(e), false) => Some(format!("{e}\nteardown: {}", problems.join("; "))),
    };
    Outcome {
        test: sc.test.clone(),
        failure,
        took: begin.elapsed(),
        transcript: std::mem::take(&mut run.transcript),
    }
}

/// Runs `scenarios` on `jobs` threads, in order of the list.
pub fn run_all(world: &World, scenarios: &[Scenario], jobs: usize) -> Vec<Outcome> {
    let next = Mutex::new(0usize);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().expect("lock");
                    let i = *n;
                    *n += 1;
                    i
                };
                let Some(sc) = scenarios.get(i) else {
                    break;
                };
                let o = run(world, sc);
                eprintln!(
                    "{} {} ({:.1}s)",
                    if o.failure.is_none() { "PASS" } else { "FAIL" },
                    o.test,
                    o.took.as_secs_f64()
                );
                results.lock().expect("lock").push((i, o));
            });
        }
    });
    let mut r = results.into_inner().expect("lock");
    r.sort_by_key(|(i, _)| *i);
    r.into_iter().map(|(_, o)| o).collect()
}
