//! The on-disk image store under `$BERTH_ROOT/images`.
//!
//! Layout (an OCI image layout plus unpacked layers):
//!
//! ```text
//! images/
//!   oci-layout                  {"imageLayoutVersion":"1.0.0"}
//!   index.json                  OCI index; one manifest descriptor per tag,
//!                               named by `org.opencontainers.image.ref.name`
//!                               = the full normalized reference
//!   blobs/sha256/<hex>          manifests, configs, layer tarballs, verified
//!   layers/<chainid-hex>/       a layer's diff unpacked for overlayfs
//!                               (whiteouts as 0/0 char devices), shared by
//!                               every image whose chain reaches it
//!   tmp/                        staging for blobs and layer dirs;
//!                               partial-<hex>[.json]: interrupted blob
//!                               downloads and their hash state (partial.rs)
//! ```
//!
//! Every write lands in `tmp/` first and is renamed into place, so a crash
//! leaves either nothing or a complete, verified object; the tag becomes
//! visible only when `index.json` is replaced, after all its blobs and layer
//! directories exist. Blobs already present are trusted (they were verified
//! before the rename) and reused by the next pull or import.
//!
//! Many layers: [`Store::layer_dirs`] returns the absolute directories, top
//! layer first; [`super::overlay::mount`] stacks any number of them
//! (`lowerdir+`, Linux 6.8+). [`Store::flatten`] builds a single rootfs
//! instead, for consumers that cannot stack layers.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use fs_err as fs;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::layer::{self, ApplyOptions, Mode};
use super::partial::PartialBlob;
use super::reference::Reference;

pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("parsing {path}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("no such image: {0}")]
    NotFound(String),
    #[error("{prefix}: ambiguous image ID prefix (matches {})", ids.join(", "))]
    AmbiguousId { prefix: String, ids: Vec<String> },
    #[error("blob {expected} has digest {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("applying layer {digest}")]
    Layer {
        digest: String,
        #[source]
        source: layer::LayerError,
    },
    #[error("invalid digest {0:?}")]
    BadDigest(String),
    #[error("blob {digest} has {actual} bytes, expected {expected}")]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
    },
    #[error("layer {layer} unpacks to {actual}, but the image config says {expected}")]
    DiffIdMismatch {
        layer: String,
        expected: String,
        actual: String,
    },
    #[error("manifest has {layers} layers but the image config lists {diff_ids}")]
    LayerCount { layers: usize, diff_ids: usize },
}

/// A layer unpacked into `tmp/`, verified, not yet in place.
#[derive(Debug)]
pub struct StagedLayer {
    dir: tempfile::TempDir,
    digest: String,
    implicit_dirs: Vec<PathBuf>,
    lower_links: Vec<(PathBuf, PathBuf)>,
}

/// Hashes what passes through.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// An OCI content descriptor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Index {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// The part of an image config the engine uses (OCI/Docker `config`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default)]
    pub config: ContainerConfig,
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

/// A stored image: its reference and manifest digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    pub reference: String,
    pub manifest: Descriptor,
}

