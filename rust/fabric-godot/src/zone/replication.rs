//! Replication to players: each session with an avatar here gets a [`ClientView`], and after
//! the zone's ticks every view writes its packet, sent as one datagram.
//!
//! The glue between the core's [`fabric_core::client_view`] (sans-IO), the zone runtime (its
//! slots and the neighbours' ghost rows), the avatar table and the client sessions:
//!
//! - once per frame that ran ticks, the candidates (the zone's owned entities, then the ghost
//!   rows it keeps, each with its owning zone) are gathered once into a preallocated vec;
//! - for each session whose avatar is owned here, its view writes the tick's packet around the
//!   avatar's position into one reused buffer (at most the session's datagram size), which is
//!   sent as an unreliable datagram (kind `0x43`, `docs/session-protocol.md`);
//! - acks (kind `0x41`, 8 bytes) from the client go to [`ClientView::on_ack`]; a malformed one
//!   is counted and dropped;
//! - when the avatar is no longer owned here (it migrated, or was despawned) the view is
//!   dropped (the client hears `not_here` on its next command, as before); a closed session's
//!   view is dropped with it.
//!
//! Nothing is allocated per tick once a view exists (a view is made when its player first
//! shows up in a tick).

use std::collections::HashMap;

use fabric_core::avatars::Avatars;
use fabric_core::client_view::wire::ACK_KIND;
use fabric_core::client_view::{
    Ack, Candidate, ClientView, ConfigError, ReplicationConfig, ViewStats,
};
use fabric_core::coords::Vec3;
use fabric_core::entity_row::dequantize_velocity;
use fabric_core::slots::SlotState;

use super::runtime::ZoneRuntime;

/// Totals of a zone's replication to its clients (cumulative).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ReplTotals {
    /// Replication bytes sent (datagram payloads).
    pub bytes: u64,
    /// Replication packets sent.
    pub packets: u64,
    /// Entity records in those packets (updates and enters).
    pub entities: u64,
    /// Acks applied.
    pub acks: u64,
    /// Acks dropped as malformed, or from a session without a view.
    pub bad_acks: u64,
}

/// Per-second figures over the last full second of ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct ReplRates {
    /// Bytes per second to all clients.
    pub bytes_per_s: f64,
    /// Packets per second to all clients.
    pub packets_per_s: f64,
    /// Entity records per packet.
    pub entities_per_packet: f64,
    /// Bytes per second to the busiest client.
    pub max_client_bytes_per_s: f64,
}

/// One session's view and its byte count since the last rate window.
#[derive(Debug)]
struct Viewer {
    view: ClientView,
    window_bytes: u64,
}

/// The views of a zone's players and the buffers they share.
#[derive(Debug)]
pub(crate) struct Replication {
    cfg: ReplicationConfig,
    views: HashMap<u64, Viewer>,
    candidates: Vec<Candidate>,
    buf: Vec<u8>,
    totals: ReplTotals,
    window: (u64, ReplTotals),
    rates: ReplRates,
}

impl Default for Replication {
    fn default() -> Self {
        Self::new(ReplicationConfig::default()).expect("the default configuration is valid")
    }
}

/// Entity records (updates and enters) a view wrote so far.
fn records(s: &ViewStats) -> u64 {
    s.updates + s.enter_records
}

impl Replication {
    /// No views yet; every view will use `cfg`.
    pub(crate) fn new(cfg: ReplicationConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        Ok(Self {
            cfg,
            views: HashMap::new(),
            candidates: Vec::new(),
            buf: vec![0; cfg.mtu],
            totals: ReplTotals::default(),
            window: (0, ReplTotals::default()),
            rates: ReplRates::default(),
        })
    }

    /// True when `frame` is a client ack (to be handed to [`Self::on_ack`]).
    pub(crate) fn is_ack(frame: &[u8]) -> bool {
        frame.first() == Some(&ACK_KIND)
    }

