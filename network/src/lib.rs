//! berth's container networking: bridges, veth pairs, addresses and routes over
//! rtnetlink, IPAM, nftables rules, published ports and the DNS server.
//!
//! It knows nothing of Compose: the engine hands it plain network and
//! attachment configs ([`NetworkConfig`], [`AttachConfig`]) and gets plain
//! results back ([`Network`], [`Attachment`]). Every change takes the state
//! directory's lock, checks its input, writes the state first and then makes
//! the kernel objects it describes, undoing them on failure.
//!
//! ```text
//! Networks::new(root, run)            root = $BERTH_ROOT/networks, run = $BERTH_RUN/networks
//!   .ensure(&NetworkConfig)           idempotent; bridge br-<12 hex of id>, gateway, NAT, sysctls
//!   .remove(name)                     its veths, bridge, rules, leases; missing = Ok
//!   .get(name) / .list() / .attachments(name)
//!   .create_netns(id) / .delete_netns(id) / .netns_path(id)   namespaces held by bind mounts
//!   .check_ports(&[PortSpec])         resolve ports, or PortTaken{port, owner}; changes nothing
//!   .attach(&AttachConfig)            veth (peer made inside the netns), address, MAC, routes,
//!                                     published ports (given here, in AttachConfig::ports)
//!   .detach(network, container_id, Some(netns))
//!   .release(network, container_id)  the lease only: the veth dies with the netns deleted next
//!   .sync_firewall()                  rewrite the nft table from disk (after a reboot, or after
//!                                     Docker started and set FORWARD to DROP)
//!   .sync_docker_user()               only the DOCKER-USER rules, and only if Docker's chain
//!                                     exists (µs when it does not): every `up` calls it
//!   .with_port_proxy(cmd)             the userland proxy serving ports published on ::1
//!                                     (`proxy`), one process per attachment that needs it
//! ```
//!
//! `network_mode: host/none/container:x` are the engine's choice of network
//! namespace and need nothing from here but [`Networks::create_netns`] (for
//! `none`, a namespace with only `lo` up). Everything happens in the calling
//! thread's network namespace (the "host"); container ends are created
//! directly inside the container's namespace, which is entered only on
//! short-lived threads of this crate.

pub mod config;
pub mod dns;
pub mod error;
pub mod firewall;
pub mod ipam;
mod liveness;
pub mod netlink;
pub mod ports;
pub mod proxy;
pub mod state;
pub mod sys;

use std::collections::BTreeSet;
use std::io::Read as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use config::{
    AttachConfig, Attachment, IpamConfig, Network, NetworkConfig, PortSpec, Protocol, PublishedPort,
};
pub use error::{NetworkError, PortOwner};
pub use ipam::{Pool, Subnet};

use ipam::IpamError;
use netlink::Netlink;
use state::{NetworkState, Store};
use sys::netns::Netns;

/// The default nftables table (family `inet`).
pub const DEFAULT_TABLE: &str = "berth";

/// berth's networks on this host.
#[derive(Debug, Clone)]
pub struct Networks {
    store: Store,
    run: PathBuf,
    table: String,
    proxy: Option<proxy::ProxyCommand>,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && name.len() <= 200
}

fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
}

fn random_id() -> String {
    let mut b = [0u8; 32];
    let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if ok.is_err() {
        let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
        b.copy_from_slice(&Sha256::digest(seed.as_bytes()));
    }
    hex::encode(b)
}

fn write_sysctl(path: &str, value: &str) -> Result<(), NetworkError> {
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(path, value).map_err(|source| NetworkError::Sysctl {
        path: path.into(),
        source,
    })
}

fn host_netlink() -> Result<Netlink, NetworkError> {
    Netlink::open().map_err(NetworkError::netlink("open", "rtnetlink socket"))
}

impl Networks {
    /// `root`: the state directory (`$BERTH_ROOT/networks`); `run`: the
    /// runtime directory (`$BERTH_RUN/networks`), for what does not survive a reboot.
    pub fn new(root: PathBuf, run: PathBuf) -> Self {
        Self {
            store: Store::new(root),
            run,
            table: DEFAULT_TABLE.to_owned(),
            proxy: None,
        }
    }

    /// The program that runs the userland proxy for ports published on IPv6
    /// loopback (see [`proxy`]). Without one, publishing on `::1` itself is
    /// refused, and ports published on every address do not answer on `::1`.
    pub fn with_port_proxy(mut self, command: proxy::ProxyCommand) -> Self {
        self.proxy = Some(command);
        self
    }

    /// Where the port proxy of a container's attachment keeps its pid.
    pub fn proxy_pidfile(&self, network: &str, container_id: &str) -> PathBuf {
        self.run
            .join("proxy")
            .join(network)
            .join(format!("{container_id}.pid"))
    }

    fn stop_proxy(&self, network: &str, container_id: &str) -> Result<(), NetworkError> {
        let pidfile = self.proxy_pidfile(network, container_id);
        let r = proxy::stop(&pidfile).map_err(|source| NetworkError::Proxy {
            container: container_id.to_owned(),
            network: network.to_owned(),
            source,
        });
        if let Some(dir) = pidfile.parent() {
            let _ = std::fs::remove_dir(dir);
        }
        r
    }

