//! Data-driven conformance harness: runs the `berth` binary over the fixtures in
//! `../shared/fixtures` and compares its output with Docker Compose's recorded
//! output (`docker compose config --format json`, v2.40.3).
//!
//! A case is a set of compose files written into a scratch project, an
//! environment, and the reference: either a JSON config or a failure. The
//! harness runs the cases on a few threads, compares JSON with key order
//! aside, and checks the mismatches against the known-differences file, so an
//! unexplained mismatch fails and so does a listed case that now matches.
//!
//! [`scenario`] runs Docker Compose's end-to-end scenarios the same way:
//! berth in place of `docker compose`, a list of the ones that do not pass.

pub mod scenario;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The shared fixtures, cloned beside the repository.
pub fn fixtures() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
    assert!(
        p.join("README.md").exists(),
        "the shared fixtures are missing at {}: they must sit beside the repository",
        p.display()
    );
    p
}

/// The `berth` binary of the profile this test was built with: tests live in
/// `<target>/<profile>/deps/`, the binary in `<target>/<profile>/`.
pub fn berth_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary in <target>/<profile>/deps");
    let bin = profile_dir.join("berth");
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo test --workspace` builds it; alone: `cargo build --bin berth` with the same profile)",
        bin.display()
    );
    bin
}

/// What Docker Compose did with a case.
#[derive(Clone, Debug)]
pub enum Reference {
    /// It printed this config (placeholders `__WORK__`, `__HOME_DIR__`,
    /// `__FIXTURES__` not yet replaced).
    Config(serde_json::Value),
    /// It printed a config too large to record.
    AnyConfig,
    /// It failed, with this message if recorded.
    Failure(Option<String>),
    /// It printed a config in which the JSON pointer holds this value.
    Value {
        pointer: String,
        value: serde_json::Value,
    },
}

/// One run of `berth config`.
#[derive(Clone, Debug)]
pub struct Case {
    /// `suite/id`, unique.
    pub id: String,
    /// The compose files, as `-f` in order; written into the project dir.
    pub files: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub reference: Reference,
    /// Extra arguments to `config` (e.g. `--no-consistency`).
    pub config_args: Vec<String>,
    /// Other files the case needs in the project dir (env files…).
    pub extra_files: BTreeMap<String, String>,
}

/// The outcome of a case.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub id: String,
    /// `None`: matched; `Some(reason)`: why not.
    pub mismatch: Option<String>,
}

/// A scratch project: `<root>/project` holds a copy of `template` (so
/// relative paths of the fixtures resolve), `<root>/home` is `$HOME`.
pub struct Scratch {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub project: PathBuf,
    pub home: PathBuf,
}

impl Scratch {
    pub fn new(template: Option<&Path>) -> Scratch {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        let project = root.join("project");
        match template {
            Some(t) => copy_dir(t, &project),
            None => std::fs::create_dir_all(&project).expect("mkdir"),
        }
        let home = root.join("home");
        std::fs::create_dir_all(&home).expect("mkdir home");
        Scratch {
            _dir: dir,
            root,
            project,
            home,
        }
    }
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Runs one case in its own scratch copy of `template`.
pub fn run_case(bin: &Path, case: &Case, template: Option<&Path>) -> Outcome {
    let scratch = Scratch::new(template);
    for (name, text) in &case.extra_files {
        std::fs::write(scratch.project.join(name), text).expect("write extra file");
    }
    let mut args: Vec<String> = Vec::new();
    for (i, text) in case.files.iter().enumerate() {
        let name = if i == 0 {
            "compose.yaml".to_owned()
        } else {
            format!("compose.override{i}.yaml")
        };
        std::fs::write(scratch.project.join(&name), text).expect("write compose file");
        args.push("-f".into());
        args.push(name);
    }
    args.push("config".into());
    args.extend(case.config_args.iter().cloned());
    args.push("--format".into());
    args.push("json".into());
    let out = Command::new(bin)
        .args(&args)
        .current_dir(&scratch.project)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &scratch.home)
        .envs(&case.env)
        .stdin(Stdio::null())
        .output()
        .expect("run berth");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mismatch = match (&case.reference, out.status.success()) {
        (Reference::Failure(_), false) => None,
        (Reference::Failure(msg), true) => Some(format!(
            "berth succeeded where docker compose failed ({})",
            msg.as_deref().unwrap_or("no message recorded")
        )),
        (_, false) => Some(format!("berth failed: {}", stderr.trim())),
        (Reference::AnyConfig, true) => None,
        (Reference::Value { pointer, value }, true) => {
            match serde_json::from_str::<serde_json::Value>(&stdout.replace("$$", "$")) {
                Err(e) => Some(format!("output is not JSON: {e}")),
                Ok(got) => match got.pointer(pointer) {
                    Some(v) if v == value => None,
                    Some(v) => Some(format!(
                        "{pointer}: want {}, got {}",
                        short(value),
                        short(v)
                    )),
                    None => Some(format!("{pointer}: missing, want {}", short(value))),
                },
            }
        }
        (Reference::Config(want), true) => {
            // Compose escapes `$` as `$$` in its output; the references
            // were recorded unescaped.
            let text = stdout
                .replace("$$", "$")
                .replace(&scratch.project.display().to_string(), "__WORK__/project")
                .replace(&scratch.home.display().to_string(), "__HOME_DIR__")
                .replace(&scratch.root.display().to_string(), "__WORK__");
            match serde_json::from_str::<serde_json::Value>(&text) {
                Err(e) => Some(format!("output is not JSON: {e}")),
                Ok(got) => {
                    let fixtures = fixtures();
                    let fixtures = std::fs::canonicalize(&fixtures).unwrap_or(fixtures);
                    let want_text = want
                        .to_string()
                        .replace("__FIXTURES__", &fixtures.display().to_string());
                    let want: serde_json::Value = serde_json::from_str(&want_text).expect("JSON");
                    (got != want).then(|| first_difference(&want, &got, "$"))
                }
            }
        }
    };
    Outcome {
        id: case.id.clone(),
        mismatch,
    }
}

/// A one-line description of where two JSON values first differ.
pub fn first_difference(want: &serde_json::Value, got: &serde_json::Value, at: &str) -> String {
    use serde_json::Value as J;
    match (want, got) {
        (J::Object(w), J::Object(g)) => {
            for (k, wv) in w {
                match g.get(k) {
                    None => return format!("{at}.{k}: missing (want {})", short(wv)),
                    Some(gv) if gv != wv => return first_difference(wv, gv, &format!("{at}.{k}")),
                    _ => {}
                }
            }
            for (k, gv) in g {
                if !w.contains_key(k) {
                    return format!("{at}.{k}: unexpected {}", short(gv));
                }
            }
            format!("{at}: differs")
        }
        (J::Array(w), J::Array(g)) if w.len() == g.len() => {
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                if wv != gv {
                    return first_difference(wv, gv, &format!("{at}[{i}]"));
                }
            }
            format!("{at}: differs")
        }
        _ => format!("{at}: want {}, got {}", short(want), short(got)),
    }
}

fn short(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if s.len() > 120 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(120).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s
    }
}

/// Runs `cases` on a few threads.
pub fn run_all(bin: &Path, cases: &[Case], template: Option<&Path>) -> Vec<Outcome> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8));
    let chunk = cases.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|c| run_case(bin, c, template))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("harness thread"))
            .collect()
    })
}

/// The known differences: `suite/case-id<TAB>reason` lines, `#` comments.
pub fn known_differences(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (id, reason) = l.split_once('\t')?;
            Some((id.to_owned(), reason.to_owned()))
        })
        .collect()
}
