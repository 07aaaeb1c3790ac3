#!/usr/bin/env bash
# End-to-end check of the LAMP example with berth itself (needs `berth up`,
# `down`, `ps`, `image import`): in a fresh BERTH_ROOT and BERTH_RUN it
#
#   1. makes and imports the images (images.sh; the tarballs are cached);
#   2. `up -d --wait`s the stack and checks the page writes a row through PHP
#      (?add=<random>&format=text), and serves HTML;
#   3. `down`s it (volumes kept) and `up`s it again: the row is still there;
#   4. `down -v`s it and checks nothing is left: no container, no volume, no
#      mount under the temporary roots, no new network link, port 8080 closed.
#
# Usage: test-stack.sh          BERTH=/path/to/berth to pick the binary.
# The published port is 8080, as in the compose file: it must be free.
set -euo pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
BERTH=${BERTH:-berth}
URL=http://127.0.0.1:8080/

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
ok() { echo "ok: $*"; }

[[ $(id -u) -eq 0 ]] || fail "must run as root"
command -v curl >/dev/null || fail "curl is missing"
command -v "$BERTH" >/dev/null || fail "berth not found as '$BERTH' (set BERTH=)"
if (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then
    fail "something listens on 127.0.0.1:8080 already; the stack publishes that port"
fi

BERTH_ROOT=$(mktemp -d /tmp/lamp-e2e-root.XXXXXX)
BERTH_RUN=$(mktemp -d /tmp/lamp-e2e-run.XXXXXX)
export BERTH_ROOT BERTH_RUN
project=lamp-e2e
compose=("$BERTH" -f "$HERE/compose.yaml" -p "$project")
links_before=$(ip -o link show | awk -F': ' '{ print $2 }' | sort)

cleanup() {
    local rc=$?
    "${compose[@]}" down -v --remove-orphans -t 5 >/dev/null 2>&1 || true
    if grep -qE " ($BERTH_ROOT|$BERTH_RUN)[/ ]" /proc/mounts; then
        echo "left behind: mounts under $BERTH_ROOT or $BERTH_RUN (kept for inspection)" >&2
    else
        rm -rf --one-file-system -- "$BERTH_ROOT" "$BERTH_RUN"
    fi
    exit "$rc"
}
trap cleanup EXIT

# 1. the images
"$HERE/images.sh" >/dev/null
ok "images imported into $BERTH_ROOT"

# 2. up, and a row written through PHP
get() { # url; retries briefly, as a published port may lag `up --wait`
    local i out
    for ((i = 0; i < 50; i++)); do
        if out=$(curl -fsS --max-time 5 "$1" 2>/dev/null); then
            printf '%s' "$out"
            return 0
        fi
        sleep 0.2
    done
    fail "GET $1 did not answer 200 within 10 s"
}
start=$(date +%s.%N)
"${compose[@]}" up -d --wait --wait-timeout 180 || fail "up -d --wait failed"
up_s=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
ok "up -d --wait took $up_s s"
mark=e2e-$RANDOM$RANDOM
text=$(get "$URL?format=text&add=$mark")
[[ $text == *$'\t'"$mark"* ]] || fail "the row $mark is not on the page: $text"
html=$(get "$URL")
[[ $html == *'<h1>Hello from berth</h1>'* ]] || fail "GET / is not the page: $html"
ok "the page wrote and shows the row $mark"

# 3. the volume survives down/up
"${compose[@]}" down || fail "down failed"
if (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then
    fail "port 8080 still open after down"
fi
"${compose[@]}" up -d --wait --wait-timeout 180 || fail "second up -d --wait failed"
text=$(get "$URL?format=text")
[[ $text == *$'\t'"$mark"* ]] || fail "the row $mark did not survive down/up: $text"
ok "the row survived down and up (named volume)"

# 4. down -v leaves nothing
"${compose[@]}" down -v || fail "down -v failed"
left=$("${compose[@]}" ps -a -q) || fail "ps -a -q failed"
[[ -z $left ]] || fail "containers left after down -v: $left"
if compgen -G "$BERTH_ROOT/volumes/${project}_dbdata" >/dev/null; then
    fail "the volume ${project}_dbdata is left after down -v"
fi
if grep -qE " ($BERTH_ROOT|$BERTH_RUN)[/ ]" /proc/mounts; then
    fail "mounts left: $(grep -E " ($BERTH_ROOT|$BERTH_RUN)[/ ]" /proc/mounts)"
fi
links_after=$(ip -o link show | awk -F': ' '{ print $2 }' | sort)
new_links=$(comm -13 <(echo "$links_before") <(echo "$links_after"))
[[ -z $new_links ]] || fail "network links left (or made meanwhile by another test): $new_links"
if (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then
    fail "port 8080 still open after down -v"
fi
ok "down -v left no container, volume, mount, link or open port"
echo PASS
