//! The store and `import`: a busybox rootfs tarball becomes a tagged image
//! whose layer is unpacked once and shared. Needs root (ownership).

use std::fs;

use berth::image::import::import;
use berth::image::{Reference, Store, StoreError};

fn busybox_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    b.append_data(&mut h, "bin", &[][..]).unwrap();
    b.append_path_with_name("/bin/busybox", "bin/busybox")
        .expect("precondition: /bin/busybox (busybox-static)");
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_size(0);
    b.append_link(&mut h, "bin/sh", "busybox").unwrap();
    b.into_inner().unwrap()
}

#[test]
fn import_busybox_and_share_the_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let bb = busybox_tar();
    let a = Reference::parse("bb:latest").unwrap();
    let b = Reference::parse("localhost:5000/other:1").unwrap();
    let desc = import(
        &store,
        &bb[..],
        &a,
        &["CMD [\"sh\"]".into(), "ENV X=1".into()],
    )
    .unwrap();
    let desc2 = import(
        &store,
        &bb[..],
        &b,
        &["CMD [\"sh\"]".into(), "ENV X=1".into()],
    )
    .unwrap();
    assert_eq!(desc.digest, desc2.digest, "same content, same manifest");
    let names: Vec<String> = store
        .list()
        .unwrap()
        .into_iter()
        .map(|e| e.reference)
        .collect();
    assert_eq!(
        names,
        ["docker.io/library/bb:latest", "localhost:5000/other:1"]
    );
    let cfg = store.image_config(&a).unwrap();
    assert_eq!(cfg.config.cmd, Some(vec!["sh".to_string()]));
    assert_eq!(cfg.config.env, Some(vec!["X=1".to_string()]));
    let dirs = store.layer_dirs(&a).unwrap();
    assert_eq!(dirs, store.layer_dirs(&b).unwrap());
    assert_eq!(
        fs::read_dir(store.root().join("layers")).unwrap().count(),
        1,
        "layer stored once"
    );
    assert_eq!(
        fs::read(dirs[0].join("bin/busybox")).unwrap(),
        fs::read("/bin/busybox").unwrap()
    );
    assert_eq!(
        fs::read_link(dirs[0].join("bin/sh")).unwrap().to_str(),
        Some("busybox")
    );
    // The unpacked busybox runs.
    let out = std::process::Command::new(dirs[0].join("bin/busybox"))
        .arg("echo")
        .arg("ok")
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"ok\n");

    let flat = tmp.path().join("flat");
    fs::create_dir(&flat).unwrap();
    store.flatten(&a, &flat).unwrap();
    assert!(flat.join("bin/busybox").exists());

    // Untag one: the other keeps the layer through prune.
    store.untag(&b).unwrap();
    store.prune().unwrap();
    assert!(dirs[0].join("bin/busybox").exists());
    store.untag(&a).unwrap();
    store.prune().unwrap();
    assert_eq!(
        fs::read_dir(store.root().join("layers")).unwrap().count(),
        0
    );
    assert!(matches!(store.resolve(&a), Err(StoreError::NotFound(_))));
}

#[test]
fn wrong_digest_leaves_no_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let wrong = format!("sha256:{}", "0".repeat(64));
    let err = store.put_blob(&b"hello"[..], Some(&wrong)).unwrap_err();
    assert!(err.to_string().contains("has digest sha256:"), "{err}");
    assert_eq!(
        fs::read_dir(store.root().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
}

#[test]
fn chain_ids_follow_the_oci_rule() {
    let d1 = format!("sha256:{}", "a".repeat(64));
    let d2 = format!("sha256:{}", "b".repeat(64));
    let c = berth::image::store::chain_ids(&[d1.clone(), d2.clone()]);
    assert_eq!(c[0], d1);
    let expect = {
        use sha2::Digest;
        format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(format!("{d1} {d2}")))
        )
    };
    assert_eq!(c[1], expect);
}

/// `Store::find`: an image ID (full, `sha256:`-prefixed, or a unique short
/// prefix) names a local image as in Docker; a tag of the same spelling wins
/// over an ID prefix; an ambiguous prefix is an error naming the candidates.
#[test]
fn find_by_image_id_prefix_and_name() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let bb = busybox_tar();
    // 17 distinct configs: two IDs share their first hex digit (pigeonhole).
    let mut ids: Vec<(String, String)> = Vec::new();
    for i in 0..17 {
        let r = Reference::parse(&format!("img{i}:latest")).unwrap();
        let desc = import(&store, &bb[..], &r, &[format!("ENV X={i}")]).unwrap();
        let m = store.manifest(&desc).unwrap();
        let hex = m.config.digest.strip_prefix("sha256:").unwrap().to_string();
        ids.push((hex, desc.digest));
    }
    let (hex, manifest) = ids[0].clone();
    for name in [
        hex.clone(),
        format!("sha256:{hex}"),
        hex[..12].to_string(),
        format!("sha256:{}", &hex[..12]),
        "img0".to_string(),
    ] {
        let found = store.find(&name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(found.digest, manifest, "{name}");
    }
    // Not in the store: a full ID is never read as a name.
    let missing = "f".repeat(64);
    assert!(ids.iter().all(|(h, _)| *h != missing));
    assert!(matches!(store.find(&missing), Err(StoreError::NotFound(_))));
    assert!(matches!(store.find("nosuch"), Err(StoreError::NotFound(_))));
    // Two IDs with the same first digit: that digit is ambiguous.
    let first = ids
        .iter()
        .enumerate()
        .find_map(|(i, (a, _))| {
            ids[i + 1..]
                .iter()
                .find(|(b, _)| b[..1] == a[..1])
                .map(|_| a[..1].to_string())
        })
        .expect("pigeonhole: 17 ids over 16 digits");
    let err = store.find(&first).unwrap_err();
    assert!(matches!(err, StoreError::AmbiguousId { .. }), "{err}");
    // A tag spelled like an ID prefix is a name first.
    let named = Reference::parse(&format!("{first}:latest")).unwrap();
    let desc = import(&store, &bb[..], &named, &["ENV X=tagged".into()]).unwrap();
    assert_eq!(store.find(&first).unwrap().digest, desc.digest);
}
