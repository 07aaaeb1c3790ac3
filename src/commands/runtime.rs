//! `berth runtime <verb>`: the runc-compatible command line over
//! `berth_runtime::Runtime`. One function per verb; output shapes are runc's
//! (state JSON, the list table, ps). Errors go to stderr and, with `--log`,
//! to the log file in runc's text or JSON shape, which is where containerd's
//! shim looks for them.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use berth_runtime::{CreateOptions, ExecOptions, Process, Runtime, RuntimeError};

/// The log file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `time="…" level=error msg="…"`
    Text,
    /// `{"level":"error","msg":"…","time":"…"}`
    Json,
}

/// runc's global options.
#[derive(Debug, Clone)]
pub struct Global {
    pub root: PathBuf,
    pub log: Option<PathBuf>,
    pub log_format: LogFormat,
    pub debug: bool,
    pub systemd_cgroup: bool,
    pub rootless: bool,
}

/// `create` (and the creating half of `run`).
#[derive(Debug, Clone)]
pub struct Create {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: u32,
}

/// `exec`.
#[derive(Debug, Clone)]
pub struct Exec {
    pub id: String,
    pub process: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub tty: bool,
    pub cwd: Option<PathBuf>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub args: Vec<String>,
}

/// `update`: a resources file, or runc's flag forms.
#[derive(Debug, Clone)]
pub struct Update {
    pub id: String,
    pub resources: Option<PathBuf>,
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub pids_limit: Option<i64>,
}

/// One verb with its arguments.
#[derive(Debug, Clone)]
pub enum Verb {
    Create(Create),
    Start(String),
    State(String),
    Kill {
        id: String,
        signal: String,
        all: bool,
    },
    Delete {
        id: String,
        force: bool,
    },
    Run {
        create: Create,
        detach: bool,
    },
    Exec(Exec),
    Pause(String),
    Resume(String),
    Ps {
        id: String,
        json: bool,
        ps_args: Vec<String>,
    },
    List {
        json: bool,
        quiet: bool,
    },
    Update(Update),
    Features,
    Spec {
        bundle: PathBuf,
        rootless: bool,
    },
}

/// A whole command line.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub global: Global,
    pub verb: Verb,
}

/// Runs one invocation; returns the process exit code (the container's for
/// `run` and `exec`, 127 for a missing command, 1 for other errors).
pub fn main(inv: Invocation) -> ExitCode {
    match dispatch(&inv) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let message = err
                .chain()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(": ");
            log_line(&inv.global, "error", &message);
            eprintln!("berth-runtime: {message}");
            let code = err
                .downcast_ref::<RuntimeError>()
                .map_or(1, RuntimeError::exit_code);
            ExitCode::from(code)
        }
    }
}

