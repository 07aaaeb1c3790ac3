//! Interrupted blob downloads resume: a small registry written here cuts
//! the connection in the middle of a layer, and the next request asks for
//! the rest with `Range: bytes=N-` (in the same pull, or in the next pull
//! after the first one gave up), or starts over when the registry answers
//! `200` with the whole blob. Loopback only; needs root for layer
//! ownership.

mod image_support;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use berth::image::credentials::DockerConfig;
use berth::image::pull::{self, PullOptions};
use berth::image::registry::RegistryConfig;
use berth::image::{Reference, Store};
use image_support::*;

/// Bytes sent before the first cut: not a multiple of the 64-byte block.
const CUT: usize = 100_003;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Cut the first layer response, honour ranges afterwards.
    CutOnceThenRanges,
    /// Cut the first layer response, then always send the whole blob (200).
    CutOnceThenIgnoreRanges,
    /// Cut the first layer response, then answer 404 to layer requests.
    CutOnceThenGone,
    /// Cut the first layer response after sending wrong bytes, honour
    /// ranges afterwards.
    CutOnceSpoiledThenRanges,
    /// Honour ranges.
    Normal,
}

struct Fake {
    server: HttpServer,
    mode: Arc<Mutex<Mode>>,
    /// (method, path, Range header) of every layer request.
    layer_requests: Arc<Mutex<Vec<Option<String>>>>,
    layer: Vec<u8>,
    layer_digest: String,
    content: Vec<u8>,
}

