//! The DNS server: UDP and TCP port 53 on every gateway in the table, answers
//! from [`Resolver`], everything else forwarded to the upstream resolvers.
//!
//! It runs on one current-thread tokio runtime: a local answer is a hash
//! lookup and one `sendto` on the receiving task, so there is nothing to gain
//! from more threads, and one thread keeps the server small. Forwarded
//! questions run as their own tasks (at most [`MAX_FORWARDS`] at once), each on
//! a fresh connected socket, so the kernel picks a random source port and only
//! the upstream can answer it; the id is replaced by a random one too.
//!
//! Reloading: the server watches `$BERTH_RUN/dns/` with inotify and reloads
//! the table as soon as a new `table.json` is renamed into place (or written),
//! so a container the engine has just added is answered well before its
//! process can ask. As a safety net (a missed event, an inotify queue
//! overflow, no inotify at all) and for the host's resolv.conf, which may be
//! a symlink into a directory another daemon rewrites, it also `stat`s both
//! files every `poll_interval` (1 s; 100 ms when inotify is unavailable) and
//! reloads whichever changed (device, inode, size or mtime differ). Gateways
//! that appear are bound, gateways that disappear are closed. Sockets are bound with
//! `IP_FREEBIND` so an address that is not configured yet (a bridge being
//! created, IPv6 duplicate address detection still running) does not fail;
//! a bind that fails anyway is retried every second.
//!
//! The server runs in the host's network namespace, so the host's resolvers
//! are reachable as the host reaches them, including a stub on 127.0.0.53.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::socket::{
    self, sockopt, AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage,
};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::lookup::{Outcome, Resolver};
use super::resolv::parse_resolv_conf;
use super::sys::{self, InotifyFd};
use super::table::{dns_dir, table_path, DnsTable, TABLE_FILE};
use super::wire::{self, Header, Query, Rcode, Reply};
use super::DnsError;

/// TTL of our answers: Docker's embedded server uses 600 s.
pub const ANSWER_TTL: u32 = 600;
/// Forwarded questions in flight at once; more get SERVFAIL at once.
pub const MAX_FORWARDS: usize = 256;
/// TCP connections open at once; more are closed at once.
const MAX_TCP_CONNS: usize = 128;
/// A TCP client idle this long is disconnected.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Upstreams tried per question, in resolv.conf order.
const MAX_UPSTREAMS_TRIED: usize = 3;

/// How a server is set up. [`ServerConfig::new`] gives the production values.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// `$BERTH_RUN`: the table is `dns/table.json` under it.
    pub run_dir: PathBuf,
    /// The host's resolv.conf, read for upstream servers at start and whenever
    /// it changes.
    pub resolv_conf: PathBuf,
    /// Upstream servers that replace resolv.conf's (tests point this at a
    /// resolver of their own).
    pub upstreams: Option<Vec<SocketAddr>>,
    /// The port to listen on, on every gateway.
    pub port: u16,
    /// How long to wait for one upstream before trying the next.
    pub forward_timeout: Duration,
    /// How often to `stat` the table and resolv.conf for changes, besides
    /// the inotify watch on the table's directory.
    pub poll_interval: Duration,
}