    /// Start the port proxy of every attachment that needs one and has none
    /// running (it was killed, or the host rebooted); the number started.
    pub fn ensure_port_proxies(&self) -> Result<usize, NetworkError> {
        if self.proxy.is_none() {
            return Ok(0);
        }
        let _lock = self.store.lock()?;
        let mut started = 0;
        for s in self.store.all()? {
            if s.network.internal {
                continue;
            }
            for a in s.leases.values() {
                if proxy::rules_for(a).is_empty() {
                    continue;
                }
                let pidfile = self.proxy_pidfile(&s.network.name, &a.container_id);
                let alive = proxy::running(&pidfile).map_err(|source| NetworkError::Proxy {
                    container: a.container_id.clone(),
                    network: s.network.name.clone(),
                    source,
                })?;
                if alive.is_none() {
                    self.start_proxy(a, false)?;
                    started += 1;
                }
            }
        }
        Ok(started)
    }

    /// Ports of internal networks are not published at all, on ::1 neither.
    fn start_proxy(&self, a: &Attachment, internal: bool) -> Result<(), NetworkError> {
        let rules = proxy::rules_for(a);
        if rules.is_empty() || internal {
            return Ok(());
        }
        let Some(cmd) = &self.proxy else {
            // Without a proxy, ports published on every address simply do not
            // answer on ::1 (as before there was one); asking for ::1 itself
            // is refused.
            let explicit = a
                .ports
                .iter()
                .find(|p| p.host_ip.is_some_and(|ip| ip.is_ipv6() && ip.is_loopback()));
            return match explicit {
                Some(p) => Err(NetworkError::NoPortProxy { port: p.host_port }),
                None => Ok(()),
            };
        };
        proxy::start(
            cmd,
            &self.proxy_pidfile(&a.network, &a.container_id),
            &rules,
        )
        .map(|_| ())
        .map_err(|source| NetworkError::Proxy {
            container: a.container_id.clone(),
            network: a.network.clone(),
            source,
        })
    }

    /// Use another nftables table than `inet berth` (tests sharing a namespace).
    pub fn with_firewall_table(mut self, table: &str) -> Self {
        self.table = table.to_owned();
        self
    }

    /// The runtime directory given to [`Networks::new`].
    pub fn run_dir(&self) -> &Path {
        &self.run
    }

    /// Where the network namespace of `container_id` is bind-mounted:
    /// `<run>/netns/<container_id>`.
    pub fn netns_path(&self, container_id: &str) -> PathBuf {
        self.run.join("netns").join(container_id)
    }

