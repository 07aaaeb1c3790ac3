//! The compiled Docker default profile against the real kernel: a forked
//! child installs it and makes the system calls Docker denies.

use berth_runtime::caps::DOCKER_DEFAULT;
use berth_runtime::seccomp::{compile, docker_default, syscall_number};
use berth_runtime::sys::probe_syscall_under_filter;

fn errno_of(name: &str, args: [u64; 6]) -> i32 {
    let prog = compile(&docker_default(DOCKER_DEFAULT)).unwrap();
    let nr = syscall_number(name).unwrap();
    probe_syscall_under_filter(&prog, i64::from(nr), args).unwrap()
}

#[test]
fn docker_profile_denials_in_the_kernel() {
    assert_eq!(
        errno_of("unshare", [libc::CLONE_NEWUTS as u64, 0, 0, 0, 0, 0]),
        libc::EPERM
    );
    assert_eq!(errno_of("mount", [0; 6]), libc::EPERM);
    assert_eq!(errno_of("keyctl", [0; 6]), libc::EPERM);
    assert_eq!(errno_of("clone3", [0; 6]), libc::ENOSYS);
    // Allowed calls go through (getpid never fails).
    assert_eq!(errno_of("getpid", [0; 6]), 0);
    // socket(AF_VSOCK) is denied by argument.
    assert_eq!(errno_of("socket", [40, 1, 0, 0, 0, 0]), libc::EPERM);
}
