//! The replication manifest: how each entity class's properties reach the clients (issue 15,
//! part 3). Sans-IO like the rest of the core.
//!
//! An entity's **properties** are its payload words 1..=13 (word 0 is the class word, whose top
//! byte is the class: [`crate::room_save::class_of`]). A game declares, per class, which words
//! are replicated and how ([`PropertyMode`]); words the manifest does not name stay on the zone
//! (clients see the class word only, as before). The transform (position and velocity) is always
//! replicated by the client replication packet (`docs/protocol.md`, "Client replication"): high
//! rate, unreliable, at most 20 Hz, downshifting to 2-5 Hz for idle and far entities.
//!
//! - [`tracker`]: [`PropertyTracker`], the zone side: observes every held entity's payload
//!   each tick, stamps each changed word with a sequence number and says which words changed.
//! - [`client`]: [`ClientProperties`], the zone side of one client: what to send it this tick
//!   (the snapshot of an entity entering its view, reliable changes, unreliable refreshes).
//! - [`store`]: [`PropertyStore`], the client side: applies values, dropping stale ones (an
//!   older sequence number never overwrites a newer value).
//!
//! On the wire a property update is a `props` control message (`docs/session-protocol.md`,
//! "Properties"; [`crate::session_control::ControlMessage::Properties`]).

pub mod client;
pub mod store;
pub mod tracker;

use thiserror::Error;

pub use client::{ClientProperties, Delivery, PropertySend};
pub use store::{PropertyStore, StoreOutcome};
pub use tracker::PropertyTracker;

use crate::entity_row::PAYLOAD_WORDS;

/// Lowest payload word a manifest may name (word 0 is the class word).
pub const FIRST_PROPERTY_WORD: u8 = 1;
/// Highest payload word a manifest may name.
pub const LAST_PROPERTY_WORD: u8 = (PAYLOAD_WORDS - 1) as u8;

/// How one property reaches the clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PropertyMode {
    /// Sent when it changes, at most once per tick (20 Hz), as an unreliable datagram, and
    /// refreshed every half second so a lost one heals (a value that changes all the time).
    HighRateUnreliable,
    /// Sent once per change, on the reliable stream (materials, toggles): every client with the
    /// entity in view gets every change, in order, whatever the loss.
    ReliableOnChange,
    /// Sent only when the entity enters a client's view (joining, or coming near), with the
    /// late-join baseline; later changes are not sent (a name, a colour chosen at spawn).
    SnapshotOnly,
}

impl PropertyMode {
    /// Every mode, in wire order.
    pub const ALL: [PropertyMode; 3] = [
        PropertyMode::HighRateUnreliable,
        PropertyMode::ReliableOnChange,
        PropertyMode::SnapshotOnly,
    ];

    /// The mode's name (as in the Godot resource and the documents).
    pub fn name(self) -> &'static str {
        match self {
            PropertyMode::HighRateUnreliable => "high_rate_unreliable",
            PropertyMode::ReliableOnChange => "reliable_on_change",
            PropertyMode::SnapshotOnly => "snapshot_only",
        }
    }

    /// The mode named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// Why a manifest entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ManifestError {
    /// A class id above 255.
    #[error("class {0} is not in 0..=255")]
    Class(i64),
    /// A word outside 1..=13.
    #[error("class {class}: payload word {word} is not in 1..=13 (word 0 is the class word)")]
    Word {
        /// The class.
        class: u8,
        /// The word given.
        word: i64,
    },
    /// Two modes for one word.
    #[error("class {class}: payload word {word} is declared twice")]
    Duplicate {
        /// The class.
        class: u8,
        /// The word.
        word: u8,
    },
}

/// The replicated words of one class: `mode(word)` for words 1..=13.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClassManifest {
    modes: [Option<PropertyMode>; PAYLOAD_WORDS],
}

impl ClassManifest {
    /// The mode of `word`, if it is replicated.
    pub fn mode(&self, word: u8) -> Option<PropertyMode> {
        self.modes.get(usize::from(word)).copied().flatten()
    }

    /// The words replicated with `mode`, as a bit mask (bit `w` = word `w`).
    pub fn mask(&self, mode: PropertyMode) -> u16 {
        self.modes
            .iter()
            .enumerate()
            .filter(|(_, m)| **m == Some(mode))
            .fold(0, |acc, (w, _)| acc | 1 << w)
    }

