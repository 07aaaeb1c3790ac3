//! End to end, as a user runs it: `berth up -d` of a busybox stack, `ps`,
//! `logs`, healthchecks and `depends_on: service_healthy`, restart
//! policies, `kill`, `stop`/`start`, then `down -v` leaves nothing: no
//! container state, mount, cgroup, monitor process or volume. Needs root.

mod e2e_support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use e2e_support::Env;

const STACK: &str = r#"
services:
  app:
    image: bb:latest
    network_mode: none
    command: ["sh", "-c", "echo hello from app; echo to stderr >&2; exec sleep 1000"]
    stop_signal: SIGKILL
    healthcheck:
      test: ["CMD-SHELL", "test -e /tmp/ready || touch /tmp/ready; test -e /tmp/ready"]
      interval: 300ms
      start_period: 5s
      start_interval: 100ms
  crash:
    image: bb:latest
    network_mode: none
    restart: on-failure:2
    command: ["sh", "-c", "echo crashing; exit 3"]
  after:
    image: bb:latest
    network_mode: none
    depends_on:
      app: {condition: service_healthy}
    command: ["sh", "-c", "cat /data/mark 2>/dev/null; echo kept > /data/mark; exec sleep 1000"]
    volumes: ["data:/data"]
volumes:
  data: {}
"#;

