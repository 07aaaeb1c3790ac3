//! `pull`: an image from a registry into the store.
//!
//! Order of writes, so that a crash at any point leaves no half-visible
//! image: config and layer blobs (each streamed into `tmp/`, checked for
//! size and digest, then renamed), each layer unpacked into its chain-ID
//! directory (checked against the config's diff ID), the manifest blob, and
//! last the name in `index.json`. A pull after a crash finds the verified
//! blobs and layer directories in place and fetches only what is missing.
//!
//! Layers are fetched and unpacked by a small pool of threads (each layer is
//! its own directory, so they do not wait for each other). Mirrors of the
//! registry are tried first, in order; the registry itself is the last
//! resort.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tracing::{debug, warn};

use super::credentials::{CredentialsError, DockerConfig};
use super::reference::Reference;
use super::registry::{
    Client, FetchedManifest, RegistryConfig, RegistryError, MEDIA_DOCKER_LIST,
    MEDIA_DOCKER_MANIFEST, MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST,
};
use super::store::{
    chain_ids, host_arch, Descriptor, ImageConfig, Index, Manifest, StagedLayer, Store, StoreError,
};

/// How many times a blob download is started over after a broken stream.
const BLOB_ATTEMPTS: u32 = 4;
/// Layers skipped by every runtime (Windows base layers).
const FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("manifest for {reference} not found: {message}")]
    NotFound { reference: String, message: String },
    #[error("{reference}: unsupported manifest media type {media_type:?}")]
    UnsupportedMediaType {
        reference: String,
        media_type: String,
    },
    #[error("{reference}: no manifest for platform {platform} (the image has: {available})")]
    NoPlatform {
        reference: String,
        platform: String,
        available: String,
    },
    #[error("{reference}: invalid manifest")]
    BadManifest {
        reference: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{reference}: invalid image config")]
    BadConfig {
        reference: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{reference}: {reason}")]
    Refused {
        reference: String,
        reason: &'static str,
    },
    #[error("layer {digest}")]
    Layer {
        digest: String,
        #[source]
        source: Box<PullError>,
    },
    #[error("invalid platform {0:?} (expected os/arch[/variant])")]
    BadPlatform(String),
    /// Docker's words for an image that is not for the platform asked for
    /// explicitly (`--platform`, a service's `platform:`).
    #[error("image with reference {reference} was found but does not match the specified platform: wanted {wanted}, actual: {actual}")]
    PlatformMismatch {
        reference: String,
        wanted: String,
        actual: String,
    },
}

/// An OCI platform (`linux/arm64/v8`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The host's platform (`linux/amd64` on x86-64).
    pub fn host() -> Self {
        Platform {
            os: "linux".into(),
            architecture: host_arch().into(),
            variant: None,
        }
    }

    /// Parses `os/arch[/variant]`, as `--platform` takes it.
    pub fn parse(s: &str) -> Result<Self, PullError> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || PullError::BadPlatform(s.to_string());
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        match parts.as_slice() {
            [os, arch] => Ok(Platform {
                os: os.to_ascii_lowercase(),
                architecture: normalize_arch(arch),
                variant: None,
            }),
            [os, arch, variant] => Ok(Platform {
                os: os.to_ascii_lowercase(),
                architecture: normalize_arch(arch),
                variant: Some(variant.to_ascii_lowercase()),
            }),
            _ => Err(bad()),
        }
    }

    /// Whether an image whose config names this os, architecture and
    /// variant runs on `self` (an unset arm64 variant means v8).
    pub fn matches_image(&self, config: &ImageConfig) -> bool {
        self.matches(&DescPlatform {
            os: config.os.clone(),
            architecture: config.architecture.clone(),
            variant: config.variant.clone(),
        })
    }

    /// The platform an image config names, as `os/arch[/variant]`.
    pub fn of_image(config: &ImageConfig) -> Platform {
        Platform {
            os: config.os.clone(),
            architecture: normalize_arch(&config.architecture),
            variant: config.variant.clone(),
        }
    }

    fn matches(&self, p: &DescPlatform) -> bool {
        if p.os != self.os || normalize_arch(&p.architecture) != self.architecture {
            return false;
        }
        match &self.variant {
            None => true,
            Some(want) => {
                let have = p
                    .variant
                    .as_deref()
                    .unwrap_or(match p.architecture.as_str() {
                        "arm64" => "v8",
                        _ => "",
                    });
                have == want
            }
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

fn normalize_arch(a: &str) -> String {
    match a.to_ascii_lowercase().as_str() {
        "x86_64" | "x86-64" => "amd64".into(),
        "aarch64" => "arm64".into(),
        other => other.into(),
    }
}

#[derive(Debug, Deserialize)]
struct DescPlatform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

/// What a pull is told besides the reference.
#[derive(Debug, Clone)]
pub struct PullOptions {
    pub platform: Platform,
    /// The platform was asked for explicitly: an image that is for another
    /// one is refused even when it is a single-platform image (Docker fails
    /// then; without an explicit platform it takes what the tag names).
    pub strict_platform: bool,
    /// Layers fetched at once.
    pub jobs: usize,
    /// Unpack layers as they arrive (as `docker pull` does). Without it the
    /// image is complete in blobs and its layers unpack on first use
    /// ([`Store::layer_dirs`]).
    pub unpack: bool,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: Platform::host(),
            strict_platform: false,
            jobs: 4,
            unpack: true,
        }
    }
}

