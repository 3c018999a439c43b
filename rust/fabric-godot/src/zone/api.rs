//! The GDScript API of [`FabricZone`]: entities (spawn, despawn, motion, payload, bulk reads)
//! and statistics. Units at this boundary: metres, metres per second and metres per second
//! squared in `real_t` (`float` in GDScript, 64-bit in a double-precision engine); the core
//! keeps micrometres in 64.64 fixed point.

use fabric_core::coords::{Micros, Vec3};
use fabric_core::entity_row::PAYLOAD_WORDS;
use fabric_core::slots::SlotState;
use godot::prelude::*;

use super::FabricZone;

/// Largest coordinate accepted, micrometres (the core's own limit is far above any world).
const MAX_MICROS: f64 = (1u64 << 60) as f64;

fn micros(v: f64) -> Option<Micros> {
    (v.is_finite() && v.abs() < MAX_MICROS).then(|| Micros::from_num(v))
}

fn to_vec3(v: Vector3, scale: f64) -> Option<Vec3> {
    Some([
        micros(f64::from(v.x) * scale)?,
        micros(f64::from(v.y) * scale)?,
        micros(f64::from(v.z) * scale)?,
    ])
}

fn from_vec3(v: &Vec3, scale: f64) -> Vector3 {
    let c = |m: Micros| (m.to_num::<f64>() * scale) as real;
    Vector3::new(c(v[0]), c(v[1]), c(v[2]))
}

fn payload_from(words: &PackedInt64Array) -> Option<[u32; PAYLOAD_WORDS]> {
    let s = words.as_slice();
    if s.len() > PAYLOAD_WORDS {
        return None;
    }
    let mut out = [0u32; PAYLOAD_WORDS];
    for (o, &w) in out.iter_mut().zip(s) {
        *o = u32::try_from(w).ok()?;
    }
    Some(out)
}

fn gid(id: i64) -> Option<u32> {
    u32::try_from(id).ok()
}

impl FabricZone {
    /// Micrometres per tick in one metre per second.
    fn per_tick(&self) -> f64 {
        1e6 / f64::from(self.tick_hz.max(1))
    }

    fn with_owned<R>(
        &mut self,
        id: i64,
        f: impl FnOnce(&mut fabric_core::zone::Zone, usize) -> R,
    ) -> Option<R> {
        let rt = self.runtime.as_mut()?;
        let slot = rt.owned_slot(gid(id)?)?;
        Some(f(rt.zone_mut(), slot))
    }

    /// One of the runtime's held / incoming id lists, as a packed array.
    fn ids(&self, pick: impl FnOnce(Vec<u32>, Vec<u32>) -> Vec<u32>) -> PackedInt64Array {
        self.runtime
            .as_ref()
            .map_or_else(PackedInt64Array::new, |rt| {
                let (held, incoming) = rt.held_and_incoming();
                pick(held, incoming).into_iter().map(i64::from).collect()
            })
    }

    fn owned_map<T>(&self, f: impl Fn(&fabric_core::zone::Zone, usize) -> T) -> Vec<T> {
        let Some(rt) = self.runtime.as_ref() else {
            return Vec::new();
        };
        let z = rt.zone();
        (0..z.slots().capacity())
            .filter(|&i| z.slots().state(i) == SlotState::Owned)
            .map(|i| f(z, i))
            .collect()
    }
}

#[godot_api(secondary)]
impl FabricZone {
    /// Spawns an entity owned by this zone at `position` (metres) moving at `velocity` (metres
    /// per second, capped at 10 m/s), with up to 14 payload words (each 0..=4294967295; word 0's
    /// top byte is the entity class). Returns its global id, or -1 (with an error printed) when
    /// the zone is not running, the input is not finite, or the zone is at `capacity - headroom`.
    /// Emits `spawned`.
    #[func]
    pub fn spawn(
        &mut self,
        position: Vector3,
        velocity: Vector3,
        payload: PackedInt64Array,
    ) -> i64 {
        let per_tick = self.per_tick();
        let (Some(p), Some(v), Some(words)) = (
            to_vec3(position, 1e6),
            to_vec3(velocity, per_tick),
            payload_from(&payload),
        ) else {
            godot_error!("FabricZone.spawn: position, velocity or payload out of range");
            return -1;
        };
        let Some(rt) = self.runtime.as_mut() else {
            godot_error!("FabricZone.spawn: the zone is not running");
            return -1;
        };
        let r = rt.spawn(p, v, words);
        self.flush_events();
        match r {
            Ok(id) => i64::from(id),
            Err(e) => {
                godot_error!("FabricZone.spawn: {e}");
                -1
            }
        }
    }

    /// Removes entity `id` if this zone owns it (not while it is being handed over). Returns
    /// whether it did; emits `despawned`.
    #[func]
    pub fn despawn(&mut self, id: i64) -> bool {
        let Some(g) = gid(id) else { return false };
        let done = self.runtime.as_mut().is_some_and(|rt| rt.despawn(g));
        self.flush_events();
        done
    }

    /// Sets the velocity (metres per second, capped at 10 m/s) of owned entity `id`. Returns
    /// whether `id` is owned here.
    #[func]
    pub fn set_velocity(&mut self, id: i64, velocity: Vector3) -> bool {
        let Some(v) = to_vec3(velocity, self.per_tick()) else {
            return false;
        };
        self.with_owned(id, |z, s| z.set_velocity(s, v))
            .unwrap_or(false)
    }

