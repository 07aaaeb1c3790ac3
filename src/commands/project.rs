//! Shared by the verbs that work on a project: global options → settings →
//! the files read → a loaded [`Project`].

use std::io::Read;

use anyhow::{Context, Result};

use crate::model::load::{self, ConfigDetails, ConfigFile, LoadOptions};
use crate::model::project::Project;
use crate::settings::{
    self, ConfigSource, ProcessContext, ProjectArgs, ProjectNameSource, ProjectSettings,
};

/// Resolves the global options against the process environment.
pub fn settings(args: &ProjectArgs) -> Result<ProjectSettings> {
    let process = ProcessContext::current().context("reading the current directory")?;
    Ok(settings::resolve(args, &process, true)?)
}

/// Reads the files the settings name (standard input for `-`).
pub fn details(settings: &ProjectSettings) -> Result<ConfigDetails> {
    let mut files = Vec::with_capacity(settings.config.len());
    for source in &settings.config {
        match source {
            ConfigSource::File(path) => files.push(ConfigFile {
                path: path.clone(),
                content: fs_err::read_to_string(path)?,
            }),
            ConfigSource::Stdin => {
                let mut content = String::new();
                std::io::stdin()
                    .read_to_string(&mut content)
                    .context("reading the compose file from standard input")?;
                files.push(ConfigFile {
                    path: "-".into(),
                    content,
                });
            }
        }
    }
    Ok(ConfigDetails {
        files,
        working_dir: settings.working_dir.clone(),
        environment: settings.environment.clone(),
        explicit_name: match &settings.name {
            ProjectNameSource::Explicit(n) => Some(n.clone()),
            ProjectNameSource::Directory(_) => None,
        },
    })
}

/// Loads the project with every stage on.
pub fn load(args: &ProjectArgs, services: &[String]) -> Result<Project> {
    let settings = settings(args)?;
    let details = details(&settings)?;
    let opts = LoadOptions {
        profiles: settings.profiles.clone(),
        selected_services: services.to_vec(),
        keep_unused_resources: args.all_resources,
        ..LoadOptions::default()
    };
    let mut project = load::load(&details, &opts)?;
    // As compose: the flag, or COMPOSE_COMPATIBILITY from the environment
    // or the project's `.env`.
    project.compatibility = args.compatibility
        || project
            .environment
            .get("COMPOSE_COMPATIBILITY")
            .is_some_and(|v| settings::parse_go_bool(v).unwrap_or(false));
    Ok(project)
}
