//! DNS messages on the wire (RFC 1035, EDNS from RFC 6891): just enough to read
//! a query and to write an answer with A, AAAA and PTR records or an error code.
//!
//! Names in a query are kept as received (original case, uncompressed) so the
//! answer echoes the question byte for byte, as resolvers that randomise case
//! (DNS 0x20) require. Compression pointers are followed when parsing; answers
//! point back at the question name (offset 12) and are otherwise uncompressed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Record type A (RFC 1035).
pub const TYPE_A: u16 = 1;
/// Record type PTR (RFC 1035).
pub const TYPE_PTR: u16 = 12;
/// Record type AAAA (RFC 3596).
pub const TYPE_AAAA: u16 = 28;
/// Pseudo record type OPT (RFC 6891).
pub const TYPE_OPT: u16 = 41;
/// Query type ANY (RFC 1035 `*`).
pub const TYPE_ANY: u16 = 255;
/// Class IN.
pub const CLASS_IN: u16 = 1;

const HEADER_LEN: usize = 12;
const FLAG_QR: u16 = 0x8000;
const FLAG_AA: u16 = 0x0400;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const FLAG_RA: u16 = 0x0080;
const FLAG_CD: u16 = 0x0010;
/// The largest name on the wire (RFC 1035 §2.3.4).
const MAX_NAME_LEN: usize = 255;
/// The UDP payload a plain (non-EDNS) client accepts.
pub const PLAIN_UDP_SIZE: usize = 512;
/// The UDP payload we advertise and accept at most (the DNS flag day 2020 value).
pub const EDNS_UDP_SIZE: u16 = 1232;

/// Response codes we send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Rcode {
    /// No error.
    NoError = 0,
    /// The query could not be parsed.
    FormErr = 1,
    /// The server failed (e.g. no upstream answered).
    ServFail = 2,
    /// The name does not exist.
    NxDomain = 3,
    /// The opcode is not supported.
    NotImp = 4,
    /// The server refuses to answer.
    Refused = 5,
}

/// Why a packet is not a query we can read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The packet ends before a field it announces.
    #[error("message truncated")]
    Short,
    /// A label type other than a plain label or a pointer (RFC 6891 §5).
    #[error("unsupported label type")]
    BadLabel,
    /// Compression pointers that loop or point forward.
    #[error("bad compression pointer")]
    BadPointer,
    /// A name longer than 255 bytes.
    #[error("name too long")]
    NameTooLong,
}

/// The fixed header of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Transaction id.
    pub id: u16,
    /// The flags word (QR, opcode, AA, TC, RD, RA, Z, AD, CD, rcode).
    pub flags: u16,
    /// Entries in the question section.
    pub qdcount: u16,
    /// Records in the answer section.
    pub ancount: u16,
    /// Records in the authority section.
    pub nscount: u16,
    /// Records in the additional section.
    pub arcount: u16,
}

impl Header {
    /// Reads the header, or `None` when the packet is shorter than one.
    pub fn parse(buf: &[u8]) -> Option<Header> {
        if buf.len() < HEADER_LEN {
            return None;
        }
        let word = |i: usize| u16::from_be_bytes([buf[i], buf[i + 1]]);
        Some(Header {
            id: word(0),
            flags: word(2),
            qdcount: word(4),
            ancount: word(6),
            nscount: word(8),
            arcount: word(10),
        })
    }

    /// True for a response (QR set).
    pub fn is_response(&self) -> bool {
        self.flags & FLAG_QR != 0
    }

    /// True when the TC bit is set.
    pub fn is_truncated(&self) -> bool {
        self.flags & FLAG_TC != 0
    }

    /// The opcode (0 is QUERY).
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xf) as u8
    }

    /// The response code.
    pub fn rcode(&self) -> u8 {
        (self.flags & 0xf) as u8
    }
}

