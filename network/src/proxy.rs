//! The userland proxy for ports published on IPv6 loopback.
//!
//! Published ports are DNATed by the kernel, but not on `::1`: IPv6 has no
//! `route_localnet`, and a packet from `::1` may not leave the loopback
//! device (RFC 4291 §2.5.3), so a DNATed connection to `[::1]:PORT` can never
//! reach a container. Docker answers those with its userland proxy
//! (docker-proxy); berth does the same, only there: for every port published
//! on `::1`, on `::` or on every address (no `host_ip`), a small process
//! listens on `[::1]:PORT` and copies each TCP connection and UDP exchange to
//! the container (its IPv6 address if it has one, else its IPv4 one). The
//! nft rules leave `::1` alone so the proxy's socket gets the traffic.
//!
//! One proxy process per attachment that needs one, started by `attach` and
//! stopped by `detach` and `remove`; it is the berth binary re-executed
//! (`berth system port-proxy PIDFILE RULE…`, see [`serve`]) and detaches with
//! `setsid`. Layout under `$BERTH_RUN/networks/proxy/<network>/`:
//! - `<container id>.pid` — opened and locked (flock, exclusive) by the proxy
//!   for its whole life, its pid written into it once every socket is bound
//!   (readiness); a lock that can be taken means no proxy runs.
//! - `<container id>.log` — the proxy's stderr.

use std::collections::HashMap;
use std::fmt;
use std::io::{Seek as _, Write as _};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use crate::config::{Attachment, Protocol};

/// How long a UDP exchange with no traffic keeps its upstream socket.
const UDP_IDLE: Duration = Duration::from_secs(60);
/// How long `start` waits for a proxy to bind its sockets.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// One forwarded port: `tcp:[::1]:8080=[fd00::2]:80`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyRule {
    pub protocol: Protocol,
    pub listen: SocketAddr,
    pub target: SocketAddr,
}

impl fmt::Display for ProxyRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}={}",
            self.protocol.as_str(),
            self.listen,
            self.target
        )
    }
}

impl FromStr for ProxyRule {
    type Err = ProxyError;

    fn from_str(s: &str) -> Result<Self, ProxyError> {
        let bad = || ProxyError::InvalidRule(s.to_owned());
        let (proto, rest) = s.split_once(':').ok_or_else(bad)?;
        let protocol = match proto {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            _ => return Err(bad()),
        };
        let (listen, target) = rest.split_once('=').ok_or_else(bad)?;
        Ok(Self {
            protocol,
            listen: listen.parse().map_err(|_| bad())?,
            target: target.parse().map_err(|_| bad())?,
        })
    }
}

/// What can go wrong starting, running or stopping a proxy.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("invalid port proxy rule {0:?} (want tcp|udp:LISTEN=TARGET)")]
    InvalidRule(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("a port proxy already runs for {path}")]
    AlreadyRunning { path: PathBuf },
    #[error("port proxy cannot listen on {addr}/{}: {source}", protocol.as_str())]
    Bind {
        protocol: Protocol,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the port proxy {exe}: {source}")]
    Spawn {
        exe: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the port proxy exited ({status}) before it listened; see {log}")]
    Exited {
        status: std::process::ExitStatus,
        log: PathBuf,
    },
    #[error("the port proxy (pid {pid}) did not get ready or stop in time; see {log}")]
    Timeout { pid: Pid, log: PathBuf },
    #[error("cannot signal the port proxy (pid {pid}): {source}")]
    Signal {
        pid: Pid,
        #[source]
        source: Errno,
    },
}

/// The rules an attachment needs: one per port published on IPv6 loopback
/// (`::1`, `::` or every address).
pub fn rules_for(a: &Attachment) -> Vec<ProxyRule> {
    let Some(target_ip) = a.ipv6.or(a.ipv4) else {
        return Vec::new();
    };
    a.ports
        .iter()
        .filter(|p| match p.host_ip {
            None => true,
            Some(IpAddr::V6(ip)) => ip.is_loopback() || ip.is_unspecified(),
            Some(IpAddr::V4(_)) => false,
        })
        .map(|p| ProxyRule {
            protocol: p.protocol,
            listen: SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), p.host_port),
            target: SocketAddr::new(target_ip, p.container_port),
        })
        .collect()
}

/// The program that runs a proxy: `exe args… PIDFILE RULE…` must end up in
/// [`serve`] (berth: `berth system port-proxy`).
#[derive(Debug, Clone)]
pub struct ProxyCommand {
    pub exe: PathBuf,
    pub args: Vec<String>,
}

fn open_pidfile(path: &Path) -> Result<std::fs::File, ProxyError> {
    Ok(std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?)
}

