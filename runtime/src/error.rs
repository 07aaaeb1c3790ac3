//! The runtime's error type. Every variant names what a person needs to act:
//! the container, the file, the field of `config.json`, or the step of the
//! container's setup that failed.

use std::path::PathBuf;

/// Errors of the runtime's lifecycle operations.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// `config.json` could not be parsed; `field` is the JSON path of the bad
    /// value (such as `process.user.uid`).
    #[error("{path}: invalid field `{field}`: {message}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// The JSON path of the offending field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A file system operation on the host failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file system call made through `fs-err` failed (its message names
    /// the path).
    #[error(transparent)]
    Fs(std::io::Error),
    /// A system call failed while the runtime (not the container) did `what`.
    #[error("{what}: {source}")]
    Sys {
        /// What the runtime was doing.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The container's init reported a failure while setting it up.
    #[error("container {id}: {message}")]
    Init {
        /// The container.
        id: String,
        /// The init's message (the step and the cause).
        message: String,
    },
    /// The process to run does not exist in the container (exit code 127).
    #[error("container {id}: exec: \"{command}\": executable file not found in $PATH")]
    CommandNotFound {
        /// The container.
        id: String,
        /// The missing command.
        command: String,
    },
    /// No container has this id.
    #[error("container {0} does not exist")]
    NotFound(String),
    /// A container with this id exists already.
    #[error("container {0} already exists")]
    Exists(String),
    /// The id is not a valid container id.
    #[error(
        "invalid container id {0:?}: use letters, digits, '_', '-', '.' (not starting with '.')"
    )]
    InvalidId(String),
    /// The operation is not allowed in the container's current state.
    #[error("container {id} is {status}: {action} needs it {needed}")]
    WrongState {
        /// The container.
        id: String,
        /// Its status.
        status: String,
        /// What was asked.
        action: &'static str,
        /// The status the action needs.
        needed: &'static str,
    },
    /// The spec asks for something this runtime does not do (yet).
    #[error("{0}")]
    Unsupported(String),
    /// The spec's seccomp profile cannot be compiled.
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    /// A cgroup operation failed.
    #[error(transparent)]
    Cgroup(#[from] crate::cgroup::CgroupError),
}

impl RuntimeError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }

    pub(crate) fn sys(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Sys { what, source }
    }

    /// The exit code a runc-compatible command line uses for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::CommandNotFound { .. } => 127,
            _ => 1,
        }
    }
}
