//! Guards the store's bookkeeping (expiry index, purging, version counter, byte counts) against
//! drift from the docs/protocol.md semantics, by checking it against a naive reference model under random
//! command sequences with a non-decreasing but sometimes lagging clock.

// Test helpers unwrap like tests do: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use fs::{Command, Name, Reply, Store};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Few names, so commands collide on the same files often.
const NAMES: [&str; 4] = ["a", "b", "c", "dd"];

#[derive(Clone, Debug)]
enum Op {
    Read(usize),
    Write(usize, Vec<u8>, u64),
    /// `None`: use the file's current version (so cas succeeds often), else a literal version.
    Cas(usize, Option<u64>, Vec<u8>, u64),
    Delete(usize),
    /// `Store::read`, outside the log.
    Peek(usize),
    /// `Store::tick`: a clock entry.
    Tick,
}

#[derive(Clone, Debug)]
struct Step {
    op: Op,
    /// How far the leader's clock moves before this step.
    advance_ms: u64,
    /// How far this step's stamp lags the leader's clock (a new leader with a slow clock).
    lag_ms: u64,
}

struct ModelFile {
    version: u64,
    content: Vec<u8>,
    expires_at_ms: Option<u64>,
}

/// The docs/protocol.md semantics, computed naively: nothing is ever purged, expiry is checked on lookup.
#[derive(Default)]
struct Model {
    files: BTreeMap<usize, ModelFile>,
    counter: u64,
    clock_ms: u64,
}

impl Model {
    fn live(&self, file: usize, now: u64) -> Option<&ModelFile> {
        self.files
            .get(&file)
            .filter(|f| f.expires_at_ms.is_none_or(|at| now < at))
    }

    fn read(&self, file: usize, now: u64) -> Reply {
        match self.live(file, now) {
            None => Reply::FileNotFound,
            Some(f) => Reply::Contents {
                version: f.version,
                exptime_s: f.expires_at_ms.map_or(0, |at| (at - now).div_ceil(1000)),
                content: Bytes::from(f.content.clone()),
            },
        }
    }

    fn write(&mut self, file: usize, content: &[u8], exptime_s: u64, now: u64) -> Reply {
        self.counter += 1;
        let expires_at_ms = (exptime_s > 0).then_some(now + exptime_s * 1000);
        let f = ModelFile {
            version: self.counter,
            content: content.to_vec(),
            expires_at_ms,
        };
        self.files.insert(file, f);
        Reply::Written {
            version: self.counter,
        }
    }

    fn current_version(&self, file: usize) -> u64 {
        self.live(file, self.clock_ms).map_or(0, |f| f.version)
    }

    fn live_count_and_bytes(&self) -> (usize, u64) {
        let live: Vec<_> = (0..NAMES.len())
            .filter_map(|i| self.live(i, self.clock_ms))
            .collect();
        (
            live.len(),
            live.iter().map(|f| f.content.len() as u64).sum(),
        )
    }
}

fn name(file: usize) -> Name {
    Name::new(NAMES[file].as_bytes().to_vec()).unwrap()
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let file = 0..NAMES.len();
    let content = proptest::collection::vec(any::<u8>(), 0..8);
    let exptime = prop_oneof![2 => Just(0u64), 3 => 1..4u64];
    prop_oneof![
        2 => file.clone().prop_map(Op::Read),
        3 => (file.clone(), content.clone(), exptime.clone())
            .prop_map(|(f, c, e)| Op::Write(f, c, e)),
        3 => (file.clone(), prop_oneof![3 => Just(None), 1 => (0..6u64).prop_map(Some)],
              content, exptime)
            .prop_map(|(f, v, c, e)| Op::Cas(f, v, c, e)),
        1 => file.clone().prop_map(Op::Delete),
        1 => file.prop_map(Op::Peek),
        1 => Just(Op::Tick),
    ]
}

fn step_strategy() -> impl Strategy<Value = Step> {
    (
        op_strategy(),
        prop_oneof![1 => Just(0u64), 3 => 0..2_500u64],
        prop_oneof![3 => Just(0u64), 1 => 0..4_000u64],
    )
        .prop_map(|(op, advance_ms, lag_ms)| Step {
            op,
            advance_ms,
            lag_ms,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn store_matches_reference_model(steps in proptest::collection::vec(step_strategy(), 1..80)) {
        let mut store = Store::new();
        let mut model = Model::default();
        let mut leader_clock = 0u64;
        for step in steps {
            leader_clock += step.advance_ms;
            let stamp = leader_clock.saturating_sub(step.lag_ms);
            let now = stamp.max(model.clock_ms);
            let (got, want) = match step.op {
                // A read outside the log is judged at the replicated clock, whatever the stamp.
                Op::Peek(f) => (store.read(&name(f)), model.read(f, model.clock_ms)),
                Op::Tick => {
                    model.clock_ms = now;
                    store.tick(stamp);
                    (Reply::Deleted, Reply::Deleted)
                }
                op => {
                    model.clock_ms = now;
                    let (command, want) = match op {
                        Op::Read(f) => (Command::Read { name: name(f) }, model.read(f, now)),
                        Op::Write(f, c, e) => {
                            let want = model.write(f, &c, e, now);
                            let command = Command::Write {
                                name: name(f),
                                content: c.into(),
                                exptime_s: e,
                            };
                            (command, want)
                        }
                        Op::Cas(f, v, c, e) => {
                            let version = v.unwrap_or_else(|| model.current_version(f));
                            let want = match model.live(f, now).map(|file| file.version) {
                                None => Reply::FileNotFound,
                                Some(current) if current != version => {
                                    Reply::VersionMismatch { current }
                                }
                                Some(_) => model.write(f, &c, e, now),
                            };
                            let command = Command::Cas {
                                name: name(f),
                                version,
                                content: c.into(),
                                exptime_s: e,
                            };
                            (command, want)
                        }
                        Op::Delete(f) => {
                            let want = match model.live(f, now) {
                                None => Reply::FileNotFound,
                                Some(_) => {
                                    model.files.remove(&f);
                                    Reply::Deleted
                                }
                            };
                            (Command::Delete { name: name(f) }, want)
                        }
                        Op::Peek(_) | Op::Tick => unreachable!(),
                    };
                    (store.apply(&command, stamp), want)
                }
            };
            prop_assert_eq!(got, want);
            prop_assert_eq!(store.version(), model.counter);
            prop_assert_eq!(store.last_clock_ms(), model.clock_ms);
            let (count, bytes) = model.live_count_and_bytes();
            prop_assert_eq!(store.file_count(), count, "expired files must be purged by apply");
            prop_assert_eq!(store.content_bytes(), bytes);
        }
        // Every file, judged later on, still agrees.
        for later in [0, 999, 1_000, 2_500, 10_000] {
            let now = model.clock_ms + later;
            let mut judged = store.clone();
            judged.tick(now);
            for f in 0..NAMES.len() {
                prop_assert_eq!(judged.read(&name(f)), model.read(f, now));
            }
        }
    }
}
