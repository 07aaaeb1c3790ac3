//! The Compose model: from files on disk to one normalized [`Project`].
//!
//! Compose's order of work, one module a stage: `yaml` (parse, anchors, merge
//! keys, `!reset`/`!override`) → `interpolate` (with `dotenv` and the
//! environment) → `schema` (validation against the Compose JSON schema) →
//! `extends` → `include` → `merge` (of the `-f` files) → `profiles` →
//! `normalize` (into the typed `Project`) → `consistency`. `load` runs them in
//! that order. Everything here is pure: no kernel access, no network.

pub mod cache;
pub mod canonical;
pub mod consistency;
pub mod dotenv;
pub mod extends;
pub mod graph;
pub mod hash;
pub mod include;
pub mod inputs;
pub mod interpolate;
pub mod load;
pub mod merge;
pub mod node;
pub mod normalize;
pub mod paths;
pub mod ports;
pub mod profiles;
pub mod project;
pub mod schema;
pub mod volumes;
pub mod yaml;
