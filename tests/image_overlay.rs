//! Many layers: an image of 200+ tiny layers, whose absolute lowerdir list
//! is several times the kernel's one-page limit for mount(2) options, is
//! stacked with overlayfs (`lowerdir+` through the new mount API) and runs
//! as a container. Needs root and Linux 6.8+; every mount is undone by a
//! guard, even when an assertion fails.

mod image_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use berth::image::overlay::{self, OverlayError, OverlayMethod, Upper};
use berth::image::{archive, Reference, Store};
use image_support::*;

const LAYERS: usize = 200;

fn need_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "precondition: these tests mount overlayfs and must run as root"
    );
}

/// Layer `i` adds `/layers/NNN` (content `i`), rewrites `/top` and, at
/// fixed points, makes and removes `/gone` (a whiteout), so order matters.
fn tiny_layer(i: usize) -> Vec<u8> {
    let name = format!("layers/{i:03}");
    let content = i.to_string();
    let mut entries = vec![
        E::Dir("layers", 0o755),
        E::File(&name, 0o644, content.as_bytes()),
        E::File("top", 0o644, content.as_bytes()),
    ];
    if i == 50 {
        entries.push(E::File("gone", 0o644, b"here"));
    }
    if i == 120 {
        entries.push(E::File(".wh.gone", 0o644, b""));
    }
    layer_tar(&entries)
}

/// Loads an OCI layout of `base` (optional) plus [`LAYERS`] tiny layers
/// into the store as `tag`.
fn load_many_layer_image(store: &Store, tmp: &Path, tag: &str, base: Option<Vec<u8>>) {
    let layout = tmp.join(format!("layout-{}", tag.replace([':', '/'], "-")));
    let mut layers: Vec<(Vec<u8>, Compression)> = Vec::new();
    if let Some(b) = base {
        layers.push((b, Compression::Gzip));
    }
    layers.extend((0..LAYERS).map(|i| (tiny_layer(i), Compression::None)));
    oci_image(&layout, tag, &layers);
    let mut b = tar::Builder::new(Vec::new());
    b.append_dir_all(".", &layout).unwrap();
    let archive_bytes = b.into_inner().unwrap();
    let names = archive::load(store, &archive_bytes[..]).unwrap();
    assert_eq!(names, [Reference::parse(tag).unwrap()]);
}

/// Unmounts (lazily) on drop.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

fn mounted_at(target: &Path) -> bool {
    let t = target.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(t.as_str()))
}

fn option_bytes(lowers: &[PathBuf], upper: &Path, work: &Path) -> usize {
    let lower: Vec<String> = lowers.iter().map(|l| l.display().to_string()).collect();
    format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    )
    .len()
}

#[test]
fn two_hundred_layers_mount_past_the_option_page_and_show_every_layer() {
    need_root();
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("root")).unwrap();
    load_many_layer_image(&store, tmp.path(), "many:latest", None);
    let lowers = store
        .layer_dirs(&Reference::parse("many:latest").unwrap())
        .unwrap();
    assert_eq!(lowers.len(), LAYERS);
    assert!(lowers.iter().all(|l| l.is_absolute()));

    let upper = tmp.path().join("upper");
    let work = tmp.path().join("work");
    let target = tmp.path().join("merged");
    for d in [&upper, &work, &target] {
        std::fs::create_dir_all(d).unwrap();
    }
    let bytes = option_bytes(&lowers, &upper, &work);
    assert!(
        bytes > 4 * 4096,
        "the test must exceed a page several times ({bytes} bytes)"
    );

    // mount(2), as kernels before 6.8 must: short relative names make the
    // list fit; the scratch links are gone afterwards.
    overlay::mount_legacy(
        &lowers,
        Some(Upper {
            upper: &upper,
            work: &work,
        }),
        &target,
    )
    .unwrap();
    let guard = Mounted(target.clone());
    assert_eq!(
        std::fs::read_dir(target.join("layers")).unwrap().count(),
        LAYERS
    );
    assert_eq!(
        std::fs::read_to_string(target.join("top")).unwrap(),
        (LAYERS - 1).to_string()
    );
    drop(guard);
    assert!(!mounted_at(&target));
    let scratch: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".lowers-"))
        .collect();
    assert!(scratch.is_empty(), "{scratch:?}");

    let method = overlay::mount(
        &lowers,
        Some(Upper {
            upper: &upper,
            work: &work,
        }),
        &target,
    )
    .unwrap_or_else(|e| panic!("precondition: Linux 6.8+ overlayfs lowerdir+: {e}"));
    let guard = Mounted(target.clone());
    assert_eq!(method, OverlayMethod::LowerdirPlus);
    assert!(mounted_at(&target));

    // Every layer's own file, the top layer's /top, the whiteout honoured.
    let mut names: Vec<String> = std::fs::read_dir(target.join("layers"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), LAYERS);
    for (i, n) in names.iter().enumerate() {
        assert_eq!(n, &format!("{i:03}"));
        assert_eq!(
            std::fs::read_to_string(target.join("layers").join(n)).unwrap(),
            i.to_string()
        );
    }
    assert_eq!(
        std::fs::read_to_string(target.join("top")).unwrap(),
        (LAYERS - 1).to_string(),
        "the top layer must win"
    );
    assert!(!target.join("gone").exists(), "layer 120's whiteout");

    // Writes land in the upper dir, not in a shared layer.
    std::fs::write(target.join("layers/007"), "changed").unwrap();
    assert_eq!(
        std::fs::read_to_string(upper.join("layers/007")).unwrap(),
        "changed"
    );
    let layer7 = lowers[LAYERS - 1 - 7].join("layers/007");
    assert_eq!(std::fs::read_to_string(layer7).unwrap(), "7");

    drop(guard);
    assert!(!mounted_at(&target), "unmounted");
}

