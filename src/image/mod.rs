//! The image store: references, the on-disk OCI layout, and layer
//! application. Owns everything under `$BERTH_ROOT/images`; it never starts
//! containers or mounts anything.

pub mod layer;
pub mod reference;

pub use reference::{Reference, ReferenceError};
