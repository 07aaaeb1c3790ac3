//! The engine's side of networking: Compose networks, ports and DNS names
//! translated into `berth-network`'s plain configs.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use berth_network::config::{
    AttachConfig, Attachment, IpamConfig, NetworkConfig, PortSpec, Protocol,
};
use berth_network::dns::{self, Cidr, DnsNetwork, DnsRecord, DnsTable};
use berth_network::Networks;

use super::state::Paths;
use crate::model::project::{Project, Service};

/// berth's networks, rooted in `$BERTH_ROOT/networks` and `$BERTH_RUN/networks`,
/// with berth itself (`berth system port-proxy`) as the userland proxy of
/// ports published on IPv6 loopback.
pub fn networks(paths: &Paths) -> Networks {
    let nets = Networks::new(paths.root.join("networks"), paths.run.join("networks"));
    match std::env::current_exe() {
        Ok(exe) => nets.with_port_proxy(berth_network::proxy::ProxyCommand {
            exe,
            args: vec!["system".into(), "port-proxy".into()],
        }),
        // Publishing on ::1 is then refused with the reason.
        Err(_) => nets,
    }
}

/// The DNS server's run directory (it keeps its files in `dns/` there).
pub fn dns_dir(paths: &Paths) -> PathBuf {
    paths.run.clone()
}

/// The project network whose real name is `name`: its key and definition.
fn project_network<'a>(
    project: &'a Project,
    name: &str,
) -> Option<(&'a String, &'a crate::model::project::Network)> {
    project
        .networks
        .iter()
        .find(|(k, n)| real_name(k, n) == name)
}

fn real_name(key: &str, n: &crate::model::project::Network) -> String {
    if n.name.is_empty() {
        key.to_owned()
    } else {
        n.name.clone()
    }
}

/// The real name of the project's network `key`.
pub fn network_name(project: &Project, key: &str) -> String {
    project
        .networks
        .get(key)
        .map_or_else(|| format!("{}_{key}", project.name), |n| real_name(key, n))
}

/// Creates (or finds) the project network called `name`.
pub fn ensure_network(paths: &Paths, project: &Project, name: &str) -> Result<()> {
    let (key, n) = project_network(project, name)
        .with_context(|| format!("network {name} is not declared in the project"))?;
    if !n.driver.is_empty() && n.driver != "bridge" {
        bail!(
            "network {key}: driver {:?} is not supported (only \"bridge\")",
            n.driver
        );
    }
    let mut ipam = Vec::new();
    for p in &n.ipam.config {
        let parse = |s: &str, what: &str| -> Result<Option<berth_network::ipam::Subnet>> {
            if s.is_empty() {
                return Ok(None);
            }
            Ok(Some(s.parse().map_err(|e| {
                anyhow::anyhow!("network {key}: invalid {what} {s:?}: {e}")
            })?))
        };
        let mut aux = BTreeMap::new();
        for (k, v) in &p.aux_addresses {
            let ip: IpAddr = v
                .parse()
                .with_context(|| format!("network {key}: aux_addresses.{k}"))?;
            aux.insert(k.clone(), ip);
        }
        ipam.push(IpamConfig {
            subnet: parse(&p.subnet, "subnet")?,
            ip_range: parse(&p.ip_range, "ip_range")?,
            gateway: if p.gateway.is_empty() {
                None
            } else {
                Some(
                    p.gateway
                        .parse()
                        .with_context(|| format!("network {key}: gateway {:?}", p.gateway))?,
                )
            },
            aux_addresses: aux,
        });
    }
    let mut labels: BTreeMap<String, String> = n
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert("com.docker.compose.project".into(), project.name.clone());
    labels.insert("com.docker.compose.network".into(), key.clone());
    let net = networks(paths)
        .ensure(&NetworkConfig {
            name: name.to_owned(),
            internal: n.internal,
            enable_ipv6: n.enable_ipv6.unwrap_or(false),
            ipam,
            labels,
            ..NetworkConfig::default()
        })
        .with_context(|| format!("creating network {name}"))?;
    let subnets: Vec<Cidr> = net
        .subnets
        .iter()
        .filter_map(|p| p.subnet.to_string().parse().ok())
        .collect();
    let gateways: Vec<IpAddr> = net.subnets.iter().map(|p| p.gateway).collect();
    DnsTable::update(&dns_dir(paths), |t| {
        // An existing network keeps the names of its attached containers.
        let records = t
            .networks
            .iter()
            .find(|x| x.name == name)
            .map(|x| x.records.clone())
            .unwrap_or_default();
        t.set_network(DnsNetwork {
            name: name.to_owned(),
            subnets,
            gateways,
            internal: n.internal,
            records,
        })
    })?;
    Ok(())
}

