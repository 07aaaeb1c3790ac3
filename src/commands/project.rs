//! Shared by the verbs that work on a project: global options → settings →
//! the files read → a loaded [`Project`].

use std::io::Read;

use anyhow::{Context, Result};

use crate::engine::naming::LABEL_DEPENDS_ON;
use crate::engine::state::{self as engine_state, Paths};
use crate::model::cache::Outline;
use crate::model::load::{ConfigDetails, ConfigFile, LoadOptions};
use crate::model::project::{Network, Project, Service, ServiceDependency};
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
    load_from(args, &settings(args)?, services)
}

/// [`load`] with the settings resolved already.
fn load_from(
    args: &ProjectArgs,
    settings: &ProjectSettings,
    services: &[String],
) -> Result<Project> {
    let (details, opts, cache) = load_inputs(args, settings, services)?;
    let mut project = crate::model::cache::load(&details, &opts, &cache)?;
    // As compose: the flag, or COMPOSE_COMPATIBILITY from the environment
    // or the project's `.env`.
    project.compatibility = args.compatibility
        || project
            .environment
            .get("COMPOSE_COMPATIBILITY")
            .is_some_and(|v| settings::parse_go_bool(v).unwrap_or(false));
    Ok(project)
}

/// What a load starts from: the files, the options, the cache directory.
fn load_inputs(
    args: &ProjectArgs,
    settings: &ProjectSettings,
    services: &[String],
) -> Result<(ConfigDetails, LoadOptions, std::path::PathBuf)> {
    let opts = LoadOptions {
        profiles: settings.profiles.clone(),
        selected_services: services.to_vec(),
        keep_unused_resources: args.all_resources,
        ..LoadOptions::default()
    };
    let cache = Paths::from_env().run.join("cache").join("load");
    Ok((details(settings)?, opts, cache))
}

/// The project of a verb that acts on existing containers (`ps`, `down`,
/// `logs`, `start`, `stop`, `restart`, `kill`, `rm`): the compose file's
/// when one is in reach, else — given a project name (`-p` or
/// `COMPOSE_PROJECT_NAME`) — the project its containers' records and labels
/// describe, as docker compose's `projectOrName` does.
pub fn load_or_name(args: &ProjectArgs, services: &[String]) -> Result<Project> {
    match found_or_name(args)? {
        Found::Name(paths, name, dir) => from_containers(&paths, &name, &dir),
        Found::Files(found) => load_from(args, &found, services),
    }
}

/// [`load_or_name`]'s project in outline, for `ps`: from a compose file
/// the load cache answers it without decoding a service.
pub fn outline_or_name(args: &ProjectArgs) -> Result<Outline> {
    match found_or_name(args)? {
        Found::Name(paths, name, dir) => Ok(Outline::of(&from_containers(&paths, &name, &dir)?)),
        Found::Files(found) => {
            let (details, opts, cache) = load_inputs(args, &found, &[])?;
            Ok(crate::model::cache::outline(&details, &opts, &cache)?)
        }
    }
}

/// Where [`load_or_name`] takes a project from.
enum Found {
    /// Compose files, with the settings `load` would resolve.
    Files(ProjectSettings),
    /// No file, and an explicit name: the containers'.
    Name(Paths, String, std::path::PathBuf),
}

fn found_or_name(args: &ProjectArgs) -> Result<Found> {
    let process = ProcessContext::current().context("reading the current directory")?;
    let found = settings::resolve(args, &process, false)?;
    match (&found.name, found.config.is_empty()) {
        (ProjectNameSource::Explicit(name), true) => Ok(Found::Name(
            Paths::from_env(),
            name.clone(),
            found.working_dir.clone(),
        )),
        // No file and no name: the error `settings` gives (no compose file).
        (_, true) => {
            settings(args)?;
            unreachable!("settings fails when no compose file is found")
        }
        (_, false) => Ok(Found::Files(found)),
    }
}

/// A project rebuilt from its containers alone: one service per service
/// label (its image, and its `depends_on` from the
/// `com.docker.compose.depends_on` label so stops and starts keep their
/// order), and the networks labelled with the project's name. Named volumes
/// carry no project label in berth, so `down -v` by name removes only the
/// containers' anonymous volumes.
pub fn from_containers(
    paths: &Paths,
    name: &str,
    working_dir: &std::path::Path,
) -> Result<Project> {
    let mut project = Project {
        name: name.to_owned(),
        working_dir: working_dir.to_owned(),
        ..Project::default()
    };
    for c in engine_state::project_containers(paths, name)? {
        let service = project
            .services
            .entry(c.service.clone())
            .or_insert_with(|| Service {
                name: c.service.clone(),
                image: c.image.clone(),
                ..Service::default()
            });
        for dep in c.label(LABEL_DEPENDS_ON).split(',') {
            let mut parts = dep.splitn(3, ':');
            let (Some(target), condition) = (parts.next().filter(|t| !t.is_empty()), parts.next())
            else {
                continue;
            };
            service
                .depends_on
                .entry(target.to_owned())
                .or_insert_with(|| ServiceDependency {
                    condition: condition.unwrap_or_default().to_owned(),
                    restart: parts.next() == Some("true"),
                    required: true,
                });
        }
    }
    let networks = crate::engine::net::networks(paths)
        .list()
        .context("listing networks")?;
    for n in networks {
        if n.labels
            .get("com.docker.compose.project")
            .map(String::as_str)
            != Some(name)
        {
            continue;
        }
        let key = n
            .labels
            .get("com.docker.compose.network")
            .cloned()
            .unwrap_or_else(|| n.name.clone());
        project.networks.insert(
            key,
            Network {
                name: n.name.clone(),
                ..Network::default()
            },
        );
    }
    Ok(project)
}
