//! The load cache: a loaded [`Project`] kept under `$BERTH_RUN/cache/load/`
//! and reused while nothing it came from changed, so `ps`, `logs`, `exec`
//! and the rest do not parse, validate and normalize the same files on
//! every command (for 200 services, about a quarter of what `ps` costs).
//!
//! An entry's name is a digest of everything a load starts from: the
//! berth executable (a rebuilt berth never reads an older berth's entry),
//! each compose file's path and content, the project directory, the whole
//! interpolation environment (the process's and the `.env` file's; but for
//! a few variables shells and benchmark tools change on every command,
//! which count only when a compose file names them, see [`VOLATILE`]), the
//! explicit project name and the load options. Inside, next to the
//! project, is what the load saw besides (see [`super::inputs`]): the
//! files `include`, `extends`, `env_file` and `label_file` read, the paths
//! whose existence mattered, the symbolic links resolved. A hit checks
//! each of those again; any difference is a miss, and a miss loads as if
//! there were no cache. Loads that fail are never kept, so every error is
//! reported from a real load. An unreadable, older or damaged entry is a
//! miss too: the cache can only make a load faster, never different.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::inputs::{Recording, Seen};
use super::load::{self, ConfigDetails, LoadError, LoadOptions};
use super::node::Span;
use super::project::{Config, FileObject, Model, Network, Project, Secret, Service, Volume};

/// How many entries the directory keeps (the oldest go first).
const KEEP: usize = 32;

/// Variables a shell or a benchmark tool changes between commands
/// (`$_` is the last command's path, hyperfine sets a random offset per
/// run): left out of an entry's name unless a compose file names them, so
/// they do not turn every command into a miss.
const VOLATILE: &[&str] = &[
    "_",
    "SHLVL",
    "OLDPWD",
    "HYPERFINE_RANDOMIZED_ENVIRONMENT_OFFSET",
];

/// [`load::load`], through the cache in `dir`.
pub fn load(details: &ConfigDetails, opts: &LoadOptions, dir: &Path) -> Result<Project, LoadError> {
    through(
        details,
        opts,
        dir,
        |entry: Entry, left_out| {
            let mut p = entry.project.into_project();
            // The project's environment is the one it was loaded with: the
            // variables left out of the name take their values of now.
            for v in left_out {
                match details.environment.get(*v) {
                    Some(value) => p.environment.insert((*v).to_owned(), value.clone()),
                    None => p.environment.remove(*v),
                };
            }
            p
        },
        |p| p,
    )
}

/// The [`Outline`] of the project [`load`] would give, from the same
/// entry: a hit decodes no service (for 200 of them, about a sixth of
/// what `ps` costs).
pub fn outline(
    details: &ConfigDetails,
    opts: &LoadOptions,
    dir: &Path,
) -> Result<Outline, LoadError> {
    through(
        details,
        opts,
        dir,
        |entry: OutlineEntry, _| entry.outline,
        |p| Outline::of(&p),
    )
}

/// What `ps` needs of a project, kept in each entry beside the project.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outline {
    pub name: String,
    /// The services (enabled ones) with a `build` section.
    pub built: std::collections::BTreeSet<String>,
}

impl Outline {
    pub fn of(p: &Project) -> Outline {
        Outline {
            name: p.name.clone(),
            built: p
                .services
                .iter()
                .filter(|(_, s)| s.build.is_some())
                .map(|(n, _)| n.clone())
                .collect(),
        }
    }
}

