//! The seam between a zone's tick and the links to its neighbours, and an in-memory hub that
//! implements it for zones in one process.
//!
//! The tick only sees [`ZoneNetwork`]: `send` never blocks (a packet that cannot go is refused
//! and counted, and the core's resend and rollback deal with it), `drain` hands over at most a
//! budget of events. The WebTransport links (`fabric-link`'s `ZoneLinks`: `send(to, delivery,
//! bytes)`, `drain(max, f)`, `stats()`) fit it with a few lines of glue.
//!
//! [`MemoryNetwork`]: zones of one fabric in one process (several `FabricZone` nodes in a test
//! scene) find each other in a process-wide registry keyed by fabric name; each zone has an
//! inbox of reused buffers, so steady-state traffic does not allocate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use fabric_core::zones::{MAX_ZONES, ZoneId, ZoneMask};
use thiserror::Error;

/// Something from the links: the same event `fabric-link`'s `ZoneLinks::drain` hands over, so
/// the WebTransport links and the in-memory hub give the tick one type.
pub use fabric_link::LinkEvent as NetEvent;

/// Why a packet was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SendRefused {
    /// No link to that zone.
    #[error("no link to zone {0}")]
    NoLink(ZoneId),
}

/// One link's figures.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LinkInfo {
    /// The neighbour.
    pub zone: ZoneId,
    /// Round-trip time, milliseconds (0 when unknown).
    pub rtt_ms: f64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Packets refused.
    pub refused: u64,
}

