//! Layer application against hostile and ordinary archives. Needs root (for
//! chown, device nodes and trusted.* xattrs).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use berth::image::layer::{apply, ApplyOptions, Mode};

/// Builds a tar in memory from (path, kind) entries with raw names, so the
/// hostile forms `tar::Builder` would refuse can be written.
struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Self {
        Tar(tar::Builder::new(Vec::new()))
    }
    fn header(kind: tar::EntryType, name: &str, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(1000);
        h.set_gid(1001);
        h.set_mtime(1_600_000_000);
        let bytes = name.as_bytes();
        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        h.set_cksum();
        h
    }
    fn file(mut self, name: &str, data: &[u8]) -> Self {
        let h = Self::header(tar::EntryType::Regular, name, 0o644, data.len() as u64);
        self.0.append(&h, data).unwrap();
        self
    }
    fn dir(mut self, name: &str) -> Self {
        let h = Self::header(tar::EntryType::Directory, name, 0o755, 0);
        self.0.append(&h, &[][..]).unwrap();
        self
    }
    fn link(mut self, kind: tar::EntryType, name: &str, target: &str) -> Self {
        let mut h = Self::header(kind, name, 0o777, 0);
        let t = target.as_bytes();
        h.as_old_mut().linkname[..t.len()].copy_from_slice(t);
        h.set_cksum();
        self.0.append(&h, &[][..]).unwrap();
        self
    }
    fn dev(mut self, name: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Block, name, 0o600, 0);
        h.set_device_major(8).unwrap();
        h.set_device_minor(0).unwrap();
        h.set_cksum();
        self.0.append(&h, &[][..]).unwrap();
        self
    }
    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "precondition: these tests must run as root"
    );
}

/// A sandbox: `outside/` holds a canary file; `rootfs/` is where layers go.
fn sandbox() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("outside")).unwrap();
    fs::write(tmp.path().join("outside/canary"), b"safe").unwrap();
    fs::create_dir(tmp.path().join("rootfs")).unwrap();
    let root = tmp.path().join("rootfs");
    (tmp, root)
}

