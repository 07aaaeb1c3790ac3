//! The monitor: one small process per container that is its init's parent,
//! writes its output to the `json-file` log, records how it exits, applies
//! the restart policy and runs its healthchecks (`../DESIGN.md`, Processes).
//!
//! The rules live here as pure, unit-tested parts — [`restart`] (policies
//! and Docker's back-off), [`log`] (the `json-file` format and rotation),
//! [`health`] (the healthcheck state machine) — so the process around them
//! only waits, reads and calls.

pub mod adopt;
pub mod health;
pub mod log;
pub mod process;
pub mod restart;
