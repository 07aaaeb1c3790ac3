//! Command line and environment (`COMPOSE_*`) resolved into typed settings.
//!
//! This follows Docker Compose's order of resolution exactly (its
//! `toProjectOptions`): the process environment always wins; `--env-file`
//! files (or `COMPOSE_ENV_FILES`, or the `.env` of the working directory) add
//! what it lacks; `COMPOSE_FILE` may come from either; with no file named, the
//! default names are searched upward from the working directory; once the
//! files are known the `.env` of the project directory is read again; then the
//! profiles and the project name are settled. Nothing here parses a Compose
//! file beyond reading it.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use thiserror::Error;

use crate::cli::{ConfigArgs, ConfigFormat, GlobalArgs};
use crate::commands::config::{ConfigOutput, Format, Stages};
use crate::model::dotenv;

/// The names searched for when no file is given, in order of preference.
pub const DEFAULT_FILE_NAMES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];

/// The override files read after the default file, in order of preference.
pub const DEFAULT_OVERRIDE_FILE_NAMES: [&str; 4] = [
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
];

/// The environment used for interpolation, in insertion order.
pub type Environment = IndexMap<String, String>;

/// Where a Compose file comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// A file, by absolute path.
    File(PathBuf),
    /// Standard input (`-f -`).
    Stdin,
}

impl ConfigSource {
    pub fn display_name(&self) -> String {
        match self {
            ConfigSource::File(p) => p.display().to_string(),
            ConfigSource::Stdin => "-".to_owned(),
        }
    }
}

/// How the project got its name; Compose lets an explicit name win over the
/// `name:` of the files, and the files' name win over the directory's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProjectNameSource {
    /// `-p NAME` or `COMPOSE_PROJECT_NAME`: validated, used as is.
    Explicit(String),
    /// No explicit name: the loader takes the files' `name:` if any, else this
    /// (the working directory's base name, normalized).
    Directory(String),
}

/// What the project-wide options resolve to, before any file is parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectSettings {
    pub config: Vec<ConfigSource>,
    /// The project directory: `--project-directory`, else the directory of the
    /// first file, else the current directory.
    pub working_dir: PathBuf,
    pub environment: Environment,
    pub profiles: Vec<String>,
    pub name: ProjectNameSource,
}

/// What the user asked for, before resolution: the global flags.
#[derive(Clone, Debug, Default)]
pub struct ProjectArgs {
    pub files: Vec<PathBuf>,
    pub project_name: Option<String>,
    pub project_directory: Option<PathBuf>,
    pub env_files: Vec<PathBuf>,
    pub profiles: Vec<String>,
    /// `--compatibility`: container names joined with `_` (Compose v1).
    pub compatibility: bool,
    /// `--all-resources`: keep networks and volumes no service uses.
    pub all_resources: bool,
    /// `--progress quiet` (or `COMPOSE_PROGRESS=quiet`): no progress lines.
    pub quiet_progress: bool,
}

impl From<&GlobalArgs> for ProjectArgs {
    fn from(g: &GlobalArgs) -> ProjectArgs {
        // Exhaustive, so a new global flag cannot be forgotten here.
        let GlobalArgs {
            files,
            project_name,
            project_directory,
            env_files,
            profiles,
            dry_run: _,
            ansi: _,
            progress,
            compatibility,
            all_resources,
            verbose: _,
        } = g;
        ProjectArgs {
            files: files.clone(),
            project_name: project_name.clone(),
            project_directory: project_directory.clone(),
            env_files: env_files.clone(),
            profiles: profiles.clone(),
            compatibility: *compatibility,
            all_resources: *all_resources,
            quiet_progress: *progress == crate::cli::Progress::Quiet,
        }
    }
}

/// `config`'s flags as what to print and which loader stages run.
pub fn config_settings(args: ConfigArgs) -> (Vec<String>, ConfigOutput, Stages) {
    let ConfigArgs {
        services,
        format,
        output,
        quiet,
        list_services,
        list_volumes,
        list_networks,
        list_images,
        list_profiles,
        hash,
        variables,
        environment,
        no_interpolate,
        no_normalize,
        no_path_resolution,
        no_consistency,
        no_env_resolution,
    } = args;
    let format_of = |f: ConfigFormat| match f {
        ConfigFormat::Yaml => Format::Yaml,
        ConfigFormat::Json => Format::Json,
    };
    // The same precedence as Compose's `config` when several are given.
    let what = if list_services {
        ConfigOutput::Services
    } else if list_volumes {
        ConfigOutput::Volumes
    } else if list_networks {
        ConfigOutput::Networks
    } else if let Some(h) = hash {
        ConfigOutput::Hash(h)
    } else if list_profiles {
        ConfigOutput::Profiles
    } else if list_images {
        ConfigOutput::Images
    } else if variables {
        ConfigOutput::Variables {
            format: format.map(format_of),
        }
    } else if environment {
        ConfigOutput::Environment
    } else {
        ConfigOutput::Model {
            format: format.map_or(Format::Yaml, format_of),
            output,
            quiet,
        }
    };
    let stages = Stages {
        no_interpolate,
        no_normalize,
        no_path_resolution,
        no_consistency,
        no_env_resolution,
    };
    (services, what, stages)
}

