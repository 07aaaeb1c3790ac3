#!/bin/sh
# compose-scenarios.sh [TestA,TestB…]: runs Docker Compose's e2e scenarios
# (../shared/fixtures/docker-compose/scenarios.json) with berth, as root.
# Each scenario gets its own BERTH_ROOT/BERTH_RUN and network namespace.
# Env: BERTH_SCENARIO_JOBS (parallelism, default 4), BERTH_UPDATE_KNOWN=1
# (rewrite compose-tests/scenario-differences.txt, keeping the reasons written).
set -eu
cd "$(dirname "$0")/.."
[ $# -gt 0 ] && export BERTH_SCENARIOS="$1"
cargo build --release --bin berth
exec cargo test --release -p compose-tests --test scenarios -- --nocapture
