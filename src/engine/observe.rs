//! What exists: the containers, networks and volumes of a project, as the
//! planner sees them. Filled from berth's on-disk state by the engine; the
//! planner only reads it.

use std::collections::BTreeSet;

/// A container's state, in Docker's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Restarting,
    Exited,
    Dead,
}

/// One existing container of the project, from its labels and state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedContainer {
    pub id: String,
    pub name: String,
    pub service: String,
    pub number: u32,
    pub oneoff: bool,
    pub config_hash: String,
    pub image_digest: Option<String>,
    pub state: ContainerState,
    /// Creation time (seconds since the epoch), to order unnumbered ones.
    pub created: u64,
}

/// Everything of the project that exists now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub containers: Vec<ObservedContainer>,
    /// Network names (`project_default`, external names).
    pub networks: BTreeSet<String>,
    /// Volume names (`project_data`).
    pub volumes: BTreeSet<String>,
}
