//! Benchmark (not a timed test): `run` of busybox `true` with Docker's
//! default capabilities and seccomp profile, then create, start and delete
//! separately, median over 60 runs each; and `runc run` of the same bundle
//! when runc is installed. Needs root. `cargo bench -p berth-runtime`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_runtime::{CreateOptions, Runtime};

const RUNS: usize = 60;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bundle = tmp.path().join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/busybox-rootfs.sh");
    let ok = Command::new("sh")
        .arg(script)
        .arg(bundle.join("rootfs"))
        .status()
        .unwrap()
        .success();
    assert!(ok, "busybox-rootfs.sh failed");
    let mut spec = berth_runtime::spec::docker_default(&["true"]);
    spec.linux_mut()
        .as_mut()
        .unwrap()
        .set_cgroups_path(Some("berth-bench/c".into()));
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec(&spec).unwrap(),
    )
    .unwrap();
    let rt = Runtime::new(tmp.path().join("state"))
        .with_init_exe(env!("CARGO_BIN_EXE_berth-runtime-init"));

    // Warm up (page cache, seccomp cache).
    rt.run("warm", &bundle, &CreateOptions::default())
        .expect("warm-up run");

    let mut runs = Vec::new();
    for i in 0..RUNS {
        let t = Instant::now();
        let code = rt
            .run(&format!("r{i}"), &bundle, &CreateOptions::default())
            .expect("run");
        runs.push(t.elapsed());
        assert_eq!(code, 0);
    }
    let (mut creates, mut starts, mut deletes) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..RUNS {
        let id = format!("c{i}");
        let t = Instant::now();
        rt.create(&id, &bundle, &CreateOptions::default())
            .expect("create");
        creates.push(t.elapsed());
        let t = Instant::now();
        rt.start(&id).expect("start");
        starts.push(t.elapsed());
        // `true` exits at once; a zombie counts as stopped.
        while berth_runtime::state::Saved::load(rt.root(), &id)
            .unwrap()
            .alive()
        {
            std::thread::sleep(Duration::from_micros(200));
        }
        let t = Instant::now();
        rt.delete(&id, false).expect("delete");
        deletes.push(t.elapsed());
    }
    println!("berth (library, {RUNS} runs, Docker default caps + seccomp):");
    println!("  run     median {}", ms(median(runs)));
    println!("  create  median {}", ms(median(creates)));
    println!("  start   median {}", ms(median(starts)));
    println!("  delete  median {}", ms(median(deletes)));

    if Path::new("/usr/sbin/runc").exists() || Path::new("/usr/bin/runc").exists() {
        let root = tmp.path().join("runc");
        let mut runs = Vec::new();
        for i in 0..RUNS {
            let t = Instant::now();
            let st = Command::new("runc")
                .arg("--root")
                .arg(&root)
                .args(["run", "--bundle"])
                .arg(&bundle)
                .arg(format!("runc{i}"))
                .stdout(Stdio::null())
                .status()
                .unwrap();
            runs.push(t.elapsed());
            assert!(st.success());
        }
        println!("runc run median {} (same bundle)", ms(median(runs)));
    } else {
        println!("runc not installed: no comparison");
    }
}
