//! `push`: an image from the store to a registry.
//!
//! For each blob (layers, then the config): `HEAD` — the registry may have
//! it already; else a cross-repository mount from another repository of the
//! same registry that the store knows holds the blob; else an upload
//! session, sent in one `PUT` (monolithic), falling back to `PATCH` chunks
//! when the registry refuses that. The manifest goes last, so the tag names
//! a complete image on the registry too. The store is only read.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tracing::debug;

use super::credentials::{CredentialsError, DockerConfig};
use super::reference::Reference;
use super::registry::{Body, Client, MountOutcome, RegistryConfig, RegistryError};
use super::store::{Descriptor, Manifest, Store, StoreError};

/// Chunk size when falling back to `PATCH` uploads.
pub const DEFAULT_CHUNK: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("blob {digest}")]
    Blob {
        digest: String,
        #[source]
        source: Box<PushError>,
    },
}

#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// Always upload in `PATCH` chunks of this size (else monolithic first).
    pub chunk_size: Option<u64>,
    /// Blobs sent at once.
    pub jobs: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushState {
    Preparing,
    AlreadyExists,
    Pushing { done: u64, total: u64 },
    Pushed,
}

#[derive(Debug, Clone)]
pub enum PushEvent<'a> {
    Blob {
        digest: &'a str,
        state: PushState,
    },
    /// The registry linked the blob from another of its repositories.
    Mounted {
        digest: &'a str,
        from: &'a str,
    },
}

#[derive(Debug, Clone)]
pub struct PushOutcome {
    /// The manifest digest the registry now serves.
    pub digest: String,
    pub size: u64,
}

/// Pushes the image `reference` names in the store to its registry.
pub fn push(
    store: &Store,
    registries: &RegistryConfig,
    auth: &DockerConfig,
    reference: &Reference,
    opts: &PushOptions,
    progress: &(dyn Fn(PushEvent<'_>) + Sync),
) -> Result<PushOutcome, PushError> {
    let desc = store.resolve(reference)?;
    let client = Client::new(
        &registries.base_url(&reference.domain),
        &reference.domain,
        auth.get(&reference.domain)?,
    );
    push_to(store, &client, reference, &desc, opts, progress)
}

/// Pushes `desc` (a manifest in the store) as `reference` through `client`.
pub fn push_to(
    store: &Store,
    client: &Client,
    reference: &Reference,
    desc: &Descriptor,
    opts: &PushOptions,
    progress: &(dyn Fn(PushEvent<'_>) + Sync),
) -> Result<PushOutcome, PushError> {
    let bytes = store.read_blob(&desc.digest)?;
    let manifest = store.manifest(desc)?;
    let repo = reference.path.as_str();
    let mut blobs: Vec<&Descriptor> = manifest.layers.iter().collect();
    blobs.push(&manifest.config);
    for b in &blobs {
        progress(PushEvent::Blob {
            digest: &b.digest,
            state: PushState::Preparing,
        });
    }
    let sources = mount_sources(store, reference)?;
    let queue = Mutex::new(blobs.iter().copied().collect::<VecDeque<_>>());
    let failed = AtomicBool::new(false);
    let errors = Mutex::new(Vec::new());
    let jobs = opts.jobs.clamp(1, 8).min(blobs.len());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                if failed.load(Ordering::Relaxed) {
                    return;
                }
                let Some(blob) = queue.lock().expect("queue").pop_front() else {
                    return;
                };
                let from = sources
                    .iter()
                    .find(|(_, m)| {
                        m.config.digest == blob.digest
                            || m.layers.iter().any(|l| l.digest == blob.digest)
                    })
                    .map(|(r, _)| r.as_str());
                if let Err(e) = push_blob(store, client, repo, blob, from, opts, progress) {
                    failed.store(true, Ordering::Relaxed);
                    errors.lock().expect("errors").push(PushError::Blob {
                        digest: blob.digest.clone(),
                        source: Box::new(e),
                    });
                    return;
                }
            });
        }
    });
    if let Some(e) = errors.into_inner().expect("errors").into_iter().next() {
        return Err(e);
    }
    let object = reference
        .tag
        .as_deref()
        .unwrap_or_else(|| reference.object());
    let digest = client.put_manifest(repo, object, &desc.media_type, &bytes)?;
    Ok(PushOutcome {
        digest,
        size: bytes.len() as u64,
    })
}

