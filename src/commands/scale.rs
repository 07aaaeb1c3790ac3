//! `scale SERVICE=N…`: `up -d` of those services with `--scale`, their
//! dependencies started too unless `--no-deps`.

use anyhow::{bail, Result};

use crate::cli::lifecycle::{ScaleArgs, UpArgs};
use crate::settings::ProjectArgs;

pub fn scale(args: &ProjectArgs, a: &ScaleArgs) -> Result<()> {
    let mut services = Vec::new();
    for s in &a.scales {
        let Some((name, n)) = s.split_once('=') else {
            bail!("invalid scale specifier: {s}");
        };
        if name.is_empty() || n.is_empty() {
            bail!("invalid scale specifier: {s}");
        }
        if n.parse::<u32>().is_err() {
            bail!("invalid scale specifier: can't parse replica value as int: {s}");
        }
        services.push(name.to_owned());
    }
    services.sort();
    services.dedup();
    let up = UpArgs {
        services,
        detach: true,
        no_deps: a.no_deps,
        scale: a.scales.clone(),
        ..UpArgs::default()
    };
    super::lifecycle::up(args, &up, false).map(drop)
}
