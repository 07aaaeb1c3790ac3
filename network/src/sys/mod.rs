//! The kernel calls that are not netlink: entering network namespaces and
//! locking state files, and making namespaces held by bind mounts. Thin wrappers over `nix`; no `unsafe` is needed.

pub mod lock;
pub mod netns;
