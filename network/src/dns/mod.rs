//! The DNS server containers on berth networks ask: one per host, listening on
//! UDP and TCP port 53 of every berth bridge's gateway address, answering
//! container names, service names (every replica), aliases, hostnames and
//! short ids per network for A, AAAA and PTR, and forwarding everything else
//! to the host's resolvers.
//!
//! The engine owns the data: it changes the [`DnsTable`] in
//! `$BERTH_RUN/dns/table.json` through [`DnsTable::update`] (under a lock,
//! stored by temp + rename) whenever networks or container attachments
//! change, before the container's process starts, calls [`ensure_running`] (which starts the server if it
//! is not running, e.g. after a kill -9), and gives each container the
//! `/etc/resolv.conf` from [`resolv_conf`]. The server ([`serve`], run as the
//! hidden `berth system dns-server`) only reads the table; it never touches
//! bridges, addresses or firewall rules. The firewall must let UDP and TCP
//! port 53 from a network's subnet reach its gateway.
//!
//! Wiring in the binary: a hidden `berth system dns-server` that sets up
//! tracing to stderr and returns `dns::serve(&run_dir)` from a plain (not
//! async) `main` path, since `serve` builds its own single-threaded runtime;
//! the engine calls `dns::ensure_running(&run_dir, &current_exe, &["system",
//! "dns-server"])` after storing the table and before starting containers
//! (it blocks for up to 5 s: from async code, via `spawn_blocking`); after a
//! `down` it calls [`stop_if_unused`], so no server outlives the last network.
//!
//! Modules: `wire` (the message format), `table` (the file), `lookup` (pure
//! answers), `resolv` (resolv.conf), `server` (sockets, forwarding, reload),
//! `process` (pidfile, locks, spawn), `sys` (the one `unsafe` block).

mod lookup;
mod process;
mod resolv;
mod server;
mod sys;
mod table;
pub mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitStatus;

pub use lookup::{Outcome, Resolver};
pub use nix::unistd::Pid;
pub use process::{ensure_running, log_path, running, serve, serve_with, stop, stop_if_unused};
pub use resolv::{parse_resolv_conf, resolv_conf, HostResolvConf};
pub use server::{Server, ServerConfig, ANSWER_TTL};
pub use table::{dns_dir, table_path, Cidr, CidrError, DnsNetwork, DnsRecord, DnsTable};

/// What can go wrong running or starting the DNS server.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// A file or directory could not be read or written (the error names it).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The table file is not a valid [`DnsTable`].
    #[error("invalid DNS table {path}")]
    Table {
        /// The table file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: serde_json::Error,
    },
    /// A gateway address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address and port.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A lock file could not be locked (other than being held).
    #[error("cannot lock {path}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: nix::Error,
    },
    /// `serve` found another server holding the lock.
    #[error("a berth DNS server is already running (pid {})", .pid.map_or("unknown".to_string(), |p| p.to_string()))]
    AlreadyRunning {
        /// Its pid, if its pidfile is written.
        pid: Option<Pid>,
    },
    /// The server binary could not be started.
    #[error("cannot start the DNS server {exe}")]
    Spawn {
        /// The binary.
        exe: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server exited before it was ready.
    #[error("the DNS server {exe} exited ({status}) before it was ready; see {log}")]
    Exited {
        /// The binary.
        exe: PathBuf,
        /// How it ended.
        status: ExitStatus,
        /// Its stderr.
        log: PathBuf,
    },
    /// The server did not become ready (or did not stop) in time.
    #[error("the DNS server (pid {}) did not respond in time; see {log}", .pid.map_or("unknown".to_string(), |p| p.to_string()))]
    NotReady {
        /// Its pid, if known.
        pid: Option<Pid>,
        /// Its stderr.
        log: PathBuf,
    },
    /// A record for a network the table does not have.
    #[error("DNS table has no network {network:?}")]
    UnknownNetwork {
        /// The network's name.
        network: String,
    },
    /// The server's signal handlers or runtime could not be set up.
    #[error("cannot set up the DNS server's event loop")]
    Runtime(#[source] std::io::Error),
    /// The server could not be signalled.
    #[error("cannot signal the DNS server (pid {pid})")]
    Signal {
        /// Its pid.
        pid: Pid,
        /// Why.
        #[source]
        source: nix::Error,
    },
}
