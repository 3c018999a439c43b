//! [`ClientView`]: the server side of one client's replication (interest with hysteresis,
//! reliable enter/leave, acked baselines, the priority accumulator and the byte budget).

use super::baseline::{
    InFlight, QState, SentKind, SentRecord, predict, quantize_position, quantize_velocity,
    within_tolerance,
};
use super::config::{ConfigError, ReplicationConfig};
use super::id_hash::{IdMap, id_map};
use super::priority::{SEND_THRESHOLD, by_priority};
use super::wire::{
    Ack, EnterRecord, MAX_AGE, MAX_OFFSET_MM, MAX_RECORD_LEN, MAX_SECTION_RECORDS, PacketHeader,
    PacketWriter, PositionCode, UpdateRecord, encode_update,
};
use crate::coords::{Vec3, floor_micros};
use crate::zones::ZoneId;

/// Smallest packet worth writing: below this much budget the tick sends nothing.
pub const MIN_PACKET_LEN: usize = 32;

/// One entity the zone holds this tick (its own or a neighbour's ghost row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Global entity id.
    pub global_id: u32,
    /// Exact position, micrometres.
    pub position: Vec3,
    /// Velocity, micrometres per tick.
    pub velocity: Vec3,
    /// Owning zone.
    pub zone: ZoneId,
    /// `payload[0]` (class in the top byte).
    pub class_word: u32,
}

/// Counters of a view (cumulative).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewStats {
    /// Packets written.
    pub packets: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Update records written.
    pub updates: u64,
    /// Enter records written (first sends and resends).
    pub enter_records: u64,
    /// Leave records written (first sends and resends).
    pub leave_records: u64,
    /// Entities that entered the view.
    pub entered: u64,
    /// Entities that left the view.
    pub left: u64,
    /// Entities in radius that found no free handle.
    pub refused_full: u64,
    /// Ticks with no packet because the budget was spent.
    pub budget_skips: u64,
    /// Ticks with no packet because of the rate ceiling.
    pub rate_skips: u64,
    /// Packets acknowledged.
    pub acked_packets: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Free,
    /// Enter sent in every packet until one carrying it is acked.
    Entering,
    Active,
    /// Leave sent in every packet until one carrying it is acked; the handle is then free.
    Leaving,
}

/// The acked state of an entity: the tick of the packet that carried it, the state, the zone.
type Baseline = (u64, QState, u8);

#[derive(Debug, Clone, Copy)]
struct Slot {
    state: SlotState,
    generation: u16,
    global_id: u32,
    class_word: u32,
    zone: u8,
    position: Vec3,
    velocity: Vec3,
    /// Ticks since its position last changed, at most [`MOVED_WITHIN_TICKS`]. An entity moved
    /// by position upserts (a player's avatar walked by its client: at rest between upserts,
    /// which come at the client's frame rate, not on every tick) counts as moving while this is
    /// below [`MOVED_WITHIN_TICKS`], so the velocity alone does not call it idle.
    still: u8,
    seen: bool,
    priority: f32,
    baseline: Option<Baseline>,
}

/// An entity whose position changed within this many ticks counts as moving (see
/// [`Slot::still`]).
const MOVED_WITHIN_TICKS: u8 = 5;

const FREE_SLOT: Slot = Slot {
    state: SlotState::Free,
    generation: 0,
    global_id: 0,
    class_word: 0,
    zone: 0,
    position: crate::coords::ZERO3,
    velocity: crate::coords::ZERO3,
    still: MOVED_WITHIN_TICKS,
    seen: false,
    priority: 0.0,
    baseline: None,
};

/// An update chosen for the packet: handle, record, state the client will hold, zone.
type Chosen = (u16, UpdateRecord, QState, u8);

/// The server side of one client's replication. See the module documentation for how a zone
/// drives it.
#[derive(Debug, Clone)]
pub struct ClientView {
    cfg: ReplicationConfig,
    slots: Vec<Slot>,
    /// One past the highest handle ever used: the per-tick passes stop there (free handles are
    /// reused lowest-first, so this stays near the most entities ever in view at once).
    used_end: usize,
    ids: IdMap<u16>,
    free: Vec<u16>,
    inflight: InFlight,
    seq: u16,
    tokens: i64,
    last_tick: Option<u64>,
    last_packet: Option<u64>,
    picks: Vec<(f32, u16)>,
    chosen: Vec<Chosen>,
    stats: ViewStats,
    /// The tick at which the late-join baseline was complete ([`ClientView::baseline_done`]).
    baseline_done: Option<u64>,
}