    /// Make a fresh network namespace for a container (`lo` up), held at
    /// [`Networks::netns_path`] until [`Networks::delete_netns`], so a
    /// restarted container keeps its interfaces and addresses.
    pub fn create_netns(&self, container_id: &str) -> Result<PathBuf, NetworkError> {
        if !valid_name(container_id) {
            return Err(NetworkError::InvalidName(container_id.to_owned()));
        }
        let path = self.netns_path(container_id);
        Netns::create(&path).map_err(|source| NetworkError::Netns {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }

    /// Release a namespace made by [`Networks::create_netns`]; missing is fine.
    pub fn delete_netns(&self, container_id: &str) -> Result<(), NetworkError> {
        let path = self.netns_path(container_id);
        Netns::destroy(&path).map_err(|source| NetworkError::Netns { path, source })
    }

    /// The network called `name`, if it exists.
    pub fn get(&self, name: &str) -> Result<Option<Network>, NetworkError> {
        Ok(self.store.load(name)?.map(|s| s.network))
    }

    /// Every network, sorted by name.
    pub fn list(&self) -> Result<Vec<Network>, NetworkError> {
        Ok(self.store.all()?.into_iter().map(|s| s.network).collect())
    }

    /// The attachments (leases) of a network.
    pub fn attachments(&self, name: &str) -> Result<Vec<Attachment>, NetworkError> {
        let s = self
            .store
            .load(name)?
            .ok_or_else(|| NetworkError::NotFound(name.to_owned()))?;
        Ok(s.leases.into_values().collect())
    }

    /// Create the network if it does not exist (and repair its bridge if it
    /// is gone, e.g. after a reboot); return it as it is.
    pub fn ensure(&self, cfg: &NetworkConfig) -> Result<Network, NetworkError> {
        if !valid_name(&cfg.name) {
            return Err(NetworkError::InvalidName(cfg.name.clone()));
        }
        if let Some(b) = &cfg.bridge {
            if !valid_ifname(b) {
                return Err(NetworkError::InvalidInterfaceName(b.clone()));
            }
        }
        let _lock = self.store.lock()?;
        let mut nl = host_netlink()?;
        if let Some(state) = self.store.load(&cfg.name)? {
            // The firewall is rewritten only when the bridge had to be made
            // again (after a reboot); `sync_firewall` is there for the rest.
            let present = nl
                .link_by_name(&state.network.bridge)
                .map_err(NetworkError::netlink("get link", &state.network.bridge))?
                .is_some();
            if !present {
                self.setup_bridge(&mut nl, &state.network)?;
                self.sync_locked(true)?;
            }
            return Ok(state.network);
        }
        let others = self.store.all()?;
        let network = self.plan_network(cfg, &others, &mut nl)?;
        let mut state = NetworkState {
            network: network.clone(),
            leases: Default::default(),
            last_ipv4: None,
            last_ipv6: None,
            generation: 0,
        };
        self.store.save(&mut state)?;
        let made = self
            .setup_bridge(&mut nl, &network)
            .and_then(|_| self.sync_locked(true));
        if let Err(e) = made {
            let _ = nl.delete_link(&network.bridge);
            let _ = self.store.delete(&network.name);
            let _ = self.sync_locked(false);
            return Err(e);
        }
        tracing::debug!(network = %network.name, bridge = %network.bridge, "network created");
        Ok(network)
    }

    /// Validate a config against the host and the other networks; nothing is changed.
    fn plan_network(
        &self,
        cfg: &NetworkConfig,
        others: &[NetworkState],
        nl: &mut Netlink,
    ) -> Result<Network, NetworkError> {
        let ipam_err = |source| NetworkError::Ipam {
            network: cfg.name.clone(),
            source,
        };
        let id = random_id();
        let bridge = cfg
            .bridge
            .clone()
            .unwrap_or_else(|| format!("br-{}", &id[..12]));
        if let Some(o) = others.iter().find(|o| o.network.bridge == bridge) {
            return Err(NetworkError::BridgeTaken {
                network: cfg.name.clone(),
                bridge,
                other: o.network.name.clone(),
            });
        }
        if nl
            .link_by_name(&bridge)
            .map_err(NetworkError::netlink("get link", &bridge))?
            .is_some()
        {
            return Err(NetworkError::BridgeTaken {
                network: cfg.name.clone(),
                bridge,
                other: "(a host interface not made by berth)".into(),
            });
        }
        // Subnets of other berth networks: user subnets must not overlap them.
        let berth_taken: Vec<(Subnet, String)> = others
            .iter()
            .flat_map(|o| {
                o.network
                    .subnets
                    .iter()
                    .map(move |p| (p.subnet, o.network.name.clone()))
            })
            .collect();
        let mut pools: Vec<Pool> = Vec::new();
        let check_overlap = |s: Subnet, pools: &[Pool]| -> Result<(), NetworkError> {
            if let Some((o, n)) = berth_taken.iter().find(|(o, _)| o.overlaps(&s)) {
                return Err(ipam_err(IpamError::Overlap {
                    subnet: s,
                    other: *o,
                    network: n.clone(),
                }));
            }
            if let Some(p) = pools.iter().find(|p| p.subnet.overlaps(&s)) {
                return Err(ipam_err(IpamError::Overlap {
                    subnet: s,
                    other: p.subnet,
                    network: cfg.name.clone(),
                }));
            }
            Ok(())
        };
        let mut host_taken: Option<Vec<Subnet>> = None;
        for c in &cfg.ipam {
            let aux: Vec<IpAddr> = c.aux_addresses.values().copied().collect();
            let subnet = match c.subnet {
                Some(s) => s,
                None => {
                    if c.gateway.is_some() || c.ip_range.is_some() {
                        return Err(ipam_err(IpamError::InvalidSubnet(
                            "(none): gateway and ip_range need a subnet".into(),
                        )));
                    }
                    let taken = self.taken_subnets(nl, &mut host_taken, &berth_taken, &pools)?;
                    ipam::pick_from_pool(&taken).map_err(ipam_err)?
                }
            };
            check_overlap(subnet, &pools)?;
            pools.push(Pool::resolve(subnet, c.ip_range, c.gateway, &aux).map_err(ipam_err)?);
        }
        if !pools.iter().any(|p| p.subnet.is_ipv4()) {
            let taken = self.taken_subnets(nl, &mut host_taken, &berth_taken, &pools)?;
            let s = ipam::pick_from_pool(&taken).map_err(ipam_err)?;
            pools.insert(0, Pool::resolve(s, None, None, &[]).map_err(ipam_err)?);
        }
        let has_v6 = pools.iter().any(|p| !p.subnet.is_ipv4());
        if cfg.enable_ipv6 && !has_v6 {
            let taken = self.taken_subnets(nl, &mut host_taken, &berth_taken, &pools)?;
            let s = ipam::ula_subnet(&id, &taken).map_err(ipam_err)?;
            pools.push(Pool::resolve(s, None, None, &[]).map_err(ipam_err)?);
        }
        let mtu = match cfg.mtu {
            Some(m) => m,
            None => default_route_mtu(nl)?,
        };
        Ok(Network {
            enable_ipv6: cfg.enable_ipv6 || has_v6,
            id,
            name: cfg.name.clone(),
            bridge,
            internal: cfg.internal,
            mtu,
            subnets: pools,
            labels: cfg.labels.clone(),
        })
    }

    /// Host routes and addresses (read once), other networks and this one's pools.
    fn taken_subnets(
        &self,
        nl: &mut Netlink,
        host: &mut Option<Vec<Subnet>>,
        berth: &[(Subnet, String)],
        pools: &[Pool],
    ) -> Result<Vec<Subnet>, NetworkError> {
        if host.is_none() {
            let mut v = Vec::new();
            for r in nl
                .routes()
                .map_err(NetworkError::netlink("dump", "routes"))?
            {
                if r.prefix_len == 0 {
                    continue;
                }
                if let Some(s) = r
                    .destination
                    .and_then(|d| Subnet::containing(d, r.prefix_len))
                {
                    v.push(s);
                }
            }
            for (_, addr, len) in nl
                .addresses()
                .map_err(NetworkError::netlink("dump", "addresses"))?
            {
                if addr.is_loopback() {
                    continue;
                }
                if let Some(s) = Subnet::containing(addr, len) {
                    v.push(s);
                }
            }
            *host = Some(v);
        }
        let mut taken = host.clone().unwrap_or_default();
        taken.extend(berth.iter().map(|(s, _)| *s));
        taken.extend(pools.iter().map(|p| p.subnet));
        Ok(taken)
    }

    /// Make the bridge exist with its addresses, up, and its sysctls set.
    fn setup_bridge(&self, nl: &mut Netlink, n: &Network) -> Result<u32, NetworkError> {
        let link = match nl
            .link_by_name(&n.bridge)
            .map_err(NetworkError::netlink("get link", &n.bridge))?
        {
            Some(l) => l,
            None => {
                let gw = n.subnets.first().map(|p| p.gateway);
                let mac = gw.map(ipam::mac_for).unwrap_or([0x02, 0x42, 0, 0, 0, 1]);
                nl.add_bridge(&n.bridge, n.mtu, mac)
                    .map_err(NetworkError::netlink("create bridge", &n.bridge))?;
                nl.link_by_name(&n.bridge)
                    .map_err(NetworkError::netlink("get link", &n.bridge))?
                    .ok_or_else(|| NetworkError::Netlink {
                        op: "create bridge",
                        object: n.bridge.clone(),
                        source: std::io::Error::from_raw_os_error(libc::ENODEV),
                    })?
            }
        };
        // route_localnet lets host connections to 127.0.0.1 be DNATed onto the bridge.
        write_sysctl(
            &format!("/proc/sys/net/ipv4/conf/{}/route_localnet", n.bridge),
            "1",
        )?;
        if n.subnets.iter().any(|p| !p.subnet.is_ipv4()) {
            // No duplicate address detection on the bridge (as Docker and
            // netavark do): its link-local address would otherwise stay
            // tentative for a second after the first port comes up, and in
            // that second replies routed to the host through the bridge (a
            // container answering a DNATed IPv6 connection via its default
            // route) are lost, so the first such connection times out. The
            // gateway addresses are added with `nodad` anyway.
            write_sysctl(
                &format!("/proc/sys/net/ipv6/conf/{}/accept_dad", n.bridge),
                "0",
            )?;
        }
        for p in &n.subnets {
            nl.add_address(link.index, p.gateway, p.subnet.prefix_len())
                .map_err(NetworkError::netlink("add address", &n.bridge))?;
        }
        nl.set_up(link.index, None)
            .map_err(NetworkError::netlink("set up", &n.bridge))?;
        if !n.internal {
            write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
            if n.subnets.iter().any(|p| !p.subnet.is_ipv4()) {
                write_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1")?;
            }
        }
        Ok(link.index)
    }

    /// Remove a network: its veths, its bridge, its firewall rules and its
    /// leases. A missing network is not an error. Every step is tried; all
    /// failures are reported together.
    pub fn remove(&self, name: &str) -> Result<(), NetworkError> {
        let _lock = self.store.lock()?;
        let Some(state) = self.store.load(name)? else {
            return Ok(());
        };
        let mut errors = Vec::new();
        let mut nl = host_netlink()?;
        for lease in state.leases.values() {
            if let Err(e) = self.stop_proxy(name, &lease.container_id) {
                errors.push(e);
            }
            if let Err(e) = nl.delete_link(&lease.host_ifname) {
                errors.push(NetworkError::netlink("delete veth", &lease.host_ifname)(e));
            }
        }
        if let Err(e) = nl.delete_link(&state.network.bridge) {
            errors.push(NetworkError::netlink(
                "delete bridge",
                &state.network.bridge,
            )(e));
        }
        firewall::docker_user_forget(&state.network.bridge);
        if let Err(e) = self.store.delete(name) {
            errors.push(e);
        }
        if let Err(e) = self.sync_locked(false) {
            errors.push(e);
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(NetworkError::Many(errors)),
        }
    }

    /// Rewrite berth's nftables table from the on-disk state, in one atomic
    /// transaction, and (with Docker present) its `DOCKER-USER` rules.
    pub fn sync_firewall(&self) -> Result<(), NetworkError> {
        let _lock = self.store.lock()?;
        self.sync_locked(true)
    }

    /// Give every berth bridge its `DOCKER-USER` rules if Docker's chains
    /// exist (Docker may have started since the networks were made: its
    /// FORWARD policy DROP would cut them off). Costs microseconds when
    /// Docker is absent, so the engine calls it on every `up` that starts
    /// containers. Returns whether Docker's chains were found.
    pub fn sync_docker_user(&self) -> Result<bool, NetworkError> {
        if !firewall::docker_chains_present() {
            return Ok(false);
        }
        let _lock = self.store.lock()?;
        let states = self.store.all()?;
        let bridges: Vec<&str> = states.iter().map(|s| s.network.bridge.as_str()).collect();
        if !bridges.is_empty() {
            firewall::docker_user_accept(&bridges)?;
        }
        Ok(true)
    }

    fn sync_locked(&self, docker_user: bool) -> Result<(), NetworkError> {
        let states = self.store.all()?;
        firewall::apply(&firewall::render(&self.table, &states))?;
        if docker_user && !states.is_empty() {
            let bridges: Vec<&str> = states.iter().map(|s| s.network.bridge.as_str()).collect();
            firewall::docker_user_accept(&bridges)?;
        }
        Ok(())
    }

    fn port_holders(&self, states: &[NetworkState], skip: Option<(&str, &str)>) -> ports::Taken {
        let mut berth = Vec::new();
        for s in states {
            for (cid, lease) in &s.leases {
                if skip == Some((s.network.name.as_str(), cid.as_str())) {
                    continue;
                }
                for p in &lease.ports {
                    berth.push((
                        *p,
                        PortOwner::Container {
                            container: lease.container_name.clone().unwrap_or_else(|| cid.clone()),
                            project: lease.project.clone(),
                            network: s.network.name.clone(),
                        },
                    ));
                }
            }
        }
        ports::Taken::new(ports::host_sockets(), berth)
    }

    /// Resolve ports to publish against what holds host ports now (host
    /// processes, other berth containers), without changing anything. The
    /// first taken port is reported with its owner.
    pub fn check_ports(&self, specs: &[PortSpec]) -> Result<Vec<PublishedPort>, NetworkError> {
        let states = self.store.all()?;
        self.port_holders(&states, None)
            .resolve(specs, ports::ephemeral_range())
    }

    /// Attach a container's network namespace to a network: a veth pair
    /// (container end made inside the namespace), an address, the MAC, the
    /// default route if asked, and the published ports. Everything is
    /// checked before anything is made; on failure nothing stays behind.
    /// Attaching an attached container returns its attachment.
    pub fn attach(&self, cfg: &AttachConfig) -> Result<Attachment, NetworkError> {
        if let Some(i) = &cfg.interface_name {
            if !valid_ifname(i) {
                return Err(NetworkError::InvalidInterfaceName(i.clone()));
            }
        }
        let mac_given = match &cfg.mac {
            Some(m) => Some(ipam::parse_mac(m).ok_or_else(|| NetworkError::InvalidMac(m.clone()))?),
            None => None,
        };
        let netns = Netns::open(&cfg.netns_path).map_err(|source| NetworkError::Netns {
            path: cfg.netns_path.clone(),
            source,
        })?;
        let lock = self.store.lock()?;
        let mut state = self
            .store
            .load(&cfg.network)?
            .ok_or_else(|| NetworkError::NotFound(cfg.network.clone()))?;
        let net = state.network.clone();
        let mut nl = host_netlink()?;

        let previous = state.leases.get(&cfg.container_id).cloned();
        if let Some(prev) = &previous {
            if nl
                .link_by_name(&prev.host_ifname)
                .map_err(NetworkError::netlink("get link", &prev.host_ifname))?
                .is_some()
            {
                return Ok(prev.clone());
            }
        }

        // A re-attach (the veth went away): its old proxy would hold its own ports.
        if previous.is_some() {
            self.stop_proxy(&cfg.network, &cfg.container_id)?;
        }

        // Ports first: a taken port refuses the attach before anything exists.
        let published = if cfg.ports.is_empty() {
            Vec::new()
        } else {
            let states = self.store.all()?;
            self.port_holders(&states, Some((&cfg.network, &cfg.container_id)))
                .resolve(&cfg.ports, ports::ephemeral_range())?
        };

        // Addresses.
        let leased: BTreeSet<IpAddr> = state
            .leases
            .iter()
            .filter(|(c, _)| **c != cfg.container_id)
            .flat_map(|(_, l)| l.ipv4.into_iter().chain(l.ipv6))
            .collect();
        let holder = |ip: IpAddr| {
            state
                .leases
                .values()
                .find(|l| l.ipv4 == Some(ip) || l.ipv6 == Some(ip))
                .map(|l| {
                    format!(
                        "container {}",
                        l.container_name
                            .clone()
                            .unwrap_or_else(|| l.container_id.clone())
                    )
                })
                .unwrap_or_default()
        };
        let ipam_err = |source| NetworkError::Ipam {
            network: net.name.clone(),
            source,
        };
        let pick = |want: Option<IpAddr>,
                    v4: bool,
                    last: Option<IpAddr>|
         -> Result<Option<(IpAddr, &Pool)>, NetworkError> {
            let family: Vec<&Pool> = net
                .subnets
                .iter()
                .filter(|p| p.subnet.is_ipv4() == v4)
                .collect();
            match want {
                Some(ip) => {
                    let Some(pool) = family.iter().find(|p| p.subnet.contains(ip)) else {
                        if family.is_empty() {
                            return Err(NetworkError::NoSubnet {
                                network: net.name.clone(),
                                family: if v4 { "IPv4" } else { "IPv6" },
                                addr: ip,
                            });
                        }
                        return Err(ipam_err(IpamError::AddressOutside {
                            what: "address",
                            addr: ip,
                            subnet: family[0].subnet,
                        }));
                    };
                    pool.check_static(ip, &leased, holder).map_err(ipam_err)?;
                    Ok(Some((ip, pool)))
                }
                None => {
                    let mut last_err = None;
                    for pool in family {
                        match pool.allocate(&leased, last) {
                            Ok(ip) => return Ok(Some((ip, pool))),
                            Err(e) => last_err = Some(e),
                        }
                    }
                    match last_err {
                        Some(e) => Err(ipam_err(e)),
                        None => Ok(None),
                    }
                }
            }
        };
        let want4 = cfg.ipv4.or(previous.as_ref().and_then(|p| p.ipv4));
        let want6 = cfg.ipv6.or(previous.as_ref().and_then(|p| p.ipv6));
        if let Some(ip) = cfg.ipv4 {
            if !ip.is_ipv4() {
                return Err(ipam_err(IpamError::AddressOutside {
                    what: "ipv4_address",
                    addr: ip,
                    subnet: net.subnets[0].subnet,
                }));
            }
        }
        let v4 = pick(want4, true, state.last_ipv4)?;
        let v6 = pick(want6, false, state.last_ipv6)?;
        let mac = mac_given
            .or(v4.map(|(ip, _)| ipam::mac_for(ip)))
            .or(v6.map(|(ip, _)| ipam::mac_for(ip)))
            .unwrap_or([0x02, 0x42, 0, 0, 0, 2]);

        // Interface name inside the container.
        let mut ns_nl = netns.netlink().map_err(|source| NetworkError::Netns {
            path: cfg.netns_path.clone(),
            source,
        })?;
        let ifname = match &cfg.interface_name {
            Some(i) => {
                if ns_nl
                    .link_by_name(i)
                    .map_err(NetworkError::netlink("get link", i))?
                    .is_some()
                {
                    return Err(NetworkError::InterfaceExists {
                        ifname: i.clone(),
                        netns: cfg.netns_path.clone(),
                    });
                }
                i.clone()
            }
            None => {
                let names: BTreeSet<String> = ns_nl
                    .links()
                    .map_err(NetworkError::netlink("dump", "links"))?
                    .into_iter()
                    .map(|l| l.name)
                    .collect();
                // A re-attach (the veth went away) keeps its name if it can.
                let prev = previous.as_ref().map(|p| p.ifname.clone());
                prev.filter(|p| !names.contains(p)).unwrap_or_else(|| {
                    (0..)
                        .map(|n| format!("eth{n}"))
                        .find(|n| !names.contains(n))
                        .unwrap_or_default()
                })
            }
        };
        let host_ifname = {
            let h = Sha256::digest(format!("{}/{}", net.id, cfg.container_id).as_bytes());
            format!("veth{}", &hex::encode(h)[..11])
        };
        let attachment = Attachment {
            network: net.name.clone(),
            container_id: cfg.container_id.clone(),
            ifname,
            host_ifname,
            ipv4: v4.map(|(ip, _)| ip),
            ipv6: v6.map(|(ip, _)| ip),
            ipv4_prefix_len: v4.map(|(_, p)| p.subnet.prefix_len()),
            ipv6_prefix_len: v6.map(|(_, p)| p.subnet.prefix_len()),
            mac: ipam::format_mac(mac),
            gateway: v4.map(|(_, p)| p.gateway),
            gateway6: v6.map(|(_, p)| p.gateway),
            ports: published,
            container_name: cfg.container_name.clone(),
            project: cfg.project.clone(),
        };

        // On disk before in the kernel.
        if let Some(ip) = attachment.ipv4 {
            state.last_ipv4 = Some(ip);
        }
        if let Some(ip) = attachment.ipv6 {
            state.last_ipv6 = Some(ip);
        }
        state
            .leases
            .insert(cfg.container_id.clone(), attachment.clone());
        self.store.save(&mut state)?;
        let bridge = match nl
            .link_by_name(&net.bridge)
            .map_err(NetworkError::netlink("get link", &net.bridge))?
        {
            Some(l) => Ok(l.index),
            None => self.setup_bridge(&mut nl, &net),
        };

        // The lease is on disk: the kernel work (veth, addresses, routes,
        // the IPv6 wait) needs no lock, and containers started together
        // are plumbed together. The firewall and the proxies, which read
        // every network's state, are done under the lock again.
        drop(lock);
        let made = bridge.and_then(|bridge| {
            self.plumb(
                &mut nl,
                &mut ns_nl,
                &netns,
                &net,
                &attachment,
                mac,
                bridge,
                cfg.default_route,
            )
        });
        let lock = if made.is_ok() && attachment.ports.is_empty() {
            None
        } else {
            Some(self.store.lock()?)
        };
        let made = made.and_then(|()| {
            if attachment.ports.is_empty() {
                Ok(())
            } else {
                self.sync_locked(false)?;
                self.start_proxy(&attachment, net.internal)
            }
        });
        if let Err(e) = made {
            let _ = self.stop_proxy(&cfg.network, &cfg.container_id);
            let _ = nl.delete_link(&attachment.host_ifname);
            if let Ok(Some(mut state)) = self.store.load(&cfg.network) {
                state.leases.remove(&cfg.container_id);
                if let Some(prev) = previous {
                    state.leases.insert(cfg.container_id.clone(), prev);
                }
                let _ = self.store.save(&mut state);
            }
            if !attachment.ports.is_empty() {
                let _ = self.sync_locked(false);
            }
            return Err(e);
        }
        drop(lock);
        tracing::debug!(network = %net.name, container = %cfg.container_id, ip = ?attachment.ipv4, "attached");
        Ok(attachment)
    }

    #[allow(clippy::too_many_arguments)]
    fn plumb(
        &self,
        nl: &mut Netlink,
        ns_nl: &mut Netlink,
        netns: &Netns,
        net: &Network,
        a: &Attachment,
        mac: [u8; 6],
        bridge: u32,
        default_route: bool,
    ) -> Result<(), NetworkError> {
        nl.add_veth(
            &a.host_ifname,
            &a.ifname,
            netns.file(),
            net.mtu,
            mac,
            bridge,
        )
        .map_err(NetworkError::netlink("create veth", &a.host_ifname))?;
        // A bridge port needs no IPv6 of its own; without it the port sends
        // no DAD, MLD or router solicitation, which the bridge would flood to
        // every other container on each attach. (addrgenmode cannot be given
        // at veth creation: EAFNOSUPPORT.) Not the `disable_ipv6` sysctl: its
        // handler only try-locks RTNL and restarts the write while another
        // attach holds it, so parallel attaches spun on it (6.5% of an
        // `up`'s CPU); this request waits for RTNL like any other. Hosts
        // without IPv6 refuse it, which is fine.
        match nl.set_no_ipv6_addresses_by_name(&a.host_ifname) {
            Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {}
            r => r.map_err(NetworkError::netlink("set addrgenmode", &a.host_ifname))?,
        }
        nl.set_up_by_name(&a.host_ifname)
            .map_err(NetworkError::netlink("set up", &a.host_ifname))?;

        let inner = ns_nl
            .link_by_name(&a.ifname)
            .map_err(NetworkError::netlink("get link", &a.ifname))?
            .ok_or_else(|| NetworkError::Netlink {
                op: "create veth peer",
                object: a.ifname.clone(),
                source: std::io::Error::from_raw_os_error(libc::ENODEV),
            })?;
        for (ip, len) in [(a.ipv4, a.ipv4_prefix_len), (a.ipv6, a.ipv6_prefix_len)] {
            if let (Some(ip), Some(len)) = (ip, len) {
                ns_nl
                    .add_address(inner.index, ip, len)
                    .map_err(NetworkError::netlink("add address", &a.ifname))?;
            }
        }
        if a.ipv6.is_none() {
            // IPv4-only: no link-local chatter from the container either.
            ns_nl
                .set_no_ipv6_addresses(inner.index)
                .map_err(NetworkError::netlink("set addrgenmode", &a.ifname))?;
        }
        ns_nl
            .set_up(inner.index, None)
            .map_err(NetworkError::netlink("set up", &a.ifname))?;
        if let Some(lo) = ns_nl
            .link_by_name("lo")
            .map_err(NetworkError::netlink("get link", "lo"))?
            .filter(|lo| !lo.up)
        {
            ns_nl
                .set_up(lo.index, None)
                .map_err(NetworkError::netlink("set up", "lo"))?;
        }
        if default_route && !net.internal {
            for gw in [a.gateway, a.gateway6].into_iter().flatten() {
                ns_nl
                    .add_default_route(gw)
                    .map_err(NetworkError::netlink("add default route", gw.to_string()))?;
            }
        }
        // The container's IPv6 address, and the gateway's once the bridge has
        // a port up, must be routed locally before anyone uses them.
        if let Some(ip) = a.ipv6 {
            wait_until_local(ns_nl, ip, &a.ifname)?;
        }
        if let Some(gw) = a.gateway6 {
            wait_until_local(nl, gw, &net.bridge)?;
        }
        Ok(())
    }

    /// Release a container's lease on a network (its address, its published
    /// ports, their firewall rules and proxy) without touching its veth
    /// pair; the lease released, if there was one. Missing network or lease
    /// is not an error.
    ///
    /// For a container whose own network namespace is destroyed right after
    /// ([`Networks::delete_netns`]): the kernel then deletes the pair with
    /// the namespace, in its cleanup worker, so the caller does not wait for
    /// the RCU grace period an `RTM_DELLINK` of a veth waits out (15-50 ms).
    /// The host end stays on the bridge for those few milliseconds; its
    /// name is the container's own and its address is not handed out again
    /// at once (IPAM goes round the pool), so nothing new collides with it.
    pub fn release(
        &self,
        network: &str,
        container_id: &str,
    ) -> Result<Option<Attachment>, NetworkError> {
        let _lock = self.store.lock()?;
        let Some(mut state) = self.store.load(network)? else {
            return Ok(None);
        };
        let Some(lease) = state.leases.remove(container_id) else {
            return Ok(None);
        };
        self.stop_proxy(network, container_id)?;
        self.store.save(&mut state)?;
        if !lease.ports.is_empty() {
            self.sync_locked(false)?;
        }
        Ok(Some(lease))
    }

    /// Detach a container from a network: delete its veth pair, release its
    /// lease and unpublish its ports. Missing network or lease is not an
    /// error. `netns_path` (when the container's namespace still exists) lets
    /// a container end whose host end is already gone be removed too.
    pub fn detach(
        &self,
        network: &str,
        container_id: &str,
        netns_path: Option<&Path>,
    ) -> Result<(), NetworkError> {
        // The veth goes after the lock (`release` holds it): deleting a
        // link waits for an RCU grace period (15-50 ms), and the kernel
        // overlaps those waits of links deleted at once, so containers
        // stopped together are detached together instead of one after
        // another. The lease is released already; the pair's names are the
        // container's own.
        let Some(lease) = self.release(network, container_id)? else {
            return Ok(());
        };
        let mut nl = host_netlink()?;
        let host_gone = nl
            .link_by_name(&lease.host_ifname)
            .map_err(NetworkError::netlink("get link", &lease.host_ifname))?
            .is_none();
        nl.delete_link(&lease.host_ifname)
            .map_err(NetworkError::netlink("delete veth", &lease.host_ifname))?;
        if host_gone {
            if let Some(p) = netns_path {
                if let Ok(ns) = Netns::open(p) {
                    if let Ok(mut ns_nl) = ns.netlink() {
                        let _ = ns_nl.delete_link(&lease.ifname);
                    }
                }
            }
        }
        Ok(())
    }
}

/// How long an IPv6 address may take to become usable before attach fails.
const ADDRESS_READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Wait until the kernel routes `addr` (on `ifname`) locally.
///
/// An IPv6 address is in the address list as soon as `RTM_NEWADDR` returns,
/// even with `IFA_F_NODAD`, but its `local` route is inserted later, by the
/// addrconf worker (`addrconf_dad_work` → `addrconf_dad_completed`, a
/// workqueue; on a bridge only once it has carrier, i.e. a port up). Until
/// then a packet to the address is forwarded or dropped as if it were a
/// neighbour's, so the first connection to a just-attached container (or the
/// first packet from it to its IPv6 gateway) is lost and only its TCP
/// retransmission, a second later, gets through. IPv4 local routes are added
/// synchronously and need no wait.
fn wait_until_local(nl: &mut Netlink, addr: IpAddr, ifname: &str) -> Result<(), NetworkError> {
    let start = std::time::Instant::now();
    let mut pause = std::time::Duration::from_micros(50);
    loop {
        if nl
            .routes_locally(addr)
            .map_err(NetworkError::netlink("get route", addr.to_string()))?
        {
            if start.elapsed() > std::time::Duration::from_millis(1) {
                tracing::debug!(%addr, ifname, waited = ?start.elapsed(), "IPv6 address ready");
            }
            return Ok(());
        }
        if start.elapsed() > ADDRESS_READY_TIMEOUT {
            return Err(NetworkError::AddressNotReady {
                addr,
                ifname: ifname.to_owned(),
                waited_ms: start.elapsed().as_millis() as u64,
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(2));
    }
}

/// MTU of the device of the host's IPv4 default route, 1500 without one.
fn default_route_mtu(nl: &mut Netlink) -> Result<u32, NetworkError> {
    let routes = nl
        .routes()
        .map_err(NetworkError::netlink("dump", "routes"))?;
    let Some(oif) = routes
        .iter()
        .find(|r| {
            r.prefix_len == 0 && r.destination.is_some_and(|d| d.is_ipv4()) && r.oif.is_some()
        })
        .and_then(|r| r.oif)
    else {
        return Ok(1500);
    };
    let links = nl.links().map_err(NetworkError::netlink("dump", "links"))?;
    Ok(links
        .iter()
        .find(|l| l.index == oif)
        .map(|l| l.mtu)
        .filter(|m| *m >= 1280)
        .unwrap_or(1500))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("proj_default"));
        assert!(valid_name("a.b-c"));
        assert!(!valid_name("_x"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(""));
        assert!(valid_ifname("eth0"));
        assert!(!valid_ifname("a-very-long-name0"));
        assert!(!valid_ifname("a/b"));
    }
}
