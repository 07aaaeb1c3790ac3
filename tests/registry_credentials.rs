//! `berth login`/`logout` and credentials beyond the config file, against
//! Debian's `docker-registry` with htpasswd on loopback: prompts on a
//! terminal (a pty made here; the password is not echoed), clear errors
//! without one, and Docker's credential helpers (`credsStore`,
//! `credHelpers`) played by a small shell script on `PATH` that keeps its
//! secrets in files and logs every action it is asked for.

mod image_support;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use image_support::*;

const USER: &str = "dave";
const PASS: &str = "s3cret-Pw";

struct Env {
    tmp: tempfile::TempDir,
    bin: PathBuf,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        std::fs::create_dir_all(bin.join("db")).unwrap();
        Env { tmp, bin }
    }

    fn docker_config(&self) -> PathBuf {
        self.tmp.path().join("docker/config.json")
    }

    fn write_config(&self, json: &str) {
        std::fs::create_dir_all(self.tmp.path().join("docker")).unwrap();
        std::fs::write(self.docker_config(), json).unwrap();
    }

    fn config(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.docker_config()).unwrap()).unwrap()
    }

    /// `docker-credential-<name>`: secrets in `bin/db/<server>`, actions
    /// appended to `bin/db/log`.
    fn install_helper(&self, name: &str) {
        let db = self.bin.join("db");
        let script = format!(
            r#"#!/bin/sh
db='{db}'
echo "{name} $1" >> "$db/log"
key() {{ printf %s "$1" | tr -c 'A-Za-z0-9' _; }}
case "$1" in
get)
  url=$(cat)
  f="$db/$(key "$url")"
  if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
store)
  json=$(cat)
  url=$(printf %s "$json" | sed -n 's/.*"ServerURL":"\([^"]*\)".*/\1/p')
  printf %s "$json" > "$db/$(key "$url")" ;;
erase)
  url=$(cat)
  f="$db/$(key "$url")"
  if [ -f "$f" ]; then rm "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
