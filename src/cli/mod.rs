//! The command line, clap derive only: doc comments are the help text. Values
//! are resolved into typed settings by `settings`, and run by `commands`.

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
    #[arg(long, value_enum, default_value_t = Ansi::Auto)]
    pub ansi: Ansi,
    /// Set type of progress output
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    pub progress: Progress,
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
    Quiet,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
