//! Image verbs: `berth image pull|push|ls|rm|tag|inspect|import|load|save|prune`,
//! `berth login|logout`, and the compose verbs `pull`, `push`, `images` over
//! a project's services. Output follows `docker` (image verbs) and
//! `docker compose` (project verbs), including the per-layer progress.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::commands::project;
use crate::image::archive::{self, Format};
use crate::image::credentials::{Credentials, DockerConfig};
use crate::image::pull::{self, LayerState, Platform, PullEvent, PullOptions};
use crate::image::push::{self, PushEvent, PushOptions, PushState};
use crate::image::registry::{Client, RegistryConfig};
use crate::image::store::{Descriptor, ImageEntry};
use crate::image::{Reference, Store};
use crate::printer::{table, Printer};
use crate::settings::ProjectArgs;

/// Where the store lives: `$BERTH_ROOT`, default `/var/lib/berth`.
pub fn berth_root() -> PathBuf {
    std::env::var_os("BERTH_ROOT")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/berth"))
}

fn open_store() -> Result<Store> {
    let root = berth_root();
    Store::open(&root).with_context(|| format!("opening the image store in {}", root.display()))
}

/// How progress is shown (the global `--progress`, or `--quiet`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Decide by whether the output is a terminal.
    Auto,
    /// Lines redrawn in place.
    Tty,
    /// One line per change of state.
    Plain,
    Quiet,
}

/// An image verb.
#[derive(Debug, Clone)]
pub enum Action {
    Pull {
        reference: String,
        platform: Option<String>,
        quiet: bool,
        /// Verify blobs, leave unpacking to first use.
        download_only: bool,
    },
    Push {
        reference: String,
        quiet: bool,
    },
    List {
        quiet: bool,
        digests: bool,
        no_trunc: bool,
        json: bool,
        repository: Option<String>,
    },
    Remove {
        references: Vec<String>,
        force: bool,
    },
    Tag {
        source: String,
        target: String,
    },
    Inspect {
        references: Vec<String>,
    },
    Import {
        file: String,
        reference: String,
        changes: Vec<String>,
    },
    Load {
        input: Option<PathBuf>,
        quiet: bool,
    },
    Save {
        references: Vec<String>,
        output: Option<PathBuf>,
        format: Format,
    },
    Prune,
    Login {
        server: Option<String>,
        username: Option<String>,
        password: Option<String>,
        password_stdin: bool,
    },
    Logout {
        server: Option<String>,
    },
}

/// A compose verb over the project's services.
#[derive(Debug, Clone)]
pub enum ProjectAction {
    Pull {
        services: Vec<String>,
        quiet: bool,
        ignore_buildable: bool,
        ignore_failures: bool,
        include_deps: bool,
        always: bool,
    },
    Push {
        services: Vec<String>,
        quiet: bool,
        ignore_failures: bool,
        include_deps: bool,
    },
    Images {
        services: Vec<String>,
        quiet: bool,
        json: bool,
    },
}

fn parse_ref(s: &str) -> Result<Reference> {
    Ok(Reference::parse(s)?)
}

