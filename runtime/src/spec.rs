//! Loading and checking a bundle's `config.json`. A bad file is refused with
//! the JSON path of the offending field, before any kernel object exists
//! ("validate first, then touch the kernel").

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::RuntimeError;

/// Reads and validates `<bundle>/config.json`.
pub fn load(bundle: &Path) -> Result<Spec, RuntimeError> {
    let path = bundle.join("config.json");
    let text = fs_err::read(&path).map_err(RuntimeError::Fs)?;
    parse(&path, &text)
}

/// Parses a spec from bytes, naming the bad field on error; `path` is only
/// used in messages.
pub fn parse(path: &Path, text: &[u8]) -> Result<Spec, RuntimeError> {
    let de = &mut serde_json::Deserializer::from_slice(text);
    let spec: Spec = serde_path_to_error::deserialize(de).map_err(|err| {
        let field = err.path().to_string();
        RuntimeError::Config {
            path: path.to_owned(),
            field,
            message: err.into_inner().to_string(),
        }
    })?;
    validate(path, &spec)?;
    Ok(spec)
}

fn bad(path: &Path, field: &str, message: impl Into<String>) -> RuntimeError {
    RuntimeError::Config {
        path: path.to_owned(),
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Checks what serde cannot: required sections, absolute paths, duplicate
/// namespaces.
pub fn validate(path: &Path, spec: &Spec) -> Result<(), RuntimeError> {
    if !spec.version().starts_with("1.") {
        return Err(bad(
            path,
            "ociVersion",
            format!("unsupported version {:?} (1.x expected)", spec.version()),
        ));
    }
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| bad(path, "root", "missing"))?;
    if root.path().as_os_str().is_empty() {
        return Err(bad(path, "root.path", "empty"));
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| bad(path, "process", "missing"))?;
    match process.args() {
        Some(args) if !args.is_empty() && !args[0].is_empty() => {}
        _ => return Err(bad(path, "process.args", "must name a command")),
    }
    if !process.cwd().is_absolute() {
        return Err(bad(
            path,
            "process.cwd",
            format!("{:?} is not an absolute path", process.cwd()),
        ));
    }
    for (i, env) in process.env().iter().flatten().enumerate() {
        if !env.contains('=') {
            return Err(bad(
                path,
                &format!("process.env[{i}]"),
                format!("{env:?} is not NAME=value"),
            ));
        }
    }
    if let Err(name) = crate::caps::Sets::from_spec(process.capabilities().as_ref()) {
        return Err(bad(
            path,
            "process.capabilities",
            format!("unknown capability {name}"),
        ));
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            return Err(bad(
                path,
                &format!("mounts[{i}].destination"),
                format!("{:?} is not absolute", m.destination()),
            ));
        }
    }
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| bad(path, "linux", "missing"))?;
    let mut seen = Vec::new();
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        if seen.contains(&ns.typ()) {
            return Err(bad(
                path,
                &format!("linux.namespaces[{i}]"),
                format!("duplicate {} namespace", ns.typ()),
            ));
        }
        seen.push(ns.typ());
    }
    let has_userns = seen.contains(&LinuxNamespaceType::User);
    if has_userns && linux.uid_mappings().as_ref().is_none_or(|m| m.is_empty()) {
        let joined = linux
            .namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_some());
        if !joined {
            return Err(bad(
                path,
                "linux.uidMappings",
                "a new user namespace needs uid mappings",
            ));
        }
    }
    if spec.hostname().is_some() && !seen.contains(&LinuxNamespaceType::Uts) {
        return Err(bad(
            path,
            "hostname",
            "setting a hostname needs a uts namespace",
        ));
    }
    Ok(())
}

/// The rootfs of a bundle as an absolute path.
pub fn rootfs(bundle: &Path, spec: &Spec) -> PathBuf {
    let root = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .unwrap_or_default();
    if root.is_absolute() {
        root
    } else {
        bundle.join(root)
    }
}

/// A spec with Docker's defaults for a container running `args`: the 14
/// default capabilities, the default seccomp profile, masked and read-only
/// paths, namespaces (mount, pid, uts, ipc, net), `/dev` tmpfs with devpts,
/// shm (64 MiB) and mqueue, read-only sysfs and cgroup. `berth runtime
/// spec` prints it; the engine starts from it.
pub fn docker_default(args: &[&str]) -> Spec {
    let caps = crate::caps::DOCKER_DEFAULT;
    let seccomp = crate::seccomp::docker_default(caps);
    let v = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": false
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "berth",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]}
        ],
        "linux": {
            "resources": {"devices": [
                {"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
                {"allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
                {"allow": true, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
                {"allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
                {"allow": true, "type": "c", "major": 136, "access": "rwm"},
                {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rwm"}
            ]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "seccomp": seccomp,
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list", "/proc/timer_stats",
                "/sys/devices/virtual/powercap", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    });
    serde_json::from_value(v).expect("the built-in spec is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> serde_json::Value {
        serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}
        })
    }

    fn err_of(v: serde_json::Value) -> String {
        parse(Path::new("config.json"), &serde_json::to_vec(&v).unwrap())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn minimal_spec_loads() {
        parse(Path::new("c"), &serde_json::to_vec(&minimal()).unwrap()).unwrap();
    }

    #[test]
    fn wrong_type_names_the_field() {
        let mut v = minimal();
        v["process"]["user"]["uid"] = "root".into();
        let err = err_of(v);
        assert!(err.contains("process.user.uid"), "{err}");
    }

    #[test]
    fn bad_namespace_type_names_the_field() {
        let mut v = minimal();
        v["linux"]["namespaces"][1]["type"] = "bogus".into();
        let err = err_of(v);
        assert!(err.contains("linux.namespaces[1].type"), "{err}");
    }

    #[test]
    fn semantic_errors_name_the_field() {
        let mut v = minimal();
        v["process"]["cwd"] = "relative".into();
        assert!(err_of(v).contains("process.cwd"));
        let mut v = minimal();
        v["process"]["args"] = serde_json::json!([]);
        assert!(err_of(v).contains("process.args"));
        let mut v = minimal();
        v["process"]["capabilities"] = serde_json::json!({"bounding": ["CAP_NOPE"]});
        let err = err_of(v);
        assert!(err.contains("process.capabilities"), "{err}");
        let mut v = minimal();
        v["hostname"] = "x".into();
        assert!(err_of(v).contains("hostname"));
    }

    #[test]
    fn broken_json_is_refused() {
        let err = parse(Path::new("c"), b"{\"ociVersion\": \"1.0.2\", \"root\": ")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid field"), "{err}");
    }
}
