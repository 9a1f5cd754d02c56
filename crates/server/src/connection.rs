//! One client connection: parse commands as bytes arrive, hand them to the node, and write the
//! replies back in the order the commands came, without waiting for the client to read earlier
//! ones (pipelining).
//!
//! Two halves run concurrently: the reader decodes and submits, pushing a reply slot per command
//! onto a bounded queue; the writer takes slots in order, waits for each reply, encodes it into
//! its output buffer and writes that buffer out, collecting further replies while a write is
//! blocked.
//!
//! Budgets (see [`crate::limits`]) bound what one connection makes the server hold. The reader
//! stops reading, so TCP pushes back on the client, while
//! - the writer holds more than `reply_buffer_bytes` of encoded replies not yet sent (the
//!   writer collects replies only while under that budget, so a client that never reads holds
//!   at most the budget plus one reply, plus the replies of commands already in flight, which
//!   share the store's buffers), or
//! - the commands read and not yet answered add up to more than `pipeline_bytes` (one command
//!   is always admitted), or `PIPELINE_DEPTH_MAX` of them are queued, or
//! - all connections together hold the member's shared budget ([`crate::client_budget`]) and
//!   this one has something in flight; its writer then gathers no more replies while it has
//!   some unsent.
//!
//! A command still incomplete `partial_command_timeout` after its first byte closes the
//! connection, however slowly it trickles in. A connection with nothing in flight for
//! `idle_timeout`, or whose client has read none of its unsent replies for as long, is closed.
//!
//! The handler is generic over the byte stream, so a TLS stream serves the same way as TCP.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use fs::Reply;
use fs::codec::{Decoded, Decoder, Limits};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;
use tracing::debug;

use crate::client_budget::ClientBudget;
use crate::deadline::sleep_until;
use crate::limits::ClientLimits;
use crate::mailbox::Mailbox;
use crate::metrics::{CommandKind, Metrics};
use crate::node::NodeHandle;
use crate::shutdown::Shutdown;

/// Commands one connection may have in flight before we stop reading from it. Deep enough to
/// keep a pipelining client's batches full, small enough to bound per-connection bookkeeping.
pub const PIPELINE_DEPTH_MAX: usize = 1024;

/// Bytes asked of the socket per read; the decoder keeps at most about one line plus one file.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Encoded replies gathered before the writer prefers writing to collecting more.
const WRITE_BATCH_BYTES: usize = 256 * 1024;

/// The reply a client over the connection cap gets before it is closed (docs/protocol.md: the server could
/// not complete the command).
pub const REFUSED_REPLY: &[u8] = b"ERR_INTERNAL\r\n";

/// How long a refused connection is drained (so the client's kernel does not reset the
/// connection over unread commands and lose the reply) before it is closed.
const REFUSE_DRAIN: Duration = Duration::from_millis(500);

/// What bounds one client connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// The protocol limits (largest file).
    pub codec: Limits,
    /// How long a command may take to arrive, from its first byte.
    pub partial_command_timeout: Duration,
    /// How long a connection may sit with nothing in flight, or with its replies unread.
    pub idle_timeout: Duration,
    /// Encoded reply bytes unsent before the reader stops.
    pub reply_buffer_bytes: usize,
    /// Command bytes read and unanswered before the reader stops.
    pub pipeline_bytes: usize,
}

impl ConnectionLimits {
    /// The limits of a connection under `limits`, with files of at most `file_bytes_max`.
    pub fn new(limits: &ClientLimits, file_bytes_max: u64) -> ConnectionLimits {
        ConnectionLimits {
            codec: Limits { file_bytes_max },
            partial_command_timeout: limits.partial_command_timeout(),
            idle_timeout: limits.idle_timeout(),
            reply_buffer_bytes: limits.reply_buffer_bytes,
            pipeline_bytes: limits.pipeline_bytes,
        }
    }
}

/// The reply of one command, in the connection's reply order.
enum Answer {
    /// The reply is known already (a parse error, say).
    Ready(Reply),
    /// The node answers: the reply is the oldest not yet taken from the connection's mailbox
    /// (every pending slot reserved its place in it, in slot order).
    Pending,
}

