//! Conformance of the syntax layer (YAML reading, `${}` interpolation, `.env`
//! files) against compose-go's test tables and docker compose's recorded
//! answers in `../shared/fixtures/compose-go/`.
//!
//! Each table test counts its cases; a case that does not match must be in the
//! test's known-difference list with the reason, and a listed case that starts
//! matching fails the test too, so the lists stay true.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth::model::dotenv::{self, Format};
use berth::model::interpolate::{self, Cast, CastRule};
use berth::model::node::{Node, Span, Tag, Value};
use berth::model::yaml::{self, YamlError};
use indexmap::IndexMap;
use serde_json::Value as J;

fn fixtures() -> PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/compose-go"
    ))
    .to_path_buf()
}

fn load_json(rel: &str) -> J {
    let path = fixtures().join(rel);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("fixture {} is missing: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn env_of(j: Option<&J>) -> HashMap<String, String> {
    j.and_then(J::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Checks the outcome of every case against the known-difference list.
struct Tally {
    name: &'static str,
    known: &'static [(&'static str, &'static str)],
    passed: usize,
    problems: Vec<String>,
}

impl Tally {
    fn new(name: &'static str, known: &'static [(&'static str, &'static str)]) -> Tally {
        Tally {
            name,
            known,
            passed: 0,
            problems: Vec::new(),
        }
    }

    fn record(&mut self, id: &str, outcome: Result<(), String>) {
        let listed = self.known.iter().any(|(k, _)| *k == id);
        match (outcome, listed) {
            (Ok(()), false) => self.passed += 1,
            (Ok(()), true) => self.problems.push(format!(
                "{id}: listed as a known difference but now matches"
            )),
            (Err(_), true) => {}
            (Err(why), false) => self.problems.push(format!("{id}: {why}")),
        }
    }

    fn finish(self) {
        eprintln!(
            "{}: {} cases match, {} known differences",
            self.name,
            self.passed,
            self.known.len()
        );
        assert!(
            self.problems.is_empty(),
            "{}:\n{}",
            self.name,
            self.problems.join("\n")
        );
        assert!(self.passed > 0, "{}: no case ran", self.name);
    }
}

fn lookup_in(env: &HashMap<String, String>) -> impl Fn(&str) -> Option<String> + '_ {
    move |k: &str| env.get(k).cloned()
}

/// The value at `path` of a one-string tree, interpolated, or the error text
/// without the span prefix.
fn interpolate_at(path: &[&str], input: &str, env: &HashMap<String, String>) -> Result<J, String> {
    let mut json = J::String(input.to_owned());
    for key in path.iter().rev() {
        json = serde_json::json!({ *key: json });
    }
    let span = Span::synthetic("<test>");
    let mut node = Node::from_json(&json, &span);
    match interpolate::interpolate(&mut node, &lookup_in(env)) {
        Ok(()) => {
            let mut out = node.to_json();
            for key in path {
                out = out[*key].take();
            }
            Ok(out)
        }
        Err(e) => Err(e
            .to_string()
            .strip_prefix("<test>: ")
            .map(str::to_owned)
            .unwrap_or_else(|| e.to_string())),
    }
}

#[test]
fn interpolation_string_cases() {
    // None: every transcribed case and every docker compose answer matches.
    const KNOWN: &[(&str, &str)] = &[];
    let cases = load_json("interpolation/cases.json");
    let mut expectations = Tally::new("interpolation strings (compose-go tests)", KNOWN);
    let mut references = Tally::new("interpolation strings (docker compose)", KNOWN);
    for group in cases["string_case_groups"].as_array().unwrap() {
        let group_env = env_of(group.get("env"));
        for case in group["cases"].as_array().unwrap() {
            let id = case["id"].as_str().unwrap();
            let input = case["input"].as_str().unwrap();
            let env = if case.get("env_replace").and_then(J::as_bool) == Some(true) {
                env_of(case.get("env_override"))
            } else {
                group_env.clone()
            };
            let got = interpolate::substitute(input, &lookup_in(&env));
            let outcome = if let Some(expected) = case.get("expected").and_then(J::as_str) {
                match &got {
                    Ok(v) if v == expected => Ok(()),
                    other => Err(format!("expected {expected:?}, got {other:?}")),
                }
            } else {
                let want = case["error_contains"].as_str().unwrap();
                if case.get("error_exact").and_then(J::as_bool) == Some(true) {
                    // Exact messages are those of compose-go's tree interpolation.
                    match interpolate_at(&["myservice", "environment", "TESTVAR"], input, &env) {
                        Err(e) if e == want => Ok(()),
                        other => Err(format!("expected error {want:?}, got {other:?}")),
                    }
                } else {
                    match &got {
                        Err(e) if e.to_string().contains(want) => Ok(()),
                        other => Err(format!("expected an error with {want:?}, got {other:?}")),
                    }
                }
            };
            expectations.record(id, outcome);

            let reference = &case["reference"];
            let at = interpolate_at(&["services", "s", "environment", "TESTVAR"], input, &env);
            let outcome = match (reference["rc"].as_i64(), &at) {
                (Some(0), Ok(J::String(v))) if reference["value"] == J::String(v.clone()) => Ok(()),
                (Some(1), Err(e)) if reference["error"].as_str() == Some(e.as_str()) => Ok(()),
                _ => Err(format!("docker compose said {reference}, we say {at:?}")),
            };
            references.record(id, outcome);
        }
    }
    expectations.finish();
    references.finish();
}

#[test]
fn interpolation_operator_choice() {
    const KNOWN: &[(&str, &str)] = &[];
    let cases = load_json("interpolation/cases.json");
    let mut tally = Tally::new("interpolation operator choice", KNOWN);
    for case in cases["operator_choice_cases"].as_array().unwrap() {
        let id = case["id"].as_str().unwrap();
        let template = format!("${{{}}}", case["inside_braces"].as_str().unwrap());
        // Two probes tell the six operators apart: VARNAME unset, and set empty.
        let unset = interpolate::substitute(&template, &|_| None);
        let empty = interpolate::substitute(&template, &|_| Some(String::new()));
        let op = match (&unset, &empty) {
            (Err(_), Err(_)) => ":?",
            (Err(_), Ok(_)) => "?",
            (Ok(u), Ok(e)) if !u.is_empty() && !e.is_empty() => ":-",
            (Ok(u), Ok(e)) if !u.is_empty() && e.is_empty() => "-",
            (Ok(u), Ok(e)) if u.is_empty() && e.is_empty() => ":+",
            (Ok(u), Ok(_)) if u.is_empty() => "+",
            _ => "?unknown",
        };
        let want = case["expected_operator"].as_str().unwrap();
        tally.record(
            id,
            if op == want {
                Ok(())
            } else {
                Err(format!("chose {op}, expected {want}"))
            },
        );
    }
    tally.finish();
}

#[test]
fn interpolation_tree_cases() {
    const KNOWN: &[(&str, &str)] = &[];
    // compose-go's test uses its own cast table for this case.
    const TEST_CASTS: &[CastRule] = &[
        CastRule {
            path: &["*", "replicas"],
            cast: Cast::Int,
        },
        CastRule {
            path: &["*", "required"],
            cast: Cast::Bool,
        },
    ];
    let cases = load_json("interpolation/cases.json");
    let mut tally = Tally::new("interpolation trees", KNOWN);
    for case in cases["tree_cases"].as_array().unwrap() {
        let id = case["id"].as_str().unwrap();
        let env = env_of(case.get("env"));
        let span = Span::synthetic("<test>");
        let mut node = Node::from_json(&case["input"], &span);
        let casts = if id == "TestInterpolateWithCast" {
            TEST_CASTS
        } else {
            interpolate::COMPOSE_CASTS
        };
        let got = interpolate::interpolate_with_casts(&mut node, &lookup_in(&env), casts);
        let outcome = match (got, case.get("expected"), case.get("error_exact")) {
            (Ok(()), Some(expected), _) if node.to_json() == *expected => Ok(()),
            (Err(e), _, Some(J::String(want)))
                if e.to_string().strip_prefix("<test>: ") == Some(want.as_str()) =>
            {
                Ok(())
            }
            (got, _, _) => Err(format!("got {got:?} / {}", node.to_json())),
        };
        tally.record(id, outcome);
    }
    tally.finish();
}

#[test]
fn interpolation_variable_extraction() {
    const KNOWN: &[(&str, &str)] = &[];
    let cases = load_json("interpolation/cases.json");
    let mut tally = Tally::new("variable extraction", KNOWN);
    for case in cases["variable_extraction_cases"].as_array().unwrap() {
        let id = case["id"].as_str().unwrap();
        let node = Node::from_json(&case["input"], &Span::synthetic("<test>"));
        let got: serde_json::Map<String, J> = interpolate::extract_variables(&node)
            .into_iter()
            .map(|(k, v)| {
                let j = serde_json::json!({
                    "Name": v.name,
                    "DefaultValue": v.default_value,
                    "PresenceValue": v.presence_value,
                    "Required": v.required,
                });
                (k, j)
            })
            .collect();
        let got = J::Object(got);
        tally.record(
            id,
            if got == case["expected"] {
                Ok(())
            } else {
                Err(format!("got {got}"))
            },
        );
    }
    tally.finish();
}

fn check_env(
    got: &Result<IndexMap<String, String>, dotenv::DotenvError>,
    case: &J,
) -> Result<(), String> {
    let want_error = case.get("error").and_then(J::as_bool) == Some(true)
        || case.get("error_contains").is_some()
        || case.get("error_exact").is_some();
    match got {
        Err(e) if want_error => {
            let msg = e.to_string();
            match (case.get("error_contains"), case.get("error_exact")) {
                (Some(J::String(s)), _) if !msg.contains(s.as_str()) => {
                    Err(format!("error {msg:?} lacks {s:?}"))
                }
                (_, Some(J::String(s))) if !msg.ends_with(&format!(": {s}")) => {
                    Err(format!("error {msg:?} is not {s:?}"))
                }
                _ => Ok(()),
            }
        }
        Err(e) => Err(format!("unexpected error {e}")),
        Ok(m) if want_error => Err(format!("expected an error, got {m:?}")),
        Ok(m) => {
            let normalize = |s: &str| s.replace("\r\n", "\n");
            if let Some(expected) = case.get("expected").and_then(J::as_object) {
                for (k, v) in expected {
                    let v = v.as_str().unwrap();
                    match m.get(k) {
                        Some(got) if normalize(got) == v => {}
                        other => return Err(format!("{k}: expected {v:?}, got {other:?}")),
                    }
                }
                if case.get("exact_keys").and_then(J::as_bool) == Some(true)
                    && m.len() != expected.len()
                {
                    return Err(format!("expected exactly {expected:?}, got {m:?}"));
                }
            }
            if let Some(absent) = case.get("expected_absent").and_then(J::as_array) {
                for k in absent {
                    if m.contains_key(k.as_str().unwrap()) {
                        return Err(format!("{k} should be absent"));
                    }
                }
            }
            Ok(())
        }
    }
}

#[test]
fn dotenv_line_cases() {
    const KNOWN: &[(&str, &str)] = &[];
    let cases = load_json("dotenv/cases.json");
    let mut tally = Tally::new("dotenv lines", KNOWN);
    for case in cases["line_cases"].as_array().unwrap() {
        let id = case["id"].as_str().unwrap();
        let env = env_of(case.get("lookup_env"));
        let got = dotenv::parse(
            case["input"].as_str().unwrap(),
            Path::new("test.env"),
            &lookup_in(&env),
        );
        tally.record(id, check_env(&got, case));
    }
    for (i, line) in cases["ignored_lines"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let got = dotenv::parse(line.as_str().unwrap(), Path::new("test.env"), &|_| None);
        let outcome = match got {
            Ok(m) if m.is_empty() => Ok(()),
            other => Err(format!("not ignored: {other:?}")),
        };
        tally.record(&format!("ignored_lines/{i}"), outcome);
    }
    for case in cases["expansion_cases"].as_array().unwrap() {
        let id = case["id"].as_str().unwrap();
        let defined = env_of(case.get("defined"));
        let input = case["input"].as_str().unwrap();
        let got = dotenv::parse(input, Path::new("test.env"), &lookup_in(&defined));
        let outcome = match (&got, case.get("expected").and_then(J::as_str)) {
            (Ok(m), Some(expected)) => {
                let (k, v) = expected.split_once('=').unwrap();
                if m.get(k).map(String::as_str) == Some(v) {
                    Ok(())
                } else {
                    Err(format!("got {m:?}"))
                }
            }
            _ => check_env(&got, case),
        };
        tally.record(id, outcome);
    }
    tally.finish();
}

#[test]
fn dotenv_file_cases() {
    const KNOWN: &[(&str, &str)] = &[
        (
            "TestLoadDoesNotOverride",
            "godotenv's Load() writes the process environment; berth never changes its own environment",
        ),
        (
            "TestReadPlainEnv",
            "godotenv's Read() drops keys starting with a digit (`456=ABC`); the readers docker \
             compose uses for .env/--env-file/env_file (GetEnvFromFile, ParseWithFormat) keep them, \
             and so does berth",
        ),
    ];
    let cases = load_json("dotenv/cases.json");
    let mut tally = Tally::new("dotenv files", KNOWN);
    let dir = fixtures().join("dotenv");
    for case in cases["file_cases"].as_array().unwrap() {
        let id = case["id"].as_str().unwrap();
        let env = env_of(case.get("os_env"));
        if case.get("expected_process_env").is_some() {
            tally.record(id, Err("not applicable".into()));
            continue;
        }
        let path = dir.join(case["file"].as_str().unwrap());
        let mut out = IndexMap::new();
        let got =
            dotenv::read_file_into(&path, Format::DotEnv, &lookup_in(&env), &mut out).map(|()| out);
        tally.record(id, check_env(&got, case));
    }
    let tmp = tempfile::tempdir().unwrap();
    for case in cases["multi_file_cases"].as_array().unwrap() {
        let id = case["id"].as_str().unwrap();
        let env = env_of(case.get("os_env"));
        for (name, text) in case["files"].as_object().unwrap() {
            std::fs::write(tmp.path().join(name), text.as_str().unwrap()).unwrap();
        }
        let paths: Vec<PathBuf> = case["order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| tmp.path().join(n.as_str().unwrap()))
            .collect();
        let got = dotenv::read_files(&paths, &lookup_in(&env));
        tally.record(id, check_env(&got, case));
    }
    tally.finish();
}

#[test]
fn dotenv_missing_file_is_named() {
    let e = dotenv::read_files(&[PathBuf::from("/nonexistent/x.env")], &|_| None).unwrap_err();
    assert_eq!(e.to_string(), "couldn't find env file: /nonexistent/x.env");
}

// ---- YAML ----

fn parse1(text: &str) -> Result<Node, YamlError> {
    let mut docs = yaml::parse(text, Path::new("compose.yaml"))?;
    assert_eq!(docs.len(), 1, "one document expected");
    Ok(docs.remove(0))
}

#[test]
fn yaml_scalars_resolve_like_yaml_v3() {
    let doc = parse1(
        "a: yes\nb: on\nc: true\nd: 0x1F\ne: 0o17\nf: 0777\ng: 1_000\nh: 1.5e3\ni: .inf\n\
         j: ~\nk: '12'\nl: 08\nm: -12\nn: 1e400\no: 9223372036854775807\np: +5\nq: .5\nr: 2001-12-14\ns: \"true\"\nt: 0b101\nu: Null\n",
    )
    .unwrap();
    let v = |k: &str| doc.get(k).unwrap().value.clone();
    assert_eq!(v("a"), Value::String("yes".into()));
    assert_eq!(v("b"), Value::String("on".into()));
    assert_eq!(v("c"), Value::Bool(true));
    assert_eq!(v("d"), Value::Int(31));
    assert_eq!(v("e"), Value::Int(15));
    assert_eq!(v("f"), Value::Int(511));
    assert_eq!(v("g"), Value::Int(1000));
    assert_eq!(v("h"), Value::Float(1500.0));
    assert_eq!(v("i"), Value::Float(f64::INFINITY));
    assert_eq!(v("j"), Value::Null);
    assert_eq!(v("k"), Value::String("12".into()));
    assert_eq!(v("l"), Value::Float(8.0));
    assert_eq!(v("m"), Value::Int(-12));
    assert_eq!(v("n"), Value::String("1e400".into()));
    assert_eq!(v("o"), Value::Int(i64::MAX));
    assert_eq!(v("p"), Value::Int(5));
    assert_eq!(v("q"), Value::Float(0.5));
    assert_eq!(v("r"), Value::String("2001-12-14".into()));
    assert_eq!(v("s"), Value::String("true".into()));
    assert_eq!(v("t"), Value::Int(5));
    assert_eq!(v("u"), Value::Null);
}

#[test]
fn yaml_spans_point_at_keys_and_values() {
    let doc = parse1("services:\n  web:\n    image: nginx\n").unwrap();
    let services = doc.as_map().unwrap();
    let (k, web) = services.get_index(0).unwrap();
    assert_eq!(
        (k.span.line, k.span.col, k.span.to_string()),
        (1, 1, "compose.yaml:1:1".to_owned())
    );
    let web = web.get("web").unwrap();
    let image = web.get("image").unwrap();
    assert_eq!((image.span.line, image.span.col), (3, 12));
    assert_eq!(image.as_str(), Some("nginx"));
}

#[test]
fn yaml_anchors_aliases_and_merge_keys() {
    let doc = parse1(
        "x-base: &base\n  image: a\n  environment: {A: 1}\nx-more: &more\n  image: b\n  tty: true\n  init: true\n\
         services:\n  one:\n    <<: *base\n    image: mine\n  two:\n    <<: [*more, *base]\n    init: false\n  three: *base\n",
    )
    .unwrap();
    let services = doc.get("services").unwrap();
    let one = services.get("one").unwrap();
    assert_eq!(
        one.get("image").unwrap().as_str(),
        Some("mine"),
        "explicit keys win"
    );
    assert_eq!(
        one.get("environment").unwrap().get("A").unwrap().value,
        Value::Int(1)
    );
    assert!(one.get("<<").is_none());
    let two = services.get("two").unwrap();
    assert_eq!(
        two.get("image").unwrap().as_str(),
        Some("b"),
        "earlier merged maps win"
    );
    assert_eq!(two.get("tty").unwrap().value, Value::Bool(true));
    assert_eq!(two.get("init").unwrap().value, Value::Bool(false));
    assert_eq!(
        services
            .get("three")
            .unwrap()
            .get("image")
            .unwrap()
            .as_str(),
        Some("a")
    );
    // A merge of something else than mappings is refused.
    let e = parse1("a: &s [1]\nb:\n  <<: *s\n").unwrap_err();
    assert!(e.to_string().contains("map merge requires map"), "{e}");
    // A quoted "<<" is an ordinary key.
    let doc = parse1("'<<': x\n").unwrap();
    assert_eq!(doc.get("<<").unwrap().as_str(), Some("x"));
}

#[test]
fn yaml_tags() {
    let doc = parse1(
        "a: !reset []\nb: !override {x: 1}\nc: !reset\nd: !!str 12\ne: !!int '7'\nf: !!binary aGk=\n",
    )
    .unwrap();
    assert_eq!(doc.get("a").unwrap().tag, Tag::Reset);
    assert_eq!(doc.get("b").unwrap().tag, Tag::Override);
    assert_eq!(doc.get("c").unwrap().tag, Tag::Reset);
    assert_eq!(doc.get("c").unwrap().value, Value::Null);
    assert_eq!(doc.get("d").unwrap().value, Value::String("12".into()));
    assert_eq!(doc.get("e").unwrap().value, Value::Int(7));
    assert_eq!(doc.get("f").unwrap().value, Value::String("hi".into()));
    let e = parse1("a: !custom x\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "compose.yaml:1:12: unknown YAML tag \"!custom\" (Compose only knows !reset and !override)"
    );
}

#[test]
fn yaml_duplicate_and_non_string_keys() {
    let e = parse1("services:\n  a: 1\n  b: 2\n  a: 3\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "compose.yaml:4:3: mapping key \"a\" already defined at line 2"
    );
    // compose-go's TestNonStringKeys, with docker compose's wording.
    let e =
        parse1("services:\n  foo:\n    image: busybox\n  123:\n    image: busybox\n").unwrap_err();
    assert!(
        e.to_string().ends_with("non-string key in services: 123"),
        "{e}"
    );
    let e = parse1("networks:\n  default:\n    ipam:\n      config:\n        - 123: oh dear\n")
        .unwrap_err();
    assert!(
        e.to_string()
            .ends_with("non-string key in networks.default.ipam.config[0]: 123"),
        "{e}"
    );
    let e = parse1("true: 1\n").unwrap_err();
    assert!(
        e.to_string().ends_with("non-string key at top level: true"),
        "{e}"
    );
    // Quoted numbers are strings.
    assert!(parse1("environment:\n  '1': FOO\n").is_ok());
}

#[test]
fn yaml_documents_and_empty_files() {
    assert!(yaml::parse("", Path::new("c.yaml")).unwrap().is_empty());
    assert!(yaml::parse("# only a comment\n", Path::new("c.yaml"))
        .unwrap()
        .is_empty());
    let docs = yaml::parse("---\n", Path::new("c.yaml")).unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].value, Value::Null);
    let docs = yaml::parse("a: 1\n---\nb: 2\n", Path::new("c.yaml")).unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[1].get("b").unwrap().value, Value::Int(2));
    let docs = yaml::parse("\u{feff}a: 1\n", Path::new("c.yaml")).unwrap();
    assert_eq!(docs[0].get("a").unwrap().value, Value::Int(1));
}