pub fn run(printer: &Printer, action: Action, mode: ProgressMode) -> Result<()> {
    match action {
        Action::Pull {
            reference,
            platform,
            quiet,
            download_only,
        } => image_pull(
            printer,
            &reference,
            platform.as_deref(),
            quiet_mode(mode, quiet),
            download_only,
        ),
        Action::Push { reference, quiet } => {
            image_push(printer, &reference, quiet_mode(mode, quiet))
        }
        Action::List {
            quiet,
            digests,
            no_trunc,
            json,
            repository,
        } => list(
            printer,
            quiet,
            digests,
            no_trunc,
            json,
            repository.as_deref(),
        ),
        Action::Remove { references, force } => remove(printer, &references, force),
        Action::Tag { source, target } => {
            let store = open_store()?;
            let desc = store.resolve(&parse_ref(&source)?)?;
            store.tag(&parse_ref(&target)?, &desc)?;
            Ok(())
        }
        Action::Inspect { references } => inspect(printer, &references),
        Action::Import {
            file,
            reference,
            changes,
        } => {
            let store = open_store()?;
            let r = parse_ref(&reference)?;
            let desc = if file == "-" {
                crate::image::import::import(&store, std::io::stdin().lock(), &r, &changes)?
            } else {
                let f = fs_err::File::open(&file)?;
                crate::image::import::import(&store, std::io::BufReader::new(f), &r, &changes)?
            };
            let config = store.manifest(&desc).map(|m| m.config.digest)?;
            printer.line(&config)?;
            Ok(())
        }
        Action::Load { input, quiet } => {
            let store = open_store()?;
            let names = match &input {
                Some(p) => archive::load(&store, std::io::BufReader::new(fs_err::File::open(p)?)),
                None => archive::load(&store, std::io::stdin().lock()),
            }
            .context("loading images")?;
            if !quiet {
                for n in names {
                    printer.line(&format!("Loaded image: {}", n.familiar()))?;
                }
            }
            Ok(())
        }
        Action::Save {
            references,
            output,
            format,
        } => {
            let store = open_store()?;
            let refs = references
                .iter()
                .map(|r| parse_ref(r))
                .collect::<Result<Vec<_>>>()?;
            match output {
                Some(path) => {
                    // Written beside the target and renamed: no torn archive.
                    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
                    let mut tmp = tempfile::NamedTempFile::new_in(dir.unwrap_or(Path::new(".")))
                        .with_context(|| format!("creating {}", path.display()))?;
                    archive::save(
                        &store,
                        &refs,
                        format,
                        std::io::BufWriter::new(tmp.as_file_mut()),
                    )?;
                    tmp.persist(&path)
                        .with_context(|| format!("writing {}", path.display()))?;
                }
                None => {
                    let out = std::io::stdout();
                    if out.is_terminal() {
                        bail!(
                            "cowardly refusing to save to a terminal. Use the -o flag or redirect"
                        );
                    }
                    archive::save(&store, &refs, format, std::io::BufWriter::new(out.lock()))?;
                }
            }
            Ok(())
        }
        Action::Prune => {
            let store = open_store()?;
            let freed = store.prune()?;
            printer.line(&format!("Total reclaimed space: {}", human_size(freed)))?;
            Ok(())
        }
        Action::Login {
            server,
            username,
            password,
            password_stdin,
        } => login(printer, server, username, password, password_stdin),
        Action::Logout { server } => {
            let registry = registry_domain(server.as_deref())?;
            let cfg = DockerConfig::from_env()?;
            if cfg.erase(&registry)? {
                printer.line(&format!("Removing login credentials for {registry}"))?;
            } else {
                printer.line(&format!("Not logged in to {registry}"))?;
            }
            Ok(())
        }
    }
}

fn quiet_mode(mode: ProgressMode, quiet: bool) -> ProgressMode {
    if quiet {
        ProgressMode::Quiet
    } else {
        mode
    }
}

/// `berth login SERVER`: `docker.io` when none; `https://host/` accepted.
fn registry_domain(server: Option<&str>) -> Result<String> {
    let Some(s) = server else {
        return Ok(crate::image::reference::DEFAULT_DOMAIN.to_string());
    };
    let host = s
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default();
    if host.is_empty() {
        bail!("invalid registry {s:?}");
    }
    Ok(match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        h => h.to_string(),
    })
}

/// `berth login`, as `docker login`: the user name and password from the
/// flags, `--password-stdin`, or prompts on the terminal (the password
/// without echo). With neither given, stored credentials that still work
/// are enough.
fn login(
    printer: &Printer,
    server: Option<String>,
    username: Option<String>,
    password: Option<String>,
    password_stdin: bool,
) -> Result<()> {
    let registry = registry_domain(server.as_deref())?;
    let cfg = DockerConfig::from_env()?;
    let registries = RegistryConfig::from_env()?;
    let check = |creds: &Credentials| {
        Client::new(
            &registries.base_url(&registry),
            &registry,
            Some(creds.clone()),
        )
        .ping(&[])
        .with_context(|| format!("logging in to {registry}"))
    };
    let password = match (password, password_stdin) {
        (Some(_), true) => bail!("--password and --password-stdin are mutually exclusive"),
        (Some(p), false) => {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
            Some(p)
        }
        (None, true) => {
            if username.is_none() {
                bail!("must provide --username with --password-stdin");
            }
            let mut p = String::new();
            std::io::stdin()
                .read_to_string(&mut p)
                .context("reading the password from standard input")?;
            Some(p.trim_end_matches(['\n', '\r']).to_string())
        }
        (None, false) => None,
    };
    let stored = cfg.get(&registry)?;
    if username.is_none() && password.is_none() {
        if let Some(creds) = &stored {
            if check(creds).is_ok() {
                eprintln!("Authenticating with existing credentials...");
                printer.line("Login Succeeded")?;
                return Ok(());
            }
        }
    }
    let interactive = || -> Result<()> {
        if !std::io::stdin().is_terminal() {
            bail!(
                "cannot perform an interactive login from a non-TTY device: \
                 give --username and --password-stdin (or run on a terminal)"
            );
        }
        Ok(())
    };
    let username = match username {
        Some(u) => u,
        None => {
            interactive()?;
            let default = stored.as_ref().map(|c| c.username.clone());
            let prompt = match &default {
                Some(d) => format!("Username ({d}): "),
                None => "Username: ".to_string(),
            };
            let typed = terminal::prompt(&prompt).context("reading the user name")?;
            match (typed.trim(), default) {
                ("", Some(d)) => d,
                (t, _) => t.to_string(),
            }
        }
    };
    if username.is_empty() {
        bail!("a user name is required to log in to {registry}");
    }
    let password = match password {
        Some(p) => p,
        None => {
            interactive()?;
            terminal::prompt_hidden("Password: ").context("reading the password")?
        }
    };
    if password.is_empty() {
        bail!("a password is required to log in to {registry}");
    }
    let creds = Credentials { username, password };
    check(&creds)?;
    cfg.store(&registry, &creds)
        .with_context(|| format!("storing the credentials for {registry}"))?;
    printer.line("Login Succeeded")?;
    Ok(())
}

