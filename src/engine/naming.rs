//! Names and labels as Docker Compose gives them, so `ps`, `down` and
//! `logs -p NAME` find a project's containers without its compose file and
//! tools that read Compose labels keep working.

use std::collections::BTreeMap;

use crate::model::project::{Project, Service};

pub const LABEL_PROJECT: &str = "com.docker.compose.project";
pub const LABEL_SERVICE: &str = "com.docker.compose.service";
pub const LABEL_NUMBER: &str = "com.docker.compose.container-number";
pub const LABEL_ONEOFF: &str = "com.docker.compose.oneoff";
pub const LABEL_CONFIG_HASH: &str = "com.docker.compose.config-hash";
pub const LABEL_WORKING_DIR: &str = "com.docker.compose.project.working_dir";
pub const LABEL_CONFIG_FILES: &str = "com.docker.compose.project.config_files";
pub const LABEL_DEPENDS_ON: &str = "com.docker.compose.depends_on";
pub const LABEL_IMAGE: &str = "com.docker.compose.image";
pub const LABEL_VERSION: &str = "com.docker.compose.version";

/// `container_name`, or `project-service-N`.
pub fn container_name(project: &str, service: &Service, number: u32) -> String {
    if service.container_name.is_empty() {
        format!("{project}-{}-{number}", service.name)
    } else {
        service.container_name.clone()
    }
}

/// The name logs and foreground `up` show for a container (compose's
/// `getContainerNameWithoutProject`): `service-N` for a container named
/// `project-service-N`, the full name otherwise (`container_name`, a
/// one-off).
pub fn short_name<'a>(project: &str, service: &str, number: u32, name: &'a str) -> &'a str {
    match name.strip_prefix(project).and_then(|r| r.strip_prefix('-')) {
        Some(rest) if rest == format!("{service}-{number}") => rest,
        _ => name,
    }
}

/// A one-off (`run`) container's name: `project-service-run-<12 hex>`.
pub fn oneoff_name(project: &str, service: &str, id: &str) -> String {
    let short: String = id.chars().take(12).collect();
    format!("{project}-{service}-run-{short}")
}

/// The Compose labels of a service's container (the service's own labels
/// come first, Compose's win).
pub fn container_labels(
    project: &Project,
    service: &Service,
    number: u32,
    oneoff: bool,
    config_hash: &str,
    image_digest: Option<&str>,
) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = service
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let files: Vec<String> = project
        .compose_files
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    // `service:condition:restart`, comma-separated, as Compose writes it.
    let depends_on: Vec<String> = service
        .depends_on
        .iter()
        .map(|(name, d)| format!("{name}:{}:{}", d.condition, d.restart))
        .collect();
    let mut set = |k: &str, v: String| {
        labels.insert(k.to_owned(), v);
    };
    set(LABEL_PROJECT, project.name.clone());
    set(LABEL_SERVICE, service.name.clone());
    set(LABEL_NUMBER, number.to_string());
    set(
        LABEL_ONEOFF,
        if oneoff { "True" } else { "False" }.to_owned(),
    );
    set(LABEL_CONFIG_HASH, config_hash.to_owned());
    set(LABEL_WORKING_DIR, project.working_dir.display().to_string());
    set(LABEL_CONFIG_FILES, files.join(","));
    set(LABEL_DEPENDS_ON, depends_on.join(","));
    set(LABEL_VERSION, env!("CARGO_PKG_VERSION").to_owned());
    if let Some(d) = image_digest {
        set(LABEL_IMAGE, d.to_owned());
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::short_name;

    #[test]
    fn short_names_drop_the_project_of_default_names_only() {
        assert_eq!(short_name("p", "web", 1, "p-web-1"), "web-1");
        assert_eq!(short_name("p", "web", 12, "p-web-12"), "web-12");
        // container_name, and a one-off: shown whole.
        assert_eq!(short_name("p", "web", 1, "p-fixed"), "p-fixed");
        assert_eq!(short_name("p", "web", 1, "custom"), "custom");
        assert_eq!(
            short_name("p", "web", 1, "p-web-run-0123456789ab"),
            "p-web-run-0123456789ab"
        );
        // A project name that is a prefix of another word is not stripped.
        assert_eq!(short_name("p", "web", 1, "pp-web-1"), "pp-web-1");
    }
}
