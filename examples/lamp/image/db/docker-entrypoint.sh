#!/bin/bash
# The db image's entrypoint. It behaves like the official mariadb image's
# for what a compose file uses:
#
# - arguments starting with "-" are options for mariadbd; any other command
#   than mariadbd/mysqld is run as given (`docker run lamp-db bash`);
# - as root, it makes the datadir and /run/mysqld belong to mysql, then runs
#   itself again as mysql (setpriv, from util-linux);
# - on a datadir without a `mysql` directory (an empty named volume) it
#   initialises the datadir (mariadb-install-db), starts a temporary server
#   with networking off, sets the root password (MARIADB_ROOT_PASSWORD, or
#   MARIADB_RANDOM_ROOT_PASSWORD, or MARIADB_ALLOW_EMPTY_ROOT_PASSWORD),
#   creates MARIADB_DATABASE and MARIADB_USER/MARIADB_PASSWORD with all
#   rights on it, a `healthcheck` user for healthcheck.sh, runs
#   /docker-entrypoint-initdb.d/*.sh|*.sql|*.sql.gz|*.sql.xz|*.sql.zst, and
#   stops the temporary server; a datadir whose initialisation was killed
#   half-way is initialised again;
# - then execs mariadbd in the foreground, listening on 0.0.0.0:3306
#   (/etc/mysql/mariadb.conf.d/99-berth.cnf), logging to stderr.
#
# Every MARIADB_X may also be given as MYSQL_X, and as X_FILE (a file that
# holds the value, e.g. a compose secret).
set -eo pipefail
shopt -s nullglob

log() { printf '%s 0 [Note] [Entrypoint]: %s\n' "$(date '+%F %T')" "$*" >&2; }
warn() { printf '%s 0 [Warning] [Entrypoint]: %s\n' "$(date '+%F %T')" "$*" >&2; }
die() {
    printf '%s 0 [ERROR] [Entrypoint]: %s\n' "$(date '+%F %T')" "$*" >&2
    exit 1
}

# Sets MARIADB_$1 from itself, MYSQL_$1, or the file named by one of their
# *_FILE variants, and unsets the others.
load_env() {
    local name=$1 value='' var file set=''
    for var in "MARIADB_$name" "MYSQL_$name"; do
        file=${var}_FILE
        if [[ -n ${!var:-} && -n ${!file:-} ]]; then
            die "both $var and $file are set, but they exclude each other"
        fi
        if [[ -z $set && -n ${!var:-} ]]; then
            value=${!var} set=1
        elif [[ -z $set && -n ${!file:-} ]]; then
            [[ -r ${!file} ]] || die "$file names ${!file}, which cannot be read"
            value=$(<"${!file}") set=1
        fi
        unset "$file"
    done
    unset "MYSQL_$name"
    export "MARIADB_$name=$value"
}

truthy() { [[ -n ${1:-} && $1 != 0 && ${1,,} != no && ${1,,} != false ]]; }

# SQL string and identifier literals.
sql_string() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\'/\\\'}
    printf "'%s'" "$s"
}
# shellcheck disable=SC2016 # backticks quote the identifier
sql_ident() { printf '`%s`' "${1//\`/\`\`}"; }

# A value of the server configuration: the last --NAME=... among the
# arguments, else what the option files say.
server_option() {
    local name=$1 value='' arg line
    shift
    while IFS= read -r line; do
        [[ $line == --$name=* ]] && value=${line#--"$name"=}
    done < <(my_print_defaults --mysqld 2>/dev/null || true)
    for arg in "$@"; do
        [[ $arg == --$name=* ]] && value=${arg#--"$name"=}
    done
    printf '%s' "$value"
}

if [[ ${1:0:1} == - ]]; then
    set -- mariadbd "$@"
fi
case ${1:-} in
mariadbd | mysqld) ;;
*) exec "$@" ;;
esac

DATADIR=$(server_option datadir "$@")
DATADIR=${DATADIR:-/var/lib/mysql}
DATADIR=${DATADIR%/}
SOCKET=$(server_option socket "$@")
SOCKET=${SOCKET:-/run/mysqld/mysqld.sock}