*) echo "unknown action $1" >&2; exit 1 ;;
esac
"#,
            db = db.display()
        );
        let path = self.bin.join(format!("docker-credential-{name}"));
        std::fs::write(&path, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn helper_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.bin.join("db/log"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    fn helper_secret(&self, server: &str) -> Option<serde_json::Value> {
        let key: String = server
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let data = std::fs::read(self.bin.join("db").join(key)).ok()?;
        Some(serde_json::from_slice(&data).unwrap())
    }

    fn command(&self, args: &[&str]) -> Command {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
        cmd.args(args)
            .env("BERTH_ROOT", self.tmp.path().join("root"))
            .env("DOCKER_CONFIG", self.tmp.path().join("docker"))
            .env("BERTH_REGISTRIES_CONFIG", self.tmp.path().join("none.json"))
            .env("PATH", path);
        cmd
    }

    /// Runs berth with `stdin` piped (or closed when `None`): no terminal.
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(s) = stdin {
            // berth may refuse and exit before it reads its input.
            match child.stdin.take().unwrap().write_all(s.as_bytes()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                r => r.unwrap(),
            }
        }
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "berth {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn fails(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(
            !out.status.success(),
            "berth {args:?} must fail: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// An image in the local store to push: busybox imported.
    fn import(&self, name: &str) {
        let tar = self.tmp.path().join("bb.tar");
        if !tar.exists() {
            std::fs::write(&tar, busybox_layer()).unwrap();
        }
        self.ok(
            &[
                "image",
                "import",
                tar.to_str().unwrap(),
                name,
                "-c",
                "CMD [\"sh\"]",
            ],
            None,
        );
    }
}

fn basic(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
}

#[test]
fn creds_store_helper_keeps_the_login_and_serves_push_and_pull() {
    let reg = Registry::start(Some((USER, PASS)));
    let env = Env::new();
    env.install_helper("berthtest");
    env.write_config(r#"{"credsStore": "berthtest", "proxies": {"default": {}}}"#);
    let host = reg.host();
    let name = format!("{host}/helped/bb:1");
    env.import(&name);

    // A wrong password is refused before the helper is asked to store it.
    env.fails(
        &["login", &host, "-u", USER, "--password-stdin"],
        Some("nope\n"),
    );
    assert!(env.helper_secret(&host).is_none());

    let out = env.ok(
        &["login", &host, "-u", USER, "--password-stdin"],
        Some(&format!("{PASS}\n")),
    );
    assert_eq!(out, "Login Succeeded\n");
    let secret = env.helper_secret(&host).expect("the helper stored it");
    assert_eq!(secret["ServerURL"], host.as_str());
    assert_eq!(secret["Username"], USER);
    assert_eq!(secret["Secret"], PASS);
    // The file records the login only; the other keys are kept.
    let cfg = env.config();
    assert_eq!(cfg["auths"][&host], serde_json::json!({}));
    assert_eq!(cfg["credsStore"], "berthtest");
    assert!(cfg["proxies"]["default"].is_object());
    assert!(!std::fs::read_to_string(env.docker_config())
        .unwrap()
        .contains(PASS));

    // Push and pull authenticate with what the helper gives.
    let out = env.ok(&["image", "push", &name], None);
    assert!(out.contains("Pushed"), "{out}");
    env.ok(&["image", "rm", &name], None);
    env.ok(&["image", "pull", &name], None);
    let log = env.helper_log();
    assert!(log.contains(&"berthtest store".to_string()), "{log:?}");
    assert!(log.contains(&"berthtest get".to_string()), "{log:?}");

    let out = env.ok(&["logout", &host], None);
    assert_eq!(out, format!("Removing login credentials for {host}\n"));
    assert!(env.helper_log().contains(&"berthtest erase".to_string()));
    assert!(env.helper_secret(&host).is_none());
    assert!(env.config()["auths"].get(&host).is_none());
    assert_eq!(env.config()["credsStore"], "berthtest");

    // The helper now has nothing: anonymous, and the registry says no.
    let err = env.fails(&["image", "pull", &format!("{host}/helped/bb:1")], None);
    assert!(err.contains("unauthorized"), "{err}");
}

#[test]
fn cred_helpers_name_a_helper_per_registry_before_creds_store() {
    let reg = Registry::start(Some((USER, PASS)));
    let env = Env::new();
    env.install_helper("perhost");
    let host = reg.host();
    env.write_config(&format!(
        r#"{{"credsStore": "nosuch", "credHelpers": {{"{host}": "perhost"}}}}"#
    ));
    // The secret is in the helper already (as another tool stored it).
    let mut store = Command::new(env.bin.join("docker-credential-perhost"))
        .arg("store")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    store
        .stdin
        .take()
        .unwrap()
        .write_all(
            format!(r#"{{"ServerURL":"{host}","Username":"{USER}","Secret":"{PASS}"}}"#).as_bytes(),
        )
        .unwrap();
    assert!(store.wait().unwrap().success());

    let name = format!("{host}/per/bb:1");
    env.import(&name);
    let out = env.ok(&["image", "push", &name], None);
    assert!(out.contains("Pushed"), "{out}");
    assert!(env.helper_log().contains(&"perhost get".to_string()));
    // `login` with no flags and working stored credentials needs no terminal.
    let out = env.run(&["login", &host], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Login Succeeded\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("existing credentials"));

    // Any other registry goes to credsStore, whose program is missing.
    let err = env.fails(&["image", "pull", "127.0.0.1:9/other/x:1"], None);
    assert!(
        err.contains("docker-credential-nosuch") && err.contains("credsStore"),
        "{err}"
    );
    assert!(err.contains("not on PATH"), "{err}");
}

#[test]
fn login_without_a_terminal_or_a_password_fails_clearly() {
    let env = Env::new();
    // No server is contacted for any of these.
    let err = env.fails(&["login", "127.0.0.1:9"], None);
    assert!(err.contains("non-TTY"), "{err}");
    let err = env.fails(&["login", "127.0.0.1:9", "-u", USER], None);
    assert!(err.contains("non-TTY"), "{err}");
    let err = env.fails(&["login", "127.0.0.1:9", "--password-stdin"], Some("x\n"));
    assert!(err.contains("--username"), "{err}");
    let err = env.fails(
        &[
            "login",
            "127.0.0.1:9",
            "-u",
            USER,
            "-p",
            "x",
            "--password-stdin",
        ],
        None,
    );
    assert!(err.contains("mutually exclusive"), "{err}");
    assert!(!env.docker_config().exists());
}

/// Waits until the terminal transcript contains `what`.
fn wait_for(out: &Arc<Mutex<Vec<u8>>>, what: &str) {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let text = String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
        if text.contains(what) {
            return;
        }
        assert!(
            Instant::now() < end,
            "no {what:?} on the terminal; it shows: {text:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn login_prompts_on_a_terminal_without_echoing_the_password() {
    let reg = Registry::start(Some((USER, PASS)));
    let env = Env::new();
    let host = reg.host();
    let pty = nix::pty::openpty(None, None).expect("precondition: a pty (/dev/ptmx)");
    let slave = std::fs::File::from(pty.slave);
    let mut child = env
        .command(&["login", &host])
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave.try_clone().unwrap())
        .spawn()
        .unwrap();
    drop(slave);
    let mut master = std::fs::File::from(pty.master);
    let out = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let out = out.clone();
        let mut m = master.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            // EIO once the last slave fd is closed.
            while let Ok(n) = m.read(&mut buf) {
                if n == 0 {
                    break;
                }
                out.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    wait_for(&out, "Username: ");
    master.write_all(format!("{USER}\n").as_bytes()).unwrap();
    wait_for(&out, "Password: ");
    master.write_all(format!("{PASS}\n").as_bytes()).unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("berth login did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    reader.join().unwrap();
    let transcript = String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
    assert!(status.success(), "{transcript}");
    assert!(transcript.contains("Login Succeeded"), "{transcript}");
    assert!(
        transcript.contains(USER),
        "the user name is echoed: {transcript}"
    );
    assert!(
        !transcript.contains(PASS),
        "the password must not be echoed: {transcript:?}"
    );
    assert_eq!(env.config()["auths"][&host]["auth"], basic(USER, PASS));
}
