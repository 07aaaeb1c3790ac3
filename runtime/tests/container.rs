//! Kernel tests: real containers from the busybox rootfs, asserting what a
//! process inside sees. Root required; each test has its own runtime root,
//! bundle and cgroup, and force-deletes its containers even when it fails.

mod common;

use std::path::PathBuf;

use berth_runtime::{CreateOptions, RuntimeError, Status};
use common::{sh, unique, write_spec, Env};

fn run_ok(env: &Env, id: &str, bundle: &std::path::Path) -> String {
    let (code, out, err) = env.run(id, bundle).unwrap();
    assert_eq!(code, 0, "exit {code}; stdout: {out}; stderr: {err}");
    out
}

#[test]
fn pid_one_and_hostname() {
    let env = Env::new();
    let id = unique("pid1");
    let bundle = env.bundle(&id, sh("echo pid=$$; hostname"));
    assert_eq!(run_ok(&env, &id, &bundle), "pid=1\nberth\n");
}

#[test]
fn docker_default_capability_sets() {
    let env = Env::new();
    let id = unique("caps");
    let bundle = env.bundle(
        &id,
        sh("grep -E '^Cap|^NoNewPrivs|^Seccomp:' /proc/self/status"),
    );
    let out = run_ok(&env, &id, &bundle);
    // CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP
    // NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP
    let docker = "00000000a80425fb";
    for line in [
        "CapInh:\t0000000000000000",
        "CapAmb:\t0000000000000000",
        "Seccomp:\t2",
    ] {
        assert!(out.contains(line), "{line} missing in {out}");
    }
    for set in ["CapPrm", "CapEff", "CapBnd"] {
        assert!(
            out.contains(&format!("{set}:\t{docker}")),
            "{set} is not Docker's default in {out}"
        );
    }
}

#[test]
fn masked_and_readonly_paths() {
    let env = Env::new();
    let id = unique("mask");
    let script = "echo timers=$(wc -c < /proc/timer_list); echo keys=$(cat /proc/keys | wc -c); \
                  echo firmware=$(ls /sys/firmware | wc -l); \
                  echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo sys-writable || echo sys-ro; \
                  echo h > /proc/sysrq-trigger 2>/dev/null && echo sysrq-writable || echo sysrq-ro; \
                  touch /sys/x 2>/dev/null && echo sysfs-writable || echo sysfs-ro";
    let out = run_ok(&env, &id, &env.bundle(&id, sh(script)));
    assert_eq!(
        out,
        "timers=0\nkeys=0\nfirmware=0\nsys-ro\nsysrq-ro\nsysfs-ro\n"
    );
}

#[test]
fn seccomp_denies_even_with_cap_sys_admin() {
    // CAP_SYS_ADMIN granted, but the profile is the one for Docker's default
    // caps: mount and unshare must fail through seccomp, not for lack of caps.
    let env = Env::new();
    let id = unique("seccomp");
    let mut spec =
        sh("mount -t tmpfs none /tmp 2>&1; echo mount=$?; unshare -u true 2>&1; echo unshare=$?");
    let mut caps = spec
        .process()
        .as_ref()
        .unwrap()
        .capabilities()
        .clone()
        .unwrap();
    let mut set = caps.bounding().clone().unwrap();
    set.insert(oci_spec::runtime::Capability::SysAdmin);
    caps.set_bounding(Some(set.clone()))
        .set_effective(Some(set.clone()))
        .set_permitted(Some(set));
    spec.process_mut()
        .as_mut()
        .unwrap()
        .set_capabilities(Some(caps));
    let bundle = env.bundle(&id, spec.clone());
    let out = run_ok(&env, &id, &bundle);
    assert!(
        out.contains("mount=1") || out.contains("mount=255"),
        "{out}"
    );
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(!out.contains("unshare=0"), "{out}");
    // Control: without the seccomp profile the same mount succeeds.
    let id2 = unique("noseccomp");
    spec.linux_mut().as_mut().unwrap().set_seccomp(None);
    let bundle2 = env.bundle(&id2, spec);
    let out = run_ok(&env, &id2, &bundle2);
    assert!(out.contains("mount=0"), "{out}");
}

