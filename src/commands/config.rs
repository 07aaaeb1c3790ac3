//! `berth config`: parse, resolve and render the Compose model in canonical
//! form, as `docker compose config` does (same flags, same output shapes).

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::commands::project;
use crate::model::graph::ServiceGraph;
use crate::model::load::{self, LoadOptions};
use crate::model::node::Node;
use crate::model::{hash, interpolate};
use crate::printer::Printer;
use crate::settings::ProjectArgs;

/// What `config` prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigOutput {
    Model {
        format: Format,
        output: Option<PathBuf>,
        quiet: bool,
    },
    Services,
    Volumes,
    Networks,
    Images,
    Profiles,
    Hash(String),
    /// `None`: a table, as Compose prints without `--format`.
    Variables {
        format: Option<Format>,
    },
    Environment,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

/// Which loader stages run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stages {
    pub no_interpolate: bool,
    pub no_normalize: bool,
    pub no_path_resolution: bool,
    pub no_consistency: bool,
    pub no_env_resolution: bool,
}

pub fn config(
    printer: &Printer,
    args: &ProjectArgs,
    services: &[String],
    what: &ConfigOutput,
    stages: Stages,
) -> Result<()> {
    let settings = project::settings(args)?;
    let details = project::details(&settings)?;
    let mut opts = LoadOptions {
        interpolate: !stages.no_interpolate,
        resolve_paths: !stages.no_path_resolution,
        normalize: !stages.no_normalize,
        consistency: !stages.no_consistency,
        profiles: settings.profiles.clone(),
        selected_services: services.to_vec(),
        keep_env_files: stages.no_env_resolution,
        keep_unused_resources: args.all_resources,
    };
    match what {
        ConfigOutput::Variables { format } => {
            opts.interpolate = false;
            let model = load::load_model(&details, &opts)?;
            return print_variables(printer, &model, *format);
        }
        ConfigOutput::Model {
            format,
            output,
            quiet,
        } if stages.no_interpolate || stages.no_normalize => {
            let model = load::load_model(&details, &opts)?;
            let mut json = model.to_json();
            if !stages.no_normalize {
                normalize_model(&mut json);
            }
            // Compose prints this model as a Go map: keys sorted.
            let text = render(&sorted_keys(json), *format)?;
            return emit(printer, &text, output.as_ref(), *quiet);
        }
        _ => {}
    }
    if matches!(what, ConfigOutput::Hash(_)) {
        opts.selected_services.clear();
    }
    let project = load::load(&details, &opts)?;
    match what {
        ConfigOutput::Model {
            format,
            output,
            quiet,
        } => {
            if !stages.no_consistency {
                crate::model::consistency::check_container_names(&project)
                    .map_err(|e| crate::model::normalize::NormalizeError::locate(e, &project))?;
            }
            // Serialized straight from the types: `cpus` is a 32-bit float in
            // Compose and must print as one (0.001, not 0.0010000000474974513).
            let text = match format {
                Format::Json => serde_json::to_string_pretty(&project)?,
                Format::Yaml => serde_yaml::to_string(&project)?,
            };
            // Compose escapes `$` so the output can be fed back as input.
            let text = text.replace('$', "$$");
            emit(printer, &text, output.as_ref(), *quiet)
        }
        ConfigOutput::Services => {
            let graph = ServiceGraph::new(&project)?;
            for s in graph.start_order() {
                printer.line(s)?;
            }
            Ok(())
        }
        ConfigOutput::Volumes => lines(printer, project.volumes.keys()),
        ConfigOutput::Networks => lines(printer, project.networks.keys()),
        ConfigOutput::Images => {
            for (name, s) in &project.services {
                if s.image.is_empty() {
                    printer.line(&format!("{}-{}", project.name, name.to_lowercase()))?;
                } else {
                    printer.line(&s.image)?;
                }
            }
            Ok(())
        }
        ConfigOutput::Profiles => {
            let all: BTreeSet<&str> = project
                .services
                .values()
                .chain(project.disabled_services.values())
                .flat_map(|s| s.profiles.iter().map(String::as_str))
                .collect();
            lines(printer, all.into_iter())
        }
        ConfigOutput::Hash(which) => {
            let names: Vec<String> = if which == "*" {
                project.services.keys().cloned().collect()
            } else {
                which.split(',').map(str::to_owned).collect()
            };
            for name in names {
                let Some(s) = project.services.get(&name) else {
                    bail!("no such service: {name}");
                };
                printer.line(&format!("{name} {}", hash::service_hash(s)?))?;
            }
            Ok(())
        }
        ConfigOutput::Environment => {
            let mut vars: Vec<(&String, &String)> = project.environment.iter().collect();
            vars.sort();
            for (k, v) in vars {
                printer.line(&format!("{k}={v}"))?;
            }
            Ok(())
        }
        ConfigOutput::Variables { .. } => unreachable!("handled above"),
    }
}

