//! Room saves: `POST /rooms/{id}/save` stores a room's save document as its next version,
//! `GET /rooms/{id}/state` returns the latest. The document is the room authority's (a zone's
//! placed-and-saved objects, their manifest ids and durable properties); the backend checks its
//! outline (a JSON object, `format` 1, an `entities` array), its size (`--max-room-bytes`) and
//! who may do what:
//!
//! - saving needs ReBAC `save` on `room:<id>` (an `editor` or the `owner`); the first account
//!   to save a room nobody owns becomes its owner (claimed atomically, as groups and maps are);
//! - loading needs `load` (a `viewer`, an `editor` or the `owner`); a room nobody owns has
//!   never been saved and is `404 unknown_room` to any account (so a zone starting a new room
//!   with its operator's key finds it empty instead of forbidden; it claims it with its first
//!   save).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use fabric_auth::{ObjectRef, Subject, Tuple};

use crate::blocking::off_worker;
use crate::error::ApiError;
use crate::extract::{ApiJson, Bearer, require_account};
use crate::model::{RoomSaved, RoomState};
use crate::state::Shared;

/// The save document format this backend accepts.
pub const ROOM_FORMAT: u64 = 1;
/// Most entities in one save document.
pub const MAX_ROOM_ENTITIES: usize = 65_536;

fn check_room_id(id: &str) -> Result<ObjectRef, ApiError> {
    if super::assets::valid_name(id) {
        Ok(ObjectRef::new("room", id))
    } else {
        Err(ApiError::invalid_field(
            "id",
            "use 1-128 of A-Z a-z 0-9 . _ -",
        ))
    }
}

/// Checks the outline of a save document; returns its entity count.
fn check_document(doc: &serde_json::Value) -> Result<usize, ApiError> {
    let obj = doc
        .as_object()
        .ok_or_else(|| ApiError::invalid_field("state", "a room save is a JSON object"))?;
    match obj.get("format").and_then(serde_json::Value::as_u64) {
        Some(ROOM_FORMAT) => {}
        _ => {
            return Err(ApiError::invalid_field(
                "format",
                "this backend stores room save format 1",
            ));
        }
    }
    let entities = obj
        .get("entities")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| ApiError::invalid_field("entities", "an array of the room's objects"))?;
    if entities.len() > MAX_ROOM_ENTITIES {
        return Err(ApiError::invalid_field(
            "entities",
            "at most 65536 objects in one save",
        ));
    }
    if let Some(bad) = entities.iter().position(|e| !e.is_object()) {
        return Err(ApiError::invalid_field(
            "entities",
            &format!("entity {bad} is not a JSON object"),
        ));
    }
    Ok(entities.len())
}

fn unknown_room(room: &ObjectRef) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_room",
        format!("{room} has no saved state"),
    )
}

pub(super) async fn save(
    State(st): State<Shared>,
    Path(id): Path<String>,
    bearer: Bearer,
    ApiJson(doc): ApiJson<serde_json::Value>,
) -> Result<Json<RoomSaved>, ApiError> {
    off_worker(move || {
        let room = check_room_id(&id)?;
        let account = require_account(&st, &bearer)?;
        let entities = check_document(&doc)?;
        if !super::permits(&st, &account, "save", &room)? {
            // Nobody owns it yet: the first saver claims it (one of racing claims wins).
            let claim = Tuple {
                object: room.clone(),
                relation: "owner".into(),
                subject: Subject::User(account.clone()),
            };
            if !st.store.claim_owner(&claim)? {
                return Err(ApiError::forbidden(format!(
                    "{account} may not save {room} (needs editor or owner)"
                )));
            }
            tracing::info!(%account, %room, "room claimed by its first save");
        }
        let text = doc.to_string();
        let version = st
            .store
            .put_room_state(&id, &text, &account, st.clock.now_ms())?;
        tracing::info!(%account, %room, version, entities, bytes = text.len(), "room saved");
        Ok(Json(RoomSaved {
            room: id,
            version,
            bytes: text.len() as u64,
            entities: entities as u64,
        }))
    })
    .await
}

pub(super) async fn state(
    State(st): State<Shared>,
    Path(id): Path<String>,
    bearer: Bearer,
) -> Result<Json<RoomState>, ApiError> {
    off_worker(move || {
        let room = check_room_id(&id)?;
        let account = require_account(&st, &bearer)?;
        if !super::permits(&st, &account, "load", &room)? {
            if st.store.subjects(&room, "owner")?.is_empty() {
                return Err(unknown_room(&room));
            }
            return Err(ApiError::forbidden(format!(
                "{account} may not load {room} (needs viewer, editor or owner)"
            )));
        }
        st.store
            .room_state(&id)?
            .map(Json)
            .ok_or_else(|| unknown_room(&room))
    })
    .await
}
