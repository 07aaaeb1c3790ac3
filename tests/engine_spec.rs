//! A service becomes an OCI runtime spec: each Docker rule (command line,
//! environment, user, capabilities, resources, mounts, namespaces) checked
//! on the `config.json` the runtime will read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth::engine::spec::{
    anonymous_targets, anonymous_targets_with, apply_volumes_from_mode, config_target,
    container_spec, parse_volumes_from, resolve_volumes_from, secret_target, shareable_mounts,
    ImageDefaults, NetNs, SharedMount, SpecError, SpecInputs, VolumesFrom, VolumesFromSource,
};
use berth::model::load::{load, ConfigDetails, ConfigFile, LoadOptions};
use berth::model::project::{Project, Service};
use serde_json::{json, Value};

fn project(yaml: &str) -> Project {
    let details = ConfigDetails {
        files: vec![ConfigFile {
            path: PathBuf::from("/srv/demo/compose.yaml"),
            content: yaml.to_owned(),
        }],
        working_dir: PathBuf::from("/srv/demo"),
        environment: Default::default(),
        explicit_name: Some("demo".into()),
    };
    load(&details, &LoadOptions::default()).expect("project loads")
}

fn service(yaml: &str) -> Service {
    let p = project(yaml);
    p.services.values().next().expect("one service").clone()
}

/// A rootfs with a passwd and group file, as Debian writes them.
fn rootfs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("etc")).unwrap();
    std::fs::write(
        dir.path().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\nmysql:x:101:102::/nonexistent:/bin/false\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("etc/group"),
        "root:x:0:\nwww-data:x:33:\nmysql:x:102:\nadm:x:4:www-data\nssl-cert:x:110:mysql,www-data\n",
    )
    .unwrap();
    dir
}

struct Inputs {
    image: ImageDefaults,
    netns: NetNs,
    rootfs: Option<PathBuf>,
    volume_names: BTreeMap<String, String>,
    anonymous: BTreeMap<String, String>,
    files: Vec<(String, PathBuf)>,
    volumes_from: Vec<SharedMount>,
    image_volumes: BTreeMap<String, PathBuf>,
}

impl Default for Inputs {
    fn default() -> Self {
        Inputs {
            image: ImageDefaults {
                cmd: vec!["sh".into()],
                ..Default::default()
            },
            netns: NetNs::Path("/run/berth/netns/abc".into()),
            rootfs: None,
            volume_names: BTreeMap::from([("data".to_owned(), "demo_data".to_owned())]),
            anonymous: BTreeMap::new(),
            files: Vec::new(),
            volumes_from: Vec::new(),
            image_volumes: BTreeMap::new(),
        }
    }
}

fn volume_dir(name: &str) -> PathBuf {
    Path::new("/var/lib/berth/volumes").join(name).join("_data")
}