fn try_lock(path: &Path) -> Result<Option<Flock<std::fs::File>>, ProxyError> {
    match Flock::lock(open_pidfile(path)?, FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(Some(l)),
        Err((_, Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, source)) => Err(ProxyError::Lock {
            path: path.to_owned(),
            source,
        }),
    }
}

fn read_pid(path: &Path) -> Option<Pid> {
    let text = std::fs::read_to_string(path).ok()?;
    text.trim().parse().ok().map(Pid::from_raw)
}

/// Start a proxy for `rules` (pidfile `pidfile`, log beside it) and return
/// its pid once every socket listens. A proxy already running there is
/// stopped first.
pub fn start(cmd: &ProxyCommand, pidfile: &Path, rules: &[ProxyRule]) -> Result<Pid, ProxyError> {
    if let Some(dir) = pidfile.parent() {
        fs_err::create_dir_all(dir)?;
    }
    stop(pidfile)?;
    let log_path = pidfile.with_extension("log");
    let log = fs_err::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let mut child = Command::new(&cmd.exe)
        .args(&cmd.args)
        .arg(pidfile)
        .args(rules.iter().map(|r| r.to_string()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.into_parts().0)
        .spawn()
        .map_err(|source| ProxyError::Spawn {
            exe: cmd.exe.clone(),
            source,
        })?;
    let pid = Pid::from_raw(child.id() as i32);
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut pause = Duration::from_micros(100);
    loop {
        if read_pid(pidfile) == Some(pid) {
            break;
        }
        if let Some(status) = child.try_wait()? {
            return Err(ProxyError::Exited {
                status,
                log: log_path,
            });
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ProxyError::Timeout { pid, log: log_path });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(5));
    }
    // Reap it should it end while this process lives.
    std::thread::spawn(move || child.wait());
    tracing::debug!(%pid, pidfile = %pidfile.display(), "port proxy started");
    Ok(pid)
}

