//! Replication to players: each session with an avatar here gets a [`ClientView`], and after
//! the zone's ticks every view writes its packet, sent as one datagram.
//!
//! The glue between the core's [`fabric_core::client_view`] (sans-IO), the zone runtime (its
//! slots and the neighbours' ghost rows), the avatar table and the client sessions:
//!
//! - once per frame that ran ticks, the candidates (the zone's owned entities and those staging
//!   here, whose hand-off the receiver has not acknowledged yet, then the ghost rows it keeps,
//!   each with its owning zone) are gathered once into a preallocated vec;
//! - for each session whose avatar is held here (owned or staging), its view writes the tick's packet around the
//!   avatar's position into one reused buffer (at most the session's datagram size), which is
//!   sent as an unreliable datagram (kind `0x43`, `docs/session-protocol.md`);
//! - acks (kind `0x41`, 8 bytes) from the client go to [`ClientView::on_ack`]; a malformed one
//!   is counted and dropped;
//! - when the avatar is no longer held here (it migrated, or was despawned) the view is
//!   dropped (the client hears `not_here` on its next command, as before); a closed session's
//!   view is dropped with it.
//!
//! - when a view's late-join baseline is complete ([`ClientView::baseline_done`]) the session
//!   is sent, on the reliable stream, who holds what (an `ownership` `granted` event, reason
//!   `baseline`, per held entity: a joiner missed the grants made before it came), then
//!   `baseline_done {tick}`; once per view: on joining and each time its avatar enters this
//!   zone again (a new view);
//!
//! - the replication manifest's properties ([`fabric_core::manifest`]): the zone's
//!   [`PropertyTracker`] observes every candidate's payload each run, each view's
//!   [`ClientProperties`] says what its client gets (snapshots of entities entering its view,
//!   `reliable_on_change` changes, `high_rate_unreliable` words), queued for
//!   [`FabricZone::send_properties`] (`properties.rs`), which runs before the baseline markers
//!   so a view's snapshots precede its `baseline_done` on the reliable stream;
//!
//! Nothing is allocated per tick once a view exists (a view is made when its player first
//! shows up in a tick).

use std::collections::HashMap;

use fabric_core::avatars::Avatars;
use fabric_core::client_view::wire::{ACK_KIND, ACK_LEN};
use fabric_core::client_view::{
    Ack, Candidate, ClientView, ConfigError, ReplicationConfig, ViewStats,
};
use fabric_core::coords::Vec3;
use fabric_core::entity_row::{PAYLOAD_WORDS, dequantize_velocity};
use fabric_core::manifest::{ClientProperties, Manifest, PropertySend, PropertyTracker};
use fabric_core::slots::SlotState;

use super::FabricZone;
use super::properties::PropTotals;
use super::runtime::ZoneRuntime;
use fabric_core::session_control::{ControlMessage, OwnershipState};

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
    /// The session was told its baseline is done.
    baseline_told: bool,
    /// What its client was sent of the manifest's properties.
    props: ClientProperties,
}

