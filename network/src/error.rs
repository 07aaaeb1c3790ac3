//! The errors of `berth-network`: each names what a person needs to act.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::config::Protocol;
use crate::ipam::IpamError;

/// Who holds a host port that berth was asked to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortOwner {
    /// A process with a socket bound to the port.
    Process { pid: u32, name: String },
    /// A socket whose process could not be found (another netns's, or gone).
    Socket { inode: u64 },
    /// Another port of the same request asks for it.
    SameRequest,
    /// Another berth attachment publishes it.
    Container {
        container: String,
        project: Option<String>,
        network: String,
    },
}

impl std::fmt::Display for PortOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortOwner::Process { pid, name } => write!(f, "process {name} (pid {pid})"),
            PortOwner::Socket { inode } => {
                write!(f, "a socket (inode {inode}) of no visible process")
            }
            PortOwner::SameRequest => write!(f, "another port of the same request"),
            PortOwner::Container {
                container,
                project: Some(p),
                network,
            } => write!(
                f,
                "container {container} of project {p} (network {network})"
            ),
            PortOwner::Container {
                container,
                project: None,
                network,
            } => write!(f, "container {container} (network {network})"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("invalid network name {0:?}: must match [a-zA-Z0-9][a-zA-Z0-9_.-]*")]
    InvalidName(String),
    #[error("invalid interface name {0:?}: 1 to 15 bytes, no '/', ':' or whitespace")]
    InvalidInterfaceName(String),
    #[error("invalid MAC address {0:?}")]
    InvalidMac(String),
    #[error("network {0} not found")]
    NotFound(String),
    #[error("network {network}: {source}")]
    Ipam {
        network: String,
        #[source]
        source: IpamError,
    },
    #[error("bridge name {bridge} of network {network} is already used by network {other}")]
    BridgeTaken {
        network: String,
        bridge: String,
        other: String,
    },
    #[error("interface {ifname} already exists in {netns}")]
    InterfaceExists { ifname: String, netns: PathBuf },
    #[error("network {network} has no {family} subnet for static address {addr}")]
    NoSubnet {
        network: String,
        family: &'static str,
        addr: IpAddr,
    },
    #[error("invalid port mapping {0}")]
    InvalidPort(String),
    #[error("port {host_ip}:{port}/{} is already taken by {owner}", protocol.as_str())]
    PortTaken {
        protocol: Protocol,
        host_ip: String,
        port: u16,
        owner: PortOwner,
    },
    #[error("no free host port in {first}-{last}/{}", protocol.as_str())]
    NoFreePort {
        protocol: Protocol,
        first: u16,
        last: u16,
    },
    #[error("{path}: {source}")]
    State {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: corrupt state: {source}")]
    CorruptState {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("netlink: {op} {object}: {source}")]
    Netlink {
        op: &'static str,
        object: String,
        #[source]
        source: std::io::Error,
    },
    #[error("network namespace {path}: {source}")]
    Netns {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sysctl {path}: {source}")]
    Sysctl {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("nft: {message}")]
    Nft { message: String },
    #[error("could not run {program}: {source}")]
    Spawn {
        program: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} {args}: {message}")]
    Iptables {
        program: &'static str,
        args: String,
        message: String,
    },
    #[error(
        "IPv6 address {addr} on {ifname} was not usable (no local route) after {waited_ms} ms"
    )]
    AddressNotReady {
        addr: IpAddr,
        ifname: String,
        waited_ms: u64,
    },
    #[error("port proxy of container {container} on network {network}: {source}")]
    Proxy {
        container: String,
        network: String,
        #[source]
        source: crate::proxy::ProxyError,
    },
    #[error("port {port} is published on IPv6 loopback, which needs the userland port proxy, and none is configured (Networks::with_port_proxy)")]
    NoPortProxy { port: u16 },
    #[error("several errors: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Many(Vec<NetworkError>),
}

impl NetworkError {
    pub(crate) fn netlink(
        op: &'static str,
        object: impl Into<String>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let object = object.into();
        move |source| NetworkError::Netlink { op, object, source }
    }
    pub(crate) fn state(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| NetworkError::State { path, source }
    }
}
