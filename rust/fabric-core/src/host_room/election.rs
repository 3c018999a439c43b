//! The follower side of a host-run room: liveness of the host, the last baseline, and the
//! election when the host is lost.
//!
//! **Liveness.** The host sends a `beat` every few hundred milliseconds (and every other
//! message counts too). A follower that has heard nothing for `silence_ms` considers the host
//! lost ([`Follower::host_silent`]); a closed connection (the host left cleanly) is lost at
//! once. Waiting for the transport's idle timeout (10 s) would be far too slow for a game.
//!
//! **Election without a vote.** Every follower holds the same presence list (the host sends
//! it reliably, in order, to everyone), so [`Follower::elect`] gives the same answer on every
//! machine: the oldest presence other than the lost host ([`PresenceList::successor`]). The
//! elected player takes over ([`Decision::TakeOver`]) from its last baseline; the others
//! connect to it ([`Decision::Connect`]) and say who they were (`hello` with their id). A
//! successor that cannot be reached (it crashed too) is skipped by each follower when its
//! connection fails ([`Follower::unreachable`]): everyone moves on to the same next oldest.
//! Lists that differ by the last update (the host died while sending it) differ only by the
//! youngest joiner or by a player that left: the first cannot win the election, the second is
//! unreachable and skipped.

use std::collections::BTreeSet;

use super::presence::{Presence, PresenceList};
use super::wire::{Baseline, RoomMsg};

/// What a follower does once its host is lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// It is the oldest remaining presence: become host from the last baseline.
    TakeOver,
    /// Connect to this player, the new host.
    Connect(Presence),
}

/// What a message from the host changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowerEvent {
    /// The host gave this follower its player id.
    Welcomed(u32),
    /// A new presence list; `host_changed` when its host differs from the last list's.
    Presence {
        /// The host is another player than under the last list.
        host_changed: bool,
    },
    /// A new baseline.
    Baseline,
    /// A request, release or move was refused.
    Denied {
        /// The object.
        entity: u32,
        /// Why.
        reason: String,
    },
    /// A heartbeat.
    Beat,
    /// A message only players send (a forged or confused peer): dropped.
    Unexpected,
}

/// A player that is not the host.
#[derive(Debug, Clone)]
pub struct Follower {
    me: Option<u32>,
    list: Option<PresenceList>,
    baseline: Baseline,
    silence_ms: u64,
    last_heard_ms: u64,
    unreachable: BTreeSet<u32>,
}

impl Follower {
    /// A follower that considers the host lost after `silence_ms` without a message.
    pub fn new(silence_ms: u64, now_ms: u64) -> Self {
        Self {
            me: None,
            list: None,
            baseline: Baseline::default(),
            silence_ms,
            last_heard_ms: now_ms,
            unreachable: BTreeSet::new(),
        }
    }

    /// Its player id, once welcomed.
    pub fn me(&self) -> Option<u32> {
        self.me
    }

    /// The last presence list.
    pub fn list(&self) -> Option<&PresenceList> {
        self.list.as_ref()
    }

    /// The last baseline.
    pub fn baseline(&self) -> &Baseline {
        &self.baseline
    }

    /// The connection to a host opened at `now_ms`: the silence deadline starts again.
    pub fn connected(&mut self, now_ms: u64) {
        self.last_heard_ms = now_ms;
    }

    /// Takes in a message from the host at `now_ms`.
    pub fn on_message(&mut self, msg: RoomMsg, now_ms: u64) -> FollowerEvent {
        self.last_heard_ms = now_ms;
        match msg {
            RoomMsg::Welcome { player } => {
                self.me = Some(player);
                FollowerEvent::Welcomed(player)
            }
            RoomMsg::Presence { list } => {
                let host_changed = self.list.as_ref().is_some_and(|l| l.host != list.host);
                self.list = Some(list);
                self.unreachable.clear();
                FollowerEvent::Presence { host_changed }
            }
            RoomMsg::Baseline { baseline } => {
                self.baseline = baseline;
                FollowerEvent::Baseline
            }
            RoomMsg::Denied { entity, reason } => FollowerEvent::Denied { entity, reason },
            RoomMsg::Beat { .. } => FollowerEvent::Beat,
            RoomMsg::Hello { .. }
            | RoomMsg::Spawn { .. }
            | RoomMsg::Request { .. }
            | RoomMsg::Release { .. }
            | RoomMsg::Move { .. } => FollowerEvent::Unexpected,
        }
    }