/// Handle on `$BERTH_ROOT/images`.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store in `berth_root/images`.
    pub fn open(berth_root: &Path) -> Result<Self, StoreError> {
        let root = berth_root.join("images");
        for d in ["blobs/sha256", "layers", "tmp"] {
            fs::create_dir_all(root.join(d))?;
        }
        let store = Store { root };
        let layout = store.root.join("oci-layout");
        if !layout.exists() {
            store.write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        if !store.root.join("index.json").exists() {
            store.write_index(&Index {
                schema_version: 2,
                media_type: Some("application/vnd.oci.image.index.v1+json".into()),
                manifests: vec![],
            })?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        let hex = digest
            .strip_prefix("sha256:")
            .ok_or_else(|| StoreError::BadDigest(digest.into()))?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::BadDigest(digest.into()));
        }
        Ok(self.root.join("blobs/sha256").join(hex))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.exists())
    }

    /// Streams `reader` into a blob, verifying `expected` if given. Returns
    /// (digest, size). Nothing is visible under `blobs/` unless it verified.
    pub fn put_blob(
        &self,
        mut reader: impl Read,
        expected: Option<&str>,
    ) -> Result<(String, u64), StoreError> {
        let mut tmp = tempfile::NamedTempFile::new_in(self.root.join("tmp"))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut size = 0u64;
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n])?;
            size += n as u64;
        }
        let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
        if let Some(exp) = expected {
            if exp != digest {
                return Err(StoreError::DigestMismatch {
                    expected: exp.into(),
                    actual: digest,
                });
            }
        }
        let dest = self.blob_path(&digest)?;
        if !dest.exists() {
            tmp.as_file().sync_all()?;
            tmp.persist(&dest).map_err(|e| e.error)?;
        }
        Ok((digest, size))
    }

    /// The resumable download of blob `digest` (`size` bytes) in `tmp/`,
    /// locked for the caller; see [`PartialBlob`]. `None` when the blob is
    /// in the store (perhaps put there by a download this one waited for).
    pub fn partial_blob(&self, digest: &str, size: u64) -> Result<Option<PartialBlob>, StoreError> {
        let dest = self.blob_path(digest)?;
        let hex = dest
            .file_name()
            .expect("blob paths end in the hex digest")
            .to_string_lossy()
            .into_owned();
        PartialBlob::open(&self.root.join("tmp"), &dest, digest, &hex, size)
    }

    /// Stores a manifest (schema 2 or OCI) whose config and layer blobs are
    /// already in the store, unpacks its layers, and only then points
    /// `reference` at it.
    pub fn commit_manifest(
        &self,
        reference: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Descriptor, StoreError> {
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|source| StoreError::Json {
                path: PathBuf::from(format!("manifest of {reference}")),
                source,
            })?;
        let config = self.config(&manifest)?;
        self.unpack(&manifest, &config)?;
        let (digest, size) = self.put_blob(bytes, None)?;
        let desc = Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            annotations: Default::default(),
            platform: None,
        };
        self.tag(reference, &desc)?;
        Ok(desc)
    }

    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        Ok(fs::read(self.blob_path(digest)?)?)
    }

    fn write_atomic(&self, dest: &Path, data: &[u8]) -> Result<(), StoreError> {
        let mut tmp = tempfile::NamedTempFile::new_in(self.root.join("tmp"))?;
        tmp.write_all(data)?;
        tmp.as_file().sync_all()?;
        tmp.persist(dest).map_err(|e| e.error)?;
        Ok(())
    }

    pub fn index(&self) -> Result<Index, StoreError> {
        let path = self.root.join("index.json");
        let data = fs::read(&path)?;
        serde_json::from_slice(&data).map_err(|source| StoreError::Json { path, source })
    }

    fn write_index(&self, index: &Index) -> Result<(), StoreError> {
        let data = serde_json::to_vec_pretty(index).expect("index serializes");
        self.write_atomic(&self.root.join("index.json"), &data)
    }

    /// Every tagged image.
    pub fn list(&self) -> Result<Vec<ImageEntry>, StoreError> {
        Ok(self
            .index()?
            .manifests
            .into_iter()
            .filter_map(|d| {
                let name = d.annotations.get(REF_NAME)?.clone();
                Some(ImageEntry {
                    reference: name,
                    manifest: d,
                })
            })
            .collect())
    }

    /// Points `reference` at a manifest already in the store (replaces the
    /// old target of that tag). Concurrent taggers serialize on the rename;
    /// a lost update is possible and documented for the coordinator's lock.
    pub fn tag(&self, reference: &Reference, manifest: &Descriptor) -> Result<(), StoreError> {
        let mut index = self.index()?;
        let name = reference.to_string();
        index
            .manifests
            .retain(|d| d.annotations.get(REF_NAME) != Some(&name));
        let mut d = manifest.clone();
        d.annotations.insert(REF_NAME.into(), name);
        index.manifests.push(d);
        self.write_index(&index)
    }

    /// Removes a tag; blobs stay until [`Store::prune`].
    pub fn untag(&self, reference: &Reference) -> Result<(), StoreError> {
        let mut index = self.index()?;
        let name = reference.to_string();
        let before = index.manifests.len();
        index
            .manifests
            .retain(|d| d.annotations.get(REF_NAME) != Some(&name));
        if before == index.manifests.len() {
            return Err(StoreError::NotFound(reference.familiar()));
        }
        self.write_index(&index)
    }

    /// The manifest descriptor a reference names (tag, or digest).
    pub fn resolve(&self, reference: &Reference) -> Result<Descriptor, StoreError> {
        let name = reference.to_string();
        self.list()?
            .into_iter()
            .find(|e| {
                e.reference == name
                    || reference.digest.as_deref() == Some(e.manifest.digest.as_str())
            })
            .map(|e| e.manifest)
            .ok_or_else(|| StoreError::NotFound(reference.familiar()))
    }

    /// What a name a user wrote means, as Docker's `GetImage(refOrID)`:
    /// a full image ID (`sha256:<64 hex>` or the bare 64 hex digits) names
    /// the image whose config has that digest; otherwise a reference that
    /// is tagged here wins; otherwise a hex string (with or without
    /// `sha256:`) is a prefix of exactly one image ID. Never a registry.
    pub fn find(&self, name: &str) -> Result<Descriptor, StoreError> {
        let not_found = || StoreError::NotFound(name.to_string());
        if let Some(hex) = full_image_id(name) {
            return self
                .by_image_id(|id| id == hex)?
                .into_iter()
                .next()
                .map(|(_, d)| d)
                .ok_or_else(not_found);
        }
        if let Ok(reference) = Reference::parse(name) {
            match self.resolve(&reference) {
                Ok(d) => return Ok(d),
                Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let prefix = name.strip_prefix("sha256:").unwrap_or(name);
        if prefix.is_empty()
            || !prefix
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(not_found());
        }
        let mut found = self.by_image_id(|id| id.starts_with(prefix))?;
        match found.len() {
            0 => Err(not_found()),
            1 => Ok(found.remove(0).1),
            _ => Err(StoreError::AmbiguousId {
                prefix: name.to_string(),
                ids: found.into_iter().map(|(id, _)| id).collect(),
            }),
        }
    }

    /// One manifest per distinct image ID (config digest hex) that `keep`
    /// accepts, in index order.
    fn by_image_id(
        &self,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Vec<(String, Descriptor)>, StoreError> {
        let mut out: Vec<(String, Descriptor)> = Vec::new();
        for entry in self.list()? {
            let manifest = self.manifest(&entry.manifest)?;
            let id = manifest
                .config
                .digest
                .strip_prefix("sha256:")
                .unwrap_or(&manifest.config.digest)
                .to_string();
            if keep(&id) && !out.iter().any(|(seen, _)| *seen == id) {
                out.push((id, entry.manifest));
            }
        }
        Ok(out)
    }

    pub fn manifest(&self, desc: &Descriptor) -> Result<Manifest, StoreError> {
        let path = self.blob_path(&desc.digest)?;
        let data = fs::read(&path)?;
        serde_json::from_slice(&data).map_err(|source| StoreError::Json { path, source })
    }

    pub fn config(&self, manifest: &Manifest) -> Result<ImageConfig, StoreError> {
        let path = self.blob_path(&manifest.config.digest)?;
        let data = fs::read(&path)?;
        serde_json::from_slice(&data).map_err(|source| StoreError::Json { path, source })
    }

    /// The image config of a reference, for the engine.
    pub fn image_config(&self, reference: &Reference) -> Result<ImageConfig, StoreError> {
        let m = self.manifest(&self.resolve(reference)?)?;
        self.config(&m)
    }

    /// Unpacks every layer of `manifest` not yet unpacked, each into
    /// `layers/<chainid>` via a temp dir + rename.
    pub fn unpack(
        &self,
        manifest: &Manifest,
        config: &ImageConfig,
    ) -> Result<Vec<PathBuf>, StoreError> {
        if manifest.layers.len() != config.rootfs.diff_ids.len() {
            return Err(StoreError::LayerCount {
                layers: manifest.layers.len(),
                diff_ids: config.rootfs.diff_ids.len(),
            });
        }
        let chain = chain_ids(&config.rootfs.diff_ids);
        let mut dirs: Vec<PathBuf> = Vec::new();
        for ((layer, chain_id), diff_id) in manifest
            .layers
            .iter()
            .zip(&chain)
            .zip(&config.rootfs.diff_ids)
        {
            let dir = if self.has_layer(chain_id) {
                self.layer_dir(chain_id)?
            } else {
                let staged = self.stage_layer(layer, diff_id)?;
                let lowers: Vec<PathBuf> = dirs.iter().rev().cloned().collect();
                self.commit_layer(staged, chain_id, &lowers)?
            };
            dirs.push(dir);
        }
        Ok(dirs)
    }

    /// Whether the layer of this chain ID is unpacked.
    pub fn has_layer(&self, chain_id: &str) -> bool {
        self.layer_dir(chain_id).is_ok_and(|d| d.exists())
    }

    /// The directory a chain ID is (or will be) unpacked in.
    pub fn layer_path(&self, chain_id: &str) -> Result<PathBuf, StoreError> {
        self.layer_dir(chain_id)
    }

    /// Unpacks one layer blob into a staging directory, checking that its
    /// uncompressed bytes hash to `diff_id`. Layers stage independently, so
    /// callers may stage several at once; [`Store::commit_layer`] then puts
    /// them in place in chain order.
    pub fn stage_layer(
        &self,
        layer: &Descriptor,
        diff_id: &str,
    ) -> Result<StagedLayer, StoreError> {
        let tmp = tempfile::Builder::new()
            .prefix("layer-")
            .tempdir_in(self.root.join("tmp"))?;
        let blob = fs::File::open(self.blob_path(&layer.digest)?)?;
        let layer_err = |source| StoreError::Layer {
            digest: layer.digest.clone(),
            source,
        };
        let plain = layer::decompress(std::io::BufReader::with_capacity(256 * 1024, blob))
            .map_err(layer_err)?;
        let mut hashed = HashingReader {
            inner: plain,
            hasher: Sha256::new(),
        };
        let stats = layer::apply(
            &mut hashed,
            tmp.path(),
            ApplyOptions {
                mode: Mode::Overlay,
                allow_devices: true,
            },
        )
        .map_err(layer_err)?;
        // The tar end marker may be followed by padding: it counts too.
        std::io::copy(&mut hashed, &mut std::io::sink())
            .map_err(|e| layer_err(layer::LayerError::Read(e)))?;
        let actual = format!("sha256:{}", hex::encode(hashed.hasher.finalize()));
        if actual != diff_id {
            return Err(StoreError::DiffIdMismatch {
                layer: layer.digest.clone(),
                expected: diff_id.to_string(),
                actual,
            });
        }
        Ok(StagedLayer {
            dir: tmp,
            digest: layer.digest.clone(),
            implicit_dirs: stats.implicit_dirs,
            lower_links: stats.lower_links,
        })
    }

    /// Puts a staged layer in place as `layers/<chain_id>`. `lowers` are the
    /// directories of the layers below it, top first (already in place):
    /// directories the layer needed but did not list take their attributes.
    pub fn commit_layer(
        &self,
        staged: StagedLayer,
        chain_id: &str,
        lowers: &[PathBuf],
    ) -> Result<PathBuf, StoreError> {
        let dir = self.layer_dir(chain_id)?;
        if dir.exists() {
            return Ok(dir);
        }
        let layer_err = |source| StoreError::Layer {
            digest: staged.digest.clone(),
            source,
        };
        let mut implicit = staged.implicit_dirs.clone();
        implicit.extend(
            layer::resolve_lower_links(staged.dir.path(), &staged.lower_links, lowers)
                .map_err(layer_err)?,
        );
        layer::inherit_dir_attrs(staged.dir.path(), &implicit, lowers).map_err(layer_err)?;
        let staged = staged.dir.keep();
        if let Err(e) = fs::rename(&staged, &dir) {
            // Another process unpacked the same chain first.
            let _ = std::fs::remove_dir_all(&staged);
            if !dir.exists() {
                return Err(e.into());
            }
        }
        Ok(dir)
    }

    fn layer_dir(&self, chain_id: &str) -> Result<PathBuf, StoreError> {
        let hex = chain_id
            .strip_prefix("sha256:")
            .ok_or_else(|| StoreError::BadDigest(chain_id.into()))?;
        Ok(self.root.join("layers").join(hex))
    }

    /// Unpacked layer directories of an image, top layer first (overlayfs
    /// `lowerdir` order).
    pub fn layer_dirs(&self, reference: &Reference) -> Result<Vec<PathBuf>, StoreError> {
        let m = self.manifest(&self.resolve(reference)?)?;
        let c = self.config(&m)?;
        let mut dirs = self.unpack(&m, &c)?;
        dirs.reverse();
        Ok(dirs)
    }

    /// Applies all layers of an image into `dest` (one rootfs, whiteouts
    /// applied): the fallback for more layers than a mount can stack.
    pub fn flatten(&self, reference: &Reference, dest: &Path) -> Result<(), StoreError> {
        let m = self.manifest(&self.resolve(reference)?)?;
        for layer in &m.layers {
            let blob = fs::File::open(self.blob_path(&layer.digest)?)?;
            layer::apply(
                std::io::BufReader::new(blob),
                dest,
                ApplyOptions {
                    mode: Mode::Flatten,
                    allow_devices: true,
                },
            )
            .map_err(|source| StoreError::Layer {
                digest: layer.digest.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Stores config + manifest for already-stored layer blobs and tags it.
    pub fn commit_image(
        &self,
        reference: &Reference,
        config: &ImageConfig,
        layers: Vec<Descriptor>,
    ) -> Result<Descriptor, StoreError> {
        let cfg = serde_json::to_vec(config).expect("config serializes");
        let (cfg_digest, cfg_size) = self.put_blob(&cfg[..], None)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_MANIFEST.into()),
            config: Descriptor {
                media_type: MEDIA_CONFIG.into(),
                digest: cfg_digest,
                size: cfg_size,
                annotations: Default::default(),
                platform: None,
            },
            layers,
        };
        let m = serde_json::to_vec(&manifest).expect("manifest serializes");
        let (digest, size) = self.put_blob(&m[..], None)?;
        self.unpack(&manifest, config)?;
        let desc = Descriptor {
            media_type: MEDIA_MANIFEST.into(),
            digest,
            size,
            annotations: Default::default(),
            platform: None,
        };
        self.tag(reference, &desc)?;
        Ok(desc)
    }

    /// Removes a name, and then the blobs and layer directories of its image
    /// that no other name uses. Returns the digests deleted (manifest,
    /// config, layers), for `Deleted:` lines.
    pub fn remove(&self, reference: &Reference) -> Result<Vec<String>, StoreError> {
        let desc = self.resolve(reference)?;
        let manifest = self.manifest(&desc)?;
        let config = self.config(&manifest).ok();
        self.untag(reference)?;
        let (keep_blobs, keep_layers) = self.referenced()?;
        let mut deleted = Vec::new();
        let mut blobs = vec![desc.digest.clone(), manifest.config.digest.clone()];
        blobs.extend(manifest.layers.iter().map(|l| l.digest.clone()));
        for b in blobs {
            if !keep_blobs.contains(&b) {
                match fs::remove_file(self.blob_path(&b)?) {
                    Ok(()) => deleted.push(b),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if let Some(config) = config {
            for c in chain_ids(&config.rootfs.diff_ids) {
                if !keep_layers.contains(&c) {
                    let dir = self.layer_dir(&c)?;
                    if dir.exists() {
                        self.remove_layer_dir(&dir)?;
                    }
                }
            }
        }
        Ok(deleted)
    }

    /// Layer directories are first renamed into `tmp/` so that a crash
    /// mid-delete never leaves a half-emptied layer under its chain ID.
    fn remove_layer_dir(&self, dir: &Path) -> Result<(), StoreError> {
        let doomed = self.root.join("tmp").join(format!(
            "deleting-{}",
            dir.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        ));
        fs::rename(dir, &doomed)?;
        fs::remove_dir_all(&doomed)?;
        Ok(())
    }

    /// Blobs and chain IDs some name uses.
    fn referenced(
        &self,
    ) -> Result<
        (
            std::collections::HashSet<String>,
            std::collections::HashSet<String>,
        ),
        StoreError,
    > {
        let mut keep_blobs = std::collections::HashSet::new();
        let mut keep_layers = std::collections::HashSet::new();
        for e in self.list()? {
            keep_blobs.insert(e.manifest.digest.clone());
            let m = self.manifest(&e.manifest)?;
            let c = self.config(&m)?;
            keep_blobs.insert(m.config.digest.clone());
            keep_blobs.extend(m.layers.iter().map(|l| l.digest.clone()));
            keep_layers.extend(chain_ids(&c.rootfs.diff_ids));
        }
        Ok((keep_blobs, keep_layers))
    }

    /// Removes blobs and layer dirs no tagged image uses. Returns bytes freed
    /// (blobs only).
    pub fn prune(&self) -> Result<u64, StoreError> {
        let (keep_blobs, keep_layers) = self.referenced()?;
        let mut freed = 0;
        for ent in fs::read_dir(self.root.join("blobs/sha256"))? {
            let ent = ent?;
            let d = format!("sha256:{}", ent.file_name().to_string_lossy());
            if !keep_blobs.contains(&d) {
                freed += ent.metadata()?.len();
                fs::remove_file(ent.path())?;
            }
        }
        for ent in fs::read_dir(self.root.join("layers"))? {
            let ent = ent?;
            let d = format!("sha256:{}", ent.file_name().to_string_lossy());
            if !keep_layers.contains(&d) {
                self.remove_layer_dir(&ent.path())?;
            }
        }
        // Leftovers of interrupted pulls, loads and deletes. Young entries
        // may belong to a pull still running.
        let hour = std::time::Duration::from_secs(3600);
        for ent in fs::read_dir(self.root.join("tmp"))? {
            let ent = ent?;
            let old = ent
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > hour));
            let name = ent.file_name();
            if old || name.to_string_lossy().starts_with("deleting-") {
                let p = ent.path();
                if p.is_dir() {
                    let _ = std::fs::remove_dir_all(&p);
                } else {
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
        Ok(freed)
    }
}

/// OCI chain IDs: `chain[0] = diff[0]`, `chain[n] = sha256(chain[n-1] + " " + diff[n])`.
/// The hex of a full image ID (`sha256:<64 hex>` or 64 bare hex digits),
/// which Docker never reads as a repository name.
pub fn full_image_id(name: &str) -> Option<&str> {
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then_some(hex)
}

pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{prev} {d}").as_bytes()))
            ),
        };
        out.push(next);
    }
    out
}

/// The host platform in OCI words.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "s390x" => "s390x",
        "powerpc64" => "ppc64le",
        "riscv64" => "riscv64",
        other => other,
    }
}