/// Squared distance in square micrometres (whole micrometres: exact, no rounding to the mm).
fn distance2_um(a: &Vec3, b: &Vec3) -> i128 {
    (0..3)
        .map(|k| {
            let d = i128::from(floor_micros(a[k])) - i128::from(floor_micros(b[k]));
            d * d
        })
        .sum()
}

impl ClientView {
    /// A view with every buffer allocated up front.
    pub fn new(cfg: ReplicationConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let n = cfg.max_entities;
        Ok(Self {
            cfg,
            slots: vec![FREE_SLOT; n],
            used_end: 0,
            ids: id_map(n * 2),
            free: (0..n as u16).rev().collect(),
            inflight: InFlight::new(2 * MAX_SECTION_RECORDS + cfg.mtu / 2 + 1),
            seq: 0,
            tokens: 0,
            last_tick: None,
            last_packet: None,
            picks: Vec::with_capacity(n),
            chosen: Vec::with_capacity(n),
            stats: ViewStats::default(),
            baseline_done: None,
        })
    }

    /// The settings.
    pub fn config(&self) -> &ReplicationConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> ViewStats {
        self.stats
    }

    /// Entities in view (entering or active).
    pub fn visible(&self) -> usize {
        self.ids.len()
    }

    /// The late-join baseline: `Some(tick)` once, at the first tick (`write_tick`) at which
    /// every entity in view had its enter record acked by the client, i.e. the client holds a
    /// state of everything in its interest (the enters went in as many packets, each within
    /// the MTU, over as many ticks as the byte budget takes, and lost ones were resent until
    /// acked). Stays set: entities entering later are live traffic. The zone tells the client
    /// with a `baseline_done` message (`docs/protocol.md`, "Late join").
    pub fn baseline_done(&self) -> Option<u64> {
        self.baseline_done
    }

    /// Whether `global_id` is in view.
    pub fn is_visible(&self, global_id: u32) -> bool {
        self.ids.contains_key(&global_id)
    }

    /// Applies a client ack: the states of acked packets become the entities' baselines, acked
    /// enters make entities active, acked leaves free their handles. Unknown, repeated and
    /// too-old sequence numbers are ignored.
    pub fn on_ack(&mut self, ack: &Ack) {
        for seq in ack.acked() {
            let Some((tick, records)) = self.inflight.take(seq) else {
                continue;
            };
            self.stats.acked_packets += 1;
            for rec in records {
                let h = usize::from(rec.handle);
                let Some(slot) = self.slots.get_mut(h) else {
                    continue;
                };
                if slot.generation != rec.generation {
                    continue;
                }
                match (rec.kind, slot.state) {
                    (SentKind::Enter, SlotState::Entering) => {
                        slot.state = SlotState::Active;
                        slot.baseline = Some((tick, rec.state, rec.zone));
                        slot.priority = 0.0;
                    }
                    (SentKind::Enter | SentKind::Update, SlotState::Active)
                        if slot.baseline.is_none_or(|b| b.0 < tick) =>
                    {
                        slot.baseline = Some((tick, rec.state, rec.zone));
                    }
                    (SentKind::Leave, SlotState::Leaving) => {
                        *slot = Slot {
                            generation: slot.generation.wrapping_add(1),
                            ..FREE_SLOT
                        };
                        self.free.push(rec.handle);
                    }
                    _ => {}
                }
            }
        }
    }

    /// Runs one tick for this client: updates interest from `candidates` around `viewer`, grows
    /// the priorities and, unless the rate ceiling or the byte budget forbids it, writes one
    /// packet into `buf` (at most `min(mtu, buf.len())` bytes). Returns its length, or `None`
    /// when nothing is sent this tick. Call once per tick with increasing `tick`.
    pub fn write_tick(
        &mut self,
        tick: u64,
        viewer: &Vec3,
        candidates: &[Candidate],
        buf: &mut [u8],
    ) -> Option<usize> {
        let per_tick = self.cfg.bytes_per_tick();
        let interval = self.cfg.min_interval_ticks();
        let cap = (per_tick * interval as i64).max(self.cfg.mtu as i64);
        match self.last_tick {
            Some(t) if tick <= t => return None,
            Some(t) => {
                let refill = per_tick.saturating_mul((tick - t).min(1 << 20) as i64);
                self.tokens = (self.tokens + refill).min(cap);
            }
            None => self.tokens = cap,
        }
        self.last_tick = Some(tick);
        let anchor = quantize_position(viewer);
        self.update_interest(viewer, candidates);
        if self.baseline_done.is_none()
            && self.slots[..self.used_end]
                .iter()
                .all(|s| s.state != SlotState::Entering)
        {
            self.baseline_done = Some(tick);
        }
        self.accumulate(viewer);
        if self.last_packet.is_some_and(|t| tick < t + interval) {
            self.stats.rate_skips += 1;
            return None;
        }
        let limit = self.cfg.mtu.min(buf.len()).min(self.tokens.max(0) as usize);
        if limit < MIN_PACKET_LEN {
            self.stats.budget_skips += 1;
            return None;
        }
        let len = self.write_packet(tick, anchor, buf, limit)?;
        self.tokens -= len as i64;
        self.last_packet = Some(tick);
        Some(len)
    }