impl ServerConfig {
    /// Port 53, `/etc/resolv.conf`, 2 s per upstream, a 1 s safety-net poll.
    pub fn new(run_dir: &Path) -> ServerConfig {
        ServerConfig {
            run_dir: run_dir.to_owned(),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            upstreams: None,
            port: 53,
            forward_timeout: Duration::from_secs(2),
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// The tables a query is answered from; replaced as a whole on reload.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) resolver: Arc<Resolver>,
    /// The host's upstream servers.
    pub(crate) upstreams: Vec<SocketAddr>,
}

struct Shared {
    config: ServerConfig,
    state: Mutex<Arc<State>>,
    /// Rotates multi-address answers, as Docker shuffles them.
    rotation: AtomicUsize,
    /// splitmix64 state for upstream query ids.
    rng: AtomicU64,
    forwards: Arc<Semaphore>,
    tcp_conns: Arc<Semaphore>,
}

impl Shared {
    fn state(&self) -> Arc<State> {
        Arc::clone(&self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn random_id(&self) -> u16 {
        let mut z = self.rng.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as u16
    }
}

/// What to do with one received message.
#[derive(Debug)]
pub(crate) enum Action {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// Ask these upstreams; SERVFAIL if none answers.
    Forward {
        query: Query,
        upstreams: Vec<SocketAddr>,
    },
    /// Not a query: say nothing.
    Drop,
}

/// Decides the answer to `packet` from `client`.
/// `tcp` lifts the UDP size limit; `rotation` picks the first of several
/// addresses.
pub(crate) fn handle(
    state: &State,
    packet: &[u8],
    client: IpAddr,
    tcp: bool,
    rotation: usize,
) -> Action {
    let Some(header) = Header::parse(packet) else {
        return Action::Drop;
    };
    if header.is_response() {
        return Action::Drop;
    }
    if header.opcode() != 0 {
        return Action::Reply(wire::header_only_response(header, Rcode::NotImp));
    }
    if header.qdcount != 1 {
        return Action::Reply(wire::header_only_response(header, Rcode::FormErr));
    }
    let query = match Query::parse(packet) {
        Ok(q) => q,
        Err(e) => {
            debug!(%client, error = %e, "malformed query");
            return Action::Reply(wire::header_only_response(header, Rcode::FormErr));
        }
    };
    let max_len = if tcp {
        usize::from(u16::MAX)
    } else {
        query.udp_limit()
    };
    let outcome = match (&query.name, query.qclass) {
        (Some(name), wire::CLASS_IN) => state.resolver.resolve(client, name, query.qtype),
        _ => state.resolver.not_ours(client),
    };
    let reply = |rcode, authoritative| Reply {
        rcode,
        authoritative,
        ttl: ANSWER_TTL,
        max_len,
    };
    match outcome {
        Outcome::Answer(mut records) => {
            let len = records.len();
            records.rotate_left(rotation % len);
            Action::Reply(wire::response(
                &query,
                reply(Rcode::NoError, true),
                &records,
            ))
        }
        Outcome::NoData => Action::Reply(wire::response(&query, reply(Rcode::NoError, true), &[])),
        Outcome::NxDomain => {
            Action::Reply(wire::response(&query, reply(Rcode::NxDomain, true), &[]))
        }
        Outcome::ServFail => {
            Action::Reply(wire::response(&query, reply(Rcode::ServFail, false), &[]))
        }
        Outcome::Refused => {
            Action::Reply(wire::response(&query, reply(Rcode::Refused, false), &[]))
        }
        Outcome::Forward(own) => {
            let mut upstreams: Vec<SocketAddr> = if own.is_empty() {
                state.upstreams.clone()
            } else {
                own.into_iter().map(|ip| SocketAddr::new(ip, 53)).collect()
            };
            // A resolv.conf naming one of our own gateways would loop.
            upstreams.retain(|u| !state.resolver.is_gateway(u.ip()));
            if upstreams.is_empty() {
                return Action::Reply(wire::response(&query, reply(Rcode::ServFail, false), &[]));
            }
            Action::Forward { query, upstreams }
        }
    }
}

fn servfail(query: &Query, tcp: bool) -> Vec<u8> {
    let max_len = if tcp {
        usize::from(u16::MAX)
    } else {
        query.udp_limit()
    };
    let reply = Reply {
        rcode: Rcode::ServFail,
        authoritative: false,
        ttl: 0,
        max_len,
    };
    wire::response(query, reply, &[])
}

/// The upstream servers: the configured override, else resolv.conf's
/// nameservers, else the local machine (resolv.conf(5)'s default).
fn load_upstreams(config: &ServerConfig) -> Vec<SocketAddr> {
    if let Some(fixed) = &config.upstreams {
        return fixed.clone();
    }
    let text = match fs_err::read_to_string(&config.resolv_conf) {
        Ok(t) => t,
        Err(e) => {
            warn!(error = %e, "cannot read the host's resolv.conf; forwarding to 127.0.0.1");
            String::new()
        }
    };
    let servers = parse_resolv_conf(&text).nameservers;
    if servers.is_empty() {
        return vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53)];
    }
    servers
        .into_iter()
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// What identifies one version of a file; `None` when it does not exist.
type Stamp = Option<(u64, u64, u64, i64, i64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

/// The sockets of one gateway address; closed on drop.
struct Listener {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A running DNS server: its sockets and tables.
pub struct Server {
    shared: Arc<Shared>,
    listeners: BTreeMap<IpAddr, Listener>,
    failed: BTreeSet<IpAddr>,
    table_stamp: Stamp,
    resolv_stamp: Stamp,
    /// Made before the first load, so no change after it goes unseen.
    watch: Option<TableWatch>,
}

impl Server {
    /// Reads the table and the upstreams and binds every gateway. Must be
    /// called inside a tokio runtime. A table that cannot be read is logged and
    /// treated as empty until it is replaced.
    pub async fn bind(config: ServerConfig) -> Result<Server, DnsError> {
        // The directory must exist for the inotify watch on it.
        fs_err::create_dir_all(dns_dir(&config.run_dir))?;
        let watch = TableWatch::new(&dns_dir(&config.run_dir));
        let seed = seed_from_urandom();
        let shared = Arc::new(Shared {
            state: Mutex::new(Arc::new(State::default())),
            rotation: AtomicUsize::new(0),
            rng: AtomicU64::new(seed),
            forwards: Arc::new(Semaphore::new(MAX_FORWARDS)),
            tcp_conns: Arc::new(Semaphore::new(MAX_TCP_CONNS)),
            config,
        });
        let mut server = Server {
            shared,
            listeners: BTreeMap::new(),
            failed: BTreeSet::new(),
            table_stamp: None,
            resolv_stamp: None,
            watch,
        };
        server.reload(true, true);
        Ok(server)
    }

    /// The addresses (with port) the server answers on right now.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        let port = self.shared.config.port;
        self.listeners
            .keys()
            .map(|ip| SocketAddr::new(*ip, port))
            .collect()
    }

    /// Serves until `shutdown` completes, reloading as the files change.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let watch = self.watch.take();
        let period = match &watch {
            Some(_) => self.shared.config.poll_interval,
            None => self
                .shared
                .config
                .poll_interval
                .min(Duration::from_millis(100)),
        };
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_retry = Instant::now();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                // Unconditional: an event is certain, a stamp can repeat (a
                // reused inode number, a coarse mtime).
                () = table_event(watch.as_ref()) => self.reload(true, false),
                _ = tick.tick() => {
                    let table = stamp(&table_path(&self.shared.config.run_dir)) != self.table_stamp;
                    let resolv = self.shared.config.upstreams.is_none()
                        && stamp(&self.shared.config.resolv_conf) != self.resolv_stamp;
                    let retry = !self.failed.is_empty() && last_retry.elapsed() >= Duration::from_secs(1);
                    if retry {
                        last_retry = Instant::now();
                    }
                    if table || resolv || retry {
                        self.reload(table, resolv);
                    }
                }
            }
        }
        info!("DNS server stopping");
    }

    /// Re-reads what changed, swaps the tables and (un)binds gateways.
    fn reload(&mut self, table: bool, resolv: bool) {
        let config = &self.shared.config;
        let old = self.shared.state();
        let resolver = if table {
            let path = table_path(&config.run_dir);
            self.table_stamp = stamp(&path);
            match DnsTable::load(&path) {
                Ok(t) => {
                    info!(networks = t.networks.len(), "DNS table loaded");
                    Some(Arc::new(Resolver::new(t)))
                }
                Err(e) => {
                    warn!(error = %e, "keeping the previous DNS table");
                    None
                }
            }
        } else {
            None
        };
        let upstreams = if resolv {
            self.resolv_stamp = stamp(&config.resolv_conf);
            let u = load_upstreams(config);
            info!(upstreams = ?u, "upstream resolvers");
            Some(u)
        } else {
            None
        };
        if resolver.is_some() || upstreams.is_some() {
            let new = State {
                upstreams: upstreams.unwrap_or_else(|| old.upstreams.clone()),
                resolver: resolver.unwrap_or_else(|| Arc::clone(&old.resolver)),
            };
            *self.shared.state.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
        }
        self.sync_listeners();
    }

    fn sync_listeners(&mut self) {
        let wanted = self.shared.state().resolver.listen_addrs();
        self.listeners.retain(|ip, _| {
            let keep = wanted.contains(ip);
            if !keep {
                info!(%ip, "DNS server closes gateway");
            }
            keep
        });
        self.failed.clear();
        for ip in wanted {
            if self.listeners.contains_key(&ip) {
                continue;
            }
            match listen(&self.shared, ip) {
                Ok(l) => {
                    info!(%ip, "DNS server listens on gateway");
                    self.listeners.insert(ip, l);
                }
                Err(e) => {
                    warn!(error = %e, "cannot listen on a gateway; retrying");
                    self.failed.insert(ip);
                }
            }
        }
    }
}

/// The inotify watch on `$BERTH_RUN/dns/`.
struct TableWatch(AsyncFd<InotifyFd>);

impl TableWatch {
    /// `None` (and a warning) if inotify cannot be used; polling then covers it.
    fn new(dir: &Path) -> Option<TableWatch> {
        let watch = || -> Result<TableWatch, std::io::Error> {
            let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
            inotify.add_watch(
                dir,
                AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CLOSE_WRITE,
            )?;
            Ok(TableWatch(sys::async_inotify(inotify)?))
        };
        match watch() {
            Ok(w) => Some(w),
            Err(e) => {
                warn!(dir = %dir.display(), error = %e, "cannot watch the DNS table; polling it");
                None
            }
        }
    }
}

/// Completes when the table may have changed; never without a watch.
async fn table_event(watch: Option<&TableWatch>) {
    let Some(TableWatch(fd)) = watch else {
        return std::future::pending().await;
    };
    loop {
        let Ok(mut guard) = fd.readable().await else {
            return std::future::pending().await;
        };
        match guard.try_io(|inner| {
            inner
                .get_ref()
                .inotify()
                .read_events()
                .map_err(std::io::Error::from)
        }) {
            Ok(Ok(events)) => {
                let ours = events.iter().any(|e| {
                    e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW)
                        || e.name.as_deref() == Some(OsStr::new(TABLE_FILE))
                });
                if ours {
                    return;
                }
            }
            Ok(Err(e)) => {
                warn!(error = %e, "inotify read failed; polling the DNS table");
                return std::future::pending().await;
            }
            Err(_would_block) => {}
        }
    }
}

