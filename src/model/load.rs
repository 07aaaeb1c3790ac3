//! The loader's driver: runs the stages of `model` in Compose's order of work
//! (compose-go `loader.loadYamlFile` / `loadYamlModel` / `ModelToProject`).
//!
//! For each `-f` file, for each YAML document: parse → interpolate →
//! `include` → the document's `!reset`/`!override` marks applied to what came
//! before → `extends` → merge onto the files before it → schema validation.
//! Then, over the merged tree: relative paths made absolute, and
//! normalization into the typed [`Project`] (defaults, profiles,
//! consistency). `extends` and `include` read other files through callbacks
//! implemented here, so the stage modules stay free of I/O.

use std::path::{Path, PathBuf};

use crate::model::canonical;
use crate::model::extends::{self, BoxError, ExtendsContext};
use crate::model::include::{self, IncludeContext, IncludeRequest};
use crate::model::merge::{self, Tags};
use crate::model::node::{Key, Map, Node, Span, Value};
use crate::model::normalize::{self, NormalizeOptions};
use crate::model::paths::{self, PathBase};
use crate::model::project::Project;
use crate::model::{dotenv, interpolate, schema, yaml};
use crate::settings::Environment;

/// One Compose file, read.
#[derive(Clone, Debug)]
pub struct ConfigFile {
    /// Absolute path; for standard input, `<working dir>/-`… shown as `-`.
    pub path: PathBuf,
    pub content: String,
}

/// Which stages run (the `config --no-*` flags turn them off).
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub interpolate: bool,
    pub resolve_paths: bool,
    pub normalize: bool,
    pub consistency: bool,
    pub profiles: Vec<String>,
    pub selected_services: Vec<String>,
    /// Keep `env_file` entries after their content was merged into
    /// `environment` (`config --no-env-resolution`).
    pub keep_env_files: bool,
    /// Keep top-level resources no service uses (`--all-resources`).
    pub keep_unused_resources: bool,
}

impl Default for LoadOptions {
    fn default() -> LoadOptions {
        LoadOptions {
            interpolate: true,
            resolve_paths: true,
            normalize: true,
            consistency: true,
            profiles: Vec::new(),
            selected_services: Vec::new(),
            keep_env_files: false,
            keep_unused_resources: false,
        }
    }
}

