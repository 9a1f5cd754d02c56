//! Peer transport: Raft messages and snapshot chunks between members over TCP.
//!
//! Each member dials every other member and keeps two persistent connections to each for its
//! own outgoing messages: one for Raft's messages (and chunk acks), one for snapshot chunks, so
//! a snapshot streaming to a follower never sits in front of its heartbeats or appends. It
//! accepts the others' connections for incoming ones. A connection is mutual TLS under the
//! cluster CA ([`crate::tls`]; plaintext only with `insecure_peers`), then a hello naming the
//! lane, the sender, the cluster and the sender's peer address, then length-prefixed frames,
//! each one encoded [`replica::PeerMessage`].
//!
//! Who may talk: the TLS handshake admits only holders of a certificate of the cluster CA, and
//! the hello's id must be the one the certificate proves, in the same cluster. Each member
//! gets one inbound connection per lane (a newer one replaces the older: a restarted member
//! reconnects at once), connections still in their handshake are capped, and a handshake gets
//! [`HELLO_TIMEOUT`] to finish, so a flood of connections to the peer port costs a bounded
//! number of sockets and no memory beyond them.
//!
//! Whom to dial follows the live configuration ([`Transport::update`], from the replica's
//! `Output::Members`), not the starting settings. A hello from a member this node does not know
//! yet (a new leader it has not heard of, or the leader reaching a member that is joining) is
//! accepted and its address learned ([`Transport::learn`]), so the answer can go back: the
//! Raft core decides what a message from outside its configuration may do (thesis 4.1: a
//! member that missed a change must still follow the new leader), and the certificate is the
//! authority to take part at all.
//!
//! Nothing here may block the node task or grow without bound: each peer has a bounded outgoing
//! queue, and a message that does not fit is dropped (Raft retries what matters: heartbeats
//! repeat, lost appends are resent). A dead peer is redialled with exponential backoff. Incoming
//! frames are checked against [`FRAME_BYTES_MAX`] before their bytes are read, and take their
//! size from a byte budget ([`INBOUND_BYTES_MAX`]) that they return when the node has taken
//! them, so a flood from peers waits on TCP rather than on memory.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::SinkExt;
use raft::NodeId;
use replica::PeerMessage;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_util::codec::{FramedWrite, LengthDelimitedCodec};
use tracing::{debug, info, warn};

use crate::metrics::{DropReason, Metrics};
use crate::shutdown::Shutdown;
use crate::tls::{CLUSTER_ID_BYTES_MAX, PeerTls, TlsError};

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

/// Bytes of received frames the node has not taken yet, over all peers and lanes: room for two
/// of the largest frames, so one always fits.
pub const INBOUND_BYTES_MAX: usize = 2 * FRAME_BYTES_MAX;

/// Accepted peer connections still in their TLS handshake or hello: a few per member while a
/// cluster restarts, bounded so a flood of connections is turned away at once.
pub const HANDSHAKES_MAX: usize = 32;

/// Redial backoff bounds: quick first retries so a restarted member rejoins fast, capped so a
/// long-dead member costs almost nothing.
const DIAL_BACKOFF_MIN: Duration = Duration::from_millis(50);
const DIAL_BACKOFF_MAX: Duration = Duration::from_millis(500);

/// How long an accepted connection may take to say who it is.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// First bytes of every peer connection for Raft's messages: a magic and a version, so a stray
/// client (or a member of a newer, incompatible release) is turned away at once.
const HELLO_MAGIC: &[u8; 8] = b"RAFTFS04";

/// First bytes of a peer connection that carries snapshot chunks.
const HELLO_MAGIC_BULK: &[u8; 8] = b"RAFTFSB4";

/// Longest peer address a hello may carry.
const HELLO_ADDR_BYTES_MAX: usize = 255;

