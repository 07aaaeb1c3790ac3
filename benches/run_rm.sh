#!/bin/sh
# `berth run --rm svc true` with hyperfine: a one-off busybox container
# made, run and removed, twice — with `network_mode: none` and on the
# project's default bridge network (whose network, made by the first run,
# stays between runs as it does for `docker compose run`). Docker Compose
# v2 takes 0.57–0.68 s for the same on this machine class; berth aims at
# < 25 ms.
#
# Runs in a network namespace of its own (unshare -n) with fresh
# BERTH_ROOT/BERTH_RUN, removed at the end. Needs root and hyperfine.
#
#   benches/run_rm.sh [HYPERFINE ARGS...]     (default: --warmup 3 --runs 40)
#   BERTH=path/to/berth                       (default: target/release/berth)
#   RUN_RM_DIR=/dev/shm                       where BERTH_ROOT/BERTH_RUN go (default
#                                             /tmp; a tmpfs shows what the disk costs)
set -eu
cd "$(dirname "$0")/.."
if [ -z "${RUN_RM_IN_NETNS:-}" ]; then
    RUN_RM_IN_NETNS=1 exec unshare -n "$0" "$@"
fi
[ "$(id -u)" -eq 0 ] || { echo "run_rm.sh: needs root" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "run_rm.sh: hyperfine is missing" >&2; exit 1; }
BERTH=$(realpath "${BERTH:-${CARGO_TARGET_DIR:-target}/release/berth}")
[ -x "$BERTH" ] || { echo "run_rm.sh: no berth at $BERTH (cargo build --release -p berth)" >&2; exit 1; }
ip link set lo up

tmp=$(mktemp -d "${RUN_RM_DIR:-/tmp}/berth-run-rm.XXXXXX")
export BERTH_ROOT="$tmp/root" BERTH_RUN="$tmp/run"
cleanup() {
    for p in none bridge; do
        (cd "$tmp/$p" 2>/dev/null && "$BERTH" down -v -t 0 >/dev/null 2>&1) || true
    done
    if grep -q " $tmp/" /proc/mounts; then
        echo "run_rm.sh: mounts left under $tmp (kept)" >&2
    else
        rm -rf --one-file-system "$tmp"
    fi
}
trap cleanup EXIT INT TERM

sh ../shared/bench/busybox-rootfs.sh "$tmp/bb" >/dev/null
tar -C "$tmp/bb" -cf - . | "$BERTH" image import -c 'CMD ["sh"]' - bb:latest >/dev/null
mkdir -p "$tmp/none" "$tmp/bridge"
printf 'name: runrm\nservices:\n  svc:\n    image: bb:latest\n    network_mode: none\n' >"$tmp/none/compose.yaml"
printf 'name: runrmnet\nservices:\n  svc:\n    image: bb:latest\n' >"$tmp/bridge/compose.yaml"

[ $# -gt 0 ] || set -- --warmup 3 --runs 40
hyperfine -N "$@" \
    -n "run --rm (network_mode: none)" "$BERTH -f $tmp/none/compose.yaml run --rm svc true" \
    -n "run --rm (default network)" "$BERTH -f $tmp/bridge/compose.yaml run --rm svc true"
