//! Messages of a host-run room and their codec.
//!
//! Each message is one reliable SceneMultiplayer packet (`send_bytes`): the 4 bytes
//! [`MAGIC`] (`FHR1`: host room, version 1) then a UTF-8 JSON object whose `"t"` names the
//! message. Packets without the magic are not ours and are left to the game. [`decode`]
//! validates everything (length, magic, JSON shape, unknown fields, string and list lengths,
//! finite positions, a consistent presence list) and returns a typed error: the caller counts
//! and drops the packet, a hostile peer cannot do more than end its own session.
//!
//! | `t` | direction | fields |
//! |---|---|---|
//! | `hello` | player -> host | `player` (0 = new, else the id it had under the last host), `address`, `port`, `cert_hash` of its standby listener, `rejoin_hash` (hash of a fresh secret), `proof` (rejoin: the secret behind its published hash) |
//! | `welcome` | host -> player | `player`: its id |
//! | `presence` | host -> all | `list`: the [`PresenceList`] |
//! | `baseline` | host -> all | `baseline`: `term`, `objects` (entity, persist, holder, pos) |
//! | `beat` | host -> all | `term` (heartbeat, [`super::election`]) |
//! | `spawn` | player -> host | `persist`, `pos`: place an object, held by the sender |
//! | `request` / `release` | player -> host | `entity` |
//! | `move` | player -> host | `entity`, `pos` (holder only) |
//! | `denied` | host -> player | `entity`, `reason` (the [`crate::ownership::Denial`] name) |

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::presence::{PresenceList, is_rejoin_hash};
use crate::ownership::PersistMode;

/// First bytes of every host-room packet.
pub const MAGIC: &[u8; 4] = b"FHR1";
/// Largest packet accepted, in bytes.
pub const MAX_MSG_LEN: usize = 256 * 1024;
/// Most objects in a baseline.
pub const MAX_OBJECTS: usize = 4096;
/// Most players in a presence list.
pub const MAX_PLAYERS: usize = 256;
/// Longest address, certificate hash or reason, in bytes.
pub const MAX_TEXT: usize = 255;

/// Why a packet is not a valid host-room message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// Longer than [`MAX_MSG_LEN`].
    #[error("host room packet is {0} bytes, the limit is {MAX_MSG_LEN}")]
    TooLong(usize),
    /// Does not start with [`MAGIC`]: not a host-room packet (the game's own).
    #[error("not a host room packet")]
    NotOurs,
    /// Not a JSON message of a known kind with valid fields.
    #[error("malformed host room message: {0}")]
    Json(String),
    /// A field out of range: too long a text or list, a position not finite, an inconsistent
    /// presence list.
    #[error("host room message field `{0}` is out of range")]
    Range(&'static str),
}

/// One object of the room as every client holds it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomObject {
    /// Entity id, assigned by the host that spawned it, kept across host changes.
    pub entity: u32,
    /// What becomes of it when its holder leaves.
    pub persist: PersistMode,
    /// Player id of its holder; `None`: the room (the host) owns it.
    pub holder: Option<u32>,
    /// Position.
    pub pos: [f32; 3],
}

/// The room state the host publishes: every object, in entity order. What a late joiner gets
/// first and what a successor continues from.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// Term of the host that published it.
    pub term: u32,
    /// The id the next spawned object gets.
    pub next_entity: u32,
    /// The objects, ascending entity id.
    pub objects: Vec<RoomObject>,
}

impl Baseline {
    /// One line per object, `entity:persist:holder:x,y,z` (holder `-` when none), joined by
    /// `;` in entity order: what tests compare across processes.
    pub fn dump(&self) -> String {
        let mut parts = Vec::with_capacity(self.objects.len());
        for o in &self.objects {
            let holder = o.holder.map_or_else(|| "-".to_owned(), |h| h.to_string());
            parts.push(format!(
                "{}:{}:{}:{},{},{}",
                o.entity,
                o.persist.name(),
                holder,
                o.pos[0],
                o.pos[1],
                o.pos[2]
            ));
        }
        parts.join(";")
    }
}