/// A message that arrived from a peer.
#[derive(Debug)]
pub struct Inbound {
    /// The sender.
    pub from: NodeId,
    /// The message.
    pub msg: PeerMessage,
    /// The message's share of the inbound byte budget, returned when this is dropped.
    pub budget: OwnedSemaphorePermit,
}

/// How members prove who they are to each other.
#[derive(Debug, Clone)]
pub enum Security {
    /// Mutual TLS under the cluster CA.
    Tls(Arc<PeerTls>),
    /// Plaintext, unauthenticated: only with `insecure_peers = true`, on a trusted network.
    Insecure,
}

/// What every connection of this node says and checks: who it is, in which cluster, and how
/// peers authenticate.
#[derive(Debug, Clone)]
pub struct PeerIdentity {
    /// This node's id.
    pub me: NodeId,
    /// The cluster's id, sent and checked in every hello.
    pub cluster: String,
    /// TLS or plaintext.
    pub security: Security,
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
    /// `None`: this node has no peer transport (a single-node store without certificates).
    identity: Option<PeerIdentity>,
    /// Whether the missing transport was logged.
    warned_closed: bool,
    /// This node's own peer address, sent in every hello.
    me_addr: String,
    /// Every peer dialled, with the address its tasks dial.
    peers: HashMap<NodeId, (String, Lanes)>,
    /// Peers known only from their hello (not in the configuration as this node knows it).
    learned: HashMap<NodeId, String>,
    /// The local address outgoing connections are bound to, if any.
    dial_from: Option<IpAddr>,
    /// Where bytes sent and messages dropped are counted.
    metrics: Arc<Metrics>,
}