/// One command's place in the reply order, with its share of the pipeline budget.
struct Slot {
    answer: Answer,
    /// The command's wire bytes, counted against `pipeline_bytes` until it is answered.
    command_bytes: usize,
    /// What it was, for the metrics.
    kind: CommandKind,
    /// When its last byte was read (the read that completed it), for the latency metric.
    read_at: Instant,
}

/// A command answered: its reply, and what the budgets and metrics need of its slot.
struct Answered {
    reply: Reply,
    command_bytes: usize,
    kind: CommandKind,
    read_at: Instant,
}

/// The budgets' levels, shared by the reader and the writer of one connection.
struct Shared {
    /// Encoded reply bytes the writer holds, not yet written to the stream.
    unsent_reply_bytes: AtomicUsize,
    /// Wire bytes of commands submitted whose replies the writer has not taken yet.
    pending_command_bytes: AtomicUsize,
    /// Commands submitted whose replies the writer has not taken yet.
    unanswered: AtomicUsize,
    /// When the writer last wrote something, in milliseconds since `start`.
    last_write_ms: AtomicU64,
    /// Wakes a reader paused over budget (one waiter, so a stored permit is never lost).
    progress: Notify,
    /// Where the node answers the commands the reader submits, in the order of their slots.
    replies: Arc<Mailbox>,
    /// The connection's start, the origin of `last_write_ms`.
    start: Instant,
    /// The budget all connections share; this one's pending command bytes and unsent reply
    /// bytes are counted in it, and given back when it ends.
    budget: Arc<ClientBudget>,
}

impl Shared {
    fn new(budget: Arc<ClientBudget>) -> Shared {
        Shared {
            budget,
            unsent_reply_bytes: AtomicUsize::new(0),
            pending_command_bytes: AtomicUsize::new(0),
            unanswered: AtomicUsize::new(0),
            last_write_ms: AtomicU64::new(0),
            progress: Notify::new(),
            start: Instant::now(),
            replies: Mailbox::new(),
        }
    }

    fn over_budget(&self, limits: &ConnectionLimits) -> bool {
        self.unsent_reply_bytes.load(Ordering::Acquire) >= limits.reply_buffer_bytes
            || self.pending_command_bytes.load(Ordering::Acquire) >= limits.pipeline_bytes
    }

    /// Whether the shared budget is full and this connection has something in flight (one
    /// with nothing in flight is always admitted a command, so no client starves).
    fn over_shared_budget(&self) -> bool {
        self.budget.is_full()
            && (self.unanswered.load(Ordering::Acquire) > 0
                || self.unsent_reply_bytes.load(Ordering::Acquire) > 0)
    }

    /// Whether the writer, holding `unsent` encoded bytes, may gather another reply: always
    /// its first, more only while the shared budget has room.
    fn may_gather(&self, unsent: usize) -> bool {
        unsent == 0 || !self.budget.is_full()
    }

    fn last_write(&self) -> Instant {
        self.start + Duration::from_millis(self.last_write_ms.load(Ordering::Acquire))
    }

    fn mark_write(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_write_ms.store(ms, Ordering::Release);
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Both halves are done: what they still count is no longer held.
        let pending = self.pending_command_bytes.load(Ordering::Acquire);
        let unsent = self.unsent_reply_bytes.load(Ordering::Acquire);
        self.budget.give_back(pending + unsent);
    }
}

/// Serves one client until it disconnects, framing is lost, a budget's timeout closes it, or
/// shutdown is signalled (shutdown stops reading between commands; replies for commands already
/// read are still written).
pub async fn serve<S>(
    stream: S,
    node: NodeHandle,
    limits: ConnectionLimits,
    budget: Arc<ClientBudget>,
    shutdown: Shutdown,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (reader, writer) = tokio::io::split(stream);
    let (slots_tx, slots_rx) = mpsc::channel(PIPELINE_DEPTH_MAX);
    let shared = Arc::new(Shared::new(budget));
    let metrics = node.metrics().clone();
    // Dropped when the writer stops (the client is gone or reads nothing): the reader stops too.
    let (writer_alive, writer_stopped) = oneshot::channel::<()>();
    let write_task = tokio::spawn(write_replies(
        writer,
        slots_rx,
        shared.clone(),
        limits,
        metrics,
        writer_alive,
    ));
    read_commands(
        reader,
        node,
        limits,
        slots_tx,
        shared,
        writer_stopped,
        shutdown,
    )
    .await;
    // The reader dropped its sender: the writer ends once every queued reply is written.
    if let Err(err) = write_task.await {
        debug!(%err, "reply writer ended abnormally");
    }
}