#[test]
fn memory_limit_oom_kills() {
    let env = Env::new();
    let id = unique("oom");
    let mut spec = sh("tail /dev/zero");
    let res: oci_spec::runtime::LinuxResources = serde_json::from_value(
        serde_json::json!({"memory": {"limit": 16777216, "swap": 16777216}}),
    )
    .unwrap();
    spec.linux_mut().as_mut().unwrap().set_resources(Some(res));
    let bundle = env.bundle(&id, spec);
    let (code, _, _) = env.run(&id, &bundle).unwrap();
    assert_eq!(
        code,
        128 + libc::SIGKILL,
        "the OOM killer should have killed the process"
    );
}

#[test]
fn pids_limit_makes_fork_fail() {
    let env = Env::new();
    let id = unique("pids");
    let mut spec = sh("for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait; echo end");
    let res: oci_spec::runtime::LinuxResources =
        serde_json::from_value(serde_json::json!({"pids": {"limit": 4}})).unwrap();
    spec.linux_mut().as_mut().unwrap().set_resources(Some(res));
    let bundle = env.bundle(&id, spec);
    let (_, out, err) = env.run(&id, &bundle).unwrap();
    assert!(err.contains("can't fork"), "stdout: {out}; stderr: {err}");
}

#[test]
fn read_only_rootfs() {
    let env = Env::new();
    let id = unique("ro");
    let mut spec = sh("touch /etc/x 2>&1; echo rc=$?; touch /dev/shm/ok && echo shm-ok");
    spec.root_mut().as_mut().unwrap().set_readonly(Some(true));
    let out = run_ok(&env, &id, &env.bundle(&id, spec));
    assert!(
        out.contains("Read-only file system") && out.contains("rc=1") && out.contains("shm-ok"),
        "{out}"
    );
}

#[test]
fn uid_gid_and_additional_groups() {
    let env = Env::new();
    let id = unique("user");
    let mut spec = sh("id -u; id -g; id -G; grep CapEff /proc/self/status");
    let user: oci_spec::runtime::User = serde_json::from_value(
        serde_json::json!({"uid": 1000, "gid": 1001, "additionalGids": [10, 20]}),
    )
    .unwrap();
    spec.process_mut().as_mut().unwrap().set_user(user);
    let out = run_ok(&env, &id, &env.bundle(&id, spec));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..3], ["1000", "1001", "1001 10 20"], "{out}");
}

#[test]
fn overlay_rootfs_writes_land_in_upper() {
    let env = Env::new();
    let id = unique("overlay");
    let base = env.tmp.path().join(format!("ovl-{id}"));
    let (lower, upper, work) = (base.join("lower"), base.join("upper"), base.join("work"));
    common::make_rootfs(&lower);
    std::fs::create_dir_all(&upper).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let spec = sh("echo hi > /root/new; rm /etc/group; cat /root/new");
    let bundle = env.bundle(&id, spec.clone());
    let mut spec: oci_spec::runtime::Spec =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    let empty = bundle.join("ovlroot");
    std::fs::create_dir_all(&empty).unwrap();
    spec.root_mut().as_mut().unwrap().set_path(empty.clone());
    let mut mounts = spec.mounts().clone().unwrap();
    mounts.insert(
        0,
        serde_json::from_value(serde_json::json!({
            "destination": "/", "type": "overlay", "source": "overlay",
            "options": [format!("lowerdir={}", lower.display()), format!("upperdir={}", upper.display()), format!("workdir={}", work.display())]
        }))
        .unwrap(),
    );
    spec.set_mounts(Some(mounts));
    write_spec(&bundle, &spec);
    assert_eq!(run_ok(&env, &id, &bundle), "hi\n");
    assert_eq!(
        std::fs::read_to_string(upper.join("root/new")).unwrap(),
        "hi\n"
    );
    assert!(
        !lower.join("root/new").exists(),
        "the write leaked into the lower layer"
    );
    assert!(
        lower.join("etc/group").exists(),
        "the delete reached the lower layer"
    );
    assert!(
        std::fs::read_dir(&empty).unwrap().next().is_none(),
        "the overlay is still mounted on the host"
    );
}

