//! The room save document: what a zone writes to the registry backend's
//! `POST /rooms/{id}/save` and reads back from `GET /rooms/{id}/state` (issue 15, part 5).
//! Sans-IO: [`encode`] turns a zone's `placed_saved` entities into the JSON document,
//! [`decode`] validates a document whole and gives the entities back, or a typed
//! [`RoomDocError`] and nothing (a zone never starts with part of a room).
//!
//! ```json
//! {"format": 1, "room": "lobby", "zone": 0, "tick": 812,
//!  "entities": [{"id": 1073741825, "persist": "placed_saved", "class": 3,
//!                "position_um": ["1500000", "-250000.5", "0"],
//!                "velocity_um_per_tick": ["0", "0", "0"],
//!                "acceleration_um_per_tick2": ["0", "0", "0"],
//!                "payload": [50331648, 7, 0]}]}
//! ```
//!
//! - positions, velocities and accelerations are the zone's exact 64.64 fixed-point values
//!   in micrometres (per tick, per tick squared), written as decimal strings: a JSON number
//!   would go through an `f64` and lose bits; a restored entity is where it was saved, bit
//!   for bit;
//! - `payload` is the entity's durable property words (at most 14 `u32`; missing trailing
//!   words are 0); `class` is the manifest class id (`payload[0] >> 24`), written for
//!   readers and checked when present;
//! - `persist` is always `placed_saved`: only those are saved; a document naming another
//!   mode is refused (`transient_held` and `placed_room` objects never survive a restart);
//! - holders are not saved: a restored entity is owned by the zone, held by nobody.
//!
//! The backend checks the outline (`format` 1, an `entities` array of at most
//! [`MAX_ENTITIES`] objects, its size); this module checks every field.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::{Value, json};
use thiserror::Error;

use crate::coords::{Micros, Vec3};
use crate::entity::Entity;
use crate::entity_row::PAYLOAD_WORDS;
use crate::ownership::PersistMode;

/// The document format this module writes and reads.
pub const FORMAT: u64 = 1;
/// Most entities in one document (the backend's limit too).
pub const MAX_ENTITIES: usize = 65_536;

/// Why a room document was refused. Nothing of a refused document is used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RoomDocError {
    /// The document is not a JSON object.
    #[error("a room document is a JSON object")]
    NotObject,
    /// `format` is missing or not [`FORMAT`].
    #[error("room document format {0} is not 1")]
    Format(String),
    /// `entities` is missing or not an array.
    #[error("room document without an `entities` array")]
    NoEntities,
    /// More than [`MAX_ENTITIES`] entities.
    #[error("{0} entities in a room document: at most 65536")]
    TooMany(usize),
    /// An entity does not have the expected fields and types.
    #[error("entity {index}: {reason}")]
    Shape {
        /// Its index in `entities`.
        index: usize,
        /// What is wrong (serde's words).
        reason: String,
    },
    /// An entity id is 0 (no entity has id 0).
    #[error("entity {index}: id 0")]
    ZeroId {
        /// Its index in `entities`.
        index: usize,
    },
    /// Two entities have the same id.
    #[error("entity {index}: id {id} appears twice")]
    DuplicateId {
        /// The second one's index.
        index: usize,
        /// The id.
        id: u32,
    },
    /// An entity's persist mode is not `placed_saved`.
    #[error("entity {index}: persist mode `{found}`: a room save holds placed_saved objects only")]
    Persist {
        /// Its index in `entities`.
        index: usize,
        /// The mode found.
        found: String,
    },
    /// A coordinate is not a decimal number of micrometres within the 64.64 range.
    #[error("entity {index}: {field}: `{value}` is not a number of micrometres")]
    Coordinate {
        /// Its index in `entities`.
        index: usize,
        /// `position_um`, `velocity_um_per_tick` or `acceleration_um_per_tick2`.
        field: &'static str,
        /// The text found.
        value: String,
    },
    /// More than [`PAYLOAD_WORDS`] payload words.
    #[error("entity {index}: {len} payload words: at most 14")]
    Payload {
        /// Its index in `entities`.
        index: usize,
        /// Words found.
        len: usize,
    },
    /// `class` is not `payload[0] >> 24`.
    #[error("entity {index}: class {class} does not match its payload's class {payload_class}")]
    Class {
        /// Its index in `entities`.
        index: usize,
        /// The `class` field.
        class: u32,
        /// `payload[0] >> 24`.
        payload_class: u32,
    },
}

