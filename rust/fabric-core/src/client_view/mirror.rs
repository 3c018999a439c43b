//! [`ClientMirror`]: the client side. Validates each packet against what it holds, applies it
//! (entity id -> reconstructed position, velocity, class, zone) and produces the ack.
//!
//! The mirror keeps, per handle, the states received in the last 32 ticks (a ring indexed by
//! tick), because the server codes each update against the state the client *acknowledged*,
//! which may be a few packets older than the newest one received.

use super::baseline::{QState, position_micros, predict, velocity_micros};
use super::id_hash::{IdMap, id_map};
use super::wire::{
    Ack, MAX_AGE, MAX_ANCHOR_MM, MAX_VELOCITY_Q, Packet, PositionCode, ReplWireError, UpdateRecord,
};
use crate::coords::Vec3;
use thiserror::Error;

const RING: usize = MAX_AGE as usize + 1;

/// Why a packet was refused (the mirror is unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum MirrorError {
    /// The bytes are not a valid packet.
    #[error(transparent)]
    Wire(#[from] ReplWireError),
    /// A handle at or above this mirror's capacity.
    #[error("handle {0} beyond the mirror's capacity")]
    Handle(u16),
    /// An enter names a handle that holds another entity.
    #[error("enter on handle {handle} which holds entity {holder}")]
    HandleInUse {
        /// Handle.
        handle: u16,
        /// Entity it holds.
        holder: u32,
    },
    /// An entity entered on two handles.
    #[error("entity {0} already held on another handle")]
    DuplicateEntity(u32),
    /// An update for a handle that holds nothing (or that this packet frees or fills).
    #[error("update for unknown handle {0}")]
    UnknownHandle(u16),
    /// An update against a baseline tick the mirror does not hold.
    #[error("no state of handle {handle} at tick {tick}")]
    BaselineMissing {
        /// Handle.
        handle: u16,
        /// Baseline tick.
        tick: u32,
    },
    /// A reconstructed position or velocity out of range.
    #[error("reconstructed {0} out of range")]
    Range(&'static str),
    /// A newer sequence number with a tick not after the last applied one.
    #[error("tick {tick} not after the last applied tick {last}")]
    TickNotAfter {
        /// Packet tick.
        tick: u32,
        /// Last applied tick.
        last: u32,
    },
}

/// What applying a packet did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Applied; counts of records.
    Applied {
        /// Leave records that removed an entity.
        left: usize,
        /// Enter records that added an entity.
        entered: usize,
        /// Updates.
        updated: usize,
    },
    /// Not newer than the newest applied packet: ignored (and not acked).
    Stale,
}

/// One entity as the client holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MirrorEntity {
    /// Global id.
    pub global_id: u32,
    /// `payload[0]`.
    pub class_word: u32,
    /// Owning zone.
    pub zone: u8,
    /// Tick of the server state this is.
    pub tick: u32,
    /// Position, micrometres (a whole millimetre).
    pub position: Vec3,
    /// Velocity, micrometres per tick.
    pub velocity: Vec3,
}

#[derive(Debug, Clone, Copy, Default)]
struct Held {
    occupied: bool,
    global_id: u32,
    class_word: u32,
    zone: u8,
    tick: u32,
    state: QState,
}

#[derive(Debug, Clone, Copy, Default)]
struct RingEntry {
    valid: bool,
    tick: u32,
    state: QState,
    zone: u8,
}

/// The client's mirror of its view.
#[derive(Debug, Clone)]
pub struct ClientMirror {
    held: Vec<Held>,
    ring: Vec<RingEntry>,
    ids: IdMap<u16>,
    packet: Packet,
    newest: Option<(u16, u32)>,
    bits: u32,
}

fn seq_newer(a: u16, b: u16) -> bool {
    let d = a.wrapping_sub(b);
    d != 0 && d < 0x8000
}

impl ClientMirror {
    /// A mirror for views of at most `capacity` entities (the server's `max_entities`) and
    /// packets of at most `mtu` bytes.
    pub fn new(capacity: usize, mtu: usize) -> Self {
        Self {
            held: vec![Held::default(); capacity],
            ring: vec![RingEntry::default(); capacity * RING],
            ids: id_map(capacity * 2),
            packet: Packet::with_capacity(mtu),
            newest: None,
            bits: 0,
        }
    }