/// Removes a project network, its DNS table entry; the DNS server stops
/// when no network is left.
pub fn remove_network(paths: &Paths, name: &str) -> Result<()> {
    networks(paths)
        .remove(name)
        .with_context(|| format!("removing network {name}"))?;
    DnsTable::update(&dns_dir(paths), |t| t.remove_network(name))?;
    Ok(())
}

pub fn stop_dns_if_unused(paths: &Paths) {
    let _ = dns::stop_if_unused(&dns_dir(paths));
}

/// The service's ports as the network crate takes them.
pub fn port_specs(svc: &Service) -> Result<Vec<PortSpec>> {
    let mut out = Vec::new();
    for p in &svc.ports {
        let protocol = match p.protocol.as_str() {
            "" | "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            other => bail!(
                "service {:?}: port protocol {other:?} is not supported",
                svc.name
            ),
        };
        let host_ip = if p.host_ip.is_empty() {
            None
        } else {
            Some(
                p.host_ip
                    .parse()
                    .with_context(|| format!("service {:?}: host_ip {:?}", svc.name, p.host_ip))?,
            )
        };
        let host_ports = if p.published.is_empty() {
            None
        } else {
            let (a, b) = p
                .published
                .split_once('-')
                .unwrap_or((&p.published, &p.published));
            let a: u16 = a
                .parse()
                .with_context(|| format!("published port {:?}", p.published))?;
            let b: u16 = b
                .parse()
                .with_context(|| format!("published port {:?}", p.published))?;
            Some((a, b))
        };
        let target = u16::try_from(p.target).context("target port")?;
        out.push(PortSpec {
            protocol,
            host_ip,
            host_ports,
            container_ports: (target, target),
        });
    }
    Ok(out)
}

/// Refuses ports that are taken before anything is made.
pub fn check_ports(paths: &Paths, specs: &[PortSpec]) -> Result<()> {
    if specs.is_empty() {
        return Ok(());
    }
    networks(paths).check_ports(specs)?;
    Ok(())
}

/// What attaching gave a container.
pub struct Attached {
    pub attachments: Vec<Attachment>,
    /// Where its DNS server listens (the first network's gateway).
    pub nameserver: Option<IpAddr>,
}

/// Attaches the container's namespace to each of its networks (highest
/// priority first: the default route and the published ports go there),
/// and gives it DNS names.
#[allow(clippy::too_many_arguments)]
pub fn attach(
    paths: &Paths,
    project: &Project,
    svc: &Service,
    id: &str,
    name: &str,
    hostname: &str,
    netns: &Path,
) -> Result<Attached> {
    let net = networks(paths);
    let mut attachments = Vec::new();
    let mut ports = port_specs(svc)?;
    let order = svc.networks_by_priority();
    for (i, key) in order.iter().enumerate() {
        let real = network_name(project, key);
        let cfg = svc
            .networks
            .get(*key)
            .cloned()
            .flatten()
            .unwrap_or_default();
        let parse_ip = |s: &str| -> Result<Option<IpAddr>> {
            if s.is_empty() {
                Ok(None)
            } else {
                Ok(Some(s.parse().with_context(|| format!("address {s:?}"))?))
            }
        };
        let mac = if !cfg.mac_address.is_empty() {
            Some(cfg.mac_address.clone())
        } else if i == 0 && !svc.mac_address.is_empty() {
            Some(svc.mac_address.clone())
        } else {
            None
        };
        let a = net
            .attach(&AttachConfig {
                network: real.clone(),
                container_id: id.to_owned(),
                container_name: Some(name.to_owned()),
                project: Some(project.name.clone()),
                netns_path: netns.to_owned(),
                interface_name: (!cfg.interface_name.is_empty())
                    .then(|| cfg.interface_name.clone()),
                ipv4: parse_ip(&cfg.ipv4_address)?,
                ipv6: parse_ip(&cfg.ipv6_address)?,
                mac,
                default_route: i == 0,
                ports: if i == 0 {
                    std::mem::take(&mut ports)
                } else {
                    Vec::new()
                },
            })
            .with_context(|| format!("attaching {name} to network {real}"))?;
        let mut names = vec![svc.name.clone()];
        names.extend(cfg.aliases.iter().cloned());
        if !svc.hostname.is_empty() {
            names.push(svc.hostname.clone());
        }
        let _ = hostname;
        let dns_servers: Vec<IpAddr> = svc.dns.iter().filter_map(|d| d.parse().ok()).collect();
        let record = DnsRecord {
            container_id: id.to_owned(),
            container_name: name.to_owned(),
            names,
            ipv4: match a.ipv4 {
                Some(IpAddr::V4(v)) => Some(v),
                _ => None,
            },
            ipv6: match a.ipv6 {
                Some(IpAddr::V6(v)) => Some(v),
                _ => None,
            },
            dns: dns_servers,
            links: link_aliases(svc),
        };
        DnsTable::update(&dns_dir(paths), |t| t.attach(&real, record))??;
        attachments.push(a);
    }
    let nameserver = attachments.first().and_then(|a| a.gateway);
    if nameserver.is_some() {
        let exe = std::env::current_exe().context("finding the berth binary")?;
        dns::ensure_running(&dns_dir(paths), &exe, &["system", "dns-server"])
            .context("starting the DNS server")?;
    }
    Ok(Attached {
        attachments,
        nameserver,
    })
}