/// A parsed query: its header, its single question and its EDNS payload size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// The header as received.
    pub header: Header,
    /// The question name, uncompressed, exactly as received (with the root label).
    pub qname_wire: Vec<u8>,
    /// The question name for lookups: lower case, dotted, no trailing dot; `None`
    /// when a label holds a byte that cannot be part of a host name lookup
    /// (a dot, a space, a non-ASCII byte), which is never one of our names.
    pub name: Option<String>,
    /// Question type.
    pub qtype: u16,
    /// Question class.
    pub qclass: u16,
    /// The UDP payload size the client advertised with EDNS, if it sent OPT.
    pub edns_udp_size: Option<u16>,
}

impl Query {
    /// Reads a query with exactly one question. The caller has already checked
    /// the header (see [`Header::parse`]).
    pub fn parse(buf: &[u8]) -> Result<Query, WireError> {
        let header = Header::parse(buf).ok_or(WireError::Short)?;
        let mut pos = HEADER_LEN;
        let mut qname_wire = Vec::with_capacity(32);
        pos = read_name(buf, pos, &mut qname_wire)?;
        let qtype = read_u16(buf, pos)?;
        let qclass = read_u16(buf, pos + 2)?;
        pos += 4;
        // Skip any answer and authority records (a query has none, but a
        // malformed one must not confuse the OPT lookup), then look for OPT.
        let mut edns_udp_size = None;
        let skip = usize::from(header.ancount) + usize::from(header.nscount);
        for i in 0..skip + usize::from(header.arcount) {
            let mut scratch = Vec::new();
            pos = read_name(buf, pos, &mut scratch)?;
            let rtype = read_u16(buf, pos)?;
            let rclass = read_u16(buf, pos + 2)?;
            let rdlen = usize::from(read_u16(buf, pos + 8)?);
            pos += 10;
            if buf.len() < pos + rdlen {
                return Err(WireError::Short);
            }
            pos += rdlen;
            if i >= skip && rtype == TYPE_OPT {
                edns_udp_size = Some(rclass);
            }
        }
        let name = lookup_name(&qname_wire);
        Ok(Query {
            header,
            qname_wire,
            name,
            qtype,
            qclass,
            edns_udp_size,
        })
    }

    /// The largest UDP answer this client accepts.
    pub fn udp_limit(&self) -> usize {
        match self.edns_udp_size {
            Some(size) => usize::from(size.clamp(PLAIN_UDP_SIZE as u16, EDNS_UDP_SIZE)),
            None => PLAIN_UDP_SIZE,
        }
    }
}

fn read_u16(buf: &[u8], pos: usize) -> Result<u16, WireError> {
    match buf.get(pos..pos + 2) {
        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
        None => Err(WireError::Short),
    }
}

/// Reads the name at `pos` into `out` (uncompressed wire form, ending with the
/// root label) and returns the position after the name in the original packet.
fn read_name(buf: &[u8], mut pos: usize, out: &mut Vec<u8>) -> Result<usize, WireError> {
    let mut end = None;
    // Every pointer must go strictly backwards, so the loop ends.
    let mut limit = pos;
    loop {
        let len = *buf.get(pos).ok_or(WireError::Short)?;
        match len & 0xc0 {
            0x00 => {
                let len = usize::from(len);
                let label = buf.get(pos + 1..pos + 1 + len).ok_or(WireError::Short)?;
                if out.len() + 1 + len > MAX_NAME_LEN {
                    return Err(WireError::NameTooLong);
                }
                out.push(len as u8);
                out.extend_from_slice(label);
                pos += 1 + len;
                if len == 0 {
                    return Ok(end.unwrap_or(pos));
                }
            }
            0xc0 => {
                let target = usize::from(read_u16(buf, pos)? & 0x3fff);
                if target >= limit {
                    return Err(WireError::BadPointer);
                }
                end.get_or_insert(pos + 2);
                limit = target;
                pos = target;
            }
            _ => return Err(WireError::BadLabel),
        }
    }
}

