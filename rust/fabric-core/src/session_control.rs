//! Session control messages: small JSON datagrams between a client, the gateway and a zone.
//!
//! A session datagram whose first byte is `{` is a control message (UTF-8 JSON object, at most
//! [`MAX_CONTROL_LEN`] bytes, protocol version [`CONTROL_VERSION`]); any other first byte starts a
//! binary frame (see [`crate::packet_frame`]). The layouts are documented in
//! `docs/session-protocol.md`.
//!
//! Requests carry `"action"`, events carry `"event"`, and replies to a request carry the request's
//! `"id"` with `"ok"`. The cycle-1 ping is compatible with the original gateway:
//! `{"action":"ping","id":"c1-...","v":1}` is answered by `{"id":"c1-...","ok":true,"result":"pong"}`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::manifest::{FIRST_PROPERTY_WORD, LAST_PROPERTY_WORD, PropertyValue};
use thiserror::Error;

/// Version of the control message format carried in `"v"`.
pub const CONTROL_VERSION: u64 = 1;
/// Largest control message accepted, in bytes (fits a single QUIC datagram on any path).
pub const MAX_CONTROL_LEN: usize = 1024;
/// Longest request id accepted, in bytes.
pub const MAX_ID_LEN: usize = 64;
/// First byte of every control message.
pub const CONTROL_MARKER: u8 = b'{';

/// Application close codes of a session (QUIC application close), shared by every endpoint.
pub mod close_code {
    /// Normal close.
    pub const NORMAL: u32 = 0;
    /// The peer broke the session protocol (bad preamble, oversize message, malformed packet).
    pub const PROTOCOL: u32 = 1;
    /// The server is full or refusing new sessions.
    pub const REFUSED: u32 = 2;
    /// Something behind this server is unavailable (e.g. the gateway cannot reach the zone).
    pub const UPSTREAM: u32 = 3;
    /// The peer was not let in (missing or refused join token).
    pub const FORBIDDEN: u32 = 4;
}

/// Why a datagram is not a valid control message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ControlError {
    /// The datagram is longer than [`MAX_CONTROL_LEN`].
    #[error("control message is {0} bytes, the limit is {MAX_CONTROL_LEN}")]
    TooLong(usize),
    /// The datagram does not start with `{`.
    #[error("not a control message (first byte is not '{{')")]
    NotControl,
    /// The datagram is not a JSON object.
    #[error("control message is not a JSON object: {0}")]
    Json(String),
    /// `"v"` is missing or not a version this side speaks.
    #[error(
        "control message version {found:?} is not supported (this side speaks v{CONTROL_VERSION})"
    )]
    Version {
        /// The version found, if any.
        found: Option<u64>,
    },
    /// A field is missing or has the wrong type or range.
    #[error("control message field `{field}` is invalid: {reason}")]
    Field {
        /// The field name.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The message has neither a known `"action"`, a known `"event"`, nor is a reply.
    #[error("unknown control message kind `{0}`")]
    UnknownKind(String),
}

