//! `berth config --format json` against Docker Compose's recorded output, for
//! every input in `../shared/fixtures` that has a recorded answer: compose-go's
//! loader cases, interpolation strings, consistency checks, `-f` merges and
//! unicity, and the Compose specification's merge examples.
//!
//! Prints `suite: N/M match` per suite and each mismatch with its reason. A
//! mismatch must be listed in `known-differences.txt` with its reason, and a
//! listed case must still differ; `BERTH_UPDATE_KNOWN=1` rewrites the file's
//! entries from this run (keeping the reasons already written).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use compose_tests::{berth_binary, fixtures, known_differences, run_all, Case, Outcome, Reference};
use serde_json::Value as J;

fn read_json(p: &Path) -> J {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn env_of(v: &J) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn reference_of(r: &J) -> Option<Reference> {
    match r["rc"].as_i64() {
        Some(0) if r["config"].get("$omitted").is_some() => Some(Reference::AnyConfig),
        Some(0) => Some(Reference::Config(r["config"].clone())),
        // A run that blew up (rc null: killed) counts as a failure too.
        _ if r.is_object() => Some(Reference::Failure(r["error"].as_str().map(str::to_owned))),
        _ => None,
    }
}

fn case(
    id: String,
    files: Vec<String>,
    env: BTreeMap<String, String>,
    reference: Reference,
) -> Case {
    Case {
        id,
        files,
        env,
        reference,
        config_args: Vec::new(),
        extra_files: BTreeMap::new(),
    }
}

fn loader_cases(root: &Path) -> Vec<Case> {
    let all = read_json(&root.join("compose-go/loader/cases.json"));
    let mut out = Vec::new();
    for c in all["cases"].as_array().expect("cases") {
        let id = c["id"].as_str().unwrap_or("?");
        let env = env_of(&c["env"]);
        match &c["yaml"] {
            J::String(y) => {
                if let Some(r) = reference_of(&c["reference"]) {
                    out.push(case(
                        format!("loader/{id}"),
                        vec![y.clone()],
                        env.clone(),
                        r,
                    ));
                }
            }
            J::Array(docs) => {
                let docs: Vec<String> = docs
                    .iter()
                    .filter_map(|d| d.as_str().map(str::to_owned))
                    .collect();
                if let Some(refs) = c["reference"].as_array() {
                    for (i, (d, r)) in docs.iter().zip(refs).enumerate() {
                        if let Some(r) = reference_of(r) {
                            out.push(case(
                                format!("loader/{id}[{i}]"),
                                vec![d.clone()],
                                env.clone(),
                                r,
                            ));
                        }
                    }
                }
                if let Some(r) = c.get("reference_merged").and_then(reference_of) {
                    out.push(case(
                        format!("loader/{id}[merged]"),
                        docs.clone(),
                        env.clone(),
                        r,
                    ));
                }
            }
            _ => {}
        }
        if let (Some(rows), Some(refs)) =
            (c["table_rows"].as_array(), c["reference_rows"].as_array())
        {
            for (row, r) in rows.iter().zip(refs) {
                let name = row["name"].as_str().unwrap_or("?");
                let text = row["config"].as_str().unwrap_or_default().to_owned();
                if let Some(r) = reference_of(r) {
                    out.push(case(
                        format!("loader/{id}/{name}"),
                        vec![text],
                        env.clone(),
                        r,
                    ));
                }
            }
        }
    }
    out
}

/// A YAML single-quoted scalar.
fn single_quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn interpolation_cases(root: &Path) -> Vec<Case> {
    let all = read_json(&root.join("compose-go/interpolation/cases.json"));
    let mut out = Vec::new();
    for group in all["string_case_groups"].as_array().expect("groups") {
        for c in group["cases"].as_array().expect("cases") {
            let id = c["id"].as_str().unwrap_or("?");
            let env = if c.get("env_override").is_some() {
                env_of(&c["env_override"])
            } else {
                env_of(&group["env"])
            };
            let input = c["input"].as_str().unwrap_or_default();
            if input.contains('\n') || input.contains('\r') {
                continue;
            }
            let yaml = format!(
                "services:\n  s:\n    image: test\n    environment:\n      TESTVAR: {}\n",
                single_quoted(input)
            );
            let r = &c["reference"];
            let reference = match r["rc"].as_i64() {
                Some(0) => Reference::Value {
                    pointer: "/services/s/environment/TESTVAR".into(),
                    value: r["value"].clone(),
                },
                Some(_) => Reference::Failure(r["error"].as_str().map(str::to_owned)),
                None => continue,
            };
            out.push(case(
                format!("interpolation/{id}"),
                vec![yaml],
                env,
                reference,
            ));
        }
    }
    out
}

fn consistency_cases(root: &Path) -> Vec<Case> {
    let dir = root.join("compose-go/consistency");
    let text = std::fs::read_to_string(dir.join("cases.yaml")).expect("cases.yaml");
    let cases: serde_yaml::Value = serde_yaml::from_str(&text).expect("YAML");
    let results = read_json(&dir.join("reference.json"));
    let mut out = Vec::new();
    for c in cases["cases"].as_sequence().expect("cases") {
        let id = c["id"].as_str().unwrap_or("?");
        let yaml = c["yaml"].as_str().unwrap_or_default().to_owned();
        let r = &results["results"][id];
        let reference = match r["rc"].as_i64() {
            Some(0) => Reference::AnyConfig,
            Some(_) => Reference::Failure(r["error"].as_str().map(str::to_owned)),
            None => continue,
        };
        out.push(case(
            format!("consistency/{id}"),
            vec![yaml],
            BTreeMap::new(),
            reference,
        ));
    }
    out
}

fn merge_cases(root: &Path) -> Vec<Case> {
    let all = read_json(&root.join("compose-go/override/merge-cases.json"));
    let mut out = Vec::new();
    for c in all["cases"].as_array().expect("cases") {
        let id = c["id"].as_str().unwrap_or("?");
        let files = match c["kind"].as_str() {
            Some("unicity") => vec![c["input"].as_str().unwrap_or_default().to_owned()],
            _ => vec![
                c["base"].as_str().unwrap_or_default().to_owned(),
                c["override"].as_str().unwrap_or_default().to_owned(),
            ],
        };
        if let Some(r) = reference_of(&c["reference"]) {
            let mut k = case(format!("merge/{id}"), files, BTreeMap::new(), r);
            k.config_args.push("--no-consistency".into());
            k.extra_files = env_of(&c["reference_stub_files"]);
            out.push(k);
        }
    }
    let spec = read_json(&root.join("compose-spec/merge-cases.json"));
    for c in spec["cases"].as_array().expect("cases") {
        let id = c["section"].as_str().unwrap_or("?").replace(' ', "");
        let files = vec![
            c["base"].as_str().unwrap_or_default().to_owned(),
            c["override"].as_str().unwrap_or_default().to_owned(),
        ];
        if let Some(r) = reference_of(&c["reference"]) {
            let mut k = case(format!("spec-merge/{id}"), files, BTreeMap::new(), r);
            k.config_args.push("--no-consistency".into());
            out.push(k);
        }
    }
    out
}

#[test]
fn config_matches_docker_compose() {
    let root = fixtures();
    let bin = berth_binary();
    let loader_dir = root.join("compose-go/loader");
    let suites: Vec<(&str, Vec<Case>, Option<PathBuf>)> = vec![
        ("loader", loader_cases(&root), Some(loader_dir)),
        ("interpolation", interpolation_cases(&root), None),
        ("consistency", consistency_cases(&root), None),
        ("merge", merge_cases(&root), None),
    ];
    let mut outcomes: Vec<Outcome> = Vec::new();
    for (name, cases, template) in &suites {
        let got = run_all(&bin, cases, template.as_deref());
        let matched = got.iter().filter(|o| o.mismatch.is_none()).count();
        eprintln!("{name}: {matched}/{} match", got.len());
        outcomes.extend(got);
    }

    let known_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("known-differences.txt");
    let known = known_differences(&known_path);
    if std::env::var_os("BERTH_UPDATE_KNOWN").is_some() {
        let mut text = String::from(
            "# Cases where berth's `config` differs from Docker Compose v2.40.3, and why.\n\
             # suite/case-id<TAB>reason. Kept true by tests/config_conformance.rs.\n",
        );
        for o in &outcomes {
            if let Some(m) = &o.mismatch {
                let reason = known
                    .get(&o.id)
                    .cloned()
                    .unwrap_or_else(|| format!("UNEXPLAINED: {m}"));
                text.push_str(&format!("{}\t{}\n", o.id, reason));
            }
        }
        std::fs::write(&known_path, text).expect("write known differences");
    }
    let mut problems = Vec::new();
    for o in &outcomes {
        match (&o.mismatch, known.get(&o.id)) {
            (Some(m), None) => problems.push(format!("{}: {m}", o.id)),
            (Some(m), Some(_)) => eprintln!("known: {}: {m}", o.id),
            (None, Some(_)) => problems.push(format!(
                "{}: listed as a known difference but matches now",
                o.id
            )),
            (None, None) => {}
        }
    }
    let total = outcomes.len();
    let matched = outcomes.iter().filter(|o| o.mismatch.is_none()).count();
    eprintln!(
        "all suites: {matched}/{total} match, {} known differences",
        known.len()
    );
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
