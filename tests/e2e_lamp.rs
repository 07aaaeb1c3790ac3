//! The LAMP example end to end, as its README runs it: the images made
//! from Debian's packages (cached after the first run), `up -d --wait`, a
//! row written through PHP into MariaDB, kept across `down`/`up` in the
//! named volume, then `down -v` leaving nothing. The script is
//! `examples/lamp/test-stack.sh`; this test runs it with the berth under
//! test, in fresh BERTH_ROOT/BERTH_RUN. Needs root and Debian's archive.

use std::process::Command;

#[test]
fn lamp_stack_serves_rows_from_mariadb_and_leaves_nothing() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/lamp/test-stack.sh");
    let out = Command::new("bash")
        .arg(script)
        .env("BERTH", env!("CARGO_BIN_EXE_berth"))
        .env("BERTH_LOG", "error")
        .output()
        .expect("precondition: bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("PASS"),
        "examples/lamp/test-stack.sh failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}