/// The views of a zone's players and the buffers they share.
#[derive(Debug)]
pub(crate) struct Replication {
    cfg: ReplicationConfig,
    views: HashMap<u64, Viewer>,
    candidates: Vec<Candidate>,
    /// How many of `candidates` are this zone's own (the rest are ghost rows).
    held: usize,
    buf: Vec<u8>,
    totals: ReplTotals,
    window: (u64, ReplTotals),
    rates: ReplRates,
    /// Sessions whose baseline completed in the last run, and the tick (reused).
    baselines: Vec<(u64, u64)>,
    /// The payload of each candidate (same order as `candidates`).
    payloads: Vec<[u32; PAYLOAD_WORDS]>,
    /// The replication manifest (empty: no property is replicated).
    manifest: Manifest,
    /// The properties of every candidate, stamped.
    tracker: PropertyTracker,
    /// One view's property sends of this run (reused).
    prop_sends: Vec<PropertySend>,
    /// Every property send of the last run, by session, for `send_properties` (reused).
    prop_out: Vec<(u64, PropertySend)>,
    /// Property messages sent so far.
    prop_totals: PropTotals,
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
            held: 0,
            buf: vec![0; cfg.mtu],
            totals: ReplTotals::default(),
            window: (0, ReplTotals::default()),
            rates: ReplRates::default(),
            baselines: Vec::new(),
            payloads: Vec::new(),
            manifest: Manifest::new(),
            // A refresh of unreliable words every half second.
            tracker: PropertyTracker::new(0, u64::from(cfg.tick_hz.div_ceil(2))),
            prop_sends: Vec::new(),
            prop_out: Vec::new(),
            prop_totals: PropTotals::default(),
        })
    }

    /// Replicates properties as `manifest` says, from the next run on.
    pub(crate) fn set_manifest(&mut self, manifest: Manifest) {
        self.manifest = manifest;
    }

    /// The tracker (values and sequence numbers of the properties held).
    pub(crate) fn tracker(&self) -> &PropertyTracker {
        &self.tracker
    }

    /// Property messages sent so far.
    pub(crate) fn prop_totals(&self) -> PropTotals {
        self.prop_totals
    }

    /// Updates the property totals (after `send_properties`).
    pub(crate) fn set_prop_totals(&mut self, t: PropTotals) {
        self.prop_totals = t;
    }

    /// The property sends of the last run, by session.
    pub(crate) fn take_property_sends(&mut self) -> std::vec::Drain<'_, (u64, PropertySend)> {
        self.prop_out.drain(..)
    }

    /// True when `frame` is a client ack (to be handed to [`Self::on_ack`]).
    pub(crate) fn is_ack(frame: &[u8]) -> bool {
        frame.first() == Some(&ACK_KIND)
    }

    /// A datagram that starts with an ack, split into the ack and what follows it: a client may
    /// send its next frame (a command) in the same datagram, one datagram where it would send
    /// two (`docs/protocol.md`). `None` when it does not start with an ack.
    pub(crate) fn split_ack(frame: &[u8]) -> Option<(&[u8], &[u8])> {
        Self::is_ack(frame).then(|| frame.split_at(frame.len().min(ACK_LEN)))
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
            self.payloads.reserve(need - self.payloads.len());
        }
        self.candidates.clear();
        self.payloads.clear();
        let own = zone.id();
        for i in 0..slots.capacity() {
            // Staging entities are still this zone's until the receiver's ack (they stay if
            // it refuses), and nobody else sends them before the commit: sending them keeps a
            // crossing avatar's updates flowing, where leaving them out made every hand-off a
            // leave and an enter.
            if !matches!(slots.state(i), SlotState::Owned | SlotState::Staging) {
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
            self.payloads.push(e.payload);
        }
        self.held = self.candidates.len();
        let vmax = zone.config().v_max_um;
        for g in ghosts.iter() {
            self.candidates.push(Candidate {
                global_id: g.row.global_id,
                position: g.row.position,
                velocity: g.row.velocity.map(|q| dequantize_velocity(q, vmax)),
                zone: g.from,
                class_word: g.row.payload[0],
            });
            self.payloads.push(g.row.payload);
        }
    }

    /// The tracker observes every candidate's payload (nothing without a manifest).
    fn observe(&mut self, tick: u64) {
        if self.manifest.is_empty() {
            return;
        }
        self.tracker.begin_tick(tick);
        for (c, p) in self.candidates.iter().zip(&self.payloads) {
            self.tracker.observe(&self.manifest, c.global_id, p);
        }
        self.tracker.end_tick();
    }

    /// After the zone's ticks: one packet per player whose avatar is held here (owned, or
    /// staging: handed to a neighbour that has not answered), handed to
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
        self.observe(tick);
        for (session, avatar) in avatars.iter() {
            // While the avatar is staging (handed to a neighbour that has not answered) the
            // view goes on: a hand-off that rolls back must not restart it. A new view starts
            // its sequence numbers again, which the client's mirror, still holding the old
            // view's entities, would take for stale packets and then for enters on handles
            // it holds (`HandleInUse`): the load runs' "packet refused by the mirror".
            let viewer: Option<Vec3> = self.candidates[..self.held]
                .iter()
                .find(|c| c.global_id == avatar)
                .map(|c| c.position);
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
                        baseline_told: false,
                        props: ClientProperties::new(self.cfg.max_entities),
                    })
                }
            };
            let before = records(&v.view.stats());
            let limit = max_len(session).min(self.buf.len());
            let written =
                v.view
                    .write_tick(tick, &viewer, &self.candidates, &mut self.buf[..limit]);
            if !self.manifest.is_empty() {
                let view = &v.view;
                v.props.tick(
                    &self.tracker,
                    &self.manifest,
                    |id| view.is_visible(id),
                    &mut self.prop_sends,
                );
                self.prop_out
                    .extend(self.prop_sends.drain(..).map(|p| (session, p)));
            }
            if !v.baseline_told
                && let Some(done) = v.view.baseline_done()
            {
                v.baseline_told = true;
                self.baselines.push((session, done));
            }
            let Some(len) = written else {
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

    /// The sessions whose baseline completed since the last call, with its tick.
    pub(crate) fn take_baselines(&mut self) -> std::vec::Drain<'_, (u64, u64)> {
        self.baselines.drain(..)
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
             client_bad_acks={} client_prop_messages={} client_prop_datagrams={} \
             client_prop_bytes={}",
            self.views.len(),
            r.bytes_per_s,
            r.max_client_bytes_per_s,
            r.packets_per_s,
            r.entities_per_packet,
            self.totals.acks,
            self.totals.bad_acks,
            self.prop_totals.reliable,
            self.prop_totals.datagrams,
            self.prop_totals.bytes,
        )
    }
}

