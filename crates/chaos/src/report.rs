//! The verdict of a run and its readable report.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fs::{Command, Reply};
use sim::history::{ClockBound, History, Outcome};
use sim::linearizability::{CheckResult, Violation};

use crate::cluster::Cluster;
use crate::nemesis::{Fault, FaultKind, Trouble};
use crate::status::Status;

/// Whether the members agreed at the end.
#[derive(Clone, Debug)]
pub enum Convergence {
    /// Every member applied the same index, all of it committed, with the same digest.
    Converged {
        /// The index.
        applied_index: u64,
        /// The store digest.
        digest: String,
        /// How long it took after the final reads.
        took: Duration,
    },
    /// The deadline passed first; the last statuses seen (`None`: no answer).
    Diverged(Vec<(usize, Option<Status>)>),
}

/// Polls every member's `/status` until all applied the same index (all of it committed) with
/// the same store digest, or `within` passes.
pub async fn converge(cluster: &Cluster, within: Duration) -> Convergence {
    let start = tokio::time::Instant::now();
    loop {
        let mut statuses = Vec::new();
        for id in cluster.ids() {
            statuses.push((id, cluster.status(id).await));
        }
        let first = statuses.first().and_then(|(_, s)| s.clone());
        if let Some(first) = first {
            let same = statuses.iter().all(|(_, s)| {
                s.as_ref().is_some_and(|s| {
                    s.applied_index == first.applied_index
                        && s.commit_index == s.applied_index
                        && s.store_digest.is_some()
                        && s.store_digest == first.store_digest
                })
            });
            if same {
                return Convergence::Converged {
                    applied_index: first.applied_index,
                    digest: first.store_digest.unwrap_or_default(),
                    took: start.elapsed(),
                };
            }
        }
        if start.elapsed() >= within {
            return Convergence::Diverged(statuses);
        }
        // Members report their state only when asked: poll.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The verdict: passed only if every check passed.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// What failed, one line each; empty when the run passed.
    pub failures: Vec<String>,
}

impl Verdict {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// What [`Report::new`] is made from.
pub struct Inputs<'a> {
    /// The seed.
    pub seed: u64,
    /// Faults were injected this long.
    pub duration: Duration,
    /// When the faults were over and healed.
    pub faults_end: Duration,
    /// Members.
    pub members: usize,
    /// Clients.
    pub clients: usize,
    /// The history, final reads included.
    pub history: &'a History,
    /// The clock bound given to the checker.
    pub bound: ClockBound,
    /// The faults.
    pub faults: &'a [Fault],
    /// Members that exited or failed to restart.
    pub trouble: &'a [Trouble],
    /// Protocol anomalies.
    pub anomalies: Vec<String>,
    /// Files whose final read never got a definite answer.
    pub unread: Vec<String>,
    /// Files used.
    pub files: usize,
    /// The leader after healing, if one was found.
    pub leader_after_heal: Option<usize>,
    /// Convergence.
    pub convergence: Convergence,
    /// The checker's answer.
    pub checked: Result<CheckResult, Violation>,
    /// How long the checker took.
    pub check_time: Duration,
    /// Peer connections from unknown addresses.
    pub strangers: u64,
    /// Why clock skew was skipped, if it was.
    pub skew_note: Option<String>,
    /// The run directory.
    pub dir: PathBuf,
}

/// Files whose final read (the last definite read, by the final reader, client 0) found an
/// older version than an acknowledged write or cas of that file: versions only grow, so that
/// write was lost. (A final `ERR_FILE_NOT_FOUND` may be a delete or an expiry; the checker
/// judges those.) Returns (file, acknowledged version, version read).
pub fn lost_writes(history: &History) -> Vec<(String, u64, u64)> {
    let mut acked: BTreeMap<String, u64> = BTreeMap::new();
    let mut last_read: BTreeMap<String, u64> = BTreeMap::new();
    for op in history.operations() {
        let file = op.command().name().as_str().to_owned();
        match (op.command(), op.outcome()) {
            (
                Command::Write { .. } | Command::Cas { .. },
                Outcome::Ok(Reply::Written { version }),
            ) => {
                let v = acked.entry(file).or_default();
                *v = (*v).max(*version);
            }
            (Command::Read { .. }, Outcome::Ok(Reply::Contents { version, .. }))
                if op.client() == 0 =>
            {
                last_read.insert(file, *version);
            }
            _ => {}
        }
    }
    last_read
        .into_iter()
        .filter_map(|(file, seen)| {
            let acked = acked.get(&file).copied()?;
            (acked > seen).then_some((file, acked, seen))
        })
        .collect()
}

/// Counts of operations of one kind, by outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpCounts {
    /// Definite successes (`CONTENTS`, `OK`).
    pub ok: u64,
    /// Definite refusals (`ERR_FILE_NOT_FOUND`, `ERR_VERSION`).
    pub failed: u64,
    /// Unknown: `ERR_INTERNAL`, timed out, or the connection died after the send.
    pub unknown: u64,
}

