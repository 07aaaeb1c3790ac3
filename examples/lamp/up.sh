#!/usr/bin/env bash
# The LAMP example in one command: makes the images if they are not made
# yet (images.sh, cached: instant after the first run), brings the stack up,
# waits until it is healthy and prints the page's URL. Extra arguments go to
# `berth up` (e.g. --force-recreate). Needs root.
#   BERTH=/path/to/berth   the binary (default: berth on PATH)
#   LAMP_NETWORK=host      with compose.host-network.yaml (an engine without
#                          bridge networks yet): the page is on port 80
set -euo pipefail
HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
BERTH=${BERTH:-berth}

files=(-f "$HERE/compose.yaml")
port=8080
if [[ ${LAMP_NETWORK:-bridge} == host ]]; then
    files+=(-f "$HERE/compose.host-network.yaml")
    port=80
fi
# berth programs its firewall with nft (Debian's nftables); a fresh machine
# may not have it yet.
if ! command -v nft >/dev/null 2>&1; then
    echo "installing nftables (berth's networks need nft)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables >/dev/null
fi

"$HERE/images.sh"
"$BERTH" "${files[@]}" up -d --wait --wait-timeout 180 "$@"
if published=$("$BERTH" "${files[@]}" port web 80 2>/dev/null); then
    port=${published##*:}
fi
echo "LAMP is up: http://127.0.0.1:$port/"
