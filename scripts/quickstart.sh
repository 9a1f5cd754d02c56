#!/usr/bin/env bash
# Walks the README's quick start as a new user would: clones the repository into a temporary
# directory, runs the quick-start commands there as the README gives them (the code blocks after
# its `<!-- quickstart: NAME -->` markers), builds, starts `raftfs serve`, plays the README's
# telnet session over TCP and compares every reply, starts `raftfs cluster`, checks that a write
# sent to a follower gets ERR_REDIRECT naming the leader (and that the leader takes it), and
# stops everything with Ctrl-C (SIGINT to each command's process group), checking that each
# exits 0 and leaves no member behind. crates/raftfs/tests/readme.rs does the same against the
# already built binary on every `cargo test --workspace`.
#
# Usage: scripts/quickstart.sh [REPOSITORY]     (default: this checkout's committed HEAD)
#
# Environment:
#   QUICKSTART_BASE_PORT  client port of the single node and of the cluster's first member
#                         (default 8080, the README's; another value adds --listen and
#                         --base-port to the README's commands). The cluster also takes the
#                         4 ports after it, and those 1000 above (peers) and 1000 below (status).
#   QUICKSTART_TIMEOUT    seconds to wait for a build, a start or a stop (default 1800: the first
#                         release build takes a while).
#   QUICKSTART_KEEP=1     keep the temporary directory (logs, data) for a look afterwards.
#   CARGO_TARGET_DIR      honoured as cargo honours it (a warm target directory saves the build).
#
# The README's test command, `cargo test --workspace`, is not run (it takes many minutes); it is
# printed for completeness.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
repo=${1:-$here}
base=${QUICKSTART_BASE_PORT:-8080}
timeout_s=${QUICKSTART_TIMEOUT:-1800}
work=$(mktemp -d "${TMPDIR:-/tmp}/raftfs-quickstart.XXXXXX")
groups=()

