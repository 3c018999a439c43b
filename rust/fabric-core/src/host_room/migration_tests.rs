//! A host-run room in memory: a host authority and followers exchanging encoded packets,
//! objects placed and held, the host lost, the successor elected and the room continued.

use std::collections::BTreeMap;

use super::*;
use crate::host_room::election::{Decision, Follower};
use crate::host_room::presence::rejoin_hash;
use crate::host_room::wire::{self, RoomMsg};
use crate::ownership::PersistMode;

/// The host and its followers by Godot peer id, with packets going through the codec.
struct Room {
    host: RoomAuthority,
    followers: BTreeMap<i32, Follower>,
    denied: Vec<(i32, u32, String)>,
    /// Each player's current rejoin secret, by player id (what its process keeps).
    secrets: BTreeMap<u32, String>,
}

impl Room {
    fn new() -> Self {
        Self {
            host: RoomAuthority::found("h".into(), 100, "c1".into()),
            followers: BTreeMap::new(),
            denied: Vec::new(),
            secrets: BTreeMap::new(),
        }
    }

    fn deliver(&mut self, out: Vec<Outgoing>, now: u64) {
        for o in out {
            let (to, msg) = match o {
                Outgoing::To(p, m) => (vec![p], m),
                Outgoing::All(m) => (self.followers.keys().copied().collect(), m),
            };
            let bytes = msg.encode();
            for p in to {
                let m = wire::decode(&bytes).expect("host packets decode");
                if let RoomMsg::Denied { entity, reason } = &m {
                    self.denied.push((p, *entity, reason.clone()));
                }
                if let Some(f) = self.followers.get_mut(&p) {
                    f.on_message(m, now);
                }
            }
        }
    }

    fn send(&mut self, peer: i32, msg: RoomMsg, now: u64) {
        let m = wire::decode(&msg.encode()).expect("player packets decode");
        let mut out = Vec::new();
        self.host.on_message(peer, m, &mut out);
        self.host.poll(now, &mut out);
        self.deliver(out, now);
    }

    /// Peer `peer` says hello as player `claim` (0: new) with the secret it holds for that
    /// id, and a fresh secret for its next rejoin.
    fn join(&mut self, peer: i32, claim: u32, now: u64) {
        let proof = self.secrets.get(&claim).cloned().unwrap_or_default();
        self.join_with_proof(peer, claim, proof, now);
    }

    fn join_with_proof(&mut self, peer: i32, claim: u32, proof: String, now: u64) {
        self.followers
            .entry(peer)
            .or_insert_with(|| Follower::new(500, now));
        let secret = format!("secret of peer {peer} at {now}");
        let hello = RoomMsg::Hello {
            player: claim,
            address: format!("a{peer}"),
            port: peer as u16,
            cert_hash: format!("c{peer}"),
            rejoin_hash: rejoin_hash(&secret),
            proof,
        };
        self.send(peer, hello, now);
        if let Some(id) = self.followers[&peer].me() {
            self.secrets.insert(id, secret);
        }
    }
}

fn move_to(entity: u32, pos: [f32; 3]) -> RoomMsg {
    RoomMsg::Move { entity, pos }
}

fn obj_at(x: f32) -> [f32; 3] {
    [x, 1.0, -x]
}

/// Host (player 1) and players 2, 3, 4 (peers 20, 30, 40); each places one object of each
/// mode, the host too.
fn populated() -> Room {
    let mut r = Room::new();
    for peer in [20, 30, 40] {
        r.join(peer, 0, 0);
    }
    for (i, peer) in [1, 20, 30, 40].into_iter().enumerate() {
        for (j, persist) in PersistMode::ALL.into_iter().enumerate() {
            let x = (i * 3 + j) as f32;
            r.send(
                peer,
                RoomMsg::Spawn {
                    persist,
                    pos: obj_at(x),
                },
                0,
            );
        }
    }
    r
}

#[test]
fn players_get_ids_in_join_order_and_everyone_the_same_state() {
    let r = populated();
    let ids: Vec<_> = [20, 30, 40].iter().map(|p| r.followers[p].me()).collect();
    assert_eq!(ids, [Some(2), Some(3), Some(4)], "ids follow join order");
    let want = r.host.baseline();
    assert_eq!(want.objects.len(), 12, "4 players x 3 modes");
    for (p, f) in &r.followers {
        assert_eq!(f.baseline(), &want, "peer {p} holds the host's baseline");
        assert_eq!(f.list(), Some(r.host.list()), "peer {p} holds the list");
    }
    let holders: Vec<_> = want.objects.iter().map(|o| o.holder).collect();
    assert_eq!(
        holders,
        [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4].map(Some),
        "each object held by the player that placed it"
    );
}

