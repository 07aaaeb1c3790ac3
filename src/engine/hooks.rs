//! `pre_start` hooks: commands run before a service's containers start,
//! each in a short-lived container of its own, as Docker Compose runs them
//! (`pkg/compose/pre_start.go`): the hook's image (the service's by
//! default) with the hook's command, user, working dir and privileges, the
//! service's environment then the hook's, the volumes of the service's
//! container (`volumes_from`) and its networks. Hooks run one after the
//! other in the order written; a non-zero exit stops there and fails the
//! start, naming the hook and its exit code, with the tail of its output.
//!
//! Once per service (`per_replica: false`, the only mode Docker Compose
//! has): the plan asks for them (`Action::PreStart`) only when none of the
//! service's containers is running. Unlike Docker Compose, a failed hook's
//! container is not kept for inspection (berth has no `logs` for it): its
//! output is in the error instead, and nothing is left behind.
//!
//! `post_start` and `pre_stop` hooks run inside the service's container
//! (`execute::run_hook`).

use std::io::BufRead;

use anyhow::{bail, Context, Result};

use super::execute::{create_in, remove_anonymous_volumes, teardown, teardown_new, Kind};
use super::state::{self, new_id, ContainerRecord, Paths};
use crate::image::reference::Reference;
use crate::image::store::Store;
use crate::model::project::{Project, Service, ServiceHook};

/// The label Docker Compose puts on a hook's container, with the hook's
/// kind (`pre_start`) as its value.
pub const LABEL_HOOK: &str = "com.docker.compose.hook";

const PRE_START: &str = "pre_start";

/// The most output lines of a failed hook quoted in its error.
const TAIL_LINES: usize = 10;
/// The most bytes of a failed hook's output quoted in its error.
const TAIL_BYTES: usize = 2048;

/// What can be checked of `svc`'s `pre_start` hooks before anything is
/// made: a mode berth (like Docker Compose) does not have, an image to
/// run each with, present in the store (pulled by `up` as the service's
/// pull policy says).
pub fn check_pre_start(store: &Store, svc: &Service) -> Result<()> {
    for (i, hook) in svc.pre_start.iter().enumerate() {
        if hook.per_replica {
            bail!(
                "service {:?} pre_start[{i}]: per_replica is not yet supported; remove per_replica or set it to false",
                svc.name
            );
        }
        let image = hook_image(svc, hook);
        if image.is_empty() {
            bail!(
                "service {:?} pre_start[{i}]: no image (neither the hook nor the service names one)",
                svc.name
            );
        }
        let reference = Reference::parse(image)
            .with_context(|| format!("service {:?} pre_start[{i}]: image {image:?}", svc.name))?;
        store.resolve(&reference).with_context(|| {
            format!(
                "service {:?} pre_start[{i}]: image {image} not found in the store",
                svc.name
            )
        })?;
    }
    Ok(())
}

fn hook_image<'a>(svc: &'a Service, hook: &'a ServiceHook) -> &'a str {
    if hook.image.is_empty() {
        &svc.image
    } else {
        &hook.image
    }
}

/// The service a `pre_start` hook's container is made from: nothing of
/// `svc` but its name, environment, networks (without fixed addresses,
/// which its container holds) and network mode; the hook's image, command,
/// user, working dir, privileges and environment; and the volumes of the
/// container `donor` (`volumes_from`).
pub fn hook_service(svc: &Service, hook: &ServiceHook, donor: &str) -> Service {
    let mut environment = svc.environment.clone();
    environment.extend(hook.environment.clone());
    let networks = svc
        .networks
        .iter()
        .map(|(k, n)| {
            let n = n.clone().map(|mut n| {
                n.ipv4_address.clear();
                n.ipv6_address.clear();
                n.mac_address.clear();
                n.link_local_ips.clear();
                n
            });
            (k.clone(), n)
        })
        .collect();
    Service {
        name: svc.name.clone(),
        image: hook_image(svc, hook).to_owned(),
        command: hook.command.clone(),
        user: hook.user.clone(),
        working_dir: hook.working_dir.clone(),
        privileged: hook.privileged,
        environment,
        networks,
        network_mode: svc.network_mode.clone(),
        volumes_from: vec![format!("container:{donor}")],
        restart: "no".to_owned(),
        ..Service::default()
    }
}

/// Runs `svc`'s `pre_start` hooks in order, each sharing the volumes of
/// container `donor`; the first failure is the error. Hook containers a
/// killed berth left behind go first.
pub fn run_pre_start(paths: &Paths, project: &Project, svc: &Service, donor: &str) -> Result<()> {
    for stale in state::project_containers(paths, &project.name)? {
        if stale.service == svc.name && stale.label(LABEL_HOOK) == PRE_START {
            tracing::info!(container = %stale.id, "removing a pre_start hook container left behind");
            remove_anonymous_volumes(paths, &stale)?;
            teardown(paths, &stale.id)?;
        }
    }
    for (i, hook) in svc.pre_start.iter().enumerate() {
        let h = hook_service(svc, hook, donor);
        let (code, tail) = run_once(paths, project, &h)
            .with_context(|| format!("service {:?} pre_start[{i}]", svc.name))?;
        if code != 0 {
            let tail = if tail.is_empty() {
                String::new()
            } else {
                format!(": {tail}")
            };
            bail!(
                "service {:?} pre_start[{i}] exited with code {code}{tail}",
                svc.name
            );
        }
    }
    Ok(())
}

