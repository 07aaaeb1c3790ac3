//! The image store: references, the on-disk OCI layout, layer application,
//! and the registry client that pulls and pushes. Owns everything under
//! `$BERTH_ROOT/images`; it never starts containers or mounts anything.

pub mod archive;
pub mod credentials;
pub mod import;
pub mod layer;
pub mod overlay;
pub mod partial;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registry;
pub mod store;

pub use reference::{Reference, ReferenceError};
pub use store::{ImageConfig, Store, StoreError};