#[test]
fn up_ps_logs_restart_down_leaves_nothing() {
    let env = Env::new(STACK);
    let out = env.berth(&["up", "-d"]);
    assert!(
        out.status.success(),
        "up -d: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ps = env.ps_json();
    assert_eq!(ps.len(), 3, "{ps:#?}");
    let app = env.container(&ps, "app");
    assert_eq!(app["Name"], format!("{}-app-1", env.project));
    assert_eq!(app["State"], "running");
    assert_eq!(
        app["Health"], "healthy",
        "after waited for app to be healthy"
    );
    assert_eq!(env.container(&ps, "after")["State"], "running");
    let ids: Vec<String> = ps
        .iter()
        .map(|c| c["ID"].as_str().unwrap().to_owned())
        .collect();

    // Logs: both streams, prefixed by the container name without the
    // project (compose's `service-N`).
    let logs = env.ok(&["logs", "app"]);
    assert!(
        logs.contains("app-1  | hello from app") && !logs.contains(&env.project),
        "{logs}"
    );
    assert!(logs.contains("to stderr"), "{logs}");
    let bare = env.ok(&["logs", "--no-log-prefix", "app"]);
    assert_eq!(bare, "hello from app\nto stderr\n");

    // on-failure:2: the first run and two restarts, then exited (3).
    env.wait_for("crash to give up", Duration::from_secs(10), || {
        let ps = env.ps_json();
        let c = env.container(&ps, "crash");
        c["State"] == "exited" && env.ok(&["logs", "crash"]).matches("crashing").count() == 3
    });
    let ps = env.ps_json();
    assert_eq!(env.container(&ps, "crash")["ExitCode"], 3);
    // `ps` without -a lists running containers only.
    let running = env.ok(&["ps", "--services"]);
    assert_eq!(
        running, "after\napp\n",
        "by container name, as Compose sorts"
    );

    // `up -d` again changes nothing.
    let again = env.ps_json();
    env.ok(&["up", "-d"]);
    let ps2 = env.ps_json();
    assert_eq!(
        env.container(&again, "app")["ID"],
        env.container(&ps2, "app")["ID"],
        "an unchanged service is not recreated"
    );

    // stop / start keep the container and its volume.
    env.ok(&["stop", "after"]);
    let ps = env.ps_json();
    assert_eq!(env.container(&ps, "after")["State"], "exited");
    env.ok(&["start", "after"]);
    env.wait_for("after's second run to log", Duration::from_secs(5), || {
        env.ok(&["logs", "after"]).contains("kept")
    });

    // exec: the container's environment, exit codes, -e, -w, -u.
    let out = env.berth(&[
        "exec",
        "-T",
        "-e",
        "X=1",
        "-w",
        "/tmp",
        "app",
        "sh",
        "-c",
        "echo $X $(pwd) $(id -u); exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1 /tmp 0\n");
    let out = env.berth(&["exec", "-T", "-u", "nobody", "app", "id", "-u"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "65534\n");
    // With a terminal when standard input is one (util-linux's `script`
    // gives us a pty).
    let tty = Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "{} exec app sh -c 'tty; exit 3'",
            env!("CARGO_BIN_EXE_berth")
        ))
        .arg("/dev/null")
        .current_dir(&env.dir)
        .env("BERTH_ROOT", &env.root)
        .env("BERTH_RUN", &env.run)
        .output()
        .expect("precondition: script (util-linux)");
    assert!(
        String::from_utf8_lossy(&tty.stdout).contains("/dev/pts/"),
        "{tty:?}"
    );

    // run: a one-off with our stdio and its exit code; --rm leaves nothing.
    let out = env.berth(&[
        "run",
        "--rm",
        "-T",
        "app",
        "sh",
        "-c",
        "echo one-off $HOSTNAME; exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("one-off "),
        "{out:?}"
    );
    let out = env.berth(&["run", "-T", "-e", "Y=2", "app", "sh", "-c", "echo $Y"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2\n");
    let ps = env.ps_json();
    let kept: Vec<_> = ps
        .iter()
        .filter(|c| {
            c["Name"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{}-app-run-", env.project))
        })
        .collect();
    assert_eq!(kept.len(), 1, "only the run without --rm is kept: {ps:#?}");
    assert_eq!(kept[0]["State"], "exited");

    // ls: the project, its states, its file.
    let ls = env.ok(&["ls", "-a"]);
    assert!(
        ls.contains(&env.project) && ls.contains("running(2)") && ls.contains("compose.yaml"),
        "{ls}"
    );

    // pause / unpause / top.
    env.ok(&["pause", "app"]);
    assert_eq!(env.container(&env.ps_json(), "app")["State"], "paused");
    env.ok(&["unpause", "app"]);
    assert_eq!(env.container(&env.ps_json(), "app")["State"], "running");
    let top = env.ok(&["top", "app"]);
    assert!(top.contains("sleep 1000"), "{top}");

    // `kill` is a user's stop: no restart even with a policy.
    env.ok(&["kill", "app"]);
    env.wait_for("app to exit", Duration::from_secs(5), || {
        env.container(&env.ps_json(), "app")["State"] == "exited"
    });

    env.ok(&["down", "-v", "-t", "1"]);
    assert!(env.ps_json().is_empty());
    let left = env.leftovers(&ids);
    assert!(left.is_empty(), "left behind: {left:#?}");
    assert!(
        !env.root
            .join("volumes")
            .join(format!("{}_data", env.project))
            .exists(),
        "down -v removes the named volume"
    );
}

#[test]
fn a_missing_image_fails_before_anything_starts() {
    let env = Env::new(
        "services:\n  a:\n    image: bb:latest\n    network_mode: none\n    command: sleep 100\n  b:\n    image: nosuch:1\n    network_mode: none\n",
    );
    let out = env.berth(&["up", "-d"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nosuch"), "{err}");
    // No half-started stack: nothing of the project runs.
    let running: Vec<_> = env
        .ps_json()
        .into_iter()
        .filter(|c| c["State"] == "running")
        .collect();
    assert!(running.is_empty(), "{running:#?}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn services_reach_each_other_by_name_and_a_published_port_answers() {
    let port = free_port();
    let env = Env::new(&format!(
        r#"
services:
  web:
    image: bb:latest
    command: ["sh", "-c", "mkdir -p /www && echo hello from web > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports: ["127.0.0.1:{port}:80"]
  client:
    image: bb:latest
    depends_on: [web]
    command: ["sh", "-c", "sleep 1000"]
  other:
    image: bb:latest
    networks: [back]
    command: ["sh", "-c", "sleep 1000"]
networks:
  back: {{}}
"#
    ));
    let out = env.berth(&["up", "-d"]);
    assert!(
        out.status.success(),
        "up -d: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ps = env.ps_json();
    let ids: Vec<String> = ps
        .iter()
        .map(|c| c["ID"].as_str().unwrap().to_owned())
        .collect();
    let exec = |service: &str, cmd: &str| -> Output {
        env.berth(&["exec", "-T", service, "sh", "-c", cmd])
    };
    // By service name, through berth's DNS server, on one network.
    let mut got = String::new();
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        let o = exec("client", "timeout 5 wget -q -O - http://web/");
        got = String::from_utf8_lossy(&o.stdout).into_owned();
        if got.contains("hello from web") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        got.contains("hello from web"),
        "client could not fetch http://web/: {got:?}"
    );
    // A second `up` keeps every name resolvable (the network's DNS records
    // survive it).
    env.ok(&["up", "-d"]);
    let o = exec("client", "timeout 5 wget -q -O - http://web/");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("hello from web"),
        "{o:?}"
    );
    // A kill -9 of the DNS server: the next `up` starts it again.
    env.kill_dns();
    env.ok(&["up", "-d"]);
    let o = exec("client", "timeout 5 wget -q -O - http://web/");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("hello from web"),
        "after the DNS server's kill -9: {o:?}"
    );
    // A one-off on the same network finds the service by name too.
    let out = env.berth(&[
        "run",
        "--rm",
        "-T",
        "client",
        "wget",
        "-q",
        "-O",
        "-",
        "http://web/",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("hello from web"),
        "{out:?}"
    );
    // A network apart: neither the name nor the address is reachable.
    let o = exec(
        "other",
        "nslookup web 2>&1; timeout 5 wget -q -O - http://web/",
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains("hello from web"));
    // The published port from the host's loopback.
    let mut body = String::new();
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n");
            let _ = s.read_to_string(&mut body);
            if body.contains("hello from web") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        body.contains("hello from web"),
        "127.0.0.1:{port} gave {body:?}"
    );
    let ps_table = env.ok(&["ps"]);
    assert!(
        ps_table.contains(&format!("127.0.0.1:{port}->80/tcp")),
        "{ps_table}"
    );
    // The port is now taken: another project asking for it is refused
    // with the owner named, before anything is made.
    let second = env.berth(&["-p", "second", "up", "-d", "web"]);
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains(&port.to_string()) && err.contains(&format!("{}-web-1", env.project)),
        "{err}"
    );
    assert_eq!(env.ok(&["-p", "second", "ps", "-a", "-q"]), "");

    env.ok(&["down", "-t", "1"]);
    let left = env.leftovers(&ids);
    assert!(left.is_empty(), "left behind: {left:#?}");
    let links = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["-o", "link"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    for id in &ids {
        assert!(!links.contains(&id[..8]), "a link of {id} remains: {links}");
    }
    let paths = berth::engine::state::Paths {
        root: env.root.clone(),
        run: env.run.clone(),
    };
    let nets = berth::engine::net::networks(&paths).list().unwrap();
    assert!(nets.is_empty(), "networks remain: {nets:#?}");
    assert!(
        berth_network::dns::running(&env.run).unwrap().is_none(),
        "the DNS server outlives the last network"
    );
}

#[test]
fn attached_up_streams_logs_and_aborts_with_the_exit_code() {
    let env = Env::new(
        r#"
services:
  quick:
    image: bb:latest
    network_mode: none
    command: ["sh", "-c", "sleep 0.5; echo quick says hi; exit 3"]
  slow:
    image: bb:latest
    network_mode: none
    stop_signal: SIGKILL
    command: ["sh", "-c", "echo slow starts; exec sleep 1000"]
"#,
    );
    let out = env.berth(&["up", "--exit-code-from", "quick"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        stdout.contains("\nquick-1  | quick says hi")
            || stdout.starts_with("quick-1  | quick says hi"),
        "{stdout}"
    );
    assert!(stdout.contains("slow starts"), "{stdout}");
    let ps = env.ps_json();
    assert_eq!(
        env.container(&ps, "slow")["State"],
        "exited",
        "the stack is stopped"
    );
    // Without an abort flag, an attached `up` ends when every container has.
    let env2 = Env::new(
        "services:\n  once:\n    image: bb:latest\n    network_mode: none\n    command: [echo, done]\n",
    );
    let out = env2.berth(&["up"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("| done"),
        "{out:?}"
    );
}

#[test]
fn a_dependent_with_restart_true_restarts_with_its_dependency() {
    let env = Env::new(
        r#"
services:
  dep:
    image: bb:latest
    network_mode: none
    restart: on-failure
    command: ["sh", "-c", "sleep 1; exit 1"]
  web:
    image: bb:latest
    network_mode: none
    stop_signal: SIGKILL
    depends_on:
      dep: {condition: service_started, restart: true}
    command: ["sh", "-c", "echo web started; exec sleep 1000"]
  other:
    image: bb:latest
    network_mode: none
    stop_signal: SIGKILL
    depends_on: [dep]
    command: ["sh", "-c", "echo other started; exec sleep 1000"]
"#,
    );
    env.ok(&["up", "-d"]);
    env.wait_for(
        "web to be restarted with dep",
        Duration::from_secs(15),
        || env.ok(&["logs", "web"]).matches("web started").count() >= 2,
    );
    // Without `restart: true` a dependent is left alone.
    assert_eq!(
        env.ok(&["logs", "other"]).matches("other started").count(),
        1
    );
    assert_eq!(env.container(&env.ps_json(), "web")["State"], "running");
}

#[test]
fn what_berth_cannot_do_yet_is_refused_by_name() {
    let env = Env::new(
        "services:\n  a:\n    image: bb:latest\n    network_mode: none\n    command: sleep 100\n    pull_policy: daily\n",
    );
    let out = env.berth(&["up", "-d"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pull_policy \"daily\" is not supported yet"),
        "{err}"
    );
    assert!(env.ps_json().is_empty(), "nothing is made");
}

/// Ports published on IPv6 loopback answer on `[::1]` (through berth's
/// userland proxy: the kernel cannot DNAT ::1), explicitly (`[::1]:P:80`)
/// and for a port published on every address; `down` takes the proxy away.
#[test]
fn a_port_published_on_ipv6_loopback_answers_and_down_removes_its_proxy() {
    let (p1, p2) = (free_port(), free_port());
    let env = Env::new(&format!(
        r#"
services:
  web:
    image: bb:latest
    command: ["sh", "-c", "mkdir -p /www && echo hello from web > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports: ["[::1]:{p1}:80", "{p2}:80"]
"#
    ));
    let get = |addr: &str| -> String {
        use std::io::{Read, Write};
        let mut body = String::new();
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(mut s) = std::net::TcpStream::connect(addr) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n");
                let _ = s.read_to_string(&mut body);
                if body.contains("hello from web") {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        body
    };
    env.ok(&["up", "-d"]);
    let ids: Vec<String> = env
        .ps_json()
        .iter()
        .map(|c| c["ID"].as_str().unwrap().to_owned())
        .collect();
    assert!(get(&format!("[::1]:{p1}")).contains("hello from web"));
    assert!(get(&format!("[::1]:{p2}")).contains("hello from web"));
    assert!(get(&format!("127.0.0.1:{p2}")).contains("hello from web"));
    let ps_table = env.ok(&["ps"]);
    assert!(
        ps_table.contains(&format!("::1:{p1}->80/tcp")),
        "{ps_table}"
    );
    // A kill -9 of the proxy: the next `up` starts it again.
    let pidfile = env
        .run
        .join("networks/proxy")
        .join(format!("{}_default", env.project))
        .join(format!("{}.pid", ids[0]));
    let proxy = berth_network::proxy::running(&pidfile)
        .unwrap()
        .expect("a port proxy runs");
    nix::sys::signal::kill(proxy, nix::sys::signal::Signal::SIGKILL).unwrap();
    env.ok(&["up", "-d"]);
    let again = berth_network::proxy::running(&pidfile)
        .unwrap()
        .expect("up starts the killed port proxy again");
    assert_ne!(again, proxy);
    assert!(get(&format!("[::1]:{p1}")).contains("hello from web"));
    env.ok(&["down", "-t", "1"]);
    assert!(std::net::TcpStream::connect(format!("[::1]:{p1}")).is_err());
    let left = env.leftovers(&ids);
    assert!(left.is_empty(), "left behind: {left:#?}");
}

/// The host-side interfaces in the env's namespace other than `lo`.
fn links_in(env: &Env) -> Vec<String> {
    let out = env.in_ns(&["ip", "-o", "link"]);
    assert!(out.status.success(), "precondition: ip -o link: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let name = l.split(':').nth(1).unwrap_or("").trim();
            name.split('@').next().unwrap_or("").to_owned()
        })
        .filter(|n| n != "lo")
        .collect()
}

/// A one-off's command: its address, and whether it reaches `web` by name.
const ADDRESS_AND_WEB: &str =
    "ip -o -4 addr show eth0; ping -c 1 -W 2 web >/dev/null && echo reached web";

/// `run --rm` on the project network: the one-off's lease, DNS names and
/// namespace are gone when it returns, its veth pair (left to die with the
/// namespace) within a moment, and the next one-off gets a fresh address
/// and finds the service by name. With a container sharing a namespace
/// (`network_mode: service:…`), whose veth cannot die with it, removal
/// deletes the veth itself, at once.
#[test]
fn run_rm_releases_its_network_at_once_and_its_veth_dies_with_its_namespace() {
    let env = e2e_support::Setup::new(format!("e2erun{}", std::process::id()))
        .compose(
            r#"
services:
  web:
    image: bb:latest
    command: ["sleep", "1000"]
    stop_signal: SIGKILL
  side:
    image: bb:latest
    network_mode: "service:web"
    command: ["sleep", "1000"]
    stop_signal: SIGKILL
    profiles: [side]
"#,
        )
        .netns()
        .build();
    env.ok(&["up", "-d", "web"]);
    let paths = berth::engine::state::Paths {
        root: env.root.clone(),
        run: env.run.clone(),
    };
    let network = format!("{}_default", env.project);
    let nets = berth::engine::net::networks(&paths);
    let web = nets.attachments(&network).unwrap();
    assert_eq!(web.len(), 1, "{web:#?}");
    let web_veth = web[0].host_ifname.clone();
    let netns_dir = env.run.join("networks/netns");
    let namespaces = || -> Vec<String> {
        std::fs::read_dir(&netns_dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let before = namespaces();
    let dns_records = || -> Vec<String> {
        let t = berth_network::dns::DnsTable::load(&env.run.join("dns/table.json")).unwrap();
        t.networks
            .iter()
            .filter(|n| n.name == network)
            .flat_map(|n| n.records.iter().map(|r| r.container_id.clone()))
            .collect()
    };
    let mut addresses = Vec::new();
    for _ in 0..2 {
        let out = env.berth(&["run", "--rm", "-T", "web", "sh", "-c", ADDRESS_AND_WEB]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{out:?}");
        assert!(text.contains("reached web"), "{text}");
        let addr = text
            .split_whitespace()
            .skip_while(|w| *w != "inet")
            .nth(1)
            .expect("the one-off's address")
            .to_owned();
        addresses.push(addr);
        // Released when `run` returns: lease, DNS names, namespace, state.
        let leases = nets.attachments(&network).unwrap();
        assert_eq!(
            leases.iter().map(|a| &a.container_id).collect::<Vec<_>>(),
            vec![&web[0].container_id],
            "only web's lease is left"
        );
        assert_eq!(dns_records(), vec![web[0].container_id.clone()]);
        assert_eq!(namespaces(), before, "the one-off's namespace is gone");
        // The veth pair goes with the namespace, within a bounded time.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let links = links_in(&env);
            let extra: Vec<&String> = links
                .iter()
                .filter(|l| **l != web_veth && !l.starts_with("br-"))
                .collect();
            if extra.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the one-off's veth is still there after 2 s: {extra:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    assert_ne!(
        addresses[0], addresses[1],
        "an address is not reused at once"
    );
    // A one-off without --rm is kept (and removed by `down`).
    let out = env.berth(&["run", "-T", "web", "sh", "-c", ADDRESS_AND_WEB]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains("reached web"),
        "{out:?}"
    );
    let kept = env
        .containers()
        .into_iter()
        .find(|(n, _)| n.contains("-web-run-"))
        .expect("the one-off run without --rm is kept")
        .1;

    // A namespace shared with `side`: removing web deletes its veth itself.
    env.ok(&["--profile", "side", "up", "-d", "side"]);
    env.ok(&["--profile", "side", "rm", "-s", "-f", "web"]);
    assert!(
        !links_in(&env).contains(&web_veth),
        "web's veth is deleted by its removal while side holds its namespace: {:?}",
        links_in(&env)
    );
    let ids: Vec<String> = env.containers().into_iter().map(|(_, id)| id).collect();
    env.ok(&["--profile", "side", "down", "-t", "0"]);
    let mut all = ids;
    all.push(web[0].container_id.clone());
    all.push(kept);
    let left = env.leftovers(&all);
    assert!(left.is_empty(), "left behind: {left:#?}");
}