/// A decoded room document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomDocument {
    /// The room id written in it (informative; the backend keys rooms by URL).
    pub room: String,
    /// The zone that saved it.
    pub zone: u32,
    /// The zone tick of the save.
    pub tick: u64,
    /// The saved entities (`hlc` 0), in document order; all `placed_saved`.
    pub entities: Vec<Entity>,
}

/// The class (manifest) id of an entity: the top byte of its first payload word.
pub fn class_of(e: &Entity) -> u32 {
    e.payload[0] >> 24
}

fn coords(v: &Vec3) -> [String; 3] {
    v.map(|c| c.to_string())
}

/// The document for `entities` (the zone's `placed_saved` ones) of room `room`, saved by
/// zone `zone` at tick `tick`.
pub fn encode<'a>(
    room: &str,
    zone: u32,
    tick: u64,
    entities: impl IntoIterator<Item = &'a Entity>,
) -> Value {
    let list: Vec<Value> = entities
        .into_iter()
        .map(|e| {
            // Trailing zero words are left out: most payloads are short.
            let used = e.payload.iter().rposition(|&w| w != 0).map_or(0, |i| i + 1);
            json!({
                "id": e.global_id,
                "persist": PersistMode::PlacedSaved.name(),
                "class": class_of(e),
                "position_um": coords(&e.position),
                "velocity_um_per_tick": coords(&e.velocity),
                "acceleration_um_per_tick2": coords(&e.acceleration),
                "payload": &e.payload[..used],
            })
        })
        .collect();
    json!({"format": FORMAT, "room": room, "zone": zone, "tick": tick, "entities": list})
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntityFields {
    id: u32,
    persist: String,
    #[serde(default)]
    class: Option<u32>,
    position_um: [String; 3],
    #[serde(default)]
    velocity_um_per_tick: Option<[String; 3]>,
    #[serde(default)]
    acceleration_um_per_tick2: Option<[String; 3]>,
    #[serde(default)]
    payload: Vec<u32>,
}

fn parse_coords(
    index: usize,
    field: &'static str,
    v: Option<&[String; 3]>,
) -> Result<Vec3, RoomDocError> {
    let Some(v) = v else {
        return Ok([Micros::ZERO; 3]);
    };
    let mut out = [Micros::ZERO; 3];
    for (o, s) in out.iter_mut().zip(v) {
        *o = s
            .trim()
            .parse::<Micros>()
            .map_err(|_| RoomDocError::Coordinate {
                index,
                field,
                value: s.clone(),
            })?;
    }
    Ok(out)
}

fn decode_entity(index: usize, v: &Value) -> Result<Entity, RoomDocError> {
    let f = EntityFields::deserialize(v).map_err(|e| RoomDocError::Shape {
        index,
        reason: e.to_string(),
    })?;
    if f.id == 0 {
        return Err(RoomDocError::ZeroId { index });
    }
    if PersistMode::parse(&f.persist) != Some(PersistMode::PlacedSaved) {
        return Err(RoomDocError::Persist {
            index,
            found: f.persist,
        });
    }
    if f.payload.len() > PAYLOAD_WORDS {
        return Err(RoomDocError::Payload {
            index,
            len: f.payload.len(),
        });
    }
    let mut e = Entity::at(
        f.id,
        parse_coords(index, "position_um", Some(&f.position_um))?,
    );
    e.velocity = parse_coords(
        index,
        "velocity_um_per_tick",
        f.velocity_um_per_tick.as_ref(),
    )?;
    e.acceleration = parse_coords(
        index,
        "acceleration_um_per_tick2",
        f.acceleration_um_per_tick2.as_ref(),
    )?;
    e.payload[..f.payload.len()].copy_from_slice(&f.payload);
    if let Some(class) = f.class
        && class != class_of(&e)
    {
        return Err(RoomDocError::Class {
            index,
            class,
            payload_class: class_of(&e),
        });
    }
    Ok(e)
}

/// Validates room document `doc` whole: every entity, or a [`RoomDocError`] and none.
pub fn decode(doc: &Value) -> Result<RoomDocument, RoomDocError> {
    let obj = doc.as_object().ok_or(RoomDocError::NotObject)?;
    match obj.get("format") {
        Some(f) if f.as_u64() == Some(FORMAT) => {}
        Some(f) => return Err(RoomDocError::Format(f.to_string())),
        None => return Err(RoomDocError::Format("(missing)".into())),
    }
    let list = obj
        .get("entities")
        .and_then(Value::as_array)
        .ok_or(RoomDocError::NoEntities)?;
    if list.len() > MAX_ENTITIES {
        return Err(RoomDocError::TooMany(list.len()));
    }
    let mut seen = BTreeSet::new();
    let mut entities = Vec::with_capacity(list.len());
    for (index, v) in list.iter().enumerate() {
        let e = decode_entity(index, v)?;
        if !seen.insert(e.global_id) {
            return Err(RoomDocError::DuplicateId {
                index,
                id: e.global_id,
            });
        }
        entities.push(e);
    }
    Ok(RoomDocument {
        room: obj
            .get("room")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        zone: obj
            .get("zone")
            .and_then(Value::as_u64)
            .and_then(|z| u32::try_from(z).ok())
            .unwrap_or(0),
        tick: obj.get("tick").and_then(Value::as_u64).unwrap_or(0),
        entities,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn crate_at(id: u32, x_um: i64) -> Entity {
        let mut e = Entity::at(id, [Micros::from_num(x_um), Micros::ZERO, Micros::ZERO]);
        e.velocity = [Micros::from_bits(-3), Micros::ZERO, Micros::from_num(2.5)];
        e.payload[0] = (3 << 24) | 7;
        e.payload[2] = 9;
        e
    }

    #[test]
    fn encodes_the_pinned_document() {
        let doc = encode("lobby", 0, 812, &[crate_at(5, 1_500_000)]);
        let e = &doc["entities"][0];
        assert_eq!(doc["format"], 1);
        assert_eq!(doc["room"], "lobby");
        assert_eq!(doc["tick"], 812);
        assert_eq!(e["id"], 5);
        assert_eq!(e["persist"], "placed_saved");
        assert_eq!(e["class"], 3);
        assert_eq!(e["position_um"], json!(["1500000", "0", "0"]));
        assert_eq!(e["velocity_um_per_tick"][2], "2.5");
        assert_eq!(
            e["payload"],
            json!([(3 << 24) | 7, 0, 9]),
            "trailing zero words left out"
        );
    }

    #[test]
    fn round_trips_exactly() {
        let saved = vec![crate_at(5, 1_500_000), crate_at(6, -42)];
        let doc = encode("r", 2, 9, &saved);
        let text = doc.to_string();
        let back = decode(&serde_json::from_str(&text).unwrap()).expect("own document decodes");
        assert_eq!(back.entities, saved, "bit for bit");
        assert_eq!((back.room.as_str(), back.zone, back.tick), ("r", 2, 9));
    }

    #[test]
    fn an_empty_room_is_a_room() {
        let back = decode(&encode("r", 0, 0, &[])).unwrap();
        assert!(back.entities.is_empty());
    }

    /// `doc` with entity 0's field `k` set to `v` (or removed for `Value::Null`).
    fn with(k: &str, v: Value) -> Value {
        let mut doc = encode("r", 0, 1, &[crate_at(5, 10), crate_at(6, 20)]);
        let e = doc["entities"][1].as_object_mut().unwrap();
        if v.is_null() {
            e.remove(k);
        } else {
            e.insert(k.to_owned(), v);
        }
        doc
    }

    #[test]
    fn every_bad_field_is_a_typed_error_naming_the_entity() {
        use RoomDocError as E;
        type Check = fn(&RoomDocError) -> bool;
        let cases: Vec<(Value, Check)> = vec![
            (json!([1, 2]), |e| *e == E::NotObject),
            (
                json!({"format": 2, "entities": []}),
                |e| matches!(e, E::Format(f) if f == "2"),
            ),
            (json!({"entities": []}), |e| matches!(e, E::Format(_))),
            (json!({"format": 1}), |e| *e == E::NoEntities),
            (json!({"format": 1, "entities": {}}), |e| {
                *e == E::NoEntities
            }),
            (with("id", json!(0)), |e| *e == E::ZeroId { index: 1 }),
            (with("id", json!(5)), |e| {
                *e == E::DuplicateId { index: 1, id: 5 }
            }),
            (with("id", json!(-1)), |e| {
                matches!(e, E::Shape { index: 1, .. })
            }),
            (
                with("id", Value::Null),
                |e| matches!(e, E::Shape { index: 1, reason } if reason.contains("id")),
            ),
            (
                with("persist", json!("placed_room")),
                |e| matches!(e, E::Persist { index: 1, found } if found == "placed_room"),
            ),
            (with("persist", json!("transient_held")), |e| {
                matches!(e, E::Persist { .. })
            }),
            (with("position_um", json!(["1", "2"])), |e| {
                matches!(e, E::Shape { index: 1, .. })
            }),
            (with("position_um", json!([1, 2, 3])), |e| {
                matches!(e, E::Shape { index: 1, .. })
            }),
            (
                with("position_um", json!(["1", "NaN", "3"])),
                |e| matches!(e, E::Coordinate { index: 1, field: "position_um", value } if value == "NaN"),
            ),
            (
                with("velocity_um_per_tick", json!(["1e400", "0", "0"])),
                |e| {
                    matches!(
                        e,
                        E::Coordinate {
                            field: "velocity_um_per_tick",
                            ..
                        }
                    )
                },
            ),
            (
                with(
                    "acceleration_um_per_tick2",
                    json!(["99999999999999999999999", "0", "0"]),
                ),
                |e| matches!(e, E::Coordinate { .. }),
            ),
            (with("payload", json!(vec![0; 15])), |e| {
                *e == E::Payload { index: 1, len: 15 }
            }),
            (with("payload", json!([-1])), |e| {
                matches!(e, E::Shape { .. })
            }),
            (with("class", json!(4)), |e| {
                *e == E::Class {
                    index: 1,
                    class: 4,
                    payload_class: 3,
                }
            }),
            (
                with("holder", json!(12)),
                |e| matches!(e, E::Shape { reason, .. } if reason.contains("holder")),
            ),
        ];
        for (doc, ok) in cases {
            let err = decode(&doc).expect_err(&format!("refused: {doc}"));
            assert!(ok(&err), "{doc} gave {err:?}");
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn too_many_entities_are_refused_before_reading_them() {
        let doc = json!({"format": 1, "entities": vec![json!(0); MAX_ENTITIES + 1]});
        assert_eq!(decode(&doc), Err(RoomDocError::TooMany(MAX_ENTITIES + 1)));
    }

    #[test]
    fn optional_motion_and_payload_default_to_zero() {
        let doc = json!({"format": 1, "entities": [
            {"id": 9, "persist": "placed_saved", "position_um": ["-1.25", "2", "3"]}
        ]});
        let e = decode(&doc).unwrap().entities[0];
        assert_eq!(e.position[0], Micros::from_num(-1.25));
        assert_eq!(e.velocity, [Micros::ZERO; 3]);
        assert_eq!(e.payload, [0; PAYLOAD_WORDS]);
    }

    proptest! {
        #[test]
        fn any_fixed_point_value_round_trips(bits in any::<i128>(), id in 1u32.., w in any::<u32>()) {
            let mut e = Entity::at(id, [Micros::from_bits(bits), Micros::from_bits(-bits / 3), Micros::MIN]);
            e.velocity = [Micros::MAX, Micros::from_bits(bits / 7), Micros::ZERO];
            e.payload[13] = w;
            let text = encode("p", 0, 0, &[e]).to_string();
            let back = decode(&serde_json::from_str(&text).unwrap()).unwrap();
            prop_assert_eq!(back.entities, vec![e]);
        }

        #[test]
        fn arbitrary_json_never_panics(s in "\\PC{0,200}") {
            if let Ok(v) = serde_json::from_str::<Value>(&s) {
                let _ = decode(&v);
            }
        }
    }
}
