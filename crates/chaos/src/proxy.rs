//! The fault-injecting proxy in front of every member's peer port.
//!
//! Every member advertises its proxy's listener as its peer address, so all Raft traffic into
//! member `j` passes through proxy `j`. Peer connections are opaque (TLS soon), so the proxy
//! tells senders apart by source address alone: member `i` dials from `127.0.0.(10+i)`
//! (`--peer-dial-from`), and the proxy forwards bytes blindly. Each directed link `i -> j` can be
//! cut (its open connections are closed and new ones dropped, as a partition looks to the
//! members: messages vanish, reconnects fail) or slowed (every chunk held for a delay, order
//! kept). Peer connections carry messages one way (the dialler sends, the acceptor only reads),
//! so cutting `i -> j` alone is a one-way partition.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// The loopback address member `id` dials its peers from. Linux routes all of 127/8 to the
/// loopback interface, so any of these can be bound without configuration.
pub fn dial_from(id: usize) -> IpAddr {
    // Ids are small (a 5-member cluster); the cast cannot wrap for them.
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, (10 + id) as u8))
}

/// The member a connection came from, by its source address, if it is one of ours.
fn sender_of(source: SocketAddr, members: usize) -> Option<usize> {
    match source.ip() {
        IpAddr::V4(ip) if ip.octets()[..3] == [127, 0, 0] => {
            let id = usize::from(ip.octets()[3]).checked_sub(10)?;
            (1..=members).contains(&id).then_some(id)
        }
        _ => None,
    }
}

/// What is wrong with the links right now; shared by all proxies.
#[derive(Default)]
struct LinkState {
    /// Directed links `(from, to)` that drop everything.
    cut: BTreeSet<(usize, usize)>,
    /// Directed links `(from, to)` that hold every chunk this long.
    delay: BTreeMap<(usize, usize), Duration>,
}

/// The faults of every peer link of the cluster, set by the nemesis, obeyed by the proxies.
pub struct Links {
    state: Mutex<LinkState>,
    /// Bumped at every cut, so open connections re-check whether their link still stands.
    generation: watch::Sender<u64>,
    members: usize,
    /// Connections from an address that is no member's: a misconfiguration worth reporting.
    strangers: Mutex<u64>,
}

impl Links {
    /// Links between `members` members (ids 1 to `members`), all healthy.
    pub fn new(members: usize) -> Arc<Links> {
        let (generation, _) = watch::channel(0);
        Arc::new(Links {
            state: Mutex::default(),
            generation,
            members,
            strangers: Mutex::new(0),
        })
    }

    fn state(&self) -> MutexGuard<'_, LinkState> {
        // A panic elsewhere while holding the lock leaves plain data behind: keep using it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Cuts the directed link `from -> to`.
    pub fn cut(&self, from: usize, to: usize) {
        self.state().cut.insert((from, to));
        self.generation.send_modify(|g| *g += 1);
    }

    /// Cuts both directions between every member of `a` and every member of `b`.
    pub fn cut_between(&self, a: &[usize], b: &[usize]) {
        {
            let mut state = self.state();
            for &x in a {
                for &y in b {
                    if x != y {
                        state.cut.insert((x, y));
                        state.cut.insert((y, x));
                    }
                }
            }
        }
        self.generation.send_modify(|g| *g += 1);
    }

    /// Delays the directed link `from -> to` by `delay`.
    pub fn slow(&self, from: usize, to: usize, delay: Duration) {
        self.state().delay.insert((from, to), delay);
    }

    /// Restores every link: no cuts, no delays.
    pub fn heal(&self) {
        let mut state = self.state();
        state.cut.clear();
        state.delay.clear();
    }

    /// Whether `from -> to` is cut.
    pub fn is_cut(&self, from: usize, to: usize) -> bool {
        self.state().cut.contains(&(from, to))
    }

    fn delay(&self, from: usize, to: usize) -> Duration {
        self.state()
            .delay
            .get(&(from, to))
            .copied()
            .unwrap_or_default()
    }

    /// Connections that came from no member's address.
    pub fn strangers(&self) -> u64 {
        *self
            .strangers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts the proxy in front of member `to`: it accepts on `listener` and forwards to
    /// `target` (where the member really listens). Runs until the runtime stops.
    pub fn start_proxy(self: &Arc<Self>, to: usize, listener: TcpListener, target: String) {
        let links = self.clone();
        tokio::spawn(async move {
            loop {
                let Ok((inbound, source)) = listener.accept().await else {
                    // Out of descriptors, say: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let Some(from) = sender_of(source, links.members) else {
                    *links
                        .strangers
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner()) += 1;
                    continue;
                };
                tokio::spawn(forward(links.clone(), from, to, inbound, target.clone()));
            }
        });
    }
}

/// Forwards one connection `from -> to` until either side closes or the link is cut.
async fn forward(links: Arc<Links>, from: usize, to: usize, inbound: TcpStream, target: String) {
    if links.is_cut(from, to) {
        return; // Dropping the socket refuses it, as a lost SYN-ACK would, only faster.
    }
    let mut cuts = links.generation.subscribe();
    let Ok(outbound) = TcpStream::connect(&target).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    let forward = pump_delayed(links.clone(), from, to, in_read, out_write);
    let backward = pump_delayed(links.clone(), to, from, out_read, in_write);
    tokio::select! {
        _ = async { tokio::join!(forward, backward) } => {}
        // A cut closes the connections already open on that link.
        _ = cuts.wait_for(|_| links.is_cut(from, to)) => {}
    }
}

/// Copies `read` to `write`, holding each chunk for the link's delay at the time it was read.
/// Chunks keep their order: a delay shortened mid-stream never lets a later chunk overtake.
async fn pump_delayed(
    links: Arc<Links>,
    from: usize,
    to: usize,
    mut read: OwnedReadHalf,
    mut write: OwnedWriteHalf,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let due = Instant::now() + links.delay(from, to);
                    if tx.send((due, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if write.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = write.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_are_told_apart_by_source_address() {
        let at = |ip: [u8; 4]| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), 4000);
        assert_eq!(sender_of(at([127, 0, 0, 11]), 5), Some(1));
        assert_eq!(sender_of(at([127, 0, 0, 15]), 5), Some(5));
        assert_eq!(sender_of(at([127, 0, 0, 16]), 5), None);
        assert_eq!(sender_of(at([127, 0, 0, 1]), 5), None);
        assert_eq!(sender_of(at([10, 0, 0, 11]), 5), None);
        assert_eq!(dial_from(3), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 13)));
    }
}