fn seed_from_urandom() -> u64 {
    use std::io::Read as _;
    let mut bytes = [0u8; 8];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok();
    if ok {
        u64::from_ne_bytes(bytes)
    } else {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        now.as_nanos() as u64 ^ u64::from(std::process::id()) << 32
    }
}

/// A socket on `addr` that may be bound before the address exists.
fn bound_socket(addr: SocketAddr, ty: SockType) -> nix::Result<OwnedFd> {
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket::socket(
        family,
        ty,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    // IP_FREEBIND also covers IPv6 sockets (Linux ip(7), ipv6_can_nonlocal_bind).
    socket::setsockopt(&fd, sockopt::IpFreebind, &true)?;
    if addr.is_ipv6() {
        socket::setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    }
    if ty == SockType::Stream {
        socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    }
    socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    if ty == SockType::Stream {
        socket::listen(&fd, Backlog::new(128).unwrap_or(Backlog::MAXCONN))?;
    }
    Ok(fd)
}

fn listen(shared: &Arc<Shared>, ip: IpAddr) -> Result<Listener, DnsError> {
    let addr = SocketAddr::new(ip, shared.config.port);
    let bind_err = |source: std::io::Error| DnsError::Bind { addr, source };
    let udp = bound_socket(addr, SockType::Datagram).map_err(|e| bind_err(e.into()))?;
    let udp = Arc::new(UdpSocket::from_std(std::net::UdpSocket::from(udp)).map_err(bind_err)?);
    let tcp = bound_socket(addr, SockType::Stream).map_err(|e| bind_err(e.into()))?;
    let tcp = TcpListener::from_std(std::net::TcpListener::from(tcp)).map_err(bind_err)?;
    let tasks = vec![
        tokio::spawn(serve_udp(Arc::clone(shared), udp, ip)),
        tokio::spawn(serve_tcp(Arc::clone(shared), tcp, ip)),
    ];
    Ok(Listener { tasks })
}

async fn serve_udp(shared: Arc<Shared>, sock: Arc<UdpSocket>, local: IpAddr) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // Not expected on an unconnected socket; never spin on one.
                debug!(%local, error = %e, "udp receive");
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        let rotation = shared.rotation.fetch_add(1, Ordering::Relaxed);
        let action = handle(&shared.state(), &buf[..n], peer.ip(), false, rotation);
        match action {
            Action::Reply(bytes) => {
                let _ = sock.send_to(&bytes, peer).await;
            }
            Action::Forward { query, upstreams } => {
                let Ok(permit) = Arc::clone(&shared.forwards).try_acquire_owned() else {
                    let _ = sock.send_to(&servfail(&query, false), peer).await;
                    continue;
                };
                let packet = buf[..n].to_vec();
                let (shared, sock) = (Arc::clone(&shared), Arc::clone(&sock));
                tokio::spawn(async move {
                    let reply = forward_udp(&shared, &packet, &query, &upstreams)
                        .await
                        .unwrap_or_else(|| servfail(&query, false));
                    let _ = sock.send_to(&reply, peer).await;
                    drop(permit);
                });
            }
            Action::Drop => {}
        }
    }
}

