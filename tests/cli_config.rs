//! `berth config` as a user runs it: the global flags, the environment
//! variables Compose reads, file discovery, and every output flag of
//! `config`. Each test works in its own temporary directory with a clean
//! environment (no `COMPOSE_*` from the caller leaks in).

use std::path::Path;
use std::process::{Command, Output, Stdio};

use std::io::Write;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

fn berth(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BERTH);
    cmd.current_dir(dir).args(args).env_clear();
    cmd.env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd.env("HOME", dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run berth")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "berth failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

fn err(out: &Output) -> String {
    assert!(!out.status.success(), "berth succeeded unexpectedly");
    String::from_utf8(out.stderr.clone()).expect("utf-8 stderr")
}

fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(p, text).unwrap();
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("JSON output")
}

const STACK: &str = "\
services:
  web:
    image: nginx:${TAG:-1.25}
    ports: [\"8080:80\"]
    volumes: [data:/data, ./site:/srv]
    depends_on: [db]
  db:
    image: mariadb
    environment:
      PASSWORD: ${DB_PASSWORD}
  debug:
    image: busybox
    profiles: [debug]
volumes:
  data: {}
networks:
  back: {}
";

#[test]
fn discovery_searches_upward_and_reads_the_override() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "compose.yaml", STACK);
    write(
        tmp.path(),
        "compose.override.yaml",
        "services:\n  web:\n    environment: [FROM_OVERRIDE=1]\n",
    );
    let sub = tmp.path().join("a/b");
    std::fs::create_dir_all(&sub).unwrap();
    let out = json(&ok(&berth(&sub, &["config", "--format", "json"], &[])));
    assert_eq!(out["services"]["web"]["environment"]["FROM_OVERRIDE"], "1");
    // The project directory is where the file was found, so the name is its
    // directory's, normalized.
    let dir_name = tmp.path().file_name().unwrap().to_str().unwrap();
    let want: String = dir_name
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    assert_eq!(out["name"], want.trim_start_matches(['_', '-']));
    assert_eq!(
        out["services"]["web"]["volumes"][1]["source"],
        tmp.path().join("site").to_str().unwrap()
    );
}

#[test]
fn no_file_found_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let e = err(&berth(tmp.path(), &["config"], &[]));
    assert!(e.contains("no configuration file provided"), "{e}");
}

#[test]
fn project_name_precedence() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "compose.yaml",
        "name: from-file\nservices:\n  s:\n    image: x\n",
    );
    let name = |args: &[&str], env: &[(&str, &str)]| {
        let mut a = args.to_vec();
        a.extend(["config", "--format", "json"]);
        json(&ok(&berth(tmp.path(), &a, env)))["name"].clone()
    };
    assert_eq!(name(&[], &[]), "from-file");
    assert_eq!(
        name(&[], &[("COMPOSE_PROJECT_NAME", "from-env")]),
        "from-env"
    );
    assert_eq!(
        name(
            &["-p", "from-flag"],
            &[("COMPOSE_PROJECT_NAME", "from-env")]
        ),
        "from-flag"
    );
    let e = err(&berth(tmp.path(), &["-p", "Bad Name!", "config"], &[]));
    assert!(e.contains("invalid project name"), "{e}");
}

#[test]
fn compose_file_with_separator_and_stdin() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "a.yaml", "services:\n  s:\n    image: a\n");
    write(
        tmp.path(),
        "b.yaml",
        "services:\n  s:\n    command: [run]\n",
    );
    let out = json(&ok(&berth(
        tmp.path(),
        &["config", "--format", "json"],
        &[
            ("COMPOSE_FILE", "a.yaml;b.yaml"),
            ("COMPOSE_PATH_SEPARATOR", ";"),
        ],
    )));
    assert_eq!(out["services"]["s"]["image"], "a");
    assert_eq!(out["services"]["s"]["command"][0], "run");

    let mut child = Command::new(BERTH)
        .current_dir(tmp.path())
        .env_clear()
        .args(["-p", "stdin", "-f", "-", "config", "--format", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"services:\n  from-stdin:\n    image: x\n")
        .unwrap();
    let out = json(&ok(&child.wait_with_output().unwrap()));
    assert_eq!(out["services"]["from-stdin"]["image"], "x");
}

