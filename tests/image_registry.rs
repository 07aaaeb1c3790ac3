//! Pulls and pushes against a real registry on loopback: Debian's
//! `docker-registry`, open or with htpasswd, and a token server + proxy
//! written here for the bearer flow. Images are built by hand and pushed
//! with `skopeo`, so pulls read bytes berth did not write; unpacked trees
//! are compared entry by entry with `umoci unpack`. Needs root (ownership,
//! device nodes, overlay mounts).

mod image_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use berth::image::credentials::{Credentials, DockerConfig};
use berth::image::pull::{self, LayerState, Platform, PullError, PullEvent, PullOptions};
use berth::image::push::{self, PushOptions};
use berth::image::registry::{RegistryConfig, RegistryError};
use berth::image::{archive, Reference, Store};
use image_support::*;

fn docker_config(dir: &Path) -> DockerConfig {
    DockerConfig::at(dir.join("docker/config.json"))
}

fn pull_ref(
    store: &Store,
    auth: &DockerConfig,
    reference: &str,
) -> Result<pull::PullOutcome, PullError> {
    let r = Reference::parse(reference).unwrap();
    pull::pull(
        store,
        &RegistryConfig::default(),
        auth,
        &r,
        &PullOptions::default(),
        &|_| {},
    )
}

fn multi_layer_image(dir: &Path) -> String {
    let base = busybox_layer();
    let base = {
        // busybox plus files the next layers delete, replace and link.
        let extra = layer_tar(&[
            E::Dir("olddir", 0o755),
            E::File("olddir/a", 0o644, b"a"),
            E::File("olddir/b", 0o644, b"b"),
            E::File("gone", 0o644, b"to be deleted"),
            E::File("etc/hostname", 0o644, b"base\n"),
        ]);
        // Concatenating tars needs the first one's end marker removed.
        let mut t = base[..base.len() - 1024].to_vec();
        t.extend_from_slice(&extra);
        t
    };
    let second = layer_tar(&[
        E::File(".wh.gone", 0o644, b""),
        E::Dir("olddir", 0o750),
        E::File("olddir/.wh..wh..opq", 0o644, b""),
        E::File("olddir/new", 0o600, b"new"),
        E::Dir("data", 0o700),
        E::File("data/file1", 0o644, b"hardlinked content"),
        E::Hardlink("data/link1", "data/file1"),
        E::Hardlink("data/link2", "data/file1"),
        E::Symlink("data/rel", "../etc/passwd"),
        E::Symlink("data/abs", "/etc/passwd"),
        E::Owned("data/suid", 0o4755, 1000, 1001, b"#!/bin/sh\n"),
        E::Owned("data/owned", 0o640, 65534, 65534, b"nobody's"),
        E::Fifo("data/fifo"),
        E::Char("data/null", 1, 3),
        E::File("etc/hostname", 0o644, b"second\n"),
    ]);
    let third = layer_tar(&[
        E::File("data/.wh.link2", 0o644, b""),
        E::File("etc/motd", 0o644, b"hello from layer 3\n"),
        E::Dir("empty", 0o1777),
    ]);
    oci_image(
        dir,
        "multi",
        &[
            (base, Compression::Gzip),
            (second, Compression::Zstd),
            (third, Compression::None),
        ],
    )
}

#[test]
fn pull_multi_layer_image_matches_umoci_unpack() {
    need("umoci");
    let reg = Registry::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("src-layout");
    multi_layer_image(&layout);
    let remote = format!("{}/test/multi:1", reg.host());
    skopeo_copy(
        &format!("oci:{}:multi", layout.display()),
        &format!("docker://{remote}"),
    );

    let store = Store::open(&tmp.path().join("root")).unwrap();
    let events = Mutex::new(Vec::new());
    let r = Reference::parse(&remote).unwrap();
    let outcome = pull::pull(
        &store,
        &RegistryConfig::default(),
        &docker_config(tmp.path()),
        &r,
        &PullOptions::default(),
        &|e| {
            if let PullEvent::Layer { digest, state } = e {
                events.lock().unwrap().push((digest.to_string(), state));
            }
        },
    )
    .unwrap();
    assert!(!outcome.up_to_date);
    let events = events.into_inner().unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|(_, s)| *s == LayerState::PullComplete)
            .count(),
        3,
        "three layers pulled: {events:?}"
    );
    let config = store.image_config(&r).unwrap();
    assert_eq!(config.config.cmd, Some(vec!["sh".to_string()]));

    // The reference tree: umoci unpack of the same image, fetched by skopeo
    // (recompressed to gzip: Debian's umoci 0.4.7 cannot read zstd).
    let ref_layout = tmp.path().join("ref-layout");
    skopeo_copy_with(
        &format!("docker://{remote}"),
        &format!("oci:{}:multi", ref_layout.display()),
        &["--dest-compress-format", "gzip"],
    );
    let bundle = tmp.path().join("bundle");
    let out = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:multi", ref_layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = bundle.join("rootfs");

    // berth's layers as containers see them: overlayfs over the chain dirs.
    let dirs = store.layer_dirs(&r).unwrap();
    assert_eq!(dirs.len(), 3);
    let merged = OverlayMount::new(&dirs, &tmp.path().join("merged"));
    assert_same_tree(
        &expected,
        &merged.target,
        "overlay of berth's layers vs umoci",
    );
    drop(merged);

    // And the flattened form (for images past the overlay stacking limit).
    let flat = tmp.path().join("flat");
    std::fs::create_dir(&flat).unwrap();
    store.flatten(&r, &flat).unwrap();
    assert_same_tree(&expected, &flat, "berth flatten vs umoci");

    // Spot checks a user would notice.
    let f = |p: &str| std::fs::read_to_string(flat.join(p)).unwrap();
    assert_eq!(f("etc/hostname"), "second\n");
    assert_eq!(f("data/link1"), "hardlinked content");
    assert!(!flat.join("gone").exists());
    assert!(!flat.join("olddir/a").exists());
    assert!(!flat.join("data/link2").exists());
    let busybox = flat.join("bin/busybox");
    let out = Command::new(&busybox)
        .args(["echo", "ok"])
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"ok\n");
}