cleanup() {
  local status=$?
  for group in "${groups[@]}"; do
    kill -KILL -- "-$group" 2>/dev/null || true
  done
  if [[ ${QUICKSTART_KEEP:-} == 1 ]]; then
    echo "quickstart: kept $work"
  else
    rm -rf "$work"
  fi
  if [[ $status -eq 0 ]]; then
    echo "quickstart: OK"
  else
    echo "quickstart: FAILED (exit $status); QUICKSTART_KEEP=1 keeps the logs" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step() { printf '\n== %s\n' "$*"; }

# The helper that reads the README's blocks, waits for log lines and plays telnet sessions.
cat >"$work/quickstart.py" <<'PY'
import os, socket, sys, time

TELNET_CHATTER = ("Connected to ", "Escape character is ")
VERBS = ("read", "write", "cas", "delete")

def block(name):
    lines = open("README.md").read().split("\n")
    marker = "<!-- quickstart:"
    for i, line in enumerate(lines):
        s = line.strip()
        if s.startswith(marker) and s.endswith("-->") and s[len(marker):-3].strip() == name:
            out, j = [], i + 1
            if j < len(lines) and lines[j].startswith("```"):
                j += 1
                while j < len(lines) and not lines[j].startswith("```"):
                    out.append(lines[j]); j += 1
            else:
                while j < len(lines) and lines[j].startswith("    "):
                    out.append(lines[j][4:]); j += 1
            if not out:
                sys.exit(f"README.md: the quickstart block {name} is empty")
            return out
    sys.exit(f"README.md has no quickstart block {name}")

def session(name):
    """(host, port, [(send bytes, expected reply bytes)]) of a telnet session block."""
    lines = block(name)
    first = lines[0].split()
    if len(first) != 4 or first[:2] != ["$", "telnet"]:
        sys.exit(f"{name}: a session starts with `$ telnet HOST PORT`")
    rest = iter(l for l in lines[1:] if not l.startswith(TELNET_CHATTER))
    exchanges = []
    for line in rest:
        verb = (line.split() or [""])[0]
        if verb in VERBS:
            send = line + "\r\n"
            if verb in ("write", "cas"):
                send += next(rest) + "\r\n"
            exchanges.append([send.encode(), b""])
        else:
            exchanges[-1][1] += (line + "\r\n").encode()
            if line.startswith("CONTENTS "):
                exchanges[-1][1] += (next(rest) + "\r\n").encode()
    return first[2], int(first[3]), exchanges

def recv_exactly(sock, n):
    got = b""
    while len(got) < n:
        chunk = sock.recv(n - len(got))
        if not chunk:
            break
        got += chunk
    return got

def reply_line(addr, send):
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(send)
        got = b""
        while not got.endswith(b"\r\n"):
            chunk = sock.recv(1)
            if not chunk:
                break
            got += chunk
        return got.decode().strip()

def alive(pid):
    """Whether `pid` runs (an exited child not yet reaped is a zombie: not running)."""
    try:
        with open(f"/proc/{int(pid)}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False

def cmd_alive(pid):
    sys.exit(0 if alive(pid) else 1)

def cmd_block(name):
    print("\n".join(block(name)))

def cmd_wait(log, marker, count, timeout, pid):
    """Waits until `log` holds `count` lines with `marker` (or the process `pid` died)."""
    deadline = time.monotonic() + float(timeout)
    while True:
        with open(log, errors="replace") as f:
            seen = sum(marker in line for line in f)
        if seen >= int(count):
            return
        if not alive(pid):
            sys.exit(f"the process exited before it logged {marker!r} {count} times; see {log}")
        if time.monotonic() > deadline:
            sys.exit(f"no {count} lines {marker!r} in {log} within {timeout} s")
        time.sleep(0.1)  # polls the log file; the deadline above bounds the wait

def cmd_session(name, base):
    host, port, exchanges = session(name)
    port += int(base) - 8080
    with socket.create_connection((host, port), timeout=60) as sock:
        print(f"$ telnet {host} {port}")
        for send, expect in exchanges:
            sock.sendall(send)
            got = recv_exactly(sock, len(expect))
            sys.stdout.write(send.decode().replace("\r\n", "\n"))
            sys.stdout.write(got.decode(errors="replace").replace("\r\n", "\n"))
            if got != expect:
                sys.exit(f"expected {expect!r}, the server said {got!r}")

def cmd_redirect(name, base, nodes):
    host, port, exchanges = session(name)
    (send, expect), = exchanges
    shown = expect.decode().strip()
    if not shown.startswith("ERR_REDIRECT "):
        sys.exit(f"{name}: the README's follower should redirect, it shows {shown!r}")
    offset = int(base) - 8080
    clients = [f"127.0.0.1:{int(base) + i}" for i in range(int(nodes))]
    first = f"127.0.0.1:{port + offset}"
    targets = [first] + [c for c in clients if c != first]
    deadline = time.monotonic() + 60
    while True:
        # The README's member first; if it leads (the README allows that), another member.
        replies = {}
        for addr in targets:
            reply = reply_line(addr, send)
            replies[addr] = reply
            if reply.startswith("ERR_REDIRECT "):
                leader = reply.split()[1]
                print(f"$ telnet {addr.replace(':', ' ')}")
                print(send.decode().replace("\r\n", "\n") + reply)
                if leader not in clients or leader == addr:
                    sys.exit(f"{addr} redirects to {leader}, not to another member")
                taken = reply_line(leader, send)
                if not taken.startswith("OK "):
                    sys.exit(f"the leader {leader} answered {taken!r}")
                print(f"(the leader {leader} answers {taken})")
                return
            if not reply.startswith("OK "):
                break  # ERR_INTERNAL: no leader yet; the server waited for one already
            print(f"({addr} leads: it answered {reply}; the README allows that, so another member)")
        if time.monotonic() > deadline:
            sys.exit(f"no follower redirected within 60 s: {replies}")

def cmd_ports_free(base, nodes):
    busy = []
    for i in range(int(nodes)):
        for port in (int(base) + i, int(base) + i + 1000, int(base) + i - 1000):
            with socket.socket() as s:
                # As the server binds (tokio sets SO_REUSEADDR): connections in TIME_WAIT from
                # an earlier run do not hold a port, a listener does.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", port))
                    s.listen()
                except OSError:
                    busy.append(port)
    if busy:
        sys.exit(f"ports {busy} are in use: stop what holds them or set QUICKSTART_BASE_PORT")

def cmd_ports_closed(base, nodes):
    for i in range(int(nodes)):
        try:
            socket.create_connection(("127.0.0.1", int(base) + i), timeout=5).close()
        except OSError:
            continue
        sys.exit(f"something still serves on port {int(base) + i}")

globals()["cmd_" + sys.argv[1].replace("-", "_")](*sys.argv[2:])
PY
qs() { python3 "$work/quickstart.py" "$@"; }

# Starts a README command in a process group of its own (as a shell would start it in a
# terminal, where Ctrl-C reaches the whole group); sets $started to the group's id.
start() {
  local log=$1
  shift
  setsid bash -c 'exec "$@"' bash "$@" >"$log" 2>&1 </dev/null &
  started=$!
  groups+=("$started")
}

# Ctrl-C: SIGINT to the group; checks that its leader exits 0 in time.
interrupt() {
  local group=$1 deadline=$((SECONDS + 60)) status=0
  kill -INT -- "-$group"
  while qs alive "$group"; do
    if ((SECONDS > deadline)); then
      echo "quickstart: process group $group did not stop within 60 s of Ctrl-C" >&2
      return 1
    fi
    sleep 0.1
  done
  wait "$group" || status=$?
  if [[ $status -ne 0 ]]; then
    echo "quickstart: the command exited $status after Ctrl-C" >&2
    return 1
  fi
}

step "git clone $repo"
git clone --quiet "$repo" "$work/raftfs"
cd "$work/raftfs"
qs ports-free "$base" 5

build=$(qs block build)
step "$build"
# The README's command as it stands, one line of plain words.
read -r -a build_words <<<"$build"
timeout "$timeout_s" "${build_words[@]}"

serve=$(qs block serve)
read -r -a serve_words <<<"$serve"
if [[ $base != 8080 ]]; then
  serve_words+=(--listen "127.0.0.1:$base")
fi
step "${serve_words[*]}"
start "$work/serve.log" "${serve_words[@]}"
serve_group=$started
qs wait "$work/serve.log" "raftfs serving" 1 "$timeout_s" "$serve_group"
grep -m1 "raftfs serving" "$work/serve.log"

step "the telnet session"
qs session session "$base"

step "Ctrl-C"
interrupt "$serve_group"
test -d raftfs-data || { echo "quickstart: no ./raftfs-data after serve" >&2; exit 1; }

cluster=$(qs block cluster)
read -r -a cluster_words <<<"$cluster"
if [[ $base != 8080 ]]; then
  cluster_words+=(--base-port "$base")
fi
step "${cluster_words[*]}"
start "$work/cluster.log" "${cluster_words[@]}"
cluster_group=$started
qs wait "$work/cluster.log" "raftfs serving" 5 "$timeout_s" "$cluster_group"
grep "^  member " "$work/cluster.log" || true

step "a write to a follower"
qs redirect redirect "$base" 5

step "Ctrl-C"
interrupt "$cluster_group"
qs ports-closed "$base" 5

step "and the tests: $(qs block test) (not run here; see crates/raftfs/tests/readme.rs)"
