//! A conditioned link between the players and a zone: a UDP relay on loopback that runs every
//! datagram, each way, through a [`fabric_linksim::Link`] (delay, jitter, loss, reorder).
//!
//! The players connect to the relay's address instead of the zone's; for each player (each
//! source address) the relay opens its own socket towards the zone, so the zone sees one peer
//! per player as without the relay. WebTransport (QUIC over UDP) goes through it; the
//! WebSocket fallback (TCP) does not (`fabric-linksim`'s TUN link conditions TCP, and needs
//! root).
//!
//! The same relay conditions the links between zone processes (the load harness's
//! `zone_links` scenario): [`start_on`] listens on an address of the caller's choice (another
//! loopback address on the zone's link port, which the zone advertises), and its `cut` switch
//! drops everything both ways while it is set (a cut link).
//!
//! This is test equipment, not the product: a packet through the relay is one heap copy (the
//! link queues owned packets).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use fabric_linksim::{Fate, Link, LinkConfig};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

/// Largest datagram relayed (QUIC keeps well under it).
const MAX_DATAGRAM: usize = 65_535;
/// A player's flow with no packet either way for this long is closed.
const IDLE: Duration = Duration::from_secs(30);
/// Datagrams from a player waiting for its flow's task.
const FLOW_QUEUE: usize = 1024;

/// Why a relay did not start.
#[derive(Debug, Error)]
pub enum RelayError {
    /// The link settings are out of range.
    #[error("link settings: {0}")]
    Config(#[from] fabric_linksim::Error),
    /// The zone address is not on loopback.
    #[error("relay to {0}: only loopback zones are relayed")]
    NotLoopback(SocketAddr),
    /// Binding the relay's socket failed.
    #[error("binding the relay: {0}")]
    Bind(std::io::Error),
}

/// What went through all relays, both ways.
#[derive(Debug, Default)]
pub struct RelayCounters {
    received: AtomicU64,
    dropped: AtomicU64,
    sent: AtomicU64,
    flows: AtomicU64,
    cut: AtomicU64,
}

/// [`RelayCounters`] read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RelayFigures {
    /// Datagrams that entered a link.
    pub received: u64,
    /// Datagrams a link dropped (loss and full queues).
    pub dropped: u64,
    /// Datagrams delivered (copies included).
    pub sent: u64,
    /// Player flows opened.
    pub flows: u64,
    /// Datagrams dropped because the link was cut (not counted in `received`).
    #[serde(default)]
    pub cut: u64,
}

impl RelayCounters {
    /// The counts now.
    pub fn figures(&self) -> RelayFigures {
        RelayFigures {
            received: self.received.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            flows: self.flows.load(Ordering::Relaxed),
            cut: self.cut.load(Ordering::Relaxed),
        }
    }

    /// Pushes `p` into `link` at `now`, or drops it when `cut` is set.
    fn push(&self, link: &mut Link<Vec<u8>>, now: Duration, p: Vec<u8>, cut: &AtomicBool) {
        if cut.load(Ordering::Relaxed) {
            self.cut.fetch_add(1, Ordering::Relaxed);
        } else {
            self.pushed(link.push(now, p));
        }
    }

