//! Peer transport: Raft messages and snapshot chunks between members over TCP.
//!
//! Each member dials every other member and keeps two persistent connections to each for its
//! own outgoing messages: one for Raft's messages (and chunk acks), one for snapshot chunks, so
//! a snapshot streaming to a follower never sits in front of its heartbeats or appends. It
//! accepts the others' connections for incoming ones. A connection opens with a hello naming
//! the lane, the sender and the sender's peer address, then carries length-prefixed frames,
//! each one encoded [`replica::PeerMessage`].
//!
//! Whom to dial follows the live configuration ([`Transport::update`], from the replica's
//! `Output::Members`), not the starting settings. A hello from a member this node does not know
//! yet (a new leader it has not heard of, or the leader reaching a member that is joining) is
//! accepted and its address learned ([`Transport::learn`]), so the answer can go back: the
//! Raft core decides what a message from outside its configuration may do. (Authenticating
//! peers is the job of mutual TLS; see the hardening notes in docs.)
//!
//! Nothing here may block the node task or grow without bound: each peer has a bounded outgoing
//! queue, and a message that does not fit is dropped (Raft retries what matters: heartbeats
//! repeat, lost appends are resent). A dead peer is redialled with exponential backoff. Incoming
//! messages go to the node through a bounded channel, so a flood from one peer waits on TCP
//! rather than on memory.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use raft::NodeId;
use replica::PeerMessage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
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
const HELLO_MAGIC: &[u8; 8] = b"RAFTFS03";

/// First bytes of a peer connection that carries snapshot chunks.
const HELLO_MAGIC_BULK: &[u8; 8] = b"RAFTFSB3";

/// Longest peer address a hello may carry.
const HELLO_ADDR_BYTES_MAX: usize = 255;

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

/// The sending side: two queues per peer, each drained by its own connection task. A peer's
/// tasks end when its queues are dropped (it left the configuration, or the node stopped).
#[derive(Debug)]
pub struct Transport {
    me: NodeId,
    /// This node's own peer address, sent in every hello.
    me_addr: String,
    /// Every peer dialled, with the address its tasks dial.
    peers: HashMap<NodeId, (String, Lanes)>,
    /// Peers known only from their hello (not in the configuration as this node knows it).
    learned: HashMap<NodeId, String>,
    /// The local address outgoing connections are bound to, if any.
    dial_from: Option<IpAddr>,
}

impl Transport {
    /// A transport sending as `me`, whose peer address is `me_addr`, dialling from
    /// `dial_from` if given; it dials nobody until [`Transport::update`] names the members.
    pub fn new(me: NodeId, me_addr: String, dial_from: Option<IpAddr>) -> Transport {
        Transport {
            me,
            me_addr,
            peers: HashMap::new(),
            learned: HashMap::new(),
            dial_from,
        }
    }

    /// Dials exactly the members of `book` other than this node (and the peers learned from
    /// hellos): new ones get connections, one whose address changed is redialled, one that
    /// left is dropped.
    pub fn update(&mut self, book: &raft::Membership) {
        let mut wanted: HashMap<NodeId, String> = self.learned.clone();
        for (&id, member) in book.members() {
            wanted.insert(id, member.addresses.peer.clone());
            self.learned.remove(&id);
        }
        wanted.remove(&self.me);
        self.peers
            .retain(|id, (addr, _)| wanted.get(id) == Some(addr));
        for (id, addr) in wanted {
            if !self.peers.contains_key(&id) {
                info!(peer = id.0, %addr, "dialling peer");
                let lanes = self.dial(id, &addr);
                self.peers.insert(id, (addr, lanes));
            }
        }
    }

    /// A hello from `id` said it listens at `addr`: dial it if it is not dialled already, so
    /// answers reach a member this node has not been told of yet.
    pub fn learn(&mut self, id: NodeId, addr: String) {
        if id == self.me || self.peers.contains_key(&id) {
            return;
        }
        info!(peer = id.0, %addr, "dialling a peer that introduced itself");
        let lanes = self.dial(id, &addr);
        self.peers.insert(id, (addr.clone(), lanes));
        self.learned.insert(id, addr);
    }

