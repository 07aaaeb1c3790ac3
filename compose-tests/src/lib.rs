//! Data-driven conformance harness: runs the `berth` binary over the fixtures in
//! `../shared/fixtures` and compares its output with Docker Compose's recorded
//! output.
