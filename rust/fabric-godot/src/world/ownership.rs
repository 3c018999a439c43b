//! What the client knows of entity ownership: the holder of each entity it heard about from
//! the zone's `ownership` events (`docs/session-protocol.md`, "Ownership"). The zone decides;
//! this only mirrors its answers, for `FabricWorld.get_holder()` and the ownership signals.

use std::collections::BTreeMap;

use fabric_core::session_control::OwnershipState;

/// One ownership event, as the node reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnershipEvent {
    /// The entity's global id.
    pub entity: u32,
    /// What happened.
    pub state: OwnershipState,
    /// The holder's avatar id after the event (`None`: the zone holds it).
    pub holder: Option<u32>,
    /// Why (a denial's reason, or the cause of a release or take-back); empty when none.
    pub reason: String,
}

/// Holders by entity, from the events heard.
#[derive(Debug, Default, Clone)]
pub struct Holders {
    by_entity: BTreeMap<u32, u32>,
}

impl Holders {
    /// Applies one event: a grant (or a denial naming the current holder) records the holder,
    /// a release or take-back clears it.
    pub fn apply(&mut self, ev: &OwnershipEvent) {
        match (ev.state, ev.holder) {
            (OwnershipState::Granted | OwnershipState::Denied, Some(h)) => {
                self.by_entity.insert(ev.entity, h);
            }
            (OwnershipState::Released | OwnershipState::Revoked, _)
            | (OwnershipState::Granted, None) => {
                self.by_entity.remove(&ev.entity);
            }
            (OwnershipState::Denied, None) => {}
        }
    }

    /// The holder of `entity` as last heard, `None` when the zone holds it (or nothing was heard).
    pub fn holder(&self, entity: u32) -> Option<u32> {
        self.by_entity.get(&entity).copied()
    }

    /// Forgets everything (a new session).
    pub fn clear(&mut self) {
        self.by_entity.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(entity: u32, state: OwnershipState, holder: Option<u32>) -> OwnershipEvent {
        OwnershipEvent {
            entity,
            state,
            holder,
            reason: String::new(),
        }
    }

    #[test]
    fn holders_follow_grants_denials_releases_and_take_backs() {
        let mut h = Holders::default();
        h.apply(&ev(7, OwnershipState::Granted, Some(100)));
        assert_eq!(h.holder(7), Some(100));
        // A denial names who holds it.
        h.apply(&ev(8, OwnershipState::Denied, Some(101)));
        assert_eq!(h.holder(8), Some(101));
        h.apply(&ev(7, OwnershipState::Released, None));
        assert_eq!(h.holder(7), None);
        h.apply(&ev(8, OwnershipState::Revoked, None));
        assert_eq!(h.holder(8), None);
        h.apply(&ev(9, OwnershipState::Denied, None));
        assert_eq!(
            h.holder(9),
            None,
            "a denial without a holder changes nothing"
        );
        h.apply(&ev(9, OwnershipState::Granted, Some(5)));
        h.clear();
        assert_eq!(h.holder(9), None);
    }
}