#[test]
fn two_images_share_a_base_layer_stored_once() {
    let reg = Registry::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let base = busybox_layer();
    oci_image(
        &layout,
        "one",
        &[
            (base.clone(), Compression::Gzip),
            (layer_tar(&[E::File("one", 0o644, b"1")]), Compression::Gzip),
        ],
    );
    oci_image(
        &layout,
        "two",
        &[
            (base, Compression::Gzip),
            (layer_tar(&[E::File("two", 0o644, b"2")]), Compression::Gzip),
        ],
    );
    for t in ["one", "two"] {
        skopeo_copy(
            &format!("oci:{}:{t}", layout.display()),
            &format!("docker://{}/shared/{t}:latest", reg.host()),
        );
    }
    let store = Store::open(&tmp.path().join("root")).unwrap();
    let auth = docker_config(tmp.path());
    pull_ref(&store, &auth, &format!("{}/shared/one", reg.host())).unwrap();
    let seen = Mutex::new(Vec::new());
    let r = Reference::parse(&format!("{}/shared/two", reg.host())).unwrap();
    pull::pull(
        &store,
        &RegistryConfig::default(),
        &auth,
        &r,
        &PullOptions::default(),
        &|e| {
            if let PullEvent::Layer { state, .. } = e {
                seen.lock().unwrap().push(state);
            }
        },
    )
    .unwrap();
    assert!(
        seen.lock().unwrap().contains(&LayerState::AlreadyExists),
        "the base layer is reused"
    );
    let layers = std::fs::read_dir(store.root().join("layers"))
        .unwrap()
        .count();
    assert_eq!(layers, 3, "base + two tops, base stored once");
    let blobs = std::fs::read_dir(store.root().join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(
        blobs,
        3 + 2 * 2,
        "one base blob, two tops, two configs, two manifests"
    );

    // Pulling again fetches nothing.
    let again = pull_ref(&store, &auth, &format!("{}/shared/two", reg.host())).unwrap();
    assert!(again.up_to_date);
}

#[test]
fn push_then_skopeo_inspect_and_chunked_upload() {
    let reg = Registry::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("root")).unwrap();
    let bb = busybox_layer();
    let local = Reference::parse(&format!("{}/pushed/bb:v1", reg.host())).unwrap();
    berth::image::import::import(&store, &bb[..], &local, &["CMD [\"sh\"]".into()]).unwrap();
    let auth = docker_config(tmp.path());
    let outcome = push::push(
        &store,
        &RegistryConfig::default(),
        &auth,
        &local,
        &PushOptions {
            chunk_size: None,
            jobs: 2,
        },
        &|_| {},
    )
    .unwrap();
    let local_desc = store.resolve(&local).unwrap();
    assert_eq!(outcome.digest, local_desc.digest);
    let inspect = |reference: &str| -> serde_json::Value {
        let out = Command::new("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{reference}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo inspect: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let v = inspect(&local.to_string());
    assert_eq!(v["Digest"], local_desc.digest);
    let manifest = store.manifest(&local_desc).unwrap();
    assert_eq!(v["Layers"][0], manifest.layers[0].digest);

    // The same image under another tag in a fresh repository, sent in 64 KiB
    // PATCH chunks (no mount source: a new blob must really be uploaded).
    let cfg = berth::image::store::ImageConfig {
        author: None,
        config: berth::image::store::ContainerConfig {
            cmd: Some(vec!["true".into()]),
            ..Default::default()
        },
        ..store.image_config(&local).unwrap()
    };
    let chunked = Reference::parse(&format!("{}/chunked/bb:v2", reg.host())).unwrap();
    let other_layer = gzip(&layer_tar(&[E::File("big", 0o644, &vec![7u8; 300_000])]));
    let (ld, ls) = store.put_blob(&other_layer[..], None).unwrap();
    let mut layers = manifest.layers.clone();
    layers.push(berth::image::store::Descriptor {
        media_type: berth::image::store::MEDIA_LAYER_GZIP.into(),
        digest: ld,
        size: ls,
        annotations: Default::default(),
        platform: None,
    });
    let mut cfg = cfg;
    let plain = layer_tar(&[E::File("big", 0o644, &vec![7u8; 300_000])]);
    cfg.rootfs.diff_ids.push(sha256(&plain));
    store.commit_image(&chunked, &cfg, layers).unwrap();
    push::push(
        &store,
        &RegistryConfig::default(),
        &auth,
        &chunked,
        &PushOptions {
            chunk_size: Some(64 * 1024),
            jobs: 1,
        },
        &|_| {},
    )
    .unwrap();
    let v = inspect(&chunked.to_string());
    assert_eq!(v["Digest"], store.resolve(&chunked).unwrap().digest);
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2);

    // And what berth pushed pulls back (by skopeo) into an identical layout.
    let back = tmp.path().join("back");
    skopeo_copy(
        &format!("docker://{chunked}"),
        &format!("oci:{}:x", back.display()),
    );
    let blob = std::fs::read(back.join("blobs/sha256").join(&sha256(&other_layer)[7..])).unwrap();
    assert_eq!(blob, other_layer);
}

#[test]
fn save_load_round_trip_in_both_formats() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("root")).unwrap();
    let layout = tmp.path().join("layout");
    multi_layer_image(&layout);
    // Load the hand-made OCI layout as an archive (tar it first).
    let mut t = tar::Builder::new(Vec::new());
    t.append_dir_all(".", &layout).unwrap();
    let src_tar = t.into_inner().unwrap();
    // The layout names its image by tag only: give it a full name.
    let loaded = archive::load(&store, &src_tar[..]);
    assert!(
        loaded.as_ref().is_ok_and(|v| v.is_empty()),
        "a tag-only OCI layout loads nothing: {loaded:?}"
    );
    let index_path = layout.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    index["manifests"][0]["annotations"]["io.containerd.image.name"] =
        "example.test/multi:1".into();
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    let mut t = tar::Builder::new(Vec::new());
    t.append_dir_all(".", &layout).unwrap();
    let loaded = archive::load(&store, &t.into_inner().unwrap()[..]).unwrap();
    let r = Reference::parse("example.test/multi:1").unwrap();
    assert_eq!(loaded, vec![r.clone()]);
    let desc = store.resolve(&r).unwrap();
    let flat_before = tmp.path().join("flat-before");
    std::fs::create_dir(&flat_before).unwrap();
    store.flatten(&r, &flat_before).unwrap();

    for format in [archive::Format::Oci, archive::Format::Docker] {
        let mut out = Vec::new();
        archive::save(&store, std::slice::from_ref(&r), format, &mut out).unwrap();
        let other = Store::open(&tmp.path().join(format!("root-{format:?}"))).unwrap();
        let loaded = archive::load(&other, &out[..]).unwrap();
        assert_eq!(loaded, vec![r.clone()], "{format:?}");
        let d = other.resolve(&r).unwrap();
        let m = other.manifest(&d).unwrap();
        let m0 = store.manifest(&desc).unwrap();
        assert_eq!(
            m.config.digest, m0.config.digest,
            "{format:?}: same image ID"
        );
        if format == archive::Format::Oci {
            assert_eq!(d.digest, desc.digest, "OCI keeps the manifest as is");
        }
        let flat = tmp.path().join(format!("flat-{format:?}"));
        std::fs::create_dir(&flat).unwrap();
        other.flatten(&r, &flat).unwrap();
        assert_same_tree(&flat_before, &flat, &format!("{format:?} round trip"));

        // Another tool reads what berth saved.
        let file = tmp.path().join(format!("saved-{format:?}.tar"));
        std::fs::write(&file, &out).unwrap();
        let (transport, extract) = match format {
            archive::Format::Docker => (format!("docker-archive:{}", file.display()), None),
            archive::Format::Oci => {
                let dir = tmp.path().join("saved-oci");
                std::fs::create_dir(&dir).unwrap();
                let st = Command::new("tar")
                    .args(["-xf"])
                    .arg(&file)
                    .arg("-C")
                    .arg(&dir)
                    .status()
                    .unwrap();
                assert!(st.success());
                (format!("oci:{}:1", dir.display()), Some(dir))
            }
        };
        let _ = extract;
        let out = Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(&transport)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo inspect {transport}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A registry behind the bearer-token flow: a token server that demands
/// basic credentials and records the scopes it grants, and a front that
/// checks each request's token covers its repository and action.
struct TokenSetup {
    _backend: Registry,
    front: HttpServer,
    _tokens: HttpServer,
    scopes: Arc<Mutex<Vec<String>>>,
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 3 <= b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else if b[i] == b'+' {
            out.push(b' ');
            i += 1;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn token_setup(user: &'static str, pass: &'static str, fail_first: usize) -> TokenSetup {
    let backend = Registry::start(None);
    let scopes = Arc::new(Mutex::new(Vec::new()));
    let s2 = scopes.clone();
    let expected = format!(
        "Basic {}",
        base64_encode(format!("{user}:{pass}").as_bytes())
    );
    let tokens = HttpServer::start(Arc::new(move |req: &Request| {
        if req.header("Authorization") != Some(expected.as_str()) {
            return Response::new(401).body(r#"{"details":"bad credentials"}"#);
        }
        let query = req.path.split_once('?').map(|x| x.1).unwrap_or("");
        let mut granted = Vec::new();
        for kv in query.split('&') {
            if let Some(v) = kv.strip_prefix("scope=") {
                granted.push(percent_decode(v));
            }
        }
        s2.lock().unwrap().extend(granted.iter().cloned());
        let token = format!("tok|{}", granted.join("|"));
        Response::new(200)
            .header("Content-Type", "application/json")
            .body(serde_json::json!({ "token": token }).to_string())
    }));
    let realm = format!("{}/token", tokens.url());
    let backend_host = backend.host();
    let front_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let front_port = front_listener.local_addr().unwrap().port();
    let front_host = format!("127.0.0.1:{front_port}");
    let failures = Arc::new(Mutex::new(fail_first));
    let front = HttpServer::start_on(
        front_listener,
        Arc::new({
            let front_host = front_host.clone();
            move |req: &Request| {
                {
                    let mut left = failures.lock().unwrap();
                    if *left > 0 {
                        *left -= 1;
                        return Response::new(503).body("try again");
                    }
                }
                let path = req.path.split('?').next().unwrap_or("");
                let rest = path.strip_prefix("/v2/").unwrap_or("");
                let repo = ["/manifests/", "/blobs/", "/tags/"]
                    .iter()
                    .find_map(|m| rest.find(m).map(|i| &rest[..i]))
                    .unwrap_or("");
                let action = if matches!(req.method.as_str(), "GET" | "HEAD") {
                    "pull"
                } else {
                    "push"
                };
                let token = req
                    .header("Authorization")
                    .and_then(|h| h.strip_prefix("Bearer "))
                    .unwrap_or("");
                let ok = token.starts_with("tok|")
                    && (repo.is_empty()
                        || token.split('|').any(|s| {
                            let mut p = s.splitn(3, ':');
                            p.next() == Some("repository")
                                && p.next() == Some(repo)
                                && p.next().is_some_and(|a| a.split(',').any(|x| x == action))
                        }));
                if !ok {
                    let scope = if repo.is_empty() {
                        String::new()
                    } else {
                        format!(",scope=\"repository:{repo}:{action}\"")
                    };
                    return Response::new(401)
                    .header(
                        "WWW-Authenticate",
                        &format!("Bearer realm=\"{realm}\",service=\"berth-test\"{scope}"),
                    )
                    .header("Content-Type", "application/json")
                    .body(r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#);
                }
                forward(req, &backend_host, &front_host)
            }
        }),
    );
    TokenSetup {
        _backend: backend,
        front,
        _tokens: tokens,
        scopes,
    }
}

fn base64_encode(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[test]
fn bearer_token_flow_with_credentials_and_scopes() {
    let setup = token_setup("alice", "s3cret", 0);
    let _ = &setup.front;
    let tmp = tempfile::tempdir().unwrap();
    let host = format!("127.0.0.1:{}", setup.front.port);
    let backend_host = setup._backend.host();
    // Seed the backend directly (skopeo, bytes berth did not write).
    let layout = tmp.path().join("layout");
    oci_image(&layout, "bb", &[(busybox_layer(), Compression::Gzip)]);
    skopeo_copy(
        &format!("oci:{}:bb", layout.display()),
        &format!("docker://{backend_host}/tok/bb:1"),
    );
    let store = Store::open(&tmp.path().join("root")).unwrap();
    let auth = docker_config(tmp.path());
    let before = store_files(&tmp.path().join("root"));

    // No credentials: the token server refuses, nothing lands.
    let err = pull_ref(&store, &auth, &format!("{host}/tok/bb:1")).unwrap_err();
    assert!(
        matches!(err, PullError::Registry(RegistryError::Unauthorized { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("unauthorized"), "{err}");
    // Wrong credentials: the same.
    auth.store(
        &host,
        &Credentials {
            username: "alice".into(),
            password: "wrong".into(),
        },
    )
    .unwrap();
    let err = pull_ref(&store, &auth, &format!("{host}/tok/bb:1")).unwrap_err();
    assert!(err.to_string().contains("unauthorized"), "{err}");
    assert_eq!(
        before,
        store_files(&tmp.path().join("root")),
        "store unchanged"
    );

    auth.store(
        &host,
        &Credentials {
            username: "alice".into(),
            password: "s3cret".into(),
        },
    )
    .unwrap();
    let outcome = pull_ref(&store, &auth, &format!("{host}/tok/bb:1")).unwrap();
    assert!(!outcome.up_to_date);
    assert!(setup
        .scopes
        .lock()
        .unwrap()
        .contains(&"repository:tok/bb:pull".to_string()));

    // Push to another repository: a pull,push token (and a pull token for
    // the mount source) is asked for.
    let target = Reference::parse(&format!("{host}/tok/copy:2")).unwrap();
    let desc = store
        .resolve(&Reference::parse(&format!("{host}/tok/bb:1")).unwrap())
        .unwrap();
    store.tag(&target, &desc).unwrap();
    let mounted = Mutex::new(Vec::new());
    push::push(
        &store,
        &RegistryConfig::default(),
        &auth,
        &target,
        &PushOptions::default(),
        &|e| {
            if let push::PushEvent::Mounted { from, .. } = e {
                mounted.lock().unwrap().push(from.to_string());
            }
        },
    )
    .unwrap();
    assert_eq!(
        mounted.into_inner().unwrap(),
        ["tok/bb", "tok/bb"],
        "layer and config mounted from the repository they were pulled from"
    );
    let scopes = setup.scopes.lock().unwrap().clone();
    assert!(
        scopes.contains(&"repository:tok/copy:pull,push".to_string())
            && scopes.contains(&"repository:tok/bb:pull".to_string()),
        "{scopes:?}"
    );
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{backend_host}/tok/copy:2"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(sha256(&out.stdout), desc.digest);
}

#[test]
fn transient_errors_are_retried() {
    // The front answers 503 to the first three requests.
    let setup = token_setup("bob", "pw", 3);
    let tmp = tempfile::tempdir().unwrap();
    let host = format!("127.0.0.1:{}", setup.front.port);
    let layout = tmp.path().join("layout");
    oci_image(&layout, "bb", &[(busybox_layer(), Compression::Gzip)]);
    skopeo_copy(
        &format!("oci:{}:bb", layout.display()),
        &format!("docker://{}/retry/bb:1", setup._backend.host()),
    );
    let store = Store::open(&tmp.path().join("root")).unwrap();
    let auth = docker_config(tmp.path());
    auth.store(
        &host,
        &Credentials {
            username: "bob".into(),
            password: "pw".into(),
        },
    )
    .unwrap();
    pull_ref(&store, &auth, &format!("{host}/retry/bb:1")).unwrap();
}

#[test]
fn basic_auth_registry_with_login_and_logout() {
    let reg = Registry::start(Some(("carol", "hunter2")));
    let tmp = tempfile::tempdir().unwrap();
    let berth = env!("CARGO_BIN_EXE_berth");
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut cmd = Command::new(berth);
        cmd.args(args)
            .env("BERTH_ROOT", tmp.path().join("root"))
            .env("DOCKER_CONFIG", tmp.path().join("docker"))
            .env("BERTH_REGISTRIES_CONFIG", tmp.path().join("none.json"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(s) = stdin {
            use std::io::Write;
            // berth may refuse and exit before it reads its input.
            match child.stdin.take().unwrap().write_all(s.as_bytes()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                r => r.unwrap(),
            }
        }
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    };
    let host = reg.host();
    // An image to push: imported from a tarball.
    let bb = tmp.path().join("bb.tar");
    std::fs::write(&bb, busybox_layer()).unwrap();
    let name = format!("{host}/basic/bb:1");
    let out = run(
        &[
            "image",
            "import",
            bb.to_str().unwrap(),
            &name,
            "-c",
            "CMD [\"sh\"]",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = run(&["image", "push", &name], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unauthorized"), "{err}");

    let out = run(
        &["login", &host, "-u", "carol", "--password-stdin"],
        Some("wrong\n"),
    );
    assert!(!out.status.success(), "wrong password must not log in");
    assert!(!tmp.path().join("docker/config.json").exists());

    let out = run(
        &["login", &host, "-u", "carol", "--password-stdin"],
        Some("hunter2\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Login Succeeded\n");
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("docker/config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["auths"][&host]["auth"], base64_encode(b"carol:hunter2"));

    let out = run(&["image", "push", &name], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Pushed"), "{text}");
    assert!(text.contains("1: digest: sha256:"), "{text}");

    // Remove locally, pull back through the CLI, plain progress.
    let out = run(&["image", "rm", &name], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Untagged: "));
    let out = run(&["--progress", "plain", "image", "pull", &name], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Pull complete"), "{text}");
    assert!(
        text.contains("Status: Downloaded newer image for"),
        "{text}"
    );
    let out = run(&["image", "ls"], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("REPOSITORY"), "{text}");
    assert!(text.contains(&format!("{host}/basic/bb")), "{text}");

    let out = run(&["logout", &host], None);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("Removing login credentials for {host}\n")
    );
    let out = run(&["image", "pull", &format!("{host}/basic/bb:1")], None);
    assert!(!out.status.success());
}

/// A fake registry serving crafted answers for the cases a real one would
/// refuse to store.
fn fake_registry(manifests: BTreeMap<String, (String, Vec<u8>)>) -> HttpServer {
    HttpServer::start(Arc::new(move |req: &Request| {
        let path = req.path.split('?').next().unwrap_or("");
        if path == "/v2/" {
            return Response::new(200).body("{}");
        }
        match manifests.get(path) {
            Some((mt, body)) => Response::new(200)
                .header("Content-Type", mt)
                .body(body.clone()),
            None => Response::new(404)
                .body(r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#),
        }
    }))
}

/// Every blob under `blobs/` hashes to its name, no new layer dirs, and the
/// index of names is byte-for-byte what it was.
fn assert_store_unchanged(root: &Path, index_before: &[u8], layers_before: usize, what: &str) {
    let images = root.join("images");
    assert_eq!(
        std::fs::read(images.join("index.json")).unwrap(),
        index_before,
        "{what}: index.json changed"
    );
    assert_eq!(
        std::fs::read_dir(images.join("layers")).unwrap().count(),
        layers_before,
        "{what}: layer directories changed"
    );
    for e in std::fs::read_dir(images.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let data = std::fs::read(e.path()).unwrap();
        assert_eq!(
            sha256(&data)[7..],
            e.file_name().to_string_lossy(),
            "{what}: unverified blob"
        );
    }
}

#[test]
fn bad_input_gives_a_clear_error_and_leaves_the_store_as_it_was() {
    let reg = Registry::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let small = layer_tar(&[E::File("hello", 0o644, &vec![b'x'; 50_000])]);
    oci_image(&layout, "t", &[(small.clone(), Compression::Gzip)]);
    for repo in ["bad/digest", "bad/short", "good/one"] {
        skopeo_copy(
            &format!("oci:{}:t", layout.display()),
            &format!("docker://{}/{repo}:1", reg.host()),
        );
    }
    let root = tmp.path().join("root");
    let store = Store::open(&root).unwrap();
    let auth = docker_config(tmp.path());
    pull_ref(&store, &auth, &format!("{}/good/one:1", reg.host())).unwrap();
    let index_before = std::fs::read(root.join("images/index.json")).unwrap();
    let layers_before = 1;
    // A second store with nothing in it sees the tampered blobs for real.
    let root2 = tmp.path().join("root2");
    let fresh = Store::open(&root2).unwrap();
    let index2 = std::fs::read(root2.join("images/index.json")).unwrap();
    let layer_digest = sha256(&gzip(&small));

    // Tamper with the blob in the registry's storage: same size, other bytes.
    let data = reg.blob_data(&layer_digest);
    let original = std::fs::read(&data).unwrap();
    let mut bytes = original.clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();
    let err = pull_ref(&fresh, &auth, &format!("{}/bad/digest:1", reg.host())).unwrap_err();
    let msg = format!(
        "{err}: {}",
        std::error::Error::source(&err)
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    assert!(msg.contains("digest"), "wrong digest: {msg}");
    assert_store_unchanged(&root2, &index2, 0, "wrong digest");

    // Truncated blob.
    std::fs::write(&data, &bytes[..mid]).unwrap();
    let err = pull_ref(&fresh, &auth, &format!("{}/bad/short:1", reg.host())).unwrap_err();
    let msg = format!(
        "{err}: {}",
        std::error::Error::source(&err)
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    assert!(
        msg.contains("bytes, expected") || msg.contains("digest") || msg.contains("GET"),
        "truncated blob: {msg}"
    );
    assert_store_unchanged(&root2, &index2, 0, "truncated blob");
    eprintln!("truncated blob: {msg}");

    // Repaired, the next pull succeeds; what the failed pulls verified
    // (the config) stays, and the layer is fetched once.
    std::fs::write(&data, &original).unwrap();
    let fetched = Mutex::new(Vec::new());
    let r = Reference::parse(&format!("{}/bad/short:1", reg.host())).unwrap();
    pull::pull(
        &fresh,
        &RegistryConfig::default(),
        &auth,
        &r,
        &PullOptions::default(),
        &|e| {
            if let PullEvent::Layer {
                digest,
                state: LayerState::DownloadComplete,
            } = e
            {
                fetched.lock().unwrap().push(digest.to_string());
            }
        },
    )
    .unwrap();
    assert_eq!(fetched.into_inner().unwrap(), vec![layer_digest.clone()]);
    assert_eq!(
        std::fs::read_to_string(fresh.layer_dirs(&r).unwrap()[0].join("hello"))
            .unwrap()
            .len(),
        50_000
    );

    // Missing tag.
    let err = pull_ref(&store, &auth, &format!("{}/good/one:nope", reg.host())).unwrap_err();
    assert!(matches!(err, PullError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("not found"), "{err}");
    assert_store_unchanged(&root, &index_before, layers_before, "missing tag");

    // Unknown manifest media type, and a manifest whose bytes do not match
    // the digest the registry announces.
    let odd = br#"{"schemaVersion":2,"mediaType":"application/vnd.example.thing+json"}"#.to_vec();
    let good = std::fs::read(layout.join("index.json")).unwrap();
    let idx: serde_json::Value = serde_json::from_slice(&good).unwrap();
    let mdigest = idx["manifests"][0]["digest"].as_str().unwrap().to_string();
    let mbytes = std::fs::read(layout.join("blobs/sha256").join(&mdigest[7..])).unwrap();
    let wrong = format!("sha256:{}", "0".repeat(64));
    let fake = fake_registry(BTreeMap::from([
        (
            "/v2/odd/thing/manifests/1".to_string(),
            ("application/vnd.example.thing+json".to_string(), odd),
        ),
        (
            format!("/v2/pinned/x/manifests/{wrong}"),
            (
                "application/vnd.oci.image.manifest.v1+json".to_string(),
                mbytes,
            ),
        ),
    ]));
    let fhost = format!("127.0.0.1:{}", fake.port);
    let err = pull_ref(&store, &auth, &format!("{fhost}/odd/thing:1")).unwrap_err();
    assert!(
        matches!(err, PullError::UnsupportedMediaType { .. }),
        "{err}"
    );
    assert!(err
        .to_string()
        .contains("application/vnd.example.thing+json"));
    let err = pull_ref(&store, &auth, &format!("{fhost}/pinned/x@{wrong}")).unwrap_err();
    assert!(err.to_string().contains("digest"), "{err}");
    assert_store_unchanged(&root, &index_before, layers_before, "bad manifests");

    // The platform asked for is not in a single-platform image's config:
    // a missing platform in an index is an error naming what exists.
    let r = Reference::parse(&format!("{}/good/one:1", reg.host())).unwrap();
    // Asked for explicitly (`--platform`, a service's `platform:`), another
    // platform's single-platform image is refused with Docker's words, and
    // nothing is tagged or unpacked.
    let strict = PullOptions {
        platform: Platform::parse("linux/s390x").unwrap(),
        strict_platform: true,
        jobs: 1,
        unpack: true,
    };
    let err = pull::pull(
        &store,
        &RegistryConfig::default(),
        &auth,
        &r,
        &strict,
        &|_| {},
    )
    .unwrap_err();
    assert!(matches!(err, PullError::PlatformMismatch { .. }), "{err}");
    assert!(
        err.to_string().contains(
            "was found but does not match the specified platform: wanted linux/s390x, actual: linux/amd64"
        ),
        "{err}"
    );
    assert_store_unchanged(&root, &index_before, layers_before, "platform mismatch");
    let opts = PullOptions {
        strict_platform: false,
        ..strict
    };
    // Not asked for explicitly, a plain manifest (no platform list) is
    // taken, as Docker's pull does.
    pull::pull(
        &store,
        &RegistryConfig::default(),
        &auth,
        &r,
        &opts,
        &|_| {},
    )
    .unwrap();
}

#[test]
fn index_platform_selection_and_mirror() {
    let reg = Registry::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let amd = oci_image(
        &layout,
        "amd",
        &[(
            layer_tar(&[E::File("arch", 0o644, b"amd64")]),
            Compression::Gzip,
        )],
    );
    let arm = oci_image(
        &layout,
        "arm",
        &[(
            layer_tar(&[E::File("arch", 0o644, b"arm64")]),
            Compression::Gzip,
        )],
    );
    let blob_len = |d: &str| {
        std::fs::metadata(layout.join("blobs/sha256").join(&d[7..]))
            .unwrap()
            .len()
    };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm, "size": blob_len(&arm),
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd, "size": blob_len(&amd),
             "platform": {"os": "linux", "architecture": "amd64"}},
        ],
    });
    let ib = serde_json::to_vec(&index).unwrap();
    let id = sha256(&ib);
    std::fs::write(layout.join("blobs/sha256").join(&id[7..]), &ib).unwrap();
    let ip = layout.join("index.json");
    let mut top: serde_json::Value = serde_json::from_slice(&std::fs::read(&ip).unwrap()).unwrap();
    top["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": id, "size": ib.len(),
        "annotations": {"org.opencontainers.image.ref.name": "multi"}}));
    std::fs::write(&ip, serde_json::to_vec(&top).unwrap()).unwrap();
    let out = Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--all",
            "--dest-tls-verify=false",
            "--preserve-digests",
        ])
        .arg(format!("oci:{}:multi", layout.display()))
        .arg(format!("docker://{}/plat/img:1", reg.host()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Through a mirror: the image's own registry (`localhost:1`) has
    // nothing listening; the mirror answers.
    let mirrors = RegistryConfig {
        insecure: vec![],
        mirrors: BTreeMap::from([(
            "localhost:1".to_string(),
            vec![format!("http://{}", reg.host())],
        )]),
    };
    let auth = docker_config(tmp.path());
    for (platform, want, manifest) in [
        ("linux/amd64", "amd64", &amd),
        ("linux/arm64", "arm64", &arm),
        ("linux/arm64/v8", "arm64", &arm),
    ] {
        let store = Store::open(
            &tmp.path()
                .join(format!("root-{}", platform.replace('/', "-"))),
        )
        .unwrap();
        let r = Reference::parse("localhost:1/plat/img:1").unwrap();
        let opts = PullOptions {
            platform: Platform::parse(platform).unwrap(),
            strict_platform: true,
            jobs: 2,
            unpack: true,
        };
        let outcome = pull::pull(&store, &mirrors, &auth, &r, &opts, &|_| {}).unwrap();
        assert_eq!(outcome.digest, id, "the index digest is reported");
        assert_eq!(&outcome.manifest.digest, manifest, "{platform}");
        let dirs = store.layer_dirs(&r).unwrap();
        assert_eq!(std::fs::read_to_string(dirs[0].join("arch")).unwrap(), want);
    }
    // Straight from the registry: a platform the index lacks.
    let store = Store::open(&tmp.path().join("root-x")).unwrap();
    let r = Reference::parse(&format!("{}/plat/img:1", reg.host())).unwrap();
    let opts = PullOptions {
        platform: Platform::parse("linux/riscv64").unwrap(),
        strict_platform: true,
        jobs: 2,
        unpack: true,
    };
    let err = pull::pull(
        &store,
        &RegistryConfig::default(),
        &auth,
        &r,
        &opts,
        &|_| {},
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("linux/arm64/v8, linux/amd64"),
        "{err}"
    );
}

#[test]
fn download_only_pull_unpacks_on_first_use() {
    let reg = Registry::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    oci_image(
        &layout,
        "t",
        &[
            (busybox_layer(), Compression::Gzip),
            (
                layer_tar(&[E::File("etc/motd", 0o644, b"hi\n")]),
                Compression::Zstd,
            ),
        ],
    );
    let name = format!("{}/lazy/img:1", reg.host());
    skopeo_copy(
        &format!("oci:{}:t", layout.display()),
        &format!("docker://{name}"),
    );
    let store = Store::open(&tmp.path().join("root")).unwrap();
    let r = Reference::parse(&name).unwrap();
    let opts = PullOptions {
        unpack: false,
        ..PullOptions::default()
    };
    pull::pull(
        &store,
        &RegistryConfig::default(),
        &docker_config(tmp.path()),
        &r,
        &opts,
        &|_| {},
    )
    .unwrap();
    assert_eq!(
        std::fs::read_dir(store.root().join("layers"))
            .unwrap()
            .count(),
        0
    );
    let dirs = store.layer_dirs(&r).unwrap();
    assert_eq!(std::fs::read(dirs[0].join("etc/motd")).unwrap(), b"hi\n");
}

#[test]
fn compose_pull_images_and_push_for_the_project_services() {
    let reg = Registry::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    oci_image(&layout, "t", &[(busybox_layer(), Compression::Gzip)]);
    let host = reg.host();
    skopeo_copy(
        &format!("oci:{}:t", layout.display()),
        &format!("docker://{host}/app/web:1"),
    );
    skopeo_copy(
        &format!("oci:{}:t", layout.display()),
        &format!("docker://{host}/app/db:2"),
    );
    let project = tmp.path().join("proj");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(
        project.join("compose.yaml"),
        format!(
            "services:\n  web:\n    image: {host}/app/web:1\n  db:\n    image: {host}/app/db:2\n  local:\n    build: .\n"
        ),
    )
    .unwrap();
    let berth = env!("CARGO_BIN_EXE_berth");
    let run = |args: &[&str]| {
        Command::new(berth)
            .args(args)
            .current_dir(&project)
            .env("BERTH_ROOT", tmp.path().join("root"))
            .env("DOCKER_CONFIG", tmp.path().join("docker"))
            .env("BERTH_REGISTRIES_CONFIG", tmp.path().join("none.json"))
            .output()
            .unwrap()
    };
    let out = run(&["--progress", "plain", "pull"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let progress = String::from_utf8_lossy(&out.stderr);
    // Lines named as compose names them: `Image <image>`; a service with
    // no image is skipped with compose's reason.
    for want in [
        format!(" Image {host}/app/web:1 Pulling"),
        format!(" Image {host}/app/db:2 Pulling"),
        "Pull complete".to_owned(),
        format!(" Image {host}/app/web:1 Pulled"),
        format!(" Image {host}/app/db:2 Pulled"),
        " local Skipped No image to be pulled".to_owned(),
    ] {
        assert!(progress.contains(&want), "missing {want:?} in:\n{progress}");
    }
    let out = run(&["images"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `images` lists the images of the project's containers, as `docker
    // compose images` does: none were created, so only the header.
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("CONTAINER"), "{text}");
    assert_eq!(lines.len(), 1, "no containers, no rows:\n{text}");

    // `berth push` sends the services' images (here: web under a new tag).
    std::fs::write(
        project.join("compose.yaml"),
        format!("services:\n  web:\n    image: {host}/app/web:pushed\n"),
    )
    .unwrap();
    let out = run(&[
        "image",
        "tag",
        &format!("{host}/app/web:1"),
        &format!("{host}/app/web:pushed"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["--progress", "quiet", "push"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{host}/app/web:pushed"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the pushed tag exists on the registry"
    );
}