#[test]
fn contention_moves_and_forgeries_are_decided_by_the_host() {
    let mut r = populated();
    // Entity 4 is held by player 2: 3 is denied, and its move is refused and counted.
    r.send(30, RoomMsg::Request { entity: 4 }, 0);
    r.send(30, move_to(4, [9.0; 3]), 0);
    assert_eq!(
        r.denied,
        [(30, 4, "held".to_owned()), (30, 4, "not_holder".to_owned())]
    );
    assert_eq!(r.host.baseline().objects[3].pos, obj_at(3.0), "not moved");
    // Released by 2, then granted to 3, who moves it.
    r.send(20, RoomMsg::Release { entity: 4 }, 0);
    r.send(30, RoomMsg::Request { entity: 4 }, 0);
    r.send(30, move_to(4, [9.0; 3]), 0);
    let o = r.host.baseline().objects[3];
    assert_eq!((o.holder, o.pos), (Some(3), [9.0; 3]));
    assert_eq!(
        r.followers[&40].baseline().objects[3],
        o,
        "everyone sees it"
    );
    // A player sending a baseline (a forged host message) is counted, nothing changes.
    let before = r.host.baseline();
    r.send(
        40,
        RoomMsg::Baseline {
            baseline: Default::default(),
        },
        0,
    );
    assert_eq!(r.host.forged(), 1);
    assert_eq!(r.host.baseline(), before);
    // A peer that never said hello is refused.
    r.send(99, RoomMsg::Request { entity: 1 }, 0);
    assert_eq!(r.denied.last(), Some(&(99, 1, "not_joined".to_owned())));
}

#[test]
fn a_leaving_player_s_objects_follow_their_persist_modes() {
    let mut r = populated();
    r.host.peer_left(30);
    r.followers.remove(&30);
    let mut out = Vec::new();
    r.host.poll(0, &mut out);
    r.deliver(out, 0);
    let b = r.followers[&20].baseline().clone();
    assert!(
        b.objects.iter().all(|o| o.entity != 7),
        "transient 7 despawned"
    );
    let kept: Vec<_> = b
        .objects
        .iter()
        .filter(|o| [8, 9].contains(&o.entity))
        .collect();
    assert_eq!(kept.len(), 2, "placed 8 and 9 kept");
    assert!(kept.iter().all(|o| o.holder.is_none()), "holder cleared");
    assert!(r.host.list().get(3).is_none(), "3 left the list");
}

#[test]
fn the_oldest_player_takes_over_and_the_room_continues() {
    let mut r = populated();
    let before = r.host.baseline();
    // The host goes silent; every follower notices and elects.
    let now = 1000;
    let decisions: BTreeMap<i32, Decision> = r
        .followers
        .iter()
        .map(|(&p, f)| {
            assert!(f.host_silent(now), "peer {p} noticed the silence");
            (p, f.elect().expect("an election result"))
        })
        .collect();
    assert_eq!(decisions[&20], Decision::TakeOver, "2 is the oldest");
    for p in [30, 40] {
        match &decisions[&p] {
            Decision::Connect(s) => assert_eq!((s.player, s.port), (2, 20), "peer {p}"),
            d => panic!("peer {p}: {d:?}"),
        }
    }
    // Player 2 takes over from its baseline; 3 and 4 reconnect with new peer ids.
    let f2 = r.followers.remove(&20).expect("2");
    let list = f2.list().expect("list").clone();
    let mut others = std::mem::take(&mut r.followers);
    r.host = RoomAuthority::take_over(2, list, f2.baseline(), now, 5000);
    assert_eq!(r.host.awaiting(), 2);
    for (old, new) in [(30, 31), (40, 41)] {
        let mut f = others.remove(&old).expect("follower");
        f.connected(now);
        let me = f.me().expect("id");
        r.followers.insert(new, f);
        r.join(new, me, now);
    }
    assert_eq!(r.host.awaiting(), 0, "both came back");
    let after = r.host.baseline();
    assert_eq!(after.term, 2);
    // Expected: the old host's transient object is gone, its placed ones have no holder,
    // everything else (positions, other holders, modes) as before.
    let mut want = before.clone();
    want.term = 2;
    want.objects.retain(|o| o.entity != 1);
    for o in &mut want.objects {
        if o.holder == Some(1) {
            o.holder = None;
        }
    }
    assert_eq!(after, want);
    for (p, f) in &r.followers {
        assert_eq!(f.baseline(), &want, "peer {p} continues with the same room");
        assert_eq!(
            f.me().map(i64::from),
            Some(i64::from(p / 10)),
            "peer {p} kept its id"
        );
        assert_eq!(f.list().map(|l| (l.host, l.term)), Some((2, 2)));
    }
    // Ownership still holds under the new host: 3 may move its object, 4 may not.
    r.send(31, move_to(7, [5.0; 3]), now);
    r.send(41, move_to(7, [6.0; 3]), now);
    assert_eq!(
        r.followers[&41]
            .baseline()
            .objects
            .iter()
            .find(|o| o.entity == 7)
            .map(|o| o.pos),
        Some([5.0; 3])
    );
    assert_eq!(r.denied.last(), Some(&(41, 7, "not_holder".to_owned())));
    // New objects do not reuse ids.
    r.send(
        41,
        RoomMsg::Spawn {
            persist: PersistMode::PlacedRoom,
            pos: [0.0; 3],
        },
        now,
    );
    assert_eq!(r.host.baseline().objects.last().map(|o| o.entity), Some(13));
}