/// Prompts on the terminal the login reads from (stdin), written to stderr
/// so that stdout keeps only the command's answer.
mod terminal {
    use std::io::{BufRead, Write};

    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions, Termios};

    pub fn prompt(text: &str) -> std::io::Result<String> {
        let mut err = std::io::stderr();
        err.write_all(text.as_bytes())?;
        err.flush()?;
        read_line()
    }

    /// Reads a line with the terminal's echo off, restored on return.
    pub fn prompt_hidden(text: &str) -> std::io::Result<String> {
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin)?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        // Keep the newline echoed so the cursor moves on, as `docker login`.
        quiet.local_modes.insert(LocalModes::ECHONL);
        let mut err = std::io::stderr();
        err.write_all(text.as_bytes())?;
        err.flush()?;
        tcsetattr(&stdin, OptionalActions::Flush, &quiet)?;
        let restore = Restore(saved);
        let line = read_line();
        drop(restore);
        line
    }

    struct Restore(Termios);

    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, &self.0);
        }
    }

    fn read_line() -> std::io::Result<String> {
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "end of input",
            ));
        }
        Ok(line.trim_end_matches(['\n', '\r']).to_string())
    }
}

/// Per-line progress, as `docker pull` (`id: status`) or `docker compose
/// pull` (` id status`, a `[+]` header) print it.
struct Display {
    tty: bool,
    style: Style,
    to_stderr: bool,
    state: Mutex<DisplayState>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Docker,
    Compose,
}

#[derive(Default)]
struct DisplayState {
    /// (id, indent, status, done)
    lines: Vec<(String, usize, String, bool)>,
    header: String,
    drawn: usize,
    last_draw: Option<Instant>,
}

