#!/bin/sh
# vs-runc.sh BERTH_BINARY [RUNS]: hyperfine medians of berth's runtime and runc
# on the same busybox bundle (`true` with Docker's default capabilities and
# seccomp profile): run, create, start, delete, exec. Needs root, hyperfine,
# runc. Prints one line per verb: "verb berth_ms runc_ms".
set -eu
berth=$1
runs=${2:-40}
dir=$(mktemp -d /tmp/berth-vs-runc.XXXXXX)
trap 'for r in "$berth runtime --root $dir/sb" "runc --root $dir/sr"; do for c in c e; do $r delete --force $c >/dev/null 2>&1 || true; done; done; rm -rf "$dir"; for p in /sys/fs/cgroup/*/berth-bench; do rmdir "$p"/* "$p" 2>/dev/null || true; done' EXIT
sh "$(dirname "$0")/../tests/busybox-rootfs.sh" "$dir/rootfs" >/dev/null
mk() { # mk BUNDLE ARGS_JSON
  mkdir -p "$1"
  (cd "$1" && "$berth" runtime spec)
  python3 - "$1" "$2" "$dir/rootfs" <<'PY'
import json, os, sys
bundle, args, rootfs = sys.argv[1:]
p = os.path.join(bundle, "config.json")
c = json.load(open(p))
c["process"]["args"] = json.loads(args)
c["linux"]["cgroupsPath"] = "berth-bench/" + os.path.basename(bundle)
c["root"]["path"] = rootfs
json.dump(c, open(p, "w"))
PY
}
for rt in b r; do
  mk "$dir/true-$rt" '["true"]'
  mk "$dir/sleep-$rt" '["sleep","100000"]'
done
B="$berth runtime --root $dir/sb"
R="runc --root $dir/sr"
median() { python3 -c "import json;r=json.load(open('$1'))['results'];print(' '.join('%.1f'%(x['median']*1000) for x in r))"; }
h() { hyperfine -N -w 3 -r "$runs" "$@" >"$dir/hf.log" 2>&1 || { cat "$dir/hf.log" >&2; exit 1; }; }
h --export-json "$dir/run.json" "$B run -b $dir/true-b c" "$R run -b $dir/true-r c"
echo "run $(median "$dir/run.json")"
h --export-json "$dir/create.json" \
  --prepare "sh -c '$B delete --force c; $R delete --force c; true'" \
  "$B create -b $dir/true-b c" "$R create -b $dir/true-r c"
echo "create $(median "$dir/create.json")"
h --export-json "$dir/start.json" \
  -n berth --prepare "sh -c '$B delete --force c; $B create -b $dir/true-b c'" "$B start c" \
  -n runc --prepare "sh -c '$R delete --force c; $R create -b $dir/true-r c'" "$R start c"
echo "start $(median "$dir/start.json")"
h --export-json "$dir/delete.json" \
  -n berth --prepare "sh -c '$B delete --force c; $B create -b $dir/true-b c && $B start c && until $B state c | grep -q stopped; do sleep 0.005; done'" "$B delete c" \
  -n runc --prepare "sh -c '$R delete --force c; $R create -b $dir/true-r c && $R start c && until $R state c | grep -q stopped; do sleep 0.005; done'" "$R delete c"
echo "delete $(median "$dir/delete.json")"
$B run -d -b "$dir/sleep-b" e
$R run -d -b "$dir/sleep-r" e
h --export-json "$dir/exec.json" "$B exec e true" "$R exec e true"
echo "exec $(median "$dir/exec.json")"
