//! `save` and `load`: images to and from a tar stream, in the two formats
//! other tools read.
//!
//! - **Docker archive** (`docker save`): `manifest.json`
//!   (`[{"Config","RepoTags","Layers"}]`), `repositories`, the config as
//!   `<hex>.json` and each layer as an uncompressed `<diff-id-hex>/layer.tar`.
//!   `load` reads any paths `manifest.json` names, so Docker 25's
//!   `blobs/sha256/…` variant loads too.
//! - **OCI layout** (`oci-layout`, `index.json`, `blobs/sha256/…`): blobs as
//!   stored; each image's index entry carries its full name in
//!   `io.containerd.image.name` and its tag in
//!   `org.opencontainers.image.ref.name`, as containerd and skopeo write it.
//!
//! `load` reads the stream once: every regular file goes into the store as a
//! blob (a file under `blobs/sha256/<hex>` must hash to `<hex>`), the small
//! JSON documents are kept in memory, and images are committed (layers
//! unpacked and checked against the config's diff IDs, then named) only
//! after the whole archive is read. Entry names are never used as paths on
//! disk. A failed load names nothing; its blobs are left for `prune`.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, Write};

use sha2::{Digest, Sha256};

use super::layer;
use super::reference::Reference;
use super::registry::{MEDIA_DOCKER_LIST, MEDIA_OCI_INDEX};
use super::store::{
    Descriptor, ImageConfig, Index, Manifest, Store, StoreError, MEDIA_CONFIG, MEDIA_LAYER_GZIP,
    MEDIA_LAYER_TAR, MEDIA_MANIFEST,
};

const ZSTD_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const CONTAINERD_NAME: &str = "io.containerd.image.name";
const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// JSON documents larger than this are refused when loading.
const MAX_DOCUMENT: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("reading the archive")]
    Read(#[source] std::io::Error),
    #[error("writing the archive")]
    Write(#[source] std::io::Error),
    #[error("archive: {0}")]
    Invalid(String),
    #[error("archive: parsing {name}")]
    Json {
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("archive: layer {name}")]
    Layer {
        name: String,
        #[source]
        source: layer::LayerError,
    },
}

/// Which format `save` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Docker,
    Oci,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// Writes the named images to `out`.
pub fn save(
    store: &Store,
    references: &[Reference],
    format: Format,
    out: impl Write,
) -> Result<(), ArchiveError> {
    // Group names by manifest: one entry per image, all its tags.
    let mut images: Vec<(Descriptor, Vec<Reference>)> = Vec::new();
    for r in references {
        let d = store.resolve(r)?;
        match images.iter_mut().find(|(m, _)| m.digest == d.digest) {
            Some((_, names)) => names.push(r.clone()),
            None => images.push((d, vec![r.clone()])),
        }
    }
    let mut tar = tar::Builder::new(out);
    match format {
        Format::Docker => save_docker(store, &images, &mut tar)?,
        Format::Oci => save_oci(store, &images, &mut tar)?,
    }
    tar.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(ArchiveError::Write)
}

fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_mtime(0);
    h
}

fn dir_header() -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    h.set_mtime(0);
    h
}

fn add_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    data: &[u8],
) -> Result<(), ArchiveError> {
    let mut h = header(data.len() as u64);
    tar.append_data(&mut h, name, data)
        .map_err(ArchiveError::Write)
}

fn add_file<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    mut file: std::fs::File,
) -> Result<(), ArchiveError> {
    let len = file.metadata().map_err(ArchiveError::Read)?.len();
    file.rewind().map_err(ArchiveError::Read)?;
    let mut h = header(len);
    tar.append_data(&mut h, name, file)
        .map_err(ArchiveError::Write)
}