/// Stop the proxy of `pidfile` (SIGTERM, SIGKILL after 2 s) and remove its
/// files; none running is fine.
pub fn stop(pidfile: &Path) -> Result<(), ProxyError> {
    if !pidfile.exists() {
        return Ok(());
    }
    if try_lock(pidfile)?.is_none() {
        // Locked but no pid yet: a proxy binding right now; wait it out.
        let deadline = Instant::now() + READY_TIMEOUT;
        let pid = loop {
            if let Some(pid) = read_pid(pidfile) {
                break pid;
            }
            if try_lock(pidfile)?.is_some() {
                let _ = std::fs::remove_file(pidfile);
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ProxyError::Timeout {
                    pid: Pid::from_raw(0),
                    log: pidfile.with_extension("log"),
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        'signals: {
            for sig in [Signal::SIGTERM, Signal::SIGKILL] {
                match signal::kill(pid, sig) {
                    Ok(()) | Err(Errno::ESRCH) => {}
                    Err(source) => return Err(ProxyError::Signal { pid, source }),
                }
                let deadline = Instant::now() + Duration::from_secs(2);
                while Instant::now() < deadline {
                    if try_lock(pidfile)?.is_some() {
                        break 'signals;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            return Err(ProxyError::Timeout {
                pid,
                log: pidfile.with_extension("log"),
            });
        }
    }
    let _ = std::fs::remove_file(pidfile);
    let _ = std::fs::remove_file(pidfile.with_extension("log"));
    Ok(())
}

/// The pid of the proxy that holds `pidfile` now: a live process, not being
/// killed, with the file open (one killed a moment ago still holds its lock).
pub fn running(pidfile: &Path) -> Result<Option<Pid>, ProxyError> {
    if !pidfile.exists() || try_lock(pidfile)?.is_some() {
        return Ok(None);
    }
    Ok(read_pid(pidfile).filter(|pid| crate::liveness::holds_open(*pid, pidfile)))
}

/// The proxy process: `berth system port-proxy PIDFILE RULE…` calls this.
/// Detaches from the caller's session, locks `pidfile`, binds every rule's
/// socket, writes its pid into `pidfile` and forwards until SIGTERM.
pub fn serve(pidfile: &Path, rules: &[ProxyRule]) -> Result<(), ProxyError> {
    let _ = nix::unistd::setsid();
    let pidfile = std::env::current_dir()?.join(pidfile);
    std::env::set_current_dir("/")?;
    let Some(held) = try_lock(&pidfile)? else {
        return Err(ProxyError::AlreadyRunning { path: pidfile });
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut tasks = tokio::task::JoinSet::new();
        for rule in rules {
            let bind_err = |source| ProxyError::Bind {
                protocol: rule.protocol,
                addr: rule.listen,
                source,
            };
            match rule.protocol {
                Protocol::Tcp => {
                    let l = tokio::net::TcpListener::bind(rule.listen)
                        .await
                        .map_err(bind_err)?;
                    tasks.spawn(forward_tcp(l, rule.target));
                }
                Protocol::Udp => {
                    let s = tokio::net::UdpSocket::bind(rule.listen)
                        .await
                        .map_err(bind_err)?;
                    tasks.spawn(forward_udp(Arc::new(s), rule.target));
                }
            }
        }
        // Ready: every socket listens.
        let mut f: &std::fs::File = &held;
        f.set_len(0)?;
        f.rewind()?;
        writeln!(f, "{}", std::process::id())?;
        tracing::info!(rules = ?rules.iter().map(ToString::to_string).collect::<Vec<_>>(), "port proxy ready");
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tasks.shutdown().await;
        Ok::<(), ProxyError>(())
    })
}

async fn forward_tcp(listener: tokio::net::TcpListener, target: SocketAddr) {
    loop {
        let Ok((mut client, from)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        tokio::spawn(async move {
            match tokio::net::TcpStream::connect(target).await {
                Ok(mut upstream) => {
                    let _ = client.set_nodelay(true);
                    let _ = upstream.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
                // The client sees its connection closed, as with docker-proxy.
                Err(e) => tracing::debug!(%from, %target, error = %e, "upstream connect failed"),
            }
        });
    }
}

async fn forward_udp(socket: Arc<tokio::net::UdpSocket>, target: SocketAddr) {
    // One connected upstream socket per client, so answers find their way back.
    let mut clients: HashMap<SocketAddr, (Arc<tokio::net::UdpSocket>, Instant)> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        clients.retain(|_, (_, seen)| seen.elapsed() < UDP_IDLE);
        let upstream = match clients.get_mut(&from) {
            Some((u, seen)) => {
                *seen = Instant::now();
                Arc::clone(u)
            }
            None => {
                let local: SocketAddr = if target.is_ipv4() {
                    "0.0.0.0:0".parse().unwrap_or(target)
                } else {
                    "[::]:0".parse().unwrap_or(target)
                };
                let Ok(u) = tokio::net::UdpSocket::bind(local).await else {
                    continue;
                };
                if u.connect(target).await.is_err() {
                    continue;
                }
                let u = Arc::new(u);
                clients.insert(from, (Arc::clone(&u), Instant::now()));
                let (back, reply) = (Arc::clone(&socket), Arc::clone(&u));
                tokio::spawn(async move {
                    let mut b = vec![0u8; 65536];
                    while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, reply.recv(&mut b)).await {
                        let _ = back.send_to(&b[..n], from).await;
                    }
                });
                u
            }
        };
        let _ = upstream.send(&buf[..n]).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PublishedPort;

    #[test]
    fn rules_parse_and_print() {
        let r: ProxyRule = "tcp:[::1]:8080=[fd00::2]:80".parse().unwrap();
        assert_eq!(r.protocol, Protocol::Tcp);
        assert_eq!(r.to_string(), "tcp:[::1]:8080=[fd00::2]:80");
        let u: ProxyRule = "udp:[::1]:53=10.0.0.2:53".parse().unwrap();
        assert_eq!(u.target, "10.0.0.2:53".parse().unwrap());
        for bad in ["sctp:[::1]:1=[::2]:1", "tcp:[::1]:1", "tcp:x=y", ""] {
            assert!(bad.parse::<ProxyRule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn only_ports_on_ipv6_loopback_are_proxied() {
        let port = |host_ip: Option<&str>, host_port| PublishedPort {
            protocol: Protocol::Tcp,
            host_ip: host_ip.map(|h| h.parse().unwrap()),
            host_port,
            container_port: 80,
        };
        let mut a = Attachment {
            network: "n".into(),
            container_id: "c".into(),
            ifname: "eth0".into(),
            host_ifname: "veth0".into(),
            ipv4: Some("172.18.0.2".parse().unwrap()),
            ipv6: None,
            ipv4_prefix_len: Some(16),
            ipv6_prefix_len: None,
            mac: "02:42:00:00:00:00".into(),
            gateway: None,
            gateway6: None,
            ports: vec![
                port(None, 1),
                port(Some("::"), 2),
                port(Some("::1"), 3),
                port(Some("0.0.0.0"), 4),
                port(Some("127.0.0.1"), 5),
                port(Some("fd99::1"), 6),
            ],
            container_name: None,
            project: None,
        };
        let got: Vec<String> = rules_for(&a).iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "tcp:[::1]:1=172.18.0.2:80",
                "tcp:[::1]:2=172.18.0.2:80",
                "tcp:[::1]:3=172.18.0.2:80"
            ]
        );
        a.ipv6 = Some("fd00::2".parse().unwrap());
        assert_eq!(rules_for(&a)[0].to_string(), "tcp:[::1]:1=[fd00::2]:80");
    }
}