/// Docker's default bridge (`network_mode: bridge`, Docker's `docker0`): one
/// network per `$BERTH_ROOT` named `bridge`, belonging to no project, made
/// when a container first needs it and removed when the last one leaves.
/// As on Docker's, it has no DNS names (its containers use the host's
/// resolvers): they reach each other by address, or through `links`, which
/// go into `/etc/hosts` ([`bridge_link_hosts`]).
pub const DEFAULT_BRIDGE: &str = "bridge";

/// Attaches a `network_mode: bridge` container to the default bridge, with
/// its published ports; no DNS record, no nameserver of ours.
pub fn attach_default_bridge(
    paths: &Paths,
    project: &Project,
    svc: &Service,
    id: &str,
    name: &str,
    netns: &Path,
) -> Result<Attached> {
    let net = networks(paths);
    net.ensure(&NetworkConfig {
        name: DEFAULT_BRIDGE.to_owned(),
        ..NetworkConfig::default()
    })
    .context("creating the default bridge network")?;
    let a = net
        .attach(&AttachConfig {
            network: DEFAULT_BRIDGE.to_owned(),
            container_id: id.to_owned(),
            container_name: Some(name.to_owned()),
            project: Some(project.name.clone()),
            netns_path: netns.to_owned(),
            interface_name: None,
            ipv4: None,
            ipv6: None,
            mac: (!svc.mac_address.is_empty()).then(|| svc.mac_address.clone()),
            default_route: true,
            ports: port_specs(svc)?,
        })
        .with_context(|| format!("attaching {name} to the default bridge"))?;
    Ok(Attached {
        attachments: vec![a],
        nameserver: None,
    })
}

/// The `/etc/hosts` lines a default-bridge container's links give it, as
/// Docker writes legacy links: for `service[:alias]` each container of the
/// service as `alias`, `service-N` and its container name (docker compose's
/// link names); for an external link `container[:alias]` the container as
/// `alias` and its name. A linked container that is not on the default
/// bridge is refused, as Docker refuses it.
pub fn bridge_link_hosts(paths: &Paths, project: &Project, svc: &Service) -> Result<String> {
    let attachments = networks(paths)
        .attachments(DEFAULT_BRIDGE)
        .context("reading the default bridge's attachments")?;
    let all = super::state::all_containers(paths)?;
    let ip_of = |c: &super::state::ContainerRecord| -> Result<IpAddr> {
        attachments
            .iter()
            .find(|a| a.container_id == c.id)
            .and_then(|a| a.ipv4.or(a.ipv6))
            .with_context(|| {
                format!(
                    "service {:?}: cannot link to {}: it is not on the default bridge network",
                    svc.name, c.name
                )
            })
    };
    let mut out = String::new();
    for link in &svc.links {
        let (target, alias) = link.split_once(':').unwrap_or((link, link));
        for c in all
            .iter()
            .filter(|c| c.project == project.name && c.service == target && !c.oneoff)
        {
            let mut names = vec![alias.to_owned()];
            for n in [format!("{target}-{}", c.number), c.name.clone()] {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
            out.push_str(&format!("{}\t{}\n", ip_of(c)?, names.join(" ")));
        }
    }
    for link in &svc.external_links {
        let (target, alias) = link.split_once(':').unwrap_or((link, link));
        let c = all.iter().find(|c| c.name == target).with_context(|| {
            format!(
                "service {:?}: external link {link:?}: no container {target}",
                svc.name
            )
        })?;
        let mut names = vec![alias.to_owned()];
        if alias != c.name {
            names.push(c.name.clone());
        }
        out.push_str(&format!("{}\t{}\n", ip_of(c)?, names.join(" ")));
    }
    Ok(out)
}

/// The names a container's `links` and `external_links` give it, as DNS
/// aliases only it resolves (Docker's links on a user-defined network):
/// `service:alias` makes `alias` name the linked service's containers,
/// `container:alias` (external) the named container. A link without an
/// alias adds nothing: the service or container name resolves already.
pub fn link_aliases(svc: &Service) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for link in svc.links.iter().chain(&svc.external_links) {
        if let Some((target, alias)) = link.split_once(':') {
            if !target.is_empty() && !alias.is_empty() && alias != target {
                out.insert(alias.to_owned(), target.to_owned());
            }
        }
    }
    out
}

