//! A minimal binary that is only a container init: the runtime's own tests
//! and benchmarks use it as `Runtime::with_init_exe`, since the `berth`
//! binary (which also dispatches to the init) lives in another crate.

fn main() {
    berth_runtime::maybe_init();
    eprintln!(
        "berth-runtime-init: only runs as a container init ({} as argv[1])",
        berth_runtime::INIT_ARG
    );
    std::process::exit(2);
}
