//! The command line, clap derive only: doc comments are the help text. Values
//! are resolved into typed settings by `settings`, and run by `commands`.

pub mod image;
pub mod lifecycle;
pub mod runtime;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Compose projects on a bare Linux kernel: a drop-in for `docker compose`.
#[derive(Debug, Parser)]
#[command(name = "berth", version, disable_help_subcommand = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every verb takes, as `docker compose` takes them.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Compose configuration files ("-" reads standard input)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Project name
    #[arg(short = 'p', long = "project-name", value_name = "NAME")]
    pub project_name: Option<String>,
    /// Alternate working directory (default: the directory of the first compose file)
    #[arg(long, value_name = "DIR")]
    pub project_directory: Option<PathBuf>,
    /// Alternate environment files
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Profiles to enable
    #[arg(long = "profile", value_name = "PROFILE")]
    pub profiles: Vec<String>,
    /// Show what would be done without doing it
    #[arg(long)]
    pub dry_run: bool,
    /// Control when to print ANSI control characters
    #[arg(long, value_enum, env = "COMPOSE_ANSI", default_value_t = Ansi::Auto)]
    pub ansi: Ansi,
    /// Set type of progress output
    #[arg(long, value_enum, env = "COMPOSE_PROGRESS", default_value_t = Progress::Auto)]
    pub progress: Progress,
    /// Run compose in backward compatibility mode (container names joined with `_`, as Compose v1)
    #[arg(long, env = "COMPOSE_COMPATIBILITY", value_parser = clap::builder::BoolishValueParser::new())]
    pub compatibility: bool,
    /// Include all resources, even those not used by services
    #[arg(long)]
    pub all_resources: bool,
    /// Show more output (berth's debug log on standard error)
    #[arg(long)]
    pub verbose: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Ansi {
    Never,
    Always,
    Auto,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    Auto,
    Tty,
    Plain,
    Json,
    /// Also spelled `none`, as compose accepts it.
    #[value(alias = "none")]
    Quiet,
}

/// Each verb's options are built only when that verb is used
/// (`defer`): building them all cost every command about 0.3 ms and a
/// hundred page faults.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Parse, resolve and render compose file in canonical format
    Config(ConfigArgs),
    /// Creates containers for a service
    Create(lifecycle::CreateArgs),
    /// Stop and remove containers, networks
    Down(lifecycle::DownArgs),
    /// Execute a command in a running container
    Exec(lifecycle::ExecArgs),
    /// Force stop service containers
    Kill(lifecycle::KillArgs),
    /// List running compose projects
    Ls(lifecycle::LsArgs),
    /// View output from containers
    Logs(lifecycle::LogsArgs),
    /// List containers
    Ps(lifecycle::PsArgs),
    /// Pause services
    Pause(lifecycle::ServicesArgs),
    /// Print the public port for a port binding
    Port(lifecycle::PortArgs),
    /// Restart service containers
    Restart(lifecycle::ServicesTimeoutArgs),
    /// Removes stopped service containers
    Rm(lifecycle::RmArgs),
    /// Run a one-off command on a service
    Run(lifecycle::RunArgs),
    /// Start services
    Start(lifecycle::ServicesArgs),
    /// Stop services
    Stop(lifecycle::ServicesTimeoutArgs),
    /// Display the running processes
    Top(lifecycle::ServicesArgs),
    /// Unpause services
    Unpause(lifecycle::ServicesArgs),
    /// Create and start containers
    Up(lifecycle::UpArgs),
    /// Copy files/folders between a service container and the local filesystem
    Cp(lifecycle::CpArgs),
    /// Receive real time events from containers
    Events(lifecycle::EventsArgs),
    /// Export a service container's filesystem as a tar archive
    Export(lifecycle::ExportArgs),
    /// Create a new image from a service container's changes
    Commit(lifecycle::CommitArgs),
    /// Scale services
    Scale(lifecycle::ScaleArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(lifecycle::StatsArgs),
    /// Block until containers of all (or specified) services stop
    Wait(lifecycle::WaitArgs),
    /// berth's internal entry points
    #[command(hide = true, subcommand)]
    System(lifecycle::SystemCommand),
    /// Manage images
    Image(image::ImageArgs),
    /// List images used by the project's services
    Images(image::ImagesArgs),
    /// Log in to a registry
    Login(image::LoginArgs),
    /// Log out from a registry
    Logout(image::LogoutArgs),
    /// Pull service images
    Pull(image::PullArgs),
    /// Push service images
    Push(image::PushArgs),
    /// Publish compose application
    Publish(lifecycle::PublishArgs),
    /// Run OCI containers (a runc-compatible runtime)
    Runtime(Box<runtime::RuntimeArgs>),
    /// Show the Docker Compose version information
    Version(VersionArgs),
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Format the output
    #[arg(short = 'f', long = "format", value_enum, default_value_t = VersionFormat::Pretty)]
    pub format: VersionFormat,
    /// Show only the version number
    #[arg(long)]
    pub short: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum VersionFormat {
    Pretty,
    Json,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Services to render (default: all)
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Format the output
    #[arg(long, value_enum)]
    pub format: Option<ConfigFormat>,
    /// Save to file (default to stdout)
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Only validate the configuration, don't print anything
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Print the service names, one per line
    #[arg(long = "services")]
    pub list_services: bool,
    /// Print the volume names, one per line
    #[arg(long = "volumes")]
    pub list_volumes: bool,
    /// Print the network names, one per line
    #[arg(long = "networks")]
    pub list_networks: bool,
    /// Print the image names, one per line
    #[arg(long = "images")]
    pub list_images: bool,
    /// Print the profile names, one per line
    #[arg(long = "profiles")]
    pub list_profiles: bool,
    /// Print the service config hash, one per line ("*" for all services)
    #[arg(long, value_name = "SERVICE")]
    pub hash: Option<String>,
    /// Print model variables and default values
    #[arg(long)]
    pub variables: bool,
    /// Print environment used for interpolation
    #[arg(long)]
    pub environment: bool,
    /// Don't interpolate environment variables
    #[arg(long)]
    pub no_interpolate: bool,
    /// Don't normalize compose model
    #[arg(long)]
    pub no_normalize: bool,
    /// Don't resolve file paths
    #[arg(long)]
    pub no_path_resolution: bool,
    /// Don't check model consistency - warning: may produce invalid Compose output
    #[arg(long)]
    pub no_consistency: bool,
    /// Don't resolve service env files
    #[arg(long)]
    pub no_env_resolution: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ConfigFormat {
    Yaml,
    Json,
}
