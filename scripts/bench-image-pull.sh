#!/bin/sh
# bench-image-pull.sh: pull a ~100 MB, 5-layer image from a loopback
# docker-registry with berth vs `skopeo copy` to an OCI directory, and unpack
# it with berth vs `umoci unpack`. Needs root, docker-registry, skopeo, umoci,
# hyperfine, python3. Usage: scripts/bench-image-pull.sh [path/to/berth]
set -eu
berth=${1:-${CARGO_TARGET_DIR:-target}/release/berth}
berth=$(realpath "$berth")
# BENCH_DIR=/dev/shm takes the disk out of the measurement.
work=$(mktemp -d "${BENCH_DIR:-/tmp}/berth-bench-pull.XXXXXX")
reg_pid=
cleanup() {
  [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
reg_pid=$!

# Five gzip layers cut from the host's /usr (real files, real compression
# ratios), written as an OCI layout.
sh /work/shared/bench/busybox-rootfs.sh "$work/busybox" >/dev/null
python3 - "$work" <<'EOF'
import gzip, hashlib, io, json, os, sys, tarfile
work = sys.argv[1]
out = os.path.join(work, "layout")
blobs = os.path.join(out, "blobs", "sha256")
os.makedirs(blobs)
def put(data):
    d = hashlib.sha256(data).hexdigest()
    open(os.path.join(blobs, d), "wb").write(data)
    return "sha256:" + d
layers = [
    [(os.path.join(work, "busybox"), "."), ("/usr/lib/python3.11", "usr/lib/python3.11")],
    [("/usr/libexec", "usr/libexec")],
    [("/usr/lib/python3", "usr/lib/python3")],
    [("/usr/share/perl", "usr/share/perl")],
    [("/usr/lib/gcc", "usr/lib/gcc")],
]
diff_ids, descs, raw_total = [], [], 0
for parts in layers:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for src, arc in parts:
            if os.path.exists(src):
                t.add(src, arcname=arc)
    raw = raw.getvalue()
    raw_total += len(raw)
    diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
    gz = gzip.compress(raw, compresslevel=6, mtime=0)
    descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                  "digest": put(gz), "size": len(gz)})
cfg = json.dumps({"architecture": "amd64", "os": "linux",
                  "config": {"Cmd": ["sh"]},
                  "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
man = json.dumps({"schemaVersion": 2,
                  "mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                             "digest": put(cfg), "size": len(cfg)},
                  "layers": descs}).encode()
md = put(man)
json.dump({"schemaVersion": 2, "manifests": [{
    "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md,
    "size": len(man), "annotations": {"org.opencontainers.image.ref.name": "big"}}]},
    open(os.path.join(out, "index.json"), "w"))
open(os.path.join(out, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
total = sum(d["size"] for d in descs)
print("image: %d layers, %.1f MB compressed, %.1f MB uncompressed" % (
    len(descs), total / 1e6, raw_total / 1e6))
for d in descs:
    print("  layer %s %.1f MB" % (d["digest"][7:19], d["size"] / 1e6))
EOF
skopeo copy --quiet --dest-tls-verify=false --preserve-digests \
  "oci:$work/layout:big" "docker://127.0.0.1:$port/bench/big:1"
ref=127.0.0.1:$port/bench/big:1
export BERTH_REGISTRIES_CONFIG=$work/none.json DOCKER_CONFIG=$work/docker

echo "== pull: berth (download+verify, and with unpack) vs skopeo copy (download+verify)"
hyperfine --warmup 1 --runs 5 \
  --prepare "rm -rf $work/berth-root $work/skopeo-oci" \
  -n "berth image pull --download-only" "BERTH_ROOT=$work/berth-root $berth image pull -q --download-only $ref" \
  -n "berth image pull" "BERTH_ROOT=$work/berth-root $berth image pull -q $ref" \
  -n "skopeo copy docker:// oci:" "skopeo copy --quiet --src-tls-verify=false docker://$ref oci:$work/skopeo-oci:big"

echo "== unpack: berth (blobs present, layers removed) vs umoci unpack"
BERTH_ROOT=$work/berth-root "$berth" image pull -q "$ref" >/dev/null
skopeo copy --quiet --src-tls-verify=false "docker://$ref" "oci:$work/umoci-oci:big"
hyperfine --warmup 1 --runs 5 \
  --prepare "rm -rf $work/berth-root/images/layers $work/bundle" \
  -n "berth unpack (5 layers)" "BERTH_ROOT=$work/berth-root $berth image pull -q $ref" \
  -n "umoci unpack" "umoci unpack --image $work/umoci-oci:big $work/bundle"
