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
use crate::image::pull::{self, PullOptions};
use crate::image::registry::RegistryConfig;
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
        // No image: the service must be built, which preflight refuses by
        // name.
        let own = (!svc.image.is_empty()).then_some((svc.image.as_str(), svc.pull_policy.as_str()));
        for (image, policy) in own.into_iter().chain(extra_images(svc)) {
            let reference = Reference::parse(image).with_context(|| format!("image {image:?}"))?;
            let present = store.resolve(&reference).is_ok();
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
        opts.progress(service, "Pulling");
        pull::pull(
            &store,
            &registries,
            &auth,
            reference,
            &PullOptions::default(),
            &|_| {},
        )
        .with_context(|| format!("service {service:?}: pulling {}", reference.familiar()))?;
        opts.progress(service, "Pulled");
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

/// Fails when a policy could never be satisfied, without touching the
/// network: for `--dry-run`.
pub fn check_policies(paths: &Paths, project: &Project, cli: Option<&str>) -> Result<()> {
    let store = Store::open(&paths.root)?;
    for svc in project.services.values() {
        let own = (!svc.image.is_empty()).then_some((svc.image.as_str(), svc.pull_policy.as_str()));
        for (image, policy) in own.into_iter().chain(extra_images(svc)) {
            let Ok(reference) = Reference::parse(image) else {
                bail!("service {:?}: invalid image {:?}", svc.name, image);
            };
            decide(
                &svc.name,
                image,
                policy,
                cli,
                store.resolve(&reference).is_ok(),
            )?;
        }
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