#[test]
fn interpolation_sources_and_env_files() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "compose.yaml", STACK);
    write(tmp.path(), ".env", "TAG=from-dotenv\nDB_PASSWORD=p1\n");
    write(tmp.path(), "other.env", "TAG=from-other\n");
    let image = |args: &[&str], env: &[(&str, &str)]| {
        let mut a = args.to_vec();
        a.extend(["config", "--format", "json"]);
        json(&ok(&berth(tmp.path(), &a, env)))["services"]["web"]["image"].clone()
    };
    assert_eq!(image(&[], &[]), "nginx:from-dotenv");
    // The process environment always wins.
    assert_eq!(image(&[], &[("TAG", "from-env")]), "nginx:from-env");
    assert_eq!(image(&["--env-file", "other.env"], &[]), "nginx:from-other");
    assert_eq!(
        image(&[], &[("COMPOSE_ENV_FILES", "other.env")]),
        "nginx:from-other"
    );
    assert_eq!(
        image(&[], &[("COMPOSE_DISABLE_ENV_FILE", "1")]),
        "nginx:1.25"
    );
    // --no-interpolate leaves the template alone.
    let raw = json(&ok(&berth(
        tmp.path(),
        &["config", "--format", "json", "--no-interpolate"],
        &[],
    )));
    assert_eq!(raw["services"]["web"]["image"], "nginx:${TAG:-1.25}");
}

#[test]
fn profiles_from_flag_and_environment() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "compose.yaml", STACK);
    let services = |args: &[&str], env: &[(&str, &str)]| {
        let mut a = args.to_vec();
        a.extend(["config", "--services"]);
        ok(&berth(tmp.path(), &a, env))
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(services(&[], &[]), ["db", "web"]);
    assert_eq!(
        services(&["--profile", "debug"], &[]),
        ["db", "debug", "web"]
    );
    assert_eq!(
        services(&[], &[("COMPOSE_PROFILES", "debug")]),
        ["db", "debug", "web"]
    );
    let profiles = ok(&berth(tmp.path(), &["config", "--profiles"], &[]));
    assert_eq!(profiles.trim(), "debug");
}

#[test]
fn listing_flags() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "compose.yaml", STACK);
    let run = |args: &[&str]| ok(&berth(tmp.path(), args, &[("DB_PASSWORD", "x")]));
    assert_eq!(run(&["config", "--volumes"]).trim(), "data");
    // Unused networks are dropped, as Compose does; `default` is implicit.
    assert_eq!(run(&["config", "--networks"]).trim(), "default");
    let images = run(&["config", "--images"]);
    let mut images: Vec<&str> = images.lines().collect();
    images.sort_unstable();
    assert_eq!(images, ["mariadb", "nginx:1.25"]);
    let vars = run(&["config", "--variables", "--format", "json"]);
    let vars = json(&vars);
    assert_eq!(vars["TAG"]["DefaultValue"], "1.25");
    assert_eq!(vars["DB_PASSWORD"]["Required"], false);
    let envs = run(&["config", "--environment"]);
    assert!(envs.lines().any(|l| l == "DB_PASSWORD=x"), "{envs}");
}

#[test]
fn hash_is_stable_and_changes_with_the_service() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "compose.yaml", STACK);
    let hashes = |env: &[(&str, &str)]| {
        ok(&berth(tmp.path(), &["config", "--hash", "*"], env))
            .lines()
            .map(|l| {
                let (svc, h) = l.split_once(' ').expect("`service hash` lines");
                assert_eq!(h.len(), 64, "{l}");
                (svc.to_owned(), h.to_owned())
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let a = hashes(&[]);
    assert_eq!(a, hashes(&[]));
    let b = hashes(&[("TAG", "2")]);
    assert_ne!(a["web"], b["web"]);
    assert_eq!(a["db"], b["db"]);
    let one = ok(&berth(tmp.path(), &["config", "--hash", "db"], &[]));
    assert_eq!(one.trim(), format!("db {}", a["db"]));
}

#[test]
fn output_file_quiet_and_yaml() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "compose.yaml", STACK);
    let out = ok(&berth(tmp.path(), &["config", "-o", "out.yaml"], &[]));
    assert!(out.is_empty());
    let text = std::fs::read_to_string(tmp.path().join("out.yaml")).unwrap();
    let y: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(y["services"]["web"]["ports"][0]["target"], 80);
    assert!(ok(&berth(tmp.path(), &["config", "-q"], &[])).is_empty());
    // The YAML printed can be read back as a compose file.
    write(tmp.path(), "again/compose.yaml", &text);
    ok(&berth(&tmp.path().join("again"), &["config", "-q"], &[]));
}