/// A decoded control message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlMessage {
    /// Client -> gateway: answered by the gateway itself with a [`ControlMessage::Reply`].
    Ping {
        /// Request id, echoed in the reply.
        id: String,
    },
    /// Client -> zone: asks the zone for its [`ControlMessage::Welcome`] (resent until one arrives).
    Hello {
        /// Request id.
        id: String,
        /// A join token from the registry (`fj1....`), required by zones that registered.
        token: Option<String>,
    },
    /// Client -> zone: the welcome arrived; the zone stops resending it.
    WelcomeAck {
        /// The session number the welcome carried.
        session: u64,
    },
    /// Client -> server: the client's multiplayer peer id (chosen by the client, like ENet).
    Join {
        /// Peer id, 2..=2^31-1.
        peer_id: u32,
    },
    /// Server -> client: the join was accepted; the client is now connected as `peer_id`.
    Joined {
        /// The accepted peer id.
        peer_id: u32,
    },
    /// Zone -> client: sent when a session opens and resent until acknowledged.
    Welcome {
        /// The zone's id.
        zone_id: u32,
        /// The zone's simulation tick when this was sent.
        tick: u64,
        /// The zone's number for this session.
        session: u64,
    },
    /// Reply to a request.
    Reply {
        /// The request id.
        id: String,
        /// `Ok(result)` or `Err(error text)`.
        result: Result<String, String>,
    },
    /// Client -> zone: the admitted client asks for its avatar (resent until `avatar` or
    /// `avatar_elsewhere` arrives; answered again with the same avatar when it has one).
    Spawn {
        /// Where, in whole micrometres (`"at":[x,y,z]` in metres on the wire); `None` = the
        /// zone's own spawn point.
        at: Option<[i64; 3]>,
    },
    /// Zone -> client: the avatar entity of this session.
    Avatar {
        /// Its global id.
        id: u32,
        /// The zone that created it.
        zone: u32,
    },
    /// Zone -> client: the spawn point belongs to another zone; ask that one.
    AvatarElsewhere {
        /// The zone that owns the spawn point.
        zone: u32,
        /// Its client address, when this zone knows it.
        address: Option<String>,
    },
    /// Zone -> client: commands of this session were refused since the last report (at most
    /// one report a second): reason name -> count.
    CommandsRefused {
        /// Refused commands per reason (only reasons with a count).
        counts: BTreeMap<String, u64>,
    },
    /// Client -> zone: asks to hold entity `entity` (answered with an `ownership` event).
    RequestOwnership {
        /// The entity's global id.
        entity: u32,
    },
    /// Client -> zone: gives entity `entity` back to the zone (answered with `ownership`
    /// `released`, or `denied` with reason `not_holder`).
    ReleaseOwnership {
        /// The entity's global id.
        entity: u32,
    },
    /// Zone -> client: an ownership change or answer ([`crate::ownership`]).
    Ownership {
        /// The entity's global id.
        entity: u32,
        /// What happened.
        state: OwnershipState,
        /// The holder's avatar id after the change (`null` on the wire when the zone holds it).
        holder: Option<u32>,
        /// Why (a denial's reason, or the cause of a release or take-back), at most 64 bytes.
        reason: Option<String>,
    },
    /// Zone -> client: this session's avatar was handed over to zone `zone` (reliable); the
    /// session may take it back there with [`ControlMessage::Claim`] and `ticket`.
    AvatarMoved {
        /// The avatar's global id.
        id: u32,
        /// The zone that holds it now.
        zone: u32,
        /// That zone's client address (`host:port`), when this zone knows it.
        address: Option<String>,
        /// Its certificate hashes (comma-separated), when known.
        cert_hash: Option<String>,
        /// The follow ticket (`fabric_auth::follow_ticket`).
        ticket: String,
    },
    /// Client -> zone: send this session the original fabric's replication (every entity of
    /// the zone as a 100-byte row, every tick; [`crate::original_scheme`]), the baseline ours
    /// is measured against. Answered with a reply `original_scheme`: `ok` or refused (the zone
    /// serves it to `--original-scheme-sessions` sessions at most, none by default).
    OriginalScheme,
    /// Client -> zone: bind this session to the avatar `id` that moved here, instead of
    /// spawning one (answered with `avatar`, or an error reply with id `claim`).
    Claim {
        /// The avatar's global id.
        id: u32,
        /// The ticket from `avatar_moved`.
        ticket: String,
    },
    /// Gateway -> client: the gateway followed the avatar to zone `zone` (informational; the
    /// replication packets that follow come from that zone's fresh view).
    ZoneChanged {
        /// The avatar's global id.
        id: u32,
        /// The zone now serving the session.
        zone: u32,
    },
    /// Something went wrong on the far side that ends the session (e.g. zone unavailable).
    Error {
        /// Stable machine-readable code, e.g. `zone_unavailable`.
        code: String,
        /// Human-readable explanation.
        message: String,
    },
    /// Zone -> client (reliable): the CMD_INSTANCE_ASSET numbered `request` made entity
    /// `entity`, and it is durable (its journal transaction committed; at once on a zone
    /// without a journal).
    Placed {
        /// The command's request number.
        request: u32,
        /// The instance's global id.
        entity: u32,
        /// The asset it instances.
        asset: u64,
    },
    /// Zone -> client (reliable): the CMD_INSTANCE_ASSET numbered `request` was refused.
    PlaceRefused {
        /// The command's request number.
        request: u32,
        /// Why: a refusal name (`unknown_asset`, `too_far`, `not_in_zone`, `no_capacity`,
        /// `not_here`), at most 64 bytes.
        reason: String,
    },
    /// Zone -> client (reliable): the late-join baseline of this session's view is complete
    /// at zone tick `tick`: every entity in its interest was sent and acked
    /// (`ClientView::baseline_done`). Sent once per view: on joining a zone and on each
    /// entering of another zone (`docs/protocol.md`, "Late join").
    BaselineDone {
        /// The zone tick at which the baseline was complete.
        tick: u64,
    },
    /// Zone -> client: replicated property words of entity `entity` (the replication manifest,
    /// [`crate::manifest`]): on the reliable stream for snapshots and `reliable_on_change`
    /// words, as a datagram for `high_rate_unreliable` ones. 1..=13 values, words strictly
    /// ascending.
    Properties {
        /// The entity's global id.
        entity: u32,
        /// The values.
        values: Vec<PropertyValue>,
    },
}

/// What an `ownership` event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnershipState {
    /// The entity is now held by `holder`.
    Granted,
    /// The request (or release) was refused; `reason` says why.
    Denied,
    /// The holder let go (or left); the zone holds the entity.
    Released,
    /// The server took the entity back from its holder.
    Revoked,
}

impl OwnershipState {
    /// Every state.
    pub const ALL: [OwnershipState; 4] = [
        OwnershipState::Granted,
        OwnershipState::Denied,
        OwnershipState::Released,
        OwnershipState::Revoked,
    ];

    /// The name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            OwnershipState::Granted => "granted",
            OwnershipState::Denied => "denied",
            OwnershipState::Released => "released",
            OwnershipState::Revoked => "revoked",
        }
    }
}

fn ownership_event(obj: &Map<String, Value>) -> Result<ControlMessage, ControlError> {
    let name = str_field(obj, "state")?;
    let state = OwnershipState::ALL
        .into_iter()
        .find(|s| s.name() == name)
        .ok_or(ControlError::Field {
            field: "state",
            reason: "not granted, denied, released or revoked",
        })?;
    let holder = match obj.get("holder") {
        None | Some(Value::Null) => None,
        Some(_) => Some(u32_field(obj, "holder")?),
    };
    let reason = match obj.get("reason") {
        None | Some(Value::Null) => None,
        Some(_) => Some(str_field(obj, "reason")?),
    };
    Ok(ControlMessage::Ownership {
        entity: u32_field(obj, "entity")?,
        state,
        holder,
        reason,
    })
}