    fn pushed(&self, fate: Fate) {
        self.received.fetch_add(1, Ordering::Relaxed);
        if matches!(fate, Fate::Dropped | Fate::QueueFull) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Starts a relay towards `zone` on the current runtime; returns the address players use.
/// Each flow's two links are seeded from `seed` and the flow's number, so a run's decisions
/// repeat. Runs until the runtime stops.
pub async fn start(
    zone: SocketAddr,
    cfg: LinkConfig,
    seed: u64,
    counters: Arc<RelayCounters>,
) -> Result<SocketAddr, RelayError> {
    let front = SocketAddr::new(zone.ip(), 0);
    start_on(
        front,
        zone,
        cfg,
        seed,
        counters,
        Arc::new(AtomicBool::new(false)),
    )
    .await
}

/// [`start`] listening on `front` (loopback; port 0: any), dropping every datagram both ways
/// while `cut` is set.
pub async fn start_on(
    front: SocketAddr,
    zone: SocketAddr,
    cfg: LinkConfig,
    seed: u64,
    counters: Arc<RelayCounters>,
    cut: Arc<AtomicBool>,
) -> Result<SocketAddr, RelayError> {
    for a in [zone, front] {
        if !a.ip().is_loopback() {
            return Err(RelayError::NotLoopback(a));
        }
    }
    cfg.validate()?;
    let front = UdpSocket::bind(front).await.map_err(RelayError::Bind)?;
    let addr = front.local_addr().map_err(RelayError::Bind)?;
    let front = Arc::new(front);
    let link = Conditions { cfg, seed, cut };
    tokio::spawn(accept(front, zone, link, counters));
    Ok(addr)
}

/// How a relay's flows are conditioned.
struct Conditions {
    cfg: LinkConfig,
    seed: u64,
    cut: Arc<AtomicBool>,
}

/// Reads the players' datagrams and hands each to its flow, opening flows as players appear.
async fn accept(
    front: Arc<UdpSocket>,
    zone: SocketAddr,
    link: Conditions,
    counters: Arc<RelayCounters>,
) {
    let Conditions { cfg, seed, cut } = link;
    let mut flows: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut opened: u64 = 0;
    loop {
        let Ok((n, peer)) = front.recv_from(&mut buf).await else {
            continue;
        };
        let mut packet = buf[..n].to_vec();
        if let Some(tx) = flows.get(&peer) {
            match tx.try_send(packet) {
                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => continue,
                // The flow went idle and closed: a new one for the same player below.
                Err(mpsc::error::TrySendError::Closed(p)) => {
                    flows.remove(&peer);
                    packet = p;
                }
            }
        }
        let Ok(back) = UdpSocket::bind((zone.ip(), 0)).await else {
            continue;
        };
        if back.connect(zone).await.is_err() {
            continue;
        }
        opened += 1;
        counters.flows.fetch_add(1, Ordering::Relaxed);
        let up = Link::new(
            cfg.clone(),
            seed ^ opened.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let down = Link::new(
            cfg.clone(),
            !seed ^ opened.wrapping_mul(0xC2B2_AE3D_27D4_EB4F),
        );
        let (Ok(up), Ok(down)) = (up, down) else {
            continue;
        };
        let (tx, rx) = mpsc::channel(FLOW_QUEUE);
        let _ = tx.try_send(packet);
        flows.insert(peer, tx);
        let flow = Flow {
            front: front.clone(),
            back,
            peer,
            up,
            down,
            cut: cut.clone(),
        };
        tokio::spawn(flow.run(rx, counters.clone()));
    }
}

/// One player's traffic: its datagrams to the zone and the zone's back to it, each through its
/// own link.
struct Flow {
    front: Arc<UdpSocket>,
    back: UdpSocket,
    peer: SocketAddr,
    up: Link<Vec<u8>>,
    down: Link<Vec<u8>>,
    cut: Arc<AtomicBool>,
}

impl Flow {
    async fn run(mut self, mut rx: mpsc::Receiver<Vec<u8>>, counters: Arc<RelayCounters>) {
        let origin = Instant::now();
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut last = Instant::now();
        loop {
            let due = [self.up.next_due(), self.down.next_due()]
                .into_iter()
                .flatten()
                .min()
                .map_or(last + IDLE, |d| origin + d);
            tokio::select! {
                p = rx.recv() => match p {
                    Some(p) => {
                        last = Instant::now();
                        counters.push(&mut self.up, last - origin, p, &self.cut);
                    }
                    None => break,
                },
                r = self.back.recv(&mut buf) => {
                    if let Ok(n) = r {
                        last = Instant::now();
                        let p = buf[..n].to_vec();
                        counters.push(&mut self.down, last - origin, p, &self.cut);
                    }
                }
                _ = sleep_until(due) => {
                    if self.up.queued() + self.down.queued() == 0 && last.elapsed() >= IDLE {
                        break;
                    }
                }
            }
            let now = Instant::now() - origin;
            while let Some(p) = self.up.pop_due(now) {
                let _ = self.back.send(&p).await;
                counters.sent.fetch_add(1, Ordering::Relaxed);
            }
            while let Some(p) = self.down.pop_due(now) {
                let _ = self.front.send_to(&p, self.peer).await;
                counters.sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A "zone" on loopback that sends every datagram back; its address.
    async fn echo_zone() -> SocketAddr {
        let zone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = zone.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            while let Ok((n, from)) = zone.recv_from(&mut buf).await {
                let _ = zone.send_to(&buf[..n], from).await;
            }
        });
        addr
    }

    /// Real sockets on loopback: an echo "zone" behind a relay of 40 ms each way and 20 %
    /// loss. Datagrams come back no sooner than 80 ms, and about a third are lost on the
    /// round trip (1 - 0.8²), never all, never none.
    #[tokio::test]
    async fn datagrams_cross_the_relay_late_and_some_are_lost() {
        let zone_addr = echo_zone().await;
        let cfg = LinkConfig {
            delay: Duration::from_millis(40),
            loss: 0.2,
            ..LinkConfig::default()
        };
        let counters = Arc::new(RelayCounters::default());
        let relay = start(zone_addr, cfg, 7, counters.clone()).await.unwrap();
        let player = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        player.connect(relay).await.unwrap();
        let sent_at = Instant::now();
        for k in 0u16..200 {
            player.send(&k.to_le_bytes()).await.unwrap();
        }
        let mut back = 0;
        let mut first = None;
        let mut buf = [0u8; 64];
        let end = Instant::now() + Duration::from_secs(2);
        while let Ok(Ok(_)) = tokio::time::timeout_at(end, player.recv(&mut buf)).await {
            first.get_or_insert_with(|| sent_at.elapsed());
            back += 1;
        }
        let first = first.expect("some datagrams came back");
        assert!(first >= Duration::from_millis(80), "round trip {first:?}");
        assert!((100..170).contains(&back), "{back} of 200 came back");
        let f = counters.figures();
        assert_eq!(f.flows, 1);
        assert_eq!(f.received, 200 + f.sent - back, "{f:?}");
        assert_eq!(f.received - f.dropped, f.sent, "no queue left: {f:?}");
        assert!(
            RelayError::NotLoopback("10.0.0.1:1".parse().unwrap())
                .to_string()
                .contains("loopback")
        );
        assert!(matches!(
            start(
                "10.0.0.1:1".parse().unwrap(),
                LinkConfig::default(),
                1,
                counters
            )
            .await,
            Err(RelayError::NotLoopback(_))
        ));
    }

    /// A relay on a chosen address (127.0.0.2, a port of its own) that is cut: nothing crosses
    /// while the switch is set, everything (a perfect link) after it is cleared.
    #[tokio::test]
    async fn a_cut_relay_drops_everything_until_the_cut_ends() {
        let zone_addr = echo_zone().await;
        let counters = Arc::new(RelayCounters::default());
        let cut = Arc::new(AtomicBool::new(true));
        let front = "127.0.0.2:0".parse().unwrap();
        let cfg = LinkConfig::default();
        let relay = start_on(front, zone_addr, cfg, 3, counters.clone(), cut.clone())
            .await
            .unwrap();
        assert_eq!(relay.ip().to_string(), "127.0.0.2");
        let player = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        player.connect(relay).await.unwrap();
        let mut buf = [0u8; 64];
        for k in 0u8..20 {
            player.send(&[k]).await.unwrap();
        }
        let quiet = tokio::time::timeout(Duration::from_millis(300), player.recv(&mut buf)).await;
        assert!(quiet.is_err(), "nothing crosses a cut link");
        assert_eq!(counters.figures().cut, 20);
        cut.store(false, Ordering::Relaxed);
        player.send(&[99]).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(2), player.recv(&mut buf))
            .await
            .expect("back after the cut")
            .unwrap();
        assert_eq!(&buf[..n], &[99]);
        let f = counters.figures();
        assert_eq!(
            (f.cut, f.received, f.dropped, f.sent),
            (20, 2, 0, 2),
            "{f:?}"
        );
    }
}
