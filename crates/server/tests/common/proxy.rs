//! A fault-injecting TCP proxy in front of one member's peer port. Every member dials that
//! member through it, so the address every configuration names for it is the proxy's. It reads
//! each connection's hello to learn who dials, so a test can cut the links from some members
//! only: while a link is cut, its open connections are closed and new ones are dropped at
//! once, as a network partition looks to the members (messages vanish, reconnects fail).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Bytes of a peer hello that name the sender: 8 of magic, then the id (u64 big-endian).
const HELLO_ID_END: usize = 16;

/// The proxy in front of one member.
pub struct IngressProxy {
    /// Where the other members connect.
    pub listen_addr: String,
    /// Senders whose links into the member are cut.
    cut: Arc<Mutex<HashSet<u64>>>,
    /// Bumped at every cut, so connections already open re-check their sender.
    generation: watch::Sender<u64>,
}

impl IngressProxy {
    /// Starts a proxy forwarding to `target` on an already-bound listener.
    pub fn start(listener: TcpListener, target: String) -> IngressProxy {
        let listen_addr = listener.local_addr().unwrap().to_string();
        let cut: Arc<Mutex<HashSet<u64>>> = Arc::default();
        let (generation, _) = watch::channel(0u64);
        let proxy = IngressProxy {
            listen_addr,
            cut: cut.clone(),
            generation: generation.clone(),
        };
        tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                let target = target.clone();
                let cut = cut.clone();
                let gen_rx = generation.subscribe();
                tokio::spawn(forward(inbound, target, cut, gen_rx));
            }
        });
        proxy
    }

    /// Cuts the links from member `from` into this one.
    pub fn cut_from(&self, from: u64) {
        self.cut.lock().unwrap().insert(from);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Restores every link into this member.
    pub fn heal(&self) {
        self.cut.lock().unwrap().clear();
    }
}

/// Forwards one connection once its hello names a sender whose link is not cut, until the
/// link is cut or either side closes.
async fn forward(
    mut inbound: TcpStream,
    target: String,
    cut: Arc<Mutex<HashSet<u64>>>,
    mut gen_rx: watch::Receiver<u64>,
) {
    let mut hello = [0u8; HELLO_ID_END];
    if inbound.read_exact(&mut hello).await.is_err() {
        return;
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&hello[8..HELLO_ID_END]);
    let from = u64::from_be_bytes(id);
    let is_cut = |cut: &Mutex<HashSet<u64>>| cut.lock().unwrap().contains(&from);
    if is_cut(&cut) {
        let _ = inbound.shutdown().await;
        return;
    }
    let Ok(mut outbound) = TcpStream::connect(&target).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    if outbound.write_all(&hello).await.is_err() {
        return;
    }
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        // A cut of this sender closes its connections.
        _ = gen_rx.wait_for(|_| is_cut(&cut)) => {}
    }
}