fn log_line(global: &Global, level: &str, msg: &str) {
    let Some(path) = &global.log else { return };
    let time = berth_runtime::state::rfc3339(std::time::SystemTime::now());
    let line = match global.log_format {
        LogFormat::Json => {
            serde_json::json!({"level": level, "msg": msg, "time": time}).to_string()
        }
        LogFormat::Text => format!("time={time:?} level={level} msg={msg:?}"),
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

fn dispatch(inv: &Invocation) -> anyhow::Result<u8> {
    let g = &inv.global;
    if g.systemd_cgroup {
        bail!("--systemd-cgroup is not supported: berth manages cgroupfs directly (drop the flag, or set the engine's cgroup driver to cgroupfs)");
    }
    if g.rootless {
        bail!("rootless mode is not supported yet");
    }
    if g.debug {
        log_line(g, "debug", &format!("{:?}", inv.verb));
    }
    let rt = Runtime::new(&g.root);
    match &inv.verb {
        Verb::Create(c) => {
            rt.create(&c.id, &c.bundle, &create_options(c)?)?;
            Ok(0)
        }
        Verb::Start(id) => {
            rt.start(id)?;
            Ok(0)
        }
        Verb::State(id) => {
            let state = rt.state(id)?;
            println!("{}", serde_json::to_string_pretty(&state)?);
            Ok(0)
        }
        Verb::Kill { id, signal, all } => {
            rt.kill(id, parse_signal(signal)?, *all)?;
            Ok(0)
        }
        Verb::Delete { id, force } => {
            match rt.delete(id, *force) {
                Err(RuntimeError::NotFound(_)) if *force => {}
                other => other?,
            }
            Ok(0)
        }
        Verb::Run { create, detach } => {
            let opts = create_options(create)?;
            if *detach {
                rt.create(&create.id, &create.bundle, &opts)?;
                rt.start(&create.id)?;
                return Ok(0);
            }
            let code = rt.run(&create.id, &create.bundle, &opts)?;
            Ok(code.clamp(0, 255) as u8)
        }
        Verb::Exec(e) => exec(&rt, e),
        Verb::Pause(id) => {
            rt.pause(id)?;
            Ok(0)
        }
        Verb::Resume(id) => {
            rt.resume(id)?;
            Ok(0)
        }
        Verb::Ps { id, json, ps_args } => ps(&rt, id, *json, ps_args),
        Verb::List { json, quiet } => list(&rt, *json, *quiet),
        Verb::Update(u) => {
            rt.update(&u.id, &update_resources(u)?)?;
            Ok(0)
        }
        Verb::Features => {
            println!("{}", serde_json::to_string_pretty(&features())?);
            Ok(0)
        }
        Verb::Spec { bundle, rootless } => {
            if *rootless {
                bail!("spec --rootless is not supported yet");
            }
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("File {} exists. Remove it first", path.display());
            }
            let spec = berth_runtime::spec::docker_default(&["sh"]);
            fs_err::write(&path, serde_json::to_vec_pretty(&spec)?)?;
            Ok(0)
        }
    }
}

fn create_options(c: &Create) -> anyhow::Result<CreateOptions> {
    if c.preserve_fds > 0 {
        bail!("--preserve-fds is not supported yet");
    }
    Ok(CreateOptions {
        pid_file: c.pid_file.clone(),
        console_socket: c.console_socket.clone(),
        stdio: [None, None, None],
    })
}

/// Signal names as runc accepts them: `KILL`, `SIGKILL` or `9`.
fn parse_signal(s: &str) -> anyhow::Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let name = s.strip_prefix("SIG").unwrap_or(s).to_ascii_uppercase();
    let table = [
        ("HUP", 1),
        ("INT", 2),
        ("QUIT", 3),
        ("ILL", 4),
        ("TRAP", 5),
        ("ABRT", 6),
        ("IOT", 6),
        ("BUS", 7),
        ("FPE", 8),
        ("KILL", 9),
        ("USR1", 10),
        ("SEGV", 11),
        ("USR2", 12),
        ("PIPE", 13),
        ("ALRM", 14),
        ("TERM", 15),
        ("STKFLT", 16),
        ("CHLD", 17),
        ("CONT", 18),
        ("STOP", 19),
        ("TSTP", 20),
        ("TTIN", 21),
        ("TTOU", 22),
        ("URG", 23),
        ("XCPU", 24),
        ("XFSZ", 25),
        ("VTALRM", 26),
        ("PROF", 27),
        ("WINCH", 28),
        ("IO", 29),
        ("POLL", 29),
        ("PWR", 30),
        ("SYS", 31),
    ];
    table
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .with_context(|| format!("unknown signal {s:?}"))
}

fn exec(rt: &Runtime, e: &Exec) -> anyhow::Result<u8> {
    let process: Process = match &e.process {
        Some(path) => {
            let text = fs_err::read(path)?;
            let de = &mut serde_json::Deserializer::from_slice(&text);
            serde_path_to_error::deserialize(de).map_err(|err| {
                anyhow::anyhow!(
                    "{}: invalid field `{}`: {}",
                    path.display(),
                    err.path(),
                    err.inner()
                )
            })?
        }
        None => process_from_flags(rt, e)?,
    };
    if process.terminal() == Some(true) && e.console_socket.is_none() {
        bail!("a terminal needs --console-socket (berth does not relay a tty itself yet)");
    }
    let opts = ExecOptions {
        pid_file: e.pid_file.clone(),
        console_socket: e.console_socket.clone(),
        detach: e.detach,
    };
    let code = rt.exec(&e.id, &process, &opts)?;
    Ok(if e.detach {
        0
    } else {
        code.clamp(0, 255) as u8
    })
}

/// runc's flag form of exec: the container's process with overrides.
fn process_from_flags(rt: &Runtime, e: &Exec) -> anyhow::Result<Process> {
    if e.args.is_empty() {
        bail!("exec needs a command (or --process FILE)");
    }
    let state = rt.state(&e.id)?;
    let spec = berth_runtime::spec::load(&state.bundle)?;
    let base = spec
        .process()
        .clone()
        .context("the container's config.json has no process")?;
    let mut v = serde_json::to_value(&base)?;
    v["args"] = serde_json::json!(e.args);
    v["terminal"] = serde_json::json!(e.tty);
    if let Some(cwd) = &e.cwd {
        v["cwd"] = serde_json::json!(cwd);
    }
    let mut env: Vec<String> = base.env().clone().unwrap_or_default();
    env.extend(e.env.iter().cloned());
    v["env"] = serde_json::json!(env);
    if let Some(user) = &e.user {
        let (uid, gid) = user.split_once(':').unwrap_or((user, "0"));
        v["user"]["uid"] =
            serde_json::json!(uid.parse::<u32>().context("--user: uid must be numeric")?);
        v["user"]["gid"] =
            serde_json::json!(gid.parse::<u32>().context("--user: gid must be numeric")?);
    }
    if !e.additional_gids.is_empty() {
        v["user"]["additionalGids"] = serde_json::json!(e.additional_gids);
    }
    if e.no_new_privs {
        v["noNewPrivileges"] = serde_json::json!(true);
    }
    for cap in &e.caps {
        for set in ["bounding", "effective", "permitted"] {
            if let Some(list) = v["capabilities"][set].as_array_mut() {
                list.push(serde_json::json!(cap));
            }
        }
    }
    serde_json::from_value(v).context("building the exec process")
}

