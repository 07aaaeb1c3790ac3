//! Shared helpers of the kernel tests: a bundle made from the busybox rootfs
//! in a temp dir, a runtime with its own root, and a guard that force-deletes
//! every container a test made, even when the test fails.

#![allow(dead_code)]

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use berth_runtime::{CreateOptions, Runtime, Spec};

pub const INIT: &str = env!("CARGO_BIN_EXE_berth-runtime-init");

/// Fails (never skips) when the test cannot do real work.
pub fn require_root() {
    let euid_root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    assert!(
        euid_root,
        "these kernel tests need root with full capabilities; run them as root"
    );
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A unique container id for this test process.
pub fn unique(prefix: &str) -> String {
    format!(
        "bt-{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// One test's runtime root, bundles and containers; force-deletes them all
/// when dropped (also on panic).
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub rt: Runtime,
    ids: std::sync::Mutex<Vec<String>>,
}

impl Env {
    pub fn new() -> Self {
        require_root();
        let tmp = tempfile::tempdir().expect("tempdir");
        let rt = Runtime::new(tmp.path().join("state")).with_init_exe(INIT);
        Self {
            tmp,
            rt,
            ids: Default::default(),
        }
    }

    /// A bundle dir with a fresh busybox rootfs and `spec` (its cgroup path
    /// made unique to the container).
    pub fn bundle(&self, id: &str, mut spec: Spec) -> PathBuf {
        let dir = self.tmp.path().join(format!("bundle-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        make_rootfs(&dir.join("rootfs"));
        let linux = spec.linux_mut().as_mut().unwrap();
        linux.set_cgroups_path(Some(PathBuf::from(format!("berth-test/{id}"))));
        write_spec(&dir, &spec);
        self.ids.lock().unwrap().push(id.to_owned());
        dir
    }

    /// Runs the container in the foreground; returns (exit code, stdout, stderr).
    pub fn run(
        &self,
        id: &str,
        bundle: &Path,
    ) -> Result<(i32, String, String), berth_runtime::RuntimeError> {
        let out = tempfile::tempfile().unwrap();
        let err = tempfile::tempfile().unwrap();
        let opts = CreateOptions {
            stdio: [
                None,
                Some(OwnedFd::from(out.try_clone().unwrap())),
                Some(OwnedFd::from(err.try_clone().unwrap())),
            ],
            ..Default::default()
        };
        let code = self.rt.run(id, bundle, &opts)?;
        Ok((code, read_all(out), read_all(err)))
    }
}

pub fn write_spec(bundle: &Path, spec: &Spec) {
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec_pretty(spec).unwrap(),
    )
    .unwrap();
}

pub fn read_all(mut f: std::fs::File) -> String {
    use std::io::{Read, Seek};
    f.rewind().unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    s
}

impl Drop for Env {
    fn drop(&mut self) {
        for id in self.ids.lock().unwrap().iter() {
            let _ = self.rt.delete(id, true);
        }
        // The shared parent cgroup: removed by whichever test ends last
        // (EBUSY while another test still has a container in it).
        if let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") {
            for c in controllers.flatten() {
                let _ = std::fs::remove_dir(c.path().join("berth-test"));
            }
        }
    }
}

pub fn make_rootfs(dir: &Path) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/busybox-rootfs.sh");
    let out = Command::new("sh")
        .arg(script)
        .arg(dir)
        .output()
        .expect("running busybox-rootfs.sh");
    assert!(
        out.status.success(),
        "busybox-rootfs.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Docker's defaults running `sh -c script`.
pub fn sh(script: &str) -> Spec {
    berth_runtime::spec::docker_default(&["sh", "-c", script])
}
