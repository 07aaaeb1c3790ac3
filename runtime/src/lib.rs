//! berth's OCI runtime: turns an OCI runtime-spec bundle (`config.json` plus a
//! rootfs) into an isolated, limited process, as runc, crun and youki do.
//!
//! This crate is the only code in berth that clones into namespaces or mounts a
//! rootfs. It knows nothing of Compose or of networking: it takes an OCI `Spec`.
//! All `unsafe` lives in `sys`.
//!
//! The runtime process ([`Runtime`]) and the container init (a re-exec of the
//! same binary, entered through [`init_main`] when `argv[1]` is
//! [`INIT_ARG`]) talk over a socket; the init is a fresh single-threaded
//! process, so namespace entry never happens on a thread of the caller.

pub mod caps;
pub mod cgroup;
mod container;
mod error;
mod hooks;
mod init;
mod rootfs;
pub mod seccomp;
pub mod spec;
pub mod state;
pub mod sys;

pub use container::{CreateOptions, ExecOptions, Runtime, DEFAULT_ROOT};
pub use error::RuntimeError;
pub use init::{init_main, INIT_ANNOTATION, INIT_ARG};
pub use oci_spec::runtime::{LinuxResources, Process, Spec};
pub use state::{State, Status};

/// Calls [`init_main`] if this process was started as a container init.
/// Binaries embedding the runtime call this first thing in `main`.
pub fn maybe_init() {
    if std::env::args_os().nth(1).is_some_and(|a| a == INIT_ARG) {
        init_main();
    }
}
