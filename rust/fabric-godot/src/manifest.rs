//! The replication manifest as Godot resources, edited in the inspector and given to both the
//! zone (`FabricZone.replication_manifest`: what to send) and the client
//! (`FabricWorld.replication_manifest`: which node property each word sets).
//!
//! Thin glue: [`FabricReplicationManifest::to_core`] turns the resources into the core's
//! [`fabric_core::manifest::Manifest`], which decides everything (`docs/manifest.md`).

use fabric_core::manifest::{Manifest, ManifestError, PropertyMode};
use godot::prelude::*;

/// How a property reaches the clients (`docs/manifest.md`).
#[derive(GodotConvert, Var, Export, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[godot(via = i64)]
pub enum ReplicationMode {
    /// Sent on change at most 20 times a second as unreliable datagrams, refreshed every half
    /// second (values that change all the time).
    HighRateUnreliable = 0,
    /// Sent once per change on the reliable stream (materials, toggles).
    #[default]
    ReliableOnChange = 1,
    /// Sent only when the entity enters a player's view, with the late-join baseline.
    SnapshotOnly = 2,
}

impl ReplicationMode {
    fn core(self) -> PropertyMode {
        match self {
            ReplicationMode::HighRateUnreliable => PropertyMode::HighRateUnreliable,
            ReplicationMode::ReliableOnChange => PropertyMode::ReliableOnChange,
            ReplicationMode::SnapshotOnly => PropertyMode::SnapshotOnly,
        }
    }
}

/// One replicated property of an entity class: payload word `word` (1..13; word 0 holds the
/// class) is replicated with `mode`, and on the client it sets `property` on the entity's node
/// (a property of its script or class, e.g. `material_index`), as an `int`.
#[derive(GodotClass)]
#[class(base = Resource, init)]
pub struct FabricReplicatedProperty {
    base: Base<Resource>,
    /// The node property the client sets (empty: none; `property_changed` still fires).
    #[export]
    pub property: StringName,
    /// The entity's payload word that holds it (1..13, set with `FabricZone.set_payload`).
    #[export(range = (1.0, 13.0))]
    #[init(val = 1)]
    pub word: i32,
    /// How it reaches the players.
    #[export]
    pub mode: ReplicationMode,
}

/// The replicated properties of one entity class (the top byte of an entity's first payload
/// word). The transform (position, velocity) of every class is always replicated, high rate and
/// unreliable (at most 20 Hz; idle and far entities 2-5 Hz).
#[derive(GodotClass)]
#[class(base = Resource, init)]
pub struct FabricReplicationClass {
    base: Base<Resource>,
    /// The entity class, 0..255.
    #[export(range = (0.0, 255.0))]
    pub class_id: i32,
    /// Its replicated properties.
    #[export]
    pub properties: Array<Gd<FabricReplicatedProperty>>,
}

/// How entity properties reach the players: per entity class, which payload words are
/// replicated and how (`high_rate_unreliable`, `reliable_on_change`, `snapshot_only`). Give the
/// same resource to the zone (`FabricZone.replication_manifest`) and to the players'
/// `FabricWorld.replication_manifest`; see `docs/manifest.md`.
#[derive(GodotClass)]
#[class(base = Resource, init)]
pub struct FabricReplicationManifest {
    base: Base<Resource>,
    /// One entry per replicated class.
    #[export]
    pub classes: Array<Gd<FabricReplicationClass>>,
}

#[godot_api]
impl FabricReplicationManifest {
    /// Adds property `property` (payload word `word`, replicated with `mode`: 0
    /// high_rate_unreliable, 1 reliable_on_change, 2 snapshot_only) to class `class_id`,
    /// making the class entry if needed: the same as editing it in the inspector.
    #[func]
    pub fn declare(&mut self, class_id: i64, word: i64, property: StringName, mode: i64) {
        let mut p = FabricReplicatedProperty::new_gd();
        {
            let mut b = p.bind_mut();
            b.property = property;
            b.word = i32::try_from(word).unwrap_or(-1);
            b.mode = match mode {
                0 => ReplicationMode::HighRateUnreliable,
                2 => ReplicationMode::SnapshotOnly,
                _ => ReplicationMode::ReliableOnChange,
            };
        }
        let id = i32::try_from(class_id).unwrap_or(-1);
        let existing = self.classes.iter_shared().find(|c| c.bind().class_id == id);
        let mut class = existing.unwrap_or_else(|| {
            let mut c = FabricReplicationClass::new_gd();
            c.bind_mut().class_id = id;
            self.classes.push(&c);
            c
        });
        class.bind_mut().properties.push(&p);
    }

    /// An empty string when every entry is valid, else what is wrong with the first bad one.
    #[func]
    pub fn validate(&self) -> GString {
        match self.to_core() {
            Ok(_) => GString::new(),
            Err(e) => GString::from(e.to_string().as_str()),
        }
    }
}

impl FabricReplicationManifest {
    /// The core manifest, or the first entry that is not valid.
    pub fn to_core(&self) -> Result<Manifest, ManifestError> {
        let mut m = Manifest::new();
        for class in self.classes.iter_shared() {
            let c = class.bind();
            for p in c.properties.iter_shared() {
                let p = p.bind();
                m.declare(i64::from(c.class_id), i64::from(p.word), p.mode.core())?;
            }
        }
        Ok(m)
    }

    /// The node property of `word` of `class` (None when not declared or without a name).
    pub fn property_name(&self, class: u8, word: u8) -> Option<StringName> {
        let c = self
            .classes
            .iter_shared()
            .find(|c| c.bind().class_id == i32::from(class))?;
        let c = c.bind();
        let p = c
            .properties
            .iter_shared()
            .find(|p| p.bind().word == i32::from(word))?;
        let name = p.bind().property.clone();
        (!name.is_empty()).then_some(name)
    }
}
