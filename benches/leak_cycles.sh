#!/bin/sh
# The leak benchmark of issue 6: `up -d`/`down` cycles of a 20-service
# busybox stack (one network, the DNS server, two published ports); after
# them nothing may be left (bridge, veth, netns, mount, cgroup, nft rule,
# process) and the monitors' and the DNS server's RSS and fds must not grow.
#
# It runs the test `up_down_cycles_of_20_services_leave_nothing_and_do_not_grow`
# of tests/e2e_reliability.rs alone with BERTH_LEAK_CYCLES (default 100, as
# in the test suite) and prints its figures: total time, the average `up -d`
# and `down`, and the per-cycle samples. Needs root. The test makes its own
# network namespace.
#
#   benches/leak_cycles.sh [CYCLES]
set -eu
cd "$(dirname "$0")/.."
cycles="${1:-100}"
BERTH_LEAK_CYCLES="$cycles" exec cargo test --release -p berth --test e2e_reliability \
    up_down_cycles_of_20_services_leave_nothing_and_do_not_grow -- --exact --nocapture