impl Display {
    fn new(mode: ProgressMode, style: Style, to_stderr: bool) -> Option<Display> {
        let terminal = if to_stderr {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
        let tty = match mode {
            ProgressMode::Quiet => return None,
            ProgressMode::Tty => true,
            ProgressMode::Plain => false,
            ProgressMode::Auto => terminal,
        };
        Some(Display {
            tty,
            style,
            to_stderr,
            state: Mutex::new(DisplayState::default()),
        })
    }

    fn write(&self, text: &str) {
        // Progress is best effort: a closed terminal must not fail a pull.
        if self.to_stderr {
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
        } else {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
    }

    fn header(&self, text: String) {
        self.state.lock().expect("display").header = text;
    }

    /// Sets the status of line `id`; `transient` updates (byte counts) are
    /// drawn at most every 100 ms and never printed in plain mode.
    fn set(&self, id: &str, indent: usize, status: String, done: bool, transient: bool) {
        let mut st = self.state.lock().expect("display");
        let changed = match st.lines.iter_mut().find(|l| l.0 == id) {
            Some(l) => {
                let changed = l.2 != status;
                l.2 = status.clone();
                l.3 = done;
                changed
            }
            None => {
                st.lines
                    .push((id.to_string(), indent, status.clone(), done));
                true
            }
        };
        if !self.tty {
            if changed && !transient {
                let line = match self.style {
                    Style::Docker => format!("{id}: {status}\n"),
                    Style::Compose => format!(" {id} {status}\n"),
                };
                self.write(&line);
            }
            return;
        }
        let due = st
            .last_draw
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        if transient && !due {
            return;
        }
        self.redraw(&mut st);
    }

    fn redraw(&self, st: &mut DisplayState) {
        let mut out = String::new();
        if st.drawn > 0 {
            out.push_str(&format!("\x1b[{}A", st.drawn));
        }
        let mut n = 0;
        if self.style == Style::Compose {
            let total = st.lines.iter().filter(|l| l.1 == 0).count();
            let done = st.lines.iter().filter(|l| l.1 == 0 && l.3).count();
            out.push_str(&format!("\x1b[2K[+] {} {done}/{total}\n", st.header));
            n += 1;
        }
        for (id, indent, status, done) in &st.lines {
            let line = match self.style {
                Style::Docker => format!("{id}: {status}"),
                Style::Compose => {
                    let mark = if *done { "✔" } else { "⠿" };
                    format!("{} {mark} {id} {status}", "  ".repeat(*indent))
                }
            };
            out.push_str("\x1b[2K");
            out.push_str(&line);
            out.push('\n');
            n += 1;
        }
        st.drawn = n;
        st.last_draw = Some(Instant::now());
        self.write(&out);
    }

    fn finish(&self) {
        if self.tty {
            let mut st = self.state.lock().expect("display");
            self.redraw(&mut st);
        }
    }
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

fn bar(done: u64, total: u64) -> String {
    let width = 50usize;
    let filled = if total == 0 {
        width
    } else {
        ((done.min(total) as u128 * width as u128) / total as u128) as usize
    };
    let mut b = "=".repeat(filled);
    if filled < width {
        b.push('>');
        b.push_str(&" ".repeat(width - filled - 1));
    }
    format!("[{b}]  {}/{}", human_size(done), human_size(total))
}

fn layer_status(state: LayerState) -> (String, bool, bool) {
    match state {
        LayerState::Waiting => ("Pulling fs layer".into(), false, false),
        LayerState::AlreadyExists => ("Already exists".into(), true, false),
        LayerState::Downloading { done, total } => {
            (format!("Downloading {}", bar(done, total)), false, true)
        }
        LayerState::Retrying => ("Retrying".into(), false, false),
        LayerState::Verifying => ("Verifying Checksum".into(), false, false),
        LayerState::DownloadComplete => ("Download complete".into(), false, false),
        LayerState::Extracting => ("Extracting".into(), false, false),
        LayerState::PullComplete => ("Pull complete".into(), true, false),
    }
}

fn pull_progress<'a>(
    display: Option<&'a Display>,
    indent: usize,
) -> impl Fn(PullEvent<'_>) + Sync + 'a {
    move |ev| {
        let Some(d) = display else { return };
        if let PullEvent::Layer { digest, state } = ev {
            let (status, done, transient) = layer_status(state);
            d.set(short(digest), indent, status, done, transient);
        }
    }
}

fn image_pull(
    printer: &Printer,
    reference: &str,
    platform: Option<&str>,
    mode: ProgressMode,
    download_only: bool,
) -> Result<()> {
    let r = parse_ref(reference)?;
    let store = open_store()?;
    let registries = RegistryConfig::from_env()?;
    let auth = DockerConfig::from_env()?;
    let mut opts = PullOptions {
        unpack: !download_only,
        ..PullOptions::default()
    };
    if let Some(p) = platform {
        opts.platform = Platform::parse(p)?;
        opts.strict_platform = true;
    }
    let display = Display::new(mode, Style::Docker, false);
    if display.is_some() {
        let what = r.tag.as_deref().or(r.digest.as_deref()).unwrap_or("latest");
        printer.line(&format!("{what}: Pulling from {}", r.path))?;
    }
    let progress = pull_progress(display.as_ref(), 0);
    let outcome = pull::pull(&store, &registries, &auth, &r, &opts, &progress)?;
    if let Some(d) = &display {
        d.finish();
        printer.line(&format!("Digest: {}", outcome.digest))?;
        let status = if outcome.up_to_date {
            "Image is up to date for"
        } else {
            "Downloaded newer image for"
        };
        printer.line(&format!("Status: {status} {}", r.familiar()))?;
    }
    printer.line(&r.to_string())?;
    Ok(())
}

fn image_push(printer: &Printer, reference: &str, mode: ProgressMode) -> Result<()> {
    let r = parse_ref(reference)?;
    let store = open_store()?;
    let registries = RegistryConfig::from_env()?;
    let auth = DockerConfig::from_env()?;
    let display = Display::new(mode, Style::Docker, false);
    if display.is_some() {
        printer.line(&format!(
            "The push refers to repository [{}]",
            r.repository()
        ))?;
    }
    let progress = push_progress(display.as_ref(), 0);
    let opts = PushOptions {
        chunk_size: push_chunk_size()?,
        jobs: 3,
    };
    let outcome = push::push(&store, &registries, &auth, &r, &opts, &progress)?;
    if let Some(d) = &display {
        d.finish();
    }
    let tag = r.tag.as_deref().unwrap_or("latest");
    printer.line(&format!(
        "{tag}: digest: {} size: {}",
        outcome.digest, outcome.size
    ))?;
    Ok(())
}

/// `$BERTH_PUSH_CHUNK_SIZE` (bytes) makes every upload chunked; for
/// registries or proxies that refuse large requests.
fn push_chunk_size() -> Result<Option<u64>> {
    match std::env::var("BERTH_PUSH_CHUNK_SIZE") {
        Ok(v) if !v.is_empty() => {
            Ok(Some(v.parse().map_err(|_| {
                anyhow!("BERTH_PUSH_CHUNK_SIZE={v:?} is not a byte count")
            })?))
        }
        _ => Ok(None),
    }
}

fn push_progress<'a>(
    display: Option<&'a Display>,
    indent: usize,
) -> impl Fn(PushEvent<'_>) + Sync + 'a {
    move |ev| {
        let Some(d) = display else { return };
        let (digest, state) = match ev {
            PushEvent::Blob { digest, state } => (digest, state),
            PushEvent::Mounted { digest, from } => {
                d.set(
                    short(digest),
                    indent,
                    format!("Mounted from {from}"),
                    true,
                    false,
                );
                return;
            }
        };
        let (status, done, transient) = match state {
            PushState::Preparing => ("Preparing".to_string(), false, false),
            PushState::AlreadyExists => ("Layer already exists".into(), true, false),
            PushState::Pushing { done, total } => {
                (format!("Pushing {}", bar(done, total)), false, true)
            }
            PushState::Pushed => ("Pushed".into(), true, false),
        };
        d.set(short(digest), indent, status, done, transient);
    }
}

/// One row of `image ls`.
struct Row {
    entry: ImageEntry,
    reference: Reference,
    id: String,
    created: Option<String>,
    size: u64,
}

fn rows(store: &Store) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    for entry in store.list()? {
        let Ok(reference) = Reference::parse(&entry.reference) else {
            continue;
        };
        let manifest = store.manifest(&entry.manifest)?;
        let config = store.config(&manifest)?;
        let size = manifest.layers.iter().map(|l| l.size).sum::<u64>() + manifest.config.size;
        out.push(Row {
            id: manifest.config.digest.clone(),
            created: config.created.clone(),
            size,
            reference,
            entry,
        });
    }
    Ok(out)
}

fn list(
    printer: &Printer,
    quiet: bool,
    digests: bool,
    no_trunc: bool,
    json: bool,
    repository: Option<&str>,
) -> Result<()> {
    let store = open_store()?;
    let mut rows = rows(&store)?;
    if let Some(repo) = repository {
        let want = parse_ref(repo)?;
        rows.retain(|r| {
            r.reference.repository() == want.repository()
                && (!repo.contains(':') || r.reference.tag == want.tag)
        });
    }
    rows.sort_by(|a, b| {
        b.created
            .cmp(&a.created)
            .then_with(|| a.reference.cmp(&b.reference))
    });
    let id_of = |r: &Row| {
        if no_trunc {
            r.id.clone()
        } else {
            short(&r.id).to_string()
        }
    };
    if quiet {
        let mut seen = BTreeSet::new();
        for r in &rows {
            if seen.insert(r.id.clone()) {
                printer.line(&id_of(r))?;
            }
        }
        return Ok(());
    }
    let now = unix_now();
    if json {
        for r in &rows {
            let v = serde_json::json!({
                "Containers": "N/A",
                "CreatedAt": r.created.clone().unwrap_or_default(),
                "CreatedSince": created_since(r.created.as_deref(), now),
                "Digest": r.entry.manifest.digest,
                "ID": id_of(r),
                "Repository": r.reference.familiar_repository(),
                "Size": human_size(r.size),
                "Tag": r.reference.tag.clone().unwrap_or_else(|| "<none>".into()),
            });
            printer.line(&v.to_string())?;
        }
        return Ok(());
    }
    if digests {
        let header =
            ["REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED", "SIZE"].map(String::from);
        let body: Vec<[String; 6]> = rows
            .iter()
            .map(|r| {
                [
                    r.reference.familiar_repository(),
                    r.reference.tag.clone().unwrap_or_else(|| "<none>".into()),
                    r.entry.manifest.digest.clone(),
                    id_of(r),
                    created_since(r.created.as_deref(), now),
                    human_size(r.size),
                ]
            })
            .collect();
        return Ok(printer.out(&table(&header, &body))?);
    }
    let header = ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"].map(String::from);
    let body: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.reference.familiar_repository(),
                r.reference.tag.clone().unwrap_or_else(|| "<none>".into()),
                id_of(r),
                created_since(r.created.as_deref(), now),
                human_size(r.size),
            ]
        })
        .collect();
    Ok(printer.out(&table(&header, &body))?)
}

