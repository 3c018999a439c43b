//! The constant-work tick: integrate, Hilbert-encode, detect crossings, bucket by AOI band.
//!
//! [`Zone::tick`] walks **every** slot whatever the occupancy, so its cost does not depend on how
//! many entities a zone holds (free slots have zero motion and are simply carried along). It
//! allocates nothing: candidate and timeout lists are preallocated to the capacity.
//!
//! Per tick, in order:
//! 1. integrate every slot, axis by axis: `v = clamp(v + a, +-v_max)`, `p = p + v`, reflecting
//!    off the world bounds (position clamped, that velocity component negated);
//! 2. for every slot: Hilbert code of the new position, owner zone, hysteresis counter (ticks an
//!    owned entity has spent outside this zone's range), interest mask of neighbour bands and
//!    of neighbour boxes padded by the interest radius ([`crate::aoi::BandTable`]),
//!    staging timeouts and arrivals whose HLC has come;
//! 3. migration housekeeping and up to `max_migrations_per_tick` new migrations
//!    ([`crate::migration`]).
//!
//! [`Zone::emit_interest_rows`] then encodes visible entities for the neighbours whose band holds
//! them, and [`Zone::for_each_row_near`] serves one subscriber only what is within its radius.

use crate::coords::{Micros, Vec3};
use crate::entity::Entity;
use crate::entity_row::{
    EntityRow, MAX_ROWS_PER_BATCH, ROW_BATCH_HEADER_LEN, ROW_LEN, RowBatchHeader,
    quantize_acceleration, quantize_velocity,
};
use crate::hilbert;
use crate::hlc::Hlc;
use crate::slots::SlotState;
use crate::zone::Zone;
use crate::zones::MAX_ZONES;

/// One integration step of one axis: returns the new position and velocity.
///
/// `v = clamp(v + a, -v_max, v_max)`, `p = p + v`; a position past `lo` or `hi` is clamped
/// there and the velocity reversed.
#[inline(always)]
pub fn step_axis(
    p: Micros,
    v: Micros,
    a: Micros,
    lo: Micros,
    hi: Micros,
    vmax: Micros,
) -> (Micros, Micros) {
    let (np, nv) = step_bits(
        p.to_bits(),
        v.to_bits(),
        a.to_bits(),
        lo.to_bits(),
        hi.to_bits(),
        vmax.to_bits(),
    );
    (Micros::from_bits(np), Micros::from_bits(nv))
}

/// [`step_axis`] on raw 64.64 bits (what the slot arrays hold).
#[inline(always)]
fn step_bits(p: i128, v: i128, a: i128, lo: i128, hi: i128, vmax: i128) -> (i128, i128) {
    let mut nv = (v + a).clamp(-vmax, vmax);
    let mut np = p + nv;
    if np < lo {
        np = lo;
        nv = -nv;
    } else if np > hi {
        np = hi;
        nv = -nv;
    }
    (np, nv)
}

/// Whether a slot's entity is broadcast: owned, staging at this sender (it still simulates the
/// last authoritative state until the ack) or arriving here (committed). Tentative reservations
/// are not (they may be aborted), so an entity is never broadcast by two zones at once, and is
/// invisible only while the commit is in flight (one one-way trip).
#[inline(always)]
fn visible(st: SlotState) -> bool {
    matches!(
        st,
        SlotState::Owned | SlotState::Staging | SlotState::Arriving
    )
}

impl Zone {
    /// Runs tick `tick` (ticks should increase by one; time comes only from this argument).
    pub fn tick(&mut self, tick: u64) {
        self.tick = tick;
        self.now = tick;
        let now = self.clock.tick(tick);
        let mut rto = [0u64; MAX_ZONES];
        for (r, est) in rto.iter_mut().zip(self.rtt.iter()) {
            *r = est.rto_ticks(self.cfg.tick_hz);
        }
        self.integrate();
        self.classify(tick, now, &rto);
        self.expire_staging(tick);
        self.resend_resolutions(tick, &rto);
        self.durable_tick_work(tick, &rto);
        self.begin_migrations(tick);
        self.check_drain_done();
    }

