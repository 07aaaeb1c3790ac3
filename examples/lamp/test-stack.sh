#!/usr/bin/env bash
# End-to-end check of the LAMP example with berth itself (`image import`,
# `up`, `down`, `ps`). In fresh BERTH_ROOT and BERTH_RUN directories, and in
# a network namespace of its own (so no port of the machine is used and
# nothing it leaves can be mistaken for another test's), it
#
#   1. makes and imports the images (images.sh; the tarballs are cached);
#   2. `up -d --wait`s the stack and checks the page writes a row through PHP
#      (?add=<random>&format=text) and serves HTML;
#   3. `down`s it (volumes kept) and `up`s it again: the row is still there;
#   4. `down -v`s it and checks nothing is left: no container, no volume, no
#      mount under the temporary roots, no process and no link but `lo` in
#      the namespace, the port closed.
#
# Usage: test-stack.sh
#   BERTH=/path/to/berth      the binary (default: berth on PATH)
#   LAMP_NETWORK=host         with compose.host-network.yaml, for an engine
#                             without bridge networks yet (page on port 80)
set -euo pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
BERTH=${BERTH:-berth}
NETWORK=${LAMP_NETWORK:-bridge}

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
ok() { echo "ok: $*"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

[[ $(id -u) -eq 0 ]] || fail "must run as root"
for tool in curl ip nsenter "$BERTH"; do
    command -v "$tool" >/dev/null || fail "$tool is missing (BERTH=$BERTH)"
done
files=(-f "$HERE/compose.yaml")
case $NETWORK in
bridge) port=8080 ;;
host)
    files+=(-f "$HERE/compose.host-network.yaml")
    port=80
    ;;
*) fail "LAMP_NETWORK must be bridge or host, not $NETWORK" ;;
esac
URL=http://127.0.0.1:$port/

BERTH_ROOT=$(mktemp -d /tmp/lamp-e2e-root.XXXXXX)
BERTH_RUN=$(mktemp -d /tmp/lamp-e2e-run.XXXXXX)
export BERTH_ROOT BERTH_RUN
project=lamp-e2e
netns=lamp-e2e-$$
ip netns add "$netns"
ip -n "$netns" link set lo up
in_ns() { nsenter --net="/run/netns/$netns" "$@"; }
compose() { in_ns "$BERTH" "${files[@]}" -p "$project" "$@"; }

cleanup() {
    local rc=$? pids
    compose down -v --remove-orphans -t 5 >/dev/null 2>&1 || true
    pids=$(ip netns pids "$netns" 2>/dev/null || true)
    if [[ -n $pids ]]; then
        # only processes of this test's stack can be in its namespace
        echo "killing what the stack left in $netns: $pids" >&2
        # shellcheck disable=SC2086 # one pid per word
        kill -KILL $pids 2>/dev/null || true
    fi
    ip netns del "$netns" 2>/dev/null || true
    if grep -qE " ($BERTH_ROOT|$BERTH_RUN)[/ ]" /proc/mounts; then
        echo "left behind: mounts under $BERTH_ROOT or $BERTH_RUN (kept for inspection)" >&2
    else
        rm -rf --one-file-system -- "$BERTH_ROOT" "$BERTH_RUN"
    fi
    exit "$rc"
}
trap cleanup EXIT

port_open() { in_ns bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; }
get() { # url; retries briefly, in case a published port lags `up --wait`
    local i out
    for ((i = 0; i < 50; i++)); do
        if out=$(in_ns curl -fsS --max-time 5 "$1" 2>/dev/null); then
            printf '%s' "$out"
            return 0
        fi
        sleep 0.2
    done
    fail "GET $1 did not answer 200 within 10 s"
}

# 1. the images
start=$(now)
"$HERE/images.sh" >/dev/null
ok "images made and imported into $BERTH_ROOT in $(secs "$start" "$(now)") s"

# 2. up, and a row written through PHP
start=$(now)
compose up -d --wait --wait-timeout 180 || fail "up -d --wait failed"
ok "up -d --wait ($NETWORK network) took $(secs "$start" "$(now)") s"
# From the logs' timestamps: MariaDB's real server ready (the last "ready
# for connections"; the first is the init's temporary server) to the first
# page answered 200 (a health probe's GET).
stamp() { # a log line's RFC 3339 timestamp as seconds
    date -d "$(awk '{ print $3 }' <<<"$1")" +%s.%N 2>/dev/null
}
ready=$(compose logs -t db 2>/dev/null | grep 'ready for connections' | tail -n1)
served=$(compose logs -t web 2>/dev/null | grep -m1 '" 200 ')
if t_ready=$(stamp "$ready") && t_served=$(stamp "$served"); then
    ok "MariaDB ready for connections → first page served: $(secs "$t_ready" "$t_served") s"
fi
mark=e2e-$RANDOM$RANDOM
text=$(get "$URL?format=text&add=$mark")
[[ $text == *$'\t'"$mark"* ]] || fail "the row $mark is not on the page: $text"
html=$(get "$URL")
[[ $html == *'<h1>Hello from berth</h1>'* ]] || fail "GET / is not the page: $html"
ok "the page wrote and shows the row $mark"

# 3. the volume survives down/up
compose down || fail "down failed"
port_open && fail "port $port still open after down"
start=$(now)
compose up -d --wait --wait-timeout 180 || fail "second up -d --wait failed"
ok "second up -d --wait took $(secs "$start" "$(now)") s"
text=$(get "$URL?format=text")
[[ $text == *$'\t'"$mark"* ]] || fail "the row $mark did not survive down/up: $text"
ok "the row survived down and up (named volume)"

# 4. down -v leaves nothing
compose down -v || fail "down -v failed"
left=$(compose ps -a -q) || fail "ps -a -q failed"
[[ -z $left ]] || fail "containers left after down -v: $left"
if compgen -G "$BERTH_ROOT/volumes/${project}_dbdata" >/dev/null; then
    fail "the volume ${project}_dbdata is left after down -v"
fi
if grep -qE " ($BERTH_ROOT|$BERTH_RUN)[/ ]" /proc/mounts; then
    fail "mounts left: $(grep -E " ($BERTH_ROOT|$BERTH_RUN)[/ ]" /proc/mounts)"
fi
pids=$(ip netns pids "$netns")
[[ -z $pids ]] || fail "processes left in the namespace: $(ps -o pid=,args= -p "${pids//$'\n'/,}")"
links=$(ip -n "$netns" -o link show | awk -F': ' '{ print $2 }' | grep -vx lo || true)
[[ -z $links ]] || fail "network links left: $links"
port_open && fail "port $port still open after down -v"
ok "down -v left no container, volume, mount, process, link or open port"
echo PASS
