//! Image verbs: `berth image …`, `berth login|logout`, and the compose verbs
//! `pull`, `push`, `images`. Clap derive only; `into_action` hands plain
//! values to `commands::image`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::commands::image::{Action, ProjectAction};
use crate::image::archive;

#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Download an image from a registry
    Pull {
        /// Image reference (NAME[:TAG|@DIGEST])
        name: String,
        /// Platform (os/arch[/variant]); default: the host's
        #[arg(long)]
        platform: Option<String>,
        /// Suppress verbose output
        #[arg(short, long)]
        quiet: bool,
        /// Fetch and verify the blobs only; layers unpack on first use
        #[arg(long, hide = true)]
        download_only: bool,
    },
    /// Upload an image to a registry
    Push {
        /// Image reference (NAME[:TAG])
        name: String,
        /// Suppress verbose output
        #[arg(short, long)]
        quiet: bool,
    },
    /// List images
    #[command(visible_alias = "list")]
    Ls {
        /// Only show image IDs
        #[arg(short, long)]
        quiet: bool,
        /// Show digests
        #[arg(long)]
        digests: bool,
        /// Don't truncate output
        #[arg(long)]
        no_trunc: bool,
        /// Output format
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// Only images of this repository
        repository: Option<String>,
    },
    /// Remove one or more images
    #[command(visible_alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
        /// Force removal of the image
        #[arg(short, long)]
        force: bool,
    },
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag { source: String, target: String },
    /// Display detailed information on one or more images
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Import the contents from a tarball to create a filesystem image
    Import {
        /// Tarball ("-" reads standard input)
        file: String,
        /// Image reference to create
        name: String,
        /// Apply Dockerfile instruction to the created image
        #[arg(short, long = "change")]
        changes: Vec<String>,
    },
    /// Load an image from a tar archive or STDIN
    Load {
        /// Read from tar archive file, instead of STDIN
        #[arg(short, long)]
        input: Option<PathBuf>,
        /// Suppress the load output
        #[arg(short, long)]
        quiet: bool,
    },
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save {
        #[arg(required = true)]
        names: Vec<String>,
        /// Write to a file, instead of STDOUT
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Archive format
        #[arg(long, value_enum, default_value_t = SaveFormat::Docker)]
        format: SaveFormat,
    },
    /// Remove unused images
    Prune {
        /// Remove all blobs and layers no image names (the default; kept for Docker's flag)
        #[arg(short, long)]
        all: bool,
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SaveFormat {
    /// Docker archive (manifest.json, repositories, layer tars)
    Docker,
    /// OCI image layout
    Oci,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Registry (default: Docker Hub)
    pub server: Option<String>,
    /// Username (asked on the terminal when not given)
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (asked on the terminal, without echo, when not given)
    #[arg(short, long)]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Registry (default: Docker Hub)
    pub server: Option<String>,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Services to pull (default: all)
    pub services: Vec<String>,
    /// Ignore images that can be built
    #[arg(long)]
    pub ignore_buildable: bool,
    /// Pull what it can and ignores images with pull failures
    #[arg(long)]
    pub ignore_pull_failures: bool,
    /// Also pull services declared as dependencies
    #[arg(long)]
    pub include_deps: bool,
    /// Apply pull policy ("missing"|"always")
    #[arg(long)]
    pub policy: Option<String>,
    /// Pull without printing progress information
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Services to push (default: all)
    pub services: Vec<String>,
    /// Push what it can and ignores images with push failures
    #[arg(long)]
    pub ignore_push_failures: bool,
    /// Also push images of services declared as dependencies
    #[arg(long)]
    pub include_deps: bool,
    /// Push without printing progress information
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Services (default: all)
    pub services: Vec<String>,
    /// Only display IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Format the output
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

impl ImageArgs {
    pub fn into_action(self) -> Action {
        match self.command {
            ImageCommand::Pull {
                name,
                platform,
                quiet,
                download_only,
            } => Action::Pull {
                reference: name,
                platform,
                quiet,
                download_only,
            },
            ImageCommand::Push { name, quiet } => Action::Push {
                reference: name,
                quiet,
            },
            ImageCommand::Ls {
                quiet,
                digests,
                no_trunc,
                format,
                repository,
            } => Action::List {
                quiet,
                digests,
                no_trunc,
                json: format == ListFormat::Json,
                repository,
            },
            ImageCommand::Rm { names, force } => Action::Remove {
                references: names,
                force,
            },
            ImageCommand::Tag { source, target } => Action::Tag { source, target },
            ImageCommand::Inspect { names } => Action::Inspect { references: names },
            ImageCommand::Import {
                file,
                name,
                changes,
            } => Action::Import {
                file,
                reference: name,
                changes,
            },
            ImageCommand::Load { input, quiet } => Action::Load { input, quiet },
            ImageCommand::Save {
                names,
                output,
                format,
            } => Action::Save {
                references: names,
                output,
                format: match format {
                    SaveFormat::Docker => archive::Format::Docker,
                    SaveFormat::Oci => archive::Format::Oci,
                },
            },
            ImageCommand::Prune { all: _, force: _ } => Action::Prune,
        }
    }
}

impl LoginArgs {
    pub fn into_action(self) -> Action {
        Action::Login {
            server: self.server,
            username: self.username,
            password: self.password,
            password_stdin: self.password_stdin,
        }
    }
}

impl LogoutArgs {
    pub fn into_action(self) -> Action {
        Action::Logout {
            server: self.server,
        }
    }
}

impl PullArgs {
    pub fn into_action(self) -> ProjectAction {
        ProjectAction::Pull {
            services: self.services,
            quiet: self.quiet,
            ignore_buildable: self.ignore_buildable,
            ignore_failures: self.ignore_pull_failures,
            include_deps: self.include_deps,
            always: self.policy.as_deref() == Some("always"),
        }
    }
}

impl PushArgs {
    pub fn into_action(self) -> ProjectAction {
        ProjectAction::Push {
            services: self.services,
            quiet: self.quiet,
            ignore_failures: self.ignore_push_failures,
            include_deps: self.include_deps,
        }
    }
}

impl ImagesArgs {
    pub fn into_action(self) -> ProjectAction {
        ProjectAction::Images {
            services: self.services,
            quiet: self.quiet,
            json: self.format == ListFormat::Json,
        }
    }
}