/// Names to remove: references, or an image ID prefix (all its names).
fn remove(printer: &Printer, references: &[String], force: bool) -> Result<()> {
    let store = open_store()?;
    let mut errors = Vec::new();
    for name in references {
        let targets: Vec<Reference> = match Reference::parse(name) {
            Ok(r) if store.resolve(&r).is_ok() => vec![r],
            _ => {
                let hex = name.strip_prefix("sha256:").unwrap_or(name);
                let matching: Vec<Row> =
                    if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                        rows(&store)?
                            .into_iter()
                            .filter(|r| short_hex(&r.id).starts_with(hex))
                            .collect()
                    } else {
                        Vec::new()
                    };
                let ids: BTreeSet<&str> = matching.iter().map(|r| r.id.as_str()).collect();
                if ids.is_empty() {
                    errors.push(format!("No such image: {name}"));
                    continue;
                }
                if ids.len() > 1 {
                    errors.push(format!("{name}: ambiguous image ID prefix"));
                    continue;
                }
                if matching.len() > 1 && !force {
                    errors.push(format!(
                        "conflict: unable to delete {name} (must be forced) - image is referenced in multiple repositories"
                    ));
                    continue;
                }
                matching.into_iter().map(|r| r.reference).collect()
            }
        };
        for r in targets {
            let removed = store.remove(&r)?;
            printer.line(&format!("Untagged: {}", r.familiar()))?;
            for d in removed {
                printer.line(&format!("Deleted: {d}"))?;
            }
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(())
}

fn short_hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

fn inspect(printer: &Printer, references: &[String]) -> Result<()> {
    let store = open_store()?;
    let all = store.list()?;
    let mut out = Vec::new();
    for name in references {
        let desc = store.find(name)?;
        let manifest = store.manifest(&desc)?;
        let config: serde_json::Value =
            serde_json::from_slice(&store.read_blob(&manifest.config.digest)?)?;
        let same: Vec<Reference> = all
            .iter()
            .filter(|e| e.manifest.digest == desc.digest)
            .filter_map(|e| Reference::parse(&e.reference).ok())
            .collect();
        let tags: Vec<String> = same
            .iter()
            .filter(|r| r.tag.is_some())
            .map(|r| r.familiar())
            .collect();
        let repo_digests: BTreeSet<String> = same
            .iter()
            .map(|r| format!("{}@{}", r.familiar_repository(), desc.digest))
            .collect();
        let size = manifest.layers.iter().map(|l| l.size).sum::<u64>();
        out.push(serde_json::json!({
            "Id": manifest.config.digest,
            "RepoTags": tags,
            "RepoDigests": repo_digests,
            "Created": config.get("created").cloned().unwrap_or_default(),
            "Author": config.get("author").cloned().unwrap_or_default(),
            "Architecture": config.get("architecture").cloned().unwrap_or_default(),
            "Variant": config.get("variant").cloned(),
            "Os": config.get("os").cloned().unwrap_or_default(),
            "Config": config.get("config").cloned().unwrap_or_default(),
            "RootFS": {
                "Type": "layers",
                "Layers": config.pointer("/rootfs/diff_ids").cloned().unwrap_or_default(),
            },
            "Size": size,
            "Descriptor": desc_json(&desc),
        }));
    }
    printer.line(&serde_json::to_string_pretty(&out)?)?;
    Ok(())
}

fn desc_json(d: &Descriptor) -> serde_json::Value {
    serde_json::json!({"mediaType": d.media_type, "digest": d.digest, "size": d.size})
}

/// The images a project's services name, in service order, deduplicated.
fn service_images(
    project: &crate::model::project::Project,
    services: &[String],
) -> Result<Vec<(String, String, String)>> {
    let mut out = Vec::new();
    for (name, s) in &project.services {
        if !services.is_empty() && !services.contains(name) {
            continue;
        }
        let image = if s.image.is_empty() {
            if s.build.is_none() {
                continue;
            }
            format!("{}-{}", project.name, name.to_lowercase())
        } else {
            s.image.clone()
        };
        out.push((name.clone(), image, s.platform.clone()));
    }
    Ok(out)
}

pub fn run_project(
    printer: &Printer,
    args: &ProjectArgs,
    action: ProjectAction,
    mode: ProgressMode,
) -> Result<()> {
    match action {
        ProjectAction::Pull {
            services,
            quiet,
            ignore_buildable,
            ignore_failures,
            include_deps,
            always,
        } => {
            let project = project::load(
                args,
                &if include_deps {
                    services.clone()
                } else {
                    Vec::new()
                },
            )?;
            project_pull(
                &project,
                &services,
                quiet_mode(mode, quiet),
                ignore_buildable,
                ignore_failures,
                always,
            )
        }
        ProjectAction::Push {
            services,
            quiet,
            ignore_failures,
            include_deps,
        } => {
            let project = project::load(
                args,
                &if include_deps {
                    services.clone()
                } else {
                    Vec::new()
                },
            )?;
            project_push(
                &project,
                &services,
                quiet_mode(mode, quiet),
                ignore_failures,
            )
        }
        ProjectAction::Images {
            services,
            quiet,
            json,
        } => {
            let project = project::load(args, &[])?;
            project_images(printer, &project, &services, quiet, json)
        }
    }
}

fn project_pull(
    project: &crate::model::project::Project,
    services: &[String],
    mode: ProgressMode,
    ignore_buildable: bool,
    ignore_failures: bool,
    always: bool,
) -> Result<()> {
    let store = open_store()?;
    let registries = RegistryConfig::from_env()?;
    let auth = DockerConfig::from_env()?;
    let mut work = Vec::new();
    for (name, s) in &project.services {
        if !services.is_empty() && !services.contains(name) {
            continue;
        }
        if s.image.is_empty() || (ignore_buildable && s.build.is_some()) {
            continue;
        }
        let policy = s.pull_policy.as_str();
        if matches!(policy, "never" | "build") {
            continue;
        }
        if !always
            && matches!(policy, "missing" | "if_not_present")
            && crate::engine::pull::present(&store, s)
        {
            continue;
        }
        let r = Reference::parse(&s.image)
            .with_context(|| format!("service {name:?}: image {:?}", s.image))?;
        let platform = if s.platform.is_empty() {
            Platform::host()
        } else {
            Platform::parse(&s.platform)?
        };
        work.push((name.clone(), r, platform));
    }
    let display = Display::new(mode, Style::Compose, true);
    if let Some(d) = &display {
        d.header("Pulling".into());
        for (name, _, _) in &work {
            d.set(name, 0, "Pulling".into(), false, false);
        }
    }
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for (name, r, platform) in &work {
            let (store, registries, auth, display, failures) =
                (&store, &registries, &auth, display.as_ref(), &failures);
            s.spawn(move || {
                let opts = PullOptions {
                    platform: platform.clone(),
                    // A service's `platform:` is explicit: another
                    // platform's image is refused, as docker does.
                    strict_platform: platform != &Platform::host(),
                    ..PullOptions::default()
                };
                let progress = pull_progress(display, 1);
                match pull::pull(store, registries, auth, r, &opts, &progress) {
                    Ok(_) => {
                        if let Some(d) = display {
                            let secs = started.elapsed().as_secs_f64();
                            d.set(name, 0, format!("Pulled {secs:.1}s"), true, false);
                        }
                    }
                    Err(e) => {
                        let msg = error_chain(&e);
                        if let Some(d) = display {
                            d.set(name, 0, format!("Error {msg}"), true, false);
                        }
                        failures
                            .lock()
                            .expect("failures")
                            .push(format!("{name}: {msg}"));
                    }
                }
            });
        }
    });
    if let Some(d) = &display {
        d.finish();
    }
    let failures = failures.into_inner().expect("failures");
    if !failures.is_empty() && !ignore_failures {
        bail!("{}", failures.join("\n"));
    }
    Ok(())
}