    /// Starts the two dialling tasks to `id` at `addr`.
    fn dial(&self, id: NodeId, addr: &str) -> Lanes {
        let (raft, raft_rx) = mpsc::channel(PEER_QUEUE_MAX);
        let (bulk, bulk_rx) = mpsc::channel(BULK_QUEUE_MAX);
        let hello = |magic| Hello {
            magic,
            me: self.me,
            addr: self.me_addr.clone(),
        };
        let dial = |magic| Dial {
            hello: hello(magic),
            peer: id,
            addr: addr.to_owned(),
            from: self.dial_from,
        };
        tokio::spawn(dial_loop(dial(HELLO_MAGIC), raft_rx));
        tokio::spawn(dial_loop(dial(HELLO_MAGIC_BULK), bulk_rx));
        Lanes { raft, bulk }
    }

    /// Queues a message for `to`: chunks on the bulk lane, everything else on the Raft lane.
    /// Drops it if the peer is unknown or the lane's queue is full.
    pub fn send(&self, to: NodeId, msg: &PeerMessage) {
        let Some((_, lanes)) = self.peers.get(&to) else {
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

/// What a connection says first: its lane, who sends, and where the sender listens.
#[derive(Debug, Clone)]
struct Hello {
    magic: &'static [u8; 8],
    me: NodeId,
    addr: String,
}

impl Hello {
    /// `magic (8) | id (u64 BE) | address length (u16 BE) | address`.
    fn encode(&self) -> BytesMut {
        let addr = &self.addr.as_bytes()[..self.addr.len().min(HELLO_ADDR_BYTES_MAX)];
        let mut out = BytesMut::with_capacity(18 + addr.len());
        out.extend_from_slice(self.magic);
        out.extend_from_slice(&self.me.0.to_be_bytes());
        out.extend_from_slice(&(addr.len() as u16).to_be_bytes());
        out.extend_from_slice(addr);
        out
    }
}

/// Keeps a connection to one peer open, sending what is queued, redialling after failures,
/// until the queue is dropped. (It outlives the node's shutdown signal on purpose: a leader
/// that stops hands over leadership first, and needs its links for that.)
async fn dial_loop(dial: Dial, mut queue: mpsc::Receiver<Bytes>) {
    let Dial {
        hello,
        peer,
        addr,
        from,
    } = dial;
    let mut backoff = DIAL_BACKOFF_MIN;
    loop {
        if queue.is_closed() {
            return;
        }
        let stream = match connect(&addr, from).await {
            Ok(stream) => stream,
            Err(err) => {
                debug!(peer = peer.0, %addr, %err, "dial failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(DIAL_BACKOFF_MAX);
                // Messages queued while the peer was away are stale; Raft resends what matters.
                while queue.try_recv().is_ok() {}
                continue;
            }
        };
        backoff = DIAL_BACKOFF_MIN;
        debug!(peer = peer.0, %addr, "connected to peer");
        match send_stream(&hello, stream, &mut queue).await {
            Ok(()) => return,
            Err(err) => debug!(peer = peer.0, %err, "peer connection lost"),
        }
    }
}

/// One outgoing lane to one peer: what to say first, to whom, where, and from which address.
#[derive(Debug)]
struct Dial {
    hello: Hello,
    peer: NodeId,
    addr: String,
    from: Option<IpAddr>,
}

/// Connects to `addr`, from the local address `from` if given.
async fn connect(addr: &str, from: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(from) = from else {
        return TcpStream::connect(addr).await;
    };
    let mut last = None;
    for target in tokio::net::lookup_host(addr).await? {
        if target.is_ipv4() != from.is_ipv4() {
            continue;
        }
        let socket = if from.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.bind(SocketAddr::new(from, 0))?;
        match socket.connect(target).await {
            Ok(stream) => return Ok(stream),
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("{addr} has no address of the family of {from}"),
        )
    }))
}

/// Sends what is queued on `stream` until the queue is dropped (`Ok`) or the link fails.
async fn send_stream(
    hello: &Hello,
    mut stream: TcpStream,
    queue: &mut mpsc::Receiver<Bytes>,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    stream.write_all(&hello.encode()).await?;
    let (mut read_half, write_half) = stream.into_split();
    let mut frames = FramedWrite::new(write_half, codec());
    let mut probe = [0u8; 1];
    loop {
        let first = tokio::select! {
            msg = queue.recv() => match msg {
                Some(msg) => msg,
                None => return Ok(()),
            },
            // The peer never writes on this connection: a read that returns means it closed
            // (it restarted, say). Notice now rather than lose the next message to a dead
            // socket, and redial.
            closed = read_half.read(&mut probe) => {
                return Err(closed.err().unwrap_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::ConnectionReset, "peer closed")
                }));
            }
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
    /// Who introduced itself, and where it listens (for [`Transport::learn`]).
    pub hellos: mpsc::Sender<(NodeId, String)>,
}

/// Hellos queued for the node: a handful of peers connect at once, at most.
pub const HELLO_QUEUE_MAX: usize = 64;

/// Accepts peer connections until shutdown, passing their messages to `inbound`. Connections
/// already open keep delivering until the node stops (a stopping leader hands over first).
pub async fn accept_loop(
    listener: TcpListener,
    me: NodeId,
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
                let inbound = inbound.clone();
                tokio::spawn(async move {
                    if let Err(err) = receive_stream(stream, me, inbound).await {
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
    #[error("a hello naming id {0}")]
    BadId(u64),
    #[error("undecodable message: {0}")]
    Decode(String),
    #[error("a message on the wrong lane (chunks only on the bulk connection)")]
    WrongLane,
}

/// Reads a hello: `(lane magic, sender, sender's address)`.
async fn read_hello(stream: &mut TcpStream) -> Result<([u8; 8], NodeId, String), ReceiveError> {
    let mut head = [0u8; 18];
    stream.read_exact(&mut head).await?;
    let mut magic = [0u8; 8];
    magic.copy_from_slice(&head[..8]);
    let mut id = [0u8; 8];
    id.copy_from_slice(&head[8..16]);
    let len = usize::from(u16::from_be_bytes([head[16], head[17]]));
    if len > HELLO_ADDR_BYTES_MAX {
        return Err(ReceiveError::BadHello);
    }
    let mut addr = vec![0u8; len];
    stream.read_exact(&mut addr).await?;
    let addr = String::from_utf8(addr).map_err(|_| ReceiveError::BadHello)?;
    Ok((magic, NodeId(u64::from_be_bytes(id)), addr))
}

async fn receive_stream(
    mut stream: TcpStream,
    me: NodeId,
    inbound: InboundLanes,
) -> Result<(), ReceiveError> {
    let (magic, from, addr) = tokio::time::timeout(HELLO_TIMEOUT, read_hello(&mut stream))
        .await
        .map_err(|_| ReceiveError::HelloTimeout)??;
    let (lane, bulk) = match &magic {
        m if m == HELLO_MAGIC => (inbound.raft, false),
        m if m == HELLO_MAGIC_BULK => (inbound.bulk, true),
        _ => return Err(ReceiveError::BadHello),
    };
    if from == me || from.0 == 0 {
        return Err(ReceiveError::BadId(from.0));
    }
    info!(peer = from.0, %addr, "peer connected");
    if !addr.is_empty() {
        let _ = inbound.hellos.try_send((from, addr));
    }
    let inbound = lane;
    let mut frames = FramedRead::new(stream, codec());
    loop {
        let Some(frame) = frames.next().await else {
            return Ok(());
        };
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