if [[ $(id -u) == 0 ]]; then
    mkdir -p "$DATADIR" "${SOCKET%/*}"
    # a volume made by root (or restored from a backup) becomes mysql's
    find "$DATADIR" "${SOCKET%/*}" \! -user mysql -exec chown mysql:mysql {} +
    exec setpriv --reuid=mysql --regid=mysql --init-groups -- "${BASH_SOURCE[0]}" "$@"
fi

for name in DATABASE USER PASSWORD ROOT_PASSWORD ROOT_HOST ALLOW_EMPTY_ROOT_PASSWORD \
    RANDOM_ROOT_PASSWORD; do
    load_env "$name"
done
MARIADB_ROOT_HOST=${MARIADB_ROOT_HOST:-%}

# Present while a first-start initialisation runs: a datadir that still has
# it was left by one that was killed, holds nothing but its debris, and is
# initialised again (it would otherwise start without its users).
marker=$DATADIR/.init-incomplete
if [[ -e $marker ]]; then
    warn "an earlier initialisation of $DATADIR was interrupted; starting it over"
    find "$DATADIR" -mindepth 1 -delete
fi
if [[ -d $DATADIR/mysql ]]; then
    exec "$@"
fi

# --- first start on an empty datadir ---------------------------------------
if [[ -z $MARIADB_ROOT_PASSWORD ]] && ! truthy "$MARIADB_ALLOW_EMPTY_ROOT_PASSWORD" &&
    ! truthy "$MARIADB_RANDOM_ROOT_PASSWORD"; then
    die "the datadir $DATADIR is empty and no root password option is given: set one of MARIADB_ROOT_PASSWORD, MARIADB_ALLOW_EMPTY_ROOT_PASSWORD or MARIADB_RANDOM_ROOT_PASSWORD"
fi
if [[ -n $MARIADB_USER && ${MARIADB_USER,,} == root ]]; then
    die "MARIADB_USER=root: root exists already; set MARIADB_ROOT_PASSWORD for it instead"
fi
if [[ -n $MARIADB_USER && -z $MARIADB_PASSWORD ]]; then
    die "MARIADB_USER is set without MARIADB_PASSWORD"
fi
if [[ -z $MARIADB_USER && -n $MARIADB_PASSWORD ]]; then
    warn "MARIADB_PASSWORD is set without MARIADB_USER; it is ignored"
fi

random_password() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }

log "initializing the datadir $DATADIR"
: >"$marker"
# the server's own arguments (after "mariadbd") apply to the bootstrap too;
# --cross-bootstrap: no root@<hostname> (the container's name is no host to
# trust), --rpm: without its advice on setting up a server by hand
mariadb-install-db --datadir="$DATADIR" --auth-root-authentication-method=normal \
    --cross-bootstrap --rpm --skip-test-db --skip-name-resolve --default-time-zone=SYSTEM \
    --skip-log-bin \
    "${@:2}" >&2
log "datadir initialized"

log "starting a temporary server (no networking)"
"$@" --skip-networking --socket="$SOCKET" --skip-log-bin --default-time-zone=SYSTEM \
    --loose-innodb-buffer-pool-load-at-startup=0 &
temp_pid=$!

