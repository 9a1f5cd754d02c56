//! Peer transport: Raft messages between members over TCP.
//!
//! Each member dials every other member and keeps one persistent connection to each for its own
//! outgoing messages; it accepts the others' connections for incoming ones. A connection opens
//! with a hello frame naming the sender, then carries length-prefixed frames, each one encoded
//! [`raft::Message`].
//!
//! Nothing here may block the node task or grow without bound: each peer has a bounded outgoing
//! queue, and a message that does not fit is dropped (Raft retries what matters: heartbeats
//! repeat, lost appends are resent). A dead peer is redialled with exponential backoff. Incoming
//! messages go to the node through a bounded channel, so a flood from one peer waits on TCP
//! rather than on memory.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use raft::NodeId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tracing::{debug, info, warn};

use crate::shutdown::Shutdown;

/// Messages queued for one peer before new ones are dropped: a few election timeouts' worth of
/// heartbeats plus a full pipeline of appends.
pub const PEER_QUEUE_MAX: usize = 4096;

/// Largest frame accepted from a peer: the largest file plus generous room for a batch of other
/// entries and framing. Anything bigger is a broken or hostile peer.
pub const FRAME_BYTES_MAX: usize = 64 << 20;

/// Redial backoff bounds: quick first retries so a restarted member rejoins fast, capped so a
/// long-dead member costs almost nothing.
const DIAL_BACKOFF_MIN: Duration = Duration::from_millis(50);
const DIAL_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// How long an accepted connection may take to say who it is.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// First bytes of every peer connection: a magic and a version, so a stray client (or a member of
/// a newer, incompatible release) is turned away at once.
const HELLO_MAGIC: &[u8; 8] = b"RAFTFS01";

/// A message that arrived from a peer.
#[derive(Debug)]
pub struct Inbound {
    /// The sender.
    pub from: NodeId,
    /// The message.
    pub msg: raft::Message,
}

/// The sending side: one queue per peer, drained by that peer's connection task.
#[derive(Debug)]
pub struct Transport {
    peers: HashMap<NodeId, mpsc::Sender<Bytes>>,
}

impl Transport {
    /// Starts a dialling task for each peer (id and peer address), sending as `me`.
    pub fn start(me: NodeId, peers: Vec<(NodeId, String)>, shutdown: Shutdown) -> Transport {
        let mut queues = HashMap::new();
        for (id, addr) in peers {
            let (tx, rx) = mpsc::channel(PEER_QUEUE_MAX);
            tokio::spawn(dial_loop(me, id, addr, rx, shutdown.clone()));
            queues.insert(id, tx);
        }
        Transport { peers: queues }
    }

    /// Queues a message for `to`; drops it if the peer is unknown or its queue is full.
    pub fn send(&self, to: NodeId, msg: &raft::Message) {
        let Some(queue) = self.peers.get(&to) else {
            warn!(to = to.0, "message for an unknown peer dropped");
            return;
        };
        if queue.try_send(Bytes::from(msg.encode())).is_err() {
            debug!(to = to.0, "peer queue full or closed; message dropped");
        }
    }
}

/// Keeps a connection to one peer open, sending what is queued, redialling after failures.
async fn dial_loop(
    me: NodeId,
    peer: NodeId,
    addr: String,
    mut queue: mpsc::Receiver<Bytes>,
    mut shutdown: Shutdown,
) {
    let mut backoff = DIAL_BACKOFF_MIN;
    loop {
        let connected = tokio::select! {
            connected = TcpStream::connect(&addr) => connected,
            _ = shutdown.wait() => return,
        };
        let stream = match connected {
            Ok(stream) => stream,
            Err(err) => {
                debug!(peer = peer.0, %addr, %err, "dial failed");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.wait() => return,
                }
                backoff = (backoff * 2).min(DIAL_BACKOFF_MAX);
                // Messages queued while the peer was away are stale; Raft resends what matters.
                while queue.try_recv().is_ok() {}
                continue;
            }
        };
        backoff = DIAL_BACKOFF_MIN;
        debug!(peer = peer.0, %addr, "connected to peer");
        match send_stream(me, stream, &mut queue, &mut shutdown).await {
            Ok(Stop::Shutdown) | Ok(Stop::QueueClosed) => return,
            Err(err) => debug!(peer = peer.0, %err, "peer connection lost"),
        }
    }
}

