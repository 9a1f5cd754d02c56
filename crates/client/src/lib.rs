//! A raftfs client: one connection with pipelining ([`Connection`]), and a cluster-aware client
//! that follows `ERR_REDIRECT` and finds a new leader after a failure ([`Client`]).
//!
//! Retries follow what is safe: a redirect means the server did nothing, so the command is sent
//! again to the leader it names. A read that fails (connection lost, `ERR_INTERNAL`) is retried,
//! since reading twice is harmless. A mutation whose connection fails after it was sent has an
//! unknown outcome: the caller gets [`ClientError::Unknown`] and decides (a blind resend could apply
//! it twice).

pub mod status;

use std::time::Duration;

use bytes::BytesMut;
use fs::codec::ReplyDecoder;
use fs::{Admin, Command, Reply};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

/// Redirects followed at once, without pausing: more than a cluster has members, so a leader
/// change mid-command costs no delay, but a redirect loop (members disagreeing about the leader
/// during an election) backs off instead of spinning.
const REDIRECTS_UNPAUSED_MAX: usize = 8;

/// Pause between attempts when no leader answers, growing to [`RETRY_BACKOFF_MAX`].
const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(20);
const RETRY_BACKOFF_MAX: Duration = Duration::from_millis(500);

/// Default time a [`Client`] keeps trying one command before reporting the cluster unavailable:
/// longer than several election timeouts, so a leader failover is ridden out.
pub const CALL_DEADLINE_DEFAULT: Duration = Duration::from_secs(15);

/// Why a command did not get a definite answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection failed (or the server closed it) before the reply arrived.
    #[error("connection to {addr} failed: {source}")]
    Io {
        /// The server's address.
        addr: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The server sent bytes that are not a valid reply.
    #[error("invalid reply from {addr}: {message}")]
    Protocol {
        /// The server's address.
        addr: String,
        /// What was wrong.
        message: String,
    },
    /// A mutation was sent but no definite answer came: it may or may not have been applied.
    #[error("outcome unknown: {0}")]
    Unknown(String),
    /// No leader answered before the deadline.
    #[error("cluster unavailable: {0}")]
    Unavailable(String),
}

/// A byte stream to a server: TCP, or TLS over TCP.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Stream for S {}

/// One TCP connection to one server, speaking the text protocol. Commands may be pipelined:
/// [`send`](Connection::send) many, then [`recv`](Connection::recv) their replies in order.
pub struct Connection {
    addr: String,
    stream: Box<dyn Stream>,
    out: BytesMut,
    input: BytesMut,
    decoder: ReplyDecoder,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to `addr` (HOST:PORT).
    pub async fn connect(addr: &str) -> Result<Connection, ClientError> {
        Connection::connect_with(addr, None).await
    }

    /// Connects to `addr`, over TLS with `tls` if given (the server's certificate must name
    /// the host of `addr`).
    pub async fn connect_with(
        addr: &str,
        tls: Option<&TlsConnector>,
    ) -> Result<Connection, ClientError> {
        let io = |source| ClientError::Io {
            addr: addr.to_owned(),
            source,
        };
        let tcp = TcpStream::connect(addr).await.map_err(io)?;
        // Small commands must not wait for Nagle's timer.
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = match tls {
            None => Box::new(tcp),
            Some(tls) => {
                let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let name = ServerName::try_from(host.to_owned()).map_err(|err| {
                    io(std::io::Error::new(std::io::ErrorKind::InvalidInput, err))
                })?;
                Box::new(tls.connect(name, tcp).await.map_err(io)?)
            }
        };
        Ok(Connection {
            addr: addr.to_owned(),
            stream,
            out: BytesMut::with_capacity(4096),
            input: BytesMut::with_capacity(64 * 1024),
            decoder: ReplyDecoder::default(),
        })
    }

    /// The server this connection talks to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Queues a command; it is written by the next [`flush`](Connection::flush) or `recv`.
    pub fn queue(&mut self, command: &Command) {
        command.encode(&mut self.out);
    }

    /// Queues raw bytes, for tests of malformed input.
    pub fn queue_raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let result = self.stream.write_all(&self.out).await;
        self.out.clear();
        result.map_err(|source| self.io_error(source))
    }

    /// Queues and writes one command.
    pub async fn send(&mut self, command: &Command) -> Result<(), ClientError> {
        self.queue(command);
        self.flush().await
    }

    /// Waits for the next reply (flushing anything queued first).
    pub async fn recv(&mut self) -> Result<Reply, ClientError> {
        self.flush().await?;
        loop {
            match self.decoder.decode(&mut self.input) {
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) => {}
                Err(err) => {
                    return Err(ClientError::Protocol {
                        addr: self.addr.clone(),
                        message: err.to_string(),
                    });
                }
            }
            match self.stream.read_buf(&mut self.input).await {
                Ok(0) => {
                    let eof = std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "server closed the connection",
                    );
                    return Err(self.io_error(eof));
                }
                Ok(_) => {}
                Err(source) => return Err(self.io_error(source)),
            }
        }
    }

    /// Sends one command and waits for its reply.
    pub async fn call(&mut self, command: &Command) -> Result<Reply, ClientError> {
        self.send(command).await?;
        self.recv().await
    }

    /// Sends one administrative command to this server and waits for its reply, as it is:
    /// a redirect is not followed (for that, [`Client::admin`]).
    pub async fn admin(&mut self, admin: &Admin) -> Result<Reply, ClientError> {
        self.queue_raw(admin.encode().as_bytes());
        self.recv().await
    }

    fn io_error(&self, source: std::io::Error) -> ClientError {
        ClientError::Io {
            addr: self.addr.clone(),
            source,
        }
    }
}