# The client as root, on the socket; a defaults file carries the password
# once it is set (never on a command line, where ps would show it).
client_dir=$(mktemp -d)
trap 'rm -rf "$client_dir"' EXIT
client_cnf=$client_dir/client.cnf
write_client_cnf() {
    local pw=${1//\\/\\\\}
    pw=${pw//\"/\\\"}
    printf '[client]\nuser=root\npassword="%s"\nsocket="%s"\nprotocol=socket\n' \
        "$pw" "$SOCKET" >"$client_cnf"
}
write_client_cnf ''
sql() { mariadb --defaults-extra-file="$client_cnf" --batch --skip-column-names "$@"; }

for ((i = 0; i < 300; i++)); do
    if sql --connect-timeout=1 -e 'SELECT 1' >/dev/null 2>&1; then
        break
    fi
    kill -0 "$temp_pid" 2>/dev/null || die "the temporary server exited; see its log above"
    sleep 0.1
done
((i < 300)) || die "the temporary server did not accept connections within 30 s"

root_password=$MARIADB_ROOT_PASSWORD
if [[ -z $root_password ]] && truthy "$MARIADB_RANDOM_ROOT_PASSWORD"; then
    root_password=$(random_password)
    log "GENERATED ROOT PASSWORD: $root_password"
fi
health_password=$(random_password)

{
    echo "SET @@SESSION.SQL_LOG_BIN = 0;"
    # mariadb-install-db made root@127.0.0.1 and root@::1 without a password:
    # root is root@localhost (socket) and root@MARIADB_ROOT_HOST only
    echo "DROP USER IF EXISTS 'root'@'127.0.0.1', 'root'@'::1';"
    echo "SET PASSWORD FOR 'root'@'localhost' = PASSWORD($(sql_string "$root_password"));"
    if [[ $MARIADB_ROOT_HOST != localhost ]]; then
        host=$(sql_string "$MARIADB_ROOT_HOST")
        echo "CREATE USER 'root'@$host IDENTIFIED BY $(sql_string "$root_password");"
        echo "GRANT ALL ON *.* TO 'root'@$host WITH GRANT OPTION;"
        echo "GRANT PROXY ON ''@'%' TO 'root'@$host WITH GRANT OPTION;"
    fi
    # healthcheck.sh logs in as this user, over TCP from inside the container
    for host in 127.0.0.1 ::1 localhost; do
        echo "CREATE USER 'healthcheck'@'$host' IDENTIFIED BY $(sql_string "$health_password");"
    done
    if [[ -n $MARIADB_DATABASE ]]; then
        log "creating database $MARIADB_DATABASE"
        echo "CREATE DATABASE IF NOT EXISTS $(sql_ident "$MARIADB_DATABASE");"
    fi
    if [[ -n $MARIADB_USER ]]; then
        log "creating user $MARIADB_USER"
        user=$(sql_string "$MARIADB_USER")
        echo "CREATE USER $user@'%' IDENTIFIED BY $(sql_string "$MARIADB_PASSWORD");"
        if [[ -n $MARIADB_DATABASE ]]; then
            log "giving user $MARIADB_USER access to schema $MARIADB_DATABASE"
            echo "GRANT ALL ON $(sql_ident "$MARIADB_DATABASE").* TO $user@'%';"
        fi
    fi
    echo "FLUSH PRIVILEGES;"
} | sql --database=mysql
write_client_cnf "$root_password"

umask 077
printf '[client]\nuser=healthcheck\npassword="%s"\nprotocol=tcp\nport=3306\n' \
    "$health_password" >"$DATADIR/.my-healthcheck.cnf"
umask 022

# SQL on stdin, in MARIADB_DATABASE when there is one. Sourced initdb
# scripts written for the official image call it docker_process_sql;
# executable ones get MARIADB_ROOT_PASSWORD etc. in their environment.
run_sql() {
    local args=()
    [[ -n $MARIADB_DATABASE ]] && args+=(--database="$MARIADB_DATABASE")
    for arg in "$@"; do
        [[ $arg == --dont-use-mysql-root-password ]] || args+=("$arg")
    done
    sql "${args[@]}"
}
docker_process_sql() { run_sql "$@"; }
for f in /docker-entrypoint-initdb.d/*; do
    case $f in
    *.sh)
        if [[ -x $f ]]; then
            log "running $f"
            "$f"
        else
            log "sourcing $f"
            # shellcheck disable=SC1090 # user-provided
            . "$f"
        fi
        ;;
    *.sql)
        log "running $f"
        run_sql <"$f"
        ;;
    *.sql.gz)
        log "running $f"
        gzip -dc "$f" | run_sql
        ;;
    *.sql.xz)
        log "running $f"
        xz -dc "$f" | run_sql
        ;;
    *.sql.zst)
        log "running $f"
        zstd -dc "$f" | run_sql
        ;;
    *) warn "ignoring $f (not .sh, .sql, .sql.gz, .sql.xz or .sql.zst)" ;;
    esac
done

log "stopping the temporary server"
kill -TERM "$temp_pid"
wait "$temp_pid" || die "the temporary server did not stop cleanly"
rm -rf "$client_dir"
trap - EXIT
rm -f "$marker"
log "init done; ready for start up"

exec "$@"