/// A finished run: what was done, what was found.
pub struct Report {
    /// The verdict.
    pub verdict: Verdict,
    /// Operations by kind (`read`, `write`, `cas`, `delete`) and outcome.
    pub ops: BTreeMap<&'static str, OpCounts>,
    /// Operations that carried an EXPTIME.
    pub expiring: u64,
    /// Faults by kind: how many injected (skipped ones not counted).
    pub faults_by_kind: BTreeMap<FaultKind, u64>,
    text: String,
}

impl Report {
    /// Judges the run and writes the report.
    pub fn new(inputs: Inputs<'_>) -> Report {
        let mut ops: BTreeMap<&'static str, OpCounts> = BTreeMap::new();
        let mut expiring = 0;
        for op in inputs.history.operations() {
            let (kind, exptime) = match op.command() {
                Command::Read { .. } => ("read", 0),
                Command::Write { exptime_s, .. } => ("write", *exptime_s),
                Command::Cas { exptime_s, .. } => ("cas", *exptime_s),
                Command::Delete { .. } => ("delete", 0),
            };
            if exptime > 0 {
                expiring += 1;
            }
            let counts = ops.entry(kind).or_default();
            match op.outcome() {
                Outcome::Ok(Reply::FileNotFound | Reply::VersionMismatch { .. }) => {
                    counts.failed += 1;
                }
                Outcome::Ok(_) => counts.ok += 1,
                Outcome::Unknown => counts.unknown += 1,
            }
        }
        let mut faults_by_kind = BTreeMap::new();
        for fault in inputs.faults.iter().filter(|f| !f.skipped) {
            *faults_by_kind.entry(fault.kind).or_insert(0) += 1;
        }

        let lost = lost_writes(inputs.history);
        let mut failures = Vec::new();
        for (file, acked, seen) in &lost {
            failures.push(format!(
                "acknowledged write lost: {file} was acknowledged at version {acked}, the final read found version {seen}"
            ));
        }
        match &inputs.checked {
            Ok(CheckResult::Linearizable(_)) => {}
            Ok(CheckResult::Inconclusive { file, .. }) => failures.push(format!(
                "the checker gave up on file {file} (too concurrent to decide within its budget)"
            )),
            // The first line names the file and what is wrong; the excerpt follows in the
            // checks above, once.
            Err(violation) => failures.push(
                violation
                    .to_string()
                    .lines()
                    .next()
                    .unwrap_or("not linearizable")
                    .to_owned(),
            ),
        }
        for file in &inputs.unread {
            failures.push(format!(
                "the final read of {file} never got a definite answer"
            ));
        }
        if let Convergence::Diverged(_) = inputs.convergence {
            failures.push("the members did not converge to one digest and index".into());
        }
        for trouble in inputs.trouble {
            failures.push(format!(
                "at {:.1} s: {}",
                trouble.at.as_secs_f64(),
                trouble.what
            ));
        }
        for anomaly in &inputs.anomalies {
            failures.push(format!("protocol: {anomaly}"));
        }
        if inputs.strangers > 0 {
            failures.push(format!(
                "{} peer connections came from no member's address (--peer-dial-from ignored?)",
                inputs.strangers
            ));
        }
        let verdict = Verdict { failures };
        let text = render(&inputs, &ops, expiring, &faults_by_kind, &verdict);
        Report {
            verdict,
            ops,
            expiring,
            faults_by_kind,
            text,
        }
    }

    /// Saves the report and the whole history under `dir` (`report.txt`, `history.txt`).
    pub fn save(&self, dir: &Path, history: &History) {
        let _ = std::fs::write(dir.join("report.txt"), &self.text);
        let _ = std::fs::write(dir.join("history.txt"), history.to_string());
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn render(
    inputs: &Inputs<'_>,
    ops: &BTreeMap<&'static str, OpCounts>,
    expiring: u64,
    faults_by_kind: &BTreeMap<FaultKind, u64>,
    verdict: &Verdict,
) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "raftfs chaos run, seed {}: {:.0} s of faults ({:.0} s until healed), {} members, {} clients",
        inputs.seed,
        inputs.duration.as_secs_f64(),
        inputs.faults_end.as_secs_f64(),
        inputs.members,
        inputs.clients
    );
    let total: u64 = ops.values().map(|c| c.ok + c.failed + c.unknown).sum();
    let _ = writeln!(
        out,
        "\noperations: {total} on {} files ({expiring} with an EXPTIME)",
        inputs.files
    );
    let _ = writeln!(
        out,
        "  {:<7} {:>8} {:>8} {:>8}",
        "kind", "ok", "refused", "unknown"
    );
    for (kind, c) in ops {
        let _ = writeln!(
            out,
            "  {kind:<7} {:>8} {:>8} {:>8}",
            c.ok, c.failed, c.unknown
        );
    }
    let _ = writeln!(
        out,
        "  (refused: ERR_FILE_NOT_FOUND or ERR_VERSION; unknown: ERR_INTERNAL, timeout or a lost connection)"
    );