/// A client of a whole cluster: sends each command to the leader, following redirects and
/// finding a new leader when one fails.
pub struct Client {
    addrs: Vec<String>,
    next_addr: usize,
    conn: Option<Connection>,
    deadline: Duration,
    tls: Option<TlsConnector>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addrs", &self.addrs)
            .field("conn", &self.conn)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client that knows these servers' client addresses (any of them; it finds the leader).
    pub fn new(addrs: Vec<String>) -> Client {
        Client {
            addrs,
            next_addr: 0,
            conn: None,
            deadline: CALL_DEADLINE_DEFAULT,
            tls: None,
        }
    }

    /// Speaks TLS to the servers (they run with `client_tls`).
    pub fn with_tls(mut self, tls: TlsConnector) -> Client {
        self.tls = Some(tls);
        self
    }

    /// Sets how long one command is retried before [`ClientError::Unavailable`].
    pub fn with_deadline(mut self, deadline: Duration) -> Client {
        self.deadline = deadline;
        self
    }

    /// The address of the server the client is connected to now, if any.
    pub fn connected_to(&self) -> Option<&str> {
        self.conn.as_ref().map(Connection::addr)
    }

    /// Runs one command on the leader and returns its definite reply. `ERR_INTERNAL` for a
    /// mutation is returned as [`ClientError::Unknown`], since the outcome is unknown.
    pub async fn call(&mut self, command: &Command) -> Result<Reply, ClientError> {
        let mut bytes = BytesMut::new();
        command.encode(&mut bytes);
        self.call_bytes(&bytes, command.is_mutation()).await
    }

    /// Runs one administrative command on the leader (following redirects, riding out an
    /// election). A membership change or transfer whose connection failed, or that got
    /// `ERR_INTERNAL`, has an unknown outcome: [`ClientError::Unknown`].
    pub async fn admin(&mut self, admin: &Admin) -> Result<Reply, ClientError> {
        // Listing and backups change nothing: they are retried like reads. (`members local` is
        // answered by the first member reached, never redirected.)
        let changes = !matches!(
            admin,
            Admin::Members | Admin::MembersLocal | Admin::Snapshot
        );
        self.call_bytes(admin.encode().as_bytes(), changes).await
    }

    /// Sends `request` (one encoded command) to the leader and returns its definite reply.
    async fn call_bytes(&mut self, request: &[u8], mutation: bool) -> Result<Reply, ClientError> {
        let give_up = Instant::now() + self.deadline;
        let mut backoff = RETRY_BACKOFF_MIN;
        let mut redirects = 0;
        let mut last_problem = String::from("no server tried");
        loop {
            if Instant::now() >= give_up {
                return Err(ClientError::Unavailable(last_problem));
            }
            let conn = match self.connection().await {
                Ok(conn) => conn,
                Err(err) => {
                    last_problem = err.to_string();
                    self.pause(&mut backoff).await;
                    continue;
                }
            };
            conn.queue_raw(request);
            match conn.recv().await {
                Ok(Reply::Redirect(leader)) => {
                    redirects += 1;
                    last_problem = format!("redirected to {leader}");
                    // A member may still name a leader that just died: if it cannot be reached,
                    // or redirects go round in circles, wait for the election to settle.
                    if !self.reconnect_to(leader).await || redirects > REDIRECTS_UNPAUSED_MAX {
                        self.pause(&mut backoff).await;
                    }
                }
                Ok(Reply::Internal) if mutation => {
                    return Err(ClientError::Unknown(format!(
                        "{} answered ERR_INTERNAL",
                        conn.addr()
                    )));
                }
                Ok(Reply::Internal) => {
                    last_problem = format!("{} answered ERR_INTERNAL", conn.addr());
                    self.pause(&mut backoff).await;
                }
                Ok(reply) => return Ok(reply),
                Err(err) => {
                    self.conn = None;
                    if mutation {
                        return Err(ClientError::Unknown(err.to_string()));
                    }
                    last_problem = err.to_string();
                    self.pause(&mut backoff).await;
                }
            }
        }
    }

    /// The open connection, or a new one to the next address in turn.
    async fn connection(&mut self) -> Result<&mut Connection, ClientError> {
        if self.conn.is_none() {
            let addr = self
                .addrs
                .get(self.next_addr % self.addrs.len().max(1))
                .cloned()
                .ok_or_else(|| ClientError::Unavailable("no server addresses".into()))?;
            self.next_addr += 1;
            self.conn = Some(Connection::connect_with(&addr, self.tls.as_ref()).await?);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| ClientError::Unavailable("no connection".into()))
    }

    /// Connects to `addr`; false if it cannot be reached.
    async fn reconnect_to(&mut self, addr: String) -> bool {
        self.conn = Connection::connect_with(&addr, self.tls.as_ref())
            .await
            .ok();
        self.conn.is_some()
    }

    /// Drops the connection (so the next attempt tries another server) and waits a little longer
    /// each time.
    async fn pause(&mut self, backoff: &mut Duration) {
        self.conn = None;
        tokio::time::sleep(*backoff).await;
        *backoff = (*backoff * 2).min(RETRY_BACKOFF_MAX);
    }
}