/// The entry for `details` and `opts`, read as `E` and answered by `hit`
/// (given the variables left out of its name) when everything it saw
/// still holds; else a real load, kept and answered by `loaded`.
fn through<E: Kept, T>(
    details: &ConfigDetails,
    opts: &LoadOptions,
    dir: &Path,
    hit: impl FnOnce(E, &[&str]) -> T,
    loaded: impl FnOnce(Project) -> T,
) -> Result<T, LoadError> {
    let left_out: Vec<&str> = VOLATILE
        .iter()
        .copied()
        .filter(|v| !details.files.iter().any(|f| mentions(&f.content, v)))
        .collect();
    let Some(key) = key(details, opts, &left_out) else {
        return load::load(details, opts).map(loaded);
    };
    let path = dir.join(format!("{key}.json"));
    if let Some(entry) = read::<E>(&path) {
        return Ok(hit(entry, &left_out));
    }
    let recording = Recording::begin();
    let project = load::load(details, opts)?;
    let seen = recording.finish();
    // A file read besides that names a variable left out: not kept.
    let named_elsewhere = seen.iter().any(|s| match s {
        Seen::Bytes { path, .. } => {
            std::fs::read_to_string(path).map_or(true, |t| left_out.iter().any(|v| mentions(&t, v)))
        }
        _ => false,
    });
    if !named_elsewhere {
        if let Err(e) = store(dir, &path, &project, seen) {
            tracing::debug!(error = %format!("{e:#}"), "keeping a loaded project in the cache");
        }
    }
    Ok(loaded(project))
}

/// Whether `text` has `name` as a whole word (not inside a longer name).
fn mentions(text: &str, name: &str) -> bool {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    text.match_indices(name).any(|(i, _)| {
        !word(text[..i].chars().next_back()) && !word(text[i + name.len()..].chars().next())
    })
}

/// The entry's name, `None` when there is nothing stable to name it by
/// (standard input, or berth's own executable cannot be looked at).
fn key(details: &ConfigDetails, opts: &LoadOptions, left_out: &[&str]) -> Option<String> {
    if details.files.iter().any(|f| f.path.as_os_str() == "-") {
        return None;
    }
    use std::os::unix::fs::MetadataExt;
    let exe = std::fs::metadata("/proc/self/exe").ok()?;
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION"));
    h.update(
        format!(
            "{}:{}:{}:{}.{}\0",
            exe.dev(),
            exe.ino(),
            exe.size(),
            exe.mtime(),
            exe.mtime_nsec()
        )
        .as_bytes(),
    );
    // Debug forms are deterministic for these (ordered maps, vectors,
    // strings), and name every field, so a new field changes the key.
    let mut named = details.clone();
    named
        .environment
        .retain(|k, _| !left_out.contains(&k.as_str()));
    h.update(format!("{named:?}\0{opts:?}").as_bytes());
    Some(hex::encode(h.finalize()))
}

