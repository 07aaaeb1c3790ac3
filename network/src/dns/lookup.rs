//! Name lookup over a [`DnsTable`]: which networks a client sees, and what a
//! question gets from them. Pure; the server calls it for every query.
//!
//! A client sees the networks of the container that owns its source address
//! (all of them, like Docker's embedded DNS, which answers from every network
//! the container is connected to); a source that is not a container sees the
//! networks whose subnets hold it (the host itself, asking from a gateway
//! address). Any other source is refused: the server listens on addresses the
//! host routes, and must not become an open resolver for whoever can route a
//! packet to a gateway. Names never cross to a network the client is not on.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use super::table::{DnsNetwork, DnsTable};
use super::wire::{self, Rdata, TYPE_A, TYPE_AAAA, TYPE_ANY, TYPE_PTR};

/// What a question gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Records from our tables (NOERROR, authoritative).
    Answer(Vec<Rdata>),
    /// The name is ours but has no record of this type (NOERROR, empty).
    NoData,
    /// The name is not ours and cannot be anyone's: a bare single-label name,
    /// or a reverse name inside one of the client's subnets.
    NxDomain,
    /// Not ours: ask the upstream resolvers. An empty list means the host's.
    Forward(Vec<IpAddr>),
    /// Not ours, and the client may not reach outside (internal networks only).
    ServFail,
    /// The client is on none of our networks.
    Refused,
}

/// One network's names, ready for lookups.
#[derive(Debug)]
struct NetIndex {
    net: DnsNetwork,
    name_lc: String,
    /// Lower-case name → indexes into `net.records`.
    names: HashMap<String, Vec<usize>>,
    /// Address → index into `net.records`.
    addrs: HashMap<IpAddr, usize>,
}

/// The table, indexed for lookups.
#[derive(Debug, Default)]
pub struct Resolver {
    nets: Vec<NetIndex>,
    /// Container address → (network, record).
    by_addr: HashMap<IpAddr, (usize, usize)>,
    /// Container id → its networks, in table order.
    by_container: HashMap<String, Vec<usize>>,
    /// Gateway addresses: where the server listens.
    gateways: BTreeSet<IpAddr>,
}

/// Lower case, no trailing dot: the form every key and question takes.
fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

impl Resolver {
    /// Indexes `table` (taken, not copied: reloads of a large table are
    /// built beside the live one, and one copy is enough).
    pub fn new(table: DnsTable) -> Resolver {
        let mut r = Resolver::default();
        for (n, net) in table.networks.into_iter().enumerate() {
            let mut idx = NetIndex {
                name_lc: normalize(&net.name),
                names: HashMap::new(),
                addrs: HashMap::new(),
                net,
            };
            for (i, rec) in idx.net.records.iter().enumerate() {
                let short_id = rec
                    .container_id
                    .get(..12)
                    .filter(|_| rec.container_id.len() > 12);
                let keys = std::iter::once(rec.container_name.as_str())
                    .chain(rec.names.iter().map(String::as_str))
                    .chain(short_id);
                for key in keys {
                    let key = normalize(key);
                    if key.is_empty() {
                        continue;
                    }
                    let list = idx.names.entry(key).or_default();
                    if !list.contains(&i) {
                        list.push(i);
                    }
                }
                for ip in rec
                    .ipv4
                    .map(IpAddr::V4)
                    .into_iter()
                    .chain(rec.ipv6.map(IpAddr::V6))
                {
                    idx.addrs.insert(ip, i);
                    r.by_addr.entry(ip).or_insert((n, i));
                }
                let nets = r.by_container.entry(rec.container_id.clone()).or_default();
                if !nets.contains(&n) {
                    nets.push(n);
                }
            }
            r.gateways.extend(idx.net.gateways.iter().copied());
            r.nets.push(idx);
        }
        r
    }

    /// True for a gateway address in the table (one of ours).
    pub fn is_gateway(&self, ip: IpAddr) -> bool {
        self.gateways.contains(&ip)
    }