    /// Forgets everything, as a new mirror of the same size (keeping its memory): for a new
    /// session, whose zone numbers its packets and handles afresh.
    pub fn clear(&mut self) {
        self.held.fill(Held::default());
        self.ring.fill(RingEntry::default());
        self.ids.clear();
        self.newest = None;
        self.bits = 0;
    }

    /// Entities held.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no entity is held.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// An entity by global id.
    pub fn get(&self, global_id: u32) -> Option<MirrorEntity> {
        let h = *self.ids.get(&global_id)?;
        Some(self.entity(&self.held[usize::from(h)]))
    }

    /// The reconstructed position of an entity, micrometres.
    pub fn position(&self, global_id: u32) -> Option<Vec3> {
        self.get(global_id).map(|e| e.position)
    }

    /// Every entity held, in handle order.
    pub fn iter(&self) -> impl Iterator<Item = MirrorEntity> + '_ {
        self.held
            .iter()
            .filter(|h| h.occupied)
            .map(|h| self.entity(h))
    }

    fn entity(&self, h: &Held) -> MirrorEntity {
        MirrorEntity {
            global_id: h.global_id,
            class_word: h.class_word,
            zone: h.zone,
            tick: h.tick,
            position: position_micros(&h.state.q),
            velocity: velocity_micros(&h.state.v),
        }
    }

    /// The ack to send back (after each applied packet, or on a timer); `None` before the
    /// first packet.
    pub fn ack(&self) -> Option<Ack> {
        self.newest.map(|(newest, _)| Ack {
            newest,
            bits: self.bits,
        })
    }

    fn ring_at(&self, handle: u16, tick: u32) -> Option<&RingEntry> {
        let e = &self.ring[usize::from(handle) * RING + tick as usize % RING];
        (e.valid && e.tick == tick).then_some(e)
    }

    /// Validates `bytes` completely, then applies them. On error nothing changes.
    pub fn apply(&mut self, bytes: &[u8]) -> Result<Applied, MirrorError> {
        let mut packet = std::mem::take(&mut self.packet);
        let result = packet
            .decode_into(bytes)
            .map_err(MirrorError::from)
            .and_then(|()| self.apply_decoded(&packet));
        self.packet = packet;
        result
    }

    fn apply_decoded(&mut self, p: &Packet) -> Result<Applied, MirrorError> {
        let tick = p.header.tick;
        if let Some((newest, last_tick)) = self.newest {
            if !seq_newer(p.header.seq, newest) {
                return Ok(Applied::Stale);
            }
            if tick <= last_tick {
                return Err(MirrorError::TickNotAfter {
                    tick,
                    last: last_tick,
                });
            }
        }
        self.validate(p)?;
        // Apply: leaves, enters, updates (updates read only rings the earlier records kept).
        let mut left = 0;
        for &h in &p.leaves {
            let held = &mut self.held[usize::from(h)];
            if held.occupied {
                self.ids.remove(&held.global_id);
                *held = Held::default();
                left += 1;
            }
        }
        let mut entered = 0;
        for e in &p.enters {
            let state = QState {
                q: [0, 1, 2].map(|k| p.header.anchor_mm[k] + e.offset_mm[k]),
                v: e.velocity_q,
            };
            let h = usize::from(e.handle);
            if !self.held[h].occupied {
                entered += 1;
                self.ring[h * RING..(h + 1) * RING].fill(RingEntry::default());
                self.ids.insert(e.global_id, e.handle);
            }
            self.held[h] = Held {
                occupied: true,
                global_id: e.global_id,
                class_word: e.class_word,
                zone: e.zone,
                tick,
                state,
            };
            self.store(e.handle, tick, state, e.zone);
        }
        for u in &p.updates {
            let (state, zone) = self.reconstruct(&p.header.anchor_mm, tick, u)?;
            let held = &mut self.held[usize::from(u.handle)];
            held.state = state;
            held.zone = zone;
            held.tick = tick;
            self.store(u.handle, tick, state, zone);
        }
        // Ack bookkeeping.
        self.bits = match self.newest {
            None => 0,
            Some((newest, _)) => {
                let d = u32::from(p.header.seq.wrapping_sub(newest));
                if d > 32 {
                    0
                } else {
                    ((u64::from(self.bits) << d) | (1u64 << (d - 1))) as u32
                }
            }
        };
        self.newest = Some((p.header.seq, tick));
        Ok(Applied::Applied {
            left,
            entered,
            updated: p.updates.len(),
        })
    }

    fn store(&mut self, handle: u16, tick: u32, state: QState, zone: u8) {
        self.ring[usize::from(handle) * RING + tick as usize % RING] = RingEntry {
            valid: true,
            tick,
            state,
            zone,
        };
    }

    /// Checks every record against the mirror as it is before the packet.
    fn validate(&self, p: &Packet) -> Result<(), MirrorError> {
        let cap = self.held.len();
        let in_cap = |h: u16| {
            if usize::from(h) < cap {
                Ok(())
            } else {
                Err(MirrorError::Handle(h))
            }
        };
        for &h in &p.leaves {
            in_cap(h)?;
        }
        for (i, e) in p.enters.iter().enumerate() {
            in_cap(e.handle)?;
            let held = &self.held[usize::from(e.handle)];
            let leaving = p.leaves.binary_search(&e.handle).is_ok();
            if held.occupied && held.global_id != e.global_id && !leaving {
                return Err(MirrorError::HandleInUse {
                    handle: e.handle,
                    holder: held.global_id,
                });
            }
            if let Some(&other) = self.ids.get(&e.global_id)
                && other != e.handle
                && p.leaves.binary_search(&other).is_err()
            {
                return Err(MirrorError::DuplicateEntity(e.global_id));
            }
            if p.enters[..i].iter().any(|x| x.global_id == e.global_id) {
                return Err(MirrorError::DuplicateEntity(e.global_id));
            }
            let q = [0, 1, 2].map(|k| p.header.anchor_mm[k] + e.offset_mm[k]);
            check_state(&q, &e.velocity_q)?;
        }
        for u in &p.updates {
            in_cap(u.handle)?;
            let fresh = p.leaves.binary_search(&u.handle).is_ok()
                || p.enters
                    .binary_search_by_key(&u.handle, |e| e.handle)
                    .is_ok();
            if !self.held[usize::from(u.handle)].occupied || fresh {
                return Err(MirrorError::UnknownHandle(u.handle));
            }
            let (state, _) = self.reconstruct(&p.header.anchor_mm, p.header.tick, u)?;
            check_state(&state.q, &state.v)?;
        }
        Ok(())
    }

    /// The state and zone an update describes.
    fn reconstruct(
        &self,
        anchor: &[i64; 3],
        tick: u32,
        u: &UpdateRecord,
    ) -> Result<(QState, u8), MirrorError> {
        let (base, base_zone) = if u.age == 0 {
            (
                QState {
                    q: *anchor,
                    v: [0; 3],
                },
                None,
            )
        } else {
            let bt = tick.wrapping_sub(u32::from(u.age));
            let e = self
                .ring_at(u.handle, bt)
                .ok_or(MirrorError::BaselineMissing {
                    handle: u.handle,
                    tick: bt,
                })?;
            (e.state, Some(e.zone))
        };
        let pred = predict(&base, u32::from(u.age));
        let q = match u.position {
            PositionCode::Predicted => pred,
            PositionCode::Small(r) => [0, 1, 2].map(|k| pred[k] + i64::from(r[k])),
            PositionCode::Residual(r) => [0, 1, 2].map(|k| pred[k] + r[k]),
        };
        let v = match u.velocity_delta {
            None => base.v,
            Some(d) => {
                let v = [0, 1, 2].map(|k| i64::from(base.v[k]) + i64::from(d[k]));
                if v.iter().any(|c| c.abs() >= MAX_VELOCITY_Q) {
                    return Err(MirrorError::Range("velocity"));
                }
                v.map(|c| c as i32)
            }
        };
        let zone = u
            .zone
            .or(base_zone)
            .ok_or(MirrorError::Range("zone (required when age is 0)"))?;
        Ok((QState { q, v }, zone))
    }
}

fn check_state(q: &[i64; 3], v: &[i32; 3]) -> Result<(), MirrorError> {
    if q.iter().any(|c| c.abs() > MAX_ANCHOR_MM) {
        return Err(MirrorError::Range("position"));
    }
    if v.iter().any(|c| i64::from(*c).abs() >= MAX_VELOCITY_Q) {
        return Err(MirrorError::Range("velocity"));
    }
    Ok(())
}