#[test]
fn missing_command_is_127_naming_it() {
    let env = Env::new();
    let id = unique("nocmd");
    let bundle = env.bundle(
        &id,
        berth_runtime::spec::docker_default(&["no-such-command", "x"]),
    );
    let err = env.run(&id, &bundle).unwrap_err();
    assert_eq!(err.exit_code(), 127);
    assert!(err.to_string().contains("no-such-command"), "{err}");
    assert!(
        matches!(env.rt.state(&id), Err(RuntimeError::NotFound(_))),
        "state left behind"
    );
    assert!(
        !PathBuf::from(format!("/sys/fs/cgroup/memory/berth-test/{id}")).exists(),
        "cgroup left behind"
    );
}

#[test]
fn broken_config_is_refused_naming_the_field() {
    let env = Env::new();
    let id = unique("badcfg");
    let bundle = env.bundle(&id, sh("true"));
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    v["process"]["user"]["uid"] = "root".into();
    std::fs::write(bundle.join("config.json"), serde_json::to_vec(&v).unwrap()).unwrap();
    let err = env
        .rt
        .create(&id, &bundle, &CreateOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("process.user.uid"), "{err}");
    assert!(!env.rt.root().join(&id).exists());
}

#[test]
fn lifecycle_exec_pause_kill_delete_leave_nothing() {
    let env = Env::new();
    let id = unique("life");
    let bundle = env.bundle(&id, sh("exec sleep 60"));
    let saved = env
        .rt
        .create(&id, &bundle, &CreateOptions::default())
        .unwrap();
    assert_eq!(env.rt.state(&id).unwrap().status, Status::Created);
    env.rt.start(&id).unwrap();
    assert_eq!(env.rt.state(&id).unwrap().status, Status::Running);

    // exec sees the container's pid namespace: its pid 1 is the sleep.
    let out = tempfile::tempfile().unwrap();
    let process: oci_spec::runtime::Process = serde_json::from_value(serde_json::json!({
        "args": ["sh", "-c", "echo $$ > /tmp/execpid; cat /proc/1/cmdline | tr '\\0' ' '; ls /proc | grep -c '^[0-9]'"],
        "cwd": "/", "user": {"uid": 0, "gid": 0}, "env": ["PATH=/bin"]
    }))
    .unwrap();
    let _ = out;
    let code = env
        .rt
        .exec(&id, &process, &berth_runtime::ExecOptions::default())
        .unwrap();
    assert_eq!(code, 0);
    let pid_inside = std::fs::read_to_string(saved.rootfs.join("tmp/execpid")).unwrap();
    assert!(
        pid_inside.trim().parse::<i32>().unwrap() > 1,
        "exec'd process pid {pid_inside}"
    );

    env.rt.pause(&id).unwrap();
    assert_eq!(env.rt.state(&id).unwrap().status, Status::Paused);
    env.rt.resume(&id).unwrap();
    assert_eq!(env.rt.state(&id).unwrap().status, Status::Running);
    assert_eq!(env.rt.ps(&id).unwrap(), vec![saved.pid]);
    assert_eq!(env.rt.list().unwrap().len(), 1);

    env.rt.kill(&id, libc::SIGKILL, false).unwrap();
    let cgroup_dirs = saved.cgroup.dirs();
    env.rt
        .delete(&id, false)
        .or_else(|_| env.rt.delete(&id, true))
        .unwrap();
    assert!(
        !PathBuf::from(format!("/proc/{}", saved.pid)).exists(),
        "init survived"
    );
    for d in cgroup_dirs {
        assert!(!d.exists(), "cgroup {} left behind", d.display());
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.contains(saved.rootfs.to_str().unwrap()),
        "a mount of the rootfs is left on the host"
    );
    assert!(!env.rt.root().join(&id).exists(), "state dir left behind");
}

