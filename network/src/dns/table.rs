//! The DNS table: what the engine tells the DNS server, one file for the host.
//!
//! Layout: `$BERTH_RUN/dns/table.json`, a [`DnsTable`] as JSON, replaced
//! atomically (written to `table.json.tmp.<pid>.<n>` beside it, then renamed) so
//! the server never reads a torn file. The engine rewrites the whole table
//! whenever a network or a container attachment changes; the server notices
//! the new file (see `server`) and swaps its tables in one step. Writers go
//! through [`DnsTable::update`], which holds `table.lock` (flock) around
//! read-change-write, since every project's berth commands share the file.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use nix::fcntl::{Flock, FlockArg};

use super::process::lock;
use super::DnsError;

/// Every berth network the DNS server answers for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsTable {
    /// The networks, in no particular order.
    #[serde(default)]
    pub networks: Vec<DnsNetwork>,
}

/// One network: where the server listens for it and the names it knows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsNetwork {
    /// The network's name (Compose's `project_name`); `<name>.<network>`
    /// resolves like `<name>` for clients on this network, as with Docker.
    pub name: String,
    /// The network's subnets; a client whose address is in one of them and
    /// that is not a known container sees this network's names.
    #[serde(default)]
    pub subnets: Vec<Cidr>,
    /// The bridge's gateway addresses; the server listens on port 53 of each.
    #[serde(default)]
    pub gateways: Vec<IpAddr>,
    /// An internal network: names not ours are not forwarded (SERVFAIL),
    /// as Docker does for a container without external connectivity.
    #[serde(default)]
    pub internal: bool,
    /// The containers attached to this network.
    #[serde(default)]
    pub records: Vec<DnsRecord>,
}

/// One container's attachment to one network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    /// The full container id; its first 12 characters resolve too (Docker's
    /// short id), and the server uses it to find every network of the
    /// container that is asking.
    pub container_id: String,
    /// The container name (`project-service-1`); answers PTR queries as
    /// `<container_name>.<network name>`, like Docker.
    pub container_name: String,
    /// More names on this network: the service name, the network aliases and
    /// the hostname. A name shared by several records answers with all.
    #[serde(default)]
    pub names: Vec<String>,
    /// The IPv4 address on this network.
    #[serde(default)]
    pub ipv4: Option<Ipv4Addr>,
    /// The IPv6 address on this network.
    #[serde(default)]
    pub ipv6: Option<Ipv6Addr>,
    /// The container's own `dns:` servers: queries from this container that
    /// are not ours go to them instead of the host's resolvers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<IpAddr>,
    /// Compose `links` / `external_links` with an alias (`db:database`):
    /// alias → the name it stands for, resolvable by this container only, as
    /// Docker does for links on user-defined networks.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub links: BTreeMap<String, String>,
}

/// An address prefix, written `10.89.0.0/24` or `fd00::/64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// The network address (host bits may be set; they are ignored).
    pub addr: IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

impl Cidr {
    /// True when `ip` is inside this prefix.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// A prefix that is not `address/length`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid subnet {0:?}: expected address/prefix-length")]
pub struct CidrError(String);

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let bad = || CidrError(s.to_owned());
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Takes `$BERTH_RUN/dns/table.lock`, waiting for it; released on drop.
pub(crate) fn lock_table(run_dir: &Path) -> Result<Flock<std::fs::File>, DnsError> {
    let dir = dns_dir(run_dir);
    fs_err::create_dir_all(&dir)?;
    let lock_path = dir.join("table.lock");
    lock(&lock_path, FlockArg::LockExclusive)?.ok_or(DnsError::Lock {
        path: lock_path,
        source: nix::errno::Errno::EWOULDBLOCK,
    })
}

/// `$BERTH_RUN/dns`, the directory of the table, pidfile and locks.
pub fn dns_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("dns")
}

/// The table's file name inside [`dns_dir`].
pub(crate) const TABLE_FILE: &str = "table.json";