fn ps(rt: &Runtime, id: &str, json: bool, ps_args: &[String]) -> anyhow::Result<u8> {
    let pids = rt.ps(id)?;
    if json {
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(0);
    }
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("running ps")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|c| c == "PID")
        .context("ps output has no PID column")?;
    println!("{header}");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{line}");
        }
    }
    Ok(0)
}

fn list(rt: &Runtime, json: bool, quiet: bool) -> anyhow::Result<u8> {
    let states = rt.list()?;
    if quiet {
        for s in &states {
            println!("{}", s.id);
        }
        return Ok(0);
    }
    if json {
        println!("{}", serde_json::to_string(&states)?);
        return Ok(0);
    }
    let mut rows = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
        .map(String::from)
        .to_vec()];
    for s in &states {
        rows.push(vec![
            s.id.clone(),
            s.pid.to_string(),
            s.status.to_string(),
            s.bundle.display().to_string(),
            s.created.clone(),
            "root".into(),
        ]);
    }
    print!("{}", table(&rows));
    Ok(0)
}

/// Go's tabwriter as runc configures it: cells padded to max(width+1, 12).
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r[c].len() + 1)
                .max()
                .unwrap_or(0)
                .max(12)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == cols {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}", w = widths[c]));
            }
        }
        out.push('\n');
    }
    out
}

/// The resources of `update`: the `--resources` JSON (as containerd's shim
/// sends it on stdin), with runc's flags layered on top.
fn update_resources(u: &Update) -> anyhow::Result<berth_runtime::LinuxResources> {
    let mut v = match &u.resources {
        Some(p) if p.as_os_str() == "-" => {
            let mut text = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut text)
                .context("reading resources from stdin")?;
            serde_json::from_slice(&text).context("resources on stdin")?
        }
        Some(p) => serde_json::from_slice(&fs_err::read(p)?)
            .with_context(|| format!("resources in {}", p.display()))?,
        None => serde_json::json!({}),
    };
    let mut set = |section: &str, key: &str, value: serde_json::Value| {
        if !v[section].is_object() {
            v[section] = serde_json::json!({});
        }
        v[section][key] = value;
    };
    if let Some(m) = u.memory {
        set("memory", "limit", m.into());
    }
    if let Some(m) = u.memory_swap {
        set("memory", "swap", m.into());
    }
    if let Some(c) = u.cpu_shares {
        set("cpu", "shares", c.into());
    }
    if let Some(c) = u.cpu_quota {
        set("cpu", "quota", c.into());
    }
    if let Some(c) = u.cpu_period {
        set("cpu", "period", c.into());
    }
    if let Some(p) = u.pids_limit {
        set("pids", "limit", p.into());
    }
    serde_json::from_value(v).context("update: resources are not OCI linux.resources")
}

fn features() -> serde_json::Value {
    let caps: Vec<&str> = berth_runtime::caps::all_names().to_vec();
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": [],
        "mountOptions": ["async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "mand",
            "noatime", "nodev", "nodiratime", "noexec", "nomand", "norelatime", "nostrictatime", "nosuid",
            "private", "rbind", "relatime", "remount", "ro", "rprivate", "rshared", "rslave", "runbindable",
            "rw", "shared", "slave", "strictatime", "suid", "sync", "unbindable"],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                    "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": ["SCMP_ARCH_X86_64"]
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false}
        },
        "annotations": {"io.github.berth.runtime.version": env!("CARGO_PKG_VERSION")}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_like_runc() {
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("10").unwrap(), 10);
        assert!(parse_signal("NOPE").is_err());
    }

    #[test]
    fn list_table_pads_like_tabwriter() {
        let rows = vec![
            vec!["ID".to_string(), "PID".into(), "OWNER".into()],
            vec![
                "a-very-long-container".to_string(),
                "42".into(),
                "root".into(),
            ],
        ];
        assert_eq!(
            table(&rows),
            "ID                    PID         OWNER\na-very-long-container 42          root\n"
        );
    }
}
