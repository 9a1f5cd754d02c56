//! Group commit: a dedicated thread owns the [`Log`] and makes each batch durable with one fsync.
//!
//! Callers submit operations in order with a completion callback. The thread takes everything
//! queued, applies it in order, saves the batch's last hard state if it has one, syncs the log
//! once (fdatasync, plus a directory fsync when a segment was created or removed), and only then
//! runs the completions.
//!
//! The hard state goes first because Raft emits a term change before the log writes that depend
//! on it: a crash between the two must never leave entries of a term the hard state has not
//! reached (recovery refuses such a disk). The other order is harmless: the core never puts a
//! commit index in a hard state beyond entries already reported durable. Appenders that arrive while an fsync is in progress so share the
//! next one. After an I/O error the writer is poisoned (fail-stop): that operation and every
//! later one fail with the error.
//!
//! A caller may also commit a batch on its own thread with [`Writer::run_inline`] while the
//! thread has nothing queued: the same batch, the same one sync, the same completions, without
//! the two thread wake-ups of a hand-off (one to the writer, one back with the completion).
//! The log sits behind a mutex the thread holds only while it commits a batch, so the two
//! never overlap, and a batch is only taken inline when everything submitted before it is
//! done, so the order of one submitter's operations holds either way.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use crate::disk::Counters;
use crate::entry::Entry;
use crate::error::Error;
use crate::hard_state::{self, HardState};
use crate::log::Log;

/// Operations that can wait in the queue ahead of the writer thread. Bounds the memory a
/// stalled disk can make callers pile up (each op may carry a batch of entries); submit blocks
/// when full, which pushes back on the Raft runtime. 1024 is far more than one fsync's worth of
/// concurrent appenders.
pub const WRITER_QUEUE_OPS_MAX: usize = 1024;

/// One operation on the log, applied in submission order.
#[derive(Debug, Clone)]
pub enum Op {
    /// [`Log::append`].
    Append(Vec<Entry>),
    /// [`Log::truncate_suffix`].
    TruncateSuffix(u64),
    /// [`Log::discard_prefix`].
    DiscardPrefix(u64),
    /// Save the Raft hard state (before the log writes of the same batch reach the disk).
    SaveHardState(HardState),
    /// Make everything before it durable; carries no change of its own.
    Sync,
}

/// What is durable when a completion runs: the log's bounds after the whole batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durable {
    /// The log's first index.
    pub first_index: u64,
    /// The log's last index.
    pub last_index: u64,
}

/// Called once its operation is durable (or has failed). Runs on the writer thread, so it must
/// be quick and must not block on the writer (send on a channel, wake a task).
pub type Completion = Box<dyn FnOnce(Result<Durable, Error>) + Send>;

/// An operation [`Writer::try_submit`] could not queue, handed back with the reason.
pub struct Rejected {
    /// Why: [`Error::QueueFull`] or [`Error::WriterClosed`].
    pub error: Error,
    /// The operation, not applied.
    pub op: Op,
    /// Its completion, not run.
    pub done: Completion,
}

impl std::fmt::Debug for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rejected")
            .field("error", &self.error)
            .field("op", &self.op)
            .finish_non_exhaustive()
    }
}

struct Request {
    op: Op,
    done: Completion,
}

/// What the thread and inline callers share: the log and whether it is poisoned.
struct State {
    log: Log,
    poisoned: Option<Error>,
}

/// The handle to the writer thread.
pub struct Writer {
    sender: Option<SyncSender<Request>>,
    thread: Option<JoinHandle<()>>,
    state: Arc<Mutex<State>>,
    /// Operations submitted to the thread whose batch has not finished yet.
    queued: Arc<AtomicUsize>,
    counters: Arc<Counters>,
}

impl Writer {
    /// Starts the writer thread, which takes ownership of `log`.
    pub fn spawn(log: Log) -> Result<Writer, Error> {
        let (sender, receiver) = mpsc::sync_channel(WRITER_QUEUE_OPS_MAX);
        let counters = log.counters();
        let dir = log.dir().to_path_buf();
        let state = Arc::new(Mutex::new(State {
            log,
            poisoned: None,
        }));
        let queued = Arc::new(AtomicUsize::new(0));
        let thread = {
            let state = Arc::clone(&state);
            let queued = Arc::clone(&queued);
            thread::Builder::new()
                .name("raftfs-wal-writer".into())
                .spawn(move || run(&state, &queued, receiver))
                .map_err(|e| Error::io("spawn writer thread for", dir, e))?
        };
        Ok(Writer {
            sender: Some(sender),
            thread: Some(thread),
            state,
            queued,
            counters,
        })
    }

    /// Queues `op`; `done` runs once it is durable or has failed. Blocks while the queue is
    /// full. Fails with [`Error::WriterClosed`] (without running `done`) if the thread is gone.
    pub fn submit(&self, op: Op, done: Completion) -> Result<(), Error> {
        let sender = self.sender.as_ref().ok_or(Error::WriterClosed)?;
        // Counted before the send, so the thread never finishes an op not yet counted.
        self.queued.fetch_add(1, Ordering::AcqRel);
        sender.send(Request { op, done }).map_err(|_| {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            Error::WriterClosed
        })
    }

    /// True while nothing submitted to the thread is unfinished: a batch given to
    /// [`Writer::run_inline`] now would follow everything before it.
    pub fn is_idle(&self) -> bool {
        self.queued.load(Ordering::Acquire) == 0
    }

