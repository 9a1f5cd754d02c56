#!/usr/bin/env bash
# CPU per committed write of a local 5-member cluster, and its write throughput.
#
# Usage: scripts/cpu_per_write.sh [-b BIN] [-p BASE_PORT] [-s SECONDS] [-n NODES] [-m MODE] [-e VAR=VALUE]... [-k] CONNS...
#   BIN        the raftfs binary (default: $CARGO_TARGET_DIR/release/raftfs, else target/release)
#   MODE       the `raftfs bench` mode to load it with: write (default) or read (linearizable
#              reads; the figures are then per read)
#   BASE_PORT  the cluster's first client port (default 28080; peers +1000, status -1000)
#   CONNS      connection counts, one `raftfs bench MODE` run each (default: 1 64 256)
#   -e         an environment variable for the cluster's members only (not the bench client)
#   -k         keep the cluster's data directory (it is removed otherwise)
#
# Starts `BIN cluster` in a fresh data directory, waits for a leader, and for each connection
# count runs `BIN bench MODE` against it, reading utime+stime of every member process from
# /proc/PID/stat before and after. Prints one line per run (`reads` for `writes` in read mode):
#   bin conns writes writes/s member_cpu_s us_cpu_per_write leader_us_per_write
# (the bench client's own CPU is not counted). The cluster is stopped at the end.
set -euo pipefail

BIN="${CARGO_TARGET_DIR:-target}/release/raftfs"
BASE=28080
SECONDS_PER_RUN=8
NODES=5
MODE=write
KEEP=0
MEMBER_ENV=()
while getopts "b:p:s:n:m:e:k" opt; do
    case "$opt" in
        b) BIN="$OPTARG" ;;
        p) BASE="$OPTARG" ;;
        s) SECONDS_PER_RUN="$OPTARG" ;;
        n) NODES="$OPTARG" ;;
        m) MODE="$OPTARG" ;;
        e) MEMBER_ENV+=("$OPTARG") ;;
        k) KEEP=1 ;;
        *) sed -n 2,17p "$0"; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
CONNS=("$@")
[ ${#CONNS[@]} -eq 0 ] && CONNS=(1 64 256)

TICK=$(getconf CLK_TCK)
DIR=$(mktemp -d "${TMPDIR:-/tmp}/raftfs-cpu.XXXXXX")
env "${MEMBER_ENV[@]}" "$BIN" cluster --nodes "$NODES" --base-port "$BASE" --data-dir "$DIR" >"$DIR/cluster.out" 2>"$DIR/cluster.err" &
CLUSTER=$!
cleanup() {
    kill -INT "$CLUSTER" 2>/dev/null || true
    wait "$CLUSTER" 2>/dev/null || true
    [ "$KEEP" = 1 ] || rm -rf "$DIR"
}
trap cleanup EXIT

ADDRS=""
for i in $(seq 1 "$NODES"); do
    ADDRS="${ADDRS:+$ADDRS,}127.0.0.1:$((BASE + i - 1))"
done

# The members are the cluster process's children.
members() { pgrep -P "$CLUSTER" | tr '\n' ' '; }
# utime+stime (ticks) of the given pids, summed.
ticks() {
    local sum=0 pid fields
    for pid in "$@"; do
        # Fields after the command name (which may hold spaces): utime is 14, stime 15.
        fields=$(sed 's/^.*) //' "/proc/$pid/stat")
        set -- $fields
        sum=$((sum + ${12} + ${13}))
    done
    echo "$sum"
}

leader=""
for _ in $(seq 1 300); do
    for i in $(seq 1 "$NODES"); do
        role=$(curl -s --max-time 1 "http://127.0.0.1:$((BASE - 1000 + i - 1))/status" | jq -r .role 2>/dev/null || true)
        if [ "$role" = leader ]; then leader=$i; fi
    done
    [ -n "$leader" ] && break
    sleep 0.2
done
[ -n "$leader" ] || { echo "no leader" >&2; cat "$DIR/cluster.err" >&2; exit 1; }
PIDS=($(members))
[ ${#PIDS[@]} -eq "$NODES" ] || { echo "found ${#PIDS[@]} members, not $NODES" >&2; exit 1; }
# Member i's pid: the one whose command line says --id i.
LEADER_PID=""
for pid in "${PIDS[@]}"; do
    if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--id $leader "; then LEADER_PID=$pid; fi
done
# A short warm-up, so the first run does not pay for connection setup and page faults.
"$BIN" bench write --endpoints "$ADDRS" -c 16 -d 1 --warmup 0 >/dev/null

for c in "${CONNS[@]}"; do
    before=$(ticks "${PIDS[@]}")
    lbefore=$(ticks "$LEADER_PID")
    # No warm-up: the CPU window is the measured run.
    out=$("$BIN" bench "$MODE" --endpoints "$ADDRS" -c "$c" -d "$SECONDS_PER_RUN" --warmup 0 --json)
    after=$(ticks "${PIDS[@]}")
    lafter=$(ticks "$LEADER_PID")
    writes=$(echo "$out" | grep -m1 '^  "ops":' | tr -dc '0-9')
    rate=$(echo "$out" | grep -m1 '^  "ops_per_s":' | sed 's/[^0-9.]//g')
    awk -v b="$BIN" -v c="$c" -v w="$writes" -v r="$rate" -v t=$((after - before)) \
        -v l=$((lafter - lbefore)) -v hz="$TICK" -v m="$MODE" 'BEGIN {
        printf "%s conns=%d %ss=%d %ss/s=%.0f cpu_s=%.2f us/%s=%.1f leader_us/%s=%.1f\n",
            b, c, m, w, m, r, t / hz, m, t / hz * 1e6 / w, m, l / hz * 1e6 / w }'
done