fn save_docker<W: Write>(
    store: &Store,
    images: &[(Descriptor, Vec<Reference>)],
    tar: &mut tar::Builder<W>,
) -> Result<(), ArchiveError> {
    let mut entries = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut written = std::collections::HashSet::new();
    for (desc, names) in images {
        let manifest = store.manifest(desc)?;
        let config = store.config(&manifest)?;
        let cfg_hex = hex_of(&manifest.config.digest);
        let cfg_name = format!("{cfg_hex}.json");
        if written.insert(cfg_name.clone()) {
            add_bytes(tar, &cfg_name, &store.read_blob(&manifest.config.digest)?)?;
        }
        let mut layers = Vec::new();
        for (l, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            let dir = hex_of(diff_id).to_string();
            let name = format!("{dir}/layer.tar");
            if written.insert(name.clone()) {
                tar.append_data(&mut dir_header(), &dir, std::io::empty())
                    .map_err(ArchiveError::Write)?;
                // Docker archives hold uncompressed layers: decompress into a
                // temp file first, a tar header needs the size up front.
                let blob =
                    fs_err::File::open(store.blob_path(&l.digest)?).map_err(ArchiveError::Read)?;
                let mut plain =
                    layer::decompress(std::io::BufReader::new(blob)).map_err(|source| {
                        ArchiveError::Layer {
                            name: l.digest.clone(),
                            source,
                        }
                    })?;
                let mut tmp =
                    tempfile::tempfile_in(store.root().join("tmp")).map_err(ArchiveError::Write)?;
                std::io::copy(&mut plain, &mut tmp).map_err(ArchiveError::Read)?;
                add_file(tar, &name, tmp)?;
            }
            layers.push(name);
        }
        let tags: Vec<String> = names
            .iter()
            .filter(|r| r.tag.is_some())
            .map(|r| {
                let mut plain = r.clone();
                plain.digest = None;
                plain.familiar()
            })
            .collect();
        for r in names.iter().filter(|r| r.tag.is_some()) {
            if let (Some(tag), Some(last)) = (&r.tag, layers.last()) {
                repositories
                    .entry(r.familiar_repository())
                    .or_default()
                    .insert(tag.clone(), last.trim_end_matches("/layer.tar").to_string());
            }
        }
        entries.push(DockerEntry {
            config: cfg_name,
            repo_tags: Some(tags),
            layers,
        });
    }
    add_bytes(
        tar,
        "manifest.json",
        &serde_json::to_vec(&entries).expect("serializes"),
    )?;
    add_bytes(
        tar,
        "repositories",
        &serde_json::to_vec(&repositories).expect("serializes"),
    )?;
    Ok(())
}