#[test]
fn players_that_do_not_come_back_are_dropped_after_the_grace() {
    let r = populated();
    let f2 = &r.followers[&20];
    let mut host =
        RoomAuthority::take_over(2, f2.list().expect("list").clone(), f2.baseline(), 0, 3000);
    let mut out = Vec::new();
    host.poll(2999, &mut out);
    assert_eq!(host.awaiting(), 2, "still within the grace");
    host.poll(3000, &mut out);
    assert_eq!(host.awaiting(), 0);
    assert_eq!(host.list().players.len(), 1, "only the new host is left");
    let b = host.baseline();
    assert_eq!(
        b.objects.len(),
        9,
        "the transient objects of 1, 3 and 4 went: {}",
        b.dump()
    );
    assert!(
        b.objects
            .iter()
            .all(|o| o.persist != PersistMode::TransientHeld || o.holder == Some(2)),
        "only the new host's transient object is left: {}",
        b.dump()
    );
    assert!(
        b.objects
            .iter()
            .all(|o| o.holder.is_none() || o.holder == Some(2))
    );
}

/// The entities `player` holds in `b`.
fn held_by(b: &wire::Baseline, player: u32) -> Vec<u32> {
    b.objects
        .iter()
        .filter(|o| o.holder == Some(player))
        .map(|o| o.entity)
        .collect()
}

#[test]
fn an_impostor_cannot_take_an_awaited_id_and_the_real_player_still_can() {
    let mut r = populated();
    let f2 = r.followers.remove(&20).expect("2");
    let list = f2.list().expect("list").clone();
    assert!(
        list.players
            .iter()
            .filter(|p| p.player != 1)
            .all(|p| p.rejoin_hash.len() == 64),
        "every player published a rejoin hash: {list:?}"
    );
    let holds_before = held_by(f2.baseline(), 3);
    r.host = RoomAuthority::take_over(2, list.clone(), f2.baseline(), 0, 5000);
    let forged = r.host.forged();
    // Peer 99 claims player 3's id: no proof, then the published hash itself as "proof".
    let published = list.get(3).expect("3").rejoin_hash.clone();
    for (peer, proof) in [(98, String::new()), (99, published)] {
        r.join_with_proof(peer, 3, proof, 0);
        let got = r.followers[&peer].me();
        assert!(
            got.is_some_and(|id| id != 3),
            "peer {peer} joined as a new player, not as 3: {got:?}"
        );
    }
    assert_eq!(r.host.forged(), forged + 2, "both claims counted");
    assert_eq!(r.host.awaiting(), 2, "3 (and 4) still awaited");
    // The real player 3 comes back with its secret and keeps what it held.
    let mut f3 = r.followers.remove(&30).expect("3");
    f3.connected(0);
    r.followers.insert(31, f3);
    r.join(31, 3, 0);
    assert_eq!(r.followers[&31].me(), Some(3), "3 proved its id");
    let holds_after = held_by(&r.host.baseline(), 3);
    assert_eq!(holds_after, holds_before, "and holds what it held");
    // Its old secret is spent: the hash in the list is the new one it just sent.
    let now_published = &r.host.list().get(3).expect("3").rejoin_hash;
    assert_ne!(now_published, &list.get(3).expect("3").rejoin_hash);
}
