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
use crate::model::project::Project;

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
        let reference =
            Reference::parse(&svc.image).with_context(|| format!("image {:?}", svc.image))?;
        let present = store.resolve(&reference).is_ok();
        let decision = decide(&svc.name, &svc.image, &svc.pull_policy, cli, present)?;
        if decision == PullDecision::Pull && !wanted.iter().any(|(_, r)| *r == reference) {
            wanted.push((svc.name.clone(), reference));
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
        pull::pull(
            &store,
            &registries,
            &auth,
            reference,
            &PullOptions::default(),
            &|_| {},
        )
        .with_context(|| format!("service {service:?}: pulling {}", reference.familiar()))?;
        opts.progress(&what, "Pulled");
    }
    Ok(wanted.len())
}

/// Fails when a policy could never be satisfied, without touching the
/// network: for `--dry-run`.
pub fn check_policies(paths: &Paths, project: &Project, cli: Option<&str>) -> Result<()> {
    let store = Store::open(&paths.root)?;
    for svc in project.services.values() {
        if svc.image.is_empty() {
            continue;
        }
        let Ok(reference) = Reference::parse(&svc.image) else {
            bail!("service {:?}: invalid image {:?}", svc.name, svc.image);
        };
        decide(
            &svc.name,
            &svc.image,
            &svc.pull_policy,
            cli,
            store.resolve(&reference).is_ok(),
        )?;
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