/// The `values` of a `props` event: 1..=13 `[word, seq, value]` triples, words in 1..=13
/// strictly ascending, `value` within 32 bits.
fn property_values(obj: &Map<String, Value>) -> Result<Vec<PropertyValue>, ControlError> {
    let bad = |reason| ControlError::Field {
        field: "values",
        reason,
    };
    let list = obj
        .get("values")
        .and_then(Value::as_array)
        .ok_or(bad("missing or not an array"))?;
    if list.is_empty() || list.len() > usize::from(LAST_PROPERTY_WORD) {
        return Err(bad("not 1..=13 values"));
    }
    let mut out = Vec::with_capacity(list.len());
    let mut last = 0u8;
    for item in list {
        let triple = match item.as_array().map(Vec::as_slice) {
            Some([w, s, x]) => (w.as_u64(), s.as_u64(), x.as_u64()),
            _ => return Err(bad("a value is not [word, seq, value]")),
        };
        let (Some(word), Some(seq), Some(value)) = triple else {
            return Err(bad("a value is not three unsigned integers"));
        };
        let word = u8::try_from(word)
            .ok()
            .filter(|w| (FIRST_PROPERTY_WORD..=LAST_PROPERTY_WORD).contains(w))
            .ok_or(bad("a word is not in 1..=13"))?;
        if word <= last {
            return Err(bad("words are not strictly ascending"));
        }
        last = word;
        let value = u32::try_from(value).map_err(|_| bad("a value does not fit 32 bits"))?;
        out.push(PropertyValue { word, seq, value });
    }
    Ok(out)
}

fn str_field(obj: &Map<String, Value>, field: &'static str) -> Result<String, ControlError> {
    match obj.get(field) {
        Some(Value::String(s)) if s.len() <= MAX_ID_LEN => Ok(s.clone()),
        Some(Value::String(_)) => Err(ControlError::Field {
            field,
            reason: "longer than 64 bytes",
        }),
        Some(_) => Err(ControlError::Field {
            field,
            reason: "not a string",
        }),
        None => Err(ControlError::Field {
            field,
            reason: "missing",
        }),
    }
}

fn text_field(obj: &Map<String, Value>, field: &'static str) -> Result<String, ControlError> {
    match obj.get(field) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(ControlError::Field {
            field,
            reason: "not a string",
        }),
        None => Err(ControlError::Field {
            field,
            reason: "missing",
        }),
    }
}

fn u64_field(obj: &Map<String, Value>, field: &'static str) -> Result<u64, ControlError> {
    obj.get(field)
        .and_then(Value::as_u64)
        .ok_or(ControlError::Field {
            field,
            reason: "missing or not an unsigned integer",
        })
}

impl ControlMessage {
    /// True when `datagram` should be decoded as a control message rather than a binary frame.
    pub fn is_control(datagram: &[u8]) -> bool {
        datagram.first() == Some(&CONTROL_MARKER)
    }