    /// An ack datagram from `session`: applied to its view, or counted as bad.
    pub(crate) fn on_ack(&mut self, session: u64, frame: &[u8]) {
        match (Ack::decode(frame), self.views.get_mut(&session)) {
            (Ok(ack), Some(v)) => {
                v.view.on_ack(&ack);
                self.totals.acks += 1;
            }
            _ => self.totals.bad_acks += 1,
        }
    }

    /// `session` closed: its view goes.
    pub(crate) fn drop_session(&mut self, session: u64) {
        self.views.remove(&session);
    }

    /// Sessions with a view now.
    pub(crate) fn views(&self) -> usize {
        self.views.len()
    }

    /// The totals so far.
    pub(crate) fn totals(&self) -> ReplTotals {
        self.totals
    }

    /// The figures of the last full second.
    pub(crate) fn rates(&self) -> ReplRates {
        self.rates
    }

    /// Gathers the tick's candidates: owned entities, then ghost rows (one pass each).
    fn gather(&mut self, rt: &ZoneRuntime) {
        let zone = rt.zone();
        let slots = zone.slots();
        let ghosts = rt.ghosts();
        let need = slots.capacity() + ghosts.max_rows();
        if self.candidates.capacity() < need {
            // Once, on the first tick with players: the vec is reused after.
            self.candidates.reserve(need - self.candidates.len());
        }
        self.candidates.clear();
        let own = zone.id();
        for i in 0..slots.capacity() {
            if slots.state(i) != SlotState::Owned {
                continue;
            }
            let e = slots.entity(i);
            self.candidates.push(Candidate {
                global_id: e.global_id,
                position: e.position,
                velocity: e.velocity,
                zone: own,
                class_word: e.payload[0],
            });
        }
        let vmax = zone.config().v_max_um;
        for g in ghosts.iter() {
            self.candidates.push(Candidate {
                global_id: g.row.global_id,
                position: g.row.position,
                velocity: g.row.velocity.map(|q| dequantize_velocity(q, vmax)),
                zone: g.from,
                class_word: g.row.payload[0],
            });
        }
    }

    /// After the zone's ticks: one packet per player whose avatar is owned here, handed to
    /// `send(session, bytes)`; `max_len(session)` is the largest datagram the session takes.
    /// Views of players whose avatar is no longer here are dropped.
    pub(crate) fn run(
        &mut self,
        rt: &ZoneRuntime,
        avatars: &Avatars,
        max_len: impl Fn(u64) -> usize,
        mut send: impl FnMut(u64, &[u8]),
    ) {
        let tick = rt.zone().current_tick();
        if avatars.is_empty() && self.views.is_empty() {
            self.roll_window(tick, rt.zone().config().tick_hz);
            return;
        }
        self.gather(rt);
        let slots = rt.zone().slots();
        for (session, avatar) in avatars.iter() {
            let viewer: Option<Vec3> = rt.owned_slot(avatar).map(|s| slots.position(s));
            let Some(viewer) = viewer else {
                self.views.remove(&session);
                continue;
            };
            let v = match self.views.get_mut(&session) {
                Some(v) => v,
                None => {
                    let view = ClientView::new(self.cfg).expect("validated in Replication::new");
                    self.views.entry(session).or_insert(Viewer {
                        view,
                        window_bytes: 0,
                    })
                }
            };
            let before = records(&v.view.stats());
            let limit = max_len(session).min(self.buf.len());
            let Some(len) =
                v.view
                    .write_tick(tick, &viewer, &self.candidates, &mut self.buf[..limit])
            else {
                continue;
            };
            send(session, &self.buf[..len]);
            self.totals.bytes += len as u64;
            self.totals.packets += 1;
            self.totals.entities += records(&v.view.stats()) - before;
            v.window_bytes += len as u64;
        }
        // Sessions whose avatar is gone from the table (closed, or never here any more).
        if self.views.len() > avatars.len() {
            self.views
                .retain(|s, _| avatars.iter().any(|(session, _)| session == *s));
        }
        self.roll_window(tick, rt.zone().config().tick_hz);
    }

