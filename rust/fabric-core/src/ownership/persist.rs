//! Persist modes: what becomes of an entity when its holder disconnects, and whether a room
//! save includes it.
//!
//! | mode | name on the wire | holder disconnects | room save |
//! |---|---|---|---|
//! | [`PersistMode::TransientHeld`] | `transient_held` | despawned | no |
//! | [`PersistMode::PlacedRoom`] | `placed_room` | kept, holder cleared, back to the zone | no |
//! | [`PersistMode::PlacedSaved`] | `placed_saved` | kept, holder cleared, back to the zone | yes |
//!
//! An entity without a mode set is `placed_room`: a zone's own entities stay when a player
//! who held them leaves.

/// What becomes of an entity when its holder disconnects. Serialized by its name
/// (`"placed_room"`), as in host-run room messages.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum PersistMode {
    /// Lives only while held: despawned when its holder disconnects.
    TransientHeld,
    /// Kept when its holder disconnects; the holder is cleared and the zone owns it again.
    #[default]
    PlacedRoom,
    /// As [`PersistMode::PlacedRoom`], and included in room saves.
    PlacedSaved,
}

impl PersistMode {
    /// Every mode, in code order.
    pub const ALL: [PersistMode; 3] = [
        PersistMode::TransientHeld,
        PersistMode::PlacedRoom,
        PersistMode::PlacedSaved,
    ];

    /// The stable name (wire, metrics, Godot API).
    pub fn name(self) -> &'static str {
        match self {
            PersistMode::TransientHeld => "transient_held",
            PersistMode::PlacedRoom => "placed_room",
            PersistMode::PlacedSaved => "placed_saved",
        }
    }

    /// The mode called `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The byte code in an [`super::OwnershipRecord`] (0, 1, 2).
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The mode of byte code `code`.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code)).copied()
    }

    /// Whether the entity stays when its holder disconnects.
    pub fn survives_holder(self) -> bool {
        self != PersistMode::TransientHeld
    }

    /// Whether a room save includes the entity.
    pub fn saved(self) -> bool {
        self == PersistMode::PlacedSaved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_round_trip_and_are_pinned() {
        let names: Vec<_> = PersistMode::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(names, ["transient_held", "placed_room", "placed_saved"]);
        for (i, m) in PersistMode::ALL.into_iter().enumerate() {
            assert_eq!(m.code() as usize, i, "{m:?}'s code is pinned");
            assert_eq!(PersistMode::from_code(m.code()), Some(m));
            assert_eq!(PersistMode::parse(m.name()), Some(m));
        }
        assert_eq!(PersistMode::from_code(3), None);
        assert_eq!(PersistMode::parse("placed"), None);
        assert_eq!(PersistMode::default(), PersistMode::PlacedRoom);
        assert!(!PersistMode::TransientHeld.survives_holder());
        assert!(PersistMode::PlacedRoom.survives_holder() && !PersistMode::PlacedRoom.saved());
        assert!(PersistMode::PlacedSaved.saved());
    }
}