async fn serve_tcp(shared: Arc<Shared>, listener: TcpListener, local: IpAddr) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(r) => r,
            Err(e) => {
                debug!(%local, error = %e, "tcp accept");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&shared.tcp_conns).try_acquire_owned() else {
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            serve_tcp_conn(&shared, stream, peer.ip()).await;
            drop(permit);
        });
    }
}

/// Reads a length-prefixed message (RFC 1035 §4.2.2); `None` at EOF or timeout.
async fn read_framed(stream: &mut TcpStream, timeout: Duration) -> Option<Vec<u8>> {
    let read = async {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await.ok()?;
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut msg).await.ok()?;
        Some(msg)
    };
    tokio::time::timeout(timeout, read).await.ok().flatten()
}

fn framed(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&(msg.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
    out.extend_from_slice(msg);
    out
}

async fn serve_tcp_conn(shared: &Shared, mut stream: TcpStream, client: IpAddr) {
    while let Some(msg) = read_framed(&mut stream, TCP_IDLE).await {
        let rotation = shared.rotation.fetch_add(1, Ordering::Relaxed);
        let reply = match handle(&shared.state(), &msg, client, true, rotation) {
            Action::Reply(bytes) => bytes,
            Action::Forward { query, upstreams } => forward_tcp(shared, &msg, &query, &upstreams)
                .await
                .unwrap_or_else(|| servfail(&query, true)),
            Action::Drop => return,
        };
        if stream.write_all(&framed(&reply)).await.is_err() {
            return;
        }
    }
}

fn unspecified(addr: &SocketAddr) -> SocketAddr {
    let ip = if addr.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    SocketAddr::new(ip, 0)
}

async fn forward_udp(
    shared: &Shared,
    packet: &[u8],
    query: &Query,
    upstreams: &[SocketAddr],
) -> Option<Vec<u8>> {
    let mut out = packet.to_vec();
    // The upstream sees the client's own EDNS size and stays within it.
    let limit = query
        .edns_udp_size
        .map_or(wire::PLAIN_UDP_SIZE, usize::from);
    let mut buf = vec![0u8; limit.max(wire::PLAIN_UDP_SIZE)];
    for upstream in upstreams.iter().take(MAX_UPSTREAMS_TRIED) {
        let Ok(sock) = UdpSocket::bind(unspecified(upstream)).await else {
            continue;
        };
        if sock.connect(upstream).await.is_err() {
            continue;
        }
        let id = shared.random_id();
        out[..2].copy_from_slice(&id.to_be_bytes());
        if sock.send(&out).await.is_err() {
            continue;
        }
        let deadline = tokio::time::Instant::now() + shared.config.forward_timeout;
        loop {
            match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
                Ok(Ok(n)) if wire::answers(&buf[..n], id, query) => {
                    let mut resp = buf[..n].to_vec();
                    resp[..2].copy_from_slice(&query.header.id.to_be_bytes());
                    return Some(resp);
                }
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => {
                    debug!(%upstream, error = %e, "upstream refused");
                    break;
                }
                Err(_) => {
                    debug!(%upstream, "upstream timed out");
                    break;
                }
            }
        }
    }
    None
}