fn project_push(
    project: &crate::model::project::Project,
    services: &[String],
    mode: ProgressMode,
    ignore_failures: bool,
) -> Result<()> {
    let store = open_store()?;
    let registries = RegistryConfig::from_env()?;
    let auth = DockerConfig::from_env()?;
    let display = Display::new(mode, Style::Compose, true);
    if let Some(d) = &display {
        d.header("Pushing".into());
    }
    let mut failures = Vec::new();
    for (name, image, _) in service_images(project, services)? {
        // Compose pushes only what has a name a registry can take.
        if project.services[&name].image.is_empty() {
            continue;
        }
        let r = Reference::parse(&image)?;
        if let Some(d) = &display {
            d.set(&name, 0, "Pushing".into(), false, false);
        }
        let progress = push_progress(display.as_ref(), 1);
        let opts = PushOptions {
            chunk_size: push_chunk_size()?,
            jobs: 3,
        };
        match push::push(&store, &registries, &auth, &r, &opts, &progress) {
            Ok(_) => {
                if let Some(d) = &display {
                    d.set(&name, 0, "Pushed".into(), true, false);
                }
            }
            Err(e) => {
                let msg = error_chain(&e);
                if let Some(d) = &display {
                    d.set(&name, 0, format!("Error {msg}"), true, false);
                }
                failures.push(format!("{name}: {msg}"));
            }
        }
    }
    if let Some(d) = &display {
        d.finish();
    }
    if !failures.is_empty() && !ignore_failures {
        bail!("{}", failures.join("\n"));
    }
    Ok(())
}

