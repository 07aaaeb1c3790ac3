//! End to end: `export` and `commit` of a busybox service. The export holds
//! the image's files and what the container wrote; the committed image
//! carries `-c` changes, the message, a layer with the new file and a
//! whiteout for the deleted one, and a container made from it sees exactly
//! that. `--index` picks the replica. Needs root (overlay mounts).

mod e2e_support;

use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth::image::{Reference, Store};
use e2e_support::Setup;

/// The stack, and beside it the project `check` that runs the committed
/// image, in one set of state dirs.
struct Env {
    inner: e2e_support::Env,
    check_dir: PathBuf,
}

const STACK: &str = r#"
services:
  app:
    image: bb:latest
    network_mode: none
    stop_signal: SIGKILL
    deploy:
      replicas: 2
    command: ["sh", "-c", "echo made > /made.txt; rm /etc/group; exec sleep 1000"]
"#;

const CHECK: &str = r#"
services:
  check:
    image: snap:1
    network_mode: none
    command: ["sh", "-c", "cat /made.txt; test -e /etc/group && echo group-present; test -e /replica && echo replica-present; echo debug=$$DEBUG"]
"#;

impl Env {
    fn new() -> Env {
        assert!(
            rustix::process::geteuid().is_root(),
            "precondition: e2e_export needs root (overlay mounts)"
        );
        let pid = std::process::id();
        let inner = Setup::new(format!("exp{pid}"))
            .compose(STACK)
            .image_config(&["ENV KEEP=1"])
            .build();
        let check_dir = inner.tmp.join("check");
        std::fs::create_dir_all(&check_dir).unwrap();
        std::fs::write(
            check_dir.join("compose.yaml"),
            format!("name: expcheck{pid}\n{CHECK}"),
        )
        .unwrap();
        Env { inner, check_dir }
    }

    fn ok_in(&self, dir: &Path, args: &[&str]) -> Vec<u8> {
        self.inner.ok_bytes_in(dir, args)
    }

    fn ok(&self, args: &[&str]) -> Vec<u8> {
        self.ok_in(&self.dir, args)
    }
}

impl Deref for Env {
    type Target = e2e_support::Env;

    fn deref(&self) -> &e2e_support::Env {
        &self.inner
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // The stack's own guard follows.
        let _ = self.berth_in(&self.check_dir, &["down", "-v", "-t", "0"]);
    }
}

/// Archive entries: name (no leading `./`) → (type, content).
fn entries(tar: &[u8]) -> BTreeMap<String, (tar::EntryType, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut a = tar::Archive::new(tar);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let kind = e.header().entry_type();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        out.insert(name, (kind, data));
    }
    out
}

#[test]
fn export_and_commit_a_busybox_service() {
    let env = Env::new();
    env.ok(&["up", "-d"]);
    // Both replicas wrote /made.txt and deleted /etc/group.
    let end = Instant::now() + Duration::from_secs(20);
    for i in ["1", "2"] {
        loop {
            let out = env.berth_in(
                &env.dir,
                &[
                    "exec",
                    "--index",
                    i,
                    "app",
                    "sh",
                    "-c",
                    "cat /made.txt && ! test -e /etc/group",
                ],
            );
            if out.status.success() {
                break;
            }
            assert!(Instant::now() < end, "replica {i} never wrote /made.txt");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    env.ok(&[
        "exec",
        "--index",
        "2",
        "app",
        "sh",
        "-c",
        "echo two > /replica",
    ]);

    // export to stdout: the image's files and the container's.
    let tar = env.ok(&["export", "app"]);
    let files = entries(&tar);
    let (kind, busybox) = &files["bin/busybox"];
    assert_eq!(*kind, tar::EntryType::Regular);
    assert_eq!(busybox, &std::fs::read("/bin/busybox").unwrap());
    assert_eq!(files["bin/sh"].0, tar::EntryType::Symlink);
    assert_eq!(files["made.txt"].1, b"made\n");
    assert!(
        !files.contains_key("etc/group"),
        "the deleted file is exported"
    );
    assert!(files.contains_key("etc/passwd"));
    assert!(
        !files.contains_key("replica"),
        "replica 2's file in replica 1"
    );

    // --index 2 -o FILE: the other replica.
    let out = env.dir.join("two.tar");
    env.ok(&["export", "--index", "2", "-o", out.to_str().unwrap(), "app"]);
    let two = entries(&std::fs::read(&out).unwrap());
    assert_eq!(two["replica"].1, b"two\n");
    assert!(two.contains_key("bin/busybox"));
    let bad = env.berth_in(&env.dir, &["export", "--index", "3", "app"]);
    assert!(
        !bad.status.success(),
        "export of a missing replica succeeded"
    );

    // commit
    let id = String::from_utf8(env.ok(&[
        "commit",
        "-c",
        "ENV DEBUG=true",
        "-m",
        "my msg",
        "-a",
        "me",
        "app",
        "snap:1",
    ]))
    .unwrap();
    let id = id.trim();
    assert!(
        id.starts_with("sha256:") && id.len() == 71,
        "commit printed {id:?}"
    );
    let inspect: serde_json::Value =
        serde_json::from_slice(&env.ok(&["image", "inspect", "snap:1"])).unwrap();
    let img = &inspect[0];
    assert_eq!(img["Id"], id);
    assert_eq!(img["Author"], "me");
    let envs: Vec<&str> = img["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        envs.contains(&"DEBUG=true") && envs.contains(&"KEEP=1"),
        "env {envs:?}"
    );
    assert_eq!(img["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(img["RootFS"]["Layers"].as_array().unwrap().len(), 2);

    let store = Store::open(&env.root).unwrap();
    let m = store
        .manifest(&store.resolve(&Reference::parse("snap:1").unwrap()).unwrap())
        .unwrap();
    let cfg = store.config(&m).unwrap();
    assert_eq!(cfg.history.last().unwrap()["comment"], "my msg");
    let layer = entries(&store.read_blob(&m.layers.last().unwrap().digest).unwrap());
    assert_eq!(layer["made.txt"].1, b"made\n");
    let (kind, wh) = &layer["etc/.wh.group"];
    assert_eq!((*kind, wh.len()), (tar::EntryType::Regular, 0));
    assert!(
        !layer.contains_key("bin/busybox"),
        "the new layer holds unchanged image files"
    );
    assert!(!layer.contains_key("replica"));
    // The container kept running (unpaused after the commit).
    env.ok(&["exec", "app", "true"]);

    // A container of the committed image sees the change.
    let out = String::from_utf8(env.ok_in(&env.check_dir, &["run", "--rm", "check"])).unwrap();
    assert!(out.contains("made"), "run output {out:?}");
    assert!(
        !out.contains("group-present"),
        "the deleted file is back: {out:?}"
    );
    assert!(!out.contains("replica-present"), "{out:?}");
    assert!(out.contains("debug=true"), "{out:?}");

    // Commit of replica 2 holds its file.
    env.ok(&["commit", "--index", "2", "app", "snap:2"]);
    let m = store
        .manifest(&store.resolve(&Reference::parse("snap:2").unwrap()).unwrap())
        .unwrap();
    let layer = entries(&store.read_blob(&m.layers.last().unwrap().digest).unwrap());
    assert_eq!(layer["replica"].1, b"two\n");
}
