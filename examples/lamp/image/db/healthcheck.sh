#!/bin/bash
# The db image's healthcheck, for a compose `healthcheck.test`:
#
#   healthcheck.sh [--connect] [--query]     (no option: both)
#
#   --connect   the server answers on TCP 127.0.0.1:3306. The temporary
#               server of the entrypoint's first-start initialisation has
#               networking off, so this passes only for the real server.
#   --query     `SELECT 1` succeeds as the `healthcheck` user the entrypoint
#               made (credentials in $DATADIR/.my-healthcheck.cnf).
#
# Exit 0 when healthy, 1 otherwise, with the reason on stderr.
set -uo pipefail

DATADIR=${DATADIR:-/var/lib/mysql}
cnf=$DATADIR/.my-healthcheck.cnf
connect=0 query=0
for arg in "$@"; do
    case $arg in
    --connect) connect=1 ;;
    --query) query=1 ;;
    *)
        echo "healthcheck.sh: unknown option $arg (use --connect, --query)" >&2
        exit 1
        ;;
    esac
done
if ((connect == 0 && query == 0)); then
    connect=1 query=1
fi

defaults=()
[[ -r $cnf ]] && defaults=(--defaults-extra-file="$cnf")

# a query over TCP proves the connection too: one client process, not two
if ((connect && query)) && ((${#defaults[@]} > 0)); then
    connect=0
fi
if ((connect)); then
    # `ping` exits 0 for a live server even when it denies the login
    if ! mariadb-admin "${defaults[@]}" --protocol=tcp --host=127.0.0.1 --port=3306 \
        --connect-timeout=2 ping >/dev/null; then
        echo "healthcheck.sh: no server on 127.0.0.1:3306" >&2
        exit 1
    fi
fi
if ((query)); then
    if ((${#defaults[@]} == 0)); then
        echo "healthcheck.sh: $cnf is missing (datadir not initialised by this image's entrypoint?)" >&2
        exit 1
    fi
    if ! out=$(mariadb "${defaults[@]}" --protocol=tcp --host=127.0.0.1 --port=3306 \
        --connect-timeout=2 --batch --skip-column-names -e 'SELECT 1' 2>&1) || [[ $out != 1 ]]; then
        echo "healthcheck.sh: SELECT 1 failed: $out" >&2
        exit 1
    fi
fi
exit 0