    /// Sets the acceleration (metres per second squared) of owned entity `id`. Returns whether
    /// `id` is owned here.
    #[func]
    pub fn set_acceleration(&mut self, id: i64, acceleration: Vector3) -> bool {
        let hz = f64::from(self.tick_hz.max(1));
        let Some(a) = to_vec3(acceleration, 1e6 / (hz * hz)) else {
            return false;
        };
        self.with_owned(id, |z, s| z.set_acceleration(s, a))
            .unwrap_or(false)
    }

    /// The 14 payload words of owned entity `id` (empty when not owned here).
    #[func]
    pub fn get_payload(&mut self, id: i64) -> PackedInt64Array {
        self.with_owned(id, |z, s| {
            z.entity(s)
                .map(|e| e.payload.iter().map(|&w| i64::from(w)).collect())
                .unwrap_or_default()
        })
        .unwrap_or_default()
    }

    /// Replaces the payload of owned entity `id` (up to 14 words, each 0..=4294967295; missing
    /// words are 0). Returns whether it did.
    #[func]
    pub fn set_payload(&mut self, id: i64, payload: PackedInt64Array) -> bool {
        let Some(words) = payload_from(&payload) else {
            return false;
        };
        let done = self
            .with_owned(id, |z, s| z.set_payload(s, words))
            .unwrap_or(false);
        if let (true, Some(rt), Some(g)) = (done, self.runtime.as_mut(), gid(id)) {
            rt.journal_payload(g, words);
        }
        done
    }

    /// Position (metres) of owned entity `id`; `Vector3.ZERO` when not owned here.
    #[func]
    pub fn get_entity_position(&mut self, id: i64) -> Vector3 {
        self.with_owned(id, |z, s| from_vec3(&z.slots().position(s), 1e-6))
            .unwrap_or(Vector3::ZERO)
    }

    /// The latest tick whose spawns, despawns and payload updates are committed to the zone's
    /// journal (a change made in tick `t` survives a crash once this is `>= t`); -1 without a
    /// data directory or while nothing committed.
    #[func]
    pub fn get_durable_tick(&self) -> i64 {
        self.runtime
            .as_ref()
            .and_then(|rt| rt.durable_tick())
            .map_or(-1, |t| i64::try_from(t).unwrap_or(i64::MAX))
    }

    /// Whether this zone owns entity `id` now.
    #[func]
    pub fn owns(&mut self, id: i64) -> bool {
        self.with_owned(id, |_, _| ()).is_some()
    }

    /// Global ids of every entity owned here, in slot order (the order of
    /// `get_owned_positions()` and `get_owned_velocities()`).
    #[func]
    pub fn get_owned_ids(&self) -> PackedInt64Array {
        self.owned_map(|z, i| i64::from(z.slots().global_id(i)))
            .into_iter()
            .collect()
    }

    /// Positions (metres) of every owned entity, in the order of `get_owned_ids()`.
    #[func]
    pub fn get_owned_positions(&self) -> PackedVector3Array {
        self.owned_map(|z, i| from_vec3(&z.slots().position(i), 1e-6))
            .into_iter()
            .collect()
    }

    /// Velocities (metres per second) of every owned entity, in the order of `get_owned_ids()`.
    #[func]
    pub fn get_owned_velocities(&self) -> PackedVector3Array {
        let scale = f64::from(self.tick_hz.max(1)) * 1e-6;
        self.owned_map(|z, i| from_vec3(&z.slots().entity(i).velocity, scale))
            .into_iter()
            .collect()
    }

    /// Global ids this zone holds: owned, staging (handed out, not yet accepted) and arriving
    /// (accepted, owned at the arrival time). Across the zones of a fabric every entity is held
    /// exactly once, except during the one-way trip of a commit (then it is reserved: see
    /// `get_incoming_ids()`).
    #[func]
    pub fn get_held_ids(&self) -> PackedInt64Array {
        self.ids(|held, _| held)
    }

    /// Global ids reserved here for a neighbour's hand-off (not ours until it commits).
    #[func]
    pub fn get_incoming_ids(&self) -> PackedInt64Array {
        self.ids(|_, incoming| incoming)
    }

    /// Neighbours' entity rows kept (their latest row each, expiring after a second without
    /// refresh).
    #[func]
    pub fn get_ghost_count(&self) -> i64 {
        self.runtime
            .as_ref()
            .map_or(0, |rt| rt.ghosts().len() as i64)
    }

    /// Global ids of the neighbours' entities kept in the ghost table.
    #[func]
    pub fn get_ghost_ids(&self) -> PackedInt64Array {
        self.runtime
            .as_ref()
            .map(|rt| {
                rt.ghosts()
                    .iter()
                    .map(|g| i64::from(g.row.global_id))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Runs `count` ticks at once, whatever the clock says (tests, tools, benchmarks), emitting
    /// the signals they cause. Returns the tick reached (0 when not running).
    #[func]
    pub fn run_ticks(&mut self, count: i64) -> i64 {
        let Some(rt) = self.runtime.as_mut() else {
            return 0;
        };
        for _ in 0..count.max(0) {
            rt.run_tick();
        }
        rt.publish();
        self.tick = rt.zone().current_tick() as i64;
        self.flush_events();
        self.tick
    }

    /// Whether the simulation runs (between `start()` and `stop()`).
    #[func]
    pub fn is_running(&self) -> bool {
        self.runtime.is_some()
    }
}
