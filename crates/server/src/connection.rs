//! One client connection: parse commands as bytes arrive, hand them to the node, and write the
//! replies back in the order the commands came, without waiting for the client to read earlier
//! ones (pipelining).
//!
//! Two halves run concurrently: the reader decodes and submits, pushing a reply slot per command
//! onto a bounded queue; the writer takes slots in order, waits for each reply, and writes them,
//! flushing whenever no further reply is ready. The bounded queue is the back-pressure: a client
//! that pipelines faster than the cluster commits is simply not read from.

use std::time::Duration;

use bytes::BytesMut;
use fs::Reply;
use fs::codec::{Decoded, Decoder, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use crate::deadline::sleep_until;
use crate::node::NodeHandle;
use crate::shutdown::Shutdown;

/// Commands one connection may have in flight before we stop reading from it. Deep enough to
/// keep a pipelining client's batches full, small enough to bound per-connection memory.
pub const PIPELINE_DEPTH_MAX: usize = 1024;

/// Bytes asked of the socket per read; the decoder keeps at most about one line plus one file.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Default for how long a connection may sit in the middle of a command (a line without its
/// end, content not yet complete) before it is closed: generous for a person typing into telnet,
/// short enough that a client that announced bytes it never sends does not hold its slot forever.
pub const PARTIAL_COMMAND_TIMEOUT_DEFAULT: Duration = Duration::from_secs(120);

/// What bounds one client connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// The protocol limits (largest file).
    pub codec: Limits,
    /// How long a connection may sit in the middle of a command.
    pub partial_command_timeout: Duration,
}

/// Output buffered before a write is forced even if more replies are ready.
const WRITE_BATCH_BYTES: usize = 256 * 1024;

/// The place of one command's reply in the connection's reply order.
enum Slot {
    /// The reply is known already (a parse error, say).
    Ready(Reply),
    /// The node will answer.
    Pending(oneshot::Receiver<Reply>),
}

impl Slot {
    /// Waits for the reply. A node that dropped the command without answering (it is shutting
    /// down) gets `ERR_INTERNAL`, as SPEC says.
    async fn reply(self) -> Reply {
        match self {
            Slot::Ready(reply) => reply,
            Slot::Pending(rx) => rx.await.unwrap_or(Reply::Internal),
        }
    }
}

/// Serves one client until it disconnects, framing is lost, or shutdown is signalled (shutdown
/// stops reading between commands; replies for commands already read are still written).
pub async fn serve(
    stream: TcpStream,
    node: NodeHandle,
    limits: ConnectionLimits,
    shutdown: Shutdown,
) {
    if let Err(err) = stream.set_nodelay(true) {
        debug!(%err, "set_nodelay failed");
    }
    let (reader, writer) = stream.into_split();
    let (slots_tx, slots_rx) = mpsc::channel(PIPELINE_DEPTH_MAX);
    let write_task = tokio::spawn(write_replies(writer, slots_rx));
    read_commands(reader, node, limits, slots_tx, shutdown).await;
    // The reader dropped its sender: the writer ends once every queued reply is written.
    if let Err(err) = write_task.await {
        debug!(%err, "reply writer ended abnormally");
    }
}

async fn read_commands(
    mut reader: OwnedReadHalf,
    node: NodeHandle,
    limits: ConnectionLimits,
    slots: mpsc::Sender<Slot>,
    mut shutdown: Shutdown,
) {
    let mut decoder = Decoder::new(limits.codec);
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    loop {
        // Take every whole command already buffered before reading again.
        while let Some(decoded) = decoder.decode(&mut buf) {
            let (slot, close) = match decoded {
                Decoded::Command(command) => match node.submit(command).await {
                    Some(rx) => (Slot::Pending(rx), false),
                    None => (Slot::Ready(Reply::Internal), true),
                },
                Decoded::Admin(admin) => match node.admin(admin).await {
                    Some(rx) => (Slot::Pending(rx), false),
                    None => (Slot::Ready(Reply::Internal), true),
                },
                Decoded::Error(err) => {
                    debug!(%err, "malformed command");
                    (Slot::Ready(Reply::CmdErr), err.closes_connection())
                }
            };
            if slots.send(slot).await.is_err() || close {
                return; // The writer is gone (client closed), or framing is lost.
            }
        }
        if buf.capacity() - buf.len() < READ_CHUNK_BYTES / 4 {
            buf.reserve(READ_CHUNK_BYTES);
        }
        let between_commands = decoder.at_command_boundary() && buf.is_empty();
        if between_commands && shutdown.is_triggered() {
            return;
        }
        let idle_limit = if between_commands {
            None
        } else {
            Some(tokio::time::Instant::now() + limits.partial_command_timeout)
        };
        tokio::select! {
            read = reader.read_buf(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            // Shutdown stops a connection between commands; one in the middle of a command
            // may finish it (the listener's drain timeout bounds how long that can take).
            _ = shutdown.wait(), if between_commands => return,
            _ = sleep_until(idle_limit) => {
                debug!("connection idle in the middle of a command; closing");
                return;
            }
        }
    }
}

async fn write_replies(mut writer: OwnedWriteHalf, mut slots: mpsc::Receiver<Slot>) {
    let mut out = BytesMut::with_capacity(4096);
    while let Some(slot) = slots.recv().await {
        slot.reply().await.encode(&mut out);
        // Gather every reply that is ready now into one write.
        while out.len() < WRITE_BATCH_BYTES {
            match slots.try_recv() {
                Ok(Slot::Ready(reply)) => reply.encode(&mut out),
                Ok(Slot::Pending(mut rx)) => match rx.try_recv() {
                    Ok(reply) => reply.encode(&mut out),
                    Err(oneshot::error::TryRecvError::Closed) => Reply::Internal.encode(&mut out),
                    Err(oneshot::error::TryRecvError::Empty) => {
                        // Not ready: send what we have, then wait for it.
                        if writer.write_all(&out).await.is_err() {
                            return;
                        }
                        out.clear();
                        rx.await.unwrap_or(Reply::Internal).encode(&mut out);
                    }
                },
                Err(_) => break,
            }
        }
        if writer.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
    }
    let _ = writer.shutdown().await;
}
