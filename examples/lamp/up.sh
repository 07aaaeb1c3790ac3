#!/usr/bin/env bash
# The LAMP example in one command: makes the images if they are not made
# yet (images.sh, cached: instant after the first run), brings the stack up,
# waits until it is healthy and prints the page's URL. Extra arguments go to
# `berth up` (e.g. --force-recreate). Needs root.
set -euo pipefail
HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
BERTH=${BERTH:-berth}

"$HERE/images.sh"
"$BERTH" -f "$HERE/compose.yaml" up -d --wait --wait-timeout 180 "$@"
published=$("$BERTH" -f "$HERE/compose.yaml" port web 80 2>/dev/null) || published=0.0.0.0:8080
echo "LAMP is up: http://127.0.0.1:${published##*:}/"