/// What the tick needs from the links.
pub trait ZoneNetwork {
    /// Queues `bytes` for `to`; never blocks.
    fn send(&mut self, to: ZoneId, bytes: &[u8]) -> Result<(), SendRefused>;
    /// Hands at most `max_events` events to `f`; returns how many.
    fn drain(&mut self, max_events: usize, f: &mut dyn FnMut(NetEvent<'_>)) -> usize;
    /// Per-link figures, written into `out` (cleared first).
    fn links(&self, out: &mut Vec<LinkInfo>);
    /// Link sessions refused and packets dropped by the link listener since the start (zero
    /// where nothing listens for other processes).
    fn guard(&self) -> fabric_link::LinkCounters {
        fabric_link::LinkCounters::default()
    }
}

/// A network with no neighbours: every send is refused.
#[derive(Debug, Default)]
pub struct NoNetwork;

impl ZoneNetwork for NoNetwork {
    fn send(&mut self, to: ZoneId, _bytes: &[u8]) -> Result<(), SendRefused> {
        Err(SendRefused::NoLink(to))
    }

    fn drain(&mut self, _max: usize, _f: &mut dyn FnMut(NetEvent<'_>)) -> usize {
        0
    }

    fn links(&self, out: &mut Vec<LinkInfo>) {
        out.clear();
    }
}

/// Packets waiting for one zone: bytes back to back, and (sender, length) per packet.
#[derive(Debug, Default)]
struct Queue {
    bytes: Vec<u8>,
    packets: Vec<(ZoneId, u32)>,
}

#[derive(Debug, Default)]
struct Member {
    inbox: Arc<Mutex<Queue>>,
}

#[derive(Debug, Default)]
struct Fabric {
    members: HashMap<ZoneId, Member>,
}

fn hub() -> MutexGuard<'static, HashMap<String, Fabric>> {
    static HUB: OnceLock<Mutex<HashMap<String, Fabric>>> = OnceLock::new();
    HUB.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Why a zone could not join an in-memory fabric.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JoinError {
    /// Another zone of the fabric has this index in this process.
    #[error("zone {zone} of fabric `{fabric}` is already running in this process")]
    Taken {
        /// Fabric name.
        fabric: String,
        /// Zone index.
        zone: ZoneId,
    },
}

/// This zone's end of an in-memory fabric. Leaves the fabric when dropped.
#[derive(Debug)]
pub struct MemoryNetwork {
    fabric: String,
    me: ZoneId,
    neighbours: ZoneMask,
    inbox: Arc<Mutex<Queue>>,
    /// Packets taken from the inbox, being handed out (`at` = next one).
    local: Queue,
    at: usize,
    offset: usize,
    outboxes: [Option<Arc<Mutex<Queue>>>; MAX_ZONES],
    linked: ZoneMask,
    bytes_out: [u64; MAX_ZONES],
    bytes_in: [u64; MAX_ZONES],
    refused: [u64; MAX_ZONES],
}

impl MemoryNetwork {
    /// Joins `fabric` as zone `me`, linking to `neighbours` whenever they are present.
    pub fn join(fabric: &str, me: ZoneId, neighbours: ZoneMask) -> Result<Self, JoinError> {
        let mut hub = hub();
        let f = hub.entry(fabric.to_owned()).or_default();
        if f.members.contains_key(&me) {
            return Err(JoinError::Taken {
                fabric: fabric.into(),
                zone: me,
            });
        }
        let inbox = Arc::new(Mutex::new(Queue {
            bytes: Vec::with_capacity(1 << 20),
            packets: Vec::with_capacity(4096),
        }));
        f.members.insert(
            me,
            Member {
                inbox: inbox.clone(),
            },
        );
        Ok(Self {
            fabric: fabric.into(),
            me,
            neighbours,
            inbox,
            local: Queue {
                bytes: Vec::with_capacity(1 << 20),
                packets: Vec::with_capacity(4096),
            },
            at: 0,
            offset: 0,
            outboxes: std::array::from_fn(|_| None),
            linked: ZoneMask(0),
            bytes_out: [0; MAX_ZONES],
            bytes_in: [0; MAX_ZONES],
            refused: [0; MAX_ZONES],
        })
    }

    /// Looks up which neighbours are present; returns (came, went).
    fn refresh_links(&mut self) -> (ZoneMask, ZoneMask) {
        let hub = hub();
        let mut now = 0u32;
        if let Some(f) = hub.get(&self.fabric) {
            for z in self.neighbours.iter() {
                match f.members.get(&z) {
                    Some(m) => {
                        now |= 1 << z;
                        // A refcount bump, no allocation (and right after a rejoin).
                        self.outboxes[z as usize] = Some(m.inbox.clone());
                    }
                    None => self.outboxes[z as usize] = None,
                }
            }
        }
        let before = self.linked.0;
        self.linked = ZoneMask(now);
        (ZoneMask(now & !before), ZoneMask(before & !now))
    }
}

impl Drop for MemoryNetwork {
    fn drop(&mut self) {
        let mut hub = hub();
        if let Some(f) = hub.get_mut(&self.fabric) {
            f.members.remove(&self.me);
            if f.members.is_empty() {
                hub.remove(&self.fabric);
            }
        }
    }
}

impl ZoneNetwork for MemoryNetwork {
    fn send(&mut self, to: ZoneId, bytes: &[u8]) -> Result<(), SendRefused> {
        let z = to as usize % MAX_ZONES;
        let Some(q) = self.outboxes[z]
            .as_ref()
            .filter(|_| self.linked.contains(to))
        else {
            self.refused[z] += 1;
            return Err(SendRefused::NoLink(to));
        };
        let mut q = q.lock().unwrap_or_else(|p| p.into_inner());
        q.bytes.extend_from_slice(bytes);
        q.packets.push((self.me, bytes.len() as u32));
        self.bytes_out[z] += bytes.len() as u64;
        Ok(())
    }

    fn drain(&mut self, max_events: usize, f: &mut dyn FnMut(NetEvent<'_>)) -> usize {
        let mut n = 0;
        let (came, went) = self.refresh_links();
        for zone in went.iter() {
            f(NetEvent::Unlinked { zone });
            n += 1;
        }
        for zone in came.iter() {
            f(NetEvent::Linked { zone });
            n += 1;
        }
        while n < max_events {
            if self.at == self.local.packets.len() {
                // Everything taken so far is handed out: swap buffers with the inbox (both keep
                // their capacity).
                self.local.bytes.clear();
                self.local.packets.clear();
                self.at = 0;
                self.offset = 0;
                let mut inbox = self.inbox.lock().unwrap_or_else(|p| p.into_inner());
                std::mem::swap(&mut *inbox, &mut self.local);
                if self.local.packets.is_empty() {
                    break;
                }
            }
            let (from, len) = self.local.packets[self.at];
            let bytes = &self.local.bytes[self.offset..self.offset + len as usize];
            self.at += 1;
            self.offset += len as usize;
            self.bytes_in[from as usize % MAX_ZONES] += u64::from(len);
            f(NetEvent::Packet { from, bytes });
            n += 1;
        }
        n
    }

    fn links(&self, out: &mut Vec<LinkInfo>) {
        out.clear();
        for zone in self.linked.iter() {
            let z = zone as usize;
            out.push(LinkInfo {
                zone,
                rtt_ms: 0.0,
                bytes_out: self.bytes_out[z],
                bytes_in: self.bytes_in[z],
                refused: self.refused[z],
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(net: &mut MemoryNetwork, max: usize) -> Vec<String> {
        let mut out = Vec::new();
        net.drain(max, &mut |e| {
            out.push(match e {
                NetEvent::Packet { from, bytes } => {
                    format!("{from}:{}", String::from_utf8_lossy(bytes))
                }
                NetEvent::Linked { zone } => format!("linked {zone}"),
                NetEvent::Unlinked { zone } => format!("unlinked {zone}"),
            })
        });
        out
    }

    #[test]
    fn zones_link_exchange_in_order_and_unlink() {
        let fabric = "network-test-1";
        let all = ZoneMask(0b111);
        let mut a = MemoryNetwork::join(fabric, 0, ZoneMask(all.0 & !1)).unwrap();
        assert_eq!(
            a.send(1, b"x"),
            Err(SendRefused::NoLink(1)),
            "nobody there yet"
        );
        let mut b = MemoryNetwork::join(fabric, 1, ZoneMask(all.0 & !2)).unwrap();
        assert!(
            matches!(
                MemoryNetwork::join(fabric, 1, all),
                Err(JoinError::Taken { zone: 1, .. })
            ),
            "one zone 1 per fabric"
        );
        assert_eq!(events(&mut a, 10), vec!["linked 1"]);
        assert_eq!(events(&mut b, 10), vec!["linked 0"]);
        a.send(1, b"one").unwrap();
        a.send(1, b"two").unwrap();
        a.send(1, b"three").unwrap();
        assert_eq!(
            events(&mut b, 2),
            vec!["0:one", "0:two"],
            "budget respected, in order"
        );
        a.send(1, b"four").unwrap();
        assert_eq!(
            events(&mut b, 10),
            vec!["0:three", "0:four"],
            "the rest next time"
        );
        let mut links = Vec::new();
        a.links(&mut links);
        assert_eq!(links.len(), 1);
        assert_eq!(
            (links[0].zone, links[0].bytes_out, links[0].refused),
            (1, 15, 1)
        );
        drop(b);
        assert_eq!(events(&mut a, 10), vec!["unlinked 1"]);
        assert!(a.send(1, b"x").is_err(), "gone");
    }
}