    fn update_interest(&mut self, viewer: &Vec3, candidates: &[Candidate]) {
        let r = i128::from(self.cfg.radius_mm) * 1000;
        let outer = r + i128::from(self.cfg.hysteresis_mm) * 1000;
        for s in &mut self.slots[..self.used_end] {
            s.seen = false;
        }
        for c in candidates {
            let d2 = distance2_um(&c.position, viewer);
            if d2 > outer * outer {
                // Beyond the outer radius: not seen, so a held one leaves below (no lookup).
                continue;
            }
            match self.ids.get(&c.global_id) {
                Some(&h) => {
                    let s = &mut self.slots[usize::from(h)];
                    s.seen = true;
                    s.still = if s.position == c.position {
                        s.still.saturating_add(1).min(MOVED_WITHIN_TICKS)
                    } else {
                        0
                    };
                    s.position = c.position;
                    s.velocity = c.velocity;
                    s.zone = c.zone;
                    s.class_word = c.class_word;
                }
                None if d2 <= r * r => {
                    let Some(h) = self.free.pop() else {
                        self.stats.refused_full += 1;
                        continue;
                    };
                    self.used_end = self.used_end.max(usize::from(h) + 1);
                    let s = &mut self.slots[usize::from(h)];
                    *s = Slot {
                        state: SlotState::Entering,
                        generation: s.generation,
                        global_id: c.global_id,
                        class_word: c.class_word,
                        zone: c.zone,
                        position: c.position,
                        velocity: c.velocity,
                        still: MOVED_WITHIN_TICKS,
                        seen: true,
                        priority: 0.0,
                        baseline: None,
                    };
                    self.ids.insert(c.global_id, h);
                    self.stats.entered += 1;
                }
                None => {}
            }
        }
        for h in 0..self.used_end {
            let s = &self.slots[h];
            if matches!(s.state, SlotState::Entering | SlotState::Active) && !s.seen {
                self.begin_leave(h as u16);
            }
        }
    }

    fn begin_leave(&mut self, h: u16) {
        let s = &mut self.slots[usize::from(h)];
        s.state = SlotState::Leaving;
        s.baseline = None;
        self.ids.remove(&s.global_id);
        self.stats.left += 1;
    }

    fn accumulate(&mut self, viewer: &Vec3) {
        let p = self.cfg.priority;
        for s in &mut self.slots[..self.used_end] {
            if s.state == SlotState::Active {
                let d = (distance2_um(&s.position, viewer) as f64).sqrt() / 1000.0;
                let moving =
                    s.still < MOVED_WITHIN_TICKS || quantize_velocity(&s.velocity) != [0; 3];
                s.priority += p.weight(d, moving);
            }
        }
    }

