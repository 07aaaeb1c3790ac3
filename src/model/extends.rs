//! `extends`: a service built on top of another service, of the same file or
//! of another file, following chains and refusing cycles.
//!
//! Compose's rules (compose-go `loader/extends.go`): the base service is
//! resolved first (its own `extends` included), then the extending service
//! is merged onto a copy of it with the ordinary merge rules (everything is
//! inherited, `depends_on` and `volumes_from` too; `command` replaced,
//! `environment` merged…), after the extending service's `!reset` /
//! `!override` marks have removed what they name from the copy. A service
//! from another file has its relative paths made absolute against that
//! file's directory first, so they keep pointing where they did. The
//! `extends` key is gone from the result.
//!
//! Reading another file is the loader's business (parse and interpolate with
//! the project's environment); this module asks for it through
//! [`ExtendsLoader`], so it stays free of I/O.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::model::merge::{self, MergeError, Tags};
use crate::model::node::{Map, Node, Span, Value};
use crate::model::paths::{self, PathBase, PathsError};

/// An error from the caller's loader, kept as the cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Reads the Compose files `extends` refers to.
pub trait ExtendsLoader {
    /// The YAML documents of the file at `path` (absolute), each parsed and
    /// interpolated with the project's environment, with `!reset` /
    /// `!override` tags still in the tree. Not validated, no `extends` or
    /// `include` applied: this module does that.
    fn load_documents(&mut self, path: &Path) -> Result<Vec<Node>, BoxError>;
}

/// Any `FnMut(&Path) -> Result<Vec<Node>, BoxError>` is a loader.
impl<F> ExtendsLoader for F
where
    F: FnMut(&Path) -> Result<Vec<Node>, BoxError>,
{
    fn load_documents(&mut self, path: &Path) -> Result<Vec<Node>, BoxError> {
        self(path)
    }
}

/// Where the file being loaded is, and what its relative paths mean.
#[derive(Clone, Copy, Debug)]
pub struct ExtendsContext<'a> {
    /// The file whose services are being resolved (for messages and cycles).
    pub file: &'a Path,
    /// The directory a relative `extends.file` is relative to: the project
    /// directory for the `-f` files and included projects' files, the file's
    /// own directory for a file reached through `extends`.
    pub working_dir: &'a Path,
    /// The home directory, for `~` in paths of other files.
    pub home: Option<&'a Path>,
}

/// Why `extends` could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ExtendsError {
    #[error("{span}: services.{service} must be a mapping")]
    NotAMapping { service: String, span: Span },
    #[error("{span}: extends.{service}.service is required")]
    ServiceRequired { service: String, span: Span },
    #[error("{span}: cannot extend service {service:?} in {}: service {reference:?} not found", file.display())]
    NotFound {
        service: String,
        reference: String,
        file: PathBuf,
        span: Span,
    },
    #[error("{span}: cannot extend service {service:?} in {}: service {reference:?} not found in {}", file.display(), other.display())]
    NotFoundInFile {
        service: String,
        reference: String,
        file: PathBuf,
        other: PathBuf,
        span: Span,
    },
    #[error("{span}: cannot extend service {service:?} in {}: no services section", other.display())]
    NoServices {
        service: String,
        other: PathBuf,
        span: Span,
    },
    /// A chain that comes back to itself; `chain` lists each step as
    /// Compose prints it.
    #[error("Circular reference:\n  {}", chain.join("\n  extends "))]
    Cycle { chain: Vec<String> },
    #[error("{span}: cannot load {} for extends", path.display())]
    Load {
        path: PathBuf,
        span: Span,
        #[source]
        source: BoxError,
    },
    #[error(transparent)]
    Merge(#[from] MergeError),
    #[error(transparent)]
    Paths(#[from] PathsError),
}

/// Resolves every `extends` of `doc` (one document of the file `ctx.file`),
/// in place. `tags` are the document's `!reset`/`!override` marks, taken out
/// of it with [`Tags::take`] before any stage changed it.
pub fn apply_extends(
    doc: &mut Node,
    tags: &Tags,
    ctx: ExtendsContext<'_>,
    loader: &mut dyn ExtendsLoader,
) -> Result<(), ExtendsError> {
    let Some(services) = doc
        .as_map_mut()
        .and_then(|m| m.get_mut("services"))
        .and_then(Node::as_map_mut)
    else {
        return Ok(());
    };
    let names: Vec<String> = services.keys().map(|k| k.name.clone()).collect();
    let mut cache = FileCache::default();
    for name in names {
        let mut state = Resolver {
            loader,
            cache: &mut cache,
            home: ctx.home,
        };
        state.resolve(&name, services, tags, ctx.file, ctx.working_dir, &[])?;
    }
    Ok(())
}

/// Files already read during one `apply_extends`, resolved paths included.
#[derive(Default)]
struct FileCache {
    files: HashMap<PathBuf, (Map, Tags)>,
}

struct Resolver<'l, 'c, 'h> {
    loader: &'l mut dyn ExtendsLoader,
    cache: &'c mut FileCache,
    home: Option<&'h Path>,
}

/// One step of an `extends` chain: (file, service).
type Step = (PathBuf, String);

