//! Any text through the YAML reader, interpolation, variable extraction and
//! the `.env` parser: none of them may panic, and each input must finish
//! quickly (libFuzzer's -timeout catches a slow one).
#![no_main]

use std::path::Path;

use berth::model::{dotenv, interpolate, yaml};
use libfuzzer_sys::fuzz_target;

fn lookup(name: &str) -> Option<String> {
    match name.len() % 3 {
        0 => None,
        1 => Some(String::new()),
        _ => Some(format!("v${{{name}}}")),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(docs) = yaml::parse(text, Path::new("fuzz.yaml")) {
        for mut doc in docs {
            let _ = interpolate::extract_variables(&doc);
            let _ = interpolate::interpolate(&mut doc, &lookup);
        }
    }
    let _ = interpolate::substitute(text, &lookup);
    let mut vars = Vec::new();
    interpolate::extract_string(text, &mut vars);
    let _ = dotenv::parse(text, Path::new("fuzz.env"), &lookup);
    let mut out = indexmap::IndexMap::new();
    let _ = dotenv::parse_format_into(
        text,
        Path::new("fuzz.env"),
        dotenv::Format::Raw,
        &lookup,
        &mut out,
    );
});
