//! `berth runtime …` (and `berth-runtime …` through a link of that name):
//! runc's command line, clap derive only, so that engines that drive runc
//! (containerd's shim, Docker) can drive berth. Values become a plain
//! [`Invocation`] for `commands::runtime`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::commands::runtime::{Global, Invocation, LogFormat as Fmt, Verb};

/// Run OCI containers (a runc-compatible runtime)
#[derive(Debug, Parser)]
#[command(name = "berth-runtime", version, disable_help_subcommand = true)]
pub struct StandaloneCli {
    #[command(flatten)]
    pub args: RuntimeArgs,
}

/// Returns true when the binary was invoked through a link named
/// `berth-runtime`.
pub fn invoked_as_runtime() -> bool {
    std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n == "berth-runtime"))
        .unwrap_or(false)
}

/// runc's global options and verbs.
#[derive(Debug, Args)]
pub struct RuntimeArgs {
    /// Root directory for storage of container state
    #[arg(long, global = true, default_value = berth_runtime::DEFAULT_ROOT, value_name = "DIR")]
    pub root: PathBuf,
    /// Log file for errors (and debug messages with --debug)
    #[arg(long, global = true, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Log format
    #[arg(long = "log-format", global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Enable debug logging
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd to manage cgroups (not supported; refused)
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Rootless mode (accepted for compatibility; only "false" is supported)
    #[arg(long, global = true, value_name = "BOOL")]
    pub rootless: Option<String>,
    #[command(subcommand)]
    pub command: RuntimeCommand,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum RuntimeCommand {
    /// Create a container (the process waits for `start`)
    Create(CreateArgs),
    /// Start the process of a created container
    Start(IdArg),
    /// Output the state of a container
    State(IdArg),
    /// Send a signal to a container's init (or all its processes)
    Kill(KillArgs),
    /// Delete a container and everything it holds
    Delete(DeleteArgs),
    /// Create and start a container (and wait for it unless --detach)
    Run(RunArgs),
    /// Run a new process inside a running container
    Exec(ExecArgs),
    /// Suspend every process of a container
    Pause(IdArg),
    /// Resume a paused container
    Resume(IdArg),
    /// List the processes running in a container
    Ps(PsArgs),
    /// List containers
    List(ListArgs),
    /// Update a container's resource limits
    Update(UpdateArgs),
    /// Show what this runtime supports (JSON)
    Features,
    /// Write a config.json with Docker's defaults
    Spec(SpecArgs),
}

#[derive(Debug, Args)]
pub struct IdArg {
    /// Container id
    pub id: String,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Path to the bundle directory
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the init's pid to this file
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to send the pty master to
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Accepted for compatibility (pivot_root is always used)
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Accepted for compatibility (no session keyring is made)
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N extra fds to the container (only 0 is supported)
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Container id
    pub id: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Detach from the container's process
    #[arg(short = 'd', long)]
    pub detach: bool,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Send the signal to every process of the container
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Container id
    pub id: String,
    /// Signal name or number
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Kill a running container first
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Container id
    pub id: String,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// A process.json to run (otherwise the arguments and flags below)
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    /// Detach from the process
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Write the process's pid to this file
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to send the pty master to
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Current working directory in the container
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Environment variables (NAME=value)
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// UID[:GID] to run as
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Additional gids
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Capabilities to add to the process
    #[arg(short = 'c', long = "cap")]
    pub caps: Vec<String>,
    /// Set no_new_privs
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Container id
    pub id: String,
    /// Command and arguments
    #[arg(trailing_var_arg = true)]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// A JSON file of OCI `linux.resources` to apply ("-" for stdin)
    #[arg(short = 'r', long)]
    pub resources: Option<PathBuf>,
    /// Memory limit (bytes)
    #[arg(long)]
    pub memory: Option<i64>,
    /// Memory plus swap limit (bytes; -1 for unlimited)
    #[arg(long = "memory-swap")]
    pub memory_swap: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(long = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    /// CPU CFS quota (microseconds per period)
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    /// CPU CFS period (microseconds)
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// Maximum number of processes (-1 for unlimited)
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    /// Container id
    pub id: String,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Output format
    #[arg(short = 'f', long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
    /// Container id
    pub id: String,
    /// Arguments for ps(1) (default -ef)
    #[arg(trailing_var_arg = true)]
    pub ps_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format
    #[arg(short = 'f', long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
    /// Print only the ids
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct SpecArgs {
    /// Where to write config.json
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
}

impl RuntimeArgs {
    /// Resolves the command line into a plain invocation.
    pub fn into_invocation(self) -> Invocation {
        let RuntimeArgs {
            root,
            log,
            log_format,
            debug,
            systemd_cgroup,
            rootless,
            command,
        } = self;
        let global = Global {
            root,
            log,
            log_format: match log_format {
                LogFormat::Text => Fmt::Text,
                LogFormat::Json => Fmt::Json,
            },
            debug,
            systemd_cgroup,
            rootless: rootless.is_some_and(|r| r == "true"),
        };
        let json = |f: ListFormat| f == ListFormat::Json;
        let create = |c: CreateArgs| crate::commands::runtime::Create {
            id: c.id,
            bundle: c.bundle,
            pid_file: c.pid_file,
            console_socket: c.console_socket,
            preserve_fds: c.preserve_fds,
        };
        let verb = match command {
            RuntimeCommand::Create(c) => Verb::Create(create(c)),
            RuntimeCommand::Start(a) => Verb::Start(a.id),
            RuntimeCommand::State(a) => Verb::State(a.id),
            RuntimeCommand::Kill(k) => Verb::Kill {
                id: k.id,
                signal: k.signal,
                all: k.all,
            },
            RuntimeCommand::Delete(d) => Verb::Delete {
                id: d.id,
                force: d.force,
            },
            RuntimeCommand::Run(r) => Verb::Run {
                create: create(r.create),
                detach: r.detach,
            },
            RuntimeCommand::Exec(e) => Verb::Exec(crate::commands::runtime::Exec {
                id: e.id,
                process: e.process,
                detach: e.detach,
                pid_file: e.pid_file,
                console_socket: e.console_socket,
                tty: e.tty,
                cwd: e.cwd,
                env: e.env,
                user: e.user,
                additional_gids: e.additional_gids,
                caps: e.caps,
                no_new_privs: e.no_new_privs,
                args: e.args,
            }),
            RuntimeCommand::Pause(a) => Verb::Pause(a.id),
            RuntimeCommand::Resume(a) => Verb::Resume(a.id),
            RuntimeCommand::Ps(p) => Verb::Ps {
                id: p.id,
                json: json(p.format),
                ps_args: p.ps_args,
            },
            RuntimeCommand::List(l) => Verb::List {
                json: json(l.format),
                quiet: l.quiet,
            },
            RuntimeCommand::Update(u) => Verb::Update(crate::commands::runtime::Update {
                id: u.id,
                resources: u.resources,
                memory: u.memory,
                memory_swap: u.memory_swap,
                cpu_shares: u.cpu_shares,
                cpu_quota: u.cpu_quota,
                cpu_period: u.cpu_period,
                pids_limit: u.pids_limit,
            }),
            RuntimeCommand::Features => Verb::Features,
            RuntimeCommand::Spec(s) => Verb::Spec {
                bundle: s.bundle,
                rootless: false,
            },
        };
        Invocation { global, verb }
    }
}
