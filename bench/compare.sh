#!/usr/bin/env bash
# Compares raftfs with etcd and ZooKeeper on this machine and writes BENCHMARKS.md,
# bench/results.json and bench/plots/ (see `raftfs bench compare --help`).
#
#   bash bench/compare.sh                  # every system and case, 8 s each
#   bash bench/compare.sh --duration 30    # extra arguments go to `raftfs bench compare`
#
# Installs Debian's etcd, ZooKeeper, protoc and protobuf's .proto files (the etcd client's build
# needs both) if missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

missing=()
command -v etcd >/dev/null || missing+=(etcd-server)
command -v etcdctl >/dev/null || missing+=(etcd-client)
[ -e /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
command -v protoc >/dev/null || missing+=(protobuf-compiler)
# The etcd client's protos import protobuf's well-known types (only recommended by protoc).
[ -e /usr/include/google/protobuf/descriptor.proto ] || missing+=(libprotobuf-dev)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "compare.sh: installing ${missing[*]}" >&2
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update
    # ZooKeeper's server runs on Java; Debian's zookeeper package pulls in a runtime.
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends \
        "${missing[@]}"
fi

cargo build --release -p raftfs --features compare
target="${CARGO_TARGET_DIR:-target}"
exec "$target/release/raftfs" bench compare --out BENCHMARKS.md "$@"