#[test]
fn stage_switches() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  s:\n    image: x\n    ports: [\"80\"]\n    volumes: [./d:/d]\n    depends_on: [missing]\n",
    );
    let e = err(&berth(tmp.path(), &["config"], &[]));
    assert!(e.contains("undefined service \"missing\""), "{e}");
    let out = json(&ok(&berth(
        tmp.path(),
        &["config", "--format", "json", "--no-consistency"],
        &[],
    )));
    assert_eq!(
        out["services"]["s"]["volumes"][0]["source"],
        tmp.path().join("d").to_str().unwrap()
    );
    let out = json(&ok(&berth(
        tmp.path(),
        &[
            "config",
            "--format",
            "json",
            "--no-consistency",
            "--no-path-resolution",
        ],
        &[],
    )));
    assert_eq!(out["services"]["s"]["volumes"][0]["source"], "./d");
    let out = json(&ok(&berth(
        tmp.path(),
        &["config", "--format", "json", "--no-normalize"],
        &[],
    )));
    assert!(out["services"]["s"].get("networks").is_none(), "{out}");
}

#[test]
fn errors_name_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  web:\n    image: x\n    prots: [\"80\"]\n",
    );
    let e = err(&berth(tmp.path(), &["config"], &[]));
    let file = tmp.path().join("compose.yaml");
    assert!(
        e.contains(&format!("{}:4:5", file.display())),
        "no file:line:col in {e}"
    );
    assert!(e.contains("services.web"), "{e}");
    assert!(e.contains("did you mean 'ports'"), "{e}");

    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  web:\n    image: x\n  api:\n    image: y\n    depends_on: [nope]\n",
    );
    let e = err(&berth(tmp.path(), &["config"], &[]));
    assert!(e.contains(&format!("{}:4:3", file.display())), "{e}");
    assert!(e.contains("undefined service \"nope\""), "{e}");

    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  web:\n    image: ${X:?must be set}\n",
    );
    let e = err(&berth(tmp.path(), &["config"], &[]));
    assert!(e.contains("must be set"), "{e}");
    assert!(e.contains(&format!("{}:3", file.display())), "{e}");
}

#[test]
fn cycles_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n",
    );
    let e = err(&berth(tmp.path(), &["config"], &[]));
    assert!(e.contains("cycle"), "{e}");
    assert!(e.contains('a') && e.contains('b'), "{e}");
}

#[test]
fn version_and_help() {
    let tmp = tempfile::tempdir().unwrap();
    let v = ok(&berth(tmp.path(), &["--version"], &[]));
    assert!(v.contains(env!("CARGO_PKG_VERSION")), "{v}");
    let v = ok(&berth(tmp.path(), &["version", "--short"], &[]));
    assert_eq!(v.trim(), env!("CARGO_PKG_VERSION"));
    let v = json(&ok(&berth(tmp.path(), &["version", "-f", "json"], &[])));
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    let help = ok(&berth(tmp.path(), &["--help"], &[]));
    for verb in ["config", "version"] {
        assert!(help.contains(verb), "{verb} missing from {help}");
    }
    let help = ok(&berth(tmp.path(), &["config", "--help"], &[]));
    for flag in [
        "--format",
        "--output",
        "--services",
        "--hash",
        "--no-interpolate",
        "--no-consistency",
    ] {
        assert!(help.contains(flag), "{flag} missing from config help");
    }
}

#[test]
fn ui_flags_are_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "compose.yaml", STACK);
    ok(&berth(
        tmp.path(),
        &[
            "--dry-run",
            "--ansi",
            "never",
            "--progress",
            "plain",
            "config",
            "-q",
        ],
        &[],
    ));
    let e = err(&berth(tmp.path(), &["--ansi", "sometimes", "config"], &[]));
    assert!(e.contains("sometimes"), "{e}");
}

