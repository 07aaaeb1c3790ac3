//! The kernel calls that are not netlink: entering network namespaces and
//! locking state files. Thin wrappers over `nix`; no `unsafe` is needed.

pub mod lock;
pub mod netns;