impl FabricZone {
    /// After replication: to each session whose baseline completed, the holders, then the
    /// `baseline_done` marker (reliable, in that order).
    pub(super) fn send_baseline_markers(&mut self) {
        let Some(server) = self.server.as_ref() else {
            self.players.replication.take_baselines().for_each(drop);
            return;
        };
        let tx = server.sender();
        let table = &self.players.ownership.table;
        for (session, tick) in self.players.replication.take_baselines() {
            for (entity, holder) in table.holders() {
                let held = ControlMessage::Ownership {
                    entity,
                    state: OwnershipState::Granted,
                    holder: Some(holder),
                    reason: Some("baseline".into()),
                };
                let _ = tx.send_message(session, held.encode());
            }
            let _ = tx.send_message(session, ControlMessage::BaselineDone { tick }.encode());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::config::ZoneSettings;
    use crate::zone::players::tests::runtime;
    use fabric_core::client_view::{Applied, ClientMirror};
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
        // An ack with a command after it: split where the ack ends; a short one stays short.
        let mut both = mirror.ack().unwrap().encode().to_vec();
        both.extend_from_slice(b"\x43command");
        assert_eq!(
            Replication::split_ack(&both),
            Some((&both[..8], &b"\x43command"[..]))
        );
        assert_eq!(
            Replication::split_ack(&[0x41, 9]),
            Some((&[0x41, 9][..], &[][..]))
        );
        assert_eq!(Replication::split_ack(b"\x43command"), None);
        repl.on_ack(1, &[0x41, 9]);
        repl.on_ack(2, &mirror.ack().unwrap().encode());
        assert_eq!(repl.totals().bad_acks, 2, "short ack and unknown session");
        rt.despawn(me);
        rt.run_tick();
        repl.run(&rt, &avatars, |_| 1200, |s, b| sent.push((s, b.to_vec())));
        assert!(sent.is_empty(), "no packet without the avatar here");
        assert_eq!(repl.views(), 0, "its view is dropped");
    }

    /// A player's avatar walks from zone 0 into zone 1 (a fabric of three in memory, pumped as
    /// the node does: a frame's ticks and pump, then replication, then pumps between ticks).
    /// Zone 0 begins the hand-off at tick T+1 and zone 1 owns the avatar at T+3 (the 2-tick
    /// latency floor at 20 Hz); zone 0 keeps sending the avatar while it is staging there (it
    /// still simulates it until the receiver's ack), so the player's own avatar is updated at
    /// T+1 and T+3: no gap over 2 ticks. (Sending only owned avatars left T..T+3: 3 ticks.)
    #[test]
    fn a_staging_avatar_is_still_sent_so_the_hand_off_gap_is_two_ticks() {
        use crate::zone::runtime::tests::zone_of_three;
        let name = "repl-staging-gap";
        let mut zones: Vec<ZoneRuntime> = (0..3).map(|z| zone_of_three(name, z)).collect();
        // A point of zone 1 with 2 m of zone 1 ahead along +x; spawned by zone 0, as if it had
        // just walked in.
        let cfg = *zones[0].zone().config();
        let zone_at = |p: [f64; 3]| {
            let p = p.map(m);
            cfg.layout
                .zone_of(fabric_core::hilbert::encode_position(&cfg.bounds, &p))
        };
        let span = |k: usize| {
            let (lo, hi) = (cfg.bounds.min_micros(k), cfg.bounds.max_micros(k));
            (lo.to_num::<f64>() / 1e6, hi.to_num::<f64>() / 1e6)
        };
        let at = |k: usize, i: u32| {
            let (lo, hi) = span(k);
            lo + (hi - lo) * (f64::from(i) + 0.5) / 8.0
        };
        let start = (0..512u32)
            .map(|n| [at(0, n % 8), at(1, n / 8 % 8), at(2, n / 64)])
            .find(|p| (0..=40).all(|i| zone_at([p[0] + f64::from(i) * 0.05, p[1], p[2]]) == 1))
            .expect("a point of zone 1 with room ahead");
        let speed = [m(0.05), m(0.0), m(0.0)];
        let me = zones[0]
            .spawn(start.map(m), speed, [0; PAYLOAD_WORDS])
            .unwrap();
        let mut avatars = [Avatars::new(), Avatars::new()];
        avatars[0].insert(1, me);
        let rcfg = ZoneSettings::default().replication_config().unwrap();
        let mut repl = [
            Replication::new(rcfg).unwrap(),
            Replication::new(rcfg).unwrap(),
        ];
        let mut mirrors = [
            ClientMirror::new(rcfg.max_entities, rcfg.mtu),
            ClientMirror::new(rcfg.max_entities, rcfg.mtu),
        ];
        // (tick, zone) of each packet that updated the own avatar; the tick zone 0 began.
        let mut updates: Vec<(u64, usize)> = Vec::new();
        let mut staged_at = None;
        for _ in 0..30 {
            for z in zones.iter_mut() {
                z.run_tick();
                z.pump();
            }
            let tick = zones[0].zone().current_tick();
            let held_by_0 = zones[0].zone().holdings().find(|h| h.global_id == me);
            if staged_at.is_none() && held_by_0.is_some_and(|h| h.state == SlotState::Staging) {
                staged_at = Some(tick);
            }
            // The claim binds the avatar to the session in zone 1 once it is zone 1's.
            if avatars[1].is_empty() && zones[1].owned_slot(me).is_some() {
                avatars[1].insert(1, me);
            }
            for k in 0..2 {
                let mut sent: Vec<Vec<u8>> = Vec::new();
                repl[k].run(
                    &zones[k],
                    &avatars[k],
                    |_| 1200,
                    |_, b| sent.push(b.to_vec()),
                );
                for bytes in sent {
                    let before = mirrors[k].get(me).map(|e| e.tick);
                    mirrors[k].apply(&bytes).expect("the packet applies");
                    if mirrors[k].get(me).map(|e| e.tick) != before {
                        updates.push((tick, k));
                    }
                    repl[k].on_ack(1, &mirrors[k].ack().unwrap().encode());
                }
            }
            // Zone 0's session no longer plays the avatar once the hand-off is done there.
            if held_by_0.is_none() {
                avatars[0].remove(1);
            }
            // Frames between ticks: intent to the receiver (ack back), ack to the sender.
            for _ in 0..2 {
                for z in zones.iter_mut() {
                    z.pump();
                }
            }
        }
        let staged_at = staged_at.expect("zone 0 began the hand-off");
        let from_1 = updates.iter().find(|u| u.1 == 1).expect("zone 1 sends it");
        assert_eq!(
            from_1.0,
            staged_at + 2,
            "zone 1 owns and sends it at the arrival tick: {updates:?}"
        );
        let last_0 = updates
            .iter()
            .rev()
            .find(|u| u.1 == 0)
            .expect("zone 0 sent it");
        assert_eq!(
            last_0.0, staged_at,
            "zone 0 sent it at the staging tick: {updates:?}"
        );
        let worst = updates.windows(2).map(|w| w[1].0 - w[0].0).max().unwrap();
        assert_eq!(
            worst, 2,
            "own avatar updates at most 2 ticks apart: {updates:?}"
        );
    }

    /// The baseline marker: none while enters are unacked (the client lost every packet), one
    /// once they are acked, with the tick it completed; never again for the same view; a new
    /// view (the avatar back in this zone) gets its own.
    #[test]
    fn baseline_done_is_reported_once_per_view_after_the_enters_are_acked() {
        let mut rt = runtime();
        let mut avatars = Avatars::new();
        let me = rt.spawn([m(0.0); 3], ZERO3, [0; PAYLOAD_WORDS]).unwrap();
        for i in 0..30 {
            let x = f64::from(i % 6) * 0.5;
            rt.spawn(
                [m(x), m(1.0), m(f64::from(i / 6) * 0.5)],
                ZERO3,
                [0; PAYLOAD_WORDS],
            )
            .unwrap();
        }
        avatars.insert(1, me);
        let cfg = ZoneSettings::default().replication_config().unwrap();
        let mut repl = Replication::new(cfg).unwrap();
        let mut mirror = ClientMirror::new(cfg.max_entities, cfg.mtu);
        let mut sent: Vec<Vec<u8>> = Vec::new();
        for _ in 0..4 {
            rt.run_tick();
            repl.run(&rt, &avatars, |_| 300, |_, b| sent.push(b.to_vec()));
            sent.clear();
        }
        assert_eq!(repl.take_baselines().count(), 0, "nothing acked: not done");
        let mut done = Vec::new();
        for _ in 0..40 {
            rt.run_tick();
            repl.run(&rt, &avatars, |_| 300, |_, b| sent.push(b.to_vec()));
            for bytes in sent.drain(..) {
                mirror.apply(&bytes).expect("the packet applies");
                repl.on_ack(1, &mirror.ack().unwrap().encode());
            }
            let tick = rt.zone().current_tick();
            done.extend(repl.take_baselines().map(|(s, t)| (s, t, tick)));
        }
        assert_eq!(done.len(), 1, "exactly one marker: {done:?}");
        let (session, at, seen) = done[0];
        assert_eq!(session, 1);
        assert!(
            at > 4 && at <= seen,
            "done at tick {at}, after the lost ones"
        );
        assert_eq!(mirror.len(), 31, "the client holds all 31 entities by then");
        rt.despawn(me);
        rt.run_tick();
        repl.run(&rt, &avatars, |_| 300, |_, _| {});
        let back = rt.spawn([m(0.0); 3], ZERO3, [0; PAYLOAD_WORDS]).unwrap();
        avatars.remove(1);
        avatars.insert(1, back);
        let mut mirror = ClientMirror::new(cfg.max_entities, cfg.mtu);
        let mut again = 0;
        for _ in 0..40 {
            rt.run_tick();
            repl.run(&rt, &avatars, |_| 300, |_, b| sent.push(b.to_vec()));
            for bytes in sent.drain(..) {
                mirror.apply(&bytes).expect("the packet applies");
                repl.on_ack(1, &mirror.ack().unwrap().encode());
            }
            again += repl.take_baselines().count();
        }
        assert_eq!(again, 1, "a new view, a new marker");
    }

    /// A hand-off of the player's avatar that is never answered (a neighbour down): the avatar
    /// stages, rolls back, stages again. The view goes on through all of it: every packet
    /// applies to the same mirror, none is stale, and packets keep coming while the avatar is
    /// staging. Before, the view was dropped at each staging and a new one restarted the
    /// sequence numbers: stale packets, then enters on handles the mirror still held.
    #[test]
    fn a_view_goes_on_while_its_avatar_stages_and_rolls_back() {
        use fabric_core::coords::WorldBounds;
        use fabric_core::hilbert::encode_position;
        let settings = ZoneSettings {
            zone_count: 2,
            zone_index: 0,
            hysteresis_ticks: 1,
            ..ZoneSettings::default()
        };
        let mut rt = crate::zone::players::tests::runtime_with(&settings);
        let (layout, bounds): (_, WorldBounds) = {
            let c = rt.zone().config();
            (c.layout, c.bounds)
        };
        // A point of zone 1's range with room around it.
        let p = (-10..=10)
            .flat_map(|x| (-10..=10).map(move |z| [m(f64::from(x)), m(0.0), m(f64::from(z))]))
            .find(|p| {
                [-1.0, 0.0, 1.0].iter().all(|d| {
                    let q = [p[0] + m(*d), p[1], p[2] + m(*d)];
                    layout.zone_of(encode_position(&bounds, &q)) == 1
                })
            })
            .expect("zone 1 has room for the avatar");
        let mut avatars = Avatars::new();
        let me = rt.spawn(p, ZERO3, [0; PAYLOAD_WORDS]).unwrap();
        let near = rt
            .spawn([p[0] + m(1.0), p[1], p[2]], ZERO3, [0; PAYLOAD_WORDS])
            .unwrap();
        avatars.insert(1, me);
        let cfg = settings.replication_config().unwrap();
        let mut repl = Replication::new(cfg).unwrap();
        let mut mirror = ClientMirror::new(cfg.max_entities, cfg.mtu);
        let mut sent: Vec<Vec<u8>> = Vec::new();
        let (mut staged_ticks, mut sent_staging, mut back_owned) = (0, 0, 0);
        let mut was_staging = false;
        for _ in 0..600 {
            rt.run_tick();
            let staging = rt.owned_slot(me).is_none();
            assert!(rt.held_slot(me).is_some(), "the avatar stays here");
            repl.run(&rt, &avatars, |_| 1200, |_, b| sent.push(b.to_vec()));
            if staging {
                staged_ticks += 1;
                sent_staging += sent.len();
            } else if was_staging {
                back_owned += 1;
            }
            was_staging = staging;
            for bytes in sent.drain(..) {
                let applied = mirror.apply(&bytes).expect("every packet applies");
                assert!(
                    matches!(applied, Applied::Applied { .. }),
                    "no stale packet: the view did not restart"
                );
                repl.on_ack(1, &mirror.ack().unwrap().encode());
                assert!(
                    mirror.get(me).is_some(),
                    "the client never loses its avatar"
                );
            }
        }
        assert!(staged_ticks > 0, "the avatar staged");
        assert!(back_owned > 0, "and rolled back at least once");
        assert!(sent_staging > 0, "packets kept coming while it staged");
        assert!(mirror.position(near).is_some(), "the client sees the crate");
        assert_eq!(repl.views(), 1, "one view all along");
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
