//! `FabricSnapshot`: the world snapshot as a Godot `Resource`, saved and loaded with
//! `ResourceSaver`/`ResourceLoader` as a compressed binary `.res`.
//!
//! The class only holds the exported properties and converts them to and from
//! [`fabric_core::snapshot::Snapshot`], where the layout, validation and per-zone filtering live;
//! [`file`] writes and reads the files (temporary file and rename, every failure named).

use fabric_core::snapshot::{SNAPSHOT_FORMAT_VERSION, Snapshot, VEC_WORDS};
use godot::global::Error;
use godot::prelude::*;

pub mod file;

pub use file::{FileProblem, SnapshotFileError};

/// Micrometres in a metre, as the divisor of [`FabricSnapshot::get_position`].
const MICROS_PER_METRE: f64 = 1e6;

/// A saved world: every entity's id, exact position, velocity, acceleration and payload, with
/// the fabric's name, zone count and tick. Zone 0 writes one at a graceful shutdown; at start
/// each zone reloads the entities whose Hilbert code falls in its range.
///
/// Positions, velocities and accelerations are stored exactly as the zone core keeps them:
/// micrometres in 64.64 fixed point, six `int`s per entity (`x_high, x_low, y_high, y_low,
/// z_high, z_low`; `high` is the whole micrometres rounded down, `low` the 64 fractional bits),
/// never as 32-bit floats. [`get_position`](Self::get_position) gives a position in metres as
/// a `Vector3` for scripts. Payloads are 14 words per entity, each `0..=4294967295`.
///
/// Save with [`save_to`](Self::save_to) and load with [`load_from`](Self::load_from): both check
/// the data and name the file and the problem in their error.
/// ```gdscript
/// var snap := FabricSnapshot.load_from("user://world.res")
/// if snap:
///     for i in snap.get_entity_count():
///         print(snap.ids[i], " at ", snap.get_position(i))
/// ```
#[derive(GodotClass)]
#[class(base = Resource, init)]
pub struct FabricSnapshot {
    base: Base<Resource>,
    /// Version of the data layout: 2 in this build (with `hlc`). [`load_from`](Self::load_from)
    /// also reads version 1 (no clock) and refuses any other.
    #[export]
    #[init(val = SNAPSHOT_FORMAT_VERSION)]
    format_version: i64,
    /// Name of the fabric that wrote the snapshot.
    #[export]
    fabric_name: GString,
    /// Number of zones the fabric had when the snapshot was taken (1 to 32).
    #[export]
    #[init(val = 1)]
    zone_count: i64,
    /// Zone tick at which the snapshot was taken.
    #[export]
    tick: i64,
    /// Unix time (seconds) at which the snapshot was taken.
    #[export]
    created_unix_time: i64,
    /// The saving zone's hybrid logical clock (`l << 16 | c`: tick part and counter; 0 in a
    /// version-1 snapshot). A zone restarted from the snapshot starts its clock there, so it
    /// never issues a timestamp below one it issued before the stop.
    #[export]
    hlc: i64,
    /// Global entity ids (0 to 4294967295, unique); one per entity.
    #[export]
    ids: PackedInt64Array,
    /// Positions in micrometres, 64.64 fixed point: six values per entity (see the class
    /// description); [`get_position`](Self::get_position) converts one to metres.
    #[export]
    positions: PackedInt64Array,
    /// Velocities in micrometres per tick, encoded like `positions`.
    #[export]
    velocities: PackedInt64Array,
    /// Accelerations in micrometres per tick squared, encoded like `positions`.
    #[export]
    accelerations: PackedInt64Array,
    /// Payloads, 14 words (0 to 4294967295) per entity.
    #[export]
    payloads: PackedInt64Array,
    /// CRC-32 of every other property, written by [`save_to`](Self::save_to) and checked by
    /// [`load_from`](Self::load_from): a file changed after it was written is refused.
    #[export]
    checksum: i64,
}