    fn write_packet(
        &mut self,
        tick: u64,
        anchor: [i64; 3],
        buf: &mut [u8],
        limit: usize,
    ) -> Option<usize> {
        let seq = self.seq;
        let header = PacketHeader {
            tick: tick as u32,
            seq,
            anchor_mm: anchor,
        };
        let mut w = PacketWriter::new(buf, limit, &header)?;
        self.inflight.begin(seq, tick);
        let record = |inflight: &mut InFlight,
                      s: &Slot,
                      h: usize,
                      kind: SentKind,
                      state: QState,
                      zone: u8| {
            inflight.push(
                seq,
                SentRecord {
                    handle: h as u16,
                    generation: s.generation,
                    kind,
                    state,
                    zone,
                },
            )
        };
        for (h, s) in self.slots[..self.used_end].iter().enumerate() {
            if s.state == SlotState::Leaving {
                if !w.push_leave(h as u16) {
                    break;
                }
                record(
                    &mut self.inflight,
                    s,
                    h,
                    SentKind::Leave,
                    QState::default(),
                    0,
                );
                self.stats.leave_records += 1;
            }
        }
        for (h, s) in self.slots[..self.used_end].iter().enumerate() {
            if s.state == SlotState::Entering {
                let state = QState {
                    q: quantize_position(&s.position),
                    v: quantize_velocity(&s.velocity),
                };
                let e = EnterRecord {
                    handle: h as u16,
                    global_id: s.global_id,
                    class_word: s.class_word,
                    zone: s.zone,
                    offset_mm: [0, 1, 2].map(|k| state.q[k] - anchor[k]),
                    velocity_q: state.v,
                };
                if !w.push_enter(&e) {
                    break;
                }
                record(&mut self.inflight, s, h, SentKind::Enter, state, s.zone);
                self.stats.enter_records += 1;
            }
        }
        self.choose_updates(tick, &anchor, w.remaining());
        for &(h, rec, state, zone) in &self.chosen {
            if !w.push_update(&rec) {
                break;
            }
            let s = &mut self.slots[usize::from(h)];
            s.priority = 0.0;
            record(
                &mut self.inflight,
                s,
                usize::from(h),
                SentKind::Update,
                state,
                zone,
            );
            self.stats.updates += 1;
        }
        if w.is_empty() {
            return None;
        }
        let len = w.finish();
        self.seq = seq.wrapping_add(1);
        self.stats.packets += 1;
        self.stats.bytes += len as u64;
        Some(len)
    }

    /// Fills `self.chosen` with the updates that fit `room` bytes, highest priority first, then
    /// sorts them by handle (the order the wire needs).
    fn choose_updates(&mut self, tick: u64, anchor: &[i64; 3], mut room: usize) {
        self.picks.clear();
        self.chosen.clear();
        for (h, s) in self.slots[..self.used_end].iter().enumerate() {
            if s.state == SlotState::Active && s.priority >= SEND_THRESHOLD {
                self.picks.push((s.priority, h as u16));
            }
        }
        self.picks.sort_unstable_by(by_priority);
        let mut scratch = [0u8; MAX_RECORD_LEN + 32];
        for &(_, h) in &self.picks {
            if room < 2 {
                break;
            }
            let (rec, state, zone) = make_update(&self.slots[usize::from(h)], h, tick, anchor);
            // Sized with the largest possible handle gap, so the real record never needs more.
            let size = encode_update(&rec, 0, &mut scratch);
            if size <= room {
                room -= size;
                self.chosen.push((h, rec, state, zone));
            }
        }
        self.chosen.sort_unstable_by_key(|c| c.0);
    }
}

/// The update of an active slot against its acked baseline (or the anchor, when the baseline is
/// older than [`MAX_AGE`] ticks or too far off).
fn make_update(s: &Slot, handle: u16, tick: u64, anchor: &[i64; 3]) -> (UpdateRecord, QState, u8) {
    let q_now = quantize_position(&s.position);
    let v_now = quantize_velocity(&s.velocity);
    let from_anchor = (
        0u8,
        QState {
            q: *anchor,
            v: [0; 3],
        },
        None,
    );
    let (age, base, base_zone) = match s.baseline {
        Some((bt, st, z)) if bt < tick && tick - bt <= u64::from(MAX_AGE) => {
            let pred = predict(&st, (tick - bt) as u32);
            let far = (0..3).any(|k| (q_now[k] - pred[k]).abs() >= MAX_OFFSET_MM);
            if far {
                from_anchor
            } else {
                ((tick - bt) as u8, st, Some(z))
            }
        }
        _ => from_anchor,
    };
    let pred = predict(&base, u32::from(age));
    let (position, q) = if within_tolerance(&pred, &s.position) {
        (PositionCode::Predicted, pred)
    } else {
        let r = [0, 1, 2].map(|k| q_now[k] - pred[k]);
        if r.iter().all(|v| (-2..=1).contains(v)) {
            (PositionCode::Small(r.map(|v| v as i8)), q_now)
        } else {
            (PositionCode::Residual(r), q_now)
        }
    };
    let velocity_delta = (v_now != base.v).then(|| [0, 1, 2].map(|k| v_now[k] - base.v[k]));
    let zone = (base_zone != Some(s.zone)).then_some(s.zone);
    (
        UpdateRecord {
            handle,
            age,
            position,
            velocity_delta,
            zone,
        },
        QState { q, v: v_now },
        s.zone,
    )
}
