//! Speed of normalization on a large project: 200 services with the usual
//! attributes (long-form ports and volumes, environment, labels, depends_on
//! chains, healthchecks), normalized, graphed, hashed and printed as JSON
//! the way `berth config --format json` does. Run with
//! `cargo bench -p berth --bench model_normalize`; prints min and median.

use std::time::{Duration, Instant};

use berth::model::graph::ServiceGraph;
use berth::model::hash::service_hash;
use berth::model::node::{Node, Span};
use berth::model::normalize::{normalize, NormalizeOptions};

fn project_json(n: usize) -> serde_json::Value {
    let mut services = serde_json::Map::new();
    for i in 0..n {
        let mut s = serde_json::json!({
            "image": format!("registry.local/app{i}:1.0"),
            "command": ["sleep", "3600"],
            "environment": ["A=1", format!("INDEX={i}"), "HOME"],
            "labels": {"team": "core", "tier": if i % 2 == 0 { "web" } else { "db" }},
            "ports": [{"target": 8000 + i, "published": format!("{}", 18000 + i)}],
            "volumes": [{"type": "volume", "source": "data", "target": format!("/data/{i}/")}],
            "healthcheck": {"test": "true", "interval": "30s", "timeout": "5s", "retries": 3},
            "restart": "unless-stopped",
            "mem_limit": "512m",
            "ulimits": {"nofile": {"soft": 1024, "hard": 4096}},
            "networks": ["front", "back"],
        });
        if i > 0 {
            s["depends_on"] = serde_json::json!([format!("s{}", i - 1)]);
        }
        services.insert(format!("s{i}"), s);
    }
    serde_json::json!({
        "name": "bench",
        "services": services,
        "networks": {"front": {}, "back": {"internal": true}},
        "volumes": {"data": {}},
    })
}

fn main() {
    let n = 200;
    let tree = Node::from_json(&project_json(n), &Span::synthetic("bench.yaml"));
    let opts = NormalizeOptions {
        project_name: "bench".into(),
        working_dir: std::env::temp_dir(),
        environment: [("HOME".to_owned(), "/root".to_owned())].into(),
        ..NormalizeOptions::default()
    };
    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..50 {
        let t = tree.clone();
        let start = Instant::now();
        let project = normalize(t, &opts).expect("normalizes");
        let graph = ServiceGraph::new(&project).expect("graph");
        assert_eq!(graph.start_order().len(), n);
        for s in project.services.values() {
            service_hash(s).expect("hash");
        }
        let out = serde_json::to_string_pretty(&project).expect("json");
        assert!(out.len() > 1000);
        times.push(start.elapsed());
    }
    times.sort();
    println!(
        "normalize+graph+hash+print, {n} services: min {:.2} ms, median {:.2} ms",
        times[0].as_secs_f64() * 1e3,
        times[times.len() / 2].as_secs_f64() * 1e3
    );
}