/// `images`: the image of each of the project's containers, as `docker
/// compose images` lists them (CONTAINER, REPOSITORY, TAG, IMAGE ID, SIZE).
fn project_images(
    printer: &Printer,
    project: &crate::model::project::Project,
    services: &[String],
    quiet: bool,
    json: bool,
) -> Result<()> {
    let store = open_store()?;
    let paths = crate::engine::state::Paths::from_env();
    let mut containers = crate::engine::state::project_containers(&paths, &project.name)?;
    containers.retain(|c| services.is_empty() || services.contains(&c.service));
    containers.sort_by(|a, b| a.name.cmp(&b.name));
    // (container, repository, tag, id, size)
    let mut rows: Vec<(String, String, String, String, u64)> = Vec::new();
    for c in &containers {
        let r = Reference::parse(&c.image).ok();
        let resolved = store.find(&c.image).ok();
        let manifest = resolved.and_then(|d| store.manifest(&d).ok());
        let size = manifest.as_ref().map_or(0, |m| {
            m.layers.iter().map(|l| l.size).sum::<u64>() + m.config.size
        });
        let id = if c.image_id.is_empty() {
            manifest.map(|m| m.config.digest).unwrap_or_default()
        } else {
            c.image_id.clone()
        };
        rows.push((
            c.name.clone(),
            r.as_ref()
                .map(Reference::familiar_repository)
                .unwrap_or_default(),
            r.and_then(|r| r.tag).unwrap_or_default(),
            id,
            size,
        ));
    }
    if quiet {
        let mut seen = BTreeSet::new();
        for (_, _, _, id, _) in &rows {
            let hex = id.strip_prefix("sha256:").unwrap_or(id);
            if seen.insert(hex.to_owned()) {
                printer.line(hex)?;
            }
        }
        return Ok(());
    }
    if json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|(name, repo, tag, id, size)| {
                serde_json::json!({
                    "ID": id,
                    "ContainerName": name,
                    "Repository": repo,
                    "Tag": tag,
                    "Platform": format!("linux/{}", crate::image::store::host_arch()),
                    "Size": size,
                })
            })
            .collect();
        printer.line(&serde_json::to_string(&list)?)?;
        return Ok(());
    }
    let header = ["CONTAINER", "REPOSITORY", "TAG", "IMAGE ID", "SIZE"].map(String::from);
    let body: Vec<[String; 5]> = rows
        .iter()
        .map(|(name, repo, tag, id, size)| {
            let or_none = |s: &str| {
                if s.is_empty() {
                    "<none>".to_owned()
                } else {
                    s.to_owned()
                }
            };
            [
                name.clone(),
                or_none(repo),
                or_none(tag),
                short(id).to_string(),
                human_size(*size),
            ]
        })
        .collect();
    printer.out(&table(&header, &body))?;
    Ok(())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = c.source();
    }
    out
}

