//! `pull_policy` and `up --pull`: which services' images are pulled before
//! `up` plans, and which must already be in the store. The decision is
//! pure ([`decide`]); [`pull_images`] carries it out with the image
//! store's pull (`crate::image::pull`).
//!
//! Docker Compose's rules: `always` pulls every time; `missing` (also
//! spelled `if_not_present`, and the default) pulls only an image the
//! store lacks; `never` never pulls and fails on a missing image; `build`
//! always builds. `up --pull always|missing|never` overrides every
//! service's policy.

use anyhow::{bail, Context, Result};

use crate::image::credentials::DockerConfig;
use crate::image::pull::{self, Platform, PullOptions};
use crate::image::registry::RegistryConfig;
use crate::image::store::full_image_id;
use crate::image::{Reference, Store};
use crate::model::project::{Project, Service};

use super::execute::ExecOptions;
use super::state::Paths;

/// What to do with one service's image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullDecision {
    /// Fetch it from its registry.
    Pull,
    /// Use the store's copy.
    UseLocal,
}

/// Why a service's image cannot be had.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PullPolicyError {
    #[error("service {service:?}: image {image} not found in the store and pull_policy is \"never\" (import it with `berth image import`)")]
    NeverMissing { service: String, image: String },
    #[error("service {service:?}: pull_policy {policy:?}: building images is not supported yet")]
    Build { service: String, policy: String },
    #[error("service {service:?}: pull_policy {policy:?} is not supported yet (supported: always, missing, if_not_present, never)")]
    Unsupported { service: String, policy: String },
    #[error("--pull {0:?}: expected always, missing or never")]
    BadOverride(String),
}

/// The decision for a service with policy `policy` (empty: the default),
/// `cli` the `--pull` flag if given, and whether the store has the image.
pub fn decide(
    service: &str,
    image: &str,
    policy: &str,
    cli: Option<&str>,
    present: bool,
) -> Result<PullDecision, PullPolicyError> {
    let effective = match cli {
        Some(p @ ("always" | "missing" | "never")) => p,
        Some(other) => return Err(PullPolicyError::BadOverride(other.to_owned())),
        None => policy,
    };
    match effective {
        "always" => Ok(PullDecision::Pull),
        "" | "missing" | "if_not_present" if present => Ok(PullDecision::UseLocal),
        "" | "missing" | "if_not_present" => Ok(PullDecision::Pull),
        "never" if present => Ok(PullDecision::UseLocal),
        "never" => Err(PullPolicyError::NeverMissing {
            service: service.to_owned(),
            image: image.to_owned(),
        }),
        "build" => Err(PullPolicyError::Build {
            service: service.to_owned(),
            policy: effective.to_owned(),
        }),
        other => Err(PullPolicyError::Unsupported {
            service: service.to_owned(),
            policy: other.to_owned(),
        }),
    }
}

/// Pulls the images of `services` (all of the project's when empty) that
/// their policy asks for, each image once. Returns the number pulled.
pub fn pull_images(
    paths: &Paths,
    project: &Project,
    cli: Option<&str>,
    opts: &ExecOptions,
) -> Result<usize> {
    let store = Store::open(&paths.root)?;
    let mut wanted: Vec<(String, Reference)> = Vec::new();
    for svc in project.services.values() {
        if svc.image.is_empty() {
            // No image: the service must be built, which preflight refuses
            // by name.
            continue;
        }
        let present = present(&store, svc);
        let decision = match decide(&svc.name, &svc.image, &svc.pull_policy, cli, present) {
            // `never`, and the image is there for another platform: say so.
            Err(PullPolicyError::NeverMissing { .. })
                if platform_mismatch(&store, svc).is_some() =>
            {
                bail!(
                    "service {:?}: {}",
                    svc.name,
                    platform_mismatch(&store, svc).unwrap_or_default()
                )
            }
            other => other?,
        };
        if decision != PullDecision::Pull {
            continue;
        }
        if full_image_id(&svc.image).is_some() {
            bail!(
                "service {:?}: no such image: {} (an image ID names a local image; it is never pulled)",
                svc.name,
                svc.image
            );
        }
        let reference =
            Reference::parse(&svc.image).with_context(|| format!("image {:?}", svc.image))?;
        // Each image once per platform asked for.
        let same = |(s, r): &(String, Reference)| {
            *r == reference && project.services[s].platform == svc.platform
        };
        if !wanted.iter().any(same) {
            wanted.push((svc.name.clone(), reference));
        }
    }
    // Hook images and image-volume sources, under their service's policy.
    for svc in project.services.values() {
        for (image, policy) in extra_images(svc) {
            let reference = Reference::parse(image).with_context(|| format!("image {image:?}"))?;
            let present = store.find(image).is_ok();
            let decision = decide(&svc.name, image, policy, cli, present)?;
            if decision == PullDecision::Pull && !wanted.iter().any(|(_, r)| *r == reference) {
                wanted.push((svc.name.clone(), reference));
            }
        }
    }
    if wanted.is_empty() {
        return Ok(0);
    }
    let registries = RegistryConfig::from_env()?;
    let auth = DockerConfig::from_env()?;
    for (service, reference) in &wanted {
        // Named as compose names the resource: `Image nginx Pulling`.
        let what = format!("Image {}", project.services[service].image);
        opts.progress(&what, "Pulling");
        let svc = &project.services[service];
        let pull_opts = if svc.platform.is_empty() {
            PullOptions::default()
        } else {
            PullOptions {
                platform: Platform::parse(&svc.platform)
                    .with_context(|| format!("service {service:?}"))?,
                strict_platform: true,
                ..PullOptions::default()
            }
        };
        pull::pull(&store, &registries, &auth, reference, &pull_opts, &|_| {})
            .with_context(|| format!("service {service:?}: pulling {}", reference.familiar()))?;
        opts.progress(&what, "Pulled");
    }
    Ok(wanted.len())
}

