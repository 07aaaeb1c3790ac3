//! The plain inputs and outputs of `Networks`: what the engine hands in and
//! what it gets back. No Compose words beyond what the kernel needs.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ipam::Subnet;

/// A network to ensure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The network's name (Compose's `project_name`); `[A-Za-z0-9][A-Za-z0-9_.-]*`.
    pub name: String,
    /// Bridge name to use instead of `br-<id>` (Docker's
    /// `com.docker.network.bridge.name`); at most 15 bytes.
    pub bridge: Option<String>,
    /// No traffic leaves or enters the network except between its members.
    pub internal: bool,
    /// Give the network an IPv6 subnet (a ULA /64 unless one is configured).
    pub enable_ipv6: bool,
    /// `ipam.config` entries; empty means "one IPv4 subnet from the default pool".
    pub ipam: Vec<IpamConfig>,
    /// Kept with the network, returned by `get`/`list` (the engine's labels).
    pub labels: BTreeMap<String, String>,
    /// MTU for the bridge and veths; default: the host default route's device.
    pub mtu: Option<u32>,
}

/// One `ipam.config` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpamConfig {
    pub subnet: Option<Subnet>,
    pub ip_range: Option<Subnet>,
    pub gateway: Option<IpAddr>,
    pub aux_addresses: BTreeMap<String, IpAddr>,
}

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// A port to publish, as Compose's long syntax has it.
///
/// `host_ports` is `None` for "any free ephemeral port", a single port, or a
/// range. With as many host ports as container ports they map one to one;
/// with one container port and a host range, the first free host port of the
/// range is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub protocol: Protocol,
    /// Only connections to this host address are forwarded (`None`: any).
    pub host_ip: Option<IpAddr>,
    pub host_ports: Option<(u16, u16)>,
    pub container_ports: (u16, u16),
}

/// One forwarded port, resolved: what the firewall renders and what
/// `docker compose port` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PublishedPort {
    pub protocol: Protocol,
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
}

/// Attach a container (its network namespace) to a network.
#[derive(Debug, Clone, Default)]
pub struct AttachConfig {
    pub network: String,
    pub container_id: String,
    /// Shown as the owner of the container's published ports (e.g. `proj-web-1`).
    pub container_name: Option<String>,
    /// Shown with the owner of published ports.
    pub project: Option<String>,
    /// A bind-mounted or `/proc/<pid>/ns/net` network namespace.
    pub netns_path: PathBuf,
    /// Interface name inside the container; default the first free `ethN`.
    pub interface_name: Option<String>,
    pub ipv4: Option<IpAddr>,
    pub ipv6: Option<IpAddr>,
    /// `aa:bb:cc:dd:ee:ff`; default derived from the address (02:42:…).
    pub mac: Option<String>,
    /// Install the default route(s) via this network's gateway(s).
    pub default_route: bool,
    /// Ports to publish to this attachment. They are checked before anything
    /// is created and rendered into the firewall in the same call.
    pub ports: Vec<PortSpec>,
}

/// A network as it exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub bridge: String,
    pub internal: bool,
    pub enable_ipv6: bool,
    pub mtu: u32,
    pub subnets: Vec<crate::ipam::Pool>,
    pub labels: BTreeMap<String, String>,
}

/// A made attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub network: String,
    pub container_id: String,
    /// Interface name inside the container.
    pub ifname: String,
    /// The veth end on the host, enslaved to the bridge.
    pub host_ifname: String,
    pub ipv4: Option<IpAddr>,
    pub ipv6: Option<IpAddr>,
    /// Prefix lengths of the addresses (for the container's view).
    pub ipv4_prefix_len: Option<u8>,
    pub ipv6_prefix_len: Option<u8>,
    pub mac: String,
    pub gateway: Option<IpAddr>,
    pub gateway6: Option<IpAddr>,
    pub ports: Vec<PublishedPort>,
    pub container_name: Option<String>,
    pub project: Option<String>,
}