    let _ = writeln!(out, "\nfaults by kind:");
    for kind in FaultKind::ALL {
        let n = faults_by_kind.get(&kind).copied().unwrap_or(0);
        let _ = writeln!(out, "  {kind:<15} {n:>4}");
    }
    if let Some(note) = &inputs.skew_note {
        let _ = writeln!(out, "  {note}");
    }
    let _ = writeln!(out, "\nfault timeline (seconds since the clients started):");
    for fault in inputs.faults {
        let end = fault
            .end
            .map(|e| format!("{:>8.1}", e.as_secs_f64()))
            .unwrap_or_else(|| "     end".into());
        let _ = writeln!(
            out,
            "  {:>8.1} .. {end}  {:<15} {}",
            fault.start.as_secs_f64(),
            fault.kind,
            fault.detail
        );
    }

    let _ = writeln!(out, "\nchecks:");
    let b = inputs.bound;
    match &inputs.checked {
        Ok(CheckResult::Linearizable(stats)) => {
            let _ = writeln!(
                out,
                "  linearizable: yes ({} files, {} configurations searched in {:.1} s, clocks bounded to +{} ms / -{} ms)",
                stats.files,
                stats.states,
                inputs.check_time.as_secs_f64(),
                b.ahead_ms,
                b.behind_ms
            );
        }
        Ok(CheckResult::Inconclusive { file, stats }) => {
            let _ = writeln!(
                out,
                "  linearizable: INCONCLUSIVE (gave up on {file}; {} configurations)",
                stats.states
            );
        }
        Err(violation) => {
            let _ = writeln!(out, "  linearizable: NO\n{violation}");
        }
    }
    let _ = writeln!(
        out,
        "  final reads: {} of {} files answered definitely; acknowledged writes lost: {}",
        inputs.files - inputs.unread.len(),
        inputs.files,
        lost_writes(inputs.history).len()
    );
    let _ = writeln!(
        out,
        "  leader after healing: {:?}",
        inputs.leader_after_heal
    );
    match &inputs.convergence {
        Convergence::Converged {
            applied_index,
            digest,
            took,
        } => {
            let _ = writeln!(
                out,
                "  converged: all members at applied index {applied_index}, digest {digest} (after {:.1} s)",
                took.as_secs_f64()
            );
        }
        Convergence::Diverged(statuses) => {
            let _ = writeln!(out, "  converged: NO; last statuses:");
            for (id, s) in statuses {
                let _ = writeln!(out, "    member {id}: {s:?}");
            }
        }
    }
    let _ = writeln!(
        out,
        "  members exited or failed to restart: {}",
        inputs.trouble.len()
    );
    let _ = writeln!(out, "  protocol anomalies: {}", inputs.anomalies.len());

    if verdict.passed() {
        let _ = writeln!(out, "\nverdict: PASS");
    } else {
        let _ = writeln!(out, "\nverdict: FAIL");
        for failure in &verdict.failures {
            let _ = writeln!(out, "  - {failure}");
        }
        let _ = writeln!(
            out,
            "history: {}\nreport: {}\nmember logs: {}/member-*.log\nreplay the schedule with --seed {}",
            inputs.dir.join("history.txt").display(),
            inputs.dir.join("report.txt").display(),
            inputs.dir.display(),
            inputs.seed
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use fs::Name;

    fn name(s: &str) -> Name {
        Name::new(Bytes::copy_from_slice(s.as_bytes())).unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn a_final_read_older_than_an_acknowledged_write_is_a_lost_write() {
        let mut history = History::new();
        let write = |v: &str| Command::Write {
            name: name("f"),
            content: Bytes::copy_from_slice(v.as_bytes()),
            exptime_s: 0,
        };
        let w1 = history.invoke(1, 1, write("a"));
        history
            .complete(w1, 2, Reply::Written { version: 1 })
            .unwrap_or_else(|_| unreachable!());
        let w2 = history.invoke(1, 3, write("b"));
        history
            .complete(w2, 4, Reply::Written { version: 2 })
            .unwrap_or_else(|_| unreachable!());
        // A client's own read of the older version does not count; the final reader's does.
        let read = |h: &mut History, client, t, version| {
            let op = h.invoke(client, t, Command::Read { name: name("f") });
            let content = Bytes::from_static(b"a");
            h.complete(
                op,
                t + 1,
                Reply::Contents {
                    version,
                    exptime_s: 0,
                    content,
                },
            )
            .unwrap_or_else(|_| unreachable!());
        };
        read(&mut history, 3, 5, 1);
        assert!(lost_writes(&history).is_empty());
        read(&mut history, 0, 7, 1);
        assert_eq!(lost_writes(&history), vec![("f".to_owned(), 2, 1)]);
        read(&mut history, 0, 9, 2);
        assert!(lost_writes(&history).is_empty());
    }
}
