//! A link conditioner between zones: latency, jitter, loss, duplication and reordering.
//!
//! Every packet a zone emits goes through [`Link::send`], which decides from the seeded
//! [`SimRng`] whether it is lost, duplicated, and how many ticks each copy takes. Packets are
//! delivered by [`Link::deliver_due`] in (delivery tick, send order) order, so a packet given a
//! shorter delay overtakes earlier ones: that is the reordering.

use super::rng::SimRng;
use crate::zones::ZoneId;

/// Impairments of the links between zones (the same on every pair).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkConfig {
    /// One-way latency, ticks.
    pub latency_ticks: u64,
    /// Extra random delay `0..=jitter_ticks` per copy.
    pub jitter_ticks: u64,
    /// Probability a packet is dropped, parts per million.
    pub loss_ppm: u32,
    /// Probability a packet is delivered twice, parts per million.
    pub duplicate_ppm: u32,
    /// Probability a copy is held back `reorder_delay_ticks` more, parts per million.
    pub reorder_ppm: u32,
    /// Extra delay of a held-back copy, ticks.
    pub reorder_delay_ticks: u64,
}

impl LinkConfig {
    /// A perfect link with `latency_ticks` of latency.
    pub const fn perfect(latency_ticks: u64) -> Self {
        Self {
            latency_ticks,
            jitter_ticks: 0,
            loss_ppm: 0,
            duplicate_ppm: 0,
            reorder_ppm: 0,
            reorder_delay_ticks: 0,
        }
    }
}

/// What the link did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkStats {
    /// Packets given to the link.
    pub sent: u64,
    /// Packets dropped.
    pub lost: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Copies held back.
    pub reordered: u64,
    /// Copies delivered.
    pub delivered: u64,
}

/// A packet in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Tick it is delivered before.
    pub at: u64,
    /// Global send order (tie-break).
    pub seq: u64,
    /// Sender.
    pub from: ZoneId,
    /// Receiver.
    pub to: ZoneId,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// All links of a scenario.
#[derive(Debug, Clone)]
pub struct Link {
    cfg: LinkConfig,
    in_flight: Vec<Delivery>,
    seq: u64,
    stats: LinkStats,
}

impl Link {
    /// A link with impairments `cfg`.
    pub fn new(cfg: LinkConfig) -> Self {
        Self {
            cfg,
            in_flight: Vec::new(),
            seq: 0,
            stats: LinkStats::default(),
        }
    }

    /// The impairments.
    pub fn config(&self) -> &LinkConfig {
        &self.cfg
    }

    /// Changes the impairments for packets sent from now on.
    pub fn set_config(&mut self, cfg: LinkConfig) {
        self.cfg = cfg;
    }

    /// Counters.
    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }

    /// Packets still in flight.
    pub fn in_flight(&self) -> &[Delivery] {
        &self.in_flight
    }

    /// Sends `bytes` from `from` to `to` at tick `now`.
    pub fn send(&mut self, rng: &mut SimRng, now: u64, from: ZoneId, to: ZoneId, bytes: &[u8]) {
        self.stats.sent += 1;
        if rng.chance_ppm(self.cfg.loss_ppm) {
            self.stats.lost += 1;
            return;
        }
        let copies = if rng.chance_ppm(self.cfg.duplicate_ppm) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut delay = self.cfg.latency_ticks + rng.below(self.cfg.jitter_ticks + 1);
            if rng.chance_ppm(self.cfg.reorder_ppm) {
                self.stats.reordered += 1;
                delay += self.cfg.reorder_delay_ticks;
            }
            self.seq += 1;
            self.in_flight.push(Delivery {
                at: now + delay.max(1),
                seq: self.seq,
                from,
                to,
                bytes: bytes.to_vec(),
            });
        }
    }

    /// Removes every packet due at or before `now` and returns them in delivery order.
    pub fn deliver_due(&mut self, now: u64) -> Vec<Delivery> {
        let mut due: Vec<Delivery> = Vec::new();
        let mut keep = Vec::with_capacity(self.in_flight.len());
        for d in self.in_flight.drain(..) {
            if d.at <= now {
                due.push(d);
            } else {
                keep.push(d);
            }
        }
        self.in_flight = keep;
        due.sort_by_key(|d| (d.at, d.seq));
        self.stats.delivered += due.len() as u64;
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_link_delivers_in_order_after_the_latency() {
        let mut rng = SimRng::new(1);
        let mut l = Link::new(LinkConfig::perfect(2));
        l.send(&mut rng, 10, 0, 1, b"a");
        l.send(&mut rng, 10, 0, 1, b"b");
        assert!(l.deliver_due(11).is_empty(), "not before the latency");
        let got: Vec<Vec<u8>> = l.deliver_due(12).into_iter().map(|d| d.bytes).collect();
        assert_eq!(got, vec![b"a".to_vec(), b"b".to_vec()], "both, in order");
    }

    #[test]
    fn impairments_happen_at_their_rates() {
        let mut rng = SimRng::new(9);
        let cfg = LinkConfig {
            latency_ticks: 2,
            jitter_ticks: 1,
            loss_ppm: 20_000,
            duplicate_ppm: 10_000,
            reorder_ppm: 10_000,
            reorder_delay_ticks: 3,
        };
        let mut l = Link::new(cfg);
        for i in 0..20_000u32 {
            l.send(&mut rng, 0, 0, 1, &i.to_le_bytes());
        }
        let s = *l.stats();
        assert!((300..500).contains(&s.lost), "about 2 % lost: {}", s.lost);
        assert!(
            (120..280).contains(&s.duplicated),
            "about 1 % duplicated: {}",
            s.duplicated
        );
        let d = l.deliver_due(100);
        assert_eq!(
            d.len() as u64,
            20_000 - s.lost + s.duplicated,
            "every copy delivered"
        );
        // Packets delivered after one sent later than them.
        let mut max_seen = 0u32;
        let mut out_of_order = 0;
        for x in &d {
            let i = u32::from_le_bytes(x.bytes[..4].try_into().unwrap());
            if i < max_seen {
                out_of_order += 1;
            }
            max_seen = max_seen.max(i);
        }
        assert!(
            out_of_order > 100,
            "jitter and hold-backs reorder: {out_of_order}"
        );
    }
}