/// What the loader works from: the files, the project directory, the
/// interpolation environment and the project name's source.
#[derive(Clone, Debug)]
pub struct ConfigDetails {
    pub files: Vec<ConfigFile>,
    pub working_dir: PathBuf,
    pub environment: Environment,
    /// `-p` / `COMPOSE_PROJECT_NAME`, already validated.
    pub explicit_name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no compose file specified")]
    NoFile,
    #[error(transparent)]
    Yaml(#[from] yaml::YamlError),
    #[error(transparent)]
    Interpolate(#[from] interpolate::InterpolateError),
    #[error("invalid interpolation format for name: {0}")]
    Template(#[from] interpolate::TemplateError),
    #[error("{0}: top-level object must be a mapping")]
    NotAMapping(Span),
    #[error(transparent)]
    Include(#[from] include::IncludeError),
    #[error(transparent)]
    Extends(#[from] extends::ExtendsError),
    #[error(transparent)]
    Merge(#[from] merge::MergeError),
    #[error("validating {}: {source}", file.display())]
    Schema {
        file: PathBuf,
        #[source]
        source: schema::SchemaError,
    },
    #[error(transparent)]
    Paths(#[from] paths::PathsError),
    #[error(transparent)]
    Normalize(#[from] normalize::NormalizeError),
    #[error("empty compose file")]
    Empty,
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    EnvFile(dotenv::DotenvError),
}

/// Loads and normalizes a project.
pub fn load(details: &ConfigDetails, opts: &LoadOptions) -> Result<Project, LoadError> {
    let (name, tree, env) = load_tree(details, opts)?;
    let project = normalize::normalize(
        tree,
        &NormalizeOptions {
            project_name: name,
            working_dir: details.working_dir.clone(),
            compose_files: details.files.iter().map(|f| f.path.clone()).collect(),
            environment: env.into_iter().collect(),
            profiles: opts.profiles.clone(),
            selected_services: opts.selected_services.clone(),
            skip_consistency: !opts.consistency,
            keep_env_files: opts.keep_env_files,
            keep_unused_resources: opts.keep_unused_resources,
            ..NormalizeOptions::default()
        },
    )?;
    Ok(project)
}

/// The merged, validated tree before normalization (for `config
/// --no-normalize` / `--no-interpolate`), with the project name set.
pub fn load_model(details: &ConfigDetails, opts: &LoadOptions) -> Result<Node, LoadError> {
    let (name, mut tree, _) = load_tree(details, opts)?;
    if opts.normalize {
        if let Some(m) = tree.as_map_mut() {
            m.insert(
                crate::model::node::Key::new("name", Span::synthetic("<project>")),
                Node::new(Value::String(name), Span::synthetic("<project>")),
            );
        }
    }
    Ok(tree)
}

/// The project name as Compose picks it: explicit, else the files' `name:`
/// (interpolated, normalized), else the project directory's base name.
pub fn project_name(details: &ConfigDetails, opts: &LoadOptions) -> Result<String, LoadError> {
    let parsed = parse_files(&details.files);
    name_from_docs(details, opts, &parsed)
}

/// Each file's documents (or why it does not parse), parsed once for both
/// the project name and the load.
fn parse_files(files: &[ConfigFile]) -> Vec<Result<Vec<Node>, yaml::YamlError>> {
    files
        .iter()
        .map(|f| yaml::parse(&f.content, &f.path))
        .collect()
}

fn name_from_docs(
    details: &ConfigDetails,
    opts: &LoadOptions,
    parsed: &[Result<Vec<Node>, yaml::YamlError>],
) -> Result<String, LoadError> {
    let mut from_files: Option<String> = None;
    // A file that does not parse is reported by the real load.
    for docs in parsed.iter().flatten() {
        for d in docs {
            if let Some(n) = d
                .get("name")
                .and_then(Node::as_str)
                .filter(|n| !n.is_empty())
            {
                from_files = Some(n.to_owned());
            }
        }
    }
    if let (Some(n), true) = (&from_files, opts.interpolate) {
        let env = &details.environment;
        let lookup = |k: &str| env.get(k).cloned();
        from_files = Some(interpolate::substitute(n, &lookup)?);
    }
    let base = details
        .working_dir
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(normalize::resolve_project_name(
        details.explicit_name.as_deref(),
        from_files.as_deref(),
        &base,
    )?)
}

fn load_tree(
    details: &ConfigDetails,
    opts: &LoadOptions,
) -> Result<(String, Node, Environment), LoadError> {
    if details.files.is_empty() {
        return Err(LoadError::NoFile);
    }
    let parsed = parse_files(&details.files);
    let name = name_from_docs(details, opts, &parsed)?;
    let mut env = details.environment.clone();
    env.insert("COMPOSE_PROJECT_NAME".into(), name.clone());
    let home = env.get("HOME").map(PathBuf::from);
    let mut ctx = Ctx {
        opts,
        home: home.as_deref(),
    };
    let tree = ctx.load_parsed(&details.files, parsed, &details.working_dir, &env, &[])?;
    match &tree.value {
        Value::Map(m) if !m.is_empty() => {}
        _ => return Err(LoadError::Empty),
    }
    Ok((name, tree, env))
}

struct Ctx<'a> {
    opts: &'a LoadOptions,
    home: Option<&'a Path>,
}

impl Ctx<'_> {
    /// compose-go's `loadYamlModel`: the files merged in order, then paths
    /// resolved against `working_dir`.
    fn load_files(
        &mut self,
        files: &[ConfigFile],
        working_dir: &Path,
        env: &Environment,
        chain: &[PathBuf],
    ) -> Result<Node, LoadError> {
        let parsed = parse_files(files);
        self.load_parsed(files, parsed, working_dir, env, chain)
    }

    /// `load_files` of files parsed already.
    fn load_parsed(
        &mut self,
        files: &[ConfigFile],
        parsed: Vec<Result<Vec<Node>, yaml::YamlError>>,
        working_dir: &Path,
        env: &Environment,
        chain: &[PathBuf],
    ) -> Result<Node, LoadError> {
        let mut dict = Node::new(Value::Map(Map::new()), Span::synthetic("<project>"));
        for (file, docs) in files.iter().zip(parsed) {
            dict = self.load_file(file, docs?, dict, working_dir, env, chain)?;
        }
        if self.opts.resolve_paths {
            paths::resolve_relative_paths(
                &mut dict,
                PathBase {
                    working_dir,
                    home: self.home,
                },
            )?;
        }
        Ok(dict)
    }

    /// compose-go's `loadYamlFile`: each document of one file onto `dict`.
    fn load_file(
        &mut self,
        file: &ConfigFile,
        docs: Vec<Node>,
        mut dict: Node,
        working_dir: &Path,
        env: &Environment,
        chain: &[PathBuf],
    ) -> Result<Node, LoadError> {
        for mut doc in docs {
            if matches!(doc.value, Value::Null) {
                continue;
            }
            // The marks come out before any stage changes the document, as
            // compose-go's reset processor removes them while decoding.
            let tags = Tags::take(&mut doc);
            if doc.as_map().is_none() {
                return Err(LoadError::NotAMapping(doc.span.clone()));
            }
            if self.opts.interpolate {
                let lookup = |k: &str| env.get(k).cloned();
                interpolate::interpolate(&mut doc, &lookup)?;
            }

            // docker compose 2.40.3 (compose-go v2.9.1) resolves `extends`
            // first, then applies the marks, then `include`.
            {
                let interpolate_on = self.opts.interpolate;
                let mut loader = |path: &Path| -> Result<Vec<Node>, BoxError> {
                    read_documents(path, env, interpolate_on).map_err(|e| Box::new(e) as BoxError)
                };
                extends::apply_extends(
                    &mut doc,
                    &tags,
                    ExtendsContext {
                        file: &file.path,
                        working_dir,
                        home: self.home,
                    },
                    &mut loader,
                )?;
            }
            tags.apply(&mut dict);
            {
                let home = self.home;
                let mut loader = |req: &IncludeRequest| -> Result<Node, BoxError> {
                    self.load_included(req, env)
                        .map_err(|e| Box::new(e) as BoxError)
                };
                include::apply_include(
                    &mut doc,
                    IncludeContext {
                        file: &file.path,
                        working_dir,
                        chain,
                        home,
                    },
                    &mut loader,
                )?;
            }

            dict = merge::merge(dict, doc)?;
            schema::validate(&dict).map_err(|source| LoadError::Schema {
                file: file.path.clone(),
                source,
            })?;
            if let Some(m) = dict.as_map_mut() {
                if m.shift_remove("version").is_some() {
                    tracing::warn!(
                        "{}: the attribute `version` is obsolete, it will be ignored, please remove it to avoid potential confusion",
                        file.path.display()
                    );
                }
            }
            // Long syntax can reveal duplicates (a port range against an
            // override), so de-duplicate again once canonical.
            canonical::canonicalize(&mut dict)?;
            dict = merge::enforce_unicity(dict)?;
        }
        Ok(dict)
    }

    /// An `include` entry: a sub-project with its own directory and
    /// environment, not normalized.
    fn load_included(
        &mut self,
        req: &IncludeRequest,
        env: &Environment,
    ) -> Result<Node, LoadError> {
        let mut sub_env = env.clone();
        let from_files = read_env_files(env, &req.env_files)?;
        for (k, v) in from_files {
            sub_env.entry(k).or_insert(v);
        }
        let files = req
            .files
            .iter()
            .map(|p| {
                let content = fs_err::read_to_string(p);
                crate::model::inputs::note_read(p, content.as_ref().ok().map(|c| c.as_bytes()));
                Ok(ConfigFile {
                    path: p.clone(),
                    content: content.map_err(|e| LoadError::Read {
                        path: p.clone(),
                        source: e,
                    })?,
                })
            })
            .collect::<Result<Vec<_>, LoadError>>()?;
        let mut sub = Ctx {
            opts: &LoadOptions {
                resolve_paths: true,
                ..self.opts.clone()
            },
            home: self.home,
        };
        let mut node = sub.load_files(&files, &req.project_directory, &sub_env, &req.chain)?;
        resolve_file_object_environment(&mut node, &sub_env);
        Ok(node)
    }
}

/// The extension key that carries a secret's or config's value taken from
/// the environment of the project that declared it (compose-go's `x-#value`
/// for secrets, whose schema has no `content`). `normalize` moves it to
/// `content`. compose-go writes a config's value straight into `content`,
/// which its own validation of the including project then refuses
/// (`file|environment|content attributes are mutually exclusive`); berth
/// keeps it aside for configs too, so such an include works.
pub const SECRET_VALUE_KEY: &str = "x-#value";

/// Secrets and configs sourced from `environment:` take their value from the
/// environment of the (sub-)project that declares them, as compose-go's
/// `ResolveEnvironment` does for every loaded model: an included file's
/// secret sees its include's `env_file`, not only the including project's.
fn resolve_file_object_environment(doc: &mut Node, env: &Environment) {
    let Some(root) = doc.as_map_mut() else {
        return;
    };
    for section in ["secrets", "configs"] {
        let Some(objects) = root.get_mut(section).and_then(Node::as_map_mut) else {
            continue;
        };
        for object in objects.values_mut() {
            let Some(var) = object.get("environment").and_then(Node::as_str) else {
                continue;
            };
            let Some(value) = env.get(var).cloned() else {
                continue;
            };
            let span = object.span.clone();
            if let Some(m) = object.as_map_mut() {
                m.insert(
                    Key::new(SECRET_VALUE_KEY, span.clone()),
                    Node::new(Value::String(value), span),
                );
            }
        }
    }
}

/// The documents of a file `extends` points at, parsed and interpolated, tags
/// kept.
fn read_documents(
    path: &Path,
    env: &Environment,
    interpolate_on: bool,
) -> Result<Vec<Node>, LoadError> {
    let text = fs_err::read_to_string(path);
    crate::model::inputs::note_read(path, text.as_ref().ok().map(|t| t.as_bytes()));
    let text = text.map_err(|e| LoadError::Read {
        path: path.to_owned(),
        source: e,
    })?;
    let mut docs = yaml::parse(&text, path)?;
    if interpolate_on {
        let lookup = |k: &str| env.get(k).cloned();
        for d in &mut docs {
            interpolate::interpolate(d, &lookup)?;
        }
    }
    Ok(docs)
}

/// Env files in order, each seeing `current` and the files before it.
pub fn read_env_files(current: &Environment, files: &[PathBuf]) -> Result<Environment, LoadError> {
    dotenv::read_files(files, &|k: &str| current.get(k).cloned()).map_err(LoadError::EnvFile)
}