/// The images a service needs besides its own, each with the pull policy
/// that applies to it: its `pre_start` hooks' images and its `type: image`
/// volumes' sources, under the service's policy (`build` builds only the
/// service's own image: the others are pulled when missing).
pub fn extra_images(svc: &Service) -> Vec<(&str, &str)> {
    let policy = match svc.pull_policy.as_str() {
        "build" => "missing",
        p => p,
    };
    let hooks = svc
        .pre_start
        .iter()
        .map(|h| h.image.as_str())
        .filter(|i| !i.is_empty() && *i != svc.image);
    let volumes = svc
        .volumes
        .iter()
        .filter(|v| v.r#type == crate::model::project::VOLUME_IMAGE && !v.source.is_empty())
        .map(|v| v.source.as_str());
    hooks.chain(volumes).map(|i| (i, policy)).collect()
}

/// Whether the store holds the service's image (by name or image ID,
/// `Store::find`) for the service's `platform:` when it names one: an image
/// for another platform is as good as missing, so the policy pulls the
/// right one (or `never` fails), as docker compose on the containerd store.
pub fn present(store: &Store, svc: &Service) -> bool {
    store.find(&svc.image).is_ok() && platform_mismatch(store, svc).is_none()
}

/// Docker's refusal when the store's image for `svc` is for another
/// platform than the service's explicit `platform:` (berth runs no
/// emulator); `None` when it fits, no platform is named, or the image is
/// not in the store.
pub fn platform_mismatch(store: &Store, svc: &Service) -> Option<String> {
    if svc.platform.is_empty() {
        return None;
    }
    let desc = store.find(&svc.image).ok()?;
    let config = store.manifest(&desc).and_then(|m| store.config(&m)).ok()?;
    let wanted = match Platform::parse(&svc.platform) {
        Ok(p) => p,
        Err(e) => return Some(e.to_string()),
    };
    (!wanted.matches_image(&config)).then(|| {
        format!(
            "image with reference {} was found but does not match the specified platform: wanted {wanted}, actual: {}",
            svc.image,
            Platform::of_image(&config)
        )
    })
}

/// Fails when a policy could never be satisfied, without touching the
/// network: for `--dry-run`.
pub fn check_policies(paths: &Paths, project: &Project, cli: Option<&str>) -> Result<()> {
    let store = Store::open(&paths.root)?;
    for svc in project.services.values() {
        for (image, policy) in extra_images(svc) {
            if Reference::parse(image).is_err() {
                bail!("service {:?}: invalid image {:?}", svc.name, image);
            }
            decide(&svc.name, image, policy, cli, store.find(image).is_ok())?;
        }
        if svc.image.is_empty() {
            continue;
        }
        let present = present(&store, svc);
        if !present && Reference::parse(&svc.image).is_err() {
            bail!("service {:?}: invalid image {:?}", svc.name, svc.image);
        }
        decide(&svc.name, &svc.image, &svc.pull_policy, cli, present)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(policy: &str, cli: Option<&str>, present: bool) -> Result<PullDecision, PullPolicyError> {
        decide("web", "x:1", policy, cli, present)
    }

    #[test]
    fn policies_as_docker_compose() {
        use PullDecision::*;
        assert_eq!(d("", None, true), Ok(UseLocal));
        assert_eq!(d("", None, false), Ok(Pull));
        assert_eq!(d("missing", None, false), Ok(Pull));
        assert_eq!(d("if_not_present", None, true), Ok(UseLocal));
        assert_eq!(d("always", None, true), Ok(Pull));
        assert_eq!(d("never", None, true), Ok(UseLocal));
        assert!(matches!(
            d("never", None, false),
            Err(PullPolicyError::NeverMissing { .. })
        ));
        assert!(matches!(
            d("build", None, true),
            Err(PullPolicyError::Build { .. })
        ));
        assert!(matches!(
            d("daily", None, true),
            Err(PullPolicyError::Unsupported { .. })
        ));
    }

    #[test]
    fn hook_images_and_image_volumes_are_pulled_under_the_services_policy() {
        let yaml = "services:\n  web:\n    image: app\n    pull_policy: build\n    pre_start:\n      - command: [\"true\"]\n      - image: tools\n        command: [\"true\"]\n    volumes:\n      - type: image\n        source: content:1\n        target: /srv\n";
        let details = crate::model::load::ConfigDetails {
            files: vec![crate::model::load::ConfigFile {
                path: "/srv/p/compose.yaml".into(),
                content: yaml.into(),
            }],
            working_dir: "/srv/p".into(),
            environment: Default::default(),
            explicit_name: Some("p".into()),
        };
        let p = crate::model::load::load(&details, &Default::default()).expect("loads");
        let svc = &p.services["web"];
        // The first hook runs the service's own image: not an extra.
        assert_eq!(
            extra_images(svc),
            [("tools", "missing"), ("content:1", "missing")]
        );
    }

    #[test]
    fn the_pull_flag_overrides_every_policy() {
        use PullDecision::*;
        assert_eq!(d("never", Some("always"), true), Ok(Pull));
        assert_eq!(d("always", Some("never"), true), Ok(UseLocal));
        assert_eq!(d("always", Some("missing"), true), Ok(UseLocal));
        assert!(matches!(
            d("always", Some("never"), false),
            Err(PullPolicyError::NeverMissing { .. })
        ));
        assert!(matches!(
            d("", Some("sometimes"), true),
            Err(PullPolicyError::BadOverride(_))
        ));
    }
}