/// Docker's `units.HumanSize`: decimal units, three significant digits.
pub fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    let s = if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{}", units[i])
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `2024-01-02T03:04:05.123Z` (or with an offset) → Unix seconds.
fn parse_rfc3339(s: &str) -> Option<i64> {
    crate::engine::events::parse_rfc3339(s).map(|(secs, _)| secs)
}

/// Docker's `units.HumanDuration` + " ago".
fn created_since(created: Option<&str>, now: i64) -> String {
    let Some(t) = created.and_then(parse_rfc3339) else {
        return "N/A".into();
    };
    let secs = (now - t).max(0);
    let s = match secs {
        0 => "Less than a second".to_string(),
        1 => "1 second".to_string(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".to_string(),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 7200 => "About an hour".to_string(),
        s if s < 48 * 3600 => format!("{} hours", s / 3600),
        s if s < 7 * 86400 * 2 => format!("{} days", s / 86400),
        s if s < 30 * 86400 * 3 => format!("{} weeks", s / (7 * 86400)),
        s if s < 365 * 86400 * 2 => format!("{} months", s / (30 * 86400)),
        s => format!("{} years", s / (365 * 86400)),
    };
    format!("{s} ago")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(123_400_000), "123MB");
        assert_eq!(human_size(1_500), "1.5kB");
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2024-02-29T12:00:00.5+01:00"),
            Some(1_709_204_400)
        );
        assert_eq!(
            created_since(Some("1970-01-01T00:00:00Z"), 3 * 86400),
            "3 days ago"
        );
    }

    #[test]
    fn login_server_names() {
        assert_eq!(registry_domain(None).unwrap(), "docker.io");
        assert_eq!(
            registry_domain(Some("https://index.docker.io/v1/")).unwrap(),
            "docker.io"
        );
        assert_eq!(
            registry_domain(Some("127.0.0.1:5000")).unwrap(),
            "127.0.0.1:5000"
        );
    }
}