    /// Every replicated word, as a bit mask.
    pub fn all(&self) -> u16 {
        self.modes
            .iter()
            .enumerate()
            .filter(|(_, m)| m.is_some())
            .fold(0, |acc, (w, _)| acc | 1 << w)
    }
}

/// The manifest of every class (0..=255). Classes not declared replicate no property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    classes: Box<[ClassManifest; 256]>,
}

impl Default for Manifest {
    fn default() -> Self {
        Self {
            classes: Box::new([ClassManifest::default(); 256]),
        }
    }
}

impl Manifest {
    /// An empty manifest (no property replicated).
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares word `word` of class `class` replicated with `mode`.
    pub fn declare(
        &mut self,
        class: i64,
        word: i64,
        mode: PropertyMode,
    ) -> Result<(), ManifestError> {
        let c = u8::try_from(class).map_err(|_| ManifestError::Class(class))?;
        let w = u8::try_from(word)
            .ok()
            .filter(|w| (FIRST_PROPERTY_WORD..=LAST_PROPERTY_WORD).contains(w))
            .ok_or(ManifestError::Word { class: c, word })?;
        let slot = &mut self.classes[usize::from(c)].modes[usize::from(w)];
        if slot.is_some() {
            return Err(ManifestError::Duplicate { class: c, word: w });
        }
        *slot = Some(mode);
        Ok(())
    }

    /// The entry of `class`.
    pub fn class(&self, class: u8) -> &ClassManifest {
        &self.classes[usize::from(class)]
    }

    /// The entry of the class in `class_word`'s top byte.
    pub fn of_word(&self, class_word: u32) -> &ClassManifest {
        self.class((class_word >> 24) as u8)
    }

    /// Whether no class replicates anything.
    pub fn is_empty(&self) -> bool {
        self.classes.iter().all(|c| c.all() == 0)
    }
}

/// One property value on the wire: payload word `word` (1..=13) is `value` as of sequence
/// number `seq` (the zone tick at which the zone first held that value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PropertyValue {
    /// The payload word, 1..=13.
    pub word: u8,
    /// Its sequence number: larger is newer.
    pub seq: u64,
    /// The word's value.
    pub value: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declare_checks_class_and_word_and_duplicates() {
        let mut m = Manifest::new();
        assert!(m.is_empty());
        m.declare(7, 1, PropertyMode::ReliableOnChange).unwrap();
        m.declare(7, 13, PropertyMode::SnapshotOnly).unwrap();
        m.declare(7, 2, PropertyMode::HighRateUnreliable).unwrap();
        assert_eq!(
            m.declare(256, 1, PropertyMode::SnapshotOnly),
            Err(ManifestError::Class(256))
        );
        assert_eq!(
            m.declare(-1, 1, PropertyMode::SnapshotOnly),
            Err(ManifestError::Class(-1))
        );
        assert_eq!(
            m.declare(7, 0, PropertyMode::SnapshotOnly),
            Err(ManifestError::Word { class: 7, word: 0 }),
            "word 0 is the class word"
        );
        assert_eq!(
            m.declare(7, 14, PropertyMode::SnapshotOnly),
            Err(ManifestError::Word { class: 7, word: 14 })
        );
        assert_eq!(
            m.declare(7, 1, PropertyMode::SnapshotOnly),
            Err(ManifestError::Duplicate { class: 7, word: 1 })
        );
        let c = m.of_word(7 << 24 | 99);
        assert_eq!(c.mode(1), Some(PropertyMode::ReliableOnChange));
        assert_eq!(c.mode(3), None);
        assert_eq!(c.mask(PropertyMode::ReliableOnChange), 1 << 1);
        assert_eq!(c.mask(PropertyMode::SnapshotOnly), 1 << 13);
        assert_eq!(c.all(), 1 << 1 | 1 << 2 | 1 << 13);
        assert_eq!(
            m.class(8).all(),
            0,
            "an undeclared class replicates nothing"
        );
        assert!(!m.is_empty());
    }

    #[test]
    fn mode_names_round_trip() {
        for m in PropertyMode::ALL {
            assert_eq!(PropertyMode::from_name(m.name()), Some(m));
        }
        assert_eq!(PropertyMode::from_name("sometimes"), None);
    }
}
