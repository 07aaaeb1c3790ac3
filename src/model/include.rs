//! `include`: other Compose projects brought into this one.
//!
//! Each entry (`- path.yaml`, or `{path, project_directory, env_file}` with
//! `path` a string or a list whose later files override the first) is loaded
//! as a project of its own: its own project directory (by default the first
//! file's directory; paths in it are relative to that), its own environment
//! (the including project's, plus its `env_file`s, by default the `.env`
//! of its project directory when there is one). Its services, networks,
//! volumes, secrets, configs and models are then added to the including
//! file; a name the including file defines too is an error unless both
//! definitions are identical (docker compose v2.40: "services.web conflicts
//! with imported resource"). A file that includes itself, directly or not,
//! is refused with the chain.
//!
//! Loading the sub-project (parse, interpolate, extends, nested include,
//! merge, validate, resolve paths) is the loader's job, asked through
//! [`IncludeLoader`]; this module decides what to load, with which
//! directory and environment files, and how the result joins the project.

use std::path::{Path, PathBuf};

use crate::model::extends::BoxError;
use crate::model::node::{Key, Map, Node, Span, Value};
use crate::model::paths;

/// What one `include` entry asks to load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncludeRequest {
    /// The Compose files, absolute; later ones override the first, as `-f`.
    pub files: Vec<PathBuf>,
    /// The sub-project's directory, absolute: relative paths in its files
    /// resolve against it.
    pub project_directory: PathBuf,
    /// Environment files to read on top of the including project's
    /// environment, absolute, in order (`/dev/null` entries dropped).
    pub env_files: Vec<PathBuf>,
    /// The files being loaded, outermost first, ending with the including
    /// file: pass it on so a nested `include` can detect a cycle.
    pub chain: Vec<PathBuf>,
}

/// Loads an included project.
pub trait IncludeLoader {
    /// The model of the project `request` describes: its files parsed,
    /// interpolated with the including project's environment plus
    /// `request.env_files`, with their own `extends` and `include` applied
    /// (`request.chain` as the include chain), merged, validated and with
    /// relative paths resolved against `request.project_directory`.
    fn load_project(&mut self, request: &IncludeRequest) -> Result<Node, BoxError>;
}

impl<F> IncludeLoader for F
where
    F: FnMut(&IncludeRequest) -> Result<Node, BoxError>,
{
    fn load_project(&mut self, request: &IncludeRequest) -> Result<Node, BoxError> {
        self(request)
    }
}

/// The file whose `include` is being applied.
#[derive(Clone, Copy, Debug)]
pub struct IncludeContext<'a> {
    /// The including file, absolute.
    pub file: &'a Path,
    /// The including project's directory: relative include paths, project
    /// directories and env files are relative to it.
    pub working_dir: &'a Path,
    /// The files being loaded above this one (empty for a `-f` file).
    pub chain: &'a [PathBuf],
    /// The home directory, for `~`.
    pub home: Option<&'a Path>,
}

/// Why an `include` could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum IncludeError {
    #[error("{span}: `include` must be a list, got {kind}")]
    NotAList { span: Span, kind: &'static str },
    #[error("{span}: include[{index}]: {what}")]
    Invalid {
        index: usize,
        span: Span,
        what: &'static str,
    },
    #[error("include cycle detected:\n{}", chain.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join("\n include "))]
    Cycle { chain: Vec<PathBuf> },
    #[error("{span}: env_file {}", path.display())]
    EnvFile {
        path: PathBuf,
        span: Span,
        #[source]
        source: std::io::Error,
    },
    #[error("{span}: {} is not a file", path.display())]
    EnvFileIsDir { path: PathBuf, span: Span },
    #[error("{span}: cannot load included project {}", path.display())]
    Load {
        path: PathBuf,
        span: Span,
        #[source]
        source: BoxError,
    },
    #[error("{span}: {kind}.{name} conflicts with imported resource")]
    Conflict {
        kind: &'static str,
        name: String,
        span: Span,
    },
}

/// The resource kinds an included project contributes.
const IMPORTED: [&str; 6] = [
    "services", "volumes", "networks", "secrets", "configs", "models",
];

/// Applies the `include` of `doc` (one document of `ctx.file`), in place:
/// loads each entry, adds its resources, removes the `include` key.
pub fn apply_include(
    doc: &mut Node,
    ctx: IncludeContext<'_>,
    loader: &mut dyn IncludeLoader,
) -> Result<(), IncludeError> {
    let Some(root) = doc.as_map_mut() else {
        return Ok(());
    };
    let Some(include) = root.shift_remove("include") else {
        return Ok(());
    };
    let entries = match include.value {
        Value::Null => return Ok(()),
        Value::Seq(items) => items,
        _ => {
            return Err(IncludeError::NotAList {
                span: include.span.clone(),
                kind: include.kind(),
            })
        }
    };
    let mut chain: Vec<PathBuf> = ctx.chain.to_vec();
    chain.push(ctx.file.to_path_buf());
    for (index, entry) in entries.iter().enumerate() {
        let request = request_for(index, entry, ctx, &chain)?;
        let imported = loader
            .load_project(&request)
            .map_err(|source| IncludeError::Load {
                path: request.files[0].clone(),
                span: entry.span.clone(),
                source,
            })?;
        import(root, imported, &entry.span)?;
    }
    Ok(())
}