/// Where a layer is, for the progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerState {
    Waiting,
    AlreadyExists,
    Downloading { done: u64, total: u64 },
    Retrying,
    Verifying,
    DownloadComplete,
    Extracting,
    PullComplete,
}

/// Progress of one pull, in the order things happen.
#[derive(Debug, Clone)]
pub enum PullEvent<'a> {
    /// The manifest is known; these layers follow.
    Resolved {
        digest: &'a str,
        layers: &'a [Descriptor],
    },
    Layer {
        digest: &'a str,
        state: LayerState,
    },
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct PullOutcome {
    /// The digest the registry serves for the reference (an index's digest
    /// for a multi-platform image), as `docker pull` prints it.
    pub digest: String,
    /// The platform manifest now in the store.
    pub manifest: Descriptor,
    /// Nothing new was fetched: the store had it all.
    pub up_to_date: bool,
}

/// Pulls `reference` into `store`, reporting progress to `progress`.
pub fn pull(
    store: &Store,
    registries: &RegistryConfig,
    auth: &DockerConfig,
    reference: &Reference,
    opts: &PullOptions,
    progress: &(dyn Fn(PullEvent<'_>) + Sync),
) -> Result<PullOutcome, PullError> {
    let mut endpoints: Vec<(String, String)> = registries
        .mirrors
        .get(&reference.domain)
        .into_iter()
        .flatten()
        .map(|m| {
            let m = m.trim_end_matches('/').to_string();
            let host = m
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string();
            (m, host)
        })
        .collect();
    endpoints.push((
        registries.base_url(&reference.domain),
        reference.domain.clone(),
    ));
    let last = endpoints.len() - 1;
    for (i, (base, host)) in endpoints.into_iter().enumerate() {
        let client = Client::new(&base, &host, auth.get(&host)?);
        match pull_from(store, &client, reference, opts, progress) {
            Ok(outcome) => return Ok(outcome),
            // The mirror has the image, for other platforms only: an answer,
            // not a failure of the mirror (asking further would only add a
            // misleading error from an endpoint it stands in for).
            Err(e @ (PullError::PlatformMismatch { .. } | PullError::NoPlatform { .. })) => {
                return Err(e)
            }
            Err(e) if i < last => {
                warn!(mirror = %base, error = %e, "mirror failed, trying the next endpoint");
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("the registry itself is always the last endpoint")
}

/// Pulls from one endpoint.
pub fn pull_from(
    store: &Store,
    client: &Client,
    reference: &Reference,
    opts: &PullOptions,
    progress: &(dyn Fn(PullEvent<'_>) + Sync),
) -> Result<PullOutcome, PullError> {
    let name = reference.familiar();
    let repo = reference.path.as_str();
    let top = fetch_manifest(client, reference, reference.object())?;
    let fetched = match top.media_type.as_str() {
        MEDIA_OCI_INDEX | MEDIA_DOCKER_LIST => {
            let index: Index =
                serde_json::from_slice(&top.bytes).map_err(|source| PullError::BadManifest {
                    reference: name.clone(),
                    source,
                })?;
            let chosen =
                select_platform(&index, &opts.platform).ok_or_else(|| PullError::NoPlatform {
                    reference: name.clone(),
                    platform: opts.platform.to_string(),
                    available: available_platforms(&index),
                })?;
            let m = fetch_manifest(client, reference, &chosen.digest)?;
            if m.media_type != MEDIA_OCI_MANIFEST && m.media_type != MEDIA_DOCKER_MANIFEST {
                return Err(PullError::UnsupportedMediaType {
                    reference: name,
                    media_type: m.media_type,
                });
            }
            m
        }
        MEDIA_OCI_MANIFEST | MEDIA_DOCKER_MANIFEST => top.clone(),
        other => {
            return Err(PullError::UnsupportedMediaType {
                reference: name,
                media_type: other.to_string(),
            })
        }
    };
    let manifest: Manifest =
        serde_json::from_slice(&fetched.bytes).map_err(|source| PullError::BadManifest {
            reference: name.clone(),
            source,
        })?;
    progress(PullEvent::Resolved {
        digest: &fetched.digest,
        layers: &manifest.layers,
    });
    let desc = Descriptor {
        media_type: fetched.media_type.clone(),
        digest: fetched.digest.clone(),
        size: fetched.bytes.len() as u64,
        annotations: Default::default(),
        platform: None,
    };
    let already_tagged = store
        .resolve(reference)
        .is_ok_and(|d| d.digest == desc.digest);

    // The config first: it names the diff IDs every layer is checked against.
    let mut fetched_anything = false;
    if !store.has_blob(&manifest.config.digest) {
        fetched_anything = true;
        download(store, client, repo, &manifest.config, &mut |_| {})?;
    }
    let config = store.config(&manifest).map_err(|e| match e {
        StoreError::Json { source, .. } => PullError::BadConfig {
            reference: name.clone(),
            source,
        },
        other => other.into(),
    })?;
    let layers: Vec<&Descriptor> = manifest
        .layers
        .iter()
        .filter(|l| l.media_type != FOREIGN_LAYER)
        .collect();
    if layers.len() != config.rootfs.diff_ids.len() {
        return Err(PullError::Store(StoreError::LayerCount {
            layers: layers.len(),
            diff_ids: config.rootfs.diff_ids.len(),
        }));
    }
    // A manifest chosen from an index is for the platform the index says
    // (as containerd trusts it); a single manifest answers for its config.
    let from_index = matches!(top.media_type.as_str(), MEDIA_OCI_INDEX | MEDIA_DOCKER_LIST);
    if opts.strict_platform && !from_index && !opts.platform.matches_image(&config) {
        return Err(PullError::PlatformMismatch {
            reference: name,
            wanted: opts.platform.to_string(),
            actual: Platform::of_image(&config).to_string(),
        });
    }
    if config.os != opts.platform.os && !config.os.is_empty() {
        debug!(image_os = %config.os, "image config names another os");
    }
    let chain = chain_ids(&config.rootfs.diff_ids);
    let work: Vec<(usize, &Descriptor, &str, &str)> = layers
        .iter()
        .zip(&chain)
        .zip(&config.rootfs.diff_ids)
        .enumerate()
        .map(|(i, ((l, c), d))| (i, *l, c.as_str(), d.as_str()))
        .collect();
    for (_, l, c, _) in &work {
        let state = if store.has_layer(c) {
            LayerState::AlreadyExists
        } else {
            fetched_anything = true;
            LayerState::Waiting
        };
        progress(PullEvent::Layer {
            digest: &l.digest,
            state,
        });
    }
    // Layers download and unpack in parallel into staging directories, and
    // are put in place in chain order: a layer's implicit directories take
    // their attributes from the layers below it.
    let queue = Mutex::new(work.iter().collect::<VecDeque<_>>());
    let failed = AtomicBool::new(false);
    let in_place = Mutex::new(
        work.iter()
            .map(|(_, _, c, _)| store.has_layer(c))
            .collect::<Vec<bool>>(),
    );
    let turn = Condvar::new();
    let errors: Mutex<Vec<(usize, PullError)>> = Mutex::new(Vec::new());
    let jobs = opts.jobs.clamp(1, 16).min(work.len().max(1));
    let worker = || -> Result<(), (usize, PullError)> {
        loop {
            if failed.load(Ordering::SeqCst) {
                return Ok(());
            }
            let Some(&(i, layer, chain_id, diff_id)) = queue.lock().expect("queue").pop_front()
            else {
                return Ok(());
            };
            if in_place.lock().expect("layers")[i] {
                continue;
            }
            let wrap = |e: PullError| {
                (
                    i,
                    PullError::Layer {
                        digest: layer.digest.clone(),
                        source: Box::new(e),
                    },
                )
            };
            if !opts.unpack {
                fetch(store, client, repo, layer, progress).map_err(wrap)?;
                continue;
            }
            let staged =
                fetch_and_stage(store, client, repo, layer, diff_id, progress).map_err(wrap)?;
            let mut placed = turn
                .wait_while(in_place.lock().expect("layers"), |p| {
                    !failed.load(Ordering::SeqCst) && !p[..i].iter().all(|d| *d)
                })
                .expect("layers");
            if failed.load(Ordering::SeqCst) {
                return Ok(());
            }
            let lowers = chain[..i]
                .iter()
                .rev()
                .map(|c| store.layer_path(c))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| wrap(e.into()))?;
            store
                .commit_layer(staged, chain_id, &lowers)
                .map_err(|e| wrap(e.into()))?;
            placed[i] = true;
            drop(placed);
            turn.notify_all();
            progress(PullEvent::Layer {
                digest: &layer.digest,
                state: LayerState::PullComplete,
            });
        }
    };
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                if let Err(e) = worker() {
                    let _guard = in_place.lock().expect("layers");
                    failed.store(true, Ordering::SeqCst);
                    turn.notify_all();
                    errors.lock().expect("errors").push(e);
                }
            });
        }
    });
    let mut errors = errors.into_inner().expect("errors");
    errors.sort_by_key(|(i, _)| *i);
    if let Some((_, e)) = errors.into_iter().next() {
        return Err(e);
    }
    // Blobs and layers are in place: now the manifest, and the name last.
    let (digest, _) = store.put_blob(&fetched.bytes[..], Some(&fetched.digest))?;
    debug_assert_eq!(digest, desc.digest);
    if !already_tagged {
        store.tag(reference, &desc)?;
    }
    Ok(PullOutcome {
        digest: top.digest,
        manifest: desc,
        up_to_date: already_tagged && !fetched_anything,
    })
}

fn fetch_manifest(
    client: &Client,
    reference: &Reference,
    object: &str,
) -> Result<FetchedManifest, PullError> {
    client
        .manifest(&reference.path, object)
        .map_err(|e| match e {
            RegistryError::Status {
                status: 404,
                message,
                ..
            } => PullError::NotFound {
                reference: reference.familiar(),
                message,
            },
            other => other.into(),
        })
}

/// The manifest of an index that runs on `platform`: an exact variant match
/// first, then any variant of the architecture.
pub fn select_platform<'a>(index: &'a Index, platform: &Platform) -> Option<&'a Descriptor> {
    let platform_of = |d: &Descriptor| -> Option<DescPlatform> {
        serde_json::from_value(d.platform.clone()?).ok()
    };
    let candidates: Vec<(&Descriptor, DescPlatform)> = index
        .manifests
        .iter()
        .filter_map(|d| Some((d, platform_of(d)?)))
        .filter(|(_, p)| platform.matches(p))
        .collect();
    if platform.variant.is_none() && platform.architecture == "arm64" {
        if let Some((d, _)) = candidates
            .iter()
            .find(|(_, p)| p.variant.as_deref().is_none_or(|v| v == "v8"))
        {
            return Some(d);
        }
    }
    candidates.first().map(|(d, _)| *d)
}

