//! A fault-injecting TCP proxy in front of one member's peer port. Every member dials that
//! member through it, so the address every configuration names for it is the proxy's. Peer
//! links are TLS, so the proxy cannot read who dials: each member dials from its own loopback
//! address ([`dial_from`]), and the proxy tells senders apart by source address, so a test can
//! cut the links from some members only: while a link is cut, its open connections are closed
//! and new ones are dropped at once, as a network partition looks to the members (messages
//! vanish, reconnects fail). It forwards bytes blindly.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The loopback address member `id` dials its peers from (`serve --peer-dial-from`).
pub fn dial_from(id: usize) -> String {
    assert!(id < 240, "member ids in tests stay below 240");
    format!("127.0.0.{}", 10 + id)
}

/// The member that dials from `addr`, if it is one of [`dial_from`]'s addresses.
fn sender(addr: std::net::SocketAddr) -> Option<u64> {
    match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.octets()[..3] == [127, 0, 0] && ip.octets()[3] > 10 => {
            Some(u64::from(ip.octets()[3] - 10))
        }
        _ => None,
    }
}

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
                let Ok((inbound, from)) = listener.accept().await else {
                    return;
                };
                let Some(from) = sender(from) else {
                    continue; // Not a member's address: only members dial peers here.
                };
                let target = target.clone();
                let cut = cut.clone();
                let gen_rx = generation.subscribe();
                tokio::spawn(forward(inbound, from, target, cut, gen_rx));
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

/// Forwards one connection from member `from` while its link is not cut, until the link is cut
/// or either side closes.
async fn forward(
    mut inbound: TcpStream,
    from: u64,
    target: String,
    cut: Arc<Mutex<HashSet<u64>>>,
    mut gen_rx: watch::Receiver<u64>,
) {
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
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        // A cut of this sender closes its connections.
        _ = gen_rx.wait_for(|_| is_cut(&cut)) => {}
    }
}
