//! Speed of the syntax layer on a large Compose file: 200 services written as
//! YAML (with `${}` references, an anchor merged into every service), parsed
//! into nodes and interpolated, plus a 200-line `.env` file. Also the time to
//! refuse an alias bomb. Run with `cargo bench -p berth --bench model_syntax`;
//! prints min and median.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use berth::model::{dotenv, interpolate, yaml};

fn compose_yaml(n: usize) -> String {
    let mut s = String::from(
        "x-common: &common\n  restart: unless-stopped\n  mem_limit: 512m\n  labels:\n    team: core\n\nservices:\n",
    );
    for i in 0..n {
        write!(
            s,
            "  s{i}:\n    <<: *common\n    image: \"registry.local/app{i}:${{TAG:-1.0}}\"\n    command: [sleep, \"3600\"]\n    environment:\n      A: \"1\"\n      INDEX: \"{i}\"\n      HOME: ${{HOME}}\n    ports:\n      - target: {}\n        published: \"${{BASE_PORT:-18000}}\"\n    volumes:\n      - type: volume\n        source: data\n        target: /data/{i}/\n    healthcheck:\n      test: [CMD, \"true\"]\n      interval: 30s\n      retries: ${{RETRIES:-3}}\n    networks: [front, back]\n",
            8000 + i
        )
        .unwrap();
        if i > 0 {
            writeln!(s, "    depends_on: [s{}]", i - 1).unwrap();
        }
    }
    s.push_str("networks:\n  front: {}\n  back:\n    internal: true\nvolumes:\n  data: {}\n");
    s
}

fn stats(name: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "{name}: min {:?}, median {:?} ({} runs)",
        times[0],
        times[times.len() / 2],
        times.len()
    );
}

fn main() {
    let text = compose_yaml(200);
    let lookup = |k: &str| match k {
        "HOME" => Some("/root".to_owned()),
        "TAG" => Some("2.0".to_owned()),
        _ => None,
    };
    let mut parse_times = Vec::new();
    let mut interp_times = Vec::new();
    for _ in 0..50 {
        let start = Instant::now();
        let mut docs = yaml::parse(&text, Path::new("bench.yaml")).expect("parses");
        parse_times.push(start.elapsed());
        let start = Instant::now();
        interpolate::interpolate(&mut docs[0], &lookup).expect("interpolates");
        interp_times.push(start.elapsed());
    }
    println!("compose file: {} bytes, 200 services", text.len());
    stats("yaml::parse", parse_times);
    stats("interpolate", interp_times);

    let mut env = String::new();
    for i in 0..200usize {
        writeln!(
            env,
            "VAR_{i}=\"value ${{VAR_{}:-x}}\" # comment",
            i.saturating_sub(1)
        )
        .unwrap();
    }
    let mut times = Vec::new();
    for _ in 0..50 {
        let start = Instant::now();
        let m = dotenv::parse(&env, Path::new("bench.env"), &|_| None).expect("parses");
        assert_eq!(m.len(), 200);
        times.push(start.elapsed());
    }
    stats("dotenv::parse (200 lines)", times);

    let mut bomb = String::from("a0: &a0 [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n");
    for i in 1..12 {
        let p = i - 1;
        writeln!(
            bomb,
            "a{i}: &a{i} [*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p}]"
        )
        .unwrap();
    }
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        assert!(yaml::parse(&bomb, Path::new("bomb.yaml")).is_err());
        times.push(start.elapsed());
    }
    stats("alias bomb refused", times);
}