/// Detaches a container from every network it is on, drops its DNS names.
pub fn detach(paths: &Paths, id: &str, networks_of: &[String], netns: Option<&Path>) {
    let net = networks(paths);
    for n in networks_of {
        if let Err(e) = net.detach(n, id, netns) {
            tracing::warn!(network = %n, error = %e, "detaching");
        }
    }
    forget(paths, &net, id, networks_of);
}

/// As [`detach`], but leaves the veth pairs to die with the container's own
/// network namespace, which the caller deletes next (see
/// `Networks::release`): its leases, published ports and DNS names go now.
pub fn release(paths: &Paths, id: &str, networks_of: &[String]) {
    let net = networks(paths);
    for n in networks_of {
        if let Err(e) = net.release(n, id) {
            tracing::warn!(network = %n, error = %e, "releasing");
        }
    }
    forget(paths, &net, id, networks_of);
}

/// What goes with a container's last attachment: the default bridge if it
/// was its last user, and its DNS names.
fn forget(paths: &Paths, net: &Networks, id: &str, networks_of: &[String]) {
    // The default bridge goes with its last container.
    if networks_of.iter().any(|n| n == DEFAULT_BRIDGE)
        && net.attachments(DEFAULT_BRIDGE).is_ok_and(|a| a.is_empty())
    {
        if let Err(e) = net.remove(DEFAULT_BRIDGE) {
            tracing::warn!(error = %e, "removing the default bridge");
        }
    }
    let _ = DnsTable::update(&dns_dir(paths), |t| t.detach(None, id));
}

/// `/etc/resolv.conf` for a container whose DNS server is `nameserver`.
pub fn resolv_conf(svc: &Service, nameserver: IpAddr) -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let dns_servers: Vec<IpAddr> = svc.dns.iter().filter_map(|d| d.parse().ok()).collect();
    dns::resolv_conf(
        nameserver,
        &host,
        &dns_servers,
        &svc.dns_search,
        &svc.dns_opt,
    )
}

/// `ps`'s PORTS text of an attachment (`0.0.0.0:8080->80/tcp`).
pub fn ports_text(a: &Attachment) -> Vec<String> {
    a.ports
        .iter()
        .map(|p| {
            let ip = p.host_ip.map_or("0.0.0.0".to_owned(), |i| i.to_string());
            format!(
                "{ip}:{}->{}/{}",
                p.host_port,
                p.container_port,
                p.protocol.as_str()
            )
        })
        .collect()
}

/// Unmounts the shared mount point that holds network namespaces once no
/// namespace is left in it (it is made on first use, as `ip netns` does).
pub fn release_netns_dir(paths: &Paths) {
    let dir = networks(paths).run_dir().join("netns");
    let empty = std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_none());
    if empty {
        let _ = nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&dir);
    }
}

/// Restarts the DNS server if a network of berth's exists and it is not
/// running (it was killed, or the host rebooted).
pub fn ensure_dns(paths: &Paths) -> Result<()> {
    if networks(paths).list()?.is_empty() {
        return Ok(());
    }
    let exe = std::env::current_exe().context("finding the berth binary")?;
    dns::ensure_running(&dns_dir(paths), &exe, &["system", "dns-server"])
        .context("starting the DNS server")?;
    Ok(())
}

/// Docker started after berth's networks were made sets the FORWARD policy
/// to DROP; give berth's bridges their `DOCKER-USER` rules again. Nearly free
/// when Docker is absent; called before containers start.
pub fn sync_docker_user(paths: &Paths) -> Result<()> {
    networks(paths)
        .sync_docker_user()
        .context("adding berth's bridges to Docker's DOCKER-USER chain")?;
    Ok(())
}

/// Starts again the userland port proxies (ports published on IPv6
/// loopback) that were killed, as [`ensure_dns`] does for the DNS server.
pub fn ensure_port_proxies(paths: &Paths) -> Result<()> {
    let started = networks(paths)
        .ensure_port_proxies()
        .context("starting port proxies")?;
    if started > 0 {
        tracing::info!(started, "port proxies restarted");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_with_an_alias_become_dns_aliases() {
        let svc = Service {
            links: vec!["db:database".into(), "cache".into(), "web:web".into()],
            external_links: vec!["legacy-redis-1:redis".into(), "other".into()],
            ..Service::default()
        };
        let got = link_aliases(&svc);
        let want: BTreeMap<String, String> = [
            ("database".to_owned(), "db".to_owned()),
            ("redis".to_owned(), "legacy-redis-1".to_owned()),
        ]
        .into_iter()
        .collect();
        assert_eq!(got, want);
    }
}
