//! A small synchronous rtnetlink client: one request at a time on one socket,
//! every change sent with `NLM_F_ACK` and its answer mapped to an `io::Error`.
//!
//! It owns only the wire exchange and the few link, address and route
//! operations berth needs; it must not know about networks or leases. A
//! socket talks to the network namespace it was opened in (netlink(7)), which
//! is how `sys::netns` reaches a container's namespace.

use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, InfoBridge, InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags,
    LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// A link as the kernel reports it.
#[derive(Debug, Clone)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mtu: u32,
    pub controller: Option<u32>,
    pub up: bool,
}

/// A route of the main table, as far as berth needs it (overlap checks, MTU).
#[derive(Debug, Clone)]
pub struct Route {
    pub destination: Option<IpAddr>,
    pub prefix_len: u8,
    pub oif: Option<u32>,
}

/// An rtnetlink socket bound to the network namespace it was created in.
pub struct Netlink {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    /// Open a socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        socket.set_ext_ack(true).ok();
        Ok(Self {
            socket,
            seq: 0,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Send one request and collect every answer message until the ACK (for
    /// changes) or `NLMSG_DONE` (for dumps). A NACK becomes the kernel's errno.
    fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let mut out = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut out);
        self.socket.send(&out, 0)?;

        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut answers = Vec::new();
        loop {
            self.buf.clear();
            let n = self.socket.recv(&mut self.buf, 0)?;
            if n > self.buf.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "netlink answer truncated",
                ));
            }
            let mut offset = 0;
            while offset < n {
                let reply =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[offset..n])
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = reply.header.length as usize;
                if len == 0 {
                    break;
                }
                offset += (len + 3) & !3;
                if reply.header.sequence_number != self.seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(answers),
                            Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::InnerMessage(m) => {
                        answers.push(m);
                        if !dump {
                            // A non-dump request answered with data still ends with an ACK.
                            continue;
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    fn change(&mut self, message: RouteNetlinkMessage, flags: u16) -> io::Result<()> {
        self.request(message, NLM_F_ACK | flags).map(|_| ())
    }

    /// All links of this namespace.
    pub fn links(&mut self) -> io::Result<Vec<Link>> {
        let answers = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(to_link(l)),
                _ => None,
            })
            .collect())
    }

    /// The link called `name`, or `None`.
    pub fn link_by_name(&mut self, name: &str) -> io::Result<Option<Link>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        match self.request(RouteNetlinkMessage::GetLink(msg), NLM_F_ACK) {
            Ok(answers) => Ok(answers.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(to_link(l)),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Create a bridge with a fixed MAC (so it does not follow its ports'),
    /// STP off and no forward delay. Fails with EEXIST if the name is taken.
    pub fn add_bridge(&mut self, name: &str, mtu: u32, mac: [u8; 6]) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Bridge),
            LinkInfo::Data(InfoData::Bridge(vec![
                InfoBridge::StpState(0),
                InfoBridge::ForwardDelay(0),
            ])),
        ]));
        self.change(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
    }

    /// Create a veth pair: `host` here, enslaved to `controller`; `peer`
    /// directly inside the namespace `peer_netns` (an open netns fd), so it
    /// never appears on the host. Both ends are down; the caller sets them up.
    pub fn add_veth(
        &mut self,
        host: &str,
        peer: &str,
        peer_netns: &impl AsRawFd,
        mtu: u32,
        peer_mac: [u8; 6],
        controller: u32,
    ) -> io::Result<()> {
        // The peer cannot be created up: veth_open() fails with ENOTCONN
        // until both ends are linked, which happens after the peer's setup.
        let mut peer_msg = LinkMessage::default();
        peer_msg
            .attributes
            .push(LinkAttribute::IfName(peer.to_owned()));
        peer_msg.attributes.push(LinkAttribute::Mtu(mtu));
        peer_msg
            .attributes
            .push(LinkAttribute::Address(peer_mac.to_vec()));
        peer_msg
            .attributes
            .push(LinkAttribute::NetNsFd(peer_netns.as_raw_fd()));
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(host.to_owned()));
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        msg.attributes.push(LinkAttribute::Controller(controller));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        self.change(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
    }

    /// Stop the kernel from giving a link IPv6 addresses of its own
    /// (`addrgenmode none`): no link-local address, hence no DAD, MLD or
    /// router solicitations. Addresses added explicitly still work.
    pub fn set_no_ipv6_addresses(&mut self, index: u32) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(no_ipv6_addresses());
        self.change(RouteNetlinkMessage::SetLink(msg), 0)
    }

    /// [`Netlink::set_no_ipv6_addresses`] for the link called `name`.
    pub fn set_no_ipv6_addresses_by_name(&mut self, name: &str) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        msg.attributes.push(no_ipv6_addresses());
        self.change(RouteNetlinkMessage::SetLink(msg), 0)
    }

    /// Set a link up, optionally enslaving it to `controller` in the same request.
    pub fn set_up(&mut self, index: u32, controller: Option<u32>) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        if let Some(c) = controller {
            msg.attributes.push(LinkAttribute::Controller(c));
        }
        self.change(RouteNetlinkMessage::SetLink(msg), 0)
    }

    /// Set the link called `name` up (no index lookup needed).
    pub fn set_up_by_name(&mut self, name: &str) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        self.change(RouteNetlinkMessage::SetLink(msg), 0)
    }

    /// Delete a link by name. A missing link is not an error.
    pub fn delete_link(&mut self, name: &str) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        match self.change(RouteNetlinkMessage::DelLink(msg), 0) {
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(()),
            other => other,
        }
    }

    /// Add `addr/prefix_len` to a link; IPv6 without duplicate address detection
    /// (the address is leased, so it is known to be unique on the bridge).
    pub fn add_address(&mut self, index: u32, addr: IpAddr, prefix_len: u8) -> io::Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.index = index;
        msg.header.prefix_len = prefix_len;
        match addr {
            IpAddr::V4(v4) => {
                msg.header.family = AddressFamily::Inet;
                msg.attributes.push(AddressAttribute::Local(addr));
                msg.attributes.push(AddressAttribute::Address(addr));
                let host_bits = 32 - u32::from(prefix_len);
                if prefix_len < 31 {
                    let bcast = u32::from(v4) | ((1u64 << host_bits) - 1) as u32;
                    msg.attributes
                        .push(AddressAttribute::Broadcast(bcast.into()));
                }
            }
            IpAddr::V6(_) => {
                msg.header.family = AddressFamily::Inet6;
                msg.header.flags = AddressHeaderFlags::Nodad;
                msg.attributes.push(AddressAttribute::Address(addr));
            }
        }
        match self.change(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            other => other,
        }
    }

    /// Every address of this namespace, as (link index, address, prefix length).
    pub fn addresses(&mut self) -> io::Result<Vec<(u32, IpAddr, u8)>> {
        let answers = self.request(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_DUMP,
        )?;
        let mut out = Vec::new();
        for m in answers {
            if let RouteNetlinkMessage::NewAddress(a) = m {
                let addr = a.attributes.iter().find_map(|at| match at {
                    AddressAttribute::Local(ip) => Some(*ip),
                    _ => None,
                });
                let addr = addr.or_else(|| {
                    a.attributes.iter().find_map(|at| match at {
                        AddressAttribute::Address(ip) => Some(*ip),
                        _ => None,
                    })
                });
                if let Some(ip) = addr {
                    out.push((a.header.index, ip, a.header.prefix_len));
                }
            }
        }
        Ok(out)
    }

    /// Routes of the main table of both families.
    pub fn routes(&mut self) -> io::Result<Vec<Route>> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut msg = RouteMessage::default();
            msg.header.address_family = family;
            let answers = self.request(RouteNetlinkMessage::GetRoute(msg), NLM_F_DUMP)?;
            for m in answers {
                let RouteNetlinkMessage::NewRoute(r) = m else {
                    continue;
                };
                if r.header.table != RouteHeader::RT_TABLE_MAIN
                    || r.header.kind != RouteType::Unicast
                {
                    continue;
                }
                let mut route = Route {
                    destination: None,
                    prefix_len: r.header.destination_prefix_length,
                    oif: None,
                };
                for at in &r.attributes {
                    match at {
                        RouteAttribute::Destination(RouteAddress::Inet(a)) => {
                            route.destination = Some(IpAddr::V4(*a))
                        }
                        RouteAttribute::Destination(RouteAddress::Inet6(a)) => {
                            route.destination = Some(IpAddr::V6(*a))
                        }
                        RouteAttribute::Oif(o) => route.oif = Some(*o),
                        _ => {}
                    }
                }
                if route.destination.is_none() && route.prefix_len == 0 {
                    route.destination = Some(match family {
                        AddressFamily::Inet => IpAddr::V4(0.into()),
                        _ => IpAddr::V6(0.into()),
                    });
                }
                out.push(route);
            }
        }
        Ok(out)
    }

    /// Whether the kernel routes `addr` to this namespace itself (a route of
    /// type `local`, as `ip route get` would show), i.e. whether packets to it
    /// are delivered here rather than forwarded or dropped.
    pub fn routes_locally(&mut self, addr: IpAddr) -> io::Result<bool> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = match addr {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        msg.header.destination_prefix_length = if addr.is_ipv4() { 32 } else { 128 };
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(addr)));
        let answers = match self.request(RouteNetlinkMessage::GetRoute(msg), NLM_F_ACK) {
            Ok(a) => a,
            Err(e) if e.raw_os_error() == Some(libc::ENETUNREACH) => return Ok(false),
            Err(e) => return Err(e),
        };
        Ok(answers.iter().any(
            |m| matches!(m, RouteNetlinkMessage::NewRoute(r) if r.header.kind == RouteType::Local),
        ))
    }

    /// Add a default route via `gateway` (the link is found by the kernel).
    pub fn add_default_route(&mut self, gateway: IpAddr) -> io::Result<()> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = match gateway {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(gateway)));
        match self.change(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            other => other,
        }
    }
}

/// `IFLA_AF_SPEC { AF_INET6 { IFLA_INET6_ADDR_GEN_MODE: IN6_ADDR_GEN_MODE_NONE } }`.
fn no_ipv6_addresses() -> LinkAttribute {
    const IN6_ADDR_GEN_MODE_NONE: u8 = 1;
    LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(
        IN6_ADDR_GEN_MODE_NONE,
    )])])
}

fn to_link(l: LinkMessage) -> Link {
    let mut link = Link {
        index: l.header.index,
        name: String::new(),
        mtu: 0,
        controller: None,
        up: l.header.flags.contains(LinkFlags::Up),
    };
    for at in l.attributes {
        match at {
            LinkAttribute::IfName(n) => link.name = n,
            LinkAttribute::Mtu(m) => link.mtu = m,
            LinkAttribute::Controller(c) => link.controller = Some(c),
            _ => {}
        }
    }
    link
}
