//! Guards against unreadable tests: short helpers to write histories by hand and to assert a
//! verdict with the history shown on failure.

use bytes::Bytes;
use fs::{Command, Name, Reply};
use sim::history::{ClockBound, History, OpId};
use sim::linearizability::{CheckResult, Violation, ViolationKind, check};

/// A file name.
pub fn file(name: &str) -> Name {
    Name::new(Bytes::copy_from_slice(name.as_bytes())).unwrap()
}

pub fn read(name: &str) -> Command {
    Command::Read { name: file(name) }
}

pub fn write(name: &str, content: &str) -> Command {
    Command::Write {
        name: file(name),
        content: Bytes::copy_from_slice(content.as_bytes()),
        exptime_s: 0,
    }
}

pub fn cas(name: &str, version: u64, content: &str) -> Command {
    Command::Cas {
        name: file(name),
        version,
        content: Bytes::copy_from_slice(content.as_bytes()),
        exptime_s: 0,
    }
}

/// A write of `name` that expires `exptime_s` seconds after it applies.
pub fn write_exp(name: &str, content: &str, exptime_s: u64) -> Command {
    Command::Write {
        name: file(name),
        content: Bytes::copy_from_slice(content.as_bytes()),
        exptime_s,
    }
}

/// A cas of `name` whose new version expires `exptime_s` seconds after it applies.
pub fn cas_exp(name: &str, version: u64, content: &str, exptime_s: u64) -> Command {
    Command::Cas {
        name: file(name),
        version,
        content: Bytes::copy_from_slice(content.as_bytes()),
        exptime_s,
    }
}

pub fn delete(name: &str) -> Command {
    Command::Delete { name: file(name) }
}

pub fn contents(version: u64, content: &str) -> Reply {
    Reply::Contents {
        version,
        exptime_s: 0,
        content: Bytes::copy_from_slice(content.as_bytes()),
    }
}

/// A read's reply reporting `exptime_s` seconds left.
pub fn contents_exp(version: u64, content: &str, exptime_s: u64) -> Reply {
    Reply::Contents {
        version,
        exptime_s,
        content: Bytes::copy_from_slice(content.as_bytes()),
    }
}

pub fn ok(version: u64) -> Reply {
    Reply::Written { version }
}

pub fn deleted() -> Reply {
    Reply::Deleted
}

pub fn not_found() -> Reply {
    Reply::FileNotFound
}

pub fn mismatch(current: u64) -> Reply {
    Reply::VersionMismatch { current }
}

/// A history written by hand, one call per operation.
#[derive(Default)]
pub struct Script {
    pub history: History,
}

impl Script {
    pub fn new() -> Script {
        Script::default()
    }

    /// A script whose times are milliseconds, with every member's clock at most `ahead_ms`
    /// ahead of and `behind_ms` behind real time.
    pub fn with_clocks(ahead_ms: u64, behind_ms: u64) -> Script {
        let mut s = Script::new();
        s.history.set_clock_bound(ClockBound {
            units_per_ms: 1,
            ahead_ms,
            behind_ms,
        });
        s
    }

    /// An operation by `client`, invoked at `invoke`, answered `reply` at `complete`.
    pub fn op(
        &mut self,
        client: u64,
        (invoke, complete): (u64, u64),
        command: Command,
        reply: Reply,
    ) -> OpId {
        let id = self.history.invoke(client, invoke, command);
        self.history.complete(id, complete, reply).unwrap();
        id
    }

    /// An operation whose client gave up on it after invoking it at `invoke`.
    pub fn unknown(&mut self, client: u64, invoke: u64, command: Command) -> OpId {
        let id = self.history.invoke(client, invoke, command);
        self.history.give_up(id).unwrap();
        id
    }
}

/// Asserts the checker shows the history linearizable.
pub fn assert_linearizable(history: &History) {
    match check(history) {
        Ok(CheckResult::Linearizable(_)) => {}
        Ok(inconclusive) => panic!("inconclusive: {inconclusive:?}\n{history}"),
        Err(violation) => panic!("false alarm:\n{violation}\nhistory:\n{history}"),
    }
}

/// Asserts the checker rejects the history with a violation of `kind`, and returns it.
pub fn assert_violation(history: &History, kind: ViolationKind) -> Violation {
    match check(history) {
        Err(violation) => {
            assert_eq!(violation.kind(), &kind, "{violation}");
            // The report must always render.
            assert!(!violation.to_string().is_empty());
            violation
        }
        Ok(result) => panic!("accepted ({result:?}):\n{history}"),
    }
}

/// The ids of the operations a violation names.
pub fn involved(violation: &Violation) -> Vec<OpId> {
    violation.operations().iter().map(|op| op.id()).collect()
}