    /// Integrates every slot, one axis at a time.
    fn integrate(&mut self) {
        let vmax = crate::coords::micros(self.cfg.v_max_um).to_bits();
        let s = &mut self.slots;
        for k in 0..3 {
            let lo = self.cfg.bounds.min_micros(k).to_bits();
            let hi = self.cfg.bounds.max_micros(k).to_bits();
            let acc = &s.acc[k];
            for ((p, v), a) in s.pos[k].iter_mut().zip(s.vel[k].iter_mut()).zip(acc.iter()) {
                let (np, nv) = step_bits(*p, *v, *a, lo, hi, vmax);
                *p = np;
                *v = nv;
            }
        }
    }

    /// Codes, owners, hysteresis, interest, timeouts and arrivals for every slot.
    fn classify(&mut self, tick: u64, now: Hlc, rto: &[u64; MAX_ZONES]) {
        let me = self.cfg.zone_id;
        let layout = self.cfg.layout;
        let bounds = self.cfg.bounds;
        let now = now.to_u64();
        // Draining: everything owned leaves at once (unless this is the drain target).
        let drain_all = self.drain_to.is_some_and(|t| t != me);
        let hyst = if drain_all {
            1
        } else {
            self.cfg.hysteresis_ticks.max(1)
        };
        let bands = &self.bands;
        self.candidates.clear();
        self.timeouts.clear();
        let s = &mut self.slots;
        let cap = s.state.len();
        for i in 0..cap {
            let cell = [
                bounds.cell_of_axis_bits(0, s.pos[0][i]),
                bounds.cell_of_axis_bits(1, s.pos[1][i]),
                bounds.cell_of_axis_bits(2, s.pos[2][i]),
            ];
            let code = hilbert::encode(cell);
            s.code[i] = code;
            let st = s.state[i];
            // A pinned arrival stays until its sender's departure is durable.
            let owned = st == SlotState::Owned && s.mark[i] == 0;
            let away = drain_all || layout.zone_of(code) != me;
            let out = if owned && away {
                s.outside[i].saturating_add(1)
            } else {
                0
            };
            s.outside[i] = out;
            if out >= hyst {
                self.candidates.push(i as u16);
            }
            s.interest[i] = bands.interested_at(code, cell) & (visible(st) as u32).wrapping_neg();
            match st {
                // A sealed hand-off is decided: no RTO rollback (see `durable_handoff`).
                SlotState::Staging if s.mark[i] == 0 => {
                    let peer = s.peer[i] as usize % MAX_ZONES;
                    if tick.saturating_sub(s.mig_tick[i]) >= rto[peer] {
                        self.timeouts.push(i as u16);
                    }
                }
                SlotState::Arriving if s.arrival[i] <= now => {
                    s.state[i] = SlotState::Owned;
                    self.stats.arrivals += 1;
                }
                _ => {}
            }
        }
    }

    /// Tick numbers this zone skipped (dropped by its pacer, see [`crate::pacer`]): the
    /// entities it alone holds (owned, arriving) do not move in them, but those in flight are
    /// carried forward by `ticks` (at most [`crate::migration::MAX_CATCH_UP_TICKS`]) by the
    /// tick's own law: a reservation ([`SlotState::Incoming`]) copies an entity its sender
    /// still holds and moves every tick, and a [`SlotState::Staging`] entity's other copy is a
    /// neighbour's reservation, brought to that neighbour's tick numbers. So whichever copy
    /// survives the hand-off, it is where the other would be. Returns how many slots moved.
    pub fn skip_ticks(&mut self, ticks: u64) -> usize {
        let steps = ticks.min(crate::migration::MAX_CATCH_UP_TICKS);
        let vmax = crate::coords::micros(self.cfg.v_max_um).to_bits();
        let lo = [0, 1, 2].map(|k| self.cfg.bounds.min_micros(k).to_bits());
        let hi = [0, 1, 2].map(|k| self.cfg.bounds.max_micros(k).to_bits());
        let s = &mut self.slots;
        let mut carried = 0;
        for i in 0..s.state.len() {
            if !matches!(s.state[i], SlotState::Incoming | SlotState::Staging) {
                continue;
            }
            for k in 0..3 {
                let (mut p, mut v) = (s.pos[k][i], s.vel[k][i]);
                for _ in 0..steps {
                    (p, v) = step_bits(p, v, s.acc[k][i], lo[k], hi[k], vmax);
                }
                (s.pos[k][i], s.vel[k][i]) = (p, v);
            }
            carried += 1;
        }
        carried
    }