fn snapshot(dir: &Path) -> Vec<(String, u32, u64, Vec<u8>)> {
    let mut out = Vec::new();
    for e in walk(dir) {
        let m = fs::symlink_metadata(&e).unwrap();
        let content = if m.is_file() {
            fs::read(&e).unwrap()
        } else {
            Vec::new()
        };
        out.push((e.display().to_string(), m.mode(), m.len(), content));
    }
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.push(p.clone());
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Builds a hostile layer tarball, given the test's scratch directory.
type LayerBuilder = Box<dyn Fn(&Path) -> Vec<u8>>;

#[test]
fn hostile_layers_change_nothing_outside_the_rootfs() {
    require_root();
    let outside_abs = |tmp: &Path| tmp.join("outside").display().to_string();
    let cases: Vec<(&str, LayerBuilder)> = vec![
        (
            "dotdot traversal",
            Box::new(|_| {
                Tar::new()
                    .file("../outside/canary", b"pwned")
                    .file("../../../../../../tmp/x", b"p")
                    .bytes()
            }),
        ),
        (
            "absolute path",
            Box::new(move |t| {
                Tar::new()
                    .file(&format!("{}/canary", outside_abs(t)), b"pwned")
                    .bytes()
            }),
        ),
        (
            "symlink escape",
            Box::new(|_| {
                Tar::new()
                    .link(tar::EntryType::Symlink, "esc", "../outside")
                    .file("esc/canary", b"pwned")
                    .file("esc/new", b"p")
                    .bytes()
            }),
        ),
        (
            "absolute symlink escape",
            Box::new(move |t| {
                Tar::new()
                    .link(tar::EntryType::Symlink, "abs", &outside_abs(t))
                    .file("abs/canary", b"pwned")
                    .bytes()
            }),
        ),
        (
            "symlink chain",
            Box::new(|_| {
                Tar::new()
                    .link(tar::EntryType::Symlink, "a", "b/../..")
                    .link(tar::EntryType::Symlink, "b", "..")
                    .file("a/outside/canary", b"pwned")
                    .bytes()
            }),
        ),
        (
            "hardlink escape",
            Box::new(|_| {
                Tar::new()
                    .link(tar::EntryType::Link, "h", "../outside/canary")
                    .file("h", b"pwned")
                    .bytes()
            }),
        ),
        (
            "hardlink through symlink",
            Box::new(move |t| {
                Tar::new()
                    .link(tar::EntryType::Symlink, "s", &outside_abs(t))
                    .link(tar::EntryType::Link, "h", "s/canary")
                    .bytes()
            }),
        ),
        (
            "overwrite symlink target",
            Box::new(move |t| {
                Tar::new()
                    .link(
                        tar::EntryType::Symlink,
                        "c",
                        &format!("{}/canary", outside_abs(t)),
                    )
                    .file("c", b"pwned")
                    .bytes()
            }),
        ),
        (
            "whiteout escape",
            Box::new(|_| {
                Tar::new()
                    .file("../outside/.wh.canary", b"")
                    .file(".wh...", b"")
                    .bytes()
            }),
        ),
        (
            "whiteout through symlink",
            Box::new(move |t| {
                Tar::new()
                    .link(tar::EntryType::Symlink, "w", &outside_abs(t))
                    .file("w/.wh.canary", b"")
                    .file("w/.wh..wh..opq", b"")
                    .bytes()
            }),
        ),
    ];
    for (name, make) in cases {
        for mode in [Mode::Overlay, Mode::Flatten] {
            let (tmp, root) = sandbox();
            let before = snapshot(&tmp.path().join("outside"));
            let data = make(tmp.path());
            // Errors are acceptable; escaping is not.
            let _ = apply(
                &data[..],
                &root,
                ApplyOptions {
                    mode,
                    allow_devices: false,
                },
            );
            assert_eq!(
                before,
                snapshot(&tmp.path().join("outside")),
                "case {name:?} ({mode:?}) touched outside"
            );
            assert_eq!(
                fs::read(tmp.path().join("outside/canary")).unwrap(),
                b"safe",
                "{name}"
            );
        }
    }
}

#[test]
fn hardlinks_through_symlinks_stay_inside() {
    require_root();
    let (tmp, root) = sandbox();
    let data = Tar::new()
        .link(
            tar::EntryType::Symlink,
            "s",
            &tmp.path().join("outside").display().to_string(),
        )
        .link(tar::EntryType::Link, "h", "s/canary")
        .bytes();
    // `s/canary` resolves inside the rootfs, where it does not exist: in
    // overlay mode the link waits for the lower layers, and with none that
    // have it, it is refused.
    let stats = apply(&data[..], &root, ApplyOptions::default()).unwrap();
    assert!(berth::image::layer::resolve_lower_links(&root, &stats.lower_links, &[]).is_err());
    assert_eq!(
        fs::metadata(tmp.path().join("outside/canary"))
            .unwrap()
            .nlink(),
        1
    );
}

#[test]
fn devices_only_when_allowed() {
    require_root();
    let (_tmp, root) = sandbox();
    let data = Tar::new().dev("sda").bytes();
    let stats = apply(
        &data[..],
        &root,
        ApplyOptions {
            mode: Mode::Overlay,
            allow_devices: false,
        },
    )
    .unwrap();
    assert_eq!(stats.skipped_devices, 1);
    assert!(!root.join("sda").exists());
    apply(
        &data[..],
        &root,
        ApplyOptions {
            mode: Mode::Overlay,
            allow_devices: true,
        },
    )
    .unwrap();
    assert!(fs::symlink_metadata(root.join("sda"))
        .unwrap()
        .file_type()
        .is_block_device());
}

#[test]
fn overlay_whiteouts_and_opaque_dirs() {
    require_root();
    let (_tmp, root) = sandbox();
    let data = Tar::new()
        .dir("d")
        .file("d/.wh..wh..opq", b"")
        .file(".wh.gone", b"")
        .file("d/keep", b"k")
        .bytes();
    let stats = apply(&data[..], &root, ApplyOptions::default()).unwrap();
    assert_eq!(stats.whiteouts, 2);
    let wh = fs::symlink_metadata(root.join("gone")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    let opq = rustix::fs::getxattr(
        root.join("d").as_path(),
        "trusted.overlay.opaque",
        &mut [0u8; 4][..],
    )
    .unwrap();
    assert_eq!(opq, 1);
    assert_eq!(fs::read(root.join("d/keep")).unwrap(), b"k");
}

#[test]
fn flatten_applies_whiteouts_by_deleting() {
    require_root();
    let (_tmp, root) = sandbox();
    let base = Tar::new()
        .dir("d")
        .file("d/old", b"o")
        .file("f", b"f")
        .bytes();
    apply(
        &base[..],
        &root,
        ApplyOptions {
            mode: Mode::Flatten,
            allow_devices: true,
        },
    )
    .unwrap();
    let top = Tar::new()
        .dir("d")
        .file("d/.wh..wh..opq", b"")
        .file("d/new", b"n")
        .file(".wh.f", b"")
        .bytes();
    apply(
        &top[..],
        &root,
        ApplyOptions {
            mode: Mode::Flatten,
            allow_devices: true,
        },
    )
    .unwrap();
    assert!(!root.join("d/old").exists());
    assert!(root.join("d/new").exists());
    assert!(!root.join("f").exists());
}

#[test]
fn metadata_is_kept_and_gzip_zstd_plain_all_apply() {
    require_root();
    let plain = Tar::new()
        .dir("etc")
        .file("etc/passwd", b"root:x:0:0")
        .link(tar::EntryType::Symlink, "lnk", "/etc/passwd")
        .link(tar::EntryType::Link, "hard", "etc/passwd")
        .bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &plain).unwrap();
    let gz = gz.finish().unwrap();
    let zst = std::process::Command::new("zstd")
        .arg("-q")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn();
    let mut inputs = vec![("plain", plain.clone()), ("gzip", gz)];
    if let Ok(mut child) = zst {
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), &plain).unwrap();
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        inputs.push(("zstd", out.stdout));
    } else {
        panic!("precondition: the zstd command is needed to make a zstd layer");
    }
    for (name, data) in inputs {
        let (_tmp, root) = sandbox();
        apply(&data[..], &root, ApplyOptions::default()).unwrap();
        let m = fs::metadata(root.join("etc/passwd")).unwrap();
        assert_eq!((m.uid(), m.gid()), (1000, 1001), "{name}");
        assert_eq!(m.permissions().mode() & 0o7777, 0o644, "{name}");
        assert_eq!(m.mtime(), 1_600_000_000, "{name}");
        assert_eq!(m.nlink(), 2, "{name}");
        assert_eq!(
            fs::read_link(root.join("lnk")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert_eq!(
            fs::metadata(root.join("etc")).unwrap().mtime(),
            1_600_000_000,
            "{name}"
        );
    }
}

#[test]
fn overlay_hardlink_to_a_lower_layer_file_is_copied_up_and_linked() {
    require_root();
    let (_tmp, root) = sandbox();
    let lower = root.join("lower");
    let upper = root.join("upper");
    fs::create_dir_all(&lower).unwrap();
    fs::create_dir_all(&upper).unwrap();
    let base = Tar::new()
        .dir("usr")
        .dir("usr/bin")
        .file("usr/bin/perl", b"#!perl")
        .bytes();
    apply(&base[..], &lower, ApplyOptions::default()).unwrap();
    // The next layer links to the lower layer's file, as Debian's perl
    // packages do across image layers.
    let top = Tar::new()
        .dir("usr")
        .dir("usr/bin")
        .link(tar::EntryType::Link, "usr/bin/perl5.36", "usr/bin/perl")
        .bytes();
    let stats = apply(&top[..], &upper, ApplyOptions::default()).unwrap();
    assert_eq!(
        stats.lower_links,
        [("usr/bin/perl".into(), "usr/bin/perl5.36".into())]
    );
    berth::image::layer::resolve_lower_links(
        &upper,
        &stats.lower_links,
        std::slice::from_ref(&lower),
    )
    .unwrap();
    let a = fs::metadata(upper.join("usr/bin/perl")).unwrap();
    let b = fs::metadata(upper.join("usr/bin/perl5.36")).unwrap();
    assert_eq!(a.ino(), b.ino(), "one file, two names");
    assert_eq!(fs::read(upper.join("usr/bin/perl5.36")).unwrap(), b"#!perl");
    let l = fs::metadata(lower.join("usr/bin/perl")).unwrap();
    assert_eq!(
        (a.uid(), a.gid(), a.mode(), a.mtime()),
        (l.uid(), l.gid(), l.mode(), l.mtime())
    );
    // A link to nothing any layer has is refused.
    let (_tmp2, root2) = sandbox();
    let bad = Tar::new()
        .link(tar::EntryType::Link, "x", "nowhere")
        .bytes();
    let stats = apply(&bad[..], &root2, ApplyOptions::default()).unwrap();
    assert!(
        berth::image::layer::resolve_lower_links(&root2, &stats.lower_links, &[lower]).is_err()
    );
}
