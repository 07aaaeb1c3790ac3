//! `stats`: each container's CPU, memory, network, block I/O and pids, as
//! `docker stats` prints them, from its cgroups and its network namespace
//! (`engine::usage`). Streams a new frame each second unless `--no-stream`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::cli::lifecycle::{PsFormat, StatsArgs};
use crate::engine::state::{self, alive, ContainerRecord, Paths, RunState, Status};
use crate::engine::usage::{self, Cgroups, Usage};
use crate::settings::ProjectArgs;

use super::project;

pub fn stats(args: &ProjectArgs, a: &StatsArgs) -> Result<()> {
    let project = project::load(args, &[])?;
    let paths = Paths::from_env();
    let host_memory = usage::host_memory();
    let tty = std::io::stdout().is_terminal();
    let mut prev: BTreeMap<String, (u64, Instant)> = BTreeMap::new();
    // A first sample, so that the first frame has a CPU rate.
    sample_all(&paths, &project.name, a, host_memory, &mut prev);
    std::thread::sleep(Duration::from_millis(500));
    loop {
        let rows = sample_all(&paths, &project.name, a, host_memory, &mut prev);
        let text = render(&rows, a);
        let mut out = std::io::stdout().lock();
        if tty && !a.no_stream {
            // Redraw in place.
            out.write_all(b"\x1b[2J\x1b[H")?;
        }
        out.write_all(text.as_bytes())?;
        out.flush()?;
        if a.no_stream {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// One row: the container, its counters, its CPU percentage.
struct Row {
    record: ContainerRecord,
    usage: Usage,
    cpu_percent: f64,
}

fn sample_all(
    paths: &Paths,
    project: &str,
    a: &StatsArgs,
    host_memory: u64,
    prev: &mut BTreeMap<String, (u64, Instant)>,
) -> Vec<Row> {
    let Ok(mut containers) = state::project_containers(paths, project) else {
        return Vec::new();
    };
    containers.retain(|c| a.service.as_ref().is_none_or(|s| &c.service == s));
    containers.sort_by(|x, y| x.name.cmp(&y.name));
    let mut rows = Vec::new();
    for c in containers {
        let run = RunState::load(paths, &c.id);
        let up = matches!(run.effective_status(), Status::Running | Status::Paused)
            && run.pid > 0
            && alive(run.pid);
        if !up && !a.all {
            continue;
        }
        let mut u = Usage::default();
        let mut cpu_percent = 0.0;
        if up {
            if let Ok(cg) = Cgroups::of(run.pid, std::path::Path::new("/sys/fs/cgroup")) {
                u = cg.sample(host_memory);
            }
            (u.net_rx, u.net_tx) = usage::net_counters(run.pid);
            let now = Instant::now();
            if let Some((cpu, at)) = prev.get(&c.id) {
                let wall = now.duration_since(*at).as_nanos() as f64;
                if wall > 0.0 {
                    cpu_percent = u.cpu_ns.saturating_sub(*cpu) as f64 / wall * 100.0;
                }
            }
            prev.insert(c.id.clone(), (u.cpu_ns, now));
        }
        rows.push(Row {
            record: c,
            usage: u,
            cpu_percent,
        });
    }
    rows
}

fn render(rows: &[Row], a: &StatsArgs) -> String {
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            let u = &r.usage;
            let id = if a.no_trunc {
                r.record.id.clone()
            } else {
                r.record.id.chars().take(12).collect()
            };
            let mem_percent = if u.memory_limit > 0 {
                u.memory as f64 / u.memory_limit as f64 * 100.0
            } else {
                0.0
            };
            [
                id,
                r.record.name.clone(),
                format!("{:.2}%", r.cpu_percent),
                format!(
                    "{} / {}",
                    binary_size(u.memory),
                    binary_size(u.memory_limit)
                ),
                format!("{mem_percent:.2}%"),
                format!("{} / {}", decimal_size(u.net_rx), decimal_size(u.net_tx)),
                format!(
                    "{} / {}",
                    decimal_size(u.block_read),
                    decimal_size(u.block_write)
                ),
                u.pids.to_string(),
            ]
        })
        .collect();
    if a.format == PsFormat::Json {
        let mut out = String::new();
        for c in &cells {
            // Docker's `{{json .}}` of a stats entry: keys sorted.
            let v = serde_json::json!({
                "BlockIO": c[6],
                "CPUPerc": c[2],
                "Container": c[0],
                "ID": c[0],
                "MemPerc": c[4],
                "MemUsage": c[3],
                "Name": c[1],
                "NetIO": c[5],
                "PIDs": c[7],
            });
            out.push_str(&v.to_string());
            out.push('\n');
        }
        return out;
    }
    let header = [
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS",
    ]
    .map(String::from);
    crate::printer::table(&header, &cells)
}

/// Go's `%.<prec>g`, for the sizes Docker prints.
fn g(v: f64, prec: usize) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let digits = v.abs().log10().floor() as i64 + 1;
    let decimals = (prec as i64 - digits).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// Docker's `units.BytesSize`: binary units, four significant digits.
fn binary_size(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    format!("{}{}", g(v, 4), units[i])
}

/// Docker's `units.HumanSizeWithPrecision(_, 3)`: decimal units.
fn decimal_size(b: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    format!("{}{}", g(v, 3), units[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_as_docker_prints_them() {
        assert_eq!(binary_size(0), "0B");
        assert_eq!(binary_size(1536 * 1024), "1.5MiB");
        assert_eq!(binary_size(8_222_138_368), "7.657GiB");
        assert_eq!(decimal_size(648), "648B");
        assert_eq!(decimal_size(1234), "1.23kB");
        assert_eq!(decimal_size(12_345_678), "12.3MB");
    }
}
