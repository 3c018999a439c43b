//! The host side of a host-run room: the room's objects, their ownership and the presence
//! list, decided by one player's process.
//!
//! Messages come in per Godot peer id ([`RoomAuthority::on_message`]); the host's own player
//! acts through peer [`HOST_PEER`] like any other. Ownership is decided by the same
//! [`Ownership`] table a zone uses (one holder at a time, fairness, refusals counted), with
//! player ids as holders: they stay valid across host changes, Godot peer ids do not.
//! Anything that changes the room marks it dirty; [`RoomAuthority::poll`] then publishes the
//! presence list and the baseline to everyone, at most once per call.
//!
//! **Taking over.** The elected successor builds its authority from its last baseline and
//! list ([`RoomAuthority::take_over`]): the lost host leaves the list and its objects follow
//! their persist modes (`transient_held` despawned, placed ones kept without holder, as when
//! any holder leaves); every other player keeps what it held and is awaited for
//! `rejoin_grace_ms`. A player that says `hello` with its old id in time, and the secret
//! behind the rejoin hash the list published for it ([`super::presence::proves`]), gets it
//! back; one that does not is dropped as if it had left. A claim with a wrong secret is
//! counted in [`RoomAuthority::forged`] and the sender joins as a new player.

use std::collections::BTreeMap;

use super::HOST_PEER;
use super::presence::{PresenceList, proves};
use super::wire::{Baseline, RoomMsg, RoomObject};
use crate::ownership::{Denial, Departure, Ownership, OwnershipConfig, OwnershipRecord};

/// A message for the glue to send.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    /// To one peer ([`HOST_PEER`]: the host's own player, delivered locally).
    To(i32, RoomMsg),
    /// To every connected peer (and the host's own view).
    All(RoomMsg),
}

/// The authority of a host-run room.
#[derive(Debug, Clone)]
pub struct RoomAuthority {
    me: u32,
    list: PresenceList,
    positions: BTreeMap<u32, [f32; 3]>,
    ownership: Ownership,
    next_entity: u32,
    peers: BTreeMap<i32, u32>,
    awaiting: BTreeMap<u32, u64>,
    dirty: bool,
    tick: u64,
    forged: u64,
}

impl RoomAuthority {
    /// The authority of a room founded now by a host whose standby address is
    /// `address:port` with `cert_hash` (it is player 1).
    pub fn found(address: String, port: u16, cert_hash: String) -> Self {
        let mut peers = BTreeMap::new();
        peers.insert(HOST_PEER, 1);
        Self {
            me: 1,
            list: PresenceList::found(address, port, cert_hash),
            positions: BTreeMap::new(),
            ownership: Ownership::new(OwnershipConfig::default()),
            next_entity: 1,
            peers,
            awaiting: BTreeMap::new(),
            dirty: true,
            tick: 0,
            forged: 0,
        }
    }

    /// The authority of player `me`, elected when the host of `list` was lost, continuing
    /// from `baseline` at `now_ms`; the other players are awaited until
    /// `now_ms + rejoin_grace_ms`.
    pub fn take_over(
        me: u32,
        mut list: PresenceList,
        baseline: &Baseline,
        now_ms: u64,
        rejoin_grace_ms: u64,
    ) -> Self {
        let lost = list.host;
        list.hand_over(me);
        let mut ownership = Ownership::new(OwnershipConfig::default());
        let mut positions = BTreeMap::new();
        for o in &baseline.objects {
            ownership.import(&OwnershipRecord {
                entity: o.entity,
                holder: o.holder,
                persist: o.persist,
            });
            positions.insert(o.entity, o.pos);
        }
        ownership.holder_left(lost, 0, |d| {
            if let Departure::Despawn(e) = d {
                positions.remove(&e);
            }
        });
        let deadline = now_ms.saturating_add(rejoin_grace_ms);
        let awaiting = list
            .players
            .iter()
            .filter(|p| p.player != me)
            .map(|p| (p.player, deadline))
            .collect();
        let mut peers = BTreeMap::new();
        peers.insert(HOST_PEER, me);
        Self {
            me,
            list,
            positions,
            ownership,
            next_entity: baseline.next_entity.max(1),
            peers,
            awaiting,
            dirty: true,
            tick: 0,
            forged: 0,
        }
    }

    /// The host's player id.
    pub fn me(&self) -> u32 {
        self.me
    }

    /// The presence list.
    pub fn list(&self) -> &PresenceList {
        &self.list
    }

    /// The ownership table (refusal counts included).
    pub fn ownership(&self) -> &Ownership {
        &self.ownership
    }

    /// Messages a player may not send (host-only kinds) and rejoin claims without the right
    /// secret, received so far.
    pub fn forged(&self) -> u64 {
        self.forged
    }

    /// Players awaited after a take-over, not yet back.
    pub fn awaiting(&self) -> usize {
        self.awaiting.len()
    }

    /// The player bound to Godot peer `peer`.
    pub fn player_of(&self, peer: i32) -> Option<u32> {
        self.peers.get(&peer).copied()
    }

    /// The room state now.
    pub fn baseline(&self) -> Baseline {
        Baseline {
            term: self.list.term,
            next_entity: self.next_entity,
            objects: self
                .positions
                .iter()
                .map(|(&entity, &pos)| RoomObject {
                    entity,
                    persist: self.ownership.persist_of(entity),
                    holder: self.ownership.holder_of(entity),
                    pos,
                })
                .collect(),
        }
    }

