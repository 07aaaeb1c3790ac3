//! berth's OCI runtime: turns an OCI runtime-spec bundle (`config.json` plus a
//! rootfs) into an isolated, limited process, as runc, crun and youki do.
//!
//! This crate is the only code in berth that clones into namespaces or mounts a
//! rootfs. It knows nothing of Compose or of networking: it takes an OCI `Spec`.
//! All `unsafe` lives in `sys`.
