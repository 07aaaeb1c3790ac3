//! Kernel tests: real containers from the busybox rootfs, asserting what a
//! process inside sees. Root required; each test has its own runtime root,
//! bundle and cgroup, and force-deletes its containers even when it fails.

mod common;

use common::{sh, unique, Env};

#[test]
fn pid_one_and_hostname() {
    let env = Env::new();
    let id = unique("pid1");
    let bundle = env.bundle(&id, sh("echo pid=$$; hostname"));
    let (code, out, err) = env.run(&id, &bundle).unwrap();
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "pid=1\nberth\n");
}