impl Transport {
    /// A transport sending as `me` with `identity` (`None`: never dials), whose peer address
    /// is `me_addr`, dialling from `dial_from` if given; it dials nobody until
    /// [`Transport::update`] names the members. Bytes sent and messages dropped count into
    /// `metrics`.
    pub fn new(
        me: NodeId,
        identity: Option<PeerIdentity>,
        me_addr: String,
        dial_from: Option<IpAddr>,
        metrics: Arc<Metrics>,
    ) -> Transport {
        Transport {
            me,
            identity,
            warned_closed: false,
            me_addr,
            peers: HashMap::new(),
            learned: HashMap::new(),
            dial_from,
            metrics,
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
        let Some(identity) = self.identity.clone() else {
            if !wanted.is_empty() && !self.warned_closed {
                warn!(
                    "the configuration has other members, but this node has no peer \
                     certificates (and insecure peers are off): it cannot reach them"
                );
                self.warned_closed = true;
            }
            return;
        };
        self.peers
            .retain(|id, (addr, _)| wanted.get(id) == Some(addr));
        for (id, addr) in wanted {
            if !self.peers.contains_key(&id) {
                info!(peer = id.0, %addr, "dialling peer");
                let lanes = self.dial(&identity, id, &addr);
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
        let Some(identity) = self.identity.clone() else {
            return;
        };
        info!(peer = id.0, %addr, "dialling a peer that introduced itself");
        let lanes = self.dial(&identity, id, &addr);
        self.peers.insert(id, (addr.clone(), lanes));
        self.learned.insert(id, addr);
    }

    /// Starts the two dialling tasks to `id` at `addr`, speaking as `identity`.
    fn dial(&self, identity: &PeerIdentity, id: NodeId, addr: &str) -> Lanes {
        let (raft, raft_rx) = mpsc::channel(PEER_QUEUE_MAX);
        let (bulk, bulk_rx) = mpsc::channel(BULK_QUEUE_MAX);
        let hello = |magic| Hello {
            magic,
            me: self.me,
            cluster: identity.cluster.clone(),
            addr: self.me_addr.clone(),
        };
        let dial = |magic| Dial {
            hello: hello(magic),
            peer: id,
            addr: addr.to_owned(),
            from: self.dial_from,
            security: identity.security.clone(),
            metrics: self.metrics.clone(),
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
            self.metrics.peer_dropped(DropReason::UnknownPeer);
            return;
        };
        let lane = match msg {
            PeerMessage::Chunk(_) => &lanes.bulk,
            PeerMessage::Raft(_) | PeerMessage::ChunkAck(_) => &lanes.raft,
        };
        if lane.try_send(Bytes::from(msg.encode())).is_err() {
            debug!(to = to.0, "peer queue full or closed; message dropped");
            self.metrics.peer_dropped(DropReason::QueueFull);
        }
    }
}

/// What a connection says first: its lane, who sends, its cluster, and where the sender
/// listens.
#[derive(Debug, Clone)]
struct Hello {
    magic: &'static [u8; 8],
    me: NodeId,
    cluster: String,
    addr: String,
}

impl Hello {
    /// `magic (8) | id (u64 BE) | cluster length (u8) | cluster | address length (u16 BE) |
    /// address`.
    fn encode(&self) -> BytesMut {
        let cluster = &self.cluster.as_bytes()[..self.cluster.len().min(CLUSTER_ID_BYTES_MAX)];
        let addr = &self.addr.as_bytes()[..self.addr.len().min(HELLO_ADDR_BYTES_MAX)];
        let mut out = BytesMut::with_capacity(19 + cluster.len() + addr.len());
        out.extend_from_slice(self.magic);
        out.extend_from_slice(&self.me.0.to_be_bytes());
        out.extend_from_slice(&[cluster.len() as u8]);
        out.extend_from_slice(cluster);
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
        security,
        metrics,
    } = dial;
    let mut backoff = DIAL_BACKOFF_MIN;
    // Why the last attempt failed: a new reason is a warning (a certificate the peer refuses,
    // a peer gone), the same one again while it persists is only debug, so a member that is
    // down for an hour leaves one line, not one per backoff.
    let mut last_failure: Option<String> = None;
    loop {
        if queue.is_closed() {
            return;
        }
        let sent = match connect(&addr, from).await {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                match &security {
                    Security::Insecure => {
                        backoff = DIAL_BACKOFF_MIN;
                        last_failure = None;
                        send_stream(&hello, tcp, &mut queue, &metrics).await
                    }
                    Security::Tls(tls) => {
                        match tokio::time::timeout(HELLO_TIMEOUT, tls.connect(tcp, peer)).await {
                            Ok(Ok(stream)) => {
                                // The peer proved who it is: a link worth redialling at once.
                                backoff = DIAL_BACKOFF_MIN;
                                last_failure = None;
                                send_stream(&hello, stream, &mut queue, &metrics).await
                            }
                            Ok(Err(err)) => Err(err),
                            Err(_) => Err(std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                "TLS handshake timed out",
                            )),
                        }
                    }
                }
            }
            Err(err) => Err(err),
        };
        match sent {
            Ok(()) => return,
            Err(err) => {
                // A refused connection or handshake (a wrong certificate, a proxy in front of
                // a member that is down) must not spin.
                let reason = err.to_string();
                if last_failure.as_deref() == Some(reason.as_str()) {
                    debug!(peer = peer.0, %addr, %err, "peer link failed");
                } else {
                    warn!(peer = peer.0, %addr, %err, "peer link failed");
                    last_failure = Some(reason);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(DIAL_BACKOFF_MAX);
                // Messages queued while the peer was away are stale (Raft resends what
                // matters), and a dead peer must not pin a full queue of appends.
                let mut stale = 0;
                while queue.try_recv().is_ok() {
                    stale += 1;
                }
                metrics.peer_dropped_n(DropReason::LinkDown, stale);
            }
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
    security: Security,
    metrics: Arc<Metrics>,
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
async fn send_stream<S: AsyncRead + AsyncWrite + Unpin>(
    hello: &Hello,
    mut stream: S,
    queue: &mut mpsc::Receiver<Bytes>,
    metrics: &Metrics,
) -> std::io::Result<()> {
    stream.write_all(&hello.encode()).await?;
    stream.flush().await?;
    let (mut read_half, write_half) = tokio::io::split(stream);
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
        let mut bytes = FRAME_PREFIX_BYTES + first.len();
        frames.feed(first).await?;
        while let Ok(msg) = queue.try_recv() {
            bytes += FRAME_PREFIX_BYTES + msg.len();
            frames.feed(msg).await?;
        }
        metrics.peer_bytes_sent.inc_by(bytes as u64);
        SinkExt::<Bytes>::flush(&mut frames).await?;
    }
}

/// Bytes of the length before every frame.
const FRAME_PREFIX_BYTES: usize = 4;

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(FRAME_PREFIX_BYTES)
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

/// Accepts peer connections until shutdown, passing their messages to `inbound` and counting
/// their bytes into `metrics`. Connections
/// already open keep delivering until the node stops (a stopping leader hands over first).
pub async fn accept_loop(
    listener: TcpListener,
    identity: PeerIdentity,
    inbound: InboundLanes,
    metrics: Arc<Metrics>,
    mut shutdown: Shutdown,
) {
    let acceptor = Arc::new(Acceptor {
        identity,
        inbound,
        metrics,
        handshakes: Arc::new(Semaphore::new(HANDSHAKES_MAX)),
        budget: Arc::new(Semaphore::new(INBOUND_BYTES_MAX)),
        open: Mutex::new(HashMap::new()),
        generation: AtomicU64::new(0),
        refusals: Mutex::new(Refusals::default()),
    });
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait() => return,
        };
        match accepted {
            Ok((stream, addr)) => {
                let Ok(handshake) = acceptor.handshakes.clone().try_acquire_owned() else {
                    debug!(%addr, "too many peer handshakes in flight; connection closed");
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Err(err) = acceptor.receive(stream, handshake).await {
                        match err {
                            ReceiveError::Io(_) => debug!(%addr, %err, "peer connection ended"),
                            err => acceptor.refused(addr, &err),
                        }
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

/// The accepting side's shared state.
struct Acceptor {
    identity: PeerIdentity,
    inbound: InboundLanes,
    /// Where bytes received are counted.
    metrics: Arc<Metrics>,
    /// Permits for connections in their handshake.
    handshakes: Arc<Semaphore>,
    /// Bytes of frames received and not yet taken by the node.
    budget: Arc<Semaphore>,
    /// The one open connection per (member, bulk lane): its generation, and the sender whose
    /// drop closes it.
    open: Mutex<HashMap<(NodeId, bool), OpenConnection>>,
    generation: AtomicU64,
    /// Refused connections are worth a warning (a wrong certificate, another cluster), but a
    /// flood of them must not flood the log: at most one a second, naming how many were
    /// refused since the last.
    refusals: Mutex<Refusals>,
}

/// When the accept side last warned of a refused connection, and how many it left unsaid.
#[derive(Default)]
struct Refusals {
    last_warned: Option<tokio::time::Instant>,
    unsaid: u64,
}

/// Shortest gap between two warnings of refused peer connections.
const REFUSAL_WARN_EVERY: Duration = Duration::from_secs(1);

impl Acceptor {
    /// Logs a refused connection: a warning at most every [`REFUSAL_WARN_EVERY`], else debug.
    fn refused(&self, addr: SocketAddr, err: &ReceiveError) {
        let now = tokio::time::Instant::now();
        let mut refusals = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        let due = refusals
            .last_warned
            .is_none_or(|last| now.duration_since(last) >= REFUSAL_WARN_EVERY);
        if due {
            let unsaid = std::mem::take(&mut refusals.unsaid);
            refusals.last_warned = Some(now);
            drop(refusals);
            warn!(%addr, %err, refused_unlogged = unsaid, "peer connection refused");
        } else {
            refusals.unsaid += 1;
            drop(refusals);
            debug!(%addr, %err, "peer connection refused");
        }
    }
}

/// An open inbound connection: its generation, and the sender whose drop closes it.
type OpenConnection = (u64, oneshot::Sender<()>);

/// Why an incoming peer connection was closed.
#[derive(Debug, thiserror::Error)]
enum ReceiveError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS handshake refused: {0}")]
    Handshake(std::io::Error),
    #[error("no TLS handshake and hello within {HELLO_TIMEOUT:?}")]
    HelloTimeout,
    #[error("not a raftfs peer (bad hello)")]
    BadHello,
    #[error("a hello naming id {0}")]
    BadId(u64),
    #[error("a hello from cluster {theirs:?}; this is cluster {ours:?}")]
    OtherCluster { theirs: String, ours: String },
    #[error("{0}")]
    Certificate(#[from] TlsError),
    #[error("a frame of {0} bytes (at most {FRAME_BYTES_MAX})")]
    FrameTooLarge(usize),
    #[error("undecodable message: {0}")]
    Decode(String),
    #[error("a message on the wrong lane (chunks only on the bulk connection)")]
    WrongLane,
}

/// A hello as read: lane magic, sender, cluster, sender's address.
struct ReceivedHello {
    magic: [u8; 8],
    from: NodeId,
    cluster: String,
    addr: String,
}

/// Reads a hello, allocating nothing beyond its bounded fields.
async fn read_hello<S: AsyncRead + Unpin>(stream: &mut S) -> Result<ReceivedHello, ReceiveError> {
    let mut head = [0u8; 17];
    stream.read_exact(&mut head).await?;
    let mut magic = [0u8; 8];
    magic.copy_from_slice(&head[..8]);
    if &magic != HELLO_MAGIC && &magic != HELLO_MAGIC_BULK {
        return Err(ReceiveError::BadHello);
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&head[8..16]);
    let cluster_len = usize::from(head[16]);
    if cluster_len > CLUSTER_ID_BYTES_MAX {
        return Err(ReceiveError::BadHello);
    }
    let mut cluster = vec![0u8; cluster_len];
    stream.read_exact(&mut cluster).await?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let len = usize::from(u16::from_be_bytes(len));
    if len > HELLO_ADDR_BYTES_MAX {
        return Err(ReceiveError::BadHello);
    }
    let mut addr = vec![0u8; len];
    stream.read_exact(&mut addr).await?;
    Ok(ReceivedHello {
        magic,
        from: NodeId(u64::from_be_bytes(id)),
        cluster: String::from_utf8(cluster).map_err(|_| ReceiveError::BadHello)?,
        addr: String::from_utf8(addr).map_err(|_| ReceiveError::BadHello)?,
    })
}

impl Acceptor {
    /// Authenticates one accepted connection and delivers its messages.
    async fn receive(
        &self,
        tcp: TcpStream,
        handshake: OwnedSemaphorePermit,
    ) -> Result<(), ReceiveError> {
        let _ = tcp.set_nodelay(true);
        match &self.identity.security {
            Security::Insecure => {
                let (stream, hello) = tokio::time::timeout(HELLO_TIMEOUT, async {
                    let mut stream = BufReader::new(tcp);
                    let hello = self.checked_hello(&mut stream).await?;
                    Ok::<_, ReceiveError>((stream, hello))
                })
                .await
                .map_err(|_| ReceiveError::HelloTimeout)??;
                drop(handshake);
                self.deliver(stream, hello).await
            }
            Security::Tls(tls) => {
                let (stream, hello) = tokio::time::timeout(HELLO_TIMEOUT, async {
                    let tls_stream = tls.accept(tcp).await.map_err(ReceiveError::Handshake)?;
                    let mut stream = BufReader::new(tls_stream);
                    let hello = self.checked_hello(&mut stream).await?;
                    tls.check_member(stream.get_ref(), hello.from)?;
                    Ok::<_, ReceiveError>((stream, hello))
                })
                .await
                .map_err(|_| ReceiveError::HelloTimeout)??;
                drop(handshake);
                self.deliver(stream, hello).await
            }
        }
    }

    /// Reads the hello and checks what needs no certificate: the cluster and a plausible id.
    async fn checked_hello<S: AsyncRead + Unpin>(
        &self,
        stream: &mut S,
    ) -> Result<ReceivedHello, ReceiveError> {
        let hello = read_hello(stream).await?;
        if hello.cluster != self.identity.cluster {
            return Err(ReceiveError::OtherCluster {
                theirs: hello.cluster,
                ours: self.identity.cluster.clone(),
            });
        }
        if hello.from == self.identity.me || hello.from.0 == 0 {
            return Err(ReceiveError::BadId(hello.from.0));
        }
        Ok(hello)
    }

    /// Delivers the frames of an authenticated connection until it ends, the node stops, or
    /// a newer connection from the same member on the same lane replaces it.
    async fn deliver<S: AsyncRead + Unpin>(
        &self,
        mut stream: S,
        hello: ReceivedHello,
    ) -> Result<(), ReceiveError> {
        let ReceivedHello {
            magic, from, addr, ..
        } = hello;
        let bulk = &magic == HELLO_MAGIC_BULK;
        let lane = if bulk {
            &self.inbound.bulk
        } else {
            &self.inbound.raft
        };
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let (replaced_tx, mut replaced) = oneshot::channel();
        if let Ok(mut open) = self.open.lock() {
            // Dropping the older connection's sender closes it.
            open.insert((from, bulk), (generation, replaced_tx));
        }
        info!(peer = from.0, %addr, bulk, "peer connected");
        if !addr.is_empty() {
            let _ = self.inbound.hellos.try_send((from, addr));
        }
        let result = tokio::select! {
            result = self.frames(&mut stream, from, bulk, lane) => result,
            _ = &mut replaced => {
                debug!(peer = from.0, bulk, "peer connection replaced by a newer one");
                Ok(())
            }
        };
        if let Ok(mut open) = self.open.lock() {
            if open
                .get(&(from, bulk))
                .is_some_and(|(g, _)| *g == generation)
            {
                open.remove(&(from, bulk));
            }
        }
        result
    }

    /// Reads frames: the length first, checked against the limit, then the frame's share of
    /// the byte budget, and only then its bytes.
    async fn frames<S: AsyncRead + Unpin>(
        &self,
        stream: &mut S,
        from: NodeId,
        bulk: bool,
        lane: &mpsc::Sender<Inbound>,
    ) -> Result<(), ReceiveError> {
        loop {
            let mut len = [0u8; 4];
            match stream.read_exact(&mut len).await {
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(err) => return Err(err.into()),
            }
            let len = u32::from_be_bytes(len) as usize;
            if len > FRAME_BYTES_MAX {
                return Err(ReceiveError::FrameTooLarge(len));
            }
            // FRAME_BYTES_MAX fits in u32 and in the budget, so this waits, never fails, until
            // the node has taken enough of what came before (it fails only if closed).
            let Ok(budget) = self.budget.clone().acquire_many_owned(len as u32).await else {
                return Ok(());
            };
            let mut frame = vec![0u8; len];
            stream.read_exact(&mut frame).await?;
            self.metrics
                .peer_bytes_received
                .inc_by((FRAME_PREFIX_BYTES + len) as u64);
            let msg = PeerMessage::decode(&Bytes::from(frame))
                .map_err(|err| ReceiveError::Decode(err.to_string()))?;
            if bulk != matches!(msg, PeerMessage::Chunk(_)) {
                return Err(ReceiveError::WrongLane);
            }
            if lane.send(Inbound { from, msg, budget }).await.is_err() {
                return Ok(()); // The node stopped.
            }
        }
    }
}
