#!/usr/bin/env bash
# Checks the two image tarballs of images.sh without berth: both rootfs are
# unpacked in a temporary directory and run chrooted in one throw-away
# network, mount and pid namespace (unshare), sharing its loopback, with the
# page told DB_HOST=db, which the web rootfs's /etc/hosts maps to 127.0.0.1
# (where berth's DNS would answer). It checks that
#
# Every process of the images runs with Docker's 14 default capabilities
# only (setpriv --bounding-set). Seccomp is not applied.
#
#   1. the db entrypoint refuses an empty datadir without a root password;
#   2. on an empty datadir (a directory bind-mounted like a named volume) it
#      initialises MariaDB, and the server accepts SQL on TCP as the app user;
#   3. healthcheck.sh fails before the server is up and passes after; the
#      web image's healthcheck.sh passes once the page serves;
#   4. Apache + PHP serve the page; two visits add two rows, ?add=...
#      adds its text, the text and JSON formats agree;
#   5. after both are stopped and started again on the same datadir (no
#      re-initialisation), the rows are still there;
#   6. MYSQL_* names, a *_FILE secret, MARIADB_ALLOW_EMPTY_ROOT_PASSWORD and
#      /docker-entrypoint-initdb.d/*.sql and *.sh initialise a second datadir;
#   7. an initialisation killed with SIGKILL half-way is started over.
#
# and prints timings: datadir initialisation, MariaDB accepting TCP to
# healthcheck passing (probed every 200 ms, like the compose file) and to the
# page serving. Everything (processes, mounts, the temp dir) goes when it
# ends, pass or fail: the processes live in a pid namespace whose init is
# this script's inner half, the mounts in its mount namespace.
#
# Usage: test-rootfs.sh [WEB DB]     (default: the tarballs of images.sh --no-import)
#   WEB, DB: tarballs, or rootfs directories (such as the layers berth's
#   image store unpacked from them)
# Needs root, unshare, curl, python3 (JSON check).
set -euo pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)