/// The lower-case dotted form of a wire name, without the trailing dot.
fn lookup_name(wire: &[u8]) -> Option<String> {
    let mut name = String::with_capacity(wire.len());
    let mut pos = 0;
    while let Some(&len) = wire.get(pos) {
        if len == 0 {
            break;
        }
        let label = &wire[pos + 1..pos + 1 + usize::from(len)];
        if !label.iter().all(|b| b.is_ascii_graphic() && *b != b'.') {
            return None;
        }
        if !name.is_empty() {
            name.push('.');
        }
        name.extend(label.iter().map(|b| char::from(b.to_ascii_lowercase())));
        pos += 1 + usize::from(len);
    }
    Some(name)
}

/// Encodes a dotted name (a trailing dot is optional) in wire form.
/// Returns `None` for an empty label, a label over 63 bytes or a name over 255.
pub fn encode_name(name: &str) -> Option<Vec<u8>> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut out = Vec::with_capacity(name.len() + 2);
    if !name.is_empty() {
        for label in name.split('.') {
            if label.is_empty() || label.len() > 63 {
                return None;
            }
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
    }
    out.push(0);
    (out.len() <= MAX_NAME_LEN).then_some(out)
}

/// The data of one answer record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rdata {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// A name, in wire form (see [`encode_name`]).
    Ptr(Vec<u8>),
}

impl Rdata {
    /// The record for an address of either family.
    pub fn addr(ip: IpAddr) -> Rdata {
        match ip {
            IpAddr::V4(v4) => Rdata::A(v4),
            IpAddr::V6(v6) => Rdata::Aaaa(v6),
        }
    }

    fn rtype(&self) -> u16 {
        match self {
            Rdata::A(_) => TYPE_A,
            Rdata::Aaaa(_) => TYPE_AAAA,
            Rdata::Ptr(_) => TYPE_PTR,
        }
    }

    fn len(&self) -> usize {
        match self {
            Rdata::A(_) => 4,
            Rdata::Aaaa(_) => 16,
            Rdata::Ptr(name) => name.len(),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Rdata::A(a) => out.extend_from_slice(&a.octets()),
            Rdata::Aaaa(a) => out.extend_from_slice(&a.octets()),
            Rdata::Ptr(name) => out.extend_from_slice(name),
        }
    }
}

/// How an answer is to be built.
#[derive(Clone, Copy, Debug)]
pub struct Reply {
    /// The response code.
    pub rcode: Rcode,
    /// Set AA: the answer comes from our own tables.
    pub authoritative: bool,
    /// TTL of the answer records.
    pub ttl: u32,
    /// The largest message the client accepts (UDP limit, or 65535 over TCP).
    pub max_len: usize,
}