    /// Brings a freshly received entity forward by `steps` ticks (same integration as the tick).
    pub(crate) fn catch_up(&self, e: &mut Entity, steps: u64) {
        let vmax = crate::coords::micros(self.cfg.v_max_um);
        for _ in 0..steps {
            for k in 0..3 {
                let (p, v) = step_axis(
                    e.position[k],
                    e.velocity[k],
                    e.acceleration[k],
                    self.cfg.bounds.min_micros(k),
                    self.cfg.bounds.max_micros(k),
                    vmax,
                );
                e.position[k] = p;
                e.velocity[k] = v;
            }
        }
    }

    /// Clamps an entity's motion into what the tick can integrate without overflow.
    pub(crate) fn sanitize(&self, e: &mut Entity) {
        let vmax = crate::coords::micros(self.cfg.v_max_um);
        e.position = self.cfg.bounds.clamp(&e.position);
        for k in 0..3 {
            e.velocity[k] = e.velocity[k].clamp(-vmax, vmax);
            e.acceleration[k] = e.acceleration[k].clamp(-vmax, vmax);
        }
    }

    fn row(&self, i: usize) -> EntityRow {
        let s = &self.slots;
        let vmax = self.cfg.v_max_um;
        EntityRow {
            global_id: s.gid[i],
            position: s.position(i),
            velocity: [0, 1, 2].map(|k| quantize_velocity(Micros::from_bits(s.vel[k][i]), vmax)),
            acceleration: [0, 1, 2]
                .map(|k| quantize_acceleration(Micros::from_bits(s.acc[k][i]), vmax)),
            hlc: s.ehlc[i],
            payload: s.payload[i],
        }
    }

    /// Queues row batches of visible (owned, staging or arriving) entities for every neighbour
    /// whose AOI band holds them or whose space is within the interest radius of them.
    /// Returns the number of rows queued.
    pub fn emit_interest_rows(&mut self) -> usize {
        let mut total = 0;
        let mut buf = [0u8; ROW_BATCH_HEADER_LEN + MAX_ROWS_PER_BATCH * ROW_LEN];
        for peer in self.bands.zones().iter() {
            let bit = 1u32 << peer;
            let mut n = 0usize;
            for i in 0..self.slots.capacity() {
                if self.slots.interest[i] & bit == 0 {
                    continue;
                }
                let mut row = [0u8; ROW_LEN];
                self.row(i).encode(&mut row);
                let off = ROW_BATCH_HEADER_LEN + n * ROW_LEN;
                buf[off..off + ROW_LEN].copy_from_slice(&row);
                n += 1;
                total += 1;
                if n == MAX_ROWS_PER_BATCH {
                    self.flush_batch(peer, &mut buf, n);
                    n = 0;
                }
            }
            if n > 0 {
                self.flush_batch(peer, &mut buf, n);
            }
        }
        total
    }

    fn flush_batch(&mut self, peer: u8, buf: &mut [u8], n: usize) {
        let head = RowBatchHeader {
            from_zone: self.cfg.zone_id,
            count: n as u8,
        }
        .encode();
        buf[..ROW_BATCH_HEADER_LEN].copy_from_slice(&head);
        self.outbox
            .push(peer, &buf[..ROW_BATCH_HEADER_LEN + n * ROW_LEN]);
    }

    /// Calls `f` with the row of every visible (owned, staging or arriving) entity, in slot
    /// order: what the original fabric sent every client of the zone every tick
    /// ([`crate::original_scheme`]). Returns the count.
    pub fn for_each_visible_row(&self, mut f: impl FnMut(&EntityRow)) -> usize {
        let mut n = 0;
        for i in 0..self.slots.capacity() {
            if visible(self.slots.state[i]) {
                f(&self.row(i));
                n += 1;
            }
        }
        n
    }

    /// Calls `f` with the row of every visible (owned, staging or arriving) entity within
    /// `radius_um` of `center`: what one subscriber receives (its zone's own entities are culled
    /// too). Returns the count.
    pub fn for_each_row_near(
        &self,
        center: &Vec3,
        radius_um: i64,
        mut f: impl FnMut(&EntityRow),
    ) -> usize {
        let mut n = 0;
        for i in 0..self.slots.capacity() {
            if !visible(self.slots.state[i]) {
                continue;
            }
            let p = self.slots.position(i);
            if crate::aoi::within_radius(center, &p, radius_um) {
                f(&self.row(i));
                n += 1;
            }
        }
        n
    }
}
