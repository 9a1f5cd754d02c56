//! A fault-injecting TCP proxy for one directed peer link (member A's connection to member B).
//! While the link is cut, open connections are closed and new ones are dropped at once, as a
//! network partition looks to the members: their messages vanish and reconnects fail.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// One directed link's proxy.
pub struct LinkProxy {
    /// Where the dialling member connects.
    pub listen_addr: String,
    cut: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
    epoch: Arc<AtomicU64>,
}

impl LinkProxy {
    /// Starts a proxy forwarding to `target` on an already-bound listener.
    pub fn start(listener: TcpListener, target: String) -> LinkProxy {
        let listen_addr = listener.local_addr().unwrap().to_string();
        let cut = Arc::new(AtomicBool::new(false));
        let (generation, _) = watch::channel(0u64);
        let epoch = Arc::new(AtomicU64::new(0));
        let proxy = LinkProxy {
            listen_addr,
            cut: cut.clone(),
            generation: generation.clone(),
            epoch: epoch.clone(),
        };
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if cut.load(Ordering::SeqCst) {
                    let _ = inbound.shutdown().await;
                    continue;
                }
                let target = target.clone();
                let mut gen_rx = generation.subscribe();
                let my_epoch = epoch.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        // A cut closes every connection opened before it.
                        _ = gen_rx.wait_for(|g| *g > my_epoch) => {}
                    }
                });
            }
        });
        proxy
    }

    /// Cuts the link: closes its connections and refuses new ones until healed.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        let next = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        self.generation.send_replace(next);
    }

    /// Restores the link.
    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}