#[test]
fn no_interpolate_prints_compose_model_sorted_and_normalized() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  nginx:\n    build:\n      context: nginx-build\n      dockerfile: ${MYVAR}\n  \
         side:\n    image: x\n    pull_policy: if_not_present\n    build: .\n    networks: [back]\n\
         networks:\n  back: {}\n  ext:\n    external: true\n",
    );
    let out = ok(&berth(
        tmp.path(),
        &["-p", "demo", "config", "--no-interpolate"],
        &[],
    ));
    // The shape `docker compose config --no-interpolate` prints: keys in
    // order, the implicit default network, resource names, the template
    // kept as written.
    let dir = tmp.path().display();
    let want = format!(
        "name: demo\nnetworks:\n  back:\n    name: demo_back\n  default:\n    name: demo_default\n  \
         ext:\n    external: true\n    name: ext\nservices:\n  nginx:\n    build:\n      \
         context: {dir}/nginx-build\n      dockerfile: ${{MYVAR}}\n    networks:\n      default: null\n"
    );
    assert!(out.starts_with(&want), "got:\n{out}\nwant prefix:\n{want}");
    assert!(
        out.contains("  side:\n    build:\n      context: ")
            && out.contains("      dockerfile: Dockerfile\n")
            && out.contains("    pull_policy: missing\n"),
        "build defaults and pull_policy spelling:\n{out}"
    );
    // --no-normalize: sorted, but nothing added.
    let out = ok(&berth(
        tmp.path(),
        &["-p", "demo", "config", "--no-normalize"],
        &[],
    ));
    assert!(!out.contains("default"), "{out}");
    assert!(!out.contains("name: demo"), "{out}");
    assert!(out.starts_with("networks:\n"), "{out}");
}

#[test]
fn all_resources_keeps_what_no_service_uses() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  web:\n    image: x\nvolumes:\n  my_vol: {}\nnetworks:\n  my_net: {}\n",
    );
    let list = |args: &[&str], what: &str| {
        let mut a = args.to_vec();
        a.extend(["config", what]);
        ok(&berth(tmp.path(), &a, &[]))
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(list(&[], "--volumes"), Vec::<String>::new());
    assert_eq!(list(&[], "--networks"), ["default"]);
    assert_eq!(list(&["--all-resources"], "--volumes"), ["my_vol"]);
    assert_eq!(
        list(&["--all-resources"], "--networks"),
        ["default", "my_net"]
    );
}

#[test]
fn compose_global_and_up_flags_parse() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "compose.yaml", STACK);
    // Accepted where compose accepts them.
    ok(&berth(
        tmp.path(),
        &[
            "--compatibility",
            "--verbose",
            "--all-resources",
            "config",
            "-q",
        ],
        &[],
    ));
    ok(&berth(
        tmp.path(),
        &["config", "-q"],
        &[("COMPOSE_COMPATIBILITY", "1")],
    ));
    ok(&berth(
        tmp.path(),
        &["config", "-q"],
        &[("COMPOSE_PROGRESS", "quiet")],
    ));
    ok(&berth(
        tmp.path(),
        &["--progress", "none", "config", "-q"],
        &[],
    ));
    ok(&berth(
        tmp.path(),
        &["config", "-q"],
        &[("COMPOSE_ANSI", "never")],
    ));
    let e = err(&berth(
        tmp.path(),
        &["config", "-q"],
        &[("COMPOSE_PROGRESS", "loud")],
    ));
    assert!(e.contains("loud"), "{e}");
    // `--verbose` turns berth's debug events on, on standard error.
    let out = berth(tmp.path(), &["--verbose", "config", "-q"], &[]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    // --attach and --attach-dependencies exclude each other, as in compose;
    // --menu takes its value with `=` only, so `--menu web` names a service.
    let help = ok(&berth(tmp.path(), &["up", "--help"], &[]));
    for flag in ["--attach-dependencies", "--menu"] {
        assert!(help.contains(flag), "{flag} missing from up help");
    }
    let e = err(&berth(
        tmp.path(),
        &["up", "--attach", "web", "--attach-dependencies", "web"],
        &[],
    ));
    assert!(e.contains("cannot be used with"), "{e}");
    let e = err(&berth(tmp.path(), &["up", "--menu=maybe"], &[]));
    assert!(e.contains("maybe"), "{e}");
    let help = ok(&berth(tmp.path(), &["run", "--help"], &[]));
    for flag in ["--pull", "--quiet-pull"] {
        assert!(help.contains(flag), "{flag} missing from run help");
    }
}