fn fake_registry() -> Fake {
    // ~300 KB of varied bytes in one file.
    let content: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let layer = layer_tar(&[E::File("big", 0o644, &content)]);
    let layer_digest = sha256(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))
    .unwrap();
    let config_digest = sha256(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer.len()}],
    }))
    .unwrap();
    let manifest_digest = sha256(&manifest);
    let mode = Arc::new(Mutex::new(Mode::CutOnceThenRanges));
    let layer_requests = Arc::new(Mutex::new(Vec::new()));
    let cuts = Arc::new(AtomicUsize::new(0));
    let server = {
        let mode = mode.clone();
        let seen = layer_requests.clone();
        let layer = layer.clone();
        let layer_path = format!("/v2/r/img/blobs/{layer_digest}");
        let config_path = format!("/v2/r/img/blobs/{config_digest}");
        HttpServer::start(Arc::new(move |req: &Request| {
            if req.path == "/v2/" {
                return Response::new(200).body("{}");
            }
            if req.path == "/v2/r/img/manifests/1" {
                return Response::new(200)
                    .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                    .header("Docker-Content-Digest", &manifest_digest)
                    .body(manifest.clone());
            }
            if req.path == config_path {
                return Response::new(200).body(config.clone());
            }
            if req.path != layer_path {
                return Response::new(404).body(r#"{"errors":[{"code":"NOT_FOUND"}]}"#);
            }
            let range = req.header("Range").map(String::from);
            seen.lock().unwrap().push(range.clone());
            let mode = *mode.lock().unwrap();
            let full = Response::new(200)
                .header("Content-Type", "application/octet-stream")
                .body(layer.clone());
            if mode != Mode::Normal && cuts.fetch_add(1, Ordering::SeqCst) == 0 {
                // Announce the whole blob, send part of it, hang up.
                let mut part = layer[..CUT].to_vec();
                if mode == Mode::CutOnceSpoiledThenRanges {
                    part[10] ^= 0xff;
                }
                return Response::new(200)
                    .header("Content-Length", &layer.len().to_string())
                    .body(part);
            }
            match (mode, range) {
                (Mode::CutOnceThenGone, _) => {
                    Response::new(404).body(r#"{"errors":[{"code":"BLOB_UNKNOWN"}]}"#)
                }
                (Mode::CutOnceThenIgnoreRanges, _) | (_, None) => full,
                (_, Some(r)) => {
                    let start: usize = r
                        .strip_prefix("bytes=")
                        .and_then(|s| s.strip_suffix('-'))
                        .and_then(|s| s.parse().ok())
                        .expect("the client asks for bytes=N-");
                    Response::new(206)
                        .header(
                            "Content-Range",
                            &format!("bytes {start}-{}/{}", layer.len() - 1, layer.len()),
                        )
                        .body(layer[start..].to_vec())
                }
            }
        }))
    };
    Fake {
        server,
        mode,
        layer_requests,
        layer,
        layer_digest,
        content,
    }
}

fn pull(store: &Store, tmp: &Path, fake: &Fake) -> Result<pull::PullOutcome, pull::PullError> {
    let r = Reference::parse(&format!("127.0.0.1:{}/r/img:1", fake.server.port)).unwrap();
    pull::pull(
        store,
        &RegistryConfig::default(),
        &DockerConfig::at(tmp.join("docker/config.json")),
        &r,
        &PullOptions::default(),
        &|_| {},
    )
}

fn partial_files(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("images/tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("partial-"))
        .collect()
}

fn assert_pulled(store: &Store, fake: &Fake) {
    let r = Reference::parse(&format!("127.0.0.1:{}/r/img:1", fake.server.port)).unwrap();
    let blob = std::fs::read(store.blob_path(&fake.layer_digest).unwrap()).unwrap();
    assert_eq!(blob, fake.layer, "the stored blob is the registry's");
    let dirs = store.layer_dirs(&r).unwrap();
    assert_eq!(std::fs::read(dirs[0].join("big")).unwrap(), fake.content);
}

#[test]
fn a_cut_blob_resumes_from_the_bytes_on_disk() {
    let fake = fake_registry();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let store = Store::open(&root).unwrap();
    pull(&store, tmp.path(), &fake).unwrap();
    let seen = fake.layer_requests.lock().unwrap().clone();
    assert_eq!(
        seen,
        [None, Some(format!("bytes={CUT}-"))],
        "one full request, cut; then the rest"
    );
    assert_pulled(&store, &fake);
    assert!(
        partial_files(&root).is_empty(),
        "{:?}",
        partial_files(&root)
    );
}

#[test]
fn a_registry_answering_200_to_a_range_sends_the_blob_again() {
    let fake = fake_registry();
    *fake.mode.lock().unwrap() = Mode::CutOnceThenIgnoreRanges;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let store = Store::open(&root).unwrap();
    pull(&store, tmp.path(), &fake).unwrap();
    let seen = fake.layer_requests.lock().unwrap().clone();
    assert_eq!(seen, [None, Some(format!("bytes={CUT}-"))]);
    assert_pulled(&store, &fake);
    assert!(partial_files(&root).is_empty());
}

#[test]
fn a_failed_pull_leaves_its_bytes_for_the_next_pull() {
    let fake = fake_registry();
    *fake.mode.lock().unwrap() = Mode::CutOnceThenGone;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let store = Store::open(&root).unwrap();
    let index_before = std::fs::read(root.join("images/index.json")).unwrap();
    let err = pull(&store, tmp.path(), &fake).unwrap_err();
    let msg = format!("{err}: {:?}", std::error::Error::source(&err));
    assert!(msg.contains("404") || msg.contains("blob unknown"), "{msg}");
    // Nothing visible changed; the partial blob and its state are kept.
    assert_eq!(
        std::fs::read(root.join("images/index.json")).unwrap(),
        index_before
    );
    assert!(!store.has_blob(&fake.layer_digest));
    let hex = fake.layer_digest.strip_prefix("sha256:").unwrap();
    let mut partial = partial_files(&root);
    partial.sort();
    assert_eq!(
        partial,
        [format!("partial-{hex}"), format!("partial-{hex}.json")]
    );
    let kept = std::fs::read(root.join("images/tmp").join(format!("partial-{hex}"))).unwrap();
    assert_eq!(kept, fake.layer[..CUT], "the bytes received are kept");

    // The registry is back: the next pull (a new client, as a new process
    // would have) asks only for the rest.
    *fake.mode.lock().unwrap() = Mode::Normal;
    pull(&store, tmp.path(), &fake).unwrap();
    let seen = fake.layer_requests.lock().unwrap().clone();
    assert_eq!(seen.first(), Some(&None));
    assert_eq!(seen.last(), Some(&Some(format!("bytes={CUT}-"))));
    assert_pulled(&store, &fake);
    assert!(partial_files(&root).is_empty());
}

#[test]
fn a_pieced_blob_that_fails_its_digest_is_fetched_again_whole() {
    let fake = fake_registry();
    *fake.mode.lock().unwrap() = Mode::CutOnceSpoiledThenRanges;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let store = Store::open(&root).unwrap();
    pull(&store, tmp.path(), &fake).unwrap();
    let seen = fake.layer_requests.lock().unwrap().clone();
    assert_eq!(seen, [None, Some(format!("bytes={CUT}-")), None]);
    assert_pulled(&store, &fake);
    assert!(partial_files(&root).is_empty());
}