#[test]
fn yaml_syntax_errors_have_a_place() {
    let e = parse1("services:\n  web:\n\timage: x\n").unwrap_err();
    let span = e.span();
    assert_eq!(span.line, 3, "{e}");
    assert!(
        e.to_string().starts_with("failed to parse compose.yaml:3:"),
        "{e}"
    );
    let e = parse1("a: *nope\n").unwrap_err();
    assert!(e.to_string().contains("compose.yaml:1:"), "{e}");
}

/// The classic "billion laughs": each level holds nine aliases of the one before.
fn alias_bomb(levels: usize) -> String {
    let mut s = String::from(
        "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 1..levels {
        let p = i - 1;
        s.push_str(&format!(
            "a{i}: &a{i} [*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p}]\n"
        ));
    }
    s
}

#[test]
fn yaml_alias_bomb_is_refused_fast() {
    let text = alias_bomb(12);
    let start = Instant::now();
    let e = yaml::parse(&text, Path::new("bomb.yaml")).unwrap_err();
    let took = start.elapsed();
    assert!(matches!(e, YamlError::TooManyNodes { .. }), "{e}");
    assert!(e.to_string().starts_with("bomb.yaml:"), "{e}");
    // Generous for a debug build on a loaded machine; release takes milliseconds.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // A merge-key bomb is counted the same way.
    let mut text = String::from("m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8}\n");
    for i in 1..40 {
        let p = i - 1;
        text.push_str(&format!(
            "m{i}: &m{i}\n  <<: *m{p}\n  k{i}: [*m{p}, *m{p}, *m{p}]\n"
        ));
    }
    let e = yaml::parse(&text, Path::new("bomb.yaml")).unwrap_err();
    assert!(matches!(e, YamlError::TooManyNodes { .. }), "{e}");
}

