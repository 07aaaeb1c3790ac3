//! Differential test: the same bundle under runc (installed on CI machines)
//! and under berth must show the process the same world.

mod common;

use std::process::Command;

use common::{sh, unique, Env};

const PROBE: &str = "id; hostname; echo pid=$$; grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status; \
    ls -a /dev | sort | tr '\\n' ' '; echo; wc -c < /proc/timer_list; \
    (echo x > /proc/sysrq-trigger) 2>/dev/null; echo sysrq=$?; (touch /sys/x) 2>/dev/null; echo sys=$?; \
    mount -t tmpfs none /mnt 2>/dev/null; echo mount=$?; cat /proc/self/cgroup | wc -l; pwd; ulimit -n";

#[test]
fn runc_and_berth_agree() {
    let env = Env::new();
    let runc = which("runc")
        .expect("runc is not installed: the differential test needs it (apt-get install runc)");
    let mut spec = sh(PROBE);
    spec.process_mut().as_mut().unwrap().set_cwd("/tmp".into());
    let id = unique("diff");
    let bundle = env.bundle(&id, spec);
    let (code, ours, err) = env.run(&id, &bundle).unwrap();
    assert_eq!(code, 0, "berth: {err}");

    let runc_root = env.tmp.path().join("runc-root");
    let runc_id = format!("{id}-runc");
    let out = Command::new(&runc)
        .arg("--root")
        .arg(&runc_root)
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&runc_id)
        .output()
        .unwrap();
    let _ = Command::new(&runc)
        .arg("--root")
        .arg(&runc_root)
        .args(["delete", "--force", &runc_id])
        .output();
    assert!(
        out.status.success(),
        "runc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = String::from_utf8(out.stdout).unwrap();
    assert_eq!(ours, theirs, "berth (left) and runc (right) disagree");
}

fn which(cmd: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| std::path::Path::new(d).join(cmd))
        .find(|p| p.exists())
}
