//! Links the small `berth-monitor` binary as a position-dependent
//! executable: its relocations are then resolved at link time, so the
//! pages of its read-only data stay clean and shared between the many
//! monitors instead of being copied and relocated in each one (a third of a
//! monitor's private memory as a PIE).
fn main() {
    println!("cargo:rustc-link-arg-bin=berth-monitor=-no-pie");
}