#[test]
fn yaml_deep_nesting_is_refused() {
    let text = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let start = Instant::now();
    let e = yaml::parse(&text, Path::new("deep.yaml")).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(2));
    // yaml-rust2 stops flow nesting at 256 levels itself, before our limit.
    assert!(
        e.to_string().starts_with("failed to parse deep.yaml:1:")
            && e.to_string().contains("recursion limit exceeded"),
        "{e}"
    );
    let mut block = String::new();
    for i in 0..1000 {
        block.push_str(&" ".repeat(i));
        block.push_str("k:\n");
    }
    let e = yaml::parse(&block, Path::new("deep.yaml")).unwrap_err();
    assert!(matches!(e, YamlError::TooDeep { .. }), "{e}");
    // 200 levels are fine.
    let text = format!("{}{}", "[".repeat(200), "]".repeat(200));
    assert!(yaml::parse(&text, Path::new("ok.yaml")).is_ok());
}

#[test]
fn interpolation_errors_carry_span_and_path() {
    let mut doc = parse1(
        "services:\n  web:\n    image: \"${TAG:?set TAG}\"\n    ports:\n      - target: ${P}\n",
    )
    .unwrap();
    let e = interpolate::interpolate(&mut doc, &|_| None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "compose.yaml:3:12: error while interpolating services.web.image: required variable TAG is missing a value: set TAG"
    );
    let e = interpolate::interpolate(&mut doc, &|k| (k == "TAG").then(|| "1".into())).unwrap_err();
    assert_eq!(
        e.to_string(),
        "compose.yaml:5:17: error while interpolating services.web.ports.[].target: failed to cast to expected type: strconv.Atoi: parsing \"\": invalid syntax"
    );
    interpolate::interpolate(&mut doc, &|k| {
        Some(if k == "P" { "80".into() } else { "x".into() })
    })
    .unwrap();
    let port = &doc
        .get("services")
        .unwrap()
        .get("web")
        .unwrap()
        .get("ports")
        .unwrap()
        .as_seq()
        .unwrap()[0];
    assert_eq!(port.get("target").unwrap().value, Value::Int(80));
    // Keys are never interpolated.
    let mut doc = parse1("$KEY: $VAL\n").unwrap();
    interpolate::interpolate(&mut doc, &|_| Some("v".into())).unwrap();
    assert_eq!(doc.get("$KEY").unwrap().as_str(), Some("v"));
}

