//! The presence list of a host-run room: who is in the room, in join order, and where each
//! player would listen if it became host.
//!
//! The host assigns each player that joins the next player id (1 for the founding host) and
//! never reuses one, also across host changes ([`PresenceList::next_player`] travels in the
//! list). So join order is id order and the **oldest presence** is the smallest id: no clocks
//! to compare, nothing to tie-break.
//!
//! Every player publishes, when it joins, the address, port and certificate hash of a listener
//! it keeps ready (a standby server); the host sends the whole list to everyone each time it
//! changes, with its `term` (1 for the founder, +1 per host change). A client that has to
//! elect a successor therefore knows, from what it already holds, whom to elect and how to
//! reach it.
//!
//! **Rejoin proof.** With its `hello` each player sends the hash of a fresh secret it keeps
//! ([`rejoin_hash`]), and the list publishes that hash. A player that reconnects to a new host
//! under its old id must send the secret behind the published hash ([`proves`]): the list
//! tells everyone the hash, only the player knows the secret, so nobody else can take over
//! its id (and with it what it holds). Each hello carries a new hash, so a secret shown to one
//! host is not worth anything under the next.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Length of a [`rejoin_hash`]: hex SHA-256.
pub const REJOIN_HASH_LEN: usize = 64;

/// The hash a player publishes for its rejoin `secret`: lowercase hex SHA-256.
pub fn rejoin_hash(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(REJOIN_HASH_LEN);
    for b in digest {
        out.push(char::from_digit(u32::from(b >> 4), 16).expect("a nibble"));
        out.push(char::from_digit(u32::from(b & 15), 16).expect("a nibble"));
    }
    out
}

/// Whether `proof` is the secret behind the published `hash`; never for an empty hash (a
/// player that published none cannot rejoin under its id).
pub fn proves(hash: &str, proof: &str) -> bool {
    !hash.is_empty() && !proof.is_empty() && rejoin_hash(proof) == hash
}

/// Whether `hash` has the form [`rejoin_hash`] gives (empty: none published).
pub fn is_rejoin_hash(hash: &str) -> bool {
    hash.is_empty()
        || (hash.len() == REJOIN_HASH_LEN
            && hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// One player in the room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Presence {
    /// Player id: join order, assigned by the host, never reused.
    pub player: u32,
    /// Address others reach it at (IP or host name).
    pub address: String,
    /// Port of its standby listener (UDP for WebTransport, TCP for WebSocket).
    pub port: u16,
    /// Certificate hash of its standby listener (base64 SHA-256), for others to pin.
    pub cert_hash: String,
    /// The hash of its rejoin secret ([`rejoin_hash`]); empty when it sent none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rejoin_hash: String,
}

/// Everyone in the room, the current host and the term of its rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceList {
    /// 1 under the founding host, +1 per host change.
    pub term: u32,
    /// Player id of the host.
    pub host: u32,
    /// The id the next player to join gets.
    pub next_player: u32,
    /// Every player, the host included, in join order (ascending id).
    pub players: Vec<Presence>,
}

impl PresenceList {
    /// The list of a room founded by a host listening at `address:port` (player 1, term 1).
    pub fn found(address: String, port: u16, cert_hash: String) -> Self {
        Self {
            term: 1,
            host: 1,
            next_player: 2,
            players: vec![Presence {
                player: 1,
                address,
                port,
                cert_hash,
                rejoin_hash: String::new(),
            }],
        }
    }

    /// The presence of `player`.
    pub fn get(&self, player: u32) -> Option<&Presence> {
        self.players.iter().find(|p| p.player == player)
    }

    /// Adds a player that joined now; returns its id.
    pub fn join(&mut self, address: String, port: u16, cert_hash: String) -> u32 {
        let player = self.next_player;
        self.next_player += 1;
        self.players.push(Presence {
            player,
            address,
            port,
            cert_hash,
            rejoin_hash: String::new(),
        });
        player
    }

    /// Removes `player` (it left); returns its presence.
    pub fn leave(&mut self, player: u32) -> Option<Presence> {
        let i = self.players.iter().position(|p| p.player == player)?;
        Some(self.players.remove(i))
    }

