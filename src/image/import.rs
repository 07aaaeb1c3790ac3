//! `docker import`: an image from a rootfs tarball (plain, gzip or zstd) and
//! `--change` Dockerfile instructions. The tarball becomes the single layer
//! as given (its bytes are the layer blob).

use std::io::Read;

use super::reference::Reference;
use super::store::{
    host_arch, ContainerConfig, Descriptor, ImageConfig, RootFs, Store, StoreError,
    MEDIA_LAYER_GZIP, MEDIA_LAYER_TAR,
};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("reading the imported layer")]
    Read(#[source] std::io::Error),
    #[error("--change {change:?}: {reason}")]
    Change {
        change: String,
        reason: &'static str,
    },
}

/// Imports `reader` as a one-layer image tagged `reference`.
pub fn import(
    store: &Store,
    reader: impl Read,
    reference: &Reference,
    changes: &[String],
) -> Result<Descriptor, ImportError> {
    let mut config = ContainerConfig::default();
    for c in changes {
        apply_change(&mut config, c)?;
    }
    let (digest, size) = store.put_blob(reader, None)?;
    let blob = fs_err::File::open(store.blob_path(&digest)?).map_err(ImportError::Read)?;
    let mut head = [0u8; 4];
    let n = (&blob).take(4).read(&mut head).map_err(ImportError::Read)?;
    let media_type = match &head[..n] {
        [0x1f, 0x8b, ..] => MEDIA_LAYER_GZIP,
        [0x28, 0xb5, 0x2f, 0xfd] => "application/vnd.oci.image.layer.v1.tar+zstd",
        _ => MEDIA_LAYER_TAR,
    };
    let diff_id = if media_type == MEDIA_LAYER_TAR {
        digest.clone()
    } else {
        let blob = fs_err::File::open(store.blob_path(&digest)?).map_err(ImportError::Read)?;
        let mut dec =
            super::layer::decompress(std::io::BufReader::new(blob)).map_err(|e| match e {
                super::layer::LayerError::Read(e) => ImportError::Read(e),
                other => ImportError::Read(std::io::Error::other(other.to_string())),
            })?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut dec, &mut HashWriter(&mut hasher)).map_err(ImportError::Read)?;
        format!("sha256:{}", hex::encode(hasher.finalize()))
    };
    let image = ImageConfig {
        author: None,
        created: None,
        architecture: host_arch().into(),
        os: "linux".into(),
        variant: None,
        config,
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![diff_id],
        },
        history: vec![
            serde_json::json!({"created_by": "berth image import", "comment": "Imported from tarball"}),
        ],
    };
    let layer = Descriptor {
        media_type: media_type.into(),
        digest,
        size,
        annotations: Default::default(),
        platform: None,
    };
    Ok(store.commit_image(reference, &image, vec![layer])?)
}

struct HashWriter<'a>(&'a mut Sha256);
impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Applies one Dockerfile instruction allowed by `docker import --change`.
pub fn apply_change(config: &mut ContainerConfig, change: &str) -> Result<(), ImportError> {
    let bad = |reason| ImportError::Change {
        change: change.to_string(),
        reason,
    };
    let (word, rest) = change
        .trim()
        .split_once(char::is_whitespace)
        .ok_or_else(|| bad("expected INSTRUCTION ARGS"))?;
    let rest = rest.trim();
    let command = || -> Result<Vec<String>, ImportError> {
        if rest.starts_with('[') {
            serde_json::from_str(rest).map_err(|_| bad("invalid JSON array"))
        } else {
            Ok(vec!["/bin/sh".into(), "-c".into(), rest.into()])
        }
    };
    let pairs = || -> Result<Vec<(String, String)>, ImportError> {
        if let Some((k, v)) = rest
            .split_once(char::is_whitespace)
            .filter(|(k, _)| !k.contains('='))
        {
            return Ok(vec![(k.to_string(), v.trim().to_string())]);
        }
        rest.split_whitespace()
            .map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
                    .ok_or_else(|| bad("expected KEY=VALUE"))
            })
            .collect()
    };
    match word.to_ascii_uppercase().as_str() {
        "CMD" => config.cmd = Some(command()?),
        "ENTRYPOINT" => config.entrypoint = Some(command()?),
        "ENV" => {
            let env = config.env.get_or_insert_with(Vec::new);
            for (k, v) in pairs()? {
                env.retain(|e| e.split_once('=').map(|(ek, _)| ek) != Some(k.as_str()));
                env.push(format!("{k}={v}"));
            }
        }
        "LABEL" => {
            let labels = config.labels.get_or_insert_with(Default::default);
            for (k, v) in pairs()? {
                labels.insert(k, v);
            }
        }
        "WORKDIR" => config.working_dir = Some(rest.to_string()),
        "USER" => config.user = Some(rest.to_string()),
        "STOPSIGNAL" => config.stop_signal = Some(rest.to_string()),
        "EXPOSE" => {
            let ports = config.exposed_ports.get_or_insert_with(Default::default);
            for p in rest.split_whitespace() {
                let p = if p.contains('/') { p.to_string() } else { format!("{p}/tcp") };
                ports.insert(p, serde_json::json!({}));
            }
        }
        "VOLUME" => {
            let vols = config.volumes.get_or_insert_with(Default::default);
            let list: Vec<String> = if rest.starts_with('[') {
                serde_json::from_str(rest).map_err(|_| bad("invalid JSON array"))?
            } else {
                rest.split_whitespace().map(String::from).collect()
            };
            for v in list {
                vols.insert(v, serde_json::json!({}));
            }
        }
        _ => return Err(bad("only CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR are supported")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_like_docker_import() {
        let mut c = ContainerConfig::default();
        for ch in [
            "CMD [\"sh\"]",
            "ENV A=1 B=2",
            "ENV A=3",
            "WORKDIR /srv",
            "EXPOSE 80 53/udp",
            "ENTRYPOINT echo hi",
            "USER 1000:1000",
        ] {
            apply_change(&mut c, ch).unwrap();
        }
        assert_eq!(c.cmd, Some(vec!["sh".to_string()]));
        assert_eq!(c.env, Some(vec!["B=2".to_string(), "A=3".to_string()]));
        assert_eq!(c.working_dir.as_deref(), Some("/srv"));
        assert_eq!(
            c.entrypoint,
            Some(vec!["/bin/sh".into(), "-c".into(), "echo hi".into()])
        );
        assert!(c.exposed_ports.unwrap().contains_key("53/udp"));
        assert!(apply_change(&mut ContainerConfig::default(), "RUN rm -rf /").is_err());
        assert!(apply_change(&mut ContainerConfig::default(), "CMD [broken").is_err());
    }
}
