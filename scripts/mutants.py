#!/usr/bin/env python3
"""The mutation check: proves the simulator's checks bite.

Each mutant breaks one rule on purpose (a trap of the design's list, or a bug the simulator
once missed) by replacing one exact snippet of production code. For each, the script copies
the tree, applies the mutant, builds the simulator, and runs a campaign of at most 2,000
seeds; a mutant is *caught* if some seed fails. It prints a table: mutant, the check that
caught it, and after how many seeds (first failing seed + 1), and exits non-zero if any
mutant survives or no longer applies (its snippet is gone: update the mutant with the code).

    python3 scripts/mutants.py            # every mutant
    python3 scripts/mutants.py NAME ...   # some of them
    python3 scripts/mutants.py --list

The build uses the `sim` cargo profile (release speed, debug assertions on) when the
workspace defines it, else `release`. Builds share one target directory (`target/mutants`,
or `$MUTANTS_TARGET_DIR`; never the tree's own, whose artifacts a mutant build would
replace), so the dependencies build once; the workspace's crates rebuild for every mutant.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass


@dataclass
class Mutant:
    name: str
    rule: str
    path: str
    find: str
    replace: str
    profile: str = "mixed"
    seeds: int = 2000
    # "sim": a campaign of `seeds` seeds; "raft": the core's own tests (`cargo test -p raft`),
    # for a rule the rest of the system masks, so that no client-visible run can show it;
    # "server": one of the raftfs integration tests (crates/raftfs/tests) (`test`), for the real transport;
    # "wal": the log's own tests (`cargo test -p wal`), for the on-disk format;
    # "fs": the file store's own tests (`cargo test -p fs`);
    # "server-unit": the server crate's own tests (`cargo test -p server --lib`).
    runner: str = "sim"
    test: str = ""


MUTANTS = [
    Mutant(
        "peer-certificate-not-checked",
        "a peer's certificate must prove the member id its hello claims",
        "crates/server/src/transport.rs",
        "tls.check_member(stream.get_ref(), hello.from)?;",
        "let _ = tls.check_member(stream.get_ref(), hello.from);",
        runner="server",
        test="peer_auth",
    ),
    Mutant(
        "peer-cluster-not-checked",
        "a peer's hello must name this node's cluster",
        "crates/server/src/transport.rs",
        "if hello.cluster != self.identity.cluster {",
        "if false {",
        runner="server",
        test="peer_auth",
    ),
    Mutant(
        "idle-while-in-flight",
        "a connection is idle only with nothing in flight: a command waiting for the cluster keeps it",
        "crates/server/src/connection.rs",
        "if idle && quiet_until <= now {",
        "if quiet_until <= now {",
        runner="server",
        test="budgets",
    ),
    Mutant(
        "shared-client-budget-ignored",
        "all connections together hold at most the shared budget plus one command and one reply each",
        "crates/server/src/connection.rs",
        "unsent == 0 || !self.budget.is_full()",
        "unsent == 0 || !self.budget.is_full() || true",
        runner="server",
        test="budgets",
    ),
    Mutant(
        "status-waits-on-a-stuck-node",
        "the status server answers in bounded time while the node is stuck (on its disk)",
        "crates/server/src/status.rs",
        "tokio::time::timeout(NODE_ANSWER_TIMEOUT, async {",
        "tokio::time::timeout(Duration::from_secs(3600), async {",
        runner="server",
        test="disk_failure",
    ),
    Mutant(
        "inline-never-backs-off",
        "a follower whose inline log batch was slow hands its writes to the log's thread for a while",
        "crates/server/src/node/storage.rs",
        "self.backoff_until = Some(Instant::now() + INLINE_BACKOFF);",
        "self.backoff_until = None;",
        runner="server",
        test="disk_failure",
    ),
    Mutant(
        "partial-append-keeps-its-frame",
        "a follower that keeps only part of an append copies the entries it keeps out of the frame",
        "crates/raft/src/node/follower.rs",
        "new.iter_mut().for_each(Entry::detach);",
        "new.iter_mut().for_each(|_| ());",
        runner="raft",
    ),
    Mutant(
        "store-keeps-a-command-slice",
        "the store keeps its own copy of a new file's name, not a slice of the logged command",
        "crates/fs/src/store.rs",
        "btree_map::Entry::Vacant(_) => self.insert(name.detached(), file),",
        "btree_map::Entry::Vacant(_) => self.insert(name.clone(), file),",
        runner="fs",
    ),
    Mutant(
        "replies-out-of-read-order",
        "a connection's replies are taken in the order its commands were read, whatever order the node answers in",
        "crates/server/src/mailbox.rs",
        "let reply = state.places.front_mut()?.take()?;",
        "let reply = state.places.back_mut()?.take()?;",
        runner="server-unit",
    ),
    Mutant(
        "figure-8-commit-rule",
        "commit counts only entries of the leader's own term (Raft figure 8)",
        "crates/raft/src/node/leader.rs",
        "if index <= self.commit || self.log.term(index) != Some(self.term) {",
        "if index <= self.commit {",
        profile="figure8",
    ),
    Mutant(
        "commit-without-own-durable-write",
        "a leader counts its own entry only once its disk acknowledged it",
        "crates/raft/src/node/leader.rs",
        "matched.push(self.durable);",
        "matched.push(self.log.last_index());",
        profile="crashes",
    ),
    Mutant(
        "read-index-before-own-term-commit",
        "ReadIndex waits until the leader committed an entry of its term",
        "crates/raft/src/node/leader.rs",
        "if self.log.term(self.commit) != Some(self.term) {\n            self.reads.defer(origin);",
        "if false {\n            self.reads.defer(origin);",
        # Masked at the system level: the driver's read barrier (the log's last index when the
        # read arrives) already covers the new leader's no-op.
        runner="raft",
    ),
    Mutant(
        "follower-commits-past-match",
        "a follower commits only what it knows matches the leader",
        "crates/raft/src/node/follower.rs",
        "self.commit_to(req.leader_commit.min(self.leader_match));",
        "self.commit_to(req.leader_commit.min(self.log.last_index()));",
        # Not reachable with the core's exact conflict hints (a follower drops stale entries
        # in the message that shows them): 0 of 2,000 seeds in mixed, five-nodes, partitions
        # and figure8 fail. The core's tests hold the rule.
        runner="raft",
    ),
    Mutant(
        "truncate-on-shorter-append",
        "a follower truncates only at a real conflict, never for a shorter AppendEntries",
        "crates/raft/src/node/follower.rs",
        "let fresh = req\n            .entries\n            .iter()\n            .position(|e| !self.log.matches(e.index, e.term));",
        "let fresh = if self.log.last_index() > last_new && !req.entries.is_empty() {\n"
        "            Some(0)\n        } else {\n            req.entries.iter().position(|e| !self.log.matches(e.index, e.term))\n        };",
        profile="chaos",
    ),
    Mutant(
        "send-before-state-durable",
        "term and vote are durable before any message that depends on them leaves",
        "crates/raft/src/node.rs",
        "    fn send_gated(&mut self, action: Action) {\n        if self.is_state_durable() {",
        "    fn send_gated(&mut self, action: Action) {\n        if true {",
        profile="crashes",
    ),
    Mutant(
        "snapshot-rolls-back",
        "a snapshot never rolls a node back (core and driver both refuse an older one)",
        "crates/raft/src/node/snapshot.rs",
        "if req.index <= self.commit {",
        "if req.index < LogIndex(0) {",
    ),
    Mutant(
        "driver-skips-read-index",
        "a leader serves a read only after ReadIndex confirms it still leads (no stale reads from a deposed leader)",
        "crates/replica/src/lib.rs",
        "let id = self.book.read(name, request.token, barrier);\n"
        "                    found |= self.step(now, Event::ReadIndex(id), out);",
        "let id = self.book.read(name, request.token, barrier);\n"
        "                    if self.core.role() == raft::Role::Leader {\n"
        "                        self.book.read_ready(id, self.core.commit_index());\n"
        "                    } else {\n"
        "                        found |= self.step(now, Event::ReadIndex(id), out);\n"
        "                    }",
        profile="partitions",
    ),
    Mutant(
        "driver-drops-read-barrier",
        "a pipelined read sees the same connection's earlier writes",
        "crates/replica/src/book.rs",
        "let wait = index.max(read.barrier);",
        "let wait = index;",
    ),
    Mutant(
        "compaction-before-snapshot-durable",
        "the log behind a snapshot goes only once the snapshot is durable",
        "crates/replica/src/snapshot.rs",
        "        self.snapshots.started(self.applied);\n",
        "        self.snapshots.started(self.applied);\n"
        "        out.push(Output::LogDiscard { upto: self.applied });\n",
        profile="crashes",
    ),
    Mutant(
        "expiry-clock-goes-back",
        "the replicated clock never goes back: a command's effective clock is max(stamp, last clock applied)",
        "crates/fs/src/store.rs",
        "        clock_ms.max(self.clock_ms)\n",
        "        clock_ms\n",
        # A new leader whose clock is behind, before it has applied its predecessor's last
        # entries, stamps lower than they were. A file is purged once its time is up, so none
        # comes back; the read after the lower stamp reports more EXPTIME left than the file
        # was written with. 16 of 1,000 crashes seeds fail, the first at seed 0.
        profile="crashes",
    ),
    Mutant(
        "reads-judged-by-member-clock",
        "a read served outside the log is judged at the last clock applied, not the serving member's wall clock",
        "crates/replica/src/lib.rs",
        "            self.book\n"
        "                .serve_reads(self.applied, &self.store, &mut self.answers);",
        # The store as this member's wall clock judges it: its clock set to the wall reading
        # (restore refuses that when a file has expired by it; ticking forward then does it).
        "            let mut bytes = self.store.snapshot();\n"
        "            bytes[20..28].copy_from_slice(&now.wall_ms.to_le_bytes());\n"
        "            let judged = Store::restore(&bytes).unwrap_or_else(|_| {\n"
        "                let mut store = self.store.clone();\n"
        "                store.tick(now.wall_ms);\n"
        "                store\n"
        "            });\n"
        "            self.book.serve_reads(self.applied, &judged, &mut self.answers);",
        # A leader whose clock is behind the replicated clock reports more EXPTIME left than
        # the file was written with: about 40% of mixed seeds fail, the first at seed 0.
    ),
    Mutant(
        "install-keeps-the-old-store",
        "installing a snapshot replaces the store with the snapshot's",
        "crates/replica/src/snapshot.rs",
        "        self.store = store;\n        self.applied = index;",
        "        let _ = store;\n        self.applied = index;",
    ),
    Mutant(
        "lease-outlives-stickiness",
        "a lease ends before any follower that acknowledged it could vote for another leader",
        "crates/raft/src/config.rs",
        "self.election_timeout_ms - self.election_timeout_ms / LEASE_MARGIN_DIVISOR",
        "self.election_timeout_ms * 4",
        # An isolated leader serves lease reads after the others elected a successor that
        # committed writes: a stale read, which the linearizability check sees.
        profile="partitions",
    ),
    Mutant(
        "restarted-voter-votes-at-once",
        "with lease reads, a voter grants no vote for an election timeout after it starts",
        "crates/raft/src/node.rs",
        "self.config.lease_reads && self.now.since(self.started_at) < self.config.election_timeout_ms",
        "false",
        # Needs a majority of followers restarted within one lease while the leader serves
        # lease reads: the core's tests hold the rule.
        runner="raft",
    ),
    Mutant(
        "membership-change-before-commit-in-term",
        "a leader changes the configuration only after it committed an entry of its term",
        "crates/raft/src/node/leader.rs",
        "if self.log.term(self.commit) != Some(self.term) {\n            return Err(ChangeError::NotReady);",
        "if false {\n            return Err(ChangeError::NotReady);",
        # The simulator keeps at most one node out of the voters, so every two of its
        # configurations have intersecting majorities whatever the order: the core's tests
        # hold the rule.
        runner="raft",
    ),
    Mutant(
        "two-membership-changes-in-flight",
        "one membership change in flight at a time",
        "crates/raft/src/node/leader.rs",
        "if let Some(index) = self.log.change_after(self.commit) {",
        "if let Some(index) = None::<LogIndex> {",
        runner="raft",
    ),
    Mutant(
        "prevote-grant-defers-nothing",
        "granting a pre-vote restarts the voter's election timer, as granting a vote does",
        "crates/raft/src/node.rs",
        "        self.election_deadline = self.timer.deadline(self.now);\n        if req.prevote\n",
        "        if !req.prevote {\n            self.election_deadline = self.timer.deadline(self.now);\n        }\n        if req.prevote\n",
        # Liveness only (a split vote costs one more election timeout): no safety check can
        # see it. The core's tests hold the rule.
        runner="raft",
    ),
    Mutant(
        "pre-candidates-never-yield",
        "of two pre-candidates polling at once, the lower-ranked stands down",
        "crates/raft/src/node.rs",
        "            && self.yields_to(from, &req)\n        {",
        "            && self.yields_to(from, &req)\n            && false\n        {",
        # Liveness only, like the rule above.
        runner="raft",
    ),
    Mutant(
        "read-round-never-widened",
        "a ReadIndex round sent to only some voters goes to all if a majority does not answer in time",
        "crates/raft/src/node/leader.rs",
        "self.read_fallback = Some((round, self.now.after(wait)));",
        "let _ = wait;",
        # Liveness only, and a stalled round is still confirmed by the next periodic heartbeat:
        # no safety check can see it. The core's tests hold the rule.
        runner="raft",
    ),
    Mutant(
        "zero-tail-is-damage",
        "a segment's preallocated zeros are the clean end of its records, not a torn tail",
        "crates/wal/src/segment.rs",
        "rest.iter().all(|&b| b == 0)",
        "rest.is_empty() && !rest.is_empty()",
        runner="wal",
    ),
    Mutant(
        "torn-tail-read-as-zeros",
        "only bytes that are all zeros to the end of the file are the clean end; a torn record is cut",
        "crates/wal/src/segment.rs",
        "rest.iter().all(|&b| b == 0)",
        "!rest.is_empty() || rest.is_empty()",
        runner="wal",
    ),
]

# The driver's own guard against old snapshots, removed together with the core's.
COMPANIONS = {
    "snapshot-rolls-back": [
        (
            "crates/replica/src/transfer.rs",
            "if offer.index <= applied {",
            "if offer.index < LogIndex(0) {",
        )
    ],
}

FAILED_LINE = re.compile(r"FAILED seed (\d+) \(profile [\w-]+\) at [^:]*: ([^:]+):")


def root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def copy_tree(src, dst):
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=src,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\n")
    for f in files:
        if not f or not os.path.exists(os.path.join(src, f)):
            continue
        os.makedirs(os.path.dirname(os.path.join(dst, f)) or dst, exist_ok=True)
        # A plain copy, stamped now: cargo names a workspace crate's artifacts by its path
        # within the workspace, the same in every copy, and judges them fresh by the sources'
        # times. Copied with their old times, a crate the last mutant broke (and this one
        # leaves alone) would look built already, and this mutant would run with both.
        shutil.copy(os.path.join(src, f), os.path.join(dst, f))


def apply(tree, path, find, replace):
    full = os.path.join(tree, path)
    with open(full) as f:
        text = f.read()
    count = text.count(find)
    if count != 1:
        return f"snippet found {count} times in {path}"
    with open(full, "w") as f:
        f.write(text.replace(find, replace))
    return None


def cargo_profile(repo):
    with open(os.path.join(repo, "Cargo.toml")) as f:
        return "sim" if "[profile.sim]" in f.read() else "release"


def cargo_tests(selection, tree, env, label, after):
    """Runs `cargo test SELECTION` in the mutated tree: caught if any test (or the build) fails."""
    test = subprocess.run(
        ["cargo", "test", "--quiet", *selection],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    failed = re.findall(r"^---- (\S+) stdout ----", test.stdout, re.M)
    if test.returncode == 0:
        return ("survived", f"cargo test {' '.join(selection)} passed", None)
    return ("caught", f"{label} {failed[0] if failed else '(build)'}", after)


def run(m, repo, target):
    with tempfile.TemporaryDirectory(prefix="raftfs-mutant-") as tree:
        copy_tree(repo, tree)
        for path, find, replace in [(m.path, m.find, m.replace)] + COMPANIONS.get(m.name, []):
            problem = apply(tree, path, find, replace)
            if problem:
                return ("does not apply", problem, None)
        profile = cargo_profile(repo)
        env = dict(os.environ, CARGO_TARGET_DIR=target)
        if m.runner == "server":
            return cargo_tests(["-p", "raftfs", "--test", m.test], tree, env, "server test", "test")
        if m.runner == "raft":
            return cargo_tests(["-p", "raft"], tree, env, "raft test", "unit")
        if m.runner == "wal":
            return cargo_tests(["-p", "wal"], tree, env, "wal test", "unit")
        if m.runner == "fs":
            return cargo_tests(["-p", "fs"], tree, env, "fs test", "unit")
        if m.runner == "server-unit":
            return cargo_tests(["-p", "server", "--lib"], tree, env, "server unit test", "unit")
        build = subprocess.run(
            ["cargo", "build", "--quiet", "--profile", profile, "-p", "sim"],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
        )
        if build.returncode != 0:
            return ("does not build", build.stderr[-2000:], None)
        sim = os.path.join(target, profile, "sim")
        out = subprocess.run(
            [sim, "--seeds", str(m.seeds), "--profile", m.profile],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
        )
        text = out.stdout + out.stderr
        fails = [(int(s), c.strip()) for s, c in FAILED_LINE.findall(text)]
        if not fails:
            return ("survived", f"{m.seeds} seeds of {m.profile} passed", None)
        seed, check = min(fails)
        return ("caught", check, seed + 1)


def main(argv):
    if "--list" in argv:
        for m in MUTANTS:
            print(f"{m.name:36} {m.rule}")
        return 0
    chosen = [m for m in MUTANTS if not argv or m.name in argv]
    unknown = set(argv) - {m.name for m in MUTANTS}
    if unknown:
        print(f"unknown mutants: {sorted(unknown)}", file=sys.stderr)
        return 2
    repo = root()
    # MUTANTS_TARGET_DIR puts the builds elsewhere (a directory for mutants only).
    target = os.environ.get("MUTANTS_TARGET_DIR") or os.path.join(repo, "target", "mutants")
    print("| mutant | rule it breaks | campaign | caught by | after seeds |")
    print("|---|---|---|---|---|")
    bad = 0
    for m in chosen:
        verdict, detail, after = run(m, repo, target)
        where = {"sim": m.profile, "raft": "core tests", "wal": "log tests", "fs": "store tests", "server-unit": "server unit tests"}.get(
            m.runner, f"server test {m.test}"
        )
        if verdict == "caught":
            print(f"| {m.name} | {m.rule} | {where} | {detail} | {after} |", flush=True)
        else:
            bad += 1
            print(f"| {m.name} | {m.rule} | {where} | **{verdict}**: {detail} | - |", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