    /// Decodes and validates one control message.
    pub fn decode(datagram: &[u8]) -> Result<Self, ControlError> {
        if datagram.len() > MAX_CONTROL_LEN {
            return Err(ControlError::TooLong(datagram.len()));
        }
        if !Self::is_control(datagram) {
            return Err(ControlError::NotControl);
        }
        let value: Value =
            serde_json::from_slice(datagram).map_err(|e| ControlError::Json(e.to_string()))?;
        let Value::Object(obj) = value else {
            return Err(ControlError::Json("top level is not an object".into()));
        };
        if let Some(action) = obj.get("action") {
            let action = action.as_str().ok_or(ControlError::Field {
                field: "action",
                reason: "not a string",
            })?;
            check_version(&obj)?;
            return match action {
                "ping" => Ok(Self::Ping {
                    id: str_field(&obj, "id")?,
                }),
                "hello" => Ok(Self::Hello {
                    id: str_field(&obj, "id")?,
                    token: token_field(&obj)?,
                }),
                "welcome_ack" => Ok(Self::WelcomeAck {
                    session: u64_field(&obj, "session")?,
                }),
                "join" => Ok(Self::Join {
                    peer_id: peer_id_field(&obj)?,
                }),
                "spawn" => Ok(Self::Spawn {
                    at: at_field(&obj)?,
                }),
                "request_ownership" => Ok(Self::RequestOwnership {
                    entity: u32_field(&obj, "entity")?,
                }),
                "release_ownership" => Ok(Self::ReleaseOwnership {
                    entity: u32_field(&obj, "entity")?,
                }),
                "original_scheme" => Ok(Self::OriginalScheme),
                "claim" => Ok(Self::Claim {
                    id: u32_field(&obj, "id")?,
                    ticket: long_field(&obj, "ticket", MAX_TICKET_FIELD_LEN)?,
                }),
                other => Err(ControlError::UnknownKind(truncate(other))),
            };
        }
        if let Some(event) = obj.get("event") {
            let event = event.as_str().ok_or(ControlError::Field {
                field: "event",
                reason: "not a string",
            })?;
            check_version(&obj)?;
            return match event {
                "welcome" => {
                    let zone_id = u64_field(&obj, "zone_id")?;
                    let zone_id = u32::try_from(zone_id).map_err(|_| ControlError::Field {
                        field: "zone_id",
                        reason: "does not fit 32 bits",
                    })?;
                    Ok(Self::Welcome {
                        zone_id,
                        tick: u64_field(&obj, "tick")?,
                        session: u64_field(&obj, "session")?,
                    })
                }
                "joined" => Ok(Self::Joined {
                    peer_id: peer_id_field(&obj)?,
                }),
                "avatar" => Ok(Self::Avatar {
                    id: u32_field(&obj, "id")?,
                    zone: u32_field(&obj, "zone")?,
                }),
                "avatar_elsewhere" => Ok(Self::AvatarElsewhere {
                    zone: u32_field(&obj, "zone")?,
                    address: match obj.get("address") {
                        None | Some(Value::Null) => None,
                        Some(_) => Some(str_field(&obj, "address")?),
                    },
                }),
                "avatar_moved" => Ok(Self::AvatarMoved {
                    id: u32_field(&obj, "id")?,
                    zone: u32_field(&obj, "zone")?,
                    address: optional(&obj, "address", MAX_ID_LEN)?,
                    cert_hash: optional(&obj, "cert_hash", MAX_HASHES_FIELD_LEN)?,
                    ticket: long_field(&obj, "ticket", MAX_TICKET_FIELD_LEN)?,
                }),
                "zone_changed" => Ok(Self::ZoneChanged {
                    id: u32_field(&obj, "id")?,
                    zone: u32_field(&obj, "zone")?,
                }),
                "commands_refused" => Ok(Self::CommandsRefused {
                    counts: counts_field(&obj)?,
                }),
                "ownership" => ownership_event(&obj),
                "placed" => Ok(Self::Placed {
                    request: u32_field(&obj, "request")?,
                    entity: u32_field(&obj, "entity")?,
                    asset: u64_field(&obj, "asset")?,
                }),
                "place_refused" => Ok(Self::PlaceRefused {
                    request: u32_field(&obj, "request")?,
                    reason: str_field(&obj, "reason")?,
                }),
                "baseline_done" => Ok(Self::BaselineDone {
                    tick: u64_field(&obj, "tick")?,
                }),
                "props" => Ok(Self::Properties {
                    entity: u32_field(&obj, "entity")?,
                    values: property_values(&obj)?,
                }),
                "error" => Ok(Self::Error {
                    code: str_field(&obj, "code")?,
                    message: text_field(&obj, "message")?,
                }),
                other => Err(ControlError::UnknownKind(truncate(other))),
            };
        }
        // A reply: {"id":..,"ok":true,"result":..} or {"id":..,"ok":false,"error":..}. The original
        // gateway's pong carries no "v", so replies do not require one.
        let id = str_field(&obj, "id")?;
        let ok = obj
            .get("ok")
            .and_then(Value::as_bool)
            .ok_or(ControlError::Field {
                field: "ok",
                reason: "missing or not a boolean",
            })?;
        let result = if ok {
            Ok(text_field(&obj, "result")?)
        } else {
            Err(text_field(&obj, "error")?)
        };
        Ok(Self::Reply { id, result })
    }

    /// Encodes the message as compact JSON bytes.
    pub fn encode(&self) -> Vec<u8> {
        let v = CONTROL_VERSION;
        let value = match self {
            Self::Ping { id } => json!({"action": "ping", "id": id, "v": v}),
            Self::Hello { id, token: None } => json!({"action": "hello", "id": id, "v": v}),
            Self::Hello { id, token: Some(t) } => {
                json!({"action": "hello", "id": id, "token": t, "v": v})
            }
            Self::WelcomeAck { session } => {
                json!({"action": "welcome_ack", "session": session, "v": v})
            }
            Self::Join { peer_id } => json!({"action": "join", "peer_id": peer_id, "v": v}),
            Self::Joined { peer_id } => json!({"event": "joined", "peer_id": peer_id, "v": v}),
            Self::Welcome {
                zone_id,
                tick,
                session,
            } => {
                json!({"event": "welcome", "zone_id": zone_id, "tick": tick, "session": session, "v": v})
            }
            Self::Reply { id, result: Ok(r) } => json!({"id": id, "ok": true, "result": r}),
            Self::Reply { id, result: Err(e) } => json!({"id": id, "ok": false, "error": e}),
            Self::Error { code, message } => {
                json!({"event": "error", "code": code, "message": message, "v": v})
            }
            Self::OriginalScheme => json!({"action": "original_scheme", "v": v}),
            Self::Spawn { at: None } => json!({"action": "spawn", "v": v}),
            Self::Spawn { at: Some(at) } => {
                let m = at.map(|um| um as f64 / 1e6);
                json!({"action": "spawn", "at": m, "v": v})
            }
            Self::Avatar { id, zone } => json!({"event": "avatar", "id": id, "zone": zone, "v": v}),
            Self::AvatarElsewhere { zone, address } => {
                json!({"event": "avatar_elsewhere", "zone": zone, "address": address, "v": v})
            }
            Self::CommandsRefused { counts } => {
                json!({"event": "commands_refused", "counts": counts, "v": v})
            }
            Self::RequestOwnership { entity } => {
                json!({"action": "request_ownership", "entity": entity, "v": v})
            }
            Self::ReleaseOwnership { entity } => {
                json!({"action": "release_ownership", "entity": entity, "v": v})
            }
            Self::Ownership {
                entity,
                state,
                holder,
                reason: None,
            } => {
                json!({"event": "ownership", "entity": entity, "state": state.name(), "holder": holder, "v": v})
            }
            Self::Ownership {
                entity,
                state,
                holder,
                reason: Some(r),
            } => {
                json!({"event": "ownership", "entity": entity, "state": state.name(), "holder": holder, "reason": r, "v": v})
            }
            Self::AvatarMoved {
                id,
                zone,
                address,
                cert_hash,
                ticket,
            } => json!({"event": "avatar_moved", "id": id, "zone": zone, "address": address,
                        "cert_hash": cert_hash, "ticket": ticket, "v": v}),
            Self::Claim { id, ticket } => {
                json!({"action": "claim", "id": id, "ticket": ticket, "v": v})
            }
            Self::ZoneChanged { id, zone } => {
                json!({"event": "zone_changed", "id": id, "zone": zone, "v": v})
            }
            Self::Placed {
                request,
                entity,
                asset,
            } => {
                json!({"event": "placed", "request": request, "entity": entity, "asset": asset, "v": v})
            }
            Self::PlaceRefused { request, reason } => {
                json!({"event": "place_refused", "request": request, "reason": reason, "v": v})
            }
            Self::BaselineDone { tick } => {
                json!({"event": "baseline_done", "tick": tick, "v": v})
            }
            Self::Properties { entity, values } => {
                let list: Vec<Value> = values
                    .iter()
                    .map(|p| json!([p.word, p.seq, p.value]))
                    .collect();
                json!({"event": "props", "entity": entity, "values": list, "v": v})
            }
        };
        serde_json::to_vec(&value).expect("a JSON value always serializes")
    }