/// Answers a client over the connection cap with [`REFUSED_REPLY`] and closes it, after a brief
/// drain of whatever it sent.
pub async fn refuse<S>(mut stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let answered = async {
        stream.write_all(REFUSED_REPLY).await?;
        stream.shutdown().await
    };
    if tokio::time::timeout(REFUSE_DRAIN, answered).await.is_err() {
        return;
    }
    // Read until the client closes or the drain time is up, so unread commands do not make the
    // kernel reset the connection before the client has read the reply.
    let _ = tokio::time::timeout(REFUSE_DRAIN, async {
        let mut sink = [0u8; 4096];
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

async fn read_commands<R: AsyncRead + Unpin>(
    mut reader: R,
    node: NodeHandle,
    limits: ConnectionLimits,
    slots: mpsc::Sender<Slot>,
    shared: Arc<Shared>,
    // Resolves (with an error) once the writer has stopped.
    mut writer_stopped: oneshot::Receiver<()>,
    shutdown: Shutdown,
) {
    // The waits that last the whole connection are made once and polled in place, and a reply
    // does not wake the reader: making and dropping them in every pass of the loop (a waiter
    // list each, a timer) and the extra wake-up were a fifth of a store's instructions per
    // write (docs/perf-log.md, step 9).
    let mut stop = shutdown.clone();
    let stopped = stop.wait();
    tokio::pin!(stopped);
    // Checked lazily: armed at the earliest the connection could be idle long enough, and when
    // it fires re-armed for the real deadline if the connection was busy meanwhile.
    let idle_check = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(idle_check);
    let mut decoder = Decoder::new(limits.codec);
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    // Bytes the decoder consumed towards the command it has not yet produced.
    let mut consumed = 0usize;
    // When the first byte of the incomplete command at the buffer's head arrived.
    let mut partial_since: Option<Instant> = None;
    // When the reader paused over budget (the client is not to blame for that time).
    let mut paused_at: Option<Instant> = None;
    let mut last_read = Instant::now();
    loop {
        let over_own_budget = shared.over_budget(&limits);
        let over_shared_budget = !over_own_budget && shared.over_shared_budget();
        let over_budget = over_own_budget || over_shared_budget;
        if over_budget {
            paused_at.get_or_insert_with(Instant::now);
        } else {
            if let Some(at) = paused_at.take() {
                partial_since = partial_since.map(|since| since + at.elapsed());
            }
            let before = buf.len();
            let decoded = decoder.decode(&mut buf);
            consumed += before - buf.len();
            if let Some(decoded) = decoded {
                let command_bytes = std::mem::take(&mut consumed);
                // The next command, if any, starts in what is buffered now.
                partial_since = (!buf.is_empty()).then_some(last_read);
                let (answer, close, kind) = match decoded {
                    // A node that has stopped drops the token, which answers ERR_INTERNAL
                    // in its place; the connection then closes.
                    Decoded::Command(command) => {
                        let kind = CommandKind::of(&command);
                        let token = shared.replies.reserve();
                        let submitted = node.submit(command, token).await;
                        (Answer::Pending, !submitted, kind)
                    }
                    Decoded::Admin(admin) => {
                        let token = shared.replies.reserve();
                        let submitted = node.admin(admin, token).await;
                        (Answer::Pending, !submitted, CommandKind::Admin)
                    }
                    Decoded::Error(err) => {
                        debug!(%err, "malformed command");
                        let close = err.closes_connection();
                        (Answer::Ready(Reply::CmdErr), close, CommandKind::Malformed)
                    }
                };
                shared
                    .pending_command_bytes
                    .fetch_add(command_bytes, Ordering::AcqRel);
                shared.budget.take(command_bytes);
                shared.unanswered.fetch_add(1, Ordering::AcqRel);
                let slot = Slot {
                    answer,
                    command_bytes,
                    kind,
                    read_at: last_read,
                };
                if slots.send(slot).await.is_err() || close {
                    return; // The writer is gone (client closed), or framing is lost.
                }
                continue;
            }
        }
        if buf.capacity() - buf.len() < READ_CHUNK_BYTES / 4 {
            buf.reserve(READ_CHUNK_BYTES);
        }
        let between_commands = decoder.at_command_boundary() && buf.is_empty() && consumed == 0;
        if between_commands {
            partial_since = None;
        } else if partial_since.is_none() {
            // The bytes of this command arrived with the latest read.
            partial_since = Some(last_read);
        }
        if between_commands && shutdown.is_triggered() {
            return;
        }
        // A half-sent command's deadline runs from its first byte, not its latest, and not
        // while we are the ones not reading.
        let partial_deadline = match (partial_since, over_budget) {
            (Some(since), false) => Some(since + limits.partial_command_timeout),
            _ => None,
        };
        tokio::select! {
            // The read first: when it is what woke us, nothing else need be polled.
            biased;
            read = reader.read_buf(&mut buf), if !over_budget => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    last_read = Instant::now();
                    node.metrics().client_bytes_received.inc_by(n as u64);
                }
            },
            // Over budget: wait for the writer to make room, or (over the shared budget only)
            // for the other connections to.
            _ = shared.progress.notified(), if over_budget => {}
            _ = shared.budget.room(), if over_shared_budget => {}
            _ = &mut writer_stopped => return,
            // Shutdown stops a connection between commands; one in the middle of a command
            // may finish it (the listener's drain timeout bounds how long that can take).
            _ = &mut stopped, if between_commands => return,
            _ = sleep_until(partial_deadline) => {
                debug!("command still incomplete after the partial-command timeout; closing");
                return;
            }
            _ = &mut idle_check => {
                // Idle: between commands with nothing in flight at all. A command waiting for
                // the cluster is not idle, and a client that reads none of its replies is the
                // writer's to time out.
                let idle = between_commands
                    && shared.unanswered.load(Ordering::Acquire) == 0
                    && shared.unsent_reply_bytes.load(Ordering::Acquire) == 0;
                let quiet_until = last_read.max(shared.last_write()) + limits.idle_timeout;
                let now = Instant::now();
                if idle && quiet_until <= now {
                    debug!("connection idle for the idle timeout; closing");
                    return;
                }
                // Busy now: idle at the earliest once what is in flight is done, which is later.
                let next = if idle { quiet_until } else { now + limits.idle_timeout };
                idle_check.as_mut().reset(next);
            }
        }
    }
}

/// Waits for the next reply in order: takes the next slot off the queue unless one is held
/// already, then waits for its answer. `None` once the queue is closed and empty. Cancel-safe:
/// a slot taken but not yet answered stays in `current`.
async fn next_reply(
    current: &mut Option<Slot>,
    slots: &mut mpsc::Receiver<Slot>,
    replies: &Mailbox,
) -> Option<Answered> {
    if current.is_none() {
        *current = Some(slots.recv().await?);
    }
    if let Some(Slot { answer, .. }) = current
        && let Answer::Pending = answer
    {
        // A node that dropped the command without answering (it is shutting down) gets
        // `ERR_INTERNAL`, as docs/protocol.md says: the mailbox gives that for it.
        *answer = Answer::Ready(replies.next().await);
    }
    take_answered(current)
}

/// Takes the held slot once answered: its reply and what else the writer needs of it.
fn take_answered(current: &mut Option<Slot>) -> Option<Answered> {
    let slot = current.take()?;
    let reply = match slot.answer {
        Answer::Ready(reply) => reply,
        Answer::Pending => unreachable!("a slot is taken once answered"),
    };
    Some(Answered {
        reply,
        command_bytes: slot.command_bytes,
        kind: slot.kind,
        read_at: slot.read_at,
    })
}

/// The next reply in order if it is ready now, without waiting.
fn try_next_reply(
    current: &mut Option<Slot>,
    slots: &mut mpsc::Receiver<Slot>,
    replies: &Mailbox,
) -> Option<Answered> {
    if current.is_none() {
        *current = Some(slots.try_recv().ok()?);
    }
    if let Some(Slot { answer, .. }) = current
        && let Answer::Pending = answer
    {
        *answer = Answer::Ready(replies.take()?);
    }
    take_answered(current)
}

/// Encodes a reply taken off the queue, counts it, and moves the budgets: its bytes are now
/// unsent replies, its command no longer counts as unanswered.
fn took_reply(shared: &Shared, metrics: &Metrics, out: &mut BytesMut, answered: Answered) {
    let Answered {
        reply,
        command_bytes,
        kind,
        read_at,
    } = answered;
    metrics.command_done(kind, &reply, read_at.elapsed());
    let before = out.len();
    reply.encode(out);
    shared.budget.take(out.len() - before);
    shared
        .unsent_reply_bytes
        .store(out.len(), Ordering::Release);
    shared
        .pending_command_bytes
        .fetch_sub(command_bytes, Ordering::AcqRel);
    shared.budget.give_back(command_bytes);
    shared.unanswered.fetch_sub(1, Ordering::AcqRel);
    shared.progress.notify_one();
}

/// Writes some of `out`, giving up after `stall` without progress (a client that reads none
/// of its replies).
async fn write_some<W: AsyncWrite + Unpin>(
    writer: &mut W,
    out: &[u8],
    stall: Duration,
) -> std::io::Result<usize> {
    // Most writes complete at once: only one that has to wait arms the stall timer (a timer
    // per reply was ~2% of a loaded leader's CPU).
    let mut write = std::pin::pin!(writer.write(out));
    if let Poll::Ready(written) = poll_once(write.as_mut()).await {
        return written;
    }
    match tokio::time::timeout(stall, write).await {
        Ok(written) => written,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// Flushes `writer`, giving up after `stall` without progress; a flush that completes at once
/// (always, on plain TCP) arms no timer.
async fn flush_within<W: AsyncWrite + Unpin>(
    writer: &mut W,
    stall: Duration,
) -> std::io::Result<()> {
    let mut flush = std::pin::pin!(writer.flush());
    if let Poll::Ready(flushed) = poll_once(flush.as_mut()).await {
        return flushed;
    }
    match tokio::time::timeout(stall, flush).await {
        Ok(flushed) => flushed,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// Polls `future` once with the task's waker: its result if it is ready, else `Pending` (the
/// future stays registered to wake the task, and may be polled again).
async fn poll_once<F: Future + Unpin>(future: F) -> Poll<F::Output> {
    let mut future = future;
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut future).poll(cx))).await
}

async fn write_replies<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut slots: mpsc::Receiver<Slot>,
    shared: Arc<Shared>,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    // Dropped once the writer stops: tells the reader.
    alive: oneshot::Sender<()>,
) {
    let stall = limits.idle_timeout;
    let mut out = BytesMut::with_capacity(4096);
    let mut current: Option<Slot> = None;
    let mut queue_open = true;
    while queue_open || !out.is_empty() {
        // Gather the replies ready now into one write (while the shared budget is full, only
        // one: the one this connection is always allowed).
        while out.len() < WRITE_BATCH_BYTES.min(limits.reply_buffer_bytes)
            && shared.may_gather(out.len())
            && let Some(answered) = try_next_reply(&mut current, &mut slots, &shared.replies)
        {
            took_reply(&shared, &metrics, &mut out, answered);
        }
        // Write when the stream takes bytes; while it does not, keep collecting replies up to
        // the reply budget (the reader stops once it is reached) and the shared one.
        let collect =
            queue_open && out.len() < limits.reply_buffer_bytes && shared.may_gather(out.len());
        let written = tokio::select! {
            biased;
            written = write_some(&mut writer, &out, stall), if !out.is_empty() => Some(written),
            reply = next_reply(&mut current, &mut slots, &shared.replies), if collect => {
                match reply {
                    Some(answered) => took_reply(&shared, &metrics, &mut out, answered),
                    None => queue_open = false,
                }
                None
            }
            else => None,
        };
        match written {
            None => {}
            Some(Ok(0)) => break,
            Some(Err(err)) => {
                debug!(%err, "writing replies failed; closing");
                break;
            }
            Some(Ok(n)) => {
                metrics.client_bytes_sent.inc_by(n as u64);
                out.advance(n);
                shared.budget.give_back(n);
                shared
                    .unsent_reply_bytes
                    .store(out.len(), Ordering::Release);
                shared.mark_write();
                shared.progress.notify_one();
                // A TLS stream may hold written bytes until flushed.
                if out.is_empty() && flush_within(&mut writer, stall).await.is_err() {
                    break;
                }
            }
        }
    }
    drop(alive);
    let _ = tokio::time::timeout(stall, writer.shutdown()).await;
}
