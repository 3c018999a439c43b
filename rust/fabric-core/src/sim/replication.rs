//! One client's replication over a simulated lossy link: a [`ClientView`] on the server, a
//! [`ClientMirror`] on the client, packets lost with a given probability, acks delayed by a
//! number of ticks (and lost with the same probability). Used by the replication tests and the
//! `replication_bench` example.

use std::collections::VecDeque;

use crate::client_view::{
    Ack, Applied, Candidate, ClientMirror, ClientView, ConfigError, MirrorError, ReplicationConfig,
};
use crate::coords::Vec3;
use crate::sim::rng::SimRng;

/// What one tick of the link did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkTick {
    /// Bytes of the packet the view wrote, if it wrote one.
    pub sent: Option<usize>,
    /// Whether the packet reached the mirror (and was applied).
    pub delivered: bool,
}

/// A view, a mirror and the lossy link between them.
#[derive(Debug)]
pub struct ReplicationLink {
    /// Server side.
    pub view: ClientView,
    /// Client side.
    pub mirror: ClientMirror,
    loss_ppm: u32,
    ack_delay: u64,
    rng: SimRng,
    acks: VecDeque<(u64, Ack)>,
    buf: Vec<u8>,
    /// Packets lost on the way to the client.
    pub lost_packets: u64,
    /// Acks lost on the way back.
    pub lost_acks: u64,
}

impl ReplicationLink {
    /// A link losing `loss_ppm` per million packets and acks, delivering acks `ack_delay` ticks
    /// after the packet they answer.
    pub fn new(
        cfg: ReplicationConfig,
        loss_ppm: u32,
        ack_delay: u64,
        seed: u64,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            view: ClientView::new(cfg)?,
            mirror: ClientMirror::new(cfg.max_entities, cfg.mtu),
            loss_ppm,
            ack_delay,
            rng: SimRng::new(seed),
            acks: VecDeque::with_capacity(ack_delay as usize + 2),
            buf: vec![0; cfg.mtu],
            lost_packets: 0,
            lost_acks: 0,
        })
    }

    /// The packet buffer (the last packet written is at its start).
    pub fn last_packet(&self, len: usize) -> &[u8] {
        &self.buf[..len]
    }

    /// One tick: due acks reach the view, the view writes, the packet may be lost, the mirror
    /// applies it and queues its ack.
    pub fn tick(
        &mut self,
        tick: u64,
        viewer: &Vec3,
        candidates: &[Candidate],
    ) -> Result<LinkTick, MirrorError> {
        self.deliver_acks(tick);
        let sent = self.write(tick, viewer, candidates);
        let delivered = match sent {
            Some(len) => self.transmit(tick, len)?,
            None => false,
        };
        Ok(LinkTick { sent, delivered })
    }

    /// The server's half, step 1: the acks due by `tick` reach the view.
    pub fn deliver_acks(&mut self, tick: u64) {
        while let Some(&(due, ack)) = self.acks.front() {
            if due > tick {
                break;
            }
            self.acks.pop_front();
            self.view.on_ack(&ack);
        }
    }

    /// The server's half, step 2: the view writes this tick's packet, if any.
    pub fn write(&mut self, tick: u64, viewer: &Vec3, candidates: &[Candidate]) -> Option<usize> {
        self.view
            .write_tick(tick, viewer, candidates, &mut self.buf)
    }

    /// The link and the client: the packet of `len` bytes is lost or applied (then its ack is
    /// queued, or lost). Returns whether it reached the mirror.
    pub fn transmit(&mut self, tick: u64, len: usize) -> Result<bool, MirrorError> {
        if self.rng.chance_ppm(self.loss_ppm) {
            self.lost_packets += 1;
            return Ok(false);
        }
        let applied = self.mirror.apply(&self.buf[..len])?;
        if applied != Applied::Stale
            && let Some(ack) = self.mirror.ack()
        {
            if self.rng.chance_ppm(self.loss_ppm) {
                self.lost_acks += 1;
            } else {
                self.acks.push_back((tick + self.ack_delay, ack));
            }
        }
        Ok(true)
    }
}

/// A small fixed scenario the fuzz target and its seeds start from: 50 entities on a line
/// through the viewer (at the origin), each moving sideways at its own speed, views of at most
/// `capacity` entities, no loss, acks one tick late. Runs ticks `1..=ticks`, calling `each`
/// after every tick, and returns the link.
pub fn line_scenario(
    capacity: usize,
    ticks: u64,
    mut each: impl FnMut(u64, &ReplicationLink, LinkTick),
) -> ReplicationLink {
    use crate::coords::{ZERO3, micros};
    let mut cfg = ReplicationConfig::with_radius(20_000);
    cfg.max_entities = capacity;
    let mut link = ReplicationLink::new(cfg, 0, 1, 1).expect("a valid configuration");
    let mut world: Vec<Candidate> = (0..50u32)
        .map(|i| Candidate {
            global_id: i + 1,
            position: [micros(i64::from(i) * 300_000), ZERO3[1], ZERO3[2]],
            velocity: [ZERO3[0], micros(i64::from(i) * 1_000), ZERO3[2]],
            zone: (i % 3) as u8,
            class_word: 5 << 24,
        })
        .collect();
    for tick in 1..=ticks {
        for e in &mut world {
            e.position[1] += e.velocity[1];
        }
        let t = link
            .tick(tick, &ZERO3, &world)
            .expect("the view's packets apply");
        each(tick, &link, t);
    }
    link
}