fn save_oci<W: Write>(
    store: &Store,
    images: &[(Descriptor, Vec<Reference>)],
    tar: &mut tar::Builder<W>,
) -> Result<(), ArchiveError> {
    add_bytes(tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut index = Index {
        schema_version: 2,
        media_type: Some(MEDIA_OCI_INDEX.into()),
        manifests: Vec::new(),
    };
    let mut written = std::collections::HashSet::new();
    for d in ["blobs", "blobs/sha256"] {
        tar.append_data(&mut dir_header(), d, std::io::empty())
            .map_err(ArchiveError::Write)?;
    }
    for (desc, names) in images {
        let manifest = store.manifest(desc)?;
        let mut blobs = vec![desc.digest.clone(), manifest.config.digest.clone()];
        blobs.extend(manifest.layers.iter().map(|l| l.digest.clone()));
        for b in blobs {
            if written.insert(b.clone()) {
                let file = std::fs::File::open(store.blob_path(&b)?).map_err(ArchiveError::Read)?;
                add_file(tar, &format!("blobs/sha256/{}", hex_of(&b)), file)?;
            }
        }
        for r in names {
            let mut d = desc.clone();
            d.annotations.clear();
            d.annotations.insert(CONTAINERD_NAME.into(), r.to_string());
            if let Some(tag) = &r.tag {
                d.annotations.insert(REF_NAME.into(), tag.clone());
            }
            index.manifests.push(d);
        }
    }
    add_bytes(
        tar,
        "index.json",
        &serde_json::to_vec(&index).expect("serializes"),
    )?;
    Ok(())
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// What `load` found in a stream before committing anything.
#[derive(Default)]
struct Loaded {
    /// Entry name → (digest, size) of the blob it became.
    files: HashMap<String, (String, u64)>,
    /// Small JSON documents by entry name.
    documents: HashMap<String, Vec<u8>>,
}

/// Reads a Docker archive or an OCI layout tar into the store; returns the
/// names it now holds, in archive order.
pub fn load(store: &Store, input: impl Read) -> Result<Vec<Reference>, ArchiveError> {
    let plain = layer::decompress(input).map_err(|source| ArchiveError::Layer {
        name: "archive".into(),
        source,
    })?;
    let mut archive = tar::Archive::new(plain);
    let mut loaded = Loaded::default();
    for entry in archive.entries().map_err(ArchiveError::Read)? {
        let mut entry = entry.map_err(ArchiveError::Read)?;
        if entry.header().entry_type() != tar::EntryType::Regular
            && entry.header().entry_type() != tar::EntryType::Continuous
        {
            continue;
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(clean) = layer::clean(std::path::Path::new(&raw)) else {
            continue;
        };
        let name = clean.to_string_lossy().into_owned();
        if matches!(
            name.as_str(),
            "manifest.json" | "repositories" | "index.json" | "oci-layout"
        ) {
            let mut data = Vec::new();
            (&mut entry)
                .take(MAX_DOCUMENT + 1)
                .read_to_end(&mut data)
                .map_err(ArchiveError::Read)?;
            if data.len() as u64 > MAX_DOCUMENT {
                return Err(ArchiveError::Invalid(format!("{name} is too large")));
            }
            loaded.documents.insert(name, data);
            continue;
        }
        let expected = name
            .strip_prefix("blobs/sha256/")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(|h| format!("sha256:{h}"));
        let (digest, size) = store.put_blob(&mut entry, expected.as_deref())?;
        loaded.files.insert(name, (digest, size));
    }
    if let Some(m) = loaded.documents.get("manifest.json") {
        load_docker(store, &loaded, m)
    } else if let Some(i) = loaded.documents.get("index.json") {
        load_oci(store, &loaded, i)
    } else {
        Err(ArchiveError::Invalid(
            "neither manifest.json (Docker archive) nor index.json (OCI layout) found".into(),
        ))
    }
}

fn load_docker(
    store: &Store,
    loaded: &Loaded,
    manifest_json: &[u8],
) -> Result<Vec<Reference>, ArchiveError> {
    let entries: Vec<DockerEntry> =
        serde_json::from_slice(manifest_json).map_err(|source| ArchiveError::Json {
            name: "manifest.json".into(),
            source,
        })?;
    let file = |name: &str| -> Result<&(String, u64), ArchiveError> {
        let clean = layer::clean(std::path::Path::new(name))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        loaded
            .files
            .get(&clean)
            .ok_or_else(|| ArchiveError::Invalid(format!("manifest.json names missing {name:?}")))
    };
    // Validate everything before naming anything.
    let mut commits = Vec::new();
    for e in &entries {
        let (cfg_digest, cfg_size) = file(&e.config)?;
        let cfg_bytes = store.read_blob(cfg_digest)?;
        let config: ImageConfig =
            serde_json::from_slice(&cfg_bytes).map_err(|source| ArchiveError::Json {
                name: e.config.clone(),
                source,
            })?;
        if config.rootfs.diff_ids.len() != e.layers.len() {
            return Err(ArchiveError::Invalid(format!(
                "{} lists {} layers, its config {}",
                e.config,
                e.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        let mut layers = Vec::new();
        for l in &e.layers {
            let (digest, size) = file(l)?;
            layers.push(Descriptor {
                media_type: layer_media_type(store, digest)?.into(),
                digest: digest.clone(),
                size: *size,
                annotations: Default::default(),
                platform: None,
            });
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_MANIFEST.into()),
            config: Descriptor {
                media_type: MEDIA_CONFIG.into(),
                digest: cfg_digest.clone(),
                size: *cfg_size,
                annotations: Default::default(),
                platform: None,
            },
            layers,
        };
        let names = e
            .repo_tags
            .iter()
            .flatten()
            .map(|t| {
                Reference::parse(t).map_err(|err| ArchiveError::Invalid(format!("RepoTags: {err}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if names.is_empty() {
            tracing::warn!(config = %e.config, "image without a name in the archive; skipped");
        }
        commits.push((manifest, names));
    }
    let mut out = Vec::new();
    for (manifest, names) in commits {
        let bytes = serde_json::to_vec(&manifest).expect("serializes");
        for r in names {
            store.commit_manifest(&r, &bytes, MEDIA_MANIFEST)?;
            out.push(r);
        }
    }
    Ok(out)
}

fn layer_media_type(store: &Store, digest: &str) -> Result<&'static str, ArchiveError> {
    let mut f = std::fs::File::open(store.blob_path(digest)?).map_err(ArchiveError::Read)?;
    let mut head = [0u8; 4];
    let n = f.read(&mut head).map_err(ArchiveError::Read)?;
    Ok(match &head[..n] {
        [0x1f, 0x8b, ..] => MEDIA_LAYER_GZIP,
        [0x28, 0xb5, 0x2f, 0xfd] => ZSTD_LAYER,
        _ => MEDIA_LAYER_TAR,
    })
}

fn load_oci(
    store: &Store,
    loaded: &Loaded,
    index_json: &[u8],
) -> Result<Vec<Reference>, ArchiveError> {
    let index: Index = serde_json::from_slice(index_json).map_err(|source| ArchiveError::Json {
        name: "index.json".into(),
        source,
    })?;
    let have = |d: &str| loaded.files.values().any(|(digest, _)| digest == d);
    let mut commits = Vec::new();
    for d in &index.manifests {
        let name = d.annotations.get(CONTAINERD_NAME).or_else(|| {
            d.annotations
                .get(REF_NAME)
                .filter(|n| n.contains(['/', ':']))
        });
        let Some(name) = name else {
            tracing::warn!(digest = %d.digest, "image without a full name in index.json; skipped");
            continue;
        };
        let reference = Reference::parse(name)
            .map_err(|e| ArchiveError::Invalid(format!("index.json: {e}")))?;
        let mut desc = d.clone();
        if !have(&desc.digest) {
            return Err(ArchiveError::Invalid(format!(
                "missing blob {}",
                desc.digest
            )));
        }
        if desc.media_type == MEDIA_OCI_INDEX || desc.media_type == MEDIA_DOCKER_LIST {
            let nested: Index =
                serde_json::from_slice(&store.read_blob(&desc.digest)?).map_err(|source| {
                    ArchiveError::Json {
                        name: desc.digest.clone(),
                        source,
                    }
                })?;
            desc = super::pull::select_platform(&nested, &super::pull::Platform::host())
                .ok_or_else(|| {
                    ArchiveError::Invalid(format!("{name}: no manifest for this platform"))
                })?
                .clone();
            if !have(&desc.digest) {
                return Err(ArchiveError::Invalid(format!(
                    "missing blob {}",
                    desc.digest
                )));
            }
        }
        let bytes = store.read_blob(&desc.digest)?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|source| ArchiveError::Json {
                name: desc.digest.clone(),
                source,
            })?;
        for b in std::iter::once(&manifest.config).chain(&manifest.layers) {
            if !have(&b.digest) {
                return Err(ArchiveError::Invalid(format!(
                    "{name}: missing blob {}",
                    b.digest
                )));
            }
        }
        commits.push((reference, bytes, desc.media_type.clone()));
    }
    let mut out = Vec::new();
    for (reference, bytes, media_type) in commits {
        store.commit_manifest(&reference, &bytes, &media_type)?;
        out.push(reference);
    }
    Ok(out)
}

/// sha256 of a byte slice as `sha256:<hex>`.
pub fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}