    /// Every `tick_hz` ticks: the rates over the window that ends.
    fn roll_window(&mut self, tick: u64, tick_hz: u32) {
        let (start, at) = self.window;
        if start == 0 {
            self.window = (tick, self.totals);
            return;
        }
        let span = tick.saturating_sub(start);
        if span < u64::from(tick_hz) {
            return;
        }
        let secs = span as f64 / f64::from(tick_hz);
        let t = self.totals;
        let packets = t.packets - at.packets;
        let mut busiest = 0;
        for v in self.views.values_mut() {
            busiest = busiest.max(v.window_bytes);
            v.window_bytes = 0;
        }
        self.rates = ReplRates {
            bytes_per_s: (t.bytes - at.bytes) as f64 / secs,
            packets_per_s: packets as f64 / secs,
            entities_per_packet: if packets == 0 {
                0.0
            } else {
                (t.entities - at.entities) as f64 / packets as f64
            },
            max_client_bytes_per_s: busiest as f64 / secs,
        };
        self.window = (tick, t);
    }

    /// ` client_views=N client_bytes_per_s=.. ...` for the stats line.
    pub(crate) fn stats_fields(&self) -> String {
        let r = self.rates;
        format!(
            " client_views={} client_bytes_per_s={:.0} client_max_bytes_per_s={:.0} \
             client_packets_per_s={:.1} client_entities_per_packet={:.1} client_acks={} \
             client_bad_acks={}",
            self.views.len(),
            r.bytes_per_s,
            r.max_client_bytes_per_s,
            r.packets_per_s,
            r.entities_per_packet,
            self.totals.acks,
            self.totals.bad_acks,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::config::ZoneSettings;
    use crate::zone::players::tests::runtime;
    use fabric_core::client_view::ClientMirror;
    use fabric_core::coords::{Micros, ZERO3};
    use fabric_core::entity_row::PAYLOAD_WORDS;

    fn m(v: f64) -> Micros {
        Micros::from_num(v * 1e6)
    }

    /// A zone with a player and two crates (one within 5 m, one beyond): the player's mirror,
    /// fed the datagrams and acking them, holds exactly the near ones at the zone's positions;
    /// when the avatar is despawned its view goes and nothing more is sent.
    #[test]
    fn a_player_sees_what_is_near_its_avatar_and_acks_flow_back() {
        let mut rt = runtime();
        let mut avatars = Avatars::new();
        let me = rt.spawn([m(0.0); 3], ZERO3, [0; PAYLOAD_WORDS]).unwrap();
        let near = rt
            .spawn([m(3.0), m(0.0), m(1.0)], ZERO3, [7 << 24; PAYLOAD_WORDS])
            .unwrap();
        let far = rt
            .spawn([m(12.0), m(0.0), m(0.0)], ZERO3, [0; PAYLOAD_WORDS])
            .unwrap();
        avatars.insert(1, me);
        let cfg = ZoneSettings::default().replication_config().unwrap();
        let mut repl = Replication::new(cfg).unwrap();
        let mut mirror = ClientMirror::new(cfg.max_entities, cfg.mtu);
        let mut sent: Vec<(u64, Vec<u8>)> = Vec::new();
        for _ in 0..5 {
            rt.run_tick();
            repl.run(&rt, &avatars, |_| 1200, |s, b| sent.push((s, b.to_vec())));
            for (s, bytes) in sent.drain(..) {
                assert_eq!(s, 1, "only the player's session gets packets");
                assert_eq!(bytes[0], 0x43, "replication kind");
                mirror.apply(&bytes).expect("the packet applies");
                let ack = mirror.ack().expect("an applied packet is acked");
                repl.on_ack(1, &ack.encode());
            }
        }
        let t = repl.totals();
        // The first packet carries both enters; at rest and acked, little more is due.
        assert!((2..=5).contains(&t.packets), "{} packets", t.packets);
        assert!(t.entities >= 2, "{} entity records", t.entities);
        assert_eq!((t.acks, t.bad_acks), (t.packets, 0), "every packet acked");
        assert_eq!(
            mirror.position(near),
            Some([m(3.0), m(0.0), m(1.0)]),
            "the near crate at its position (whole mm)"
        );
        assert_eq!(mirror.get(near).unwrap().class_word, 7 << 24);
        assert!(mirror.position(me).is_some(), "the player sees its avatar");
        assert_eq!(mirror.position(far), None, "12 m is beyond 5 m + 10 %");
        repl.on_ack(1, &[0x41, 9]);
        repl.on_ack(2, &mirror.ack().unwrap().encode());
        assert_eq!(repl.totals().bad_acks, 2, "short ack and unknown session");
        rt.despawn(me);
        rt.run_tick();
        repl.run(&rt, &avatars, |_| 1200, |s, b| sent.push((s, b.to_vec())));
        assert!(sent.is_empty(), "no packet without the avatar here");
        assert_eq!(repl.views(), 0, "its view is dropped");
    }

    /// After a second of ticks the rates and the stats fields show what was sent.
    #[test]
    fn rates_cover_the_last_second() {
        let mut rt = runtime();
        let mut avatars = Avatars::new();
        let me = rt.spawn([m(0.0); 3], ZERO3, [0; PAYLOAD_WORDS]).unwrap();
        // Moving at 1 m/s: an update every tick.
        let v = [m(0.05), m(0.0), m(0.0)];
        rt.spawn([m(1.0), m(0.0), m(0.0)], v, [0; PAYLOAD_WORDS])
            .unwrap();
        avatars.insert(1, me);
        let cfg = ZoneSettings::default().replication_config().unwrap();
        let mut repl = Replication::new(cfg).unwrap();
        let mut bytes = 0;
        for _ in 0..41 {
            rt.run_tick();
            repl.run(&rt, &avatars, |_| 1200, |_, b| bytes += b.len());
        }
        let r = repl.rates();
        assert_eq!(r.packets_per_s, 20.0, "a packet every tick: {r:?}");
        assert!(
            r.bytes_per_s > 0.0 && r.bytes_per_s <= bytes as f64,
            "{r:?}"
        );
        assert_eq!(r.max_client_bytes_per_s, r.bytes_per_s, "one client");
        assert!(r.entities_per_packet >= 1.0, "{r:?}");
        let line = repl.stats_fields();
        assert!(line.contains(" client_views=1 "), "{line}");
        assert!(line.contains(" client_packets_per_s=20.0 "), "{line}");
    }

    /// The datagram limit of a session caps its packets.
    #[test]
    fn packets_fit_the_sessions_datagram_size() {
        let mut rt = runtime();
        let mut avatars = Avatars::new();
        let me = rt.spawn([m(0.0); 3], ZERO3, [0; PAYLOAD_WORDS]).unwrap();
        for i in 0..40 {
            let x = f64::from(i % 8) * 0.5;
            let z = f64::from(i / 8) * 0.5;
            rt.spawn([m(x), m(0.0), m(z)], ZERO3, [0; PAYLOAD_WORDS])
                .unwrap();
        }
        avatars.insert(1, me);
        let cfg = ZoneSettings::default().replication_config().unwrap();
        let mut repl = Replication::new(cfg).unwrap();
        let mut lens = Vec::new();
        rt.run_tick();
        repl.run(&rt, &avatars, |_| 200, |_, b| lens.push(b.len()));
        assert_eq!(lens.len(), 1);
        assert!(
            lens[0] <= 200 && lens[0] > 100,
            "packet of {} bytes",
            lens[0]
        );
    }
}