fn strings(node: &Node, index: usize, what: &'static str) -> Result<Vec<String>, IncludeError> {
    match &node.value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Seq(items) => items
            .iter()
            .map(|i| {
                i.as_str().map(str::to_owned).ok_or(IncludeError::Invalid {
                    index,
                    span: i.span.clone(),
                    what,
                })
            })
            .collect(),
        _ => Err(IncludeError::Invalid {
            index,
            span: node.span.clone(),
            what,
        }),
    }
}

fn absolute(p: &str, ctx: IncludeContext<'_>) -> PathBuf {
    let expanded = paths::expand_user(p, ctx.home);
    if expanded.starts_with('/') {
        PathBuf::from(expanded)
    } else {
        PathBuf::from(paths::join(ctx.working_dir, &expanded))
    }
}

fn request_for(
    index: usize,
    entry: &Node,
    ctx: IncludeContext<'_>,
    chain: &[PathBuf],
) -> Result<IncludeRequest, IncludeError> {
    let (files, project_directory, env_files) = match &entry.value {
        Value::String(s) => (vec![s.clone()], None, None),
        Value::Map(m) => {
            let Some(path) = m.get("path") else {
                return Err(IncludeError::Invalid {
                    index,
                    span: entry.span.clone(),
                    what: "`path` is required",
                });
            };
            let files = strings(path, index, "`path` must be a string or a list of strings")?;
            let project_directory = match m.get("project_directory") {
                None => None,
                Some(n) => Some(n.as_str().map(str::to_owned).ok_or(IncludeError::Invalid {
                    index,
                    span: n.span.clone(),
                    what: "`project_directory` must be a string",
                })?),
            };
            let env_files = match m.get("env_file") {
                None => None,
                Some(n) => Some(strings(
                    n,
                    index,
                    "`env_file` must be a string or a list of strings",
                )?),
            };
            (files, project_directory, env_files)
        }
        _ => {
            return Err(IncludeError::Invalid {
                index,
                span: entry.span.clone(),
                what: "an entry must be a path or a mapping",
            })
        }
    };
    if files.is_empty() {
        return Err(IncludeError::Invalid {
            index,
            span: entry.span.clone(),
            what: "`path` is empty",
        });
    }
    let files: Vec<PathBuf> = files.iter().map(|f| absolute(f, ctx)).collect();
    if chain.contains(&files[0]) {
        let mut cycle = chain.to_vec();
        cycle.push(files[0].clone());
        return Err(IncludeError::Cycle { chain: cycle });
    }
    let project_directory = match project_directory.filter(|p| !p.is_empty()) {
        None => files[0].parent().unwrap_or(Path::new("/")).to_path_buf(),
        Some(p) => absolute(&p, ctx),
    };
    let env_files = match env_files.filter(|e| !e.is_empty()) {
        None => {
            let dot_env = project_directory.join(".env");
            super::inputs::note_kind(&dot_env);
            if dot_env.is_file() {
                vec![dot_env]
            } else {
                Vec::new()
            }
        }
        Some(list) => {
            let mut out = Vec::new();
            for f in list.iter().filter(|f| *f != "/dev/null") {
                let path = absolute(f, ctx);
                super::inputs::note_kind(&path);
                let meta = fs_err::metadata(&path).map_err(|source| IncludeError::EnvFile {
                    path: path.clone(),
                    span: entry.span.clone(),
                    source,
                })?;
                if meta.is_dir() {
                    return Err(IncludeError::EnvFileIsDir {
                        path,
                        span: entry.span.clone(),
                    });
                }
                out.push(path);
            }
            out
        }
    };
    Ok(IncludeRequest {
        files,
        project_directory,
        env_files,
        chain: chain.to_vec(),
    })
}

/// Adds the resources of an imported model to the including document.
fn import(root: &mut Map, imported: Node, span: &Span) -> Result<(), IncludeError> {
    let Value::Map(mut imported) = imported.value else {
        return Ok(());
    };
    for kind in IMPORTED {
        let Some(Node {
            value: Value::Map(from),
            ..
        }) = imported.shift_remove(kind)
        else {
            continue;
        };
        let slot = root
            .entry(Key::new(kind, span.clone()))
            .or_insert_with(|| Node::new(Value::Map(Map::new()), span.clone()));
        if !matches!(slot.value, Value::Map(_)) {
            // A null section (`services:`) becomes a mapping to hold the imports.
            *slot = Node::new(Value::Map(Map::new()), slot.span.clone());
        }
        let Some(to) = slot.as_map_mut() else {
            continue;
        };
        for (name, resource) in from {
            match to.get(name.name.as_str()) {
                None => {
                    to.insert(name, resource);
                }
                Some(existing) if existing.to_json() == resource.to_json() => {}
                Some(existing) => {
                    return Err(IncludeError::Conflict {
                        kind,
                        name: name.name.clone(),
                        span: existing.span.clone(),
                    })
                }
            }
        }
    }
    Ok(())
}
