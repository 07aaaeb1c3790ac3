//! The image store: references, the on-disk OCI layout, and layer
//! application. Owns everything under `$BERTH_ROOT/images`; it never starts
//! containers or mounts anything.

pub mod import;
pub mod layer;
pub mod reference;
pub mod store;

pub use reference::{Reference, ReferenceError};
pub use store::{ImageConfig, Store, StoreError};
