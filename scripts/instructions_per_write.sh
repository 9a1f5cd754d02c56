#!/usr/bin/env bash
# User-space instructions per write of a single-node store, counted by valgrind's callgrind:
# a figure that, unlike CPU seconds on a shared machine, repeats from run to run.
#
# Usage: scripts/instructions_per_write.sh [-b BIN] [-p PORT] [-n OPS] [-c CONNS] [-m MODE] [-o OUT]
#   BIN    the raftfs binary (default: $CARGO_TARGET_DIR/release/raftfs, else target/release)
#   PORT   the store's client port (default 26500)
#   OPS    operations counted (default 20000), after 2000 uncounted writes that create the files
#   CONNS  bench connections (default 16)
#   MODE   write (default) or read: linearizable reads, per read (the counted run includes
#          `raftfs bench read`'s prefill of its 1,000 files: keep OPS large against that)
#   OUT    keep the callgrind profile here (default: removed); read it with callgrind_annotate
#
# Starts `BIN serve` under callgrind with collection off, loads it with `BIN bench write`,
# switches collection on for exactly OPS operations of MODE, and prints:
#   bin mode ops instructions instructions_per_op
# Kernel work (sockets, fsync) is not counted: this measures the code in user space only.
# Needs valgrind (Debian: apt-get install valgrind).
set -euo pipefail

BIN="${CARGO_TARGET_DIR:-target}/release/raftfs"
PORT=26500
OPS=20000
CONNS=16
MODE=write
OUT=""
while getopts "b:p:n:c:m:o:" opt; do
    case "$opt" in
        b) BIN="$OPTARG" ;;
        p) PORT="$OPTARG" ;;
        n) OPS="$OPTARG" ;;
        c) CONNS="$OPTARG" ;;
        m) MODE="$OPTARG" ;;
        o) OUT="$OPTARG" ;;
        *) sed -n 2,17p "$0"; exit 2 ;;
    esac
done
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }

DIR=$(mktemp -d "${TMPDIR:-/tmp}/raftfs-ir.XXXXXX")
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$DIR/cg.out" \
    "$BIN" serve --listen "127.0.0.1:$PORT" --http "127.0.0.1:$((PORT + 1))" \
    --data-dir "$DIR/data" --worker-threads 1 >"$DIR/serve.log" 2>&1 &
SERVER=$!
cleanup() {
    kill -INT "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT

# Under valgrind the server takes a while to start: wait for its health endpoint.
for _ in $(seq 1 120); do
    curl -sf "http://127.0.0.1:$((PORT + 1))/health" >/dev/null 2>&1 && break
    sleep 0.5
done
bench() { "$BIN" bench "$1" --endpoints "127.0.0.1:$PORT" -c "$CONNS" --warmup 0 -n "$2" >/dev/null; }
bench write 2000
callgrind_control -i on "$SERVER" >/dev/null 2>&1
bench "$MODE" "$OPS"
callgrind_control -i off "$SERVER" >/dev/null 2>&1
callgrind_control -d "$SERVER" >/dev/null 2>&1
PROFILE=$(ls "$DIR"/cg.out.* | head -1)
IR=$(callgrind_annotate "$PROFILE" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
[ -n "$OUT" ] && cp "$PROFILE" "$OUT"
echo "$BIN mode=$MODE ops=$OPS instructions=$IR per_op=$((IR / OPS))"