enum Stop {
    Shutdown,
    QueueClosed,
}

async fn send_stream(
    me: NodeId,
    mut stream: TcpStream,
    queue: &mut mpsc::Receiver<Bytes>,
    shutdown: &mut Shutdown,
) -> std::io::Result<Stop> {
    let _ = stream.set_nodelay(true);
    let mut hello = BytesMut::with_capacity(16);
    hello.extend_from_slice(HELLO_MAGIC);
    hello.extend_from_slice(&me.0.to_be_bytes());
    stream.write_all(&hello).await?;
    let mut frames = FramedWrite::new(stream, codec());
    loop {
        let first = tokio::select! {
            msg = queue.recv() => match msg {
                Some(msg) => msg,
                None => return Ok(Stop::QueueClosed),
            },
            _ = shutdown.wait() => return Ok(Stop::Shutdown),
        };
        // Feed everything already queued, then flush once: one syscall for a burst.
        frames.feed(first).await?;
        while let Ok(msg) = queue.try_recv() {
            frames.feed(msg).await?;
        }
        SinkExt::<Bytes>::flush(&mut frames).await?;
    }
}

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .max_frame_length(FRAME_BYTES_MAX)
        .new_codec()
}

/// Accepts peer connections until shutdown, passing their messages to `inbound`. Only members in
/// `members` are accepted.
pub async fn accept_loop(
    listener: TcpListener,
    members: Vec<NodeId>,
    inbound: mpsc::Sender<Inbound>,
    mut shutdown: Shutdown,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait() => return,
        };
        match accepted {
            Ok((stream, addr)) => {
                let members = members.clone();
                let inbound = inbound.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    if let Err(err) = receive_stream(stream, &members, inbound, shutdown).await {
                        debug!(%addr, %err, "peer connection ended");
                    }
                });
            }
            Err(err) => {
                warn!(%err, "peer accept failed");
                tokio::time::sleep(DIAL_BACKOFF_MIN).await;
            }
        }
    }
}

/// Why an incoming peer connection was closed.
#[derive(Debug, thiserror::Error)]
enum ReceiveError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("no hello within {HELLO_TIMEOUT:?}")]
    HelloTimeout,
    #[error("not a raftfs peer (bad hello)")]
    BadHello,
    #[error("node {0} is not a member")]
    Stranger(u64),
    #[error("undecodable message: {0}")]
    Decode(String),
}

async fn receive_stream(
    mut stream: TcpStream,
    members: &[NodeId],
    inbound: mpsc::Sender<Inbound>,
    mut shutdown: Shutdown,
) -> Result<(), ReceiveError> {
    let mut hello = [0u8; 16];
    tokio::time::timeout(HELLO_TIMEOUT, stream.read_exact(&mut hello))
        .await
        .map_err(|_| ReceiveError::HelloTimeout)??;
    if &hello[..8] != HELLO_MAGIC {
        return Err(ReceiveError::BadHello);
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&hello[8..]);
    let from = NodeId(u64::from_be_bytes(id));
    if !members.contains(&from) {
        return Err(ReceiveError::Stranger(from.0));
    }
    info!(peer = from.0, "peer connected");
    let mut frames = FramedRead::new(stream, codec());
    loop {
        let frame = tokio::select! {
            frame = frames.next() => frame,
            _ = shutdown.wait() => return Ok(()),
        };
        let Some(frame) = frame else { return Ok(()) };
        let msg =
            raft::Message::decode(&frame?).map_err(|err| ReceiveError::Decode(err.to_string()))?;
        if inbound.send(Inbound { from, msg }).await.is_err() {
            return Ok(()); // The node stopped.
        }
    }
}