#[test]
fn dotenv_raw_format_keeps_quotes() {
    // docker compose's TestRawEnvFile: the container sees the quotes.
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/docker-compose/testdata/TestRawEnvFile/.env.raw"
    ));
    let mut out = IndexMap::new();
    dotenv::read_file_into(path, Format::Raw, &|_| None, &mut out).unwrap();
    assert_eq!(out["TEST_VAR"], r#"'{"key": "value"}'"#);
    assert_eq!(Format::from_name("raw").unwrap(), Format::Raw);
    assert!(Format::from_name("yaml").is_err());
}

#[test]
fn dotenv_last_line_without_separator_is_compose_go_quirk() {
    // compose-go reads a final `KEY` without a newline as the value of an
    // empty key (its key scan ends without finding `=`, `:` or a newline).
    let m = dotenv::parse("A=1\nFOO", Path::new("t.env"), &|_| Some("x".into())).unwrap();
    assert_eq!(m.get(""), Some(&"FOO".to_owned()));
    let m = dotenv::parse("A=1\nFOO\n", Path::new("t.env"), &|_| Some("x".into())).unwrap();
    assert_eq!(m.get("FOO"), Some(&"x".to_owned()));
}

/// Inputs at the edges of the hand-written scanners (byte skips after `{`,
/// multi-byte text next to delimiters, escapes at the end of the text). Any
/// crasher the fuzzer (`fuzz/`) finds is added here.
#[test]
fn fuzz_regressions() {
    let inputs = [
        "${",
        "$",
        "${A",
        "${A:",
        "${A:-",
        "${A-{}}",
        "${A:-é}}",
        "${é}",
        "${A-{é}x}",
        "$$$",
        "${A?}",
        "${A:?${",
        "${A+${B-${C:?x}}}}",
        "\\",
        "\"\\",
        "\"\\0",
        "A=\"\\0",
        "export\n",
        "export ",
        "A=\"é\\",
        "é=1",
        "A='",
        "#\n#",
        "\u{feff}",
        "a: !reset",
        "? [a]\n: b",
        "&a a: *a",
        "- &a [*a]",
        "<<: 1",
        "a: &x {<<: *x}",
        "[&a x, *a, {*a : 1}]",
    ];
    for text in inputs {
        if let Ok(docs) = yaml::parse(text, Path::new("f.yaml")) {
            for mut doc in docs {
                let _ = interpolate::extract_variables(&doc);
                let _ = interpolate::interpolate(&mut doc, &|k| Some(k.to_owned()));
            }
        }
        let _ = interpolate::substitute(text, &|_| None);
        let mut vars = Vec::new();
        interpolate::extract_string(text, &mut vars);
        let _ = dotenv::parse(text, Path::new("f.env"), &|_| None);
        let mut out = IndexMap::new();
        let _ =
            dotenv::parse_format_into(text, Path::new("f.env"), Format::Raw, &|_| None, &mut out);
    }
}