impl Resolver<'_, '_, '_> {
    /// Resolves service `name` of `services` (a file's services, `file`),
    /// storing the result back into `services`, and returns it (`None` for
    /// a null service).
    fn resolve(
        &mut self,
        name: &str,
        services: &mut Map,
        tags: &Tags,
        file: &Path,
        working_dir: &Path,
        chain: &[Step],
    ) -> Result<Option<Node>, ExtendsError> {
        let Some(service) = services.get(name) else {
            return Ok(None);
        };
        let span = service.span.clone();
        let extends = match &service.value {
            Value::Null => return Ok(None),
            Value::Map(m) => match m.get("extends") {
                None => return Ok(Some(service.clone())),
                Some(e) => e.clone(),
            },
            _ => {
                return Err(ExtendsError::NotAMapping {
                    service: name.to_owned(),
                    span,
                })
            }
        };
        let (reference, other) = match &extends.value {
            Value::String(s) => (s.clone(), None),
            Value::Map(m) => {
                let Some(r) = m.get("service").and_then(Node::as_str) else {
                    return Err(ExtendsError::ServiceRequired {
                        service: name.to_owned(),
                        span: extends.span.clone(),
                    });
                };
                let other = m.get("file").and_then(Node::as_str).map(|f| {
                    let expanded = paths::expand_user(f, self.home);
                    if expanded.starts_with('/') {
                        PathBuf::from(expanded)
                    } else {
                        PathBuf::from(paths::join(working_dir, &expanded))
                    }
                });
                (r.to_owned(), other)
            }
            _ => {
                return Err(ExtendsError::ServiceRequired {
                    service: name.to_owned(),
                    span: extends.span.clone(),
                })
            }
        };

        let step_file = other.clone().unwrap_or_else(|| file.to_path_buf());
        let next: Step = (step_file, name.to_owned());
        if chain.contains(&next) {
            let mut all: Vec<&Step> = chain.iter().collect();
            all.push(&next);
            let chain = all
                .iter()
                .map(|(f, s)| format!("{s} in {}", f.display()))
                .collect();
            return Err(ExtendsError::Cycle { chain });
        }
        let mut new_chain = chain.to_vec();
        new_chain.push(next);

        let base = match other {
            None => {
                if !services.contains_key(reference.as_str()) {
                    return Err(ExtendsError::NotFound {
                        service: name.to_owned(),
                        reference,
                        file: file.to_path_buf(),
                        span: extends.span.clone(),
                    });
                }
                self.resolve(&reference, services, tags, file, working_dir, &new_chain)?
            }
            Some(other) => {
                let (mut other_services, other_tags) =
                    self.load(&other, name, &reference, file, &extends.span)?;
                let dir = other.parent().unwrap_or(Path::new("/")).to_path_buf();
                self.resolve(
                    &reference,
                    &mut other_services,
                    &other_tags,
                    &other,
                    &dir,
                    &new_chain,
                )?
            }
        };
        let mut service = services
            .get(name)
            .cloned()
            .unwrap_or_else(|| Node::new(Value::Null, span.clone()));
        let Some(mut base) = base else {
            return Ok(Some(service));
        };
        tags.apply_below(&["services", name], &mut base);
        if let Some(m) = service.as_map_mut() {
            m.shift_remove("extends");
        }
        let mut merged = merge::extend_service(base, service)?;
        if let Some(m) = merged.as_map_mut() {
            m.shift_remove("extends");
        }
        if let Some(slot) = services.get_mut(name) {
            *slot = merged.clone();
        }
        Ok(Some(merged))
    }

    /// The services of another file, its documents merged and its relative
    /// paths made absolute against its directory, and the marks of its last
    /// document.
    fn load(
        &mut self,
        other: &Path,
        service: &str,
        reference: &str,
        file: &Path,
        span: &Span,
    ) -> Result<(Map, Tags), ExtendsError> {
        if let Some(hit) = self.cache.files.get(other) {
            return Ok(hit.clone());
        }
        let docs = self
            .loader
            .load_documents(other)
            .map_err(|source| ExtendsError::Load {
                path: other.to_path_buf(),
                span: span.clone(),
                source,
            })?;
        let mut dict = Node::new(Value::Map(Map::new()), span.clone());
        let mut last_tags = Tags::default();
        for mut doc in docs {
            let tags = Tags::take(&mut doc);
            tags.apply(&mut dict);
            dict = merge::merge(dict, doc)?;
            last_tags = tags;
        }
        let dir = other.parent().unwrap_or(Path::new("/"));
        paths::resolve_relative_paths(
            &mut dict,
            PathBase {
                working_dir: dir,
                home: self.home,
            },
        )?;
        let services = match dict.value {
            Value::Map(mut m) => match m.shift_remove("services") {
                Some(Node {
                    value: Value::Map(s),
                    ..
                }) => s,
                _ => {
                    return Err(ExtendsError::NoServices {
                        service: service.to_owned(),
                        other: other.to_path_buf(),
                        span: span.clone(),
                    })
                }
            },
            _ => {
                return Err(ExtendsError::NoServices {
                    service: service.to_owned(),
                    other: other.to_path_buf(),
                    span: span.clone(),
                })
            }
        };
        if !services.contains_key(reference) {
            return Err(ExtendsError::NotFoundInFile {
                service: service.to_owned(),
                reference: reference.to_owned(),
                file: file.to_path_buf(),
                other: other.to_path_buf(),
                span: span.clone(),
            });
        }
        self.cache
            .files
            .insert(other.to_path_buf(), (services.clone(), last_tags.clone()));
        Ok((services, last_tags))
    }
}
