//! Peer transport: Raft messages and snapshot chunks between members over TCP.
//!
//! Each member dials every other member and keeps two persistent connections to each for its
//! own outgoing messages: one for Raft's messages (and chunk acks), one for snapshot chunks, so
//! a snapshot streaming to a follower never sits in front of its heartbeats or appends. It
//! accepts the others' connections for incoming ones. A connection opens with a hello naming
//! the lane and the sender, then carries length-prefixed frames, each one encoded
//! [`replica::PeerMessage`].
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
use replica::PeerMessage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tracing::{debug, info, warn};

use crate::shutdown::Shutdown;

/// Messages queued for one peer before new ones are dropped: a few election timeouts' worth of
/// heartbeats plus a full pipeline of appends.
pub const PEER_QUEUE_MAX: usize = 4096;

/// Snapshot chunks queued for one peer before new ones are dropped (the transfer resends):
/// a window of chunks, bounded so a slow follower costs little memory.
pub const BULK_QUEUE_MAX: usize = 8;

/// Snapshot chunks received and not yet taken by the node, over all peers: with 256 KiB
/// chunks, a few MiB at most.
pub const BULK_INBOUND_MAX: usize = 16;

/// Largest frame accepted from a peer: the largest file plus generous room for a batch of other
/// entries and framing. Anything bigger is a broken or hostile peer.
pub const FRAME_BYTES_MAX: usize = 64 << 20;

/// Redial backoff bounds: quick first retries so a restarted member rejoins fast, capped so a
/// long-dead member costs almost nothing.
const DIAL_BACKOFF_MIN: Duration = Duration::from_millis(50);
const DIAL_BACKOFF_MAX: Duration = Duration::from_millis(500);

/// How long an accepted connection may take to say who it is.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// First bytes of every peer connection for Raft's messages: a magic and a version, so a stray
/// client (or a member of a newer, incompatible release) is turned away at once.
const HELLO_MAGIC: &[u8; 8] = b"RAFTFS02";

/// First bytes of a peer connection that carries snapshot chunks.
const HELLO_MAGIC_BULK: &[u8; 8] = b"RAFTFSB2";

/// A message that arrived from a peer.
#[derive(Debug)]
pub struct Inbound {
    /// The sender.
    pub from: NodeId,
    /// The message.
    pub msg: PeerMessage,
}

/// The two lanes to one peer.
#[derive(Debug)]
struct Lanes {
    raft: mpsc::Sender<Bytes>,
    bulk: mpsc::Sender<Bytes>,
}

/// The sending side: two queues per peer, each drained by its own connection task.
#[derive(Debug)]
pub struct Transport {
    peers: HashMap<NodeId, Lanes>,
}

impl Transport {
    /// Starts the dialling tasks for each peer (id and peer address), sending as `me`.
    pub fn start(me: NodeId, peers: Vec<(NodeId, String)>, shutdown: Shutdown) -> Transport {
        let mut lanes = HashMap::new();
        for (id, addr) in peers {
            let (raft, raft_rx) = mpsc::channel(PEER_QUEUE_MAX);
            let (bulk, bulk_rx) = mpsc::channel(BULK_QUEUE_MAX);
            tokio::spawn(dial_loop(
                me,
                id,
                addr.clone(),
                HELLO_MAGIC,
                raft_rx,
                shutdown.clone(),
            ));
            tokio::spawn(dial_loop(
                me,
                id,
                addr,
                HELLO_MAGIC_BULK,
                bulk_rx,
                shutdown.clone(),
            ));
            lanes.insert(id, Lanes { raft, bulk });
        }
        Transport { peers: lanes }
    }

    /// Queues a message for `to`: chunks on the bulk lane, everything else on the Raft lane.
    /// Drops it if the peer is unknown or the lane's queue is full.
    pub fn send(&self, to: NodeId, msg: &PeerMessage) {
        let Some(lanes) = self.peers.get(&to) else {
            warn!(to = to.0, "message for an unknown peer dropped");
            return;
        };
        let lane = match msg {
            PeerMessage::Chunk(_) => &lanes.bulk,
            PeerMessage::Raft(_) | PeerMessage::ChunkAck(_) => &lanes.raft,
        };
        if lane.try_send(Bytes::from(msg.encode())).is_err() {
            debug!(to = to.0, "peer queue full or closed; message dropped");
        }
    }
}

/// Keeps a connection to one peer open, sending what is queued, redialling after failures.
async fn dial_loop(
    me: NodeId,
    peer: NodeId,
    addr: String,
    magic: &'static [u8; 8],
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
        match send_stream(me, magic, stream, &mut queue, &mut shutdown).await {
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
    magic: &[u8; 8],
    mut stream: TcpStream,
    queue: &mut mpsc::Receiver<Bytes>,
    shutdown: &mut Shutdown,
) -> std::io::Result<Stop> {
    let _ = stream.set_nodelay(true);
    let mut hello = BytesMut::with_capacity(16);
    hello.extend_from_slice(magic);
    hello.extend_from_slice(&me.0.to_be_bytes());
    stream.write_all(&hello).await?;
    let (mut read_half, write_half) = stream.into_split();
    let mut frames = FramedWrite::new(write_half, codec());
    let mut probe = [0u8; 1];
    loop {
        let first = tokio::select! {
            msg = queue.recv() => match msg {
                Some(msg) => msg,
                None => return Ok(Stop::QueueClosed),
            },
            // The peer never writes on this connection: a read that returns means it closed
            // (it restarted, say). Notice now rather than lose the next message to a dead
            // socket, and redial.
            closed = read_half.read(&mut probe) => {
                return Err(closed.err().unwrap_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::ConnectionReset, "peer closed")
                }));
            }
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

/// Where incoming messages go: one channel per lane, so chunks (large, few) and Raft's
/// messages (small, many) each have a bound that fits them.
#[derive(Debug, Clone)]
pub struct InboundLanes {
    /// Raft's messages and chunk acks.
    pub raft: mpsc::Sender<Inbound>,
    /// Snapshot chunks.
    pub bulk: mpsc::Sender<Inbound>,
}

/// Accepts peer connections until shutdown, passing their messages to `inbound`. Only members in
/// `members` are accepted.
pub async fn accept_loop(
    listener: TcpListener,
    members: Vec<NodeId>,
    inbound: InboundLanes,
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
    #[error("a message on the wrong lane (chunks only on the bulk connection)")]
    WrongLane,
}

async fn receive_stream(
    mut stream: TcpStream,
    members: &[NodeId],
    inbound: InboundLanes,
    mut shutdown: Shutdown,
) -> Result<(), ReceiveError> {
    let mut hello = [0u8; 16];
    tokio::time::timeout(HELLO_TIMEOUT, stream.read_exact(&mut hello))
        .await
        .map_err(|_| ReceiveError::HelloTimeout)??;
    let (inbound, bulk) = match &hello[..8] {
        m if m == HELLO_MAGIC => (inbound.raft, false),
        m if m == HELLO_MAGIC_BULK => (inbound.bulk, true),
        _ => return Err(ReceiveError::BadHello),
    };
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
            PeerMessage::decode(&frame?).map_err(|err| ReceiveError::Decode(err.to_string()))?;
        if bulk != matches!(msg, PeerMessage::Chunk(_)) {
            return Err(ReceiveError::WrongLane);
        }
        if inbound.send(Inbound { from, msg }).await.is_err() {
            return Ok(()); // The node stopped.
        }
    }
}