    /// Every gateway address in the table: where the server listens.
    pub fn listen_addrs(&self) -> BTreeSet<IpAddr> {
        self.gateways.clone()
    }

    /// The networks `client` sees.
    fn views(&self, client: IpAddr) -> Vec<usize> {
        if let Some(&(n, i)) = self.by_addr.get(&client) {
            let id = &self.nets[n].net.records[i].container_id;
            let mut views = vec![n];
            views.extend(self.by_container[id].iter().filter(|&&m| m != n));
            return views;
        }
        (0..self.nets.len())
            .filter(|&n| self.nets[n].net.subnets.iter().any(|s| s.contains(client)))
            .collect()
    }

    /// The answer to `qtype` for `qname` (any case, trailing dot optional)
    /// asked by `client`.
    pub fn resolve(&self, client: IpAddr, qname: &str, qtype: u16) -> Outcome {
        let views = self.views(client);
        if views.is_empty() {
            return Outcome::Refused;
        }
        let name = normalize(qname);
        let forward = || self.forward(client, &views);
        if qtype == TYPE_PTR {
            if let Some(ip) = wire::reverse_addr(&name) {
                return self.reverse(&views, ip).unwrap_or_else(forward);
            }
        }
        let mut found = self.find(&views, &name);
        if found.is_empty() {
            if let Some(target) = self.link(client, &name) {
                found = self.find(&views, &target);
            }
        }
        if found.is_empty() {
            return if name.contains('.') || name.is_empty() {
                forward()
            } else {
                Outcome::NxDomain
            };
        }
        let mut ips: Vec<IpAddr> = Vec::new();
        for (n, i) in found {
            let rec = &self.nets[n].net.records[i];
            let want = |t: u16| qtype == t || qtype == TYPE_ANY;
            let v4 = rec.ipv4.filter(|_| want(TYPE_A)).map(IpAddr::V4);
            let v6 = rec.ipv6.filter(|_| want(TYPE_AAAA)).map(IpAddr::V6);
            for ip in v4.into_iter().chain(v6) {
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
        }
        if ips.is_empty() {
            Outcome::NoData
        } else {
            Outcome::Answer(ips.into_iter().map(Rdata::addr).collect())
        }
    }

    /// The name a link alias of the asking container stands for.
    fn link(&self, client: IpAddr, name: &str) -> Option<String> {
        let &(n, i) = self.by_addr.get(&client)?;
        let links = &self.nets[n].net.records[i].links;
        links
            .iter()
            .find(|(alias, _)| normalize(alias) == name)
            .map(|(_, target)| normalize(target))
    }

    /// Records named `name` on the client's networks: `name` itself on each,
    /// or `prefix.<network name>` on that network (Docker resolves both).
    fn find(&self, views: &[usize], name: &str) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        for &n in views {
            let idx = &self.nets[n];
            if let Some(list) = idx.names.get(name) {
                found.extend(list.iter().map(|&i| (n, i)));
            }
            let scoped = name
                .strip_suffix(idx.name_lc.as_str())
                .and_then(|p| p.strip_suffix('.'))
                .filter(|p| !p.is_empty());
            if let Some(list) = scoped.and_then(|p| idx.names.get(p)) {
                found.extend(list.iter().map(|&i| (n, i)));
            }
        }
        found
    }

    /// PTR for `ip` on the client's networks; `None` when it is not in any of
    /// their subnets (the question is for the world).
    fn reverse(&self, views: &[usize], ip: IpAddr) -> Option<Outcome> {
        for &n in views {
            let idx = &self.nets[n];
            if let Some(&i) = idx.addrs.get(&ip) {
                let rec = &idx.net.records[i];
                let target = format!("{}.{}", rec.container_name, idx.net.name);
                return Some(match wire::encode_name(&target) {
                    Some(wire) => Outcome::Answer(vec![Rdata::Ptr(wire)]),
                    None => Outcome::NoData,
                });
            }
        }
        views
            .iter()
            .any(|&n| self.nets[n].net.subnets.iter().any(|s| s.contains(ip)))
            .then_some(Outcome::NxDomain)
    }