fn store(dir: &Path, path: &Path, project: &Project, seen: Vec<Seen>) -> anyhow::Result<()> {
    let entry = Entry {
        seen,
        outline: Outline::of(project),
        project: Cached::from_project(project),
    };
    // The project holds the environment and secrets' content: root's only.
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = dir.join(format!(".{}.tmp", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&serde_json::to_vec(&entry)?)?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    prune(dir);
    Ok(())
}

/// Keeps the [`KEEP`] newest entries.
fn prune(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if found.len() <= KEEP {
        return;
    }
    found.sort();
    for (_, p) in &found[..found.len() - KEEP] {
        let _ = std::fs::remove_file(p);
    }
}

#[derive(Serialize, Deserialize)]
struct Entry {
    seen: Vec<Seen>,
    outline: Outline,
    project: Cached,
}

/// An [`Entry`] read for its outline alone (the project is skipped
/// unread).
#[derive(Deserialize)]
struct OutlineEntry {
    seen: Vec<Seen>,
    outline: Outline,
}

/// An entry as some answer reads it: what its load saw besides.
trait Kept: serde::de::DeserializeOwned {
    fn seen(&self) -> &[Seen];
}

impl Kept for Entry {
    fn seen(&self) -> &[Seen] {
        &self.seen
    }
}

impl Kept for OutlineEntry {
    fn seen(&self) -> &[Seen] {
        &self.seen
    }
}

/// The entry at `path` when it can be read and everything it saw still
/// holds.
fn read<E: Kept>(path: &Path) -> Option<E> {
    let entry: E = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    entry.seen().iter().all(Seen::still_holds).then_some(entry)
}

/// A [`Project`] whole: its `Serialize` is `config`'s output, which leaves
/// out what the engine still needs (the directory, the disabled services,
/// the environment, where each thing was declared…).
#[derive(Serialize, Deserialize)]
struct Cached {
    name: String,
    working_dir: PathBuf,
    services: BTreeMap<String, Service>,
    networks: BTreeMap<String, Network>,
    volumes: BTreeMap<String, Volume>,
    /// Their inner form: `Secret`'s and `Config`'s own leave content out.
    secrets: BTreeMap<String, FileObject>,
    configs: BTreeMap<String, FileObject>,
    models: BTreeMap<String, Model>,
    extensions: BTreeMap<String, serde_json::Value>,
    disabled_services: BTreeMap<String, Service>,
    profiles: Vec<String>,
    environment: BTreeMap<String, String>,
    compose_files: Vec<PathBuf>,
    compatibility: bool,
    /// key → (file, line, column)
    origins: BTreeMap<String, (PathBuf, u32, u32)>,
    /// The `x-*` keys of each service and resource (not in their serialized
    /// forms), keyed `services.web`, `disabled.db`, `networks.front`, …
    inner_extensions: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
}

impl Cached {
    fn from_project(p: &Project) -> Cached {
        let mut inner_extensions = BTreeMap::new();
        let mut keep = |kind: &str, name: &str, ext: &BTreeMap<String, serde_json::Value>| {
            if !ext.is_empty() {
                inner_extensions.insert(format!("{kind}.{name}"), ext.clone());
            }
        };
        for (n, s) in &p.services {
            keep("services", n, &s.extensions);
        }
        for (n, s) in &p.disabled_services {
            keep("disabled", n, &s.extensions);
        }
        for (n, x) in &p.networks {
            keep("networks", n, &x.extensions);
        }
        for (n, x) in &p.volumes {
            keep("volumes", n, &x.extensions);
        }
        for (n, x) in &p.secrets {
            keep("secrets", n, &x.0.extensions);
        }
        for (n, x) in &p.configs {
            keep("configs", n, &x.0.extensions);
        }
        Cached {
            inner_extensions,
            name: p.name.clone(),
            working_dir: p.working_dir.clone(),
            services: p.services.clone(),
            networks: p.networks.clone(),
            volumes: p.volumes.clone(),
            secrets: p
                .secrets
                .iter()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect(),
            configs: p
                .configs
                .iter()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect(),
            models: p.models.clone(),
            extensions: p.extensions.clone(),
            disabled_services: p.disabled_services.clone(),
            profiles: p.profiles.clone(),
            environment: p.environment.clone(),
            compose_files: p.compose_files.clone(),
            compatibility: p.compatibility,
            origins: p
                .origins
                .iter()
                .map(|(k, s)| (k.clone(), (s.file.to_path_buf(), s.line, s.col)))
                .collect(),
        }
    }

    fn into_project(mut self) -> Project {
        let mut ext = |kind: &str, name: &str| {
            self.inner_extensions
                .remove(&format!("{kind}.{name}"))
                .unwrap_or_default()
        };
        // A service's name is its key (not part of its serialized form).
        for (kind, m) in [
            ("services", &mut self.services),
            ("disabled", &mut self.disabled_services),
        ] {
            for (k, s) in m.iter_mut() {
                s.name = k.clone();
                s.extensions = ext(kind, k);
            }
        }
        for (k, x) in self.networks.iter_mut() {
            x.extensions = ext("networks", k);
        }
        for (k, x) in self.volumes.iter_mut() {
            x.extensions = ext("volumes", k);
        }
        for (k, x) in self.secrets.iter_mut() {
            x.extensions = ext("secrets", k);
        }
        for (k, x) in self.configs.iter_mut() {
            x.extensions = ext("configs", k);
        }
        Project {
            name: self.name,
            working_dir: self.working_dir,
            services: self.services,
            networks: self.networks,
            volumes: self.volumes,
            secrets: self
                .secrets
                .into_iter()
                .map(|(k, v)| (k, Secret(v)))
                .collect(),
            configs: self
                .configs
                .into_iter()
                .map(|(k, v)| (k, Config(v)))
                .collect(),
            models: self.models,
            extensions: self.extensions,
            disabled_services: self.disabled_services,
            profiles: self.profiles,
            environment: self.environment,
            compose_files: self.compose_files,
            compatibility: self.compatibility,
            origins: self
                .origins
                .into_iter()
                .map(|(k, (file, line, col))| {
                    let file: Arc<Path> = Arc::from(file.as_path());
                    (k, Span { file, line, col })
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::load::ConfigFile;

    fn details(dir: &Path, files: &[(&str, &str)], env: &[(&str, &str)]) -> ConfigDetails {
        ConfigDetails {
            files: files
                .iter()
                .map(|(name, content)| {
                    let path = dir.join(name);
                    std::fs::write(&path, content).unwrap();
                    ConfigFile {
                        path,
                        content: (*content).to_owned(),
                    }
                })
                .collect(),
            working_dir: dir.to_owned(),
            environment: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            explicit_name: None,
        }
    }

    /// What a hit of the entry at `path` gives, as [`load`] and
    /// [`outline`] read it.
    fn hit(path: &Path) -> Option<Project> {
        read::<Entry>(path).map(|e| e.project.into_project())
    }

    fn outline_hit(path: &Path) -> Option<Outline> {
        read::<OutlineEntry>(path).map(|e| e.outline)
    }

    fn roundtrip(p: &Project) -> Project {
        let bytes = serde_json::to_vec(&Cached::from_project(p)).unwrap();
        serde_json::from_slice::<Cached>(&bytes)
            .unwrap()
            .into_project()
    }

    /// Every compose file of compose-go's loader cases that loads comes
    /// back from the cache's form equal, field for field.
    #[test]
    fn every_loader_case_survives_the_cache_form() {
        let fixtures = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/fixtures/compose-go/loader/cases.json"
        );
        let text = std::fs::read_to_string(fixtures).unwrap_or_else(|e| {
            panic!("{fixtures}: {e}: the shared fixtures must sit beside the repository")
        });
        let cases: serde_json::Value = serde_json::from_str(&text).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let mut checked = 0;
        for case in cases["cases"].as_array().unwrap() {
            let mut yamls: Vec<String> = Vec::new();
            match &case["yaml"] {
                serde_json::Value::String(y) => yamls.push(y.clone()),
                serde_json::Value::Array(docs) => {
                    yamls.extend(docs.iter().filter_map(|d| d.as_str().map(str::to_owned)))
                }
                _ => {}
            }
            for row in case["table_rows"].as_array().into_iter().flatten() {
                yamls.extend(row["config"].as_str().map(str::to_owned));
            }
            let env: Vec<(String, String)> = case["env"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            for y in yamls {
                let d = details(tmp.path(), &[("compose.yaml", &y)], &env);
                let Ok(p) = load::load(&d, &LoadOptions::default()) else {
                    continue;
                };
                let back = roundtrip(&p);
                if back != p {
                    let (a, b) = (format!("{p:?}"), format!("{back:?}"));
                    let at = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
                    let from = at.saturating_sub(200);
                    panic!(
                        "case {}: differs after the cache's form\nloaded: …{}\ncached: …{}\n{y}",
                        case["id"],
                        &a[from..(at + 200).min(a.len())],
                        &b[from..(at + 200).min(b.len())]
                    );
                }
                checked += 1;
            }
        }
        assert!(checked > 100, "only {checked} loader cases loaded");
    }

    /// And every compose file of Docker Compose's end-to-end scenarios,
    /// loaded from where it lies (with its includes, extends, env files).
    #[test]
    fn every_scenario_file_survives_the_cache_form() {
        let root = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/fixtures/docker-compose/testdata"
        ));
        let mut files = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                    files.push(p);
                }
            }
        }
        let mut checked = 0;
        for f in files {
            let content = std::fs::read_to_string(&f).unwrap();
            let d = ConfigDetails {
                files: vec![ConfigFile {
                    path: f.clone(),
                    content,
                }],
                working_dir: f.parent().unwrap().to_owned(),
                environment: Default::default(),
                explicit_name: Some("p".into()),
            };
            let Ok(p) = load::load(&d, &LoadOptions::default()) else {
                continue;
            };
            assert_eq!(roundtrip(&p), p, "{}", f.display());
            checked += 1;
        }
        assert!(checked > 60, "only {checked} scenario files loaded");
    }

    #[test]
    fn secret_and_config_content_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let y = "services:\n  a:\n    image: a\n    secrets: [s]\n    configs: [c]\nsecrets:\n  s:\n    environment: S\nconfigs:\n  c:\n    content: hello\n";
        let d = details(tmp.path(), &[("compose.yaml", y)], &[("S", "secret")]);
        let p = load::load(&d, &LoadOptions::default()).unwrap();
        assert_eq!(p.secrets["s"].0.content, "secret");
        assert_eq!(roundtrip(&p), p);
    }

    #[test]
    fn volatile_variables_do_not_name_an_entry_unless_a_file_names_them() {
        assert!(mentions("a: ${_}", "_"));
        assert!(mentions("environment: [SHLVL]", "SHLVL"));
        assert!(!mentions("image: my_app", "_"));
        assert!(!mentions("x: $SHLVLX", "SHLVL"));
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        let y = "services:\n  a:\n    image: a\n";
        let opts = LoadOptions::default();
        let d1 = details(tmp.path(), &[("compose.yaml", y)], &[("_", "/bin/one")]);
        let d2 = details(tmp.path(), &[("compose.yaml", y)], &[("_", "/bin/two")]);
        assert_eq!(load(&d1, &opts, &dir).unwrap().environment["_"], "/bin/one");
        // The same entry, with the environment of now.
        let p2 = load(&d2, &opts, &dir).unwrap();
        assert_eq!(p2.environment["_"], "/bin/two");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        assert_eq!(p2, load::load(&d2, &opts).unwrap());
        // A file that names one: its value names the entry.
        let y = "services:\n  a:\n    image: a\n    environment: [SHLVL]\n";
        let s1 = details(tmp.path(), &[("compose.yaml", y)], &[("SHLVL", "1")]);
        let s2 = details(tmp.path(), &[("compose.yaml", y)], &[("SHLVL", "2")]);
        let env = |p: Project| p.services["a"].environment["SHLVL"].clone();
        assert_eq!(env(load(&s1, &opts, &dir).unwrap()), Some("1".to_owned()));
        assert_eq!(env(load(&s2, &opts, &dir).unwrap()), Some("2".to_owned()));
        // An included file that names one: never kept.
        std::fs::write(
            tmp.path().join("inc.yaml"),
            "services:\n  b:\n    image: b\n    environment: [OLDPWD]\n",
        )
        .unwrap();
        let y = "include: [inc.yaml]\nservices:\n  a:\n    image: a\n";
        let before = std::fs::read_dir(&dir).unwrap().count();
        let o1 = details(tmp.path(), &[("compose.yaml", y)], &[("OLDPWD", "/x")]);
        let o2 = details(tmp.path(), &[("compose.yaml", y)], &[("OLDPWD", "/y")]);
        let env = |p: Project| p.services["b"].environment["OLDPWD"].clone();
        assert_eq!(env(load(&o1, &opts, &dir).unwrap()), Some("/x".to_owned()));
        assert_eq!(env(load(&o2, &opts, &dir).unwrap()), Some("/y".to_owned()));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), before);
    }

    #[test]
    fn a_hit_is_the_same_project_and_any_change_is_a_miss() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        let compose = "name: c\ninclude: [inc.yaml]\nservices:\n  web:\n    image: ${IMG}\n    env_file: [a.env]\n";
        std::fs::write(tmp.path().join("a.env"), "A=1\n").unwrap();
        std::fs::write(
            tmp.path().join("inc.yaml"),
            "services:\n  db:\n    image: db\n",
        )
        .unwrap();
        let d = details(
            tmp.path(),
            &[("compose.yaml", compose)],
            &[("IMG", "web:1")],
        );
        let opts = LoadOptions::default();
        let first = load(&d, &opts, &dir).unwrap();
        assert_eq!(first.services["web"].image, "web:1");
        let entries = || std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(entries(), 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        let path = dir.join(format!("{}.json", key(&d, &opts, VOLATILE).unwrap()));
        assert_eq!(mode(&path), 0o600);
        assert_eq!(hit(&path).as_ref(), Some(&first), "a hit");
        assert_eq!(load(&d, &opts, &dir).unwrap(), first);

        // The outline comes from the same entry.
        assert_eq!(outline_hit(&path), Some(Outline::of(&first)));
        assert_eq!(outline(&d, &opts, &dir).unwrap(), Outline::of(&first));

        // An env_file's content changed: a miss, and the new value.
        std::fs::write(tmp.path().join("a.env"), "A=2\n").unwrap();
        assert!(hit(&path).is_none());
        assert!(outline_hit(&path).is_none());
        let second = load(&d, &opts, &dir).unwrap();
        assert_eq!(
            second.services["web"].environment["A"],
            Some("2".to_owned())
        );
        // An included file changed.
        std::fs::write(
            tmp.path().join("inc.yaml"),
            "services:\n  db:\n    image: db:2\n",
        )
        .unwrap();
        assert!(hit(&path).is_none());
        assert_eq!(load(&d, &opts, &dir).unwrap().services["db"].image, "db:2");
        // Another environment is another entry.
        let d2 = details(
            tmp.path(),
            &[("compose.yaml", compose)],
            &[("IMG", "web:2")],
        );
        assert_eq!(
            load(&d2, &opts, &dir).unwrap().services["web"].image,
            "web:2"
        );
        assert_eq!(entries(), 2);
        // A damaged entry is a miss, never an error.
        std::fs::write(&path, "{").unwrap();
        assert_eq!(load(&d, &opts, &dir).unwrap().services["db"].image, "db:2");
        // A failing load is not kept.
        let bad = details(tmp.path(), &[("compose.yaml", "services: [")], &[]);
        assert!(load(&bad, &opts, &dir).is_err());
        assert_eq!(entries(), 2);
    }

    /// The outline names the project and the services that build, from a
    /// miss (a real load, kept) and from the hit that follows; a failing
    /// load fails the outline too.
    #[test]
    fn an_outline_is_the_projects_whether_loaded_or_hit() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        let y = "name: o\nservices:\n  web:\n    build: .\n  db:\n    image: db\n  tool:\n    build: ./t\n    profiles: [x]\n";
        let d = details(tmp.path(), &[("compose.yaml", y)], &[]);
        let opts = LoadOptions::default();
        let want = Outline {
            name: "o".into(),
            built: ["web".to_owned()].into(),
        };
        assert_eq!(outline(&d, &opts, &dir).unwrap(), want, "a miss");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        assert_eq!(outline(&d, &opts, &dir).unwrap(), want, "a hit");
        assert_eq!(Outline::of(&load(&d, &opts, &dir).unwrap()), want);
        let bad = details(tmp.path(), &[("compose.yaml", "services: [")], &[]);
        assert!(outline(&bad, &opts, &dir).is_err());
    }
}