#[test]
fn prestart_and_poststop_hooks_get_the_state() {
    let env = Env::new();
    let id = unique("hooks");
    let pre = env.tmp.path().join("prestart.json");
    let post = env.tmp.path().join("poststop.json");
    let mut spec = sh("echo ran");
    let hooks: oci_spec::runtime::Hooks = serde_json::from_value(serde_json::json!({
        "prestart": [{"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}", pre.display())], "timeout": 5}],
        "poststop": [{"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}", post.display())]}]
    }))
    .unwrap();
    spec.set_hooks(Some(hooks));
    let bundle = env.bundle(&id, spec);
    assert_eq!(run_ok(&env, &id, &bundle), "ran\n");
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(&pre).unwrap()).unwrap();
    assert_eq!(state["status"], "created");
    assert_eq!(state["id"], id.as_str());
    assert!(state["pid"].as_i64().unwrap() > 0);
    assert!(post.exists(), "poststop hook did not run");
}

/// Reads from a pty master until `want` appears or the peer side is closed
/// (EIO), waiting at most 10 s in all.
fn read_pty_until(master: &std::os::fd::OwnedFd, want: &str) -> String {
    use std::os::fd::AsRawFd;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        assert!(
            !left.is_zero(),
            "no {want:?} from the console within 10s; got {:?}",
            String::from_utf8_lossy(&out)
        );
        let mut pfd = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32) };
        assert!(r >= 0, "poll: {}", std::io::Error::last_os_error());
        if r == 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        // SAFETY: buf is a live buffer of its length.
        let n = unsafe { libc::read(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        out.extend_from_slice(&buf[..n as usize]);
        if String::from_utf8_lossy(&out).contains(want) {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn console_socket_receives_the_pty_master() {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let env = Env::new();
    let id = unique("tty");
    let mut spec = berth_runtime::spec::docker_default(&["sh"]);
    let process = spec.process_mut().as_mut().unwrap();
    process.set_terminal(Some(true));
    let bundle = env.bundle(&id, spec);
    let sock_path = env.tmp.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let runner = {
        let rt = env.rt.clone();
        let (id, bundle, sock_path) = (id.clone(), bundle.clone(), sock_path.clone());
        std::thread::spawn(move || {
            let opts = CreateOptions {
                console_socket: Some(sock_path),
                ..Default::default()
            };
            rt.run(&id, &bundle, &opts)
        })
    };
    let (conn, _) = listener
        .accept()
        .expect("the runtime connects to the console socket");
    let (master, body) = berth_runtime::sys::recv_fd(conn.as_raw_fd()).unwrap();
    let master = master.expect("an fd arrives with SCM_RIGHTS on the console socket");
    assert_eq!(body, b"/dev/ptmx", "runc's message body names the master");
    let mut w = std::fs::File::from(master.try_clone().unwrap());
    w.write_all(b"tty; [ -t 0 ] && echo stdin-$((1+1))-tty; echo marker-$((6*7)); exit 3\n")
        .unwrap();
    let out = read_pty_until(&master, "marker-42");
    let code = runner.join().unwrap().expect("run with a terminal");
    assert!(out.contains("/dev/pts/0"), "tty inside: {out:?}");
    assert!(out.contains("stdin-2-tty"), "{out:?}");
    assert!(out.contains("marker-42"), "{out:?}");
    assert_eq!(code, 3, "the exit code of the shell on the terminal");
}

#[test]
fn user_namespace_maps_root_to_a_host_uid() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    const HOST: u32 = 231_072;
    let env = Env::new();
    let id = unique("userns");
    let mut spec = sh("cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; \
                       echo hi > /root/made-inside; grep CapEff /proc/self/status");
    let linux = spec.linux_mut().as_mut().unwrap();
    let mut namespaces = linux.namespaces().clone().unwrap();
    namespaces.push(serde_json::from_value(serde_json::json!({"type": "user"})).unwrap());
    linux.set_namespaces(Some(namespaces));
    let map = |_| -> Vec<oci_spec::runtime::LinuxIdMapping> {
        serde_json::from_value(
            serde_json::json!([{"containerID": 0, "hostID": HOST, "size": 65536}]),
        )
        .unwrap()
    };
    linux.set_uid_mappings(Some(map(())));
    linux.set_gid_mappings(Some(map(())));
    let bundle = env.bundle(&id, spec);
    // As with Docker's userns-remap: the image belongs to the mapped root,
    // and the host path to it can be traversed by that uid.
    let status = std::process::Command::new("chown")
        .args(["-R", "-h", &format!("{HOST}:{HOST}")])
        .arg(bundle.join("rootfs"))
        .status()
        .expect("chown (coreutils) runs");
    assert!(status.success(), "chown -R of the rootfs failed");
    std::fs::set_permissions(env.tmp.path(), std::fs::Permissions::from_mode(0o711)).unwrap();

    let out = run_ok(&env, &id, &bundle);
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let host = HOST.to_string();
    assert_eq!(lines[0], ["0", host.as_str(), "65536"], "uid_map: {out}");
    assert_eq!(lines[1], ["0", host.as_str(), "65536"], "gid_map: {out}");
    assert_eq!(lines[2], ["0"], "uid inside: {out}");
    assert_eq!(lines[3], ["0"], "gid inside: {out}");
    assert_eq!(
        lines[4],
        ["CapEff:", "00000000a80425fb"],
        "Docker's caps inside the user namespace: {out}"
    );
    let meta = std::fs::metadata(bundle.join("rootfs/root/made-inside"))
        .expect("the file made inside is on the host");
    assert_eq!(
        (meta.uid(), meta.gid()),
        (HOST, HOST),
        "a file root made inside belongs to the mapped host uid"
    );
}

#[test]
fn a_new_time_namespace_where_asked() {
    let env = Env::new();
    let id = unique("timens");
    let mut spec = sh("readlink /proc/self/ns/time; cat /proc/uptime");
    let mut linux = spec.linux().clone().unwrap();
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    namespaces.push(
        oci_spec::runtime::LinuxNamespaceBuilder::default()
            .typ(oci_spec::runtime::LinuxNamespaceType::Time)
            .build()
            .unwrap(),
    );
    linux.set_namespaces(Some(namespaces));
    spec.set_linux(Some(linux));
    let bundle = env.bundle(&id, spec);
    let out = run_ok(&env, &id, &bundle);
    let host = std::fs::read_link("/proc/self/ns/time").unwrap();
    let inside = out.lines().next().unwrap_or_default();
    assert!(inside.starts_with("time:["), "{out}");
    assert_ne!(
        inside,
        host.to_string_lossy(),
        "the container has its own time namespace"
    );
    // Clock offsets are refused clearly, not ignored.
    let id2 = unique("timeoff");
    let mut spec = berth_runtime::spec::load(&bundle).unwrap();
    let mut linux = spec.linux().clone().unwrap();
    linux.set_time_offsets(Some(
        [("monotonic".to_string(), "3600 0".to_string())]
            .into_iter()
            .collect(),
    ));
    spec.set_linux(Some(linux));
    let bundle2 = env.bundle(&id2, spec);
    let err = env.run(&id2, &bundle2).unwrap_err().to_string();
    assert!(err.contains("timeOffsets"), "{err}");
}

#[test]
fn init_annotation_puts_a_reaping_pid_one_under_the_process() {
    let env = Env::new();
    let id = unique("init");
    // The orphaned `sleep` is re-parented to PID 1 and must not stay a
    // zombie; the process's exit code is the container's.
    let script = "echo pid=$$; sh -c 'sleep 0.1 &'; sleep 0.5; \
                  echo zombies=$(grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l); \
                  echo one=$(tr '\\0' ' ' < /proc/1/cmdline | cut -c1-9); exit 5";
    let mut spec = sh(script);
    spec.set_annotations(Some(
        [(berth_runtime::INIT_ANNOTATION.to_owned(), "true".to_owned())].into(),
    ));
    let (code, out, err) = env.run(&id, &env.bundle(&id, spec)).unwrap();
    assert_eq!(code, 5, "stdout: {out}; stderr: {err}");
    assert!(
        out.contains("pid=2\n"),
        "the process is PID 1's child: {out}"
    );
    assert!(out.contains("zombies=0\n"), "{out}");
    assert!(!out.contains("one=sh"), "PID 1 is not the shell: {out}");

    // Control: without the annotation the shell is PID 1.
    let id = unique("noinit");
    let (code, out, _) = env
        .run(&id, &env.bundle(&id, sh("echo pid=$$; exit 4")))
        .unwrap();
    assert_eq!((code, out.as_str()), (4, "pid=1\n"));
}