    /// The heartbeat to send.
    pub fn beat(&self) -> RoomMsg {
        RoomMsg::Beat {
            term: self.list.term,
        }
    }

    fn deny(&mut self, peer: i32, entity: u32, why: Denial, out: &mut Vec<Outgoing>) {
        out.push(Outgoing::To(
            peer,
            RoomMsg::Denied {
                entity,
                reason: why.name().to_owned(),
            },
        ));
    }

    /// Takes in `msg` from Godot peer `peer`; answers go to `out`.
    pub fn on_message(&mut self, peer: i32, msg: RoomMsg, out: &mut Vec<Outgoing>) {
        let player = self.peers.get(&peer).copied();
        match msg {
            RoomMsg::Hello {
                player: claim,
                address,
                port,
                cert_hash,
                rejoin_hash,
                proof,
            } => {
                if player.is_some() {
                    return; // said hello already
                }
                // An awaited id is given back only against the secret behind its published
                // hash; a wrong proof is counted and the sender joins as a new player.
                let proven = claim != 0
                    && self.awaiting.contains_key(&claim)
                    && self
                        .list
                        .get(claim)
                        .is_some_and(|p| proves(&p.rejoin_hash, &proof));
                if claim != 0 && self.awaiting.contains_key(&claim) && !proven {
                    self.forged += 1;
                }
                let id = if proven {
                    self.awaiting.remove(&claim);
                    if let Some(p) = self.list.players.iter_mut().find(|p| p.player == claim) {
                        (p.address, p.port, p.cert_hash) = (address, port, cert_hash);
                    }
                    claim
                } else {
                    self.list.join(address, port, cert_hash)
                };
                if let Some(p) = self.list.players.iter_mut().find(|p| p.player == id) {
                    p.rejoin_hash = rejoin_hash;
                }
                self.peers.insert(peer, id);
                out.push(Outgoing::To(peer, RoomMsg::Welcome { player: id }));
                self.dirty = true;
            }
            RoomMsg::Spawn { persist, pos } => {
                let entity = self.next_entity;
                let Some(p) = player else {
                    self.ownership.count(Denial::NotJoined);
                    return self.deny(peer, entity, Denial::NotJoined, out);
                };
                self.ownership.set_persist(entity, persist);
                match self
                    .ownership
                    .request(entity, Some(p), self.tick, true, false)
                {
                    Ok(_) => {
                        self.next_entity += 1;
                        self.positions.insert(entity, pos);
                        self.dirty = true;
                    }
                    Err(why) => {
                        self.ownership.forget(entity);
                        self.deny(peer, entity, why, out);
                    }
                }
            }
            RoomMsg::Request { entity } => {
                let here = self.positions.contains_key(&entity);
                match self
                    .ownership
                    .request(entity, player, self.tick, here, false)
                {
                    Ok(g) if !g.repeated => self.dirty = true,
                    Ok(_) => {}
                    Err(why) => self.deny(peer, entity, why, out),
                }
            }
            RoomMsg::Release { entity } => {
                match self.ownership.release(entity, player, self.tick) {
                    Ok(()) => self.dirty = true,
                    Err(why) => self.deny(peer, entity, why, out),
                }
            }
            RoomMsg::Move { entity, pos } => {
                if player.is_none() || self.ownership.holder_of(entity) != player {
                    self.ownership.count(Denial::NotHolder);
                    return self.deny(peer, entity, Denial::NotHolder, out);
                }
                if let Some(p) = self.positions.get_mut(&entity)
                    && *p != pos
                {
                    *p = pos;
                    self.dirty = true;
                }
            }
            RoomMsg::Welcome { .. }
            | RoomMsg::Presence { .. }
            | RoomMsg::Baseline { .. }
            | RoomMsg::Beat { .. }
            | RoomMsg::Denied { .. } => {
                // Only the host sends these: a forged message, counted and dropped.
                self.forged += 1;
                self.ownership.count(Denial::Forged);
            }
        }
    }

    /// Player `player` is gone: it leaves the list, its objects follow their persist modes.
    fn drop_player(&mut self, player: u32) {
        self.list.leave(player);
        let positions = &mut self.positions;
        self.ownership.holder_left(player, self.tick, |d| {
            if let Departure::Despawn(e) = d {
                positions.remove(&e);
            }
        });
        self.dirty = true;
    }

    /// Godot peer `peer` disconnected.
    pub fn peer_left(&mut self, peer: i32) {
        if peer == HOST_PEER {
            return;
        }
        if let Some(player) = self.peers.remove(&peer) {
            self.drop_player(player);
        }
    }

    /// Once a frame at `now_ms`: players awaited past their deadline are dropped; when the
    /// room changed, the presence list and the baseline go to everyone.
    pub fn poll(&mut self, now_ms: u64, out: &mut Vec<Outgoing>) {
        self.tick += 1;
        if self.awaiting.values().any(|&d| now_ms >= d) {
            let late: Vec<u32> = self
                .awaiting
                .iter()
                .filter(|&(_, &d)| now_ms >= d)
                .map(|(&p, _)| p)
                .collect();
            for p in late {
                self.awaiting.remove(&p);
                self.drop_player(p);
            }
        }
        if self.dirty {
            self.dirty = false;
            out.push(Outgoing::All(RoomMsg::Presence {
                list: self.list.clone(),
            }));
            out.push(Outgoing::All(RoomMsg::Baseline {
                baseline: self.baseline(),
            }));
        }
    }
}

#[cfg(test)]
#[path = "migration_tests.rs"]
mod migration_tests;