fn available_platforms(index: &Index) -> String {
    let names: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|d| {
            let p: DescPlatform = serde_json::from_value(d.platform.clone()?).ok()?;
            Some(match p.variant {
                Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                None => format!("{}/{}", p.os, p.architecture),
            })
        })
        .collect();
    if names.is_empty() {
        "no platforms listed".into()
    } else {
        names.join(", ")
    }
}

fn fetch_and_stage(
    store: &Store,
    client: &Client,
    repo: &str,
    layer: &Descriptor,
    diff_id: &str,
    progress: &(dyn Fn(PullEvent<'_>) + Sync),
) -> Result<StagedLayer, PullError> {
    fetch(store, client, repo, layer, progress)?;
    progress(PullEvent::Layer {
        digest: &layer.digest,
        state: LayerState::Extracting,
    });
    Ok(store.stage_layer(layer, diff_id)?)
}

/// Downloads a layer blob unless the store has it.
fn fetch(
    store: &Store,
    client: &Client,
    repo: &str,
    layer: &Descriptor,
    progress: &(dyn Fn(PullEvent<'_>) + Sync),
) -> Result<(), PullError> {
    let event = |state| {
        progress(PullEvent::Layer {
            digest: &layer.digest,
            state,
        })
    };
    if !store.has_blob(&layer.digest) {
        let total = layer.size;
        download(store, client, repo, layer, &mut |done| {
            event(LayerState::Downloading { done, total })
        })?;
        event(LayerState::Verifying);
        event(LayerState::DownloadComplete);
    }
    Ok(())
}

/// Streams one blob into the store. When the connection breaks mid-body
/// the bytes received stay in the store's `tmp/` with their hash state
/// ([`PartialBlob`]) and the next attempt, here or in a later pull, asks
/// for the rest (`Range: bytes=N-`); a registry that answers `200` sends the
/// whole blob again and the download starts over. A wrong size or digest is
/// not retried (the registry would send the same bytes again), except once
/// from byte 0 when the blob was put together from several responses.
fn download(
    store: &Store,
    client: &Client,
    repo: &str,
    blob: &Descriptor,
    progress: &mut dyn FnMut(u64),
) -> Result<(), PullError> {
    // Refuse absurd sizes before the first byte: the store would fill up.
    if blob.size > (1 << 40) {
        return Err(PullError::Refused {
            reference: blob.digest.clone(),
            reason: "blob size over 1 TiB",
        });
    }
    let dest = store.blob_path(&blob.digest)?;
    // None: another pull finished it while we waited for the lock.
    let Some(mut partial) = store.partial_blob(&blob.digest, blob.size)? else {
        return Ok(());
    };
    let mut backoff = Duration::from_millis(200);
    let mut attempt = 0;
    let mut restarted_after_mismatch = false;
    // Whether the bytes come from more than one response.
    let mut pieced = partial.resumed();
    loop {
        attempt += 1;
        let offset = partial.len();
        progress(offset);
        if offset < blob.size {
            let resp = if offset == 0 {
                client.blob(repo, &blob.digest)
            } else {
                client.blob_from(repo, &blob.digest, offset)
            };
            let resp = match resp {
                Ok(r) => r,
                // The range is past what the registry has: start over.
                Err(e) if offset > 0 && e.status() == Some(416) => {
                    debug!(digest = %blob.digest, offset, "range not satisfiable, starting over");
                    partial.restart()?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if offset > 0 {
                match resp.status() {
                    206 => {
                        check_content_range(&resp, offset, blob)?;
                        pieced = true;
                    }
                    _ => {
                        debug!(digest = %blob.digest, offset, status = resp.status(),
                            "registry sent the whole blob, starting over");
                        partial.restart()?;
                        progress(0);
                    }
                }
            }
            match partial.fill(resp.into_reader(), progress) {
                Ok(()) => {}
                Err(StoreError::Io(e)) if attempt < BLOB_ATTEMPTS => {
                    debug!(digest = %blob.digest, error = %e, attempt, bytes = partial.len(),
                        "blob stream broke, resuming");
                    std::thread::sleep(backoff);
                    backoff *= 2;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            // A body that ended early without an error: ask for the rest.
            if partial.len() < blob.size && attempt < BLOB_ATTEMPTS {
                debug!(digest = %blob.digest, bytes = partial.len(), "blob body ended early, resuming");
                partial.checkpoint()?;
                continue;
            }
        }
        match partial.finish(&dest) {
            Ok(()) => return Ok(()),
            Err(StoreError::DigestMismatch { .. }) if pieced && !restarted_after_mismatch => {
                // The kept bytes may be what was wrong: once more from 0.
                debug!(digest = %blob.digest, "resumed blob failed its digest, downloading it whole");
                restarted_after_mismatch = true;
                pieced = false;
                let Some(again) = store.partial_blob(&blob.digest, blob.size)? else {
                    return Ok(());
                };
                partial = again;
                partial.restart()?;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A `206` must cover the blob from `offset` to its end.
fn check_content_range(
    resp: &ureq::Response,
    offset: u64,
    blob: &Descriptor,
) -> Result<(), PullError> {
    let range = resp.header("Content-Range").unwrap_or("");
    let want = format!("bytes {offset}-{}/", blob.size.saturating_sub(1));
    let total_ok = range
        .rsplit('/')
        .next()
        .is_some_and(|t| t == "*" || t == blob.size.to_string());
    if range.starts_with(&want) && total_ok {
        Ok(())
    } else {
        Err(PullError::Registry(RegistryError::BadResponse {
            url: resp.get_url().to_string(),
            reason: format!(
                "asked for bytes {offset}- of {} ({} bytes), got Content-Range {range:?}",
                blob.digest, blob.size
            ),
        }))
    }
}