    /// Commits `batch` on the calling thread, exactly as the writer thread would (in order,
    /// one sync, then the completions, which run here). When the thread still has work queued
    /// the batch would overtake it, so it is handed back untouched instead.
    pub fn run_inline(&self, batch: Vec<(Op, Completion)>) -> Result<(), Vec<(Op, Completion)>> {
        if !self.is_idle() {
            return Err(batch);
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let batch = batch
            .into_iter()
            .map(|(op, done)| Request { op, done })
            .collect();
        commit_batch(&mut state, batch);
        Ok(())
    }

    /// Queues `op` without blocking: for callers that must not block (a tokio task). When the
    /// queue is full ([`Error::QueueFull`]) or the thread is gone, hands `op` and `done` back.
    pub fn try_submit(&self, op: Op, done: Completion) -> Result<(), Rejected> {
        let Some(sender) = self.sender.as_ref() else {
            return Err(Rejected {
                error: Error::WriterClosed,
                op,
                done,
            });
        };
        self.queued.fetch_add(1, Ordering::AcqRel);
        sender.try_send(Request { op, done }).map_err(|e| {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            match e {
                TrySendError::Full(Request { op, done }) => Rejected {
                    error: Error::QueueFull,
                    op,
                    done,
                },
                TrySendError::Disconnected(Request { op, done }) => Rejected {
                    error: Error::WriterClosed,
                    op,
                    done,
                },
            }
        })
    }

    /// Queues `op` and blocks until it is durable.
    pub fn submit_wait(&self, op: Op) -> Result<Durable, Error> {
        let (sender, receiver) = mpsc::sync_channel(1);
        self.submit(
            op,
            Box::new(move |result| {
                // The waiter only goes away if its thread died; nothing to tell then.
                let _ = sender.send(result);
            }),
        )?;
        receiver.recv().map_err(|_| Error::WriterClosed)?
    }

    /// Appends `entries` and blocks until they are durable.
    pub fn append_wait(&self, entries: Vec<Entry>) -> Result<Durable, Error> {
        self.submit_wait(Op::Append(entries))
    }

    /// Number of fsyncs performed so far (log, directory and hard state).
    pub fn fsyncs(&self) -> u64 {
        self.counters.fsyncs()
    }

    /// How long the log's fsyncs have taken so far.
    pub fn sync_latency(&self) -> crate::disk::SyncLatency {
        self.counters.sync_latency()
    }

    /// Bytes of the log's segment files, as of the last batch.
    pub fn log_bytes(&self) -> u64 {
        self.counters.log_bytes()
    }

    /// The log's counters.
    pub fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }

    /// Lets the thread finish everything queued, joins it and returns the log.
    pub fn shutdown(mut self) -> Result<Log, Error> {
        self.sender = None;
        let thread = self.thread.take().ok_or(Error::WriterClosed)?;
        thread.join().map_err(|_| Error::WriterClosed)?;
        let state = Arc::into_inner(self.state).ok_or(Error::WriterClosed)?;
        Ok(state
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .log)
    }
}

/// The writer thread: batch, apply, sync once, complete; until every sender is gone.
fn run(state: &Mutex<State>, queued: &AtomicUsize, receiver: Receiver<Request>) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        while batch.len() < WRITER_QUEUE_OPS_MAX {
            match receiver.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let taken = batch.len();
        commit_batch(
            &mut state.lock().unwrap_or_else(PoisonError::into_inner),
            batch,
        );
        // After the lock is released: an inline batch that sees the count at zero finds the
        // log free.
        queued.fetch_sub(taken, Ordering::AcqRel);
    }
}

/// Applies `batch` in order, makes it durable with one sync, then runs its completions.
fn commit_batch(state: &mut State, batch: Vec<Request>) {
    let State { log, poisoned } = state;
    let counters = Arc::clone(&log.disk().counters);
    counters.batch_started();
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut hard_state = None;
    for Request { op, done } in batch {
        let outcome = match poisoned {
            Some(error) => Err(error.clone()),
            None => apply(log, op, &mut hard_state),
        };
        if let Err(error) = &outcome
            && error.is_fatal()
            && poisoned.is_none()
        {
            *poisoned = Some(error.clone());
        }
        outcomes.push((done, outcome));
    }
    if poisoned.is_none() {
        // The hard state first: see the module doc.
        let synced = match &hard_state {
            Some(state) => hard_state::save_with(log.disk(), log.dir(), state),
            None => Ok(()),
        }
        .and_then(|()| log.sync());
        if let Err(error) = synced {
            *poisoned = Some(error);
        }
    }
    let durable = Durable {
        first_index: log.first_index(),
        last_index: log.last_index(),
    };
    // Once per batch, a sum over a handful of segments: cheap, and readers get a recent size.
    counters.set_log_bytes(log.disk_bytes());
    counters.batch_ended();
    for (done, outcome) in outcomes {
        let result = match (outcome, &*poisoned) {
            (Err(error), _) => Err(error),
            (Ok(()), Some(error)) => Err(error.clone()),
            (Ok(()), None) => Ok(durable),
        };
        done(result);
    }
}

/// Applies one operation to the in-memory log; only the batch's last hard state is kept, since
/// all of them become durable together.
fn apply(log: &mut Log, op: Op, hard_state: &mut Option<HardState>) -> Result<(), Error> {
    match op {
        Op::Append(entries) => log.append(&entries),
        Op::TruncateSuffix(from) => log.truncate_suffix(from),
        Op::DiscardPrefix(upto) => log.discard_prefix(upto),
        Op::SaveHardState(state) => {
            *hard_state = Some(state);
            Ok(())
        }
        Op::Sync => Ok(()),
    }
}
