//! `berth-monitor [--adopt] ID`: the per-container monitor (`src/monitor/`) as a small
//! binary of its own.
//!
//! It is the same code as `berth system monitor ID`, linked without the CLI,
//! the compose model, the image store or the network crate, so each of the
//! many long-lived monitors maps and dirties a fraction of what the full
//! `berth` binary would (`DESIGN.md`: a monitor as small as conmon). The
//! engine runs it when it sits beside the `berth` binary and falls back to
//! `berth system monitor` otherwise. It is also the containers' init binary
//! (the runtime re-executes its own executable), which is why
//! [`berth_runtime::maybe_init`] comes first.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    berth_runtime::maybe_init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (adopt, id) = match args.as_slice() {
        [flag, id] if flag == "--adopt" => (true, id),
        [id] if !id.starts_with('-') => (false, id),
        _ => {
            eprintln!(
                "usage: berth-monitor [--adopt] CONTAINER-ID (started by berth, not by hand)"
            );
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    match berth::commands::lifecycle::monitor(id, adopt) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth-monitor: {e:#}");
            ExitCode::FAILURE
        }
    }
}