    /// Whether the host has been silent for `silence_ms` at `now_ms`.
    pub fn host_silent(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.last_heard_ms) >= self.silence_ms
    }

    /// The host is lost: whom to follow. `None` when this follower was never welcomed (it has
    /// no list or no id: nothing to continue) or nobody else is left (it then takes over
    /// alone, see [`Decision::TakeOver`], only when it has an id).
    pub fn elect(&self) -> Option<Decision> {
        let me = self.me?;
        let list = self.list.as_ref()?;
        let next = list.successor(&self.unreachable)?;
        Some(if next.player == me {
            Decision::TakeOver
        } else {
            Decision::Connect(next.clone())
        })
    }

    /// The elected `player` could not be reached: skip it and elect again.
    pub fn unreachable(&mut self, player: u32) -> Option<Decision> {
        self.unreachable.insert(player);
        self.elect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(n: u32) -> PresenceList {
        let mut l = PresenceList::found("h".into(), 1, "c1".into());
        for i in 2..=n {
            l.join(format!("p{i}"), i as u16, format!("c{i}"));
        }
        l
    }

    fn follower(me: u32, n: u32) -> Follower {
        let mut f = Follower::new(500, 0);
        f.on_message(RoomMsg::Welcome { player: me }, 0);
        f.on_message(RoomMsg::Presence { list: list(n) }, 0);
        f
    }

    #[test]
    fn silence_is_measured_from_the_last_message() {
        let mut f = follower(2, 3);
        assert!(!f.host_silent(499));
        assert!(f.host_silent(500), "500 ms of silence");
        f.on_message(RoomMsg::Beat { term: 1 }, 450);
        assert!(!f.host_silent(900), "a beat at 450 resets it");
        f.connected(2000);
        assert!(!f.host_silent(2400), "a new connection resets it");
    }

    #[test]
    fn every_follower_elects_the_same_successor() {
        let decisions: Vec<_> = (2..=5).map(|me| follower(me, 5).elect()).collect();
        assert_eq!(decisions[0], Some(Decision::TakeOver), "2 is the oldest");
        for d in &decisions[1..] {
            match d {
                Some(Decision::Connect(p)) => {
                    assert_eq!((p.player, p.address.as_str(), p.port), (2, "p2", 2));
                }
                other => panic!("expected to connect to 2, got {other:?}"),
            }
        }
    }

    #[test]
    fn an_unreachable_successor_is_skipped_by_everyone() {
        let mut f3 = follower(3, 4);
        let mut f4 = follower(4, 4);
        assert_eq!(f3.unreachable(2), Some(Decision::TakeOver));
        match f4.unreachable(2) {
            Some(Decision::Connect(p)) => assert_eq!(p.player, 3),
            other => panic!("expected 3, got {other:?}"),
        }
        assert_eq!(
            f4.unreachable(3),
            Some(Decision::TakeOver),
            "then 4 is alone"
        );
    }

    #[test]
    fn a_follower_never_welcomed_does_not_elect() {
        let mut f = Follower::new(500, 0);
        assert_eq!(f.elect(), None, "no list, no id");
        f.on_message(RoomMsg::Presence { list: list(3) }, 0);
        assert_eq!(f.elect(), None, "no id");
    }

    #[test]
    fn player_messages_from_the_host_are_flagged() {
        let mut f = follower(2, 3);
        assert_eq!(
            f.on_message(RoomMsg::Request { entity: 1 }, 0),
            FollowerEvent::Unexpected
        );
        let mut l = list(3);
        l.hand_over(2);
        assert_eq!(
            f.on_message(RoomMsg::Presence { list: l }, 0),
            FollowerEvent::Presence { host_changed: true }
        );
    }
}