fn lines<'a>(printer: &Printer, items: impl Iterator<Item = impl AsRef<str> + 'a>) -> Result<()> {
    for i in items {
        printer.line(i.as_ref())?;
    }
    Ok(())
}

/// The defaults compose-go's `Normalize` puts into the model that
/// `config --no-interpolate` prints (the typed project is not built there):
/// the implicit `default` network of the services that name none, the
/// `build` context and Dockerfile, `pull_policy: if_not_present` spelled
/// `missing`, and the names of top-level resources (`<project>_<key>`, the
/// key itself when external).
fn normalize_model(model: &mut serde_json::Value) {
    use serde_json::{json, Value};
    let Some(top) = model.as_object_mut() else {
        return;
    };
    let project = top
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut uses_default = false;
    if let Some(services) = top.get_mut("services").and_then(Value::as_object_mut) {
        for svc in services.values_mut().filter_map(Value::as_object_mut) {
            if !svc.contains_key("provider") && !svc.contains_key("network_mode") {
                match svc.get("networks") {
                    Some(Value::Object(n)) if !n.is_empty() => {
                        uses_default |= n.contains_key("default");
                    }
                    Some(Value::Array(n)) if !n.is_empty() => {
                        uses_default |= n.iter().any(|x| x == "default");
                    }
                    _ => {
                        svc.insert("networks".into(), json!({ "default": null }));
                        uses_default = true;
                    }
                }
            }
            if svc.get("pull_policy").and_then(Value::as_str) == Some("if_not_present") {
                svc.insert("pull_policy".into(), json!("missing"));
            }
            if let Some(build) = svc.get_mut("build").and_then(Value::as_object_mut) {
                if build.get("context").is_none_or(Value::is_null) {
                    build.insert("context".into(), json!("."));
                }
                let inline = build.get("dockerfile_inline").is_some_and(|v| !v.is_null());
                if build.get("dockerfile").is_none_or(Value::is_null) && !inline {
                    build.insert("dockerfile".into(), json!("Dockerfile"));
                }
            }
        }
    }
    if uses_default {
        let networks = top
            .entry("networks")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(n) = networks.as_object_mut() {
            n.entry("default").or_insert(Value::Null);
        }
    }
    for section in ["networks", "volumes", "configs", "secrets"] {
        let Some(resources) = top.get_mut(section).and_then(Value::as_object_mut) else {
            continue;
        };
        for (key, r) in resources.iter_mut() {
            if r.is_null() {
                *r = Value::Object(Default::default());
            }
            let Some(r) = r.as_object_mut() else {
                continue;
            };
            if r.get("name").is_none_or(Value::is_null) {
                let external = match r.get("external") {
                    Some(Value::Bool(b)) => *b,
                    Some(Value::String(s)) => crate::settings::parse_go_bool(s) == Some(true),
                    _ => false,
                };
                let name = if external {
                    key.clone()
                } else {
                    format!("{project}_{key}")
                };
                r.insert("name".into(), json!(name));
            }
        }
    }
}

/// Every mapping's keys in order, recursively.
fn sorted_keys(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sorted_keys(v)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted_keys).collect()),
        other => other,
    }
}

fn render(json: &serde_json::Value, format: Format) -> Result<String> {
    Ok(match format {
        Format::Json => serde_json::to_string_pretty(json)?,
        Format::Yaml => serde_yaml::to_string(json)?,
    })
}

fn emit(printer: &Printer, text: &str, output: Option<&PathBuf>, quiet: bool) -> Result<()> {
    if quiet {
        return Ok(());
    }
    match output {
        Some(path) => Ok(fs_err::write(path, text)?),
        None => {
            printer.out(text)?;
            if !text.ends_with('\n') {
                printer.out("\n")?;
            }
            Ok(())
        }
    }
}

fn print_variables(printer: &Printer, model: &Node, format: Option<Format>) -> Result<()> {
    let vars = interpolate::extract_variables(model);
    match format {
        Some(f) => {
            let obj: serde_json::Map<String, serde_json::Value> = vars
                .values()
                .map(|v| {
                    (
                        v.name.clone(),
                        serde_json::json!({
                            "Name": v.name,
                            "DefaultValue": v.default_value,
                            "PresenceValue": v.presence_value,
                            "Required": v.required,
                        }),
                    )
                })
                .collect();
            let obj = serde_json::Value::Object(obj);
            printer.out(&render(&obj, f)?)?;
        }
        None => {
            let rows: Vec<[String; 4]> = vars
                .values()
                .map(|v| {
                    [
                        v.name.clone(),
                        v.required.to_string(),
                        v.default_value.clone(),
                        v.presence_value.clone(),
                    ]
                })
                .collect();
            let header = ["NAME", "REQUIRED", "DEFAULT VALUE", "ALTERNATE VALUE"].map(String::from);
            printer.out(&crate::printer::table(&header, &rows))?;
        }
    }
    Ok(())
}