#[godot_api]
impl FabricSnapshot {
    /// Number of entities (the size of `ids`).
    #[func]
    pub fn get_entity_count(&self) -> i64 {
        self.ids.len() as i64
    }

    /// Position of entity `index` in metres (a `Vector3`: exact to the micrometre far from the
    /// origin only in a double-precision build); `Vector3.ZERO` when there is no such entity.
    #[func]
    pub fn get_position(&self, index: i64) -> Vector3 {
        let words = self.positions.as_slice();
        let Some(w) = usize::try_from(index)
            .ok()
            .and_then(|i| i.checked_mul(VEC_WORDS))
            .and_then(|start| words.get(start..start.checked_add(VEC_WORDS)?))
        else {
            return Vector3::ZERO;
        };
        let metres = |high: i64, low: i64| {
            let m = fabric_core::snapshot::micros_from_words(high, low);
            (m.to_num::<f64>() / MICROS_PER_METRE) as real
        };
        Vector3::new(metres(w[0], w[1]), metres(w[2], w[3]), metres(w[4], w[5]))
    }

    /// Checks the data: a known `format_version`, a zone count of 1 to 32, arrays whose sizes
    /// agree with `ids`, unique ids and payload words in range. Returns `""` when valid, the
    /// problem otherwise (the checksum is checked when a file is loaded, not here).
    #[func]
    pub fn validate(&self) -> GString {
        match self.to_core().validate() {
            Ok(_) => GString::new(),
            Err(e) => GString::from(&e.to_string()),
        }
    }

    /// Saves the snapshot to `path` (a `.res` file) as a compressed binary resource, after
    /// [`validate`](Self::validate). It writes a temporary file beside `path` and renames it, so a
    /// failed save leaves an existing file as it was. Returns `OK`, or an error code after
    /// printing the file and the problem.
    #[func]
    pub fn save_to(&self, path: GString) -> Error {
        match file::save(&self.to_core(), &path.to_string()) {
            Ok(()) => Error::OK,
            Err(e) => {
                godot_error!("{e}");
                e.code()
            }
        }
    }

    /// Loads and checks the snapshot saved at `path`. Returns `null` after printing the file and
    /// the problem when it is missing, unreadable (truncated, corrupt), not a `FabricSnapshot`,
    /// of an unknown version, or inconsistent.
    #[func]
    pub fn load_from(path: GString) -> Option<Gd<FabricSnapshot>> {
        file::load(&path.to_string())
            .inspect_err(|e| godot_error!("{e}"))
            .ok()
    }
}

impl FabricSnapshot {
    /// A new resource holding `s` as it is (checksum included).
    pub fn from_core(s: &Snapshot) -> Gd<Self> {
        let mut gd = Self::new_gd();
        {
            let mut me = gd.bind_mut();
            me.format_version = s.format_version;
            me.fabric_name = GString::from(&s.fabric_name);
            me.zone_count = s.zone_count;
            me.tick = s.tick;
            me.created_unix_time = s.created_unix_time;
            me.hlc = s.hlc;
            me.ids = PackedInt64Array::from(s.ids.as_slice());
            me.positions = PackedInt64Array::from(s.positions.as_slice());
            me.velocities = PackedInt64Array::from(s.velocities.as_slice());
            me.accelerations = PackedInt64Array::from(s.accelerations.as_slice());
            me.payloads = PackedInt64Array::from(s.payloads.as_slice());
            me.checksum = s.checksum;
        }
        gd
    }

    /// The properties as the core's plain data (a copy).
    pub fn to_core(&self) -> Snapshot {
        Snapshot {
            format_version: self.format_version,
            fabric_name: self.fabric_name.to_string(),
            zone_count: self.zone_count,
            tick: self.tick,
            created_unix_time: self.created_unix_time,
            hlc: self.hlc,
            ids: self.ids.to_vec(),
            positions: self.positions.to_vec(),
            velocities: self.velocities.to_vec(),
            accelerations: self.accelerations.to_vec(),
            payloads: self.payloads.to_vec(),
            checksum: self.checksum,
        }
    }
}