/// Other repositories of the same registry in the store, with their
/// manifests: where a blob can be mounted from.
fn mount_sources(
    store: &Store,
    reference: &Reference,
) -> Result<Vec<(String, Manifest)>, PushError> {
    let mut out = Vec::new();
    for e in store.list()? {
        let Ok(r) = Reference::parse(&e.reference) else {
            continue;
        };
        if r.domain != reference.domain || r.path == reference.path {
            continue;
        }
        if let Ok(m) = store.manifest(&e.manifest) {
            out.push((r.path, m));
        }
    }
    Ok(out)
}

fn push_blob(
    store: &Store,
    client: &Client,
    repo: &str,
    blob: &Descriptor,
    from: Option<&str>,
    opts: &PushOptions,
    progress: &(dyn Fn(PushEvent<'_>) + Sync),
) -> Result<(), PushError> {
    let event = |state| {
        progress(PushEvent::Blob {
            digest: &blob.digest,
            state,
        })
    };
    if client.blob_exists(repo, &blob.digest)? {
        event(PushState::AlreadyExists);
        return Ok(());
    }
    let mut location = None;
    if let Some(from) = from {
        match client.mount_blob(repo, &blob.digest, from) {
            Ok(MountOutcome::Mounted) => {
                progress(PushEvent::Mounted {
                    digest: &blob.digest,
                    from,
                });
                return Ok(());
            }
            Ok(MountOutcome::Upload(loc)) => location = Some(loc),
            Err(e) => debug!(error = %e, "cross-repository mount failed; uploading"),
        }
    }
    let path = store.blob_path(&blob.digest)?;
    let total = blob.size;
    event(PushState::Pushing { done: 0, total });
    let location = match location {
        Some(l) => l,
        None => client.start_upload(repo)?,
    };
    let whole = Body::File {
        path: &path,
        offset: 0,
        len: total,
    };
    match opts.chunk_size {
        None => match client.finish_upload(repo, &location, &blob.digest, whole) {
            Ok(()) => {}
            // Some registries (and proxies) refuse large single requests.
            Err(
                e @ RegistryError::Status {
                    status: 400 | 405 | 413 | 416,
                    ..
                },
            ) => {
                debug!(error = %e, "monolithic upload refused; sending chunks");
                let location = client.start_upload(repo)?;
                upload_chunks(client, repo, &location, blob, &path, DEFAULT_CHUNK, &event)?;
            }
            Err(e) => return Err(e.into()),
        },
        Some(chunk) => upload_chunks(client, repo, &location, blob, &path, chunk, &event)?,
    }
    event(PushState::Pushed);
    Ok(())
}

fn upload_chunks(
    client: &Client,
    repo: &str,
    location: &str,
    blob: &Descriptor,
    path: &std::path::Path,
    chunk: u64,
    event: &dyn Fn(PushState),
) -> Result<(), PushError> {
    let chunk = chunk.max(1);
    let mut location = location.to_string();
    let mut offset = 0;
    while offset < blob.size {
        let len = chunk.min(blob.size - offset);
        location = client.patch_upload(
            repo,
            &location,
            Body::File { path, offset, len },
            offset,
            len,
        )?;
        offset += len;
        event(PushState::Pushing {
            done: offset,
            total: blob.size,
        });
    }
    client.finish_upload(repo, &location, &blob.digest, Body::Empty)?;
    Ok(())
}