    /// The reply the gateway gives to a ping with this id.
    pub fn pong(id: &str) -> Self {
        Self::Reply {
            id: id.to_owned(),
            result: Ok("pong".to_owned()),
        }
    }
}

/// Longest follow ticket accepted in `avatar_moved` and `claim`, in bytes (a version 2 ticket
/// carries a link credential: `fabric_auth::follow_ticket::MAX_TICKET_TEXT_LEN` is 476).
pub const MAX_TICKET_FIELD_LEN: usize = 512;
/// Longest `cert_hash` list accepted in `avatar_moved`, in bytes.
pub const MAX_HASHES_FIELD_LEN: usize = 200;

/// A string field of at most `max` bytes.
fn long_field(
    obj: &Map<String, Value>,
    field: &'static str,
    max: usize,
) -> Result<String, ControlError> {
    let s = text_field(obj, field)?;
    if s.len() > max {
        return Err(ControlError::Field {
            field,
            reason: "too long",
        });
    }
    Ok(s)
}

/// A string field of at most `max` bytes, or null / absent.
fn optional(
    obj: &Map<String, Value>,
    field: &'static str,
    max: usize,
) -> Result<Option<String>, ControlError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => long_field(obj, field, max).map(Some),
    }
}

/// Longest join token accepted in a control message, in bytes.
pub const MAX_TOKEN_LEN: usize = 900;

fn token_field(obj: &Map<String, Value>) -> Result<Option<String>, ControlError> {
    match obj.get("token") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(t)) if t.len() <= MAX_TOKEN_LEN => Ok(Some(t.clone())),
        Some(Value::String(_)) => Err(ControlError::Field {
            field: "token",
            reason: "longer than 900 bytes",
        }),
        Some(_) => Err(ControlError::Field {
            field: "token",
            reason: "not a string",
        }),
    }
}

fn peer_id_field(obj: &Map<String, Value>) -> Result<u32, ControlError> {
    match u64_field(obj, "peer_id")? {
        id @ 2..=0x7fff_ffff => Ok(id as u32),
        _ => Err(ControlError::Field {
            field: "peer_id",
            reason: "not in 2..=2147483647",
        }),
    }
}

fn u32_field(obj: &Map<String, Value>, field: &'static str) -> Result<u32, ControlError> {
    u32::try_from(u64_field(obj, field)?).map_err(|_| ControlError::Field {
        field,
        reason: "does not fit 32 bits",
    })
}

/// Largest spawn coordinate accepted, metres: `2^50` micrometres (about 1.1 million km). Up
/// to there, micrometres -> metres (f64) -> micrometres is exact, so a decoded `spawn`
/// re-encodes to the same message (at `2^53` micrometres the round trip was off by up to 2).
pub const MAX_SPAWN_METRES: f64 = (1u64 << 50) as f64 / 1e6;

fn at_field(obj: &Map<String, Value>) -> Result<Option<[i64; 3]>, ControlError> {
    let bad = |reason| ControlError::Field {
        field: "at",
        reason,
    };
    let list = match obj.get("at") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(list)) if list.len() == 3 => list,
        Some(_) => return Err(bad("not an array of 3 numbers")),
    };
    let mut at = [0i64; 3];
    for (o, v) in at.iter_mut().zip(list) {
        let m = v.as_f64().ok_or(bad("not an array of 3 numbers"))?;
        if !m.is_finite() || m.abs() > MAX_SPAWN_METRES {
            return Err(bad("coordinate out of range"));
        }
        *o = (m * 1e6).round() as i64;
    }
    Ok(Some(at))
}

