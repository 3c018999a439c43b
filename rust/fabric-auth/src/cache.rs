//! A small decision cache for a zone: "may user U do P on object O" remembered per session so
//! that nothing asks the backend from a tick loop. The zone clears it (or one object's entries)
//! when the backend pushes `relationship_changed` on the zone's topic.

use std::collections::HashMap;

/// Cached permission decisions keyed by `(user, permission, object)`.
#[derive(Debug, Clone, Default)]
pub struct DecisionCache {
    entries: HashMap<(String, String, String), bool>,
}

impl DecisionCache {
    /// A cached decision, if any.
    pub fn get(&self, user: &str, permission: &str, object: &str) -> Option<bool> {
        self.entries
            .get(&(user.to_owned(), permission.to_owned(), object.to_owned()))
            .copied()
    }

    /// Remembers a decision.
    pub fn put(&mut self, user: &str, permission: &str, object: &str, allowed: bool) {
        self.entries.insert(
            (user.to_owned(), permission.to_owned(), object.to_owned()),
            allowed,
        );
    }

    /// Forgets every decision about `object` (e.g. `zone:<id>`).
    pub fn invalidate_object(&mut self, object: &str) {
        self.entries.retain(|(_, _, o), _| o != object);
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Number of cached decisions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalidation_is_per_object() {
        let mut c = DecisionCache::default();
        c.put("alice", "join", "zone:a", true);
        c.put("bob", "join", "zone:b", false);
        assert_eq!(c.get("alice", "join", "zone:a"), Some(true));
        c.invalidate_object("zone:a");
        assert_eq!(c.get("alice", "join", "zone:a"), None, "dropped");
        assert_eq!(c.get("bob", "join", "zone:b"), Some(false), "kept");
        c.clear();
        assert!(c.is_empty(), "cleared");
    }
}