/// A host-room message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case", deny_unknown_fields)]
pub enum RoomMsg {
    /// Player -> host: join (player 0) or rejoin under a new host (the id it had).
    Hello {
        /// 0 for a new player, else its id under the last host.
        player: u32,
        /// Where its standby listener is reached.
        address: String,
        /// Port of its standby listener.
        port: u16,
        /// Certificate hash of its standby listener.
        cert_hash: String,
        /// The hash of a fresh rejoin secret ([`super::presence::rejoin_hash`]), published in
        /// the presence list for its next rejoin.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        rejoin_hash: String,
        /// With `player` != 0: the secret behind the hash the list published for that id
        /// ([`super::presence::proves`]).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        proof: String,
    },
    /// Host -> player: its player id.
    Welcome {
        /// The id.
        player: u32,
    },
    /// Host -> all: the presence list.
    Presence {
        /// The list.
        list: PresenceList,
    },
    /// Host -> all: the room state.
    Baseline {
        /// The state.
        baseline: Baseline,
    },
    /// Host -> all: the host is alive.
    Beat {
        /// Its term.
        term: u32,
    },
    /// Player -> host: place an object, held by the sender.
    Spawn {
        /// Its persist mode.
        persist: PersistMode,
        /// Where.
        pos: [f32; 3],
    },
    /// Player -> host: ask for ownership.
    Request {
        /// The object.
        entity: u32,
    },
    /// Player -> host: give ownership back.
    Release {
        /// The object.
        entity: u32,
    },
    /// Player -> host: move an object it holds.
    Move {
        /// The object.
        entity: u32,
        /// Its new position.
        pos: [f32; 3],
    },
    /// Host -> player: a request, release or move was refused.
    Denied {
        /// The object.
        entity: u32,
        /// Why (a [`crate::ownership::Denial`] name).
        reason: String,
    },
}

impl RoomMsg {
    /// The packet: [`MAGIC`] then the JSON text.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        // Serializing these plain structs cannot fail.
        serde_json::to_writer(&mut out, self).expect("host room message serializes");
        out
    }
}

fn text_ok(s: &str) -> bool {
    s.len() <= MAX_TEXT
}

fn pos_ok(p: &[f32; 3]) -> bool {
    p.iter().all(|v| v.is_finite())
}