async fn forward_tcp(
    shared: &Shared,
    packet: &[u8],
    query: &Query,
    upstreams: &[SocketAddr],
) -> Option<Vec<u8>> {
    let mut out = packet.to_vec();
    for upstream in upstreams.iter().take(MAX_UPSTREAMS_TRIED) {
        let id = shared.random_id();
        out[..2].copy_from_slice(&id.to_be_bytes());
        let exchange = async {
            let mut stream = TcpStream::connect(upstream).await.ok()?;
            stream.write_all(&framed(&out)).await.ok()?;
            read_framed(&mut stream, shared.config.forward_timeout).await
        };
        match tokio::time::timeout(shared.config.forward_timeout, exchange).await {
            Ok(Some(mut resp)) if wire::answers(&resp, id, query) => {
                resp[..2].copy_from_slice(&query.header.id.to_be_bytes());
                return Some(resp);
            }
            _ => debug!(%upstream, "upstream failed over tcp"),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::table::{DnsNetwork, DnsRecord};
    use super::*;

    fn state() -> State {
        let rec = |id: &str, name: &str, ip: &str| DnsRecord {
            container_id: id.into(),
            container_name: name.into(),
            names: vec!["web".into()],
            ipv4: Some(ip.parse().unwrap()),
            ipv6: None,
            dns: vec![],
            links: Default::default(),
        };
        let table = DnsTable {
            networks: vec![DnsNetwork {
                name: "p_default".into(),
                subnets: vec!["10.7.0.0/24".parse().unwrap()],
                gateways: vec!["10.7.0.1".parse().unwrap()],
                internal: false,
                records: vec![
                    rec("a", "p-web-1", "10.7.0.2"),
                    rec("b", "p-web-2", "10.7.0.3"),
                ],
            }],
        };
        State {
            resolver: Arc::new(Resolver::new(table)),
            upstreams: vec!["127.0.0.1:5353".parse().unwrap()],
        }
    }

    fn packet(id: u16, flags: u16, qdcount: u16, name: &str, qtype: u16) -> Vec<u8> {
        let mut q = Vec::new();
        q.extend_from_slice(&id.to_be_bytes());
        q.extend_from_slice(&flags.to_be_bytes());
        q.extend_from_slice(&qdcount.to_be_bytes());
        q.extend_from_slice(&[0; 6]);
        for _ in 0..qdcount {
            q.extend_from_slice(&wire::encode_name(name).unwrap());
            q.extend_from_slice(&qtype.to_be_bytes());
            q.extend_from_slice(&1u16.to_be_bytes());
        }
        q
    }

    fn reply(action: Action) -> (Header, Vec<u8>) {
        match action {
            Action::Reply(bytes) => (Header::parse(&bytes).unwrap(), bytes),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    const CLIENT: &str = "10.7.0.2";

    fn ask(pkt: &[u8], rotation: usize) -> Action {
        handle(&state(), pkt, CLIENT.parse().unwrap(), false, rotation)
    }

    #[test]
    fn local_answer_is_authoritative_and_rotates() {
        let (h, first) = reply(ask(&packet(1, 0x0100, 1, "web", wire::TYPE_A), 0));
        assert_eq!((h.rcode(), h.ancount, h.flags & 0x0400 != 0), (0, 2, true));
        let (_, second) = reply(ask(&packet(1, 0x0100, 1, "web", wire::TYPE_A), 1));
        let a = first.len() - 4;
        assert_eq!(&first[a..], &[10, 7, 0, 3]);
        assert_eq!(&second[a..], &[10, 7, 0, 2]);
    }

    #[test]
    fn errors_and_non_queries() {
        let (h, _) = reply(ask(&packet(2, 0x0100, 1, "nosuch", wire::TYPE_A), 0));
        assert_eq!(h.rcode(), Rcode::NxDomain as u8);
        let (h, _) = reply(ask(&packet(3, 0x0100, 2, "web", wire::TYPE_A), 0));
        assert_eq!(h.rcode(), Rcode::FormErr as u8);
        let (h, _) = reply(ask(&packet(4, 0x2800, 1, "web", wire::TYPE_A), 0));
        assert_eq!((h.rcode(), h.opcode()), (Rcode::NotImp as u8, 5));
        let (h, _) = reply(ask(&[0, 5, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 9, b'x'], 0));
        assert_eq!((h.id, h.rcode()), (5, Rcode::FormErr as u8));
        assert!(matches!(
            ask(&packet(6, 0x8100, 1, "web", wire::TYPE_A), 0),
            Action::Drop
        ));
        assert!(matches!(ask(&[1, 2, 3], 0), Action::Drop));
    }

    /// Truncated and mutated packets never panic the handler (a crash of the
    /// one server would take DNS away from every container).
    #[test]
    fn hostile_packets_never_panic() {
        let state = state();
        let seeds = [
            packet(1, 0x0100, 1, "web", wire::TYPE_A),
            packet(2, 0x0100, 1, "7.0.7.10.in-addr.arpa", wire::TYPE_PTR),
            packet(3, 0x0100, 1, "example.com", wire::TYPE_AAAA),
            {
                let mut p = packet(4, 0x0100, 1, "web", wire::TYPE_A);
                p[11] = 1;
                p.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0x80, 0, 0, 0]);
                p
            },
        ];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let client: IpAddr = CLIENT.parse().unwrap();
        for seed in &seeds {
            for len in 0..=seed.len() {
                let _ = handle(&state, &seed[..len], client, false, 0);
            }
            for _ in 0..20_000 {
                let mut p = seed.clone();
                for _ in 0..1 + next() % 4 {
                    let i = (next() as usize) % p.len();
                    p[i] = next() as u8;
                }
                if next() % 4 == 0 {
                    p.truncate((next() as usize) % (p.len() + 1));
                }
                let _ = handle(&state, &p, client, next() % 2 == 0, next() as usize);
            }
        }
    }

    #[test]
    fn never_forwards_to_itself() {
        let mut state = state();
        state.upstreams = vec!["10.7.0.1:53".parse().unwrap()];
        let pkt = packet(9, 0x0100, 1, "example.com", wire::TYPE_A);
        let action = handle(&state, &pkt, CLIENT.parse().unwrap(), false, 0);
        assert_eq!(reply(action).0.rcode(), Rcode::ServFail as u8);
    }

    #[test]
    fn strangers_are_refused() {
        let pkt = packet(8, 0x0100, 1, "web", wire::TYPE_A);
        let action = handle(&state(), &pkt, "192.0.2.1".parse().unwrap(), false, 0);
        assert_eq!(reply(action).0.rcode(), Rcode::Refused as u8);
    }

    #[test]
    fn other_names_are_forwarded_to_the_host_upstreams() {
        match ask(&packet(7, 0x0100, 1, "example.com", wire::TYPE_A), 0) {
            Action::Forward { query, upstreams } => {
                assert_eq!(query.header.id, 7);
                assert_eq!(upstreams, ["127.0.0.1:5353".parse::<SocketAddr>().unwrap()]);
            }
            other => panic!("{other:?}"),
        }
    }
}
