//! berth's container networking: bridges, veth pairs, addresses and routes over
//! rtnetlink, IPAM, nftables rules and the DNS server.
//!
//! It knows nothing of Compose: the engine hands it plain network and attachment
//! configs. All `unsafe` lives in `sys`.

pub mod dns;
