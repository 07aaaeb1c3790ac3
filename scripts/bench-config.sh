#!/usr/bin/env bash
# bench-config.sh [N]: `berth config` on an N-service file (default 200), and
# `berth --help`, timed with hyperfine. Docker Compose took 0.225 s for the
# 200-service config on these machines.
set -euo pipefail
n=${1:-200}
root=$(cd "$(dirname "$0")/.." && pwd)
shared=$root/../shared/bench
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine >/dev/null; }
cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin berth
berth=${BERTH:-$root/target/release/berth}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sh "$shared/gen-flat.sh" "$n" > "$dir/compose.yaml"
hyperfine -N --warmup 5 --runs 100 \
  "$berth -f $dir/compose.yaml config --format json" \
  "$berth -f $dir/compose.yaml config" \
  "$berth --help"
