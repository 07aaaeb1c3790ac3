//! Data-driven tests of the structural stages of the Compose loader (merge,
//! unicity, schema validation, extends, include, path resolution) against
//! the fixtures transcribed from compose-go and the Compose specification
//! (`../shared/fixtures`, cloned beside the repository in CI).
//!
//! Every fixture case either matches, or is listed in a known-difference
//! list below with the reason; a listed case that starts matching fails the
//! test too, so the lists stay honest.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth::model::node::{Key, Map, Node, Span, Tag, Value};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures");

fn fixture(rel: &str) -> PathBuf {
    let p = Path::new(FIXTURES).join(rel);
    assert!(
        p.exists(),
        "fixture {} is missing: the shared fixtures must be checked out beside the repository",
        p.display()
    );
    p
}

fn load_json(rel: &str) -> serde_json::Value {
    let text = fs_err::read_to_string(fixture(rel)).expect("read fixture");
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// A YAML text as a Node tree, keeping `!reset`/`!override` tags (test-only
/// stand-in for the real parser: positions are line 1 of `file`).
fn yaml(text: &str, file: &str) -> Node {
    let v: serde_yaml::Value = serde_yaml::from_str(text).expect("fixture YAML parses");
    let span = Span {
        file: Arc::from(Path::new(file)),
        line: 1,
        col: 1,
    };
    from_yaml(&v, &span)
}

fn from_yaml(v: &serde_yaml::Value, span: &Span) -> Node {
    use serde_yaml::Value as Y;
    let value = match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Y::String(s) => Value::String(s.clone()),
        Y::Sequence(items) => Value::Seq(items.iter().map(|i| from_yaml(i, span)).collect()),
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let name = match k {
                    Y::String(s) => s.clone(),
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => panic!("unsupported key {other:?}"),
                };
                out.insert(Key::new(name, span.clone()), from_yaml(v, span));
            }
            Value::Map(out)
        }
        Y::Tagged(t) => {
            let mut n = from_yaml(&t.value, span);
            n.tag = match t.tag.to_string().as_str() {
                "!reset" => Tag::Reset,
                "!override" => Tag::Override,
                other => panic!("unsupported tag {other}"),
            };
            return n;
        }
    };
    Node::new(value, span.clone())
}

fn empty_map() -> Node {
    Node::new(Value::Map(Map::new()), Span::synthetic("<empty>"))
}

/// Checks `outcomes` (case id → matched?) against the known differences:
/// panics listing every unexpected failure and every listed case that passes.
fn check_known(what: &str, outcomes: &[(String, Result<(), String>)], known: &[(&str, &str)]) {
    let mut problems = Vec::new();
    let mut matched = 0;
    for (id, outcome) in outcomes {
        let listed = known.iter().find(|(k, _)| k == id);
        match (outcome, listed) {
            (Ok(()), None) => matched += 1,
            (Ok(()), Some(_)) => problems.push(format!(
                "{id}: listed as a known difference but matches now"
            )),
            (Err(e), None) => problems.push(format!("{id}: {e}")),
            (Err(_), Some(_)) => {}
        }
    }
    eprintln!(
        "{what}: {matched}/{} cases match, {} known differences",
        outcomes.len(),
        known.len()
    );
    assert!(problems.is_empty(), "{what}:\n{}", problems.join("\n"));
}

mod merge {
    use super::*;
    use berth::model::merge::{enforce_unicity, merge};

    /// compose-go's own merge/unicity tables: `merge(base, override)` then
    /// unicity equals `expected` (compared as plain data, map order aside).
    #[test]
    fn compose_go_merge_cases() {
        let cases = load_json("compose-go/override/merge-cases.json");
        let mut outcomes = Vec::new();
        for case in cases["cases"].as_array().unwrap() {
            let id = case["id"].as_str().unwrap().to_owned();
            let expected = yaml(case["expected"].as_str().unwrap(), "expected.yaml").to_json();
            let got = match case["kind"].as_str().unwrap() {
                "merge" => {
                    let base = yaml(case["base"].as_str().unwrap(), "base.yaml");
                    let over = yaml(case["override"].as_str().unwrap(), "override.yaml");
                    merge(base, over)
                }
                "unicity" => enforce_unicity(yaml(case["input"].as_str().unwrap(), "input.yaml")),
                other => panic!("unknown kind {other}"),
            };
            let outcome = match got {
                Ok(n) if n.to_json() == expected => Ok(()),
                Ok(n) => Err(format!("got {}\nwant {}", n.to_json(), expected)),
                Err(e) => Err(format!("error: {e}")),
            };
            outcomes.push((id, outcome));
        }
        assert_eq!(outcomes.len(), 71);
        check_known(
            "compose-go merge cases",
            &outcomes,
            &[(
                "TestMergeEnvFilesMixed#1",
                "transcription: same base/override as #2 but an expected list without the \
                 `path:` entry; #2 (which matches) is compose-go's actual result",
            )],
        );
    }

    /// The Compose specification's merge examples: merging gives the same
    /// tree as the spec's expected file (both through the same merge path).
    #[test]
    fn compose_spec_merge_cases() {
        let cases = load_json("compose-spec/merge-cases.json");
        let mut outcomes = Vec::new();
        for (i, case) in cases["cases"].as_array().unwrap().iter().enumerate() {
            let id = format!(
                "{}#{i} {}",
                case["file"].as_str().unwrap(),
                case["section"].as_str().unwrap()
            );
            let base = yaml(case["base"].as_str().unwrap(), "base.yaml");
            let over = yaml(case["override"].as_str().unwrap(), "override.yaml");
            let expected = yaml(case["expected"].as_str().unwrap(), "expected.yaml");
            let got = merge(empty_map(), base).and_then(|b| merge(b, over));
            let want = merge(empty_map(), expected).expect("expected merges");
            let outcome = match got {
                Ok(n) if n.to_json() == want.to_json() => Ok(()),
                Ok(n) => Err(format!("got {}\nwant {}", n.to_json(), want.to_json())),
                Err(e) => Err(format!("error: {e}")),
            };
            outcomes.push((id, outcome));
        }
        check_known(
            "compose-spec merge cases",
            &outcomes,
            &[(
                "13-merge.md#4 Merge and override > Exceptions > Reset value",
                "the raw tree keeps `environment: null` (merging two emptied mappings gives \
                 Compose a nil list too); normalization drops it, as docker compose's \
                 reference output shows",
            )],
        );
    }

    #[test]
    fn reset_and_override_tags() {
        let base = yaml(
            "services:\n  web:\n    image: a\n    ports: ['80:80']\n    environment: {A: '1', B: '2'}\n    command: x\n",
            "base.yaml",
        );
        let over = yaml(
            "services:\n  web:\n    ports: !reset []\n    environment: !override {C: '3'}\n    command: !reset null\n",
            "override.yaml",
        );
        let got = merge(base, over).unwrap().to_json();
        assert_eq!(
            got,
            serde_json::json!({"services": {"web": {"image": "a", "environment": {"C": "3"}}}})
        );
    }
}