/// Most reasons a `commands_refused` report may carry.
const MAX_REASONS: usize = 16;

fn counts_field(obj: &Map<String, Value>) -> Result<BTreeMap<String, u64>, ControlError> {
    let bad = |reason| ControlError::Field {
        field: "counts",
        reason,
    };
    let Some(Value::Object(m)) = obj.get("counts") else {
        return Err(bad("missing or not an object"));
    };
    if m.len() > MAX_REASONS {
        return Err(bad("too many reasons"));
    }
    m.iter()
        .map(|(k, v)| {
            let n = v
                .as_u64()
                .ok_or(bad("a count is not an unsigned integer"))?;
            Ok((truncate(k), n))
        })
        .collect()
}

fn check_version(obj: &Map<String, Value>) -> Result<(), ControlError> {
    match obj.get("v").and_then(Value::as_u64) {
        Some(CONTROL_VERSION) => Ok(()),
        found => Err(ControlError::Version { found }),
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ping_is_the_original_cycle1_format() {
        let raw = br#"{"action":"ping","id":"c1-1746600000","v":1}"#;
        let msg = ControlMessage::decode(raw).expect("valid ping");
        assert_eq!(
            msg,
            ControlMessage::Ping {
                id: "c1-1746600000".into()
            }
        );
        let pong = ControlMessage::pong("c1-1746600000").encode();
        assert_eq!(
            std::str::from_utf8(&pong).unwrap(),
            r#"{"id":"c1-1746600000","ok":true,"result":"pong"}"#,
            "pong must match the original gateway's reply byte for byte"
        );
    }

    #[test]
    fn every_message_round_trips() {
        let all = [
            ControlMessage::Ping { id: "a".into() },
            ControlMessage::Hello {
                id: "h-1".into(),
                token: None,
            },
            ControlMessage::Hello {
                id: "h-2".into(),
                token: Some("fj1.abc.def".into()),
            },
            ControlMessage::WelcomeAck { session: 7 },
            ControlMessage::Join { peer_id: 12345 },
            ControlMessage::Joined { peer_id: 2 },
            ControlMessage::Welcome {
                zone_id: 3,
                tick: 12345,
                session: 9,
            },
            ControlMessage::pong("x"),
            ControlMessage::Reply {
                id: "y".into(),
                result: Err("nope".into()),
            },
            ControlMessage::Error {
                code: "zone_unavailable".into(),
                message: "zone 127.0.0.1:7443 refused".into(),
            },
            ControlMessage::Spawn { at: None },
            ControlMessage::OriginalScheme,
            ControlMessage::Spawn {
                at: Some([1_500_000, 0, -2_000_001]),
            },
            ControlMessage::Avatar {
                id: 0x8000_0001,
                zone: 2,
            },
            ControlMessage::AvatarElsewhere {
                zone: 1,
                address: None,
            },
            ControlMessage::AvatarElsewhere {
                zone: 1,
                address: Some("127.0.0.1:7443".into()),
            },
            ControlMessage::CommandsRefused {
                counts: [("speed".to_owned(), 3), ("rate".to_owned(), 9000)].into(),
            },
            ControlMessage::AvatarMoved {
                id: 7,
                zone: 2,
                address: Some("127.0.0.1:7444".into()),
                cert_hash: Some("a,b".into()),
                ticket: "RlQB".into(),
            },
            ControlMessage::AvatarMoved {
                id: 7,
                zone: 2,
                address: None,
                cert_hash: None,
                ticket: "RlQB".into(),
            },
            ControlMessage::Claim {
                id: 7,
                ticket: "RlQB".into(),
            },
            ControlMessage::ZoneChanged { id: 7, zone: 2 },
            ControlMessage::Placed {
                request: 4_000_000_000,
                entity: 0x4000_0001,
                asset: u64::MAX,
            },
            ControlMessage::PlaceRefused {
                request: 3,
                reason: "too_far".into(),
            },
        ];
        for m in all {
            let bytes = m.encode();
            assert!(ControlMessage::is_control(&bytes), "{m:?} starts with '{{'");
            assert!(bytes.len() <= MAX_CONTROL_LEN);
            assert_eq!(ControlMessage::decode(&bytes), Ok(m.clone()), "{m:?}");
        }
    }

    #[test]
    fn placed_is_pinned_and_validated() {
        let placed = ControlMessage::Placed {
            request: 7,
            entity: 9,
            asset: 0x1_0000_0002,
        };
        assert_eq!(
            std::str::from_utf8(&placed.encode()).unwrap(),
            r#"{"asset":4294967298,"entity":9,"event":"placed","request":7,"v":1}"#
        );
        assert_eq!(
            ControlMessage::decode(
                br#"{"event":"placed","request":4294967296,"entity":9,"asset":1,"v":1}"#
            ),
            Err(ControlError::Field {
                field: "request",
                reason: "does not fit 32 bits"
            })
        );
        assert_eq!(
            ControlMessage::decode(br#"{"event":"placed","request":1,"entity":9,"v":1}"#),
            Err(ControlError::Field {
                field: "asset",
                reason: "missing or not an unsigned integer"
            })
        );
        assert!(matches!(
            ControlMessage::decode(br#"{"event":"place_refused","request":1,"reason":5,"v":1}"#),
            Err(ControlError::Field {
                field: "reason",
                ..
            })
        ));
    }

    #[test]
    fn bad_input_gets_a_precise_error() {
        let cases: &[(&[u8], ControlError)] = &[
            (b"\x01abc", ControlError::NotControl),
            (
                br#"{"action":"ping","id":"a"}"#,
                ControlError::Version { found: None },
            ),
            (
                br#"{"action":"ping","id":"a","v":2}"#,
                ControlError::Version { found: Some(2) },
            ),
            (
                br#"{"action":"ping","v":1}"#,
                ControlError::Field {
                    field: "id",
                    reason: "missing",
                },
            ),
            (
                br#"{"action":"ping","id":5,"v":1}"#,
                ControlError::Field {
                    field: "id",
                    reason: "not a string",
                },
            ),
            (
                br#"{"action":"join","peer_id":1,"v":1}"#,
                ControlError::Field {
                    field: "peer_id",
                    reason: "not in 2..=2147483647",
                },
            ),
            (
                br#"{"action":"fly","id":"a","v":1}"#,
                ControlError::UnknownKind("fly".into()),
            ),
            (
                br#"{"event":"welcome","zone_id":4294967296,"tick":1,"session":1,"v":1}"#,
                ControlError::Field {
                    field: "zone_id",
                    reason: "does not fit 32 bits",
                },
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(
                ControlMessage::decode(raw).as_ref(),
                Err(want),
                "input {:?}",
                String::from_utf8_lossy(raw)
            );
        }
        for (raw, field) in [
            (&br#"{"action":"spawn","at":[1,2],"v":1}"#[..], "at"),
            (br#"{"action":"spawn","at":[1,2,"x"],"v":1}"#, "at"),
            (br#"{"action":"spawn","at":[1,2,1e300],"v":1}"#, "at"),
            (br#"{"event":"avatar","id":-1,"zone":0,"v":1}"#, "id"),
            (
                br#"{"event":"commands_refused","counts":{"a":-1},"v":1}"#,
                "counts",
            ),
            (br#"{"event":"commands_refused","v":1}"#, "counts"),
        ] {
            assert!(
                matches!(ControlMessage::decode(raw), Err(ControlError::Field { field: f, .. }) if f == field),
                "{} is refused on `{field}`",
                String::from_utf8_lossy(raw)
            );
        }
        assert_eq!(
            ControlMessage::decode(br#"{"action":"spawn","at":[1.5,0,-2],"v":1}"#),
            Ok(ControlMessage::Spawn {
                at: Some([1_500_000, 0, -2_000_000])
            }),
            "spawn points are metres on the wire, micrometres decoded"
        );
        let long = format!(r#"{{"action":"ping","id":"{}","v":1}}"#, "x".repeat(65));
        assert!(matches!(
            ControlMessage::decode(long.as_bytes()),
            Err(ControlError::Field { field: "id", .. })
        ));
        let huge = vec![b'{'; MAX_CONTROL_LEN + 1];
        assert_eq!(
            ControlMessage::decode(&huge),
            Err(ControlError::TooLong(MAX_CONTROL_LEN + 1))
        );
        assert!(matches!(
            ControlMessage::decode(b"{not json"),
            Err(ControlError::Json(_))
        ));
    }

    #[test]
    fn baseline_done_is_pinned() {
        let m = ControlMessage::BaselineDone { tick: 1234 };
        let wire = br#"{"event":"baseline_done","tick":1234,"v":1}"#;
        assert_eq!(m.encode(), wire.to_vec());
        assert_eq!(ControlMessage::decode(wire), Ok(m));
        for bad in [
            &br#"{"event":"baseline_done","v":1}"#[..],
            br#"{"event":"baseline_done","tick":-1,"v":1}"#,
            br#"{"event":"baseline_done","tick":"5","v":1}"#,
        ] {
            assert!(
                ControlMessage::decode(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn props_are_pinned_and_validated() {
        let m = ControlMessage::Properties {
            entity: 5,
            values: vec![
                PropertyValue {
                    word: 1,
                    seq: 102,
                    value: 9,
                },
                PropertyValue {
                    word: 13,
                    seq: 1 << 40,
                    value: u32::MAX,
                },
            ],
        };
        let wire = br#"{"entity":5,"event":"props","v":1,"values":[[1,102,9],[13,1099511627776,4294967295]]}"#;
        assert_eq!(m.encode(), wire.to_vec());
        assert_eq!(ControlMessage::decode(wire), Ok(m));
        for bad in [
            &br#"{"entity":5,"event":"props","v":1}"#[..],
            br#"{"entity":5,"event":"props","v":1,"values":[]}"#,
            br#"{"entity":5,"event":"props","v":1,"values":[[0,1,1]]}"#,
            br#"{"entity":5,"event":"props","v":1,"values":[[14,1,1]]}"#,
            br#"{"entity":5,"event":"props","v":1,"values":[[2,1,1],[2,1,1]]}"#,
            br#"{"entity":5,"event":"props","v":1,"values":[[3,1,1],[2,1,1]]}"#,
            br#"{"entity":5,"event":"props","v":1,"values":[[1,1,4294967296]]}"#,
            br#"{"entity":5,"event":"props","v":1,"values":[[1,-1,1]]}"#,
            br#"{"entity":5,"event":"props","v":1,"values":[[1,1]]}"#,
            br#"{"entity":5,"event":"props","v":1,"values":[[1,1,1.5]]}"#,
            br#"{"entity":-5,"event":"props","v":1,"values":[[1,1,1]]}"#,
            br#"{"entity":5,"event":"props","v":1,"values":{"1":[1,1]}}"#,
        ] {
            assert!(
                ControlMessage::decode(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn ownership_messages_are_pinned() {
        let pinned: [(&[u8], ControlMessage); 5] = [
            (
                br#"{"action":"request_ownership","entity":42,"v":1}"#,
                ControlMessage::RequestOwnership { entity: 42 },
            ),
            (
                br#"{"action":"release_ownership","entity":42,"v":1}"#,
                ControlMessage::ReleaseOwnership { entity: 42 },
            ),
            (
                br#"{"entity":42,"event":"ownership","holder":7,"state":"granted","v":1}"#,
                ControlMessage::Ownership {
                    entity: 42,
                    state: OwnershipState::Granted,
                    holder: Some(7),
                    reason: None,
                },
            ),
            (
                br#"{"entity":42,"event":"ownership","holder":7,"reason":"held","state":"denied","v":1}"#,
                ControlMessage::Ownership {
                    entity: 42,
                    state: OwnershipState::Denied,
                    holder: Some(7),
                    reason: Some("held".into()),
                },
            ),
            (
                br#"{"entity":42,"event":"ownership","holder":null,"reason":"holder_left","state":"released","v":1}"#,
                ControlMessage::Ownership {
                    entity: 42,
                    state: OwnershipState::Released,
                    holder: None,
                    reason: Some("holder_left".into()),
                },
            ),
        ];
        for (raw, msg) in pinned {
            assert_eq!(ControlMessage::decode(raw).as_ref(), Ok(&msg), "decodes");
            assert_eq!(
                String::from_utf8(msg.encode()).unwrap(),
                std::str::from_utf8(raw).unwrap(),
                "encodes byte for byte"
            );
        }
        let revoked = ControlMessage::Ownership {
            entity: 1,
            state: OwnershipState::Revoked,
            holder: None,
            reason: Some("server".into()),
        };
        assert_eq!(ControlMessage::decode(&revoked.encode()), Ok(revoked));
        for bad in [
            &br#"{"action":"request_ownership","v":1}"#[..],
            br#"{"action":"request_ownership","entity":-1,"v":1}"#,
            br#"{"action":"release_ownership","entity":4294967296,"v":1}"#,
            br#"{"entity":1,"event":"ownership","state":"stolen","v":1}"#,
            br#"{"entity":1,"event":"ownership","holder":"me","state":"granted","v":1}"#,
            br#"{"entity":1,"event":"ownership","reason":5,"state":"denied","v":1}"#,
        ] {
            assert!(
                matches!(ControlMessage::decode(bad), Err(ControlError::Field { .. })),
                "{} is refused with a field error",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn follow_messages_are_pinned_and_validated() {
        let moved = ControlMessage::AvatarMoved {
            id: 9,
            zone: 1,
            address: Some("127.0.0.1:7444".into()),
            cert_hash: None,
            ticket: "RlQB".into(),
        };
        assert_eq!(
            std::str::from_utf8(&moved.encode()).unwrap(),
            r#"{"address":"127.0.0.1:7444","cert_hash":null,"event":"avatar_moved","id":9,"ticket":"RlQB","v":1,"zone":1}"#
        );
        let long = format!(
            r#"{{"action":"claim","id":1,"ticket":"{}","v":1}}"#,
            "x".repeat(MAX_TICKET_FIELD_LEN + 1)
        );
        assert!(matches!(
            ControlMessage::decode(long.as_bytes()),
            Err(ControlError::Field {
                field: "ticket",
                ..
            })
        ));
        for (raw, field) in [
            (&br#"{"action":"claim","ticket":"t","v":1}"#[..], "id"),
            (br#"{"action":"claim","id":1,"v":1}"#, "ticket"),
            (
                br#"{"action":"claim","id":4294967296,"ticket":"t","v":1}"#,
                "id",
            ),
            (
                br#"{"event":"avatar_moved","id":1,"zone":1,"v":1}"#,
                "ticket",
            ),
            (
                br#"{"event":"avatar_moved","id":1,"zone":1,"address":5,"ticket":"t","v":1}"#,
                "address",
            ),
            (br#"{"event":"zone_changed","id":1,"v":1}"#, "zone"),
        ] {
            assert!(
                matches!(ControlMessage::decode(raw), Err(ControlError::Field { field: f, .. }) if f == field),
                "{} is refused on `{field}`",
                String::from_utf8_lossy(raw)
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..1100)) {
            let _ = ControlMessage::decode(&data);
        }

        #[test]
        fn arbitrary_json_objects_never_panic(
            action in "[a-z_]{0,12}", id in ".{0,70}", v in 0u64..4, session in any::<u64>()
        ) {
            let raw = json!({"action": action, "id": id, "v": v, "session": session}).to_string();
            let _ = ControlMessage::decode(raw.as_bytes());
        }
    }
}