/// Makes a container of `h`, runs it to its end with its output piped to
/// us, and removes it (with its anonymous volumes). Returns its exit code
/// and the tail of its output.
fn run_once(paths: &Paths, project: &Project, h: &Service) -> Result<(i32, String)> {
    let id = new_id()?;
    let short: String = id.chars().take(12).collect();
    let name = format!("{}-{}-{PRE_START}-{short}", project.name, h.name);
    let made = create_in(paths, project, h, 1, &name, &id, Kind::OneOff, None).and_then(|()| {
        let mut record = ContainerRecord::load(paths, &id)?;
        record
            .labels
            .insert(LABEL_HOOK.to_owned(), PRE_START.to_owned());
        record.save(paths)
    });
    if let Err(e) = made {
        let _ = teardown_new(paths, &id, None);
        return Err(e);
    }
    let result = run_piped(paths, &id);
    let record = ContainerRecord::load(paths, &id);
    let removed = record
        .as_ref()
        .map_or(Ok(()), |r| remove_anonymous_volumes(paths, r))
        .and_then(|()| teardown(paths, &id));
    let out = result?;
    removed?;
    Ok(out)
}

/// Runs container `id` in the foreground (its init our child), its stdout
/// and stderr into one pipe we read; returns the exit code and the tail.
fn run_piped(paths: &Paths, id: &str) -> Result<(i32, String)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe2")?;
    let null = fs_err::File::open("/dev/null")?;
    let reader = std::thread::spawn(move || {
        let mut tail = Tail::default();
        let mut lines = std::io::BufReader::new(std::fs::File::from(r));
        let mut line = Vec::new();
        while lines.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            let text = String::from_utf8_lossy(&line);
            tracing::debug!(line = %text.trim_end(), "pre_start hook output");
            tail.push(text.trim_end());
            line.clear();
        }
        tail.text()
    });
    let opts = berth_runtime::CreateOptions {
        stdio: [
            Some(null.into_parts().0.into()),
            Some(w.try_clone().context("dup")?),
            Some(w),
        ],
        ..Default::default()
    };
    let rt = berth_runtime::Runtime::new(paths.runtime_root());
    let code = rt.run(id, &paths.container(id), &opts);
    // Our copies of the pipe's write end close here, so the reader ends
    // once the container's processes (all gone with it) have.
    drop(opts);
    let tail = reader.join().unwrap_or_default();
    let code = code.with_context(|| format!("running container {id}"))?;
    Ok((code, tail))
}

/// The last lines of a hook's output, bounded in lines and bytes.
#[derive(Default)]
struct Tail {
    lines: std::collections::VecDeque<String>,
}

impl Tail {
    fn push(&mut self, line: &str) {
        if line.is_empty() {
            return;
        }
        let line: String = line.chars().take(TAIL_BYTES).collect();
        self.lines.push_back(line);
        while self.lines.len() > TAIL_LINES
            || (self.lines.len() > 1
                && self.lines.iter().map(String::len).sum::<usize>() > TAIL_BYTES)
        {
            self.lines.pop_front();
        }
    }

    fn text(&self) -> String {
        self.lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::project::ServiceNetwork;

    #[test]
    fn a_hook_container_takes_the_hook_and_only_some_of_the_service() {
        let mut svc = Service {
            name: "web".into(),
            image: "app:1".into(),
            command: Some(vec!["serve".into()]),
            user: "www".into(),
            cap_add: vec!["NET_ADMIN".into()],
            ports: vec![Default::default()],
            restart: "always".into(),
            ..Service::default()
        };
        svc.environment.insert("A".into(), Some("service".into()));
        svc.environment.insert("B".into(), Some("service".into()));
        svc.networks.insert(
            "back".into(),
            Some(ServiceNetwork {
                ipv4_address: "10.1.0.5".into(),
                aliases: vec!["api".into()],
                ..ServiceNetwork::default()
            }),
        );
        let mut hook = ServiceHook {
            command: Some(vec!["sh".into(), "-c".into(), "migrate".into()]),
            user: "root".into(),
            privileged: true,
            ..ServiceHook::default()
        };
        hook.environment.insert("B".into(), Some("hook".into()));
        let h = hook_service(&svc, &hook, "abc123");
        assert_eq!(h.name, "web");
        assert_eq!(h.image, "app:1", "the service's image by default");
        assert_eq!(h.command, hook.command);
        assert_eq!(h.entrypoint, None);
        assert_eq!(h.user, "root");
        assert!(h.privileged);
        assert_eq!(h.volumes_from, ["container:abc123"]);
        assert_eq!(h.environment["A"].as_deref(), Some("service"));
        assert_eq!(h.environment["B"].as_deref(), Some("hook"));
        assert!(h.ports.is_empty() && h.cap_add.is_empty());
        assert_eq!(h.restart, "no");
        let net = h.networks["back"].as_ref().unwrap();
        assert_eq!(net.ipv4_address, "", "the fixed address is the service's");
        assert_eq!(net.aliases, ["api"]);

        hook.image = "tools:2".into();
        assert_eq!(hook_service(&svc, &hook, "abc123").image, "tools:2");
    }

    #[test]
    fn the_tail_keeps_the_last_lines_within_bounds() {
        let mut t = Tail::default();
        for i in 0..25 {
            t.push(&format!("line {i}"));
        }
        t.push("");
        assert_eq!(t.text().lines().count(), TAIL_LINES);
        assert!(t.text().ends_with("line 24"));
        assert!(t.text().starts_with("line 15"));
        let mut t = Tail::default();
        t.push(&"x".repeat(5000));
        t.push("last");
        assert_eq!(t.text(), "last");
    }
}
