//! `berth publish` against Debian's `docker-registry` on loopback: the
//! compose application pushed as an OCI artifact and read back with berth's
//! registry client (manifest, media types, annotations, layer bytes), the
//! OCI 1.0 form, a declined prompt (exit 130, nothing pushed) and
//! `--dry-run` (no network at all).

mod image_support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use berth::image::registry::{Client, RegistryError};
use image_support::*;
use sha2::{Digest, Sha256};

const ARTIFACT: &str = "application/vnd.docker.compose.project";
const COMPOSE_FILE: &str = "application/vnd.docker.compose.file+yaml";
const ENV_FILE: &str = "application/vnd.docker.compose.envfile";

/// A project directory and the berth state dirs, all thrown away on drop.
struct Fixture {
    dir: tempfile::TempDir,
    state: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("app.env"), "GREETING=hello\n").unwrap();
        std::fs::write(
            p.join("common.yaml"),
            "services:\n  base:\n    image: busybox:1\n    command: [\"true\"]\n",
        )
        .unwrap();
        std::fs::write(
            p.join("compose.yaml"),
            "services:\n  web:\n    image: busybox:1\n    env_file:\n      - app.env\n  worker:\n    extends:\n      file: common.yaml\n      service: base\n",
        )
        .unwrap();
        Fixture {
            dir,
            state: tempfile::tempdir().unwrap(),
        }
    }

    fn berth(&self, args: &[&str], stdin: &str) -> Output {
        let s = self.state.path();
        let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(args)
            .current_dir(self.dir.path())
            .env("BERTH_ROOT", s.join("root"))
            .env("BERTH_RUN", s.join("run"))
            .env("DOCKER_CONFIG", s.join("docker"))
            .env("BERTH_REGISTRIES_CONFIG", s.join("registries.json"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn client(reg: &Registry) -> Client {
    Client::new(&format!("http://{}", reg.host()), &reg.host(), None)
}

fn blob(client: &Client, repo: &str, digest: &str) -> Vec<u8> {
    let mut out = Vec::new();
    client
        .blob(repo, digest)
        .unwrap()
        .into_reader()
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(
        format!("sha256:{}", hex::encode(Sha256::digest(&out))),
        digest
    );
    out
}

fn hashed(path: &Path, ext: &str) -> String {
    format!(
        "{}.{ext}",
        hex::encode(Sha256::digest(path.to_string_lossy().as_bytes()))
    )
}

#[test]
fn publish_pushes_the_compose_artifact() {
    let reg = Registry::start(None);
    let fx = Fixture::new();
    let target = format!("{}/acme/app:v1", reg.host());
    let out = fx.berth(&["publish", &target, "--with-env", "-y"], "");
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains(&format!("{target} publishing")), "{all}");
    assert!(all.contains(&format!("{target} published")), "{all}");

    let c = client(&reg);
    let m = c.manifest("acme/app", "v1").unwrap();
    assert_eq!(m.media_type, "application/vnd.oci.image.manifest.v1+json");
    let v: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap();
    assert_eq!(v["schemaVersion"], 2);
    assert_eq!(v["artifactType"], ARTIFACT);
    assert_eq!(
        v["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    assert_eq!(
        blob(&c, "acme/app", v["config"]["digest"].as_str().unwrap()),
        b"{}"
    );
    assert!(v["annotations"]["org.opencontainers.image.created"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));

    let layers = v["layers"].as_array().unwrap();
    assert_eq!(
        layers.len(),
        3,
        "compose file, extends parent, env file: {v:#}"
    );
    let dir = std::fs::canonicalize(fx.dir.path()).unwrap();
    let env_name = hashed(&dir.join("app.env"), "env");
    let ext_name = hashed(&dir.join("common.yaml"), "yaml");

    let main = &layers[0];
    assert_eq!(main["mediaType"], COMPOSE_FILE);
    assert_eq!(
        main["annotations"]["com.docker.compose.file"],
        "compose.yaml"
    );
    assert!(main["annotations"]["com.docker.compose.version"].is_string());
    let main_text =
        String::from_utf8(blob(&c, "acme/app", main["digest"].as_str().unwrap())).unwrap();
    assert!(main_text.contains(&env_name), "{main_text}");
    assert!(main_text.contains(&ext_name), "{main_text}");
    assert!(!main_text.contains("app.env"), "{main_text}");
    assert!(!main_text.contains("common.yaml"), "{main_text}");

    let ext = &layers[1];
    assert_eq!(ext["mediaType"], COMPOSE_FILE);
    assert_eq!(
        ext["annotations"]["com.docker.compose.file"],
        ext_name.as_str()
    );
    assert_eq!(ext["annotations"]["com.docker.compose.extends"], "true");
    assert_eq!(
        blob(&c, "acme/app", ext["digest"].as_str().unwrap()),
        std::fs::read(dir.join("common.yaml")).unwrap()
    );

    let env = &layers[2];
    assert_eq!(env["mediaType"], ENV_FILE);
    assert_eq!(
        env["annotations"]["com.docker.compose.envfile"],
        env_name.as_str()
    );
    assert_eq!(
        blob(&c, "acme/app", env["digest"].as_str().unwrap()),
        b"GREETING=hello\n"
    );
}

#[test]
fn publish_oci_1_0_uses_the_compose_config_media_type() {
    let reg = Registry::start(None);
    let fx = Fixture::new();
    let target = format!("{}/acme/old", reg.host());
    let out = fx.berth(&["publish", &target, "-y", "--oci-version", "1.0"], "");
    assert!(out.status.success(), "{}", text(&out));
    let c = client(&reg);
    let m = c.manifest("acme/old", "latest").unwrap();
    let v: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap();
    assert!(v.get("artifactType").is_none(), "{v:#}");
    assert_eq!(
        v["config"]["mediaType"],
        "application/vnd.docker.compose.config.empty.v1+json"
    );
    // Without --with-env no env file layer.
    let layers = v["layers"].as_array().unwrap();
    assert!(
        layers.iter().all(|l| l["mediaType"] == COMPOSE_FILE),
        "{v:#}"
    );
}

#[test]
fn declined_prompt_exits_130_and_pushes_nothing() {
    let reg = Registry::start(None);
    let fx = Fixture::new();
    let target = format!("{}/acme/no", reg.host());
    let out = fx.berth(&["publish", &target], "n\n");
    let all = text(&out);
    assert_eq!(out.status.code(), Some(130), "{all}");
    assert!(all.contains("service \"web\": env_file declared"), "{all}");
    assert!(!all.contains(&format!("{target} publish")), "{all}");
    match client(&reg).manifest("acme/no", "latest") {
        Err(e @ RegistryError::Status { .. }) => assert_eq!(e.status(), Some(404), "{e}"),
        other => panic!("expected 404, got {other:?}"),
    }
}

#[test]
fn dry_run_needs_no_registry() {
    let fx = Fixture::new();
    // Nothing listens on this port: any request would fail.
    let target = format!("127.0.0.1:{}/acme/dry:v2", free_port());
    let out = fx.berth(&["publish", &target, "--with-env", "-y", "--dry-run"], "");
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains(&format!("{target} published")), "{all}");
}

#[test]
fn app_copies_the_images_and_ties_them_with_an_index() {
    need("tar");
    let reg = Registry::start(None);
    let fx = Fixture::new();
    let image = format!("{}/lib/tiny:1", reg.host());
    std::fs::write(
        fx.dir.path().join("compose.yaml"),
        format!("services:\n  web:\n    image: {image}\n"),
    )
    .unwrap();
    let rootfs = tempfile::tempdir().unwrap();
    std::fs::write(rootfs.path().join("hello"), "hi\n").unwrap();
    let tar = fx.state.path().join("tiny.tar");
    let st = Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(rootfs.path())
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let out = fx.berth(&["image", "import", tar.to_str().unwrap(), &image], "");
    assert!(out.status.success(), "{}", text(&out));
    // The image must be on its registry for its digest to be resolved.
    let out = fx.berth(&["push"], "");
    assert!(out.status.success(), "{}", text(&out));

    let target = format!("{}/acme/full:v1", reg.host());
    let out = fx.berth(&["publish", &target, "--app", "-y"], "");
    assert!(out.status.success(), "{}", text(&out));

    let c = client(&reg);
    let pushed_image = c.manifest("lib/tiny", "1").unwrap();
    let compose = c.manifest("acme/full", "v1").unwrap();
    let v: serde_json::Value = serde_json::from_slice(&compose.bytes).unwrap();
    // --app implies --resolve-image-digests: the last layer pins the image.
    let last = v["layers"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last["annotations"]["com.docker.compose.file"],
        "image-digests.yaml"
    );
    let pins = String::from_utf8(blob(&c, "acme/full", last["digest"].as_str().unwrap())).unwrap();
    assert!(pins.contains(&pushed_image.digest), "{pins}");

    // The image is in the artifact's repository too, by digest.
    let copied = c.manifest("acme/full", &pushed_image.digest).unwrap();
    assert_eq!(copied.bytes, pushed_image.bytes);

    // The index (pushed by digest, untagged): found among the revisions.
    let revs = reg
        .dir
        .path()
        .join("data/docker/registry/v2/repositories/acme/full/_manifests/revisions/sha256");
    let mut index = None;
    for e in std::fs::read_dir(&revs).unwrap() {
        let d = format!("sha256:{}", e.unwrap().file_name().to_string_lossy());
        let m = c.manifest("acme/full", &d).unwrap();
        if m.media_type == "application/vnd.oci.image.index.v1+json" {
            index = Some(m);
        }
    }
    let index = index.expect("an image index in the repository");
    let iv: serde_json::Value = serde_json::from_slice(&index.bytes).unwrap();
    assert_eq!(iv["subject"]["digest"], compose.digest.as_str());
    assert_eq!(iv["subject"]["artifactType"], ARTIFACT);
    assert_eq!(iv["manifests"][0]["digest"], pushed_image.digest.as_str());
}