if [[ ${1:-} != --inside ]]; then
    [[ $(id -u) -eq 0 ]] || {
        echo "test-rootfs.sh: must run as root" >&2
        exit 1
    }
    for tool in unshare curl python3 tar; do
        command -v "$tool" >/dev/null || {
            echo "test-rootfs.sh: $tool is missing" >&2
            exit 1
        }
    done
    if [[ $# -eq 2 ]]; then
        web_tar=$1 db_tar=$2
    else
        mapfile -t out < <("$HERE/images.sh" --no-import)
        web_tar=${out[0]} db_tar=${out[2]}
    fi
    work=$(mktemp -d /tmp/lamp-rootfs.XXXXXX)
    # kept when the check fails, for its logs
    trap 'rc=$?; if ((rc == 0)); then rm -rf --one-file-system -- "$work"; else echo "logs and rootfs kept in $work" >&2; fi' EXIT
    mkdir -p "$work/web" "$work/db" "$work/dbdata"
    unpack() { # a tarball, or a directory (e.g. a layer berth unpacked)
        if [[ -d $1 ]]; then
            cp -a "$1/." "$2/"
        else
            tar --numeric-owner -xpf "$1" -C "$2"
        fi
    }
    unpack "$web_tar" "$work/web"
    unpack "$db_tar" "$work/db"
    # the "named volume": a directory like berth's volumes/<name>/_data,
    # owned as the image's /var/lib/mysql is (Docker copies it up)
    chown --reference="$work/db/var/lib/mysql" "$work/dbdata"
    # setsid: Apache signals its whole process group when it stops
    unshare --net --mount --propagation private --pid --fork --mount-proc \
        setsid --wait "${BASH_SOURCE[0]}" --inside "$work"
    exit 0
fi

# --- inside: pid 1 of the new namespaces -----------------------------------
work=$2
now() { date +%s.%N; }
ms() { python3 -c "print(round(($2 - $1) * 1000))"; }
fail() {
    echo "FAIL: $*" >&2
    for f in "$work"/*.log; do
        echo "--- $f" >&2
        tail -n 40 "$f" >&2
    done
    exit 1
}
ok() { echo "ok: $*"; }

ip link set lo up

# A container-like /dev, /proc, /tmp for a rootfs.
prepare() {
    local root=$1 d
    mount -t proc proc "$root/proc"
    mount -t tmpfs -o mode=755,size=64k tmpfs "$root/dev"
    for d in null zero full random urandom tty; do
        touch "$root/dev/$d"
        mount --bind "/dev/$d" "$root/dev/$d"
    done
    ln -s /proc/self/fd "$root/dev/fd"
    ln -s /proc/self/fd/0 "$root/dev/stdin"
    ln -s /proc/self/fd/1 "$root/dev/stdout"
    ln -s /proc/self/fd/2 "$root/dev/stderr"
    mkdir -p "$root/dev/shm"
    mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
    mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
}
prepare "$work/db"
prepare "$work/web"
# the compose file's DB_HOST, resolved the way glibc does (files, then DNS)
printf '127.0.0.1\tdb\n' >>"$work/web/etc/hosts"
mount --bind "$work/dbdata" "$work/db/var/lib/mysql"

PATH_IMG=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# Docker's (and berth's) default capabilities: everything the images run
# runs with these only, as in a container
caps=chown,dac_override,fowner,fsetid,kill,setgid,setuid,setpcap,net_bind_service,net_raw
caps+=,sys_chroot,mknod,audit_write,setfcap
confine=(setpriv --bounding-set="-all,+${caps//,/,+}" --inh-caps=-all)
db_env=(env -i "PATH=$PATH_IMG" LANG=C.UTF-8 HOSTNAME=db)
in_db() { "${confine[@]}" "${db_env[@]}" chroot "$work/db" "$@"; }
creds=(MARIADB_DATABASE=lamp MARIADB_USER=lamp "MARIADB_PASSWORD=it's a \"secret\"\\"
    "MARIADB_ROOT_PASSWORD=root pw")

# 1. no root password option: a clear refusal, nothing initialised
if in_db docker-entrypoint.sh mariadbd >"$work/refuse.log" 2>&1; then
    fail "the entrypoint started without a root password option"
fi
grep -q 'no root password option' "$work/refuse.log" || fail "no clear refusal message"
[[ -z $(ls -A "$work/dbdata") ]] || fail "the refusal left files in the datadir"
ok "empty datadir without a root password option is refused: $(grep -o 'set one of.*' "$work/refuse.log")"

# 3a. healthcheck fails with no server
if in_db healthcheck.sh --connect >/dev/null 2>&1; then
    fail "healthcheck passed with no server"
fi
ok "healthcheck fails without a server"

# 2. first start: initialisation
db_log=$work/db.log
start_db() {
    setsid env -i PATH=$PATH_IMG LANG=C.UTF-8 "${creds[@]}" \
        "${confine[@]}" chroot "$work/db" docker-entrypoint.sh mariadbd >>"$db_log" 2>&1 &
    db_pid=$!
}
tcp_open() { (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }
wait_tcp() { # port, seconds; sets t_accept
    local i
    for ((i = 0; i < $2 * 100; i++)); do
        if tcp_open "$1"; then
            t_accept=$(now)
            return 0
        fi
        kill -0 "$db_pid" 2>/dev/null || fail "mariadbd exited"
        sleep 0.01
    done
    fail "nothing listens on 127.0.0.1:$1 after $2 s"
}
wait_healthy() { # like compose: a probe every 200 ms; sets t_healthy
    local i
    for ((i = 0; i < 300; i++)); do
        if in_db healthcheck.sh --connect --query 2>>"$work/health.log"; then
            t_healthy=$(now)
            return 0
        fi
        sleep 0.2
    done
    fail "healthcheck did not pass within 60 s"
}
start_web() { # sets t_web_start
    t_web_start=$(now)
    setsid env -i PATH=$PATH_IMG LANG=C.UTF-8 DB_HOST=db DB_NAME=lamp DB_USER=lamp \
        "DB_PASSWORD=it's a \"secret\"\\" "${confine[@]}" chroot "$work/web" sh -c 'cd /var/www/html && exec apache2-foreground' \
        >>"$work/web.log" 2>&1 &
    web_pid=$!
}
wait_page() { # sets t_serving
    local i
    for ((i = 0; i < 1000; i++)); do
        if curl -fsS -o /dev/null 'http://127.0.0.1/?format=text' 2>/dev/null; then
            t_serving=$(now)
            return 0
        fi
        kill -0 "$web_pid" 2>/dev/null || fail "apache exited"
        sleep 0.01
    done
    fail "the page did not serve within 10 s"
}
stop_all() {
    kill -WINCH "$web_pid" 2>/dev/null || true # the image's STOPSIGNAL
    kill -TERM "$db_pid" 2>/dev/null || true
    wait "$web_pid" || true
    wait "$db_pid" || fail "mariadbd did not exit cleanly on SIGTERM"
}

t_start=$(now)
start_db
wait_tcp 3306 120
ok "MariaDB initialised the empty datadir and accepts TCP after $(ms "$t_start" "$t_accept") ms"
grep -q 'init done' "$db_log" || fail "the entrypoint did not report its init"
[[ -f $work/dbdata/mysql/db.opt || -d $work/dbdata/mysql ]] || fail "no mysql/ in the datadir"
[[ -d $work/dbdata/lamp ]] || fail "MARIADB_DATABASE was not created"
wait_healthy
# web starts once db is healthy, as depends_on: service_healthy does
start_web
wait_page
ok "healthcheck passes $(ms "$t_accept" "$t_healthy") ms after TCP accepts"
ok "page serves $(ms "$t_accept" "$t_serving") ms after MariaDB accepts TCP (healthy +$(ms "$t_accept" "$t_healthy") ms, Apache started to page served $(ms "$t_web_start" "$t_serving") ms)"
served_ms=$(ms "$t_accept" "$t_serving")
"${confine[@]}" "${db_env[@]}" chroot "$work/web" healthcheck.sh || fail "the web healthcheck fails on a serving page"
ok "the web healthcheck passes"
# every exec keeps the pid: env, chroot, the entrypoint, setpriv, mariadbd
[[ $(cat "/proc/$db_pid/comm") == mariadbd ]] || fail "pid $db_pid is $(cat "/proc/$db_pid/comm"), not mariadbd"
db_uid=$(awk '/^Uid:/ { print $2 }' "/proc/$db_pid/status")
mysql_uid=$(awk -F: '$1 == "mysql" { print $3 }' "$work/db/etc/passwd")
[[ $db_uid == "$mysql_uid" ]] || fail "mariadbd runs as uid $db_uid, not mysql ($mysql_uid)"
[[ $(stat -c %u "$work/dbdata/mysql") == "$mysql_uid" ]] || fail "the datadir is not mysql's"
bnd=$(awk '/^CapBnd:/ { print $2 }' "/proc/$db_pid/status")
(((16#$bnd >> 21) & 1)) && fail "mariadbd has CAP_SYS_ADMIN in its bounding set ($bnd)"
ok "mariadbd runs as mysql (uid $mysql_uid), with Docker's capabilities at most (CapBnd $bnd), and owns the datadir"

# SQL as the app user over TCP, and as root over the socket
got=$(in_db mariadb -h127.0.0.1 -ulamp "-pit's a \"secret\"\\" -N -e 'SELECT CURRENT_USER(), DATABASE()' lamp) ||
    fail "the app user cannot log in over TCP"
[[ $got == *lamp@%* ]] || fail "unexpected login: $got"
in_db mariadb -uroot '-proot pw' -N -e 'SELECT 1' >/dev/null || fail "root cannot log in on the socket"
if in_db mariadb -uroot -N -e 'SELECT 1' >/dev/null 2>&1; then
    fail "root logs in without a password"
fi
for host in 127.0.0.1 ::1; do
    if in_db mariadb -h"$host" -uroot -N -e 'SELECT 1' >/dev/null 2>&1; then
        fail "root logs in on TCP $host without a password"
    fi
done
in_db mariadb -h127.0.0.1 -uroot '-proot pw' -N -e 'SELECT 1' >/dev/null ||
    fail "root cannot log in over TCP with its password"
ok "app user (TCP) and root (socket and TCP, with its password only) log in"

# 4. the page
curl -fsS http://127.0.0.1/ >"$work/page1.html" || fail "GET / failed"
curl -fsS http://127.0.0.1/ >"$work/page2.html" || fail "GET / failed"
grep -q '<h1>Hello from berth</h1>' "$work/page2.html" || fail "no heading in the page"
grep -q '2 rows' "$work/page2.html" || fail "the second visit does not show 2 rows"
text=$(curl -fsS 'http://127.0.0.1/?format=text&add=hello%20berth')
[[ $(head -n1 <<<"$text") == 'rows: 3' ]] || fail "text mode: $text"
[[ $(tail -n1 <<<"$text") == *$'\t'"hello berth" ]] || fail "text mode: last row is not the added one: $text"
[[ $(grep -c $'\tvisit$' <<<"$text") == 2 ]] || fail "text mode: not two visits: $text"
json=$(curl -fsS 'http://127.0.0.1/?format=json')
python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["count"] == 3 and [r["note"] for r in d["rows"]] == ["visit", "visit", "hello berth"], d
assert "MariaDB" in d["server"], d
' "$json" || fail "json mode: $json"
rows=$(in_db mariadb -h127.0.0.1 -ulamp "-pit's a \"secret\"\\" -N -e 'SELECT COUNT(*) FROM visits' lamp)
[[ $rows == 3 ]] || fail "the table holds $rows rows, not 3"
ok "two visits and one ?add= wrote 3 rows through PHP; text, JSON and SQL agree"
code=$(curl -s -o /dev/null -w '%{http_code}' 'http://127.0.0.1/?format=xml')
[[ $code == 400 ]] || fail "?format=xml answered $code, not 400"
grep -q 'GET /?format=json' "$work/web.log" || fail "Apache's access log is not on stdout"
ok "bad format is a 400; access log goes to stdout"

# 5. restart on the same datadir: no init, the rows survive
stop_all
ok "Apache (SIGWINCH) and MariaDB (SIGTERM) stopped"
db_log=$work/db-restart.log
t_start=$(now)
start_db
wait_tcp 3306 60
grep -q 'initializing' "$db_log" && fail "the entrypoint initialised a datadir that was not empty"
wait_healthy
start_web
wait_page
ok "restart: MariaDB accepts TCP after $(ms "$t_start" "$t_accept") ms, healthy +$(ms "$t_accept" "$t_healthy") ms, page +$(ms "$t_accept" "$t_serving") ms"
text=$(curl -fsS 'http://127.0.0.1/?format=text')
[[ $(head -n1 <<<"$text") == 'rows: 3' && $text == *"hello berth"* ]] || fail "rows lost across restart: $text"
ok "the rows survived the restart"
stop_all

# 6. the other ways to configure the entrypoint: MYSQL_* names, a *_FILE
#    secret, an empty root password, /docker-entrypoint-initdb.d scripts
mkdir -p "$work/dbdata2" "$work/initdb" "$work/secrets"
chown --reference="$work/dbdata" "$work/dbdata2"
umount "$work/db/var/lib/mysql"
mount --bind "$work/dbdata2" "$work/db/var/lib/mysql"
mount --bind "$work/initdb" "$work/db/docker-entrypoint-initdb.d"
mount --bind "$work/secrets" "$work/db/run/secrets" 2>/dev/null || {
    mkdir -p "$work/db/run/secrets"
    mount --bind "$work/secrets" "$work/db/run/secrets"
}
printf 'from-a-file\n' >"$work/secrets/app_password"
cat >"$work/initdb/01-schema.sql" <<'SQL'
CREATE TABLE seeded (id INT PRIMARY KEY, what VARCHAR(20));
INSERT INTO seeded VALUES (1, 'from sql');
SQL
cat >"$work/initdb/02-run.sh" <<'SH'
#!/bin/bash
set -e
mariadb -uroot --password="$MARIADB_ROOT_PASSWORD" "$MARIADB_DATABASE" \
    -e "INSERT INTO seeded VALUES (2, 'from sh')"
SH
chmod +x "$work/initdb/02-run.sh"
cat >"$work/initdb/03-sourced.sh" <<'SH'
docker_process_sql <<<"INSERT INTO seeded VALUES (3, 'sourced')"
SH
cp "$work/initdb/01-schema.sql" "$work/initdb/04-ignored.txt"
creds=(MYSQL_DATABASE=app MYSQL_USER=app MARIADB_PASSWORD_FILE=/run/secrets/app_password
    MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=yes)
db_log=$work/db-variants.log
start_db
wait_tcp 3306 120
wait_healthy
got=$(in_db mariadb -h127.0.0.1 -uapp -pfrom-a-file -N -e 'SELECT GROUP_CONCAT(what ORDER BY id) FROM seeded' app) ||
    fail "the app user (password from a file) cannot read the seeded table"
[[ $got == 'from sql,from sh,sourced' ]] || fail "initdb scripts gave: $got"
in_db mariadb -uroot -N -e 'SELECT 1' >/dev/null || fail "root has no empty password on the socket"
grep -q 'ignoring /docker-entrypoint-initdb.d/04-ignored.txt' "$db_log" || fail "04-ignored.txt not reported"
ok "MYSQL_* names, a _FILE secret, an empty root password, initdb .sql, .sh (run and sourced) work"
stop_all

# 7. an initialisation killed half-way is started over, not taken as done
mkdir -p "$work/dbdata3"
chown --reference="$work/dbdata" "$work/dbdata3"
umount "$work/db/var/lib/mysql"
mount --bind "$work/dbdata3" "$work/db/var/lib/mysql"
creds=(MARIADB_DATABASE=lamp MARIADB_USER=lamp MARIADB_PASSWORD=pw3 MARIADB_ROOT_PASSWORD=root3)
db_log=$work/db-killed.log
start_db
for ((i = 0; i < 600; i++)); do
    grep -q 'starting a temporary server' "$db_log" && break
    sleep 0.05
done
((i < 600)) || fail "the initialisation did not reach its temporary server"
kill -KILL -- "-$db_pid" # the whole process group: entrypoint, install-db or server
wait "$db_pid" 2>/dev/null || true
[[ -d $work/dbdata3/mysql ]] || fail "the killed initialisation left no mysql/ to test with"
db_log=$work/db-after-kill.log
start_db
wait_tcp 3306 120
wait_healthy
grep -q 'was interrupted; starting it over' "$db_log" || fail "the interrupted init was not noticed"
in_db mariadb -h127.0.0.1 -ulamp -ppw3 -N -e 'SELECT 1' lamp >/dev/null ||
    fail "after a killed initialisation the app user cannot log in"
[[ ! -e $work/dbdata3/.init-incomplete ]] || fail "the init marker is left"
ok "an initialisation killed half-way (SIGKILL) is started over on the next start"
stop_all
echo "PASS (first start: page serving ${served_ms} ms after MariaDB accepted TCP)"