#[test]
fn a_short_layer_list_also_mounts_with_mount2() {
    need_root();
    let tmp = tempfile::tempdir().unwrap();
    let mut lowers = Vec::new();
    for i in 0..3 {
        let d = tmp.path().join(format!("l{i}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("f{i}")), i.to_string()).unwrap();
        std::fs::write(d.join("top"), i.to_string()).unwrap();
        lowers.push(d);
    }
    let target = tmp.path().join("merged");
    std::fs::create_dir_all(&target).unwrap();
    // Read-only (no upper), top layer first: l0 wins.
    overlay::mount_legacy(&lowers, None, &target).unwrap();
    let guard = Mounted(target.clone());
    assert_eq!(std::fs::read_to_string(target.join("top")).unwrap(), "0");
    assert!(target.join("f2").exists());
    drop(guard);
    overlay::mount(&lowers, None, &target).unwrap();
    let guard = Mounted(target.clone());
    assert_eq!(std::fs::read_to_string(target.join("top")).unwrap(), "0");
    assert!(target.join("f1").exists());
    drop(guard);
    assert!(!mounted_at(&target));

    // More layers than overlayfs stacks: a clear error before any mount.
    let many: Vec<PathBuf> = (0..=overlay::MAX_LAYERS)
        .map(|i| {
            let d = tmp.path().join("many").join(i.to_string());
            std::fs::create_dir_all(&d).unwrap();
            d
        })
        .collect();
    for err in [
        overlay::mount(&many, None, &target).unwrap_err(),
        overlay::mount_legacy(&many, None, &target).unwrap_err(),
    ] {
        assert!(matches!(err, OverlayError::OverStack { .. }), "{err}");
        assert!(err.to_string().contains("at most 500"), "{err}");
    }
    assert!(!mounted_at(&target));

    // Upper and work dirs deeper than a page: mount(2) cannot name them
    // (a clear error); the new API passes them as open directories.
    let mut deep = tmp.path().join("deep");
    for i in 0..11 {
        deep = deep.join(format!("{i}{}", "d".repeat(200)));
    }
    let (upper, work) = (deep.join("upper"), deep.join("work"));
    std::fs::create_dir_all(&upper).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let rw = Some(Upper {
        upper: &upper,
        work: &work,
    });
    let err = overlay::mount_legacy(&lowers, rw, &target).unwrap_err();
    assert!(matches!(err, OverlayError::TooManyLayers { .. }), "{err}");
    assert!(!mounted_at(&target));
    overlay::mount(&lowers, rw, &target).unwrap();
    let guard = Mounted(target.clone());
    std::fs::write(target.join("new"), "x").unwrap();
    assert_eq!(std::fs::read_to_string(upper.join("new")).unwrap(), "x");
    drop(guard);
    assert!(!mounted_at(&target));

    // A missing layer names itself and what the kernel said.
    let missing = vec![lowers[0].clone(), tmp.path().join("nope")];
    let err = overlay::mount(&missing, None, &target).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("nope"), "{text}");
    assert!(!mounted_at(&target));
}

fn berth(tmp: &Path, dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .current_dir(dir)
        .env("BERTH_ROOT", tmp.join("root"))
        .env("BERTH_RUN", tmp.join("run"))
        .output()
        .unwrap()
}

#[test]
fn a_container_runs_on_an_image_of_201_layers() {
    need_root();
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("root")).unwrap();
    load_many_layer_image(&store, tmp.path(), "many:latest", Some(busybox_layer()));
    let dir = tmp.path().join("proj");
    std::fs::create_dir_all(&dir).unwrap();
    let project = format!("ovl{}", std::process::id());
    std::fs::write(
        dir.join("compose.yaml"),
        format!(
            "name: {project}\nservices:\n  app:\n    image: many:latest\n    network_mode: none\n    command: sleep 100\n"
        ),
    )
    .unwrap();
    let out = berth(
        tmp.path(),
        &dir,
        &[
            "run",
            "--rm",
            "-T",
            "app",
            "sh",
            "-c",
            "ls /layers | wc -l; cat /top; echo; test -e /gone || echo whiteout",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let down = berth(tmp.path(), &dir, &["down", "-v"]);
    assert!(
        out.status.success(),
        "berth run: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    assert_eq!(lines, [&LAYERS.to_string(), "199", "whiteout"], "{stdout}");
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    let root = tmp.path().display().to_string();
    let left: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&root))
        .map(String::from)
        .collect();
    assert!(left.is_empty(), "mounts left behind: {left:#?}");
}
