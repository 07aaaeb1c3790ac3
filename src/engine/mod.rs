//! The engine: observe what exists, plan what to change, execute the plan
//! (`../DESIGN.md`, "The way data flows"). [`plan`] is pure: the same
//! project and observation give the same plan, whose text is what
//! `--dry-run` prints.

pub mod events;
pub mod execute;
pub mod hooks;
pub mod naming;
pub mod net;
pub mod observe;
pub mod plan;
pub mod pull;
pub mod spec;
pub mod state;
pub mod usage;
pub mod wait;

pub use observe::{ContainerState, Observed, ObservedContainer};
pub use plan::{plan, Action, Plan, PlanError, Reason, Recreate, UpOptions};