    /// The outcome for a question that cannot be ours (another class, a name
    /// with bytes no container name has): forwarded, refused or SERVFAIL as
    /// [`Resolver::resolve`] would decide for a name it does not know.
    pub fn not_ours(&self, client: IpAddr) -> Outcome {
        let views = self.views(client);
        if views.is_empty() {
            return Outcome::Refused;
        }
        self.forward(client, &views)
    }

    /// Forward, to the container's own servers if it has some, unless every
    /// network the client sees is internal.
    fn forward(&self, client: IpAddr, views: &[usize]) -> Outcome {
        if views.iter().all(|&n| self.nets[n].net.internal) {
            return Outcome::ServFail;
        }
        match self.by_addr.get(&client) {
            Some(&(n, i)) => Outcome::Forward(self.nets[n].net.records[i].dns.clone()),
            None => Outcome::Forward(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::table::{DnsNetwork, DnsRecord};
    use super::*;

    fn rec(id: &str, name: &str, names: &[&str], v4: &str, v6: Option<&str>) -> DnsRecord {
        DnsRecord {
            container_id: id.into(),
            container_name: name.into(),
            names: names.iter().map(|s| s.to_string()).collect(),
            ipv4: Some(v4.parse().unwrap()),
            ipv6: v6.map(|s| s.parse().unwrap()),
            dns: vec![],
            links: Default::default(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Network A (10.1.0.0/24, fd01::/64): two `web` replicas, `db` with an
    /// alias. Network B (10.2.0.0/24): `cache`, and `db` attached to both.
    fn table() -> DnsTable {
        DnsTable {
            networks: vec![
                DnsNetwork {
                    name: "proj_a".into(),
                    subnets: vec!["10.1.0.0/24".parse().unwrap(), "fd01::/64".parse().unwrap()],
                    gateways: vec![ip("10.1.0.1"), ip("fd01::1")],
                    internal: false,
                    records: vec![
                        rec(
                            "aaaaaaaaaaaaaaaa1",
                            "proj-web-1",
                            &["web", "web1host"],
                            "10.1.0.2",
                            Some("fd01::2"),
                        ),
                        rec(
                            "bbbbbbbbbbbbbbbb2",
                            "proj-web-2",
                            &["web"],
                            "10.1.0.3",
                            Some("fd01::3"),
                        ),
                        rec(
                            "cccccccccccccccc3",
                            "proj-db-1",
                            &["db", "Database"],
                            "10.1.0.4",
                            None,
                        ),
                    ],
                },
                DnsNetwork {
                    name: "proj_b".into(),
                    subnets: vec!["10.2.0.0/24".parse().unwrap()],
                    gateways: vec![ip("10.2.0.1")],
                    internal: true,
                    records: vec![
                        rec(
                            "dddddddddddddddd4",
                            "proj-cache-1",
                            &["cache"],
                            "10.2.0.2",
                            None,
                        ),
                        rec("cccccccccccccccc3", "proj-db-1", &["db"], "10.2.0.3", None),
                    ],
                },
            ],
        }
    }

    fn answer(ips: &[&str]) -> Outcome {
        Outcome::Answer(ips.iter().map(|s| Rdata::addr(ip(s))).collect())
    }

    #[test]
    fn service_name_answers_every_replica() {
        let r = Resolver::new(table());
        let web1 = ip("10.1.0.2");
        assert_eq!(
            r.resolve(web1, "web", TYPE_A),
            answer(&["10.1.0.2", "10.1.0.3"])
        );
        assert_eq!(
            r.resolve(web1, "web", TYPE_AAAA),
            answer(&["fd01::2", "fd01::3"])
        );
        assert_eq!(
            r.resolve(web1, "web", TYPE_ANY),
            answer(&["10.1.0.2", "fd01::2", "10.1.0.3", "fd01::3"])
        );
    }

    #[test]
    fn names_are_case_insensitive_with_optional_dot_and_network_suffix() {
        let r = Resolver::new(table());
        let c = ip("10.1.0.3");
        for q in [
            "proj-db-1",
            "PROJ-DB-1.",
            "db",
            "database",
            "DataBase.",
            "db.proj_a",
            "db.PROJ_A.",
            "cccccccccccc",
        ] {
            assert_eq!(r.resolve(c, q, TYPE_A), answer(&["10.1.0.4"]), "{q}");
        }
        assert_eq!(r.resolve(c, "web1host", TYPE_A), answer(&["10.1.0.2"]));
        // The full id is not a name; a prefix shorter than 12 is not either.
        assert_eq!(r.resolve(c, "cccccccccccccccc3", TYPE_A), Outcome::NxDomain);
        assert_eq!(r.resolve(c, "ccccccccccc", TYPE_A), Outcome::NxDomain);
    }

    #[test]
    fn known_name_without_that_family_is_nodata() {
        let r = Resolver::new(table());
        let c = ip("10.1.0.2");
        assert_eq!(r.resolve(c, "db", TYPE_AAAA), Outcome::NoData);
        assert_eq!(r.resolve(c, "db", 16), Outcome::NoData);
    }

    #[test]
    fn networks_are_isolated_by_source_address() {
        let r = Resolver::new(table());
        let cache = ip("10.2.0.2");
        assert_eq!(r.resolve(cache, "web", TYPE_A), Outcome::NxDomain);
        assert_eq!(r.resolve(cache, "db", TYPE_A), answer(&["10.2.0.3"]));
        let web = ip("10.1.0.2");
        assert_eq!(r.resolve(web, "cache", TYPE_A), Outcome::NxDomain);
        // `name.network` only for a network the client is on.
        assert_eq!(
            r.resolve(web, "cache.proj_b", TYPE_A),
            Outcome::Forward(vec![])
        );
    }

    #[test]
    fn container_on_two_networks_sees_both() {
        let r = Resolver::new(table());
        // db asks from its address on A and still sees B's cache, own network first.
        let db_a = ip("10.1.0.4");
        assert_eq!(r.resolve(db_a, "cache", TYPE_A), answer(&["10.2.0.2"]));
        assert_eq!(
            r.resolve(db_a, "db", TYPE_A),
            answer(&["10.1.0.4", "10.2.0.3"])
        );
        let db_b = ip("10.2.0.3");
        assert_eq!(
            r.resolve(db_b, "db", TYPE_A),
            answer(&["10.2.0.3", "10.1.0.4"])
        );
    }

    #[test]
    fn unknown_source_sees_its_subnet_or_is_refused() {
        let r = Resolver::new(table());
        // Not a container, but in A's subnet (e.g. the host, from the gateway).
        let host = ip("10.1.0.1");
        assert_eq!(
            r.resolve(host, "web", TYPE_A),
            answer(&["10.1.0.2", "10.1.0.3"])
        );
        assert_eq!(
            r.resolve(host, "example.com", TYPE_A),
            Outcome::Forward(vec![])
        );
        // Outside every subnet: refused, local names and forwarding alike.
        let stranger = ip("192.0.2.9");
        assert_eq!(r.resolve(stranger, "cache", TYPE_A), Outcome::Refused);
        assert_eq!(r.resolve(stranger, "example.com", TYPE_A), Outcome::Refused);
        assert_eq!(r.not_ours(stranger), Outcome::Refused);
        assert_eq!(r.not_ours(host), Outcome::Forward(vec![]));
        assert_eq!(r.not_ours(ip("10.2.0.2")), Outcome::ServFail);
    }

    #[test]
    fn bare_unknown_is_nxdomain_and_dotted_unknown_is_forwarded() {
        let r = Resolver::new(table());
        let c = ip("10.1.0.2");
        assert_eq!(r.resolve(c, "nosuch", TYPE_A), Outcome::NxDomain);
        assert_eq!(r.resolve(c, "nosuch.", TYPE_AAAA), Outcome::NxDomain);
        assert_eq!(
            r.resolve(c, "example.com", TYPE_A),
            Outcome::Forward(vec![])
        );
        assert_eq!(r.resolve(c, "", 2), Outcome::Forward(vec![]));
        // Only internal networks visible: nothing leaves.
        assert_eq!(
            r.resolve(ip("10.2.0.2"), "example.com", TYPE_A),
            Outcome::ServFail
        );
    }

    #[test]
    fn link_aliases_resolve_for_their_container_only() {
        let mut t = table();
        t.networks[0].records[0]
            .links
            .insert("Database".into(), "proj-db-1".into());
        let r = Resolver::new(t);
        assert_eq!(
            r.resolve(ip("10.1.0.2"), "database.", TYPE_A),
            answer(&["10.1.0.4"])
        );
        assert_eq!(
            r.resolve(ip("10.1.0.2"), "DATABASE", TYPE_A),
            answer(&["10.1.0.4"])
        );
        // web-2 has no such link; `database` is not a name on the network.
        let mut t = table();
        t.networks[0].records[0]
            .links
            .insert("store".into(), "proj-db-1".into());
        let r = Resolver::new(t);
        assert_eq!(
            r.resolve(ip("10.1.0.3"), "store", TYPE_A),
            Outcome::NxDomain
        );
        // A link to something the container cannot see stays unresolved.
        let mut t = table();
        t.networks[0].records[0]
            .links
            .insert("c".into(), "cache".into());
        let r = Resolver::new(t);
        assert_eq!(r.resolve(ip("10.1.0.2"), "c", TYPE_A), Outcome::NxDomain);
    }

    #[test]
    fn container_dns_servers_are_its_upstreams() {
        let mut t = table();
        t.networks[0].records[0].dns = vec![ip("192.0.2.53")];
        let r = Resolver::new(t);
        assert_eq!(
            r.resolve(ip("10.1.0.2"), "example.com", TYPE_A),
            Outcome::Forward(vec![ip("192.0.2.53")])
        );
        assert_eq!(
            r.resolve(ip("10.1.0.3"), "example.com", TYPE_A),
            Outcome::Forward(vec![])
        );
    }

    #[test]
    fn ptr_answers_container_name_dot_network() {
        let r = Resolver::new(table());
        let c = ip("10.1.0.2");
        let ptr = |s: &str| Outcome::Answer(vec![Rdata::Ptr(wire::encode_name(s).unwrap())]);
        assert_eq!(
            r.resolve(c, "3.0.1.10.in-addr.arpa", TYPE_PTR),
            ptr("proj-web-2.proj_a")
        );
        assert_eq!(
            r.resolve(c, &wire::reverse_name(ip("fd01::3")), TYPE_PTR),
            ptr("proj-web-2.proj_a")
        );
        // In our subnet but no container: NXDOMAIN; another network's: not visible.
        assert_eq!(
            r.resolve(c, "99.0.1.10.in-addr.arpa", TYPE_PTR),
            Outcome::NxDomain
        );
        assert_eq!(
            r.resolve(c, "2.0.2.10.in-addr.arpa", TYPE_PTR),
            Outcome::Forward(vec![])
        );
        assert_eq!(
            r.resolve(c, "1.2.0.192.in-addr.arpa.", TYPE_PTR),
            Outcome::Forward(vec![])
        );
    }

    #[test]
    fn listens_on_every_gateway() {
        let r = Resolver::new(table());
        let addrs: Vec<IpAddr> = r.listen_addrs().into_iter().collect();
        assert_eq!(addrs, [ip("10.1.0.1"), ip("10.2.0.1"), ip("fd01::1")]);
    }
}