fn with_inputs<T>(i: &Inputs, f: impl FnOnce(&SpecInputs<'_>) -> T) -> T {
    let inputs = SpecInputs {
        container_id: "0123456789abcdef0123",
        image: &i.image,
        netns: i.netns.clone(),
        volume_dir: &volume_dir,
        rootfs: i.rootfs.as_deref(),
        etc_files: vec![("/etc/hosts", PathBuf::from("/run/berth/c/hosts"))],
        volume_names: &i.volume_names,
        anonymous: &i.anonymous,
        files: i.files.clone(),
        volumes_from: &i.volumes_from,
        image_volumes: &i.image_volumes,
    };
    f(&inputs)
}

fn spec_with(svc: &Service, i: &Inputs) -> Result<Value, SpecError> {
    let volume_dir = |name: &str| Path::new("/var/lib/berth/volumes").join(name).join("_data");
    let inputs = SpecInputs {
        container_id: "0123456789abcdef0123",
        image: &i.image,
        netns: i.netns.clone(),
        volume_dir: &volume_dir,
        rootfs: i.rootfs.as_deref(),
        etc_files: vec![("/etc/hosts", PathBuf::from("/run/berth/c/hosts"))],
        volume_names: &i.volume_names,
        anonymous: &i.anonymous,
        files: i.files.clone(),
        volumes_from: &i.volumes_from,
        image_volumes: &i.image_volumes,
    };
    let spec = container_spec(svc, &inputs)?;
    // Whatever we produce must be a spec the runtime can read.
    serde_json::from_value::<berth_runtime::Spec>(spec.clone()).expect("a valid OCI spec");
    Ok(spec)
}

fn spec(yaml: &str) -> Value {
    spec_with(&service(yaml), &Inputs::default()).expect("spec")
}

fn strings(v: &Value) -> Vec<String> {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn command_line_follows_docker() {
    let image = ImageDefaults {
        entrypoint: vec!["/entrypoint.sh".into()],
        cmd: vec!["mariadbd".into()],
        ..Default::default()
    };
    let inputs = Inputs {
        image,
        ..Default::default()
    };
    let args =
        |yaml: &str| strings(&spec_with(&service(yaml), &inputs).unwrap()["process"]["args"]);
    assert_eq!(
        args("services: {db: {image: m}}"),
        ["/entrypoint.sh", "mariadbd"]
    );
    // `command` replaces the image's Cmd, keeping its entrypoint.
    assert_eq!(
        args("services: {db: {image: m, command: mariadbd --verbose}}"),
        ["/entrypoint.sh", "mariadbd", "--verbose"]
    );
    // `entrypoint` replaces the image's and drops its Cmd.
    assert_eq!(
        args("services: {db: {image: m, entrypoint: [sleep]}}"),
        ["sleep"]
    );
    assert_eq!(
        args("services: {db: {image: m, entrypoint: [sleep], command: ['5']}}"),
        ["sleep", "5"]
    );
    let none = Inputs {
        image: ImageDefaults::default(),
        ..Default::default()
    };
    assert_eq!(
        spec_with(&service("services: {db: {image: m}}"), &none).unwrap_err(),
        SpecError::NoCommand("db".into())
    );
}

#[test]
fn environment_image_then_service() {
    let inputs = Inputs {
        image: ImageDefaults {
            cmd: vec!["sh".into()],
            env: vec![
                "PATH=/opt/bin:/bin".into(),
                "A=image".into(),
                "B=image".into(),
            ],
            ..Default::default()
        },
        ..Default::default()
    };
    let svc = service(
        "services: {web: {image: x, hostname: web1, environment: {B: svc, C: '', D: null}}}",
    );
    let env = strings(&spec_with(&svc, &inputs).unwrap()["process"]["env"]);
    assert_eq!(
        env,
        [
            "PATH=/opt/bin:/bin",
            "HOSTNAME=web1",
            "A=image",
            "B=svc",
            "C="
        ]
    );
    // Without a hostname the container's short id is the hostname.
    let s = spec("services: {web: {image: x}}");
    assert_eq!(s["hostname"], "0123456789ab");
    assert!(strings(&s["process"]["env"]).contains(&"HOSTNAME=0123456789ab".to_owned()));
    assert!(strings(&s["process"]["env"])[0].starts_with("PATH=/usr/local/sbin:"));
}

#[test]
fn users_and_groups_resolve_in_the_rootfs() {
    let root = rootfs();
    let inputs = Inputs {
        rootfs: Some(root.path().to_owned()),
        ..Default::default()
    };
    let user =
        |yaml: &str| spec_with(&service(yaml), &inputs).map(|s| s["process"]["user"].clone());
    assert_eq!(
        user("services: {w: {image: x, user: www-data}}").unwrap(),
        json!({"uid": 33, "gid": 33, "additionalGids": [4, 110]})
    );
    // An explicit group replaces the primary group and drops memberships.
    assert_eq!(
        user("services: {w: {image: x, user: 'mysql:adm'}}").unwrap(),
        json!({"uid": 101, "gid": 4})
    );
    // Numeric ids need no passwd entry.
    assert_eq!(
        user("services: {w: {image: x, user: '1234:5678'}}").unwrap(),
        json!({"uid": 1234, "gid": 5678})
    );
    assert_eq!(
        user("services: {w: {image: x, user: mysql, group_add: [adm, '900']}}").unwrap(),
        json!({"uid": 101, "gid": 102, "additionalGids": [110, 4, 900]})
    );
    assert_eq!(
        user("services: {w: {image: x, user: nobody}}").unwrap_err(),
        SpecError::UnknownUser {
            service: "w".into(),
            user: "nobody".into()
        }
    );
    assert_eq!(
        user("services: {w: {image: x, user: 'root:wheel'}}").unwrap_err(),
        SpecError::UnknownGroup {
            service: "w".into(),
            group: "wheel".into()
        }
    );
    // The image's user applies when the service sets none.
    let image_user = Inputs {
        image: ImageDefaults {
            cmd: vec!["sh".into()],
            user: "mysql".into(),
            working_dir: "/var/lib/mysql".into(),
            ..Default::default()
        },
        rootfs: Some(root.path().to_owned()),
        ..Default::default()
    };
    let s = spec_with(&service("services: {w: {image: x}}"), &image_user).unwrap();
    assert_eq!(s["process"]["user"]["uid"], 101);
    assert_eq!(s["process"]["cwd"], "/var/lib/mysql");
    let s = spec_with(
        &service("services: {w: {image: x, working_dir: /srv}}"),
        &image_user,
    )
    .unwrap();
    assert_eq!(s["process"]["cwd"], "/srv");
}

#[test]
fn capabilities_add_drop_and_privileged() {
    let caps = |yaml: &str| strings(&spec(yaml)["process"]["capabilities"]["bounding"]);
    let default = caps("services: {w: {image: x}}");
    assert_eq!(default.len(), 14, "Docker's 14 default capabilities");
    let c =
        caps("services: {w: {image: x, cap_add: [net_admin, CAP_SYS_TIME], cap_drop: [CHOWN]}}");
    assert!(c.contains(&"CAP_NET_ADMIN".to_owned()) && c.contains(&"CAP_SYS_TIME".to_owned()));
    assert!(!c.contains(&"CAP_CHOWN".to_owned()));
    assert_eq!(
        caps("services: {w: {image: x, cap_drop: [ALL], cap_add: [NET_BIND_SERVICE]}}"),
        ["CAP_NET_BIND_SERVICE"]
    );
    assert_eq!(
        spec_with(
            &service("services: {w: {image: x, cap_add: [FLY]}}"),
            &Inputs::default()
        )
        .unwrap_err(),
        SpecError::UnknownCapability {
            service: "w".into(),
            cap: "FLY".into()
        }
    );
    let p = spec("services: {w: {image: x, privileged: true}}");
    assert!(strings(&p["process"]["capabilities"]["bounding"]).len() > 38);
    assert!(p["linux"].get("seccomp").is_none());
    assert_eq!(p["linux"]["maskedPaths"], json!([]));
    let sys = p["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/sys")
        .unwrap();
    assert!(!strings(&sys["options"]).contains(&"ro".to_owned()));
}

#[test]
fn security_options() {
    let s = spec("services: {w: {image: x}}");
    assert!(
        s["linux"]["seccomp"].is_object(),
        "Docker's seccomp profile by default"
    );
    let s = spec("services: {w: {image: x, security_opt: ['no-new-privileges:true', 'seccomp=unconfined', 'apparmor=unconfined']}}");
    assert_eq!(s["process"]["noNewPrivileges"], true);
    assert!(s["linux"].get("seccomp").is_none());
    let err = spec_with(
        &service("services: {w: {image: x, security_opt: ['seccomp=/etc/profile.json']}}"),
        &Inputs::default(),
    )
    .unwrap_err();
    assert!(matches!(err, SpecError::SecurityOpt { .. }), "{err}");
}

#[test]
fn resources_from_the_service_and_deploy() {
    let r = spec("services: {w: {image: x, mem_limit: 256m, mem_reservation: 64m, memswap_limit: 512m, cpus: 1.5, cpu_shares: 512, cpuset: '0-1', pids_limit: 100, shm_size: 128m, oom_score_adj: 500, ulimits: {nofile: {soft: 1024, hard: 4096}, nproc: 65535}}}");
    let res = &r["linux"]["resources"];
    assert_eq!(res["memory"]["limit"], 256 << 20);
    assert_eq!(res["memory"]["reservation"], 64 << 20);
    assert_eq!(res["memory"]["swap"], 512 << 20);
    assert_eq!(
        res["cpu"],
        json!({"period": 100000, "quota": 150000, "shares": 512, "cpus": "0-1"})
    );
    assert_eq!(res["pids"]["limit"], 100);
    assert_eq!(r["process"]["oomScoreAdj"], 500);
    let shm = r["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/dev/shm")
        .unwrap();
    assert!(strings(&shm["options"]).contains(&format!("size={}", 128 << 20)));
    let rl = r["process"]["rlimits"].as_array().unwrap();
    assert!(rl.contains(&json!({"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096})));
    assert!(rl.contains(&json!({"type": "RLIMIT_NPROC", "soft": 65535, "hard": 65535})));

    let d = spec("services: {w: {image: x, deploy: {resources: {limits: {cpus: '0.5', memory: 1g, pids: 7}, reservations: {memory: 10m}}}}}");
    let res = &d["linux"]["resources"];
    assert_eq!(res["memory"]["limit"], 1 << 30);
    assert_eq!(res["memory"]["reservation"], 10 << 20);
    assert_eq!(res["cpu"]["quota"], 50000);
    assert_eq!(res["pids"]["limit"], 7);
    assert_eq!(
        spec_with(
            &service("services: {w: {image: x, ulimits: {bogus: 1}}}"),
            &Inputs::default()
        )
        .unwrap_err(),
        SpecError::Ulimit {
            service: "w".into(),
            name: "bogus".into()
        }
    );
}

#[test]
fn mounts_binds_volumes_tmpfs_and_etc_files() {
    let s = spec(
        "services: {w: {image: x, read_only: true, tmpfs: ['/run:size=1m'], volumes: ['./www:/var/www/html:ro', 'data:/var/lib/mysql', {type: volume, source: data, target: /sub, volume: {subpath: a/b}}, {type: tmpfs, target: /cache, tmpfs: {size: 2048, mode: 0o1770}}]}}\nvolumes: {data: {}}",
    );
    assert_eq!(s["root"]["readonly"], true);
    let mounts = s["mounts"].as_array().unwrap();
    let find = |d: &str| {
        mounts
            .iter()
            .find(|m| m["destination"] == d)
            .unwrap_or_else(|| panic!("no mount at {d}: {mounts:#?}"))
    };
    assert_eq!(
        find("/var/www/html"),
        &json!({"destination": "/var/www/html", "type": "bind", "source": "/srv/demo/www", "options": ["rbind", "ro", "rprivate"]})
    );
    assert_eq!(
        find("/var/lib/mysql")["source"],
        "/var/lib/berth/volumes/demo_data/_data"
    );
    assert_eq!(
        find("/sub")["source"],
        "/var/lib/berth/volumes/demo_data/_data/a/b"
    );
    assert_eq!(find("/run")["type"], "tmpfs");
    assert!(strings(&find("/run")["options"]).contains(&"size=1m".to_owned()));
    let cache = strings(&find("/cache")["options"]);
    assert!(
        cache.contains(&"size=2048".to_owned()) && cache.contains(&"mode=1770".to_owned()),
        "{cache:?}"
    );
    assert_eq!(find("/etc/hosts")["source"], "/run/berth/c/hosts");
    // Docker's own mounts stay.
    for d in [
        "/proc",
        "/dev",
        "/dev/pts",
        "/sys",
        "/dev/shm",
        "/dev/mqueue",
    ] {
        find(d);
    }
}

#[test]
fn namespaces_follow_network_pid_and_ipc_modes() {
    let types = |s: &Value| -> Vec<(String, Option<String>)> {
        s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    n["type"].as_str().unwrap().to_owned(),
                    n["path"].as_str().map(str::to_owned),
                )
            })
            .collect()
    };
    let s = spec("services: {w: {image: x}}");
    assert!(types(&s).contains(&("network".into(), Some("/run/berth/netns/abc".into()))));
    for t in ["pid", "ipc", "uts", "mount"] {
        assert!(types(&s).iter().any(|(n, _)| n == t), "{t}");
    }
    let host = Inputs {
        netns: NetNs::Host,
        ..Default::default()
    };
    let s = spec_with(
        &service("services: {w: {image: x, pid: host, ipc: host}}"),
        &host,
    )
    .unwrap();
    let t = types(&s);
    assert!(
        !t.iter()
            .any(|(n, _)| n == "network" || n == "pid" || n == "ipc"),
        "{t:?}"
    );
    let none = Inputs {
        netns: NetNs::New,
        ..Default::default()
    };
    let s = spec_with(&service("services: {w: {image: x}}"), &none).unwrap();
    assert!(types(&s).contains(&("network".into(), None)));
}

#[test]
fn sysctls_annotations_and_tty() {
    let s = spec("services: {w: {image: x, tty: true, domainname: example.org, sysctls: {net.core.somaxconn: '1024'}, annotations: {a: b}}}");
    assert_eq!(s["process"]["terminal"], true);
    assert_eq!(s["domainname"], "example.org");
    assert_eq!(s["linux"]["sysctl"], json!({"net.core.somaxconn": "1024"}));
    assert_eq!(s["annotations"], json!({"a": "b"}));
}

#[test]
fn secret_and_config_targets_follow_docker_compose() {
    let p = project(
        "services:\n  w:\n    image: x\n    secrets: [a, {source: b, target: custom}, {source: c, target: /abs/c}]\n    configs: [d, {source: e, target: rel/e}, {source: f, target: /etc/f.conf}]\nsecrets: {a: {file: ./a}, b: {file: ./b}, c: {file: ./c}}\nconfigs: {d: {file: ./d}, e: {content: hi}, f: {file: ./f}}\n",
    );
    let w = &p.services["w"];
    let secrets: Vec<String> = w.secrets.iter().map(secret_target).collect();
    assert_eq!(secrets, ["/run/secrets/a", "/run/secrets/custom", "/abs/c"]);
    let configs: Vec<String> = w.configs.iter().map(config_target).collect();
    assert_eq!(configs, ["/d", "/rel/e", "/etc/f.conf"]);
    // The engine's copies are bound read-only at those paths.
    let i = Inputs {
        files: vec![("/run/secrets/a".into(), PathBuf::from("/c/secrets/a"))],
        ..Default::default()
    };
    let s = spec_with(w, &i).unwrap();
    let m = s["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/run/secrets/a")
        .expect("a secret mount");
    assert_eq!(m["source"], "/c/secrets/a");
    assert!(strings(&m["options"]).contains(&"ro".to_owned()));
}

#[test]
fn anonymous_volumes_from_the_service_and_the_image() {
    let svc = service(
        "services: {w: {image: x, volumes: ['/data', 'data:/var/lib/mysql', {type: volume, target: /long}], tmpfs: ['/tmp']}}\nvolumes: {data: {}}",
    );
    let image = ImageDefaults {
        cmd: vec!["sh".into()],
        // /var/lib/mysql and /tmp are mounted by the service: no anonymous
        // volume there; /data is named twice.
        volumes: vec![
            "/var/lib/mysql".into(),
            "/logs/".into(),
            "/tmp".into(),
            "/data".into(),
        ],
        ..Default::default()
    };
    assert_eq!(anonymous_targets(&svc, &image), ["/data", "/long", "/logs"]);
    let i = Inputs {
        image: image.clone(),
        anonymous: BTreeMap::from([
            ("/data".to_owned(), "aaa".to_owned()),
            ("/long".to_owned(), "bbb".to_owned()),
            ("/logs".to_owned(), "ccc".to_owned()),
        ]),
        ..Default::default()
    };
    let s = spec_with(&svc, &i).unwrap();
    let source = |d: &str| {
        let all: Vec<&Value> = s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["destination"] == d)
            .collect();
        assert_eq!(all.len(), 1, "one mount at {d}: {all:?}");
        all[0]["source"].as_str().unwrap().to_owned()
    };
    assert_eq!(source("/data"), "/var/lib/berth/volumes/aaa/_data");
    assert_eq!(source("/long"), "/var/lib/berth/volumes/bbb/_data");
    assert_eq!(source("/logs"), "/var/lib/berth/volumes/ccc/_data");
    assert_eq!(
        source("/var/lib/mysql"),
        "/var/lib/berth/volumes/demo_data/_data"
    );
    // The engine must have made every one.
    let missing = Inputs {
        image,
        ..Default::default()
    };
    assert!(matches!(
        spec_with(&svc, &missing),
        Err(SpecError::MissingAnonymous { .. })
    ));
}

#[test]
fn init_tmpfs_read_only_and_subpath_checks() {
    let s = spec("services: {w: {image: x, init: true}}");
    assert_eq!(s["annotations"][berth_runtime::INIT_ANNOTATION], "true");
    let s = spec("services: {w: {image: x}}");
    assert!(s["annotations"]
        .get(berth_runtime::INIT_ANNOTATION)
        .is_none());
    let s = spec("services: {w: {image: x, volumes: [{type: tmpfs, target: /t, read_only: true, tmpfs: {size: 1m}}]}}");
    let t = s["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/t")
        .unwrap()
        .clone();
    let opts = strings(&t["options"]);
    assert!(
        opts.contains(&"ro".to_owned()) && opts.contains(&"size=1048576".to_owned()),
        "{opts:?}"
    );
    let svc = service("services: {w: {image: x, volumes: [{type: volume, source: data, target: /d, volume: {subpath: ../etc}}]}}\nvolumes: {data: {}}");
    assert!(matches!(
        spec_with(&svc, &Inputs::default()),
        Err(SpecError::Subpath { .. })
    ));
}

#[test]
fn memory_blkio_and_cgroup_parent() {
    let s = spec("services: {w: {image: x, oom_kill_disable: true, mem_swappiness: 10, blkio_config: {weight: 300}, cgroup_parent: /mine/}}");
    let res = &s["linux"]["resources"];
    assert_eq!(res["memory"]["disableOOMKiller"], true);
    assert_eq!(res["memory"]["swappiness"], 10);
    assert_eq!(res["blockIO"]["weight"], 300);
    assert_eq!(s["linux"]["cgroupsPath"], "/mine/0123456789abcdef0123");
}

#[test]
fn resolv_conf_without_berths_dns_takes_the_services_settings() {
    let host = "# generated\nnameserver 10.0.0.1\nsearch corp.example\noptions ndots:2\n";
    let svc = service("services: {w: {image: x, dns: [9.9.9.9, 1.1.1.1], dns_opt: [timeout:1]}}");
    assert_eq!(
        berth::engine::spec::host_resolv_conf(host, &svc),
        "# generated\nsearch corp.example\nnameserver 9.9.9.9\nnameserver 1.1.1.1\noptions timeout:1\n"
    );
    let plain = service("services: {w: {image: x}}");
    assert_eq!(berth::engine::spec::host_resolv_conf(host, &plain), host);
}

fn shared(target: &str, source: &str, read_only: bool) -> SharedMount {
    SharedMount {
        target: target.into(),
        source: source.into(),
        read_only,
    }
}

fn mounts_at<'a>(s: &'a Value, d: &str) -> Vec<&'a Value> {
    s["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["destination"] == d)
        .collect()
}

#[test]
fn volumes_from_entries_parse_as_the_compose_spec_writes_them() {
    let p = |e: &str| parse_volumes_from("app", e);
    let service = |n: &str, ro| VolumesFrom {
        source: VolumesFromSource::Service(n.into()),
        read_only: ro,
    };
    assert_eq!(p("db"), Ok(service("db", None)));
    assert_eq!(p("db:ro"), Ok(service("db", Some(true))));
    assert_eq!(p("db:rw"), Ok(service("db", Some(false))));
    assert_eq!(
        p("container:data-1:ro"),
        Ok(VolumesFrom {
            source: VolumesFromSource::Container("data-1".into()),
            read_only: Some(true),
        })
    );
    for bad in ["db:rx", "", "container:", "db:ro:x"] {
        assert!(
            matches!(p(bad), Err(SpecError::VolumesFrom { .. })),
            "{bad:?} accepted"
        );
    }
}

#[test]
fn volumes_from_references_resolve_to_containers_or_fail_as_compose_does() {
    let svc = project(
        "services: {app: {image: x, volumes_from: ['db:ro', 'cache', 'container:other']}, db: {image: x}, cache: {image: x}}",
    )
    .services["app"]
    .clone();
    let lookup = |n: &str| match n {
        "db" => Some("1111".to_owned()),
        "cache" => Some("2222".to_owned()),
        _ => None,
    };
    let r = resolve_volumes_from(&svc, &lookup).unwrap();
    assert_eq!(
        r.volumes_from,
        ["container:1111:ro", "container:2222", "container:other"]
    );
    let none = |_: &str| None;
    assert_eq!(
        resolve_volumes_from(&svc, &none).unwrap_err().to_string(),
        // Docker Compose's words (TestNoDepsVolumeFrom checks them).
        "cannot share volume with service db: container missing"
    );
}

#[test]
fn volumes_from_mounts_follow_the_donor_unless_the_service_mounts_there() {
    let svc = project(
        "services: {app: {image: x, volumes: ['data:/var/lib/mysql'], tmpfs: ['/tmp'], volumes_from: [db]}, db: {image: x}}\nvolumes: {data: {}}",
    )
    .services["app"]
    .clone();
    let donor = [
        shared("/var/data", "/v/anon/_data", false),
        shared("/etc/conf/", "/srv/conf", true),
        // Where the service mounts its own: the donor's gives way.
        shared("/var/lib/mysql", "/v/other/_data", false),
        shared("/tmp", "/v/tmp/_data", false),
    ];
    // `:ro` makes every mount read-only; no mode keeps each one's own.
    let ro = apply_volumes_from_mode(Some(true), &donor);
    assert!(ro.iter().all(|m| m.read_only));
    let rw = apply_volumes_from_mode(Some(false), &donor);
    assert!(rw.iter().all(|m| !m.read_only));
    let i = Inputs {
        volumes_from: apply_volumes_from_mode(None, &donor),
        ..Default::default()
    };
    let s = spec_with(&svc, &i).unwrap();
    let data = mounts_at(&s, "/var/data");
    assert_eq!(
        data,
        [
            &json!({"destination": "/var/data", "type": "bind", "source": "/v/anon/_data", "options": ["rbind", "rw", "rprivate"]})
        ]
    );
    assert_eq!(
        strings(&mounts_at(&s, "/etc/conf/")[0]["options"]),
        ["rbind", "ro", "rprivate"]
    );
    let mysql = mounts_at(&s, "/var/lib/mysql");
    assert_eq!(mysql.len(), 1);
    assert_eq!(mysql[0]["source"], "/var/lib/berth/volumes/demo_data/_data");
    let tmp = mounts_at(&s, "/tmp");
    assert_eq!(tmp.len(), 1);
    assert_eq!(tmp[0]["type"], "tmpfs");

    // What this container shares in turn: its own volumes, then what it
    // took (not tmpfs, and not what it shadowed).
    let mine = with_inputs(&i, |inp| shareable_mounts(&svc, inp)).unwrap();
    assert_eq!(
        mine,
        [
            shared(
                "/var/lib/mysql",
                "/var/lib/berth/volumes/demo_data/_data",
                false
            ),
            shared("/var/data", "/v/anon/_data", false),
            shared("/etc/conf/", "/srv/conf", true),
        ]
    );
}

#[test]
fn an_image_volume_where_volumes_from_mounts_gets_no_anonymous_volume() {
    let svc = project("services: {app: {image: x, volumes_from: [db]}, db: {image: x}}").services
        ["app"]
        .clone();
    let image = ImageDefaults {
        volumes: vec!["/var/data".into(), "/logs".into()],
        ..Default::default()
    };
    let donor = [shared("/var/data", "/v/a/_data", false)];
    assert_eq!(anonymous_targets(&svc, &image), ["/var/data", "/logs"]);
    assert_eq!(anonymous_targets_with(&svc, &image, &donor), ["/logs"]);
}

#[test]
fn shareable_mounts_are_binds_and_volumes_named_and_anonymous() {
    let svc = service(
        "services: {db: {image: x, volumes: ['/var/data', './conf:/etc/conf:ro', 'data:/srv', {type: tmpfs, target: /cache}]}}\nvolumes: {data: {}}",
    );
    let i = Inputs {
        image: ImageDefaults {
            cmd: vec!["sh".into()],
            volumes: vec!["/logs".into()],
            ..Default::default()
        },
        anonymous: BTreeMap::from([
            ("/var/data".to_owned(), "aaa".to_owned()),
            ("/logs".to_owned(), "bbb".to_owned()),
        ]),
        ..Default::default()
    };
    let mine = with_inputs(&i, |inp| shareable_mounts(&svc, inp)).unwrap();
    assert_eq!(
        mine,
        [
            shared("/var/data", "/var/lib/berth/volumes/aaa/_data", false),
            shared("/etc/conf", "/srv/demo/conf", true),
            shared("/srv", "/var/lib/berth/volumes/demo_data/_data", false),
            shared("/logs", "/var/lib/berth/volumes/bbb/_data", false),
        ]
    );
}

#[test]
fn image_volumes_are_bound_read_only_from_where_the_engine_mounted_them() {
    let svc = service(
        "services: {w: {image: x, volumes: [{type: image, source: 'nginx:alpine', target: /mnt/image/, image: {subpath: usr/share/nginx/html/}}]}}",
    );
    let i = Inputs {
        image_volumes: BTreeMap::from([(
            "/mnt/image".to_owned(),
            PathBuf::from("/var/lib/berth/layers/l1/usr/share/nginx/html"),
        )]),
        ..Default::default()
    };
    let s = spec_with(&svc, &i).unwrap();
    assert_eq!(
        mounts_at(&s, "/mnt/image"),
        [&json!({"destination": "/mnt/image", "type": "bind",
            "source": "/var/lib/berth/layers/l1/usr/share/nginx/html",
            "options": ["rbind", "ro", "rprivate"]})]
    );
    // An image volume is the container's own: never shared.
    assert!(with_inputs(&i, |inp| shareable_mounts(&svc, inp))
        .unwrap()
        .is_empty());
    // One the engine did not mount is an error, not a missing mount.
    assert!(matches!(
        spec_with(&svc, &Inputs::default()),
        Err(SpecError::MissingImageVolume { .. })
    ));
}