/// Decodes and validates a packet.
pub fn decode(bytes: &[u8]) -> Result<RoomMsg, WireError> {
    if bytes.len() > MAX_MSG_LEN {
        return Err(WireError::TooLong(bytes.len()));
    }
    let body = bytes.strip_prefix(MAGIC).ok_or(WireError::NotOurs)?;
    let msg: RoomMsg = serde_json::from_slice(body).map_err(|e| WireError::Json(e.to_string()))?;
    match &msg {
        RoomMsg::Hello {
            address,
            cert_hash,
            rejoin_hash,
            proof,
            ..
        } => {
            if !text_ok(address) || !text_ok(cert_hash) {
                return Err(WireError::Range("address/cert_hash"));
            }
            if !is_rejoin_hash(rejoin_hash) || !text_ok(proof) {
                return Err(WireError::Range("rejoin_hash/proof"));
            }
        }
        RoomMsg::Presence { list } => {
            if list.players.len() > MAX_PLAYERS {
                return Err(WireError::Range("players"));
            }
            if list
                .players
                .iter()
                .any(|p| !text_ok(&p.address) || !text_ok(&p.cert_hash))
            {
                return Err(WireError::Range("address/cert_hash"));
            }
            if !list.players.iter().all(|p| is_rejoin_hash(&p.rejoin_hash)) {
                return Err(WireError::Range("rejoin_hash"));
            }
            if !list.is_consistent() {
                return Err(WireError::Range("list"));
            }
        }
        RoomMsg::Baseline { baseline } => {
            if baseline.objects.len() > MAX_OBJECTS {
                return Err(WireError::Range("objects"));
            }
            if !baseline.objects.iter().all(|o| pos_ok(&o.pos)) {
                return Err(WireError::Range("pos"));
            }
            let ascending = baseline
                .objects
                .windows(2)
                .all(|w| w[0].entity < w[1].entity);
            let below = baseline
                .objects
                .iter()
                .all(|o| o.entity < baseline.next_entity);
            if !ascending || !below {
                return Err(WireError::Range("objects"));
            }
        }
        RoomMsg::Spawn { pos, .. } | RoomMsg::Move { pos, .. } => {
            if !pos_ok(pos) {
                return Err(WireError::Range("pos"));
            }
        }
        RoomMsg::Denied { reason, .. } => {
            if !text_ok(reason) {
                return Err(WireError::Range("reason"));
            }
        }
        RoomMsg::Welcome { .. }
        | RoomMsg::Beat { .. }
        | RoomMsg::Request { .. }
        | RoomMsg::Release { .. } => {}
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn packets_are_pinned() {
        let m = RoomMsg::Move {
            entity: 7,
            pos: [1.5, 0.0, -2.0],
        };
        assert_eq!(
            m.encode(),
            br#"FHR1{"t":"move","entity":7,"pos":[1.5,0.0,-2.0]}"#.to_vec()
        );
        let b = RoomMsg::Baseline {
            baseline: Baseline {
                term: 2,
                next_entity: 4,
                objects: vec![RoomObject {
                    entity: 3,
                    persist: PersistMode::PlacedSaved,
                    holder: None,
                    pos: [0.25, 1.0, 2.0],
                }],
            },
        };
        let text = String::from_utf8(b.encode()).expect("utf-8");
        assert_eq!(
            text,
            r#"FHR1{"t":"baseline","baseline":{"term":2,"next_entity":4,"objects":[{"entity":3,"persist":"placed_saved","holder":null,"pos":[0.25,1.0,2.0]}]}}"#
        );
        assert_eq!(decode(&b.encode()), Ok(b));
    }

    #[test]
    fn bad_packets_get_typed_errors() {
        assert_eq!(
            decode(b"{\"t\":\"beat\",\"term\":1}"),
            Err(WireError::NotOurs)
        );
        assert!(matches!(
            decode(b"FHR1{\"t\":\"beat\"}"),
            Err(WireError::Json(_))
        ));
        assert!(
            matches!(
                decode(b"FHR1{\"t\":\"beat\",\"term\":1,\"x\":0}"),
                Err(WireError::Json(_))
            ),
            "unknown fields are refused"
        );
        assert!(matches!(
            decode(b"FHR1{\"t\":\"grant\"}"),
            Err(WireError::Json(_))
        ));
        let long = RoomMsg::Hello {
            player: 0,
            address: "a".repeat(MAX_TEXT + 1),
            port: 1,
            cert_hash: String::new(),
            rejoin_hash: String::new(),
            proof: String::new(),
        };
        assert_eq!(
            decode(&long.encode()),
            Err(WireError::Range("address/cert_hash"))
        );
        let not_a_hash = RoomMsg::Hello {
            player: 2,
            address: "a".into(),
            port: 1,
            cert_hash: String::new(),
            rejoin_hash: "not hex".into(),
            proof: "s".into(),
        };
        assert_eq!(
            decode(&not_a_hash.encode()),
            Err(WireError::Range("rejoin_hash/proof"))
        );
        let mut big = MAGIC.to_vec();
        big.resize(MAX_MSG_LEN + 1, b' ');
        assert_eq!(decode(&big), Err(WireError::TooLong(MAX_MSG_LEN + 1)));
        let unordered = RoomMsg::Baseline {
            baseline: Baseline {
                term: 1,
                next_entity: 9,
                objects: vec![
                    RoomObject {
                        entity: 2,
                        persist: PersistMode::PlacedRoom,
                        holder: None,
                        pos: [0.0; 3],
                    },
                    RoomObject {
                        entity: 1,
                        persist: PersistMode::PlacedRoom,
                        holder: None,
                        pos: [0.0; 3],
                    },
                ],
            },
        };
        assert_eq!(
            decode(&unordered.encode()),
            Err(WireError::Range("objects"))
        );
        let mut list = PresenceList::found("h".into(), 1, "c".into());
        list.host = 5;
        assert_eq!(
            decode(&RoomMsg::Presence { list }.encode()),
            Err(WireError::Range("list"))
        );
    }

    #[test]
    fn dump_names_every_field() {
        let b = Baseline {
            term: 1,
            next_entity: 3,
            objects: vec![
                RoomObject {
                    entity: 1,
                    persist: PersistMode::TransientHeld,
                    holder: Some(2),
                    pos: [1.0, 2.5, -3.0],
                },
                RoomObject {
                    entity: 2,
                    persist: PersistMode::PlacedRoom,
                    holder: None,
                    pos: [0.0; 3],
                },
            ],
        };
        assert_eq!(
            b.dump(),
            "1:transient_held:2:1,2.5,-3;2:placed_room:-:0,0,0"
        );
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_fail_without_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..200)
        ) {
            let mut b = MAGIC.to_vec();
            b.extend_from_slice(&tail);
            let _ = decode(&b);
            let _ = decode(&tail);
        }
    }
}