    /// The player every remaining player elects when the host is lost: the oldest presence
    /// (smallest id) other than the host and the players in `unreachable`. The same list gives
    /// the same answer everywhere; `None` when nobody is left.
    pub fn successor(&self, unreachable: &BTreeSet<u32>) -> Option<&Presence> {
        self.players
            .iter()
            .filter(|p| p.player != self.host && !unreachable.contains(&p.player))
            .min_by_key(|p| p.player)
    }

    /// `new_host` takes over: the old host leaves the list and the term goes up.
    pub fn hand_over(&mut self, new_host: u32) {
        let old = self.host;
        self.leave(old);
        self.host = new_host;
        self.term += 1;
    }

    /// Checks what a decoder cannot: ids ascending and below `next_player`, the host listed.
    pub fn is_consistent(&self) -> bool {
        let ascending = self.players.windows(2).all(|w| w[0].player < w[1].player);
        let below = self.players.iter().all(|p| p.player < self.next_player);
        ascending && below && self.term > 0 && self.get(self.host).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(n: u32) -> PresenceList {
        let mut l = PresenceList::found("10.0.0.1".into(), 4000, "h1".into());
        for i in 2..=n {
            let id = l.join(format!("10.0.0.{i}"), 4000 + i as u16, format!("h{i}"));
            assert_eq!(id, i, "ids follow join order");
        }
        l
    }

    #[test]
    fn the_oldest_remaining_presence_is_elected() {
        let l = room(4);
        assert!(l.is_consistent());
        let none = BTreeSet::new();
        assert_eq!(
            l.successor(&none).map(|p| p.player),
            Some(2),
            "2 joined first"
        );
        let gone: BTreeSet<u32> = [2].into();
        assert_eq!(l.successor(&gone).map(|p| p.player), Some(3), "then 3");
        let gone: BTreeSet<u32> = [2, 3, 4].into();
        assert_eq!(l.successor(&gone), None, "nobody left");
    }

    #[test]
    fn election_does_not_depend_on_list_order_or_who_computes_it() {
        let l = room(5);
        let mut shuffled = l.clone();
        shuffled.players.reverse();
        let none = BTreeSet::new();
        assert_eq!(
            l.successor(&none).map(|p| p.player),
            shuffled.successor(&none).map(|p| p.player),
            "order of the list does not matter"
        );
    }

    #[test]
    fn ids_are_never_reused_across_leaves_and_host_changes() {
        let mut l = room(3);
        l.leave(3);
        assert_eq!(l.join("a".into(), 1, "x".into()), 4, "3 is not reused");
        l.hand_over(2);
        assert_eq!((l.host, l.term), (2, 2));
        assert!(l.get(1).is_none(), "the old host left the list");
        assert!(l.is_consistent());
        assert_eq!(l.join("b".into(), 1, "y".into()), 5, "numbering goes on");
        let none = BTreeSet::new();
        assert_eq!(l.successor(&none).map(|p| p.player), Some(4));
    }

    #[test]
    fn only_the_secret_behind_a_published_hash_proves_an_id() {
        let h = rejoin_hash("the secret of player 3");
        assert_eq!(h.len(), REJOIN_HASH_LEN);
        assert!(is_rejoin_hash(&h) && is_rejoin_hash(""));
        assert!(!is_rejoin_hash("ABC") && !is_rejoin_hash(&h.to_uppercase()));
        assert!(proves(&h, "the secret of player 3"));
        assert!(!proves(&h, "the secret of player 4"), "another secret");
        assert!(!proves(&h, &h), "the published hash itself is no proof");
        assert!(!proves("", ""), "nothing published: no proof possible");
        assert_eq!(
            rejoin_hash(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "SHA-256 of nothing, hex"
        );
    }

    #[test]
    fn inconsistent_lists_are_recognised() {
        let mut l = room(3);
        l.host = 9;
        assert!(!l.is_consistent(), "host not listed");
        let mut l = room(3);
        l.players.swap(0, 1);
        assert!(!l.is_consistent(), "not ascending");
        let mut l = room(3);
        l.next_player = 2;
        assert!(!l.is_consistent(), "an id at or above next_player");
    }
}
