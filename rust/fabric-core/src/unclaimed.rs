//! Avatars nobody plays. An avatar that arrives by hand-off waits for its player's `claim`
//! (`avatar_moved` told the player where it went); so does one a zone brings back from its
//! journal or a snapshot after a restart, whose session is gone. A player who quits, crashes or
//! gives up while following never claims it, and without this the avatar would walk on in the
//! new zone for ever, one more entity every time it happens. [`Unclaimed`] remembers since when
//! each such avatar waits; the zone despawns those that waited longer than the claim window.
//!
//! Avatars are told from other entities by [`AVATAR_TAG`] in payload word 1, which a zone
//! writes when it makes an avatar ([`avatar_payload`]); an avatar whose game overwrote that word
//! is not tracked. Sans-IO: time comes in as milliseconds; fixed capacity, no allocation after
//! [`Unclaimed::new`].

use rustc_hash::FxHashMap;

use crate::entity_row::PAYLOAD_WORDS;

/// Marker in `payload[1]` of every avatar a zone makes (`"AVTR"` in ASCII).
pub const AVATAR_TAG: u32 = u32::from_be_bytes(*b"AVTR");

/// The payload of a new avatar: zero but for [`AVATAR_TAG`] in word 1.
pub fn avatar_payload() -> [u32; PAYLOAD_WORDS] {
    let mut p = [0; PAYLOAD_WORDS];
    p[1] = AVATAR_TAG;
    p
}

/// True when `payload` marks an avatar.
pub fn is_avatar(payload: &[u32; PAYLOAD_WORDS]) -> bool {
    payload[1] == AVATAR_TAG
}

/// Avatars waiting for their player, and since when.
#[derive(Debug, Clone)]
pub struct Unclaimed {
    since_ms: FxHashMap<u32, u64>,
    window_ms: u64,
    capacity: usize,
}

impl Unclaimed {
    /// Despawn after `window_ms` without a claim; track at most `capacity` avatars (a zone's
    /// slot count is enough: more cannot be owned at once).
    pub fn new(window_ms: u64, capacity: usize) -> Self {
        let mut since_ms = FxHashMap::default();
        since_ms.reserve(capacity);
        Self {
            since_ms,
            window_ms,
            capacity,
        }
    }

    /// The claim window, milliseconds.
    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// Avatar `id` is here with no player since `now_ms` (kept if it was already waiting).
    /// False when the table is full and `id` is not tracked.
    pub fn waiting(&mut self, id: u32, now_ms: u64) -> bool {
        if self.since_ms.contains_key(&id) {
            return true;
        }
        if self.since_ms.len() >= self.capacity {
            return false;
        }
        self.since_ms.insert(id, now_ms);
        true
    }

    /// Avatar `id` has a player again, or is no longer here (handed on, despawned).
    pub fn forget(&mut self, id: u32) {
        self.since_ms.remove(&id);
    }

    /// Avatars waiting now.
    pub fn len(&self) -> usize {
        self.since_ms.len()
    }

    /// True when none waits.
    pub fn is_empty(&self) -> bool {
        self.since_ms.is_empty()
    }

    /// Moves the avatars that have waited `window_ms` or longer at `now_ms` into `out`, in
    /// ascending id order, and forgets them.
    pub fn expired(&mut self, now_ms: u64, out: &mut Vec<u32>) {
        let start = out.len();
        let window = self.window_ms;
        self.since_ms.retain(|&id, &mut since| {
            let over = now_ms.saturating_sub(since) >= window;
            if over {
                out.push(id);
            }
            !over
        });
        out[start..].sort_unstable();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avatars_are_tagged_and_others_are_not() {
        assert!(is_avatar(&avatar_payload()));
        assert!(!is_avatar(&[0; PAYLOAD_WORDS]));
        let mut wanderer = [0; PAYLOAD_WORDS];
        wanderer[1] = crate::wanderers::WANDERER_TAG;
        assert!(!is_avatar(&wanderer));
    }

    #[test]
    fn an_avatar_waits_its_window_then_expires_unless_claimed() {
        let mut u = Unclaimed::new(30_000, 8);
        assert!(u.waiting(7, 1_000));
        assert!(u.waiting(9, 2_000));
        assert!(
            u.waiting(7, 5_000),
            "already waiting: the first time counts"
        );
        let mut out = Vec::new();
        u.expired(30_999, &mut out);
        assert!(out.is_empty(), "7 has waited 29.999 s");
        u.forget(9); // claimed
        u.expired(31_000, &mut out);
        assert_eq!(out, vec![7], "7 waited 30 s, 9 was claimed");
        assert!(u.is_empty());
        out.clear();
        u.expired(100_000, &mut out);
        assert!(out.is_empty(), "an expired avatar is reported once");
    }

    #[test]
    fn the_table_is_bounded() {
        let mut u = Unclaimed::new(10, 2);
        assert!(u.waiting(1, 0) && u.waiting(2, 0));
        assert!(!u.waiting(3, 0), "full");
        assert_eq!(u.len(), 2);
        let mut out = Vec::new();
        u.expired(10, &mut out);
        assert_eq!(out, vec![1, 2], "in id order");
        assert!(u.waiting(3, 10), "room again");
    }
}
