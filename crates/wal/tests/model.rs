//! Guards against the log and its recovery disagreeing with a plain in-memory model: random
//! appends, truncations, discards, syncs and reopens, with tiny segments so rollover happens.
//! Between syncs the log must equal the model; after a reopen (with the last synced index as
//! the durable floor) it must equal the model as of the last sync.

// Tests may unwrap (house rule); helpers outside #[test] need saying so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use wal::{Entry, Error, Log, Options};

#[derive(Debug, Clone)]
enum Step {
    /// Append `count` entries of `size` bytes; `bump` starts a new term first.
    Append {
        count: u8,
        size: u8,
        bump: bool,
    },
    /// Truncate from a point chosen by `pick` among `[first - 1, last + 1]`.
    Truncate {
        pick: u16,
    },
    /// Discard up to a point chosen by `pick`, sometimes beyond the last index.
    Discard {
        pick: u16,
    },
    Sync,
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (1u8..6, 0u8..60, any::<bool>())
            .prop_map(|(count, size, bump)| Step::Append { count, size, bump }),
        2 => any::<u16>().prop_map(|pick| Step::Truncate { pick }),
        1 => any::<u16>().prop_map(|pick| Step::Discard { pick }),
        3 => Just(Step::Sync),
        1 => Just(Step::Reopen),
    ]
}

/// What the log should hold.
#[derive(Debug, Clone)]
struct Model {
    first: u64,
    entries: Vec<Entry>,
}

impl Model {
    fn last(&self) -> u64 {
        self.first + self.entries.len() as u64 - 1
    }
}

fn data(index: u64, term: u64, size: u8) -> Vec<u8> {
    (0..size)
        .map(|i| (index * 31 + term * 7 + i as u64) as u8)
        .collect()
}

fn check(log: &Log, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.first_index(), model.first);
    prop_assert_eq!(log.last_index(), model.last());
    prop_assert_eq!(log.term(model.first - 1), None);
    prop_assert_eq!(log.term(model.last() + 1), None);
    for e in &model.entries {
        prop_assert_eq!(log.term(e.index), Some(e.term));
    }
    prop_assert_eq!(
        &log.read(model.first, model.last() + 1).unwrap(),
        &model.entries
    );
    Ok(())
}

fn run(steps: Vec<Step>, segment_bytes: u64) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        segment_bytes,
        ..Options::default()
    };
    let (mut log, _) = Log::open(dir.path(), options.clone()).unwrap();
    let mut model = Model {
        first: 1,
        entries: Vec::new(),
    };
    let mut synced = model.clone();
    let mut term = 1;
    for step in steps {
        match step {
            Step::Append { count, size, bump } => {
                term += u64::from(bump);
                let next = model.last() + 1;
                let new: Vec<Entry> = (next..next + u64::from(count))
                    .map(|i| Entry::new(i, term, data(i, term, size)))
                    .collect();
                log.append(&new).unwrap();
                model.entries.extend(new);
            }
            Step::Truncate { pick } => {
                let from = model.first - 1 + u64::from(pick) % (model.entries.len() as u64 + 3);
                let result = log.truncate_suffix(from);
                if from < model.first {
                    prop_assert!(
                        matches!(result, Err(Error::Compacted { .. })),
                        "{:?}",
                        result
                    );
                } else {
                    result.unwrap();
                    let keep = (from - model.first) as usize;
                    model.entries.truncate(keep);
                }
            }
            Step::Discard { pick } => {
                let upto = model.first - 1 + u64::from(pick) % (model.entries.len() as u64 + 4);
                log.discard_prefix(upto).unwrap();
                if upto >= model.first {
                    let drop = ((upto + 1 - model.first) as usize).min(model.entries.len());
                    model.entries.drain(..drop);
                    model.first = upto + 1;
                }
            }
            Step::Sync => {
                log.sync().unwrap();
                synced = model.clone();
            }
            Step::Reopen => {
                drop(log);
                // Everything synced is durable, so it may serve as the floor (as a saved
                // commit index would): truncations and discards must never make it refuse.
                let floor = synced.last();
                let (reopened, report) =
                    Log::open_with_floor(dir.path(), options.clone(), floor).unwrap();
                prop_assert_eq!(report.torn_tail, None);
                prop_assert!(report.watermark >= floor);
                log = reopened;
                model = synced.clone();
            }
        }
        check(&log, &model)?;
    }
    // Whatever happened, a final sync and reopen shows the model exactly.
    log.sync().unwrap();
    drop(log);
    let (log, _) = Log::open(dir.path(), options).unwrap();
    check(&log, &model)
}

/// 128 cases by default (well under a second); set PROPTEST_CASES for a deeper run.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    ProptestConfig::with_cases(cases)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn log_matches_model(
        steps in prop::collection::vec(step(), 1..60),
        segment_bytes in wal::SEGMENT_BYTES_MIN..400,
    ) {
        run(steps, segment_bytes)?;
    }
}