/// `$BERTH_RUN/dns/table.json`.
pub fn table_path(run_dir: &Path) -> PathBuf {
    dns_dir(run_dir).join(TABLE_FILE)
}

impl DnsTable {
    /// Reads the table at `path`; a missing file is an empty table.
    pub fn load(path: &Path) -> Result<DnsTable, DnsError> {
        match fs_err::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| DnsError::Table {
                path: path.to_owned(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DnsTable::default()),
            Err(e) => Err(DnsError::Io(e)),
        }
    }

    /// Writes the table to `$BERTH_RUN/dns/table.json` through a temporary
    /// file and a rename, creating the directory if needed.
    pub fn store(&self, run_dir: &Path) -> Result<(), DnsError> {
        let dir = dns_dir(run_dir);
        fs_err::create_dir_all(&dir)?;
        let path = table_path(run_dir);
        // Unique per writer, so two threads storing at once never share one.
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!("table.json.tmp.{}.{seq}", std::process::id()));
        let json = serde_json::to_vec(self).expect("a DnsTable always serialises");
        let mut file = fs_err::File::create(&tmp)?;
        file.write_all(&json)?;
        // No fsync: `$BERTH_RUN` does not survive a reboot (tmpfs), and the
        // rename alone keeps readers from ever seeing a torn file.
        drop(file);
        fs_err::rename(&tmp, &path)?;
        Ok(())
    }

    /// Reads the table, lets `f` change it and stores it, all under the lock
    /// `$BERTH_RUN/dns/table.lock`: the table is one file for the whole host,
    /// so berth commands of different projects must not lose each other's
    /// changes. A table that cannot be read is an error (not overwritten).
    pub fn update<R>(run_dir: &Path, f: impl FnOnce(&mut DnsTable) -> R) -> Result<R, DnsError> {
        let _held = lock_table(run_dir)?;
        let path = table_path(run_dir);
        let before = DnsTable::load(&path)?;
        let mut table = before.clone();
        let result = f(&mut table);
        // Most updates of a container without a network change nothing
        // (`run --rm` of a `network_mode: none` service): no write then.
        if table != before || !path.exists() {
            table.store(run_dir)?;
        }
        Ok(result)
    }

    /// Adds network `net`, or replaces the one of the same name.
    pub fn set_network(&mut self, net: DnsNetwork) {
        match self.networks.iter_mut().find(|n| n.name == net.name) {
            Some(slot) => *slot = net,
            None => self.networks.push(net),
        }
    }

    /// Removes network `name`; false if it was not there.
    pub fn remove_network(&mut self, name: &str) -> bool {
        let before = self.networks.len();
        self.networks.retain(|n| n.name != name);
        self.networks.len() != before
    }

    /// Adds `record` to network `network`, replacing the record of the same
    /// container there.
    pub fn attach(&mut self, network: &str, record: DnsRecord) -> Result<(), DnsError> {
        let net = self
            .networks
            .iter_mut()
            .find(|n| n.name == network)
            .ok_or_else(|| DnsError::UnknownNetwork {
                network: network.to_owned(),
            })?;
        match net
            .records
            .iter_mut()
            .find(|r| r.container_id == record.container_id)
        {
            Some(slot) => *slot = record,
            None => net.records.push(record),
        }
        Ok(())
    }

    /// Removes container `container_id` from network `network` (every
    /// network when `None`); returns how many records went.
    pub fn detach(&mut self, network: Option<&str>, container_id: &str) -> usize {
        let mut removed = 0;
        for net in &mut self.networks {
            if network.is_some_and(|n| n != net.name) {
                continue;
            }
            let before = net.records.len();
            net.records.retain(|r| r.container_id != container_id);
            removed += before - net.records.len();
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parses_and_contains() {
        let v4: Cidr = "10.89.1.0/24".parse().unwrap();
        assert!(v4.contains("10.89.1.200".parse().unwrap()));
        assert!(!v4.contains("10.89.2.1".parse().unwrap()));
        assert!(!v4.contains("fd00::1".parse().unwrap()));
        let v6: Cidr = "fd00:1:2::/64".parse().unwrap();
        assert!(v6.contains("fd00:1:2::99".parse().unwrap()));
        assert!(!v6.contains("fd00:1:3::99".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("10.0.0.0".parse::<Cidr>().is_err());
        assert_eq!(v6.to_string(), "fd00:1:2::/64");
    }

    #[test]
    fn table_round_trips_and_stores_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let table = DnsTable {
            networks: vec![DnsNetwork {
                name: "p_default".into(),
                subnets: vec!["10.89.0.0/24".parse().unwrap()],
                gateways: vec!["10.89.0.1".parse().unwrap()],
                internal: false,
                records: vec![DnsRecord {
                    container_id: "abc".into(),
                    container_name: "p-web-1".into(),
                    names: vec!["web".into()],
                    ipv4: Some("10.89.0.2".parse().unwrap()),
                    ipv6: None,
                    dns: vec![],
                    links: BTreeMap::new(),
                }],
            }],
        };
        assert_eq!(
            DnsTable::load(&table_path(dir.path())).unwrap(),
            DnsTable::default()
        );
        table.store(dir.path()).unwrap();
        assert_eq!(DnsTable::load(&table_path(dir.path())).unwrap(), table);
        let names: Vec<_> = fs_err::read_dir(dns_dir(dir.path()))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["table.json"]);
        let text = fs_err::read_to_string(table_path(dir.path())).unwrap();
        assert!(text.contains("\"10.89.0.0/24\""), "{text}");
    }

    fn rec(id: &str) -> DnsRecord {
        DnsRecord {
            container_id: id.into(),
            container_name: format!("c-{id}"),
            names: vec![],
            ipv4: None,
            ipv6: None,
            dns: vec![],
            links: BTreeMap::new(),
        }
    }

    fn net(name: &str) -> DnsNetwork {
        DnsNetwork {
            name: name.into(),
            subnets: vec![],
            gateways: vec![],
            internal: false,
            records: vec![],
        }
    }

    #[test]
    fn mutators_replace_by_name_and_container() {
        let mut t = DnsTable::default();
        t.set_network(net("a"));
        t.set_network(net("b"));
        t.attach("a", rec("1")).unwrap();
        t.attach("b", rec("1")).unwrap();
        let mut again = rec("1");
        again.names = vec!["web".into()];
        t.attach("a", again).unwrap();
        assert_eq!(t.networks[0].records.len(), 1);
        assert_eq!(t.networks[0].records[0].names, ["web"]);
        let err = t.attach("nope", rec("2")).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        assert_eq!(t.detach(Some("b"), "1"), 1);
        assert_eq!(t.detach(None, "1"), 1);
        assert!(t.remove_network("a"));
        assert!(!t.remove_network("a"));
        assert_eq!(t.networks.len(), 1);
    }

    #[test]
    fn concurrent_updates_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        DnsTable::update(dir.path(), |t| t.set_network(net("n"))).unwrap();
        std::thread::scope(|s| {
            for i in 0..8 {
                let run = dir.path();
                s.spawn(move || {
                    for j in 0..10 {
                        DnsTable::update(run, |t| t.attach("n", rec(&format!("{i}-{j}"))))
                            .unwrap()
                            .unwrap();
                    }
                });
            }
        });
        let t = DnsTable::load(&table_path(dir.path())).unwrap();
        assert_eq!(t.networks[0].records.len(), 80);
    }

    #[test]
    fn bad_table_names_its_path() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(dns_dir(dir.path())).unwrap();
        fs_err::write(table_path(dir.path()), "{\"networks\": [{\"name\": 1}]}").unwrap();
        let err = DnsTable::load(&table_path(dir.path())).unwrap_err();
        assert!(err.to_string().contains("table.json"), "{err}");
    }
}
