#!/usr/bin/env bash
# Builds the two images of the LAMP example from Debian's packages and
# imports them into berth's image store:
#
#   lamp-web:latest   Apache 2.4 + mod_php (PHP 8.2) + php-mysql, serving /var/www/html
#   lamp-db:latest    MariaDB server with an official-image-like entrypoint
#
# No registry is needed: a minimal Debian (debootstrap --variant=minbase) is
# made once, copied twice, and each copy gets its packages with apt-get in a
# chroot. The copies are slimmed (no apt lists or caches, docs, man pages,
# locales), the files under image/ and www/ are added, and each rootfs is
# packed as a plain tarball with a `.changes` file beside it (one Dockerfile
# instruction per line: CMD, ENTRYPOINT, ENV, EXPOSE, ...), which becomes the
# `--change` arguments of `berth image import`.
#
# Cache (override with LAMP_CACHE_DIR), default ${XDG_CACHE_HOME:-$HOME/.cache}/berth/lamp:
#
#   debs/                 downloaded .deb files (debootstrap and apt), reused across keys
#   rootfs-<pkgkey>/      base/, web/, db/: the rootfs after apt, slimmed; pkgkey hashes
#                         this script, the suite and the package lists
#   images-<key>/         web.tar, web.changes, db.tar, db.changes, key; key hashes pkgkey
#                         and every file under image/ and www/
#
# A second run with nothing changed finds images-<key>/ and only re-imports an
# image the store lacks (or holds from another key). Editing www/index.php or
# an entrypoint re-packs the tarballs in seconds from rootfs-<pkgkey>/.
#
# Usage: images.sh [--no-import] [--force] [--help]
#   --no-import   stop once the tarballs are ready; print their paths
#   --force       rebuild everything, ignoring the cache
# Environment:
#   BERTH=path/to/berth     the berth binary (default: berth on PATH)
#   LAMP_CACHE_DIR=dir      the cache directory (see above)
#   LAMP_MIRROR=url         Debian mirror (default http://deb.debian.org/debian)
#   LAMP_SECURITY_MIRROR=url  (default http://deb.debian.org/debian-security; "none" to skip)
#
# Needs root (debootstrap, chroot) and Linux's unshare(1); installs
# debootstrap with apt-get when it is missing.
# shellcheck disable=SC2016 # single-quoted sh -c scripts expand inside
{ # the whole script is parsed before it runs: editing it meanwhile is safe
set -euo pipefail

readonly WEB_REF=lamp-web:latest
readonly DB_REF=lamp-db:latest

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
BERTH=${BERTH:-berth}
CACHE=${LAMP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/berth/lamp}
MIRROR=${LAMP_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${LAMP_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

log() { printf '%s images.sh: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
    printf 'images.sh: error: %s\n' "$*" >&2
    exit 1
}

no_import=0
force=0
for arg in "$@"; do
    case $arg in
    --no-import) no_import=1 ;;
    --force) force=1 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e '/shellcheck/d' -e 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument: $arg (see --help)" ;;
    esac
done

[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap and chroot need it)"
for tool in unshare chroot tar sha256sum flock; do
    command -v "$tool" >/dev/null || die "$tool is missing (util-linux, coreutils, tar)"
done

# --- the berth side is checked first, so a missing verb fails in a second,
# not after minutes of debootstrap. -----------------------------------------
berth_can_import() {
    command -v "$BERTH" >/dev/null 2>&1 || return 1
    "$BERTH" image import --help >/dev/null 2>&1
}
if [[ $no_import -eq 0 ]] && ! berth_can_import; then
    if ! command -v "$BERTH" >/dev/null 2>&1; then
        die "berth not found as '$BERTH': put it on PATH or set BERTH=/path/to/berth (or pass --no-import to only build the tarballs)"
    fi
    die "'$BERTH image import' is not available in this berth ($("$BERTH" --version 2>/dev/null || echo 'unknown version')); pass --no-import to only build the tarballs"
fi

# --- keys ------------------------------------------------------------------
hash_files() { # prints one sha256 over the names and contents of the given files
    local f
    for f in "$@"; do
        printf '%s\0' "${f#"$HERE"/}"
        sha256sum <"$f"
    done | sha256sum | cut -c1-16
}
recipe=$(sed -n '/^# >>> recipe/,/^# <<< recipe/p' "${BASH_SOURCE[0]}")
pkgkey=$(printf '%s\n' "$recipe" "$SECURITY_MIRROR" | sha256sum | cut -c1-16)
mapfile -t payload < <(find "$HERE/image" "$HERE/www" -type f | LC_ALL=C sort)
key=$(printf '%s %s %s\n' "$pkgkey" "$(hash_files "${BASH_SOURCE[0]}")" \
    "$(hash_files "${payload[@]}")" | sha256sum | cut -c1-16)

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9 # concurrent runs wait for each other instead of racing

rootfs_dir=$CACHE/rootfs-$pkgkey
images_dir=$CACHE/images-$key
if [[ $force -eq 1 ]]; then
    rm -rf -- "$rootfs_dir" "$images_dir"
fi

# >>> recipe: the text from here to "<<< recipe" is hashed into pkgkey, so
# changing how a rootfs is made rebuilds it, and nothing else does.
readonly SUITE=bookworm
readonly WEB_PACKAGES="apache2 libapache2-mod-php php-mysql"
readonly DB_PACKAGES="mariadb-server"

# Runs a command chrooted in $1, in its own mount and pid namespaces: /proc
# is mounted there and vanishes with the namespace, and any daemon a
# maintainer script starts dies with it. The network is the host's (apt).
# With DEBS set, that directory is apt's archive cache inside, so downloads
# outlive the rootfs.
in_root() {
    local root=$1
    shift
    DEBS=${DEBS:-} unshare --mount --propagation private --pid --fork sh -c '
        set -e
        root=$1
        shift
        mount -t proc proc "$root/proc"
        if [ -n "$DEBS" ]; then mount --bind "$DEBS" "$root/var/cache/apt/archives"; fi
        exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive chroot "$root" "$@"
    ' sh "$root" "$@"
}

# Removes what a container image does not need.
slim() {
    local root=$1
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
        "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/archives/partial \
        "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old \
        "$root"/var/cache/ldconfig/aux-cache "$root"/usr/share/man/* \
        "$root"/usr/share/info/* "$root"/usr/share/lintian "$root"/usr/share/linda \
        "$root"/tmp/* "$root"/var/tmp/* "$root"/root/.bash_history
    find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
    find "$root/var/log" -type f -delete
    # nothing of the build host stays in the image
    : >"$root/etc/resolv.conf"
    : >"$root/etc/machine-id"
    rm -f "$root/etc/hostname"
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
}

build_base() {
    local base=$1 start=$SECONDS
    log "debootstrap $SUITE (minbase) into $base"
    mkdir -p "$CACHE/debs"
    # debootstrap is chatty; its log is shown only when it fails
    if ! debootstrap --variant=minbase --cache-dir="$CACHE/debs" \
        "$SUITE" "$base" "$MIRROR" >"$base.log" 2>&1; then
        tail -n 30 "$base.log" >&2
        die "debootstrap failed (full log: $base.log)"
    fi
    log "debootstrap took $((SECONDS - start)) s"

    # never unpack docs, man pages or translations from now on
    cat >"$base/etc/dpkg/dpkg.cfg.d/90-berth-slim" <<'EOF'
# Container image: no docs, man pages or translations (copyright files stay).
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
    cat >"$base/etc/apt/apt.conf.d/90-berth-slim" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
EOF
    {
        echo "deb $MIRROR $SUITE main"
        echo "deb $MIRROR $SUITE-updates main"
        if [[ $SECURITY_MIRROR != none ]]; then
            echo "deb $SECURITY_MIRROR $SUITE-security main"
        fi
    } >"$base/etc/apt/sources.list"
    # maintainer scripts must not start daemons in the build chroot
    printf '#!/bin/sh\nexit 101\n' >"$base/usr/sbin/policy-rc.d"
    chmod 0755 "$base/usr/sbin/policy-rc.d"
    # apt in the chroot resolves names with the host's resolver
    cp -L /etc/resolv.conf "$base/etc/resolv.conf" ||
        die "cannot copy /etc/resolv.conf into the chroot (a dangling symlink?)"
    in_root "$base" apt-get -q update >>"$base.log" 2>&1 || {
        tail -n 30 "$base.log" >&2
        die "apt-get update failed in the base rootfs (full log: $base.log)"
    }
    DEBS=$CACHE/debs in_root "$base" apt-get -q -y upgrade >>"$base.log" 2>&1 || {
        tail -n 30 "$base.log" >&2
        die "apt-get upgrade failed in the base rootfs (full log: $base.log)"
    }
}

# Copies the base to $2 and installs the packages $3 into it.
derive() {
    local base=$1 root=$2 packages=$3 start=$SECONDS
    log "installing $packages into $(basename "$root")"
    cp -a "$base" "$root"
    mkdir -p "$CACHE/debs"
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    if ! DEBS=$CACHE/debs in_root "$root" apt-get -q -y install $packages >"$root.log" 2>&1; then
        tail -n 30 "$root.log" >&2
        die "apt-get install $packages failed (full log: $root.log)"
    fi
    rm -f "$root/usr/sbin/policy-rc.d"
    slim "$root"
    log "$(basename "$root"): packages installed in $((SECONDS - start)) s"
}

build_rootfs() {
    local tmp=$rootfs_dir.tmp
    rm -rf -- "$tmp"
    mkdir -p "$tmp"
    build_base "$tmp/base"
    derive "$tmp/base" "$tmp/web" "$WEB_PACKAGES"
    derive "$tmp/base" "$tmp/db" "$DB_PACKAGES"
    # mariadb-server's postinst made a datadir; the image ships it empty
    # (finish_db), so the cache need not keep it either
    find "$tmp/db/var/lib/mysql" -mindepth 1 -delete
    # the base is only a stepping stone; keep the cache small
    rm -rf -- "$tmp/base"
    mv -T "$tmp" "$rootfs_dir"
    # older package keys are dead weight
    find "$CACHE" -maxdepth 1 -name 'rootfs-*' -not -name "rootfs-$pkgkey" -exec rm -rf {} +
}

# <<< recipe

# The web image: Apache in the foreground, logs to stdout/stderr, the page.
finish_web() {
    local root=$1
    install -m 0755 "$HERE/image/web/apache2-foreground" "$root/usr/local/bin/apache2-foreground"
    install -m 0755 "$HERE/image/web/healthcheck.sh" "$root/usr/local/bin/healthcheck.sh"
    install -m 0644 "$HERE/image/web/berth.conf" "$root/etc/apache2/conf-available/berth.conf"
    install -m 0644 "$HERE/image/web/php-berth.ini" "$root/etc/php/8.2/apache2/conf.d/90-berth.ini"
    ln -sfT ../conf-available/berth.conf "$root/etc/apache2/conf-enabled/berth.conf"
    local log_dir=$root/var/log/apache2
    mkdir -p "$log_dir"
    ln -sfT /dev/stderr "$log_dir/error.log"
    ln -sfT /dev/stdout "$log_dir/access.log"
    ln -sfT /dev/stdout "$log_dir/other_vhosts_access.log"
    rm -rf "$root/var/www/html"
    mkdir -p "$root/var/www/html"
    cp -r "$HERE/www/." "$root/var/www/html/"
    chown -R 0:0 "$root/var/www/html"
    chmod -R a+rX,go-w "$root/var/www/html"
    cat >"$root.changes" <<'EOF'
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ENV LANG=C.UTF-8
WORKDIR /var/www/html
EXPOSE 80
STOPSIGNAL SIGWINCH
CMD ["apache2-foreground"]
EOF
}

# The db image: the entrypoint, the healthcheck, and an empty datadir.
finish_db() {
    local root=$1
    install -m 0755 "$HERE/image/db/docker-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
    install -m 0755 "$HERE/image/db/healthcheck.sh" "$root/usr/local/bin/healthcheck.sh"
    install -m 0644 "$HERE/image/db/99-berth.cnf" "$root/etc/mysql/mariadb.conf.d/99-berth.cnf"
    mkdir -p "$root/docker-entrypoint-initdb.d"
    # The image ships an empty datadir, so the entrypoint initialises a fresh
    # volume with the compose file's settings (Docker copies the image's
    # empty, mysql-owned directory into a new named volume).
    rm -rf "$root/var/lib/mysql"
    mkdir -p "$root/var/lib/mysql" "$root/run/mysqld"
    local uid gid
    uid=$(awk -F: '$1 == "mysql" { print $3 }' "$root/etc/passwd")
    gid=$(awk -F: '$1 == "mysql" { print $4 }' "$root/etc/passwd")
    [[ -n $uid && -n $gid ]] || die "no mysql user in the db rootfs"
    chown "$uid:$gid" "$root/var/lib/mysql" "$root/run/mysqld"
    chmod 0755 "$root/var/lib/mysql"
    cat >"$root.changes" <<'EOF'
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ENV LANG=C.UTF-8
VOLUME /var/lib/mysql
EXPOSE 3306
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["mariadbd"]
EOF
}

pack_images() {
    local tmp=$images_dir.tmp name start=$SECONDS
    rm -rf -- "$tmp"
    mkdir -p "$tmp"
    for name in web db; do
        # hard links: instant, and the finish_* steps only add, replace
        # (install, ln -sf) or remove files, never write into one in place
        cp -al "$rootfs_dir/$name" "$tmp/$name"
        case $name in
        web) finish_web "$tmp/$name" ;;
        db) finish_db "$tmp/$name" ;;
        esac
        echo "LABEL org.berth.lamp.key=$key" >>"$tmp/$name.changes"
        # an image layer has no device nodes and nothing in /proc, /sys
        find "$tmp/$name/dev" "$tmp/$name/proc" "$tmp/$name/sys" -mindepth 1 -delete
        tar --numeric-owner --sort=name -C "$tmp/$name" -cf "$tmp/$name.tar" .
        rm -rf -- "${tmp:?}/$name"
    done
    echo "$key" >"$tmp/key"
    mv -T "$tmp" "$images_dir"
    find "$CACHE" -maxdepth 1 -name 'images-*' -not -name "images-$key" -exec rm -rf {} +
    log "tarballs packed in $((SECONDS - start)) s"
}

# --- the build, each step only when its cache entry is missing --------------
if [[ ! -d $images_dir ]]; then
    if [[ ! -d $rootfs_dir ]]; then
        command -v debootstrap >/dev/null || {
            log "installing debootstrap"
            apt-get -q update && apt-get -q -y install debootstrap
        } >&2
        build_rootfs
    else
        log "reusing rootfs-$pkgkey"
    fi
    pack_images
else
    log "cached: $images_dir"
fi
for name in web db; do
    log "$name.tar: $(du -h "$images_dir/$name.tar" | cut -f1)"
done

if [[ $no_import -eq 1 ]]; then
    printf '%s\n' "$images_dir/web.tar" "$images_dir/web.changes" \
        "$images_dir/db.tar" "$images_dir/db.changes"
    exit 0
fi

# --- import ----------------------------------------------------------------
# An image is imported again only when the store lacks it or holds one made
# from another key (the key is the image's org.berth.lamp.key label).
import_one() {
    local name=$1 ref=$2 line
    local -a changes=()
    local inspect
    if inspect=$("$BERTH" image inspect "$ref" 2>/dev/null) &&
        [[ $inspect == *org.berth.lamp.key*"$key"* ]]; then
        log "$ref is up to date"
        return
    fi
    while IFS= read -r line; do
        [[ -n $line ]] && changes+=(--change "$line")
    done <"$images_dir/$name.changes"
    log "importing $ref"
    "$BERTH" image import "${changes[@]}" "$images_dir/$name.tar" "$ref" >&2 ||
        die "'$BERTH image import' of $images_dir/$name.tar as $ref failed"
}
import_one web "$WEB_REF"
import_one db "$DB_REF"
log "done: $WEB_REF and $DB_REF; now: berth -f $HERE/compose.yaml up -d"
exit 0
}