/// The process context settings are resolved in; injected so tests need not
/// change the real process environment or directory.
#[derive(Clone, Debug)]
pub struct ProcessContext {
    pub cwd: PathBuf,
    pub env: Environment,
}

impl ProcessContext {
    pub fn current() -> std::io::Result<ProcessContext> {
        Ok(ProcessContext {
            cwd: std::env::current_dir()?,
            env: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        })
    }
}

#[derive(Debug, Error)]
pub enum SettingsError {
    #[error("invalid project name {0:?}: must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as start with a letter or number")]
    InvalidProjectName(String),
    #[error("{}: {source}", path.display())]
    ComposeFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    EnvFile(#[from] dotenv::DotenvError),
    #[error("invalid boolean {value:?} in {name}")]
    InvalidBool { name: &'static str, value: String },
    #[error(
        "no configuration file provided: not found (looked for {} in {} and its parents)",
        DEFAULT_FILE_NAMES.join(", "),
        .0.display()
    )]
    NoConfigFile(PathBuf),
}

/// Resolves the global options and the environment into [`ProjectSettings`].
///
/// `require_files`: verbs that can work from the project name alone (`ps -p`,
/// `down -p`) pass `false` and get an empty `config` instead of an error.
pub fn resolve(
    args: &ProjectArgs,
    process: &ProcessContext,
    require_files: bool,
) -> Result<ProjectSettings, SettingsError> {
    let explicit_dir = args
        .project_directory
        .as_ref()
        .map(|d| absolute(&process.cwd, d));

    // The process environment always wins.
    let mut environment = process.env.clone();
    if !environment.contains_key("PWD") {
        environment.insert("PWD".into(), process.cwd.display().to_string());
    }

    let mut config: Vec<ConfigSource> = args
        .files
        .iter()
        .map(|f| {
            if f.as_os_str() == "-" {
                ConfigSource::Stdin
            } else {
                ConfigSource::File(absolute(&process.cwd, f))
            }
        })
        .collect();

    let explicit_env_files: Vec<PathBuf> = if args.env_files.is_empty() {
        process
            .env
            .get("COMPOSE_ENV_FILES")
            .map(|v| {
                v.split(',')
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default()
    } else {
        args.env_files.clone()
    };

    let disable_dot_env = match process.env.get("COMPOSE_DISABLE_ENV_FILE") {
        Some(v) => parse_go_bool(v).ok_or_else(|| SettingsError::InvalidBool {
            name: "COMPOSE_DISABLE_ENV_FILE",
            value: v.clone(),
        })?,
        None => false,
    };

    // First pass: the .env of the working directory as known so far.
    let wd = working_dir(explicit_dir.as_deref(), &config, &process.cwd);
    let files = env_files(&explicit_env_files, &wd, &process.cwd, disable_dot_env);
    let from_files = read_env_files(&environment, &files)?;
    merge_missing(&mut environment, from_files);

    // COMPOSE_FILE, which the .env may have set.
    if config.is_empty() {
        if let Some(list) = environment.get("COMPOSE_FILE") {
            let sep = environment
                .get("COMPOSE_PATH_SEPARATOR")
                .filter(|s| !s.is_empty())
                .cloned()
                .unwrap_or_else(|| ":".to_owned());
            for f in list.split(sep.as_str()) {
                if f == "-" {
                    config.push(ConfigSource::Stdin);
                    continue;
                }
                let path = absolute(&process.cwd, Path::new(f));
                std::fs::metadata(&path).map_err(|e| SettingsError::ComposeFile {
                    path: path.clone(),
                    source: e,
                })?;
                config.push(ConfigSource::File(path));
            }
        }
    }

    // The default names, searched upward.
    if config.is_empty() {
        let start = wd.clone();
        match find_default_files(&start) {
            Some(found) => config.extend(found.into_iter().map(ConfigSource::File)),
            None if require_files => return Err(SettingsError::NoConfigFile(start)),
            None => {}
        }
    }

    // Second pass: the project directory may now differ.
    let wd = working_dir(explicit_dir.as_deref(), &config, &process.cwd);
    let files = env_files(&explicit_env_files, &wd, &process.cwd, disable_dot_env);
    let from_files = read_env_files(&environment, &files)?;
    merge_missing(&mut environment, from_files);

    let profiles = if args.profiles.is_empty() {
        environment
            .get("COMPOSE_PROFILES")
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    } else {
        args.profiles.clone()
    };

    let name = match &args.project_name {
        Some(n) => {
            if normalize_project_name(n) != *n || n.is_empty() {
                return Err(SettingsError::InvalidProjectName(n.clone()));
            }
            ProjectNameSource::Explicit(n.clone())
        }
        None => match environment
            .get("COMPOSE_PROJECT_NAME")
            .filter(|n| !n.is_empty())
        {
            Some(n) => {
                if normalize_project_name(n) != *n {
                    return Err(SettingsError::InvalidProjectName(n.clone()));
                }
                ProjectNameSource::Explicit(n.clone())
            }
            None => {
                let base = wd
                    .file_name()
                    .map(|b| b.to_string_lossy().into_owned())
                    .unwrap_or_default();
                ProjectNameSource::Directory(normalize_project_name(&base))
            }
        },
    };

    Ok(ProjectSettings {
        config,
        working_dir: wd,
        environment,
        profiles,
        name,
    })
}

pub use crate::model::normalize::normalize_project_name;

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn absolute(cwd: &Path, p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    };
    clean(&joined)
}

/// Lexical clean of `.` and `..` components, as Go's `filepath.Abs` does
/// (no symlink resolution).
pub fn clean(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

fn working_dir(explicit: Option<&Path>, config: &[ConfigSource], cwd: &Path) -> PathBuf {
    if let Some(d) = explicit {
        return d.to_path_buf();
    }
    for c in config {
        if let ConfigSource::File(p) = c {
            if let Some(parent) = p.parent() {
                return parent.to_path_buf();
            }
        }
    }
    cwd.to_path_buf()
}

fn env_files(explicit: &[PathBuf], wd: &Path, cwd: &Path, disabled: bool) -> Vec<PathBuf> {
    if !explicit.is_empty() {
        return explicit.iter().map(|f| absolute(cwd, f)).collect();
    }
    if disabled {
        return Vec::new();
    }
    let dot = wd.join(".env");
    match std::fs::metadata(&dot) {
        Ok(m) if !m.is_dir() => vec![dot],
        _ => Vec::new(),
    }
}

/// Reads env files in order; a later file overrides an earlier one, and a
/// value may refer to `current` or to what earlier lines and files set.
fn read_env_files(current: &Environment, files: &[PathBuf]) -> Result<Environment, SettingsError> {
    Ok(dotenv::read_files(files, &|k: &str| {
        current.get(k).cloned()
    })?)
}

/// Adds what `env` lacks; never overrides (Compose's `Mapping.Merge`).
fn merge_missing(env: &mut Environment, from: Environment) {
    for (k, v) in from {
        env.entry(k).or_insert(v);
    }
}

/// The first default file in `dir` or the nearest parent that has one, plus
/// the override file next to it.
fn find_default_files(dir: &Path) -> Option<Vec<PathBuf>> {
    let mut dir = dir.to_path_buf();
    loop {
        let found: Vec<PathBuf> = DEFAULT_FILE_NAMES
            .iter()
            .map(|n| dir.join(n))
            .filter(|p| p.exists())
            .collect();
        if let Some(winner) = found.first() {
            if found.len() > 1 {
                tracing::warn!(
                    "Found multiple config files with supported names: {}; using {}",
                    join_paths(&found),
                    winner.display()
                );
            }
            let mut files = vec![winner.clone()];
            let overrides: Vec<PathBuf> = DEFAULT_OVERRIDE_FILE_NAMES
                .iter()
                .map(|n| dir.join(n))
                .filter(|p| p.exists())
                .collect();
            if let Some(o) = overrides.first() {
                if overrides.len() > 1 {
                    tracing::warn!(
                        "Found multiple override files with supported names: {}; using {}",
                        join_paths(&overrides),
                        o.display()
                    );
                }
                files.push(o.clone());
            }
            return Some(files);
        }
        if !dir.pop() {
            return None;
        }
    }
}

fn join_paths(p: &[PathBuf]) -> String {
    p.iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(cwd: &Path, env: &[(&str, &str)]) -> ProcessContext {
        ProcessContext {
            cwd: cwd.to_path_buf(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn project_name_is_normalized_like_compose() {
        assert_eq!(normalize_project_name("My_Project.v2"), "my_projectv2");
        assert_eq!(normalize_project_name("--_abc"), "abc");
        assert_eq!(normalize_project_name("Ünïcode"), "ncode");
    }

    #[test]
    fn finds_default_file_upward_with_its_override() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("My App");
        let sub = root.join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(root.join("docker-compose.yml"), "services: {}\n").unwrap();
        std::fs::write(root.join("compose.override.yaml"), "services: {}\n").unwrap();
        let s = resolve(&ProjectArgs::default(), &ctx(&sub, &[]), true).unwrap();
        assert_eq!(
            s.config,
            vec![
                ConfigSource::File(root.join("docker-compose.yml")),
                ConfigSource::File(root.join("compose.override.yaml")),
            ]
        );
        assert_eq!(s.working_dir, root);
        assert_eq!(s.name, ProjectNameSource::Directory("myapp".into()));
    }

    #[test]
    fn no_file_is_an_error_naming_the_search() {
        let tmp = tempfile::tempdir().unwrap();
        let err = resolve(&ProjectArgs::default(), &ctx(tmp.path(), &[]), true).unwrap_err();
        assert!(err.to_string().contains("compose.yaml"), "{err}");
        let ok = resolve(&ProjectArgs::default(), &ctx(tmp.path(), &[]), false).unwrap();
        assert!(ok.config.is_empty());
    }

    #[test]
    fn process_env_wins_over_dot_env_and_dot_env_sets_compose_vars() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(d.join("other.yaml"), "services: {}\n").unwrap();
        std::fs::write(
            d.join(".env"),
            "COMPOSE_FILE=other.yaml\nCOMPOSE_PROFILES=a, b\nFOO=from-dotenv\nBAR=${FOO}-x\nCOMPOSE_PROJECT_NAME=fromenv\n",
        )
        .unwrap();
        let s = resolve(
            &ProjectArgs::default(),
            &ctx(d, &[("FOO", "from-process")]),
            true,
        )
        .unwrap();
        assert_eq!(s.config, vec![ConfigSource::File(d.join("other.yaml"))]);
        assert_eq!(s.environment["FOO"], "from-process");
        assert_eq!(s.environment["BAR"], "from-process-x");
        assert_eq!(s.profiles, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(s.name, ProjectNameSource::Explicit("fromenv".into()));
    }

    #[test]
    fn explicit_env_files_replace_dot_env_and_later_files_win() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(d.join("compose.yaml"), "services: {}\n").unwrap();
        std::fs::write(d.join(".env"), "A=dot\n").unwrap();
        std::fs::write(d.join("one.env"), "A=one\nB=one\n").unwrap();
        std::fs::write(d.join("two.env"), "B=two\n").unwrap();
        let args = ProjectArgs {
            env_files: vec!["one.env".into(), "two.env".into()],
            ..Default::default()
        };
        let s = resolve(&args, &ctx(d, &[]), true).unwrap();
        assert_eq!(s.environment["A"], "one");
        assert_eq!(s.environment["B"], "two");

        let args = ProjectArgs {
            env_files: vec!["missing.env".into()],
            ..Default::default()
        };
        let err = resolve(&args, &ctx(d, &[]), true).unwrap_err();
        assert!(err.to_string().contains("couldn't find env file"), "{err}");
    }

    #[test]
    fn invalid_explicit_name_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("compose.yaml"), "services: {}\n").unwrap();
        let args = ProjectArgs {
            project_name: Some("Bad Name".into()),
            ..Default::default()
        };
        let err = resolve(&args, &ctx(tmp.path(), &[]), true).unwrap_err();
        assert!(matches!(err, SettingsError::InvalidProjectName(_)));
    }

    #[test]
    fn compose_file_honours_path_separator_and_disable_env_file() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(d.join("a.yaml"), "services: {}\n").unwrap();
        std::fs::write(d.join("b.yaml"), "services: {}\n").unwrap();
        std::fs::write(d.join(".env"), "X=1\n").unwrap();
        let s = resolve(
            &ProjectArgs::default(),
            &ctx(
                d,
                &[
                    ("COMPOSE_FILE", "a.yaml;b.yaml"),
                    ("COMPOSE_PATH_SEPARATOR", ";"),
                    ("COMPOSE_DISABLE_ENV_FILE", "true"),
                ],
            ),
            true,
        )
        .unwrap();
        assert_eq!(s.config.len(), 2);
        assert!(!s.environment.contains_key("X"));
    }
}
