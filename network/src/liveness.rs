//! Whether a process named by a pidfile is really the live holder of a lock
//! file: alive, not being killed, and with that file open. Used for the DNS
//! server and the port proxies, whose flock is their liveness signal: a
//! process killed with -9 keeps its files (and locks) for a moment after
//! kill(2) returns, and a pid may have been recycled.

use std::path::{Path, PathBuf};

use nix::unistd::Pid;

/// Whether `pid` is a live process, not exiting nor with a SIGKILL pending,
/// that has `lock_path` open (so a recycled pid or a dying server is not
/// mistaken for the server).
pub(crate) fn holds_open(pid: Pid, lock_path: &Path) -> bool {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let Ok(status) = std::fs::read_to_string(proc_dir.join("status")) else {
        return false;
    };
    if !process_is_live(&status) {
        return false;
    }
    let Ok(lock) = std::fs::metadata(lock_path) else {
        return false;
    };
    let Ok(fds) = std::fs::read_dir(proc_dir.join("fd")) else {
        return false;
    };
    use std::os::unix::fs::MetadataExt as _;
    fds.flatten().any(|fd| {
        std::fs::metadata(fd.path()).is_ok_and(|m| m.dev() == lock.dev() && m.ino() == lock.ino())
    })
}

/// From `/proc/PID/status`: not a zombie or dead, and no SIGKILL pending
/// for the thread or the process (a killed process keeps running kernel
/// code, holding its files and locks, for a moment after kill(2) returns).
pub(crate) fn process_is_live(status: &str) -> bool {
    const SIGKILL_BIT: u64 = 1 << (libc::SIGKILL - 1);
    for line in status.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "State" if value.starts_with(['Z', 'X', 'x']) => return false,
            "SigPnd" | "ShdPnd"
                if u64::from_str_radix(value, 16).is_ok_and(|m| m & SIGKILL_BIT != 0) =>
            {
                return false;
            }
            _ => {}
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dying_and_dead_processes_are_not_live() {
        let running = "Name:\tberth\nState:\tS (sleeping)\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n";
        assert!(process_is_live(running));
        assert!(!process_is_live(
            &running.replace("S (sleeping)", "Z (zombie)")
        ));
        assert!(!process_is_live(
            &running.replace("S (sleeping)", "X (dead)")
        ));
        // SIGKILL is signal 9: bit 8 of the mask.
        assert!(!process_is_live(&running.replacen(
            "SigPnd:\t0000000000000000",
            "SigPnd:\t0000000000000100",
            1
        )));
        assert!(!process_is_live(&running.replacen(
            "ShdPnd:\t0000000000000000",
            "ShdPnd:\t0000000000000100",
            1
        )));
        // Another pending signal (SIGTERM, bit 14) is no sign of death yet.
        assert!(process_is_live(&running.replacen(
            "SigPnd:\t0000000000000000",
            "SigPnd:\t0000000000004000",
            1
        )));
    }
}