/// Writes the response to `query`: the question echoed, then as many of
/// `answers` as fit in `reply.max_len` (TC is set if some did not).
pub fn response(query: &Query, reply: Reply, answers: &[Rdata]) -> Vec<u8> {
    let h = query.header;
    let mut flags = FLAG_QR
        | (u16::from(h.opcode()) << 11)
        | (h.flags & (FLAG_RD | FLAG_CD))
        | FLAG_RA
        | reply.rcode as u16;
    if reply.authoritative {
        flags |= FLAG_AA;
    }
    let opt_len = if query.edns_udp_size.is_some() { 11 } else { 0 };
    let mut out = Vec::with_capacity(HEADER_LEN + query.qname_wire.len() + 4 + answers.len() * 28);
    out.extend_from_slice(&h.id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&u16::from(opt_len > 0).to_be_bytes());
    out.extend_from_slice(&query.qname_wire);
    out.extend_from_slice(&query.qtype.to_be_bytes());
    out.extend_from_slice(&query.qclass.to_be_bytes());
    let mut count: u16 = 0;
    for rr in answers {
        let len = rr.len();
        if out.len() + 12 + len + opt_len > reply.max_len {
            flags |= FLAG_TC;
            out[2..4].copy_from_slice(&flags.to_be_bytes());
            break;
        }
        // Owner name: a pointer to the question name at offset 12.
        out.extend_from_slice(&[0xc0, HEADER_LEN as u8]);
        out.extend_from_slice(&rr.rtype().to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&reply.ttl.to_be_bytes());
        out.extend_from_slice(&(len as u16).to_be_bytes());
        rr.write(&mut out);
        count += 1;
    }
    out[6..8].copy_from_slice(&count.to_be_bytes());
    if opt_len > 0 {
        // Root name, type OPT, our payload size, extended rcode/version/flags 0.
        out.push(0);
        out.extend_from_slice(&TYPE_OPT.to_be_bytes());
        out.extend_from_slice(&EDNS_UDP_SIZE.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    out
}

/// A bare error answer for a packet whose question could not be read:
/// the header's id and opcode, the rcode, no sections.
pub fn header_only_response(header: Header, rcode: Rcode) -> Vec<u8> {
    let flags = FLAG_QR
        | (u16::from(header.opcode()) << 11)
        | (header.flags & FLAG_RD)
        | FLAG_RA
        | rcode as u16;
    let mut out = Vec::with_capacity(HEADER_LEN);
    out.extend_from_slice(&header.id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    out
}

/// True when `resp` is the answer to `query` sent with id `id`: a response
/// with that id whose question is the same name (any case), type and class.
/// A response without a question is accepted only as an error answer.
pub fn answers(resp: &[u8], id: u16, query: &Query) -> bool {
    let Some(h) = Header::parse(resp) else {
        return false;
    };
    if h.id != id || !h.is_response() {
        return false;
    }
    if h.qdcount == 0 {
        return h.rcode() != 0;
    }
    let mut name = Vec::with_capacity(query.qname_wire.len());
    let Ok(pos) = read_name(resp, HEADER_LEN, &mut name) else {
        return false;
    };
    name.eq_ignore_ascii_case(&query.qname_wire)
        && read_u16(resp, pos) == Ok(query.qtype)
        && read_u16(resp, pos + 2) == Ok(query.qclass)
}

/// The address a reverse name (`4.3.2.1.in-addr.arpa`, `….ip6.arpa`) stands
/// for, or `None` if it is not a complete reverse name of one address.
pub fn reverse_addr(name: &str) -> Option<IpAddr> {
    if let Some(rest) = name.strip_suffix(".in-addr.arpa") {
        let mut octets = [0u8; 4];
        let mut parts = rest.split('.');
        for slot in octets.iter_mut().rev() {
            let part = parts.next()?;
            if part.is_empty() || part.len() > 3 || (part.len() > 1 && part.starts_with('0')) {
                return None;
            }
            *slot = part.parse().ok()?;
        }
        return parts.next().is_none().then(|| IpAddr::from(octets));
    }
    if let Some(rest) = name.strip_suffix(".ip6.arpa") {
        let mut value: u128 = 0;
        let mut n = 0;
        for (i, part) in rest.split('.').enumerate() {
            if i >= 32 || part.len() != 1 {
                return None;
            }
            let nibble = u128::from(part.chars().next()?.to_digit(16)?);
            value |= nibble << (4 * i);
            n += 1;
        }
        return (n == 32).then(|| IpAddr::from(Ipv6Addr::from(value)));
    }
    None
}

/// The reverse name of an address (for tests and clients).
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for `name` (wire form given) of `qtype`, optionally with OPT.
    fn query(id: u16, qname: &[u8], qtype: u16, edns: Option<u16>) -> Vec<u8> {
        let mut q = Vec::new();
        q.extend_from_slice(&id.to_be_bytes());
        q.extend_from_slice(&0x0100u16.to_be_bytes());
        q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())]);
        q.extend_from_slice(qname);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&CLASS_IN.to_be_bytes());
        if let Some(size) = edns {
            q.push(0);
            q.extend_from_slice(&TYPE_OPT.to_be_bytes());
            q.extend_from_slice(&size.to_be_bytes());
            q.extend_from_slice(&[0, 0, 0x80, 0, 0, 0]);
        }
        q
    }

    #[test]
    fn parses_query_keeping_case_and_edns_size() {
        let wire = encode_name("Web.Proj_Default.").unwrap();
        let q = Query::parse(&query(0xbeef, &wire, TYPE_AAAA, Some(4096))).unwrap();
        assert_eq!(q.header.id, 0xbeef);
        assert_eq!(q.qname_wire, wire);
        assert_eq!(q.name.as_deref(), Some("web.proj_default"));
        assert_eq!(q.qtype, TYPE_AAAA);
        assert_eq!(q.edns_udp_size, Some(4096));
        assert_eq!(q.udp_limit(), usize::from(EDNS_UDP_SIZE));
        let plain = Query::parse(&query(1, &wire, TYPE_A, None)).unwrap();
        assert_eq!(plain.udp_limit(), PLAIN_UDP_SIZE);
        let root = Query::parse(&query(1, &[0], 2, None)).unwrap();
        assert_eq!(root.name.as_deref(), Some(""));
    }

    #[test]
    fn follows_backward_pointers_and_rejects_bad_names() {
        // The question name is a pointer to a name placed before it in a
        // (bogus but legal) authority-free layout: build `x` + pointer.
        let mut pkt = query(7, &encode_name("svc").unwrap(), TYPE_A, None);
        let first = read_name(&pkt, 12, &mut Vec::new()).unwrap();
        assert_eq!(first, 12 + 5);
        // Now a name "a" followed by a pointer to offset 12 ("svc").
        let mut name = vec![1, b'a', 0xc0, 12];
        let mut out = Vec::new();
        pkt.truncate(12 + 5 + 4);
        let start = pkt.len();
        pkt.append(&mut name);
        assert_eq!(read_name(&pkt, start, &mut out).unwrap(), start + 4);
        assert_eq!(lookup_name(&out).as_deref(), Some("a.svc"));
        // A pointer to itself, or forward, is refused.
        let looped = [0u8, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12];
        assert_eq!(Query::parse(&looped), Err(WireError::BadPointer));
        // Extended label types and truncation.
        let bad = query(1, &[0x41, 0], TYPE_A, None);
        assert_eq!(Query::parse(&bad), Err(WireError::BadLabel));
        let short = query(1, &encode_name("abc").unwrap(), TYPE_A, None);
        assert_eq!(
            Query::parse(&short[..short.len() - 3]),
            Err(WireError::Short)
        );
        let long = "a".repeat(63);
        assert!(encode_name(&[long.as_str(); 4].join(".")).is_none());
        assert!(encode_name(&"a".repeat(64)).is_none());
        // Labels that cannot be our names are not looked up.
        let odd = Query::parse(&query(1, &[3, b'a', b'.', b'b', 0], TYPE_A, None)).unwrap();
        assert_eq!(odd.name, None);
    }

    #[test]
    fn response_echoes_question_and_truncates_to_the_limit() {
        let wire = encode_name("WeB").unwrap();
        let q = Query::parse(&query(0x1234, &wire, TYPE_A, None)).unwrap();
        let answers: Vec<Rdata> = (0..40)
            .map(|i| Rdata::A(Ipv4Addr::new(10, 0, 0, i)))
            .collect();
        let reply = Reply {
            rcode: Rcode::NoError,
            authoritative: true,
            ttl: 600,
            max_len: PLAIN_UDP_SIZE,
        };
        let resp = response(&q, reply, &answers);
        let h = Header::parse(&resp).unwrap();
        assert_eq!(h.id, 0x1234);
        assert!(h.is_response() && h.is_truncated());
        assert_eq!(
            h.flags & (FLAG_AA | FLAG_RD | FLAG_RA),
            FLAG_AA | FLAG_RD | FLAG_RA
        );
        assert!(resp.len() <= PLAIN_UDP_SIZE);
        assert_eq!(
            usize::from(h.ancount),
            (PLAIN_UDP_SIZE - 12 - wire.len() - 4) / 16
        );
        assert_eq!(&resp[12..12 + wire.len()], &wire[..]);
        assert!(answers_any(&resp, &q));
        // All fit over TCP; the first record is a pointer to the question.
        let resp = response(
            &q,
            Reply {
                max_len: 65535,
                ..reply
            },
            &answers,
        );
        let h = Header::parse(&resp).unwrap();
        assert_eq!((h.ancount, h.is_truncated()), (40, false));
        let rr = 12 + wire.len() + 4;
        assert_eq!(
            &resp[rr..rr + 12],
            &[0xc0, 12, 0, 1, 0, 1, 0, 0, 2, 0x58, 0, 4]
        );
        assert_eq!(&resp[rr + 12..rr + 16], &[10, 0, 0, 0]);
    }

    fn answers_any(resp: &[u8], q: &Query) -> bool {
        answers(resp, Header::parse(resp).unwrap().id, q)
    }

    #[test]
    fn edns_query_gets_opt_back_and_nxdomain_has_no_answers() {
        let q = Query::parse(&query(9, &encode_name("nope").unwrap(), TYPE_A, Some(1400))).unwrap();
        let reply = Reply {
            rcode: Rcode::NxDomain,
            authoritative: true,
            ttl: 600,
            max_len: q.udp_limit(),
        };
        let resp = response(&q, reply, &[]);
        let h = Header::parse(&resp).unwrap();
        assert_eq!((h.rcode(), h.ancount, h.arcount), (3, 0, 1));
        let opt = &resp[resp.len() - 11..];
        assert_eq!(opt, &[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        let err = header_only_response(h, Rcode::FormErr);
        assert_eq!(err.len(), 12);
        assert_eq!(Header::parse(&err).unwrap().rcode(), 1);
    }

    #[test]
    fn upstream_answer_must_match_id_and_question() {
        let q = Query::parse(&query(
            5,
            &encode_name("example.com").unwrap(),
            TYPE_A,
            None,
        ))
        .unwrap();
        let reply = Reply {
            rcode: Rcode::NoError,
            authoritative: false,
            ttl: 1,
            max_len: 512,
        };
        let good = response(&q, reply, &[Rdata::A(Ipv4Addr::new(192, 0, 2, 1))]);
        assert!(answers(&good, 5, &q));
        assert!(!answers(&good, 6, &q));
        let other = Query::parse(&query(
            5,
            &encode_name("EXAMPLE.org").unwrap(),
            TYPE_A,
            None,
        ))
        .unwrap();
        assert!(!answers(&response(&other, reply, &[]), 5, &q));
        let upper = Query::parse(&query(
            5,
            &encode_name("EXAMPLE.com").unwrap(),
            TYPE_A,
            None,
        ))
        .unwrap();
        assert!(answers(&response(&upper, reply, &[]), 5, &q));
        // A query (QR clear) is not an answer.
        assert!(!answers(&query(5, &q.qname_wire, TYPE_A, None), 5, &q));
    }

    #[test]
    fn reverse_names_round_trip() {
        for ip in ["10.89.0.7", "fd00:1:2::abc", "::1", "255.255.255.255"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(reverse_addr(&reverse_name(ip)), Some(ip), "{ip}");
        }
        assert_eq!(
            reverse_name("10.89.0.7".parse().unwrap()),
            "7.0.89.10.in-addr.arpa"
        );
        assert_eq!(reverse_addr("0.89.10.in-addr.arpa"), None);
        assert_eq!(reverse_addr("07.0.89.10.in-addr.arpa"), None);
        assert_eq!(reverse_addr("1.7.0.89.10.in-addr.arpa"), None);
        assert_eq!(reverse_addr("1.0.ip6.arpa"), None);
    }
}
