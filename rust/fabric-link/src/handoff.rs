//! Hand-off latency: from a migration intent handed to the links to the receiver's answer
//! (`ACKK`: the sender frees its slot, the hand-off is decided) and to the commit's
//! acknowledgement (`CMAK`), per migration, measured on the sender's side by the driver.
//!
//! Intents are remembered in a fixed direct-mapped table (no allocation on the tick path; a
//! collision forgets the older intent, which then gives no sample) and samples go to a bounded
//! ring of the most recent ones.

use std::time::{Duration, Instant};

use fabric_core::migration_intent::{MigrationIntent, is_intent};
use fabric_core::zone_control::{CONTROL_LEN, ControlKind, ZoneControl};
use fabric_core::zones::ZoneId;

const TABLE: usize = 1024;
const RING: usize = 8192;

/// Latency samples of hand-offs started by this zone.
#[derive(Debug, Clone)]
pub struct HandoffLatency {
    sent: Vec<Option<(ZoneId, u32, Instant)>>,
    decided: Vec<Duration>,
    acked: Vec<Duration>,
    next_decided: usize,
    next_acked: usize,
}

impl Default for HandoffLatency {
    fn default() -> Self {
        Self {
            sent: vec![None; TABLE],
            decided: Vec::with_capacity(RING),
            acked: Vec::with_capacity(RING),
            next_decided: 0,
            next_acked: 0,
        }
    }
}

fn slot(peer: ZoneId, id: u32) -> usize {
    (id as usize).wrapping_mul(31).wrapping_add(peer as usize) % TABLE
}

fn record(ring: &mut Vec<Duration>, next: &mut usize, d: Duration) {
    if ring.len() < RING {
        ring.push(d);
    } else {
        ring[*next] = d;
    }
    *next = (*next + 1) % RING;
}

impl HandoffLatency {
    /// Notes a packet the zone sends to `to` (only intents matter).
    pub fn on_sent(&mut self, to: ZoneId, bytes: &[u8], now: Instant) {
        if is_intent(bytes)
            && let Ok(i) = MigrationIntent::decode(bytes)
        {
            self.sent[slot(to, i.migration_id)] = Some((to, i.migration_id, now));
        }
    }

    /// Notes a packet received from `from` (acks and commit acks end a measurement).
    pub fn on_received(&mut self, from: ZoneId, bytes: &[u8], now: Instant) {
        if bytes.len() != CONTROL_LEN {
            return;
        }
        let Ok(c) = ZoneControl::decode(bytes) else {
            return;
        };
        let s = slot(from, c.field);
        let Some((to, id, t)) = self.sent[s] else {
            return;
        };
        if to != from || id != c.field {
            return;
        }
        match c.kind {
            ControlKind::Ack => record(&mut self.decided, &mut self.next_decided, now - t),
            ControlKind::CommitAck => {
                record(&mut self.acked, &mut self.next_acked, now - t);
                self.sent[s] = None;
            }
            ControlKind::Refuse => self.sent[s] = None,
            _ => {}
        }
    }

    /// Percentile `p` (0..=100) of intent-to-`ACKK` over the recent samples.
    pub fn decided_percentile(&self, p: f64) -> Option<Duration> {
        percentile(&self.decided, p)
    }

    /// Percentile `p` (0..=100) of intent-to-`CMAK` over the recent samples.
    pub fn acknowledged_percentile(&self, p: f64) -> Option<Duration> {
        percentile(&self.acked, p)
    }

    /// Samples held (intent-to-`ACKK`).
    pub fn samples(&self) -> usize {
        self.decided.len()
    }
}

fn percentile(samples: &[Duration], p: f64) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    let mut v = samples.to_vec();
    v.sort_unstable();
    let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v.get(i.min(v.len() - 1)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fabric_core::coords::vec3_micros;
    use fabric_core::entity::Entity;
    use fabric_core::hlc::Hlc;

    #[test]
    fn intent_then_ack_and_commit_ack_give_samples() {
        let intent = MigrationIntent {
            from_zone: 0,
            to_zone: 1,
            migration_id: 42,
            sender_slot: 3,
            sent_tick: 10,
            sender_hlc: Hlc::at_tick(10),
            arrival_hlc: Hlc::at_tick(11),
            entity: Entity::at(7, vec3_micros([0, 0, 0])),
            ownership: None,
        };
        let mut h = HandoffLatency::default();
        let t0 = Instant::now();
        h.on_sent(1, &intent.to_bytes(), t0);
        let ack = ZoneControl::new(ControlKind::Ack, 1, 42, 5, 3).to_bytes();
        let wrong = ZoneControl::new(ControlKind::Ack, 2, 42, 5, 3).to_bytes();
        h.on_received(2, &wrong, t0 + Duration::from_millis(1));
        assert_eq!(
            h.samples(),
            0,
            "an ack from another zone is not this hand-off's"
        );
        h.on_received(1, &ack, t0 + Duration::from_millis(3));
        let cmak = ZoneControl::new(ControlKind::CommitAck, 1, 42, 5, 0).to_bytes();
        h.on_received(1, &cmak, t0 + Duration::from_millis(5));
        assert_eq!(h.decided_percentile(50.0), Some(Duration::from_millis(3)));
        assert_eq!(
            h.acknowledged_percentile(99.0),
            Some(Duration::from_millis(5))
        );
        h.on_received(1, &cmak, t0 + Duration::from_millis(9));
        assert_eq!(
            h.acknowledged_percentile(99.0),
            Some(Duration::from_millis(5)),
            "once"
        );
    }
}
