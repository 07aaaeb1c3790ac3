#!/usr/bin/env bash
# How long after MariaDB accepts connections the LAMP example's page serves
# a row from it (aim: < 1 s). In a network namespace of its own with fresh
# BERTH_ROOT/BERTH_RUN:
#
#   1. the images (examples/lamp/images.sh, cached after the first run);
#   2. a first `up -d --wait` (MariaDB initializes its volume) and a row
#      written through the page (?format=text&add=MARK); `down`, volume kept;
#   3. ROUNDS times: `up -d` while a poller GETs ?format=text on the
#      published port every POLL seconds; t_row = the first answer holding
#      MARK; t_ready = the timestamp berth's log gives MariaDB's line
#      "ready for connections"; the figure is t_row - t_ready; then `down`.
#
# Also printed per round: `up -d` → ready, and `up -d` → row. Both clocks
# are CLOCK_REALTIME: the poller's `date +%s.%N` and berth's log stamps.
#
#   benches/lamp_ready.sh [ROUNDS]        (default 5)
#   BERTH=path/to/berth                   (default: target/release/berth)
#   POLL=0.02                             seconds between GETs
# Needs root, curl, and Debian's archive for the first images.sh run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
POLL=${POLL:-0.02}
if [[ -z ${LAMP_READY_IN_NETNS:-} ]]; then
    LAMP_READY_IN_NETNS=1 exec unshare -n "$0" "$@"
fi
fail() {
    echo "lamp_ready.sh: $*" >&2
    exit 1
}
[[ $(id -u) -eq 0 ]] || fail "needs root"
command -v curl >/dev/null || fail "curl is missing"
BERTH=$(realpath "${BERTH:-${CARGO_TARGET_DIR:-target}/release/berth}")
[[ -x $BERTH ]] || fail "no berth at $BERTH (cargo build --release -p berth)"
export BERTH
ip link set lo up

tmp=$(mktemp -d /tmp/berth-lamp-ready.XXXXXX)
export BERTH_ROOT=$tmp/root BERTH_RUN=$tmp/run
LAMP=$PWD/examples/lamp
compose() { "$BERTH" -f "$LAMP/compose.yaml" -p lampready "$@"; }
cleanup() {
    compose down -v -t 2 >/dev/null 2>&1 || true
    if grep -q " $tmp/" /proc/mounts; then
        echo "lamp_ready.sh: mounts left under $tmp (kept)" >&2
    else
        rm -rf --one-file-system "$tmp"
    fi
}
trap cleanup EXIT
URL=http://127.0.0.1:8080/
now() { date +%s.%N; }
# A log line's RFC 3339 stamp (`logs -t`: service | stamp text) in seconds.
stamp() { date -d "$(awk '{ print $3 }' <<<"$1")" +%s.%N; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

"$LAMP/images.sh" >/dev/null || fail "images.sh failed"
compose up -d --wait --wait-timeout 180 >/dev/null 2>&1 || fail "first up -d --wait failed"
mark=bench-$RANDOM$RANDOM
curl -fsS --max-time 5 "$URL?format=text&add=$mark" | grep -q "$mark" || fail "the row $mark was not written"
compose down -t 10 >/dev/null 2>&1 || fail "down failed"

figures=()
for ((r = 1; r <= ROUNDS; r++)); do
    t_up=$(now)
    compose up -d >/dev/null 2>&1 || fail "up -d failed (round $r)"
    t_row=
    deadline=$(awk -v t="$t_up" 'BEGIN { printf "%.0f", t + 120 }')
    while [[ -z $t_row ]]; do
        if body=$(curl -fsS --max-time 2 "$URL?format=text" 2>/dev/null) && [[ $body == *"$mark"* ]]; then
            t_row=$(now)
        else
            [[ $(date +%s) -lt $deadline ]] || fail "no row within 120 s (round $r)"
            sleep "$POLL"
        fi
    done
    ready=$(compose logs -t db 2>/dev/null | grep 'ready for connections' | tail -n1)
    [[ -n $ready ]] || fail "no 'ready for connections' in the db log (round $r)"
    t_ready=$(stamp "$ready")
    fig=$(sub "$t_ready" "$t_row")
    figures+=("$fig")
    echo "round $r: up -d → MariaDB ready $(sub "$t_up" "$t_ready") s, → row served $(sub "$t_up" "$t_row") s; ready → row $fig s"
    compose down -t 10 >/dev/null 2>&1 || fail "down failed (round $r)"
done
printf '%s\n' "${figures[@]}" | sort -n | awk '{ a[NR] = $1 } END {
    printf "MariaDB ready → page serves a row: min %.3f s, median %.3f s, max %.3f s (%d rounds)\n", a[1], a[int((NR + 1) / 2)], a[NR], NR }'
