//! Speed of the structural loader stages on a 200-service project: schema
//! validation, merging an override file onto it (with de-duplication),
//! `extends` (every service extends a common base) and relative path
//! resolution. Run with `cargo bench -p berth --bench model_structure`;
//! prints min and median per stage. Inputs are built in memory so the
//! figures exclude parsing.

use std::path::Path;
use std::time::{Duration, Instant};

use berth::model::extends::{apply_extends, BoxError, ExtendsContext};
use berth::model::merge::{merge, Tags};
use berth::model::node::{Node, Span};
use berth::model::paths::{resolve_relative_paths, PathBase};
use berth::model::schema::validate;

fn project(n: usize) -> serde_json::Value {
    let mut services = serde_json::Map::new();
    services.insert(
        "base".into(),
        serde_json::json!({"image": "registry.local/base:1", "restart": "always",
            "environment": {"COMMON": "1"}, "labels": ["tier=app"]}),
    );
    for i in 0..n {
        services.insert(
            format!("s{i}"),
            serde_json::json!({
                "extends": "base",
                "image": format!("registry.local/app{i}:1.0"),
                "command": ["sleep", "3600"],
                "environment": ["A=1", format!("INDEX={i}")],
                "labels": {"team": "core"},
                "ports": [format!("{}:80", 18000 + i), {"target": 443, "published": format!("{}", 28000 + i)}],
                "volumes": ["./data:/data:ro", {"type": "volume", "source": "v", "target": "/v"}],
                "depends_on": {"base": {"condition": "service_started"}},
                "healthcheck": {"test": ["CMD", "true"], "interval": "10s"},
                "deploy": {"resources": {"limits": {"cpus": "0.5", "memory": "512M"}}},
                "networks": ["front", "back"],
                "build": {"context": ".", "args": {"X": "1"}},
                "env_file": ["common.env"],
            }),
        );
    }
    serde_json::json!({"services": services, "networks": {"front": {}, "back": {}}, "volumes": {"v": {}}})
}

fn override_file(n: usize) -> serde_json::Value {
    let mut services = serde_json::Map::new();
    for i in 0..n {
        services.insert(
            format!("s{i}"),
            serde_json::json!({"environment": {"B": "2"}, "ports": [format!("{}:80", 18000 + i)],
                "volumes": ["./other:/data"], "command": ["run"]}),
        );
    }
    serde_json::json!({"services": services})
}

fn measure(name: &str, mut f: impl FnMut() -> Duration) {
    let mut times: Vec<Duration> = (0..50).map(|_| f()).collect();
    times.sort();
    println!(
        "{name:<40} min {:>9.3?}  median {:>9.3?}",
        times[0],
        times[times.len() / 2]
    );
}

fn main() {
    let n = 200;
    let span = Span::synthetic("bench.yaml");
    let base = Node::from_json(&project(n), &span);
    let over = Node::from_json(&override_file(n), &span);
    let empty = Node::from_json(&serde_json::json!({}), &span);

    let start = Instant::now();
    validate(&base).expect("valid");
    println!(
        "{:<40} {:>9.3?}",
        "first validation (compiles the schema)",
        start.elapsed()
    );

    measure("schema::validate (200 services)", || {
        let start = Instant::now();
        validate(&base).expect("valid");
        start.elapsed()
    });
    measure("merge::merge (first file onto empty)", || {
        let (e, b) = (empty.clone(), base.clone());
        let start = Instant::now();
        let merged = merge(e, b).expect("merges");
        let t = start.elapsed();
        drop(merged);
        t
    });
    measure("merge::merge (override onto 200)", || {
        let (b, o) = (base.clone(), over.clone());
        let start = Instant::now();
        let merged = merge(b, o).expect("merges");
        let t = start.elapsed();
        drop(merged);
        t
    });
    measure("extends::apply_extends (200 x base)", || {
        let mut doc = base.clone();
        let tags = Tags::default();
        let ctx = ExtendsContext {
            file: Path::new("/p/compose.yaml"),
            working_dir: Path::new("/p"),
            home: None,
        };
        let mut loader = |_: &Path| -> Result<Vec<Node>, BoxError> { Err("no other file".into()) };
        let start = Instant::now();
        apply_extends(&mut doc, &tags, ctx, &mut loader).expect("extends");
        start.elapsed()
    });
    measure("paths::resolve_relative_paths", || {
        let mut doc = base.clone();
        let start = Instant::now();
        resolve_relative_paths(
            &mut doc,
            PathBase {
                working_dir: Path::new("/p"),
                home: Some(Path::new("/root")),
            },
        )
        .expect("paths");
        start.elapsed()
    });
}
