//! Room save and load (issue 15, part 5): a zone configured with a room (`--room ID` or the
//! `room_id` property) keeps its `placed_saved` objects in the registry backend across
//! restarts.
//!
//! - **Credential**: the zone's operator API key (`--backend-api-key` or
//!   `FABRIC_BACKEND_API_KEY`, the one it registers with) and `backend_url`. The backend
//!   checks ReBAC on `room:<id>`: saving needs `save` (the account is the room's `owner` or an
//!   `editor`; the first save of a room nobody owns claims it), loading needs `load`. An API
//!   key and not the shard secret: the room belongs to the operator's account, outlives any
//!   one registration of the zone (a restarted zone gets a new shard and secret), and the
//!   backend's room routes take account credentials.
//! - **Load at start**: `start()` sends `GET /rooms/{id}/state`; until the answer is in, the
//!   zone does not tick or admit anyone and has not printed `FABRIC_ZONE_READY`. A saved
//!   document is validated whole ([`fabric_core::room_save::decode`]) and its entities are
//!   restored owned by the zone, held by nobody, persist mode `placed_saved` (an entity
//!   already here, e.g. from the journal, is kept as it is and marked `placed_saved`). A room
//!   never saved (404) is an empty room. A refused or unreadable document, a backend that
//!   refuses the key, or entities that do not fit stop the zone with nothing restored
//!   (`FABRIC_ZONE_FAILED zone_id=N reason=room`, exit code 1 for a zone process), like an
//!   unusable journal.
//! - **Save**: `save_room()` (GDScript) and every graceful shutdown (SIGINT/SIGTERM,
//!   `begin_shutdown`) send the zone's owned `placed_saved` entities (avatars never) to
//!   `POST /rooms/{id}/save`; the result comes back as the `room_saved` signal and a
//!   `FABRIC_ZONE_ROOM_SAVED` line. A shutdown waits for its save's answer (at most
//!   [`TIMEOUT`]) before it goes on.
//!
//! The HTTP calls run on the process's tokio runtime; the zone polls their result once a
//! frame, so the tick never waits on the backend. The entities are copied on the main thread
//! (a scan of the slots); the JSON is built and sent on the runtime.

use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::Duration;

use fabric_core::entity::Entity;
use fabric_core::ownership::PersistMode;
use fabric_core::room_save;
use fabric_core::slots::SlotState;
use fabric_net::http::{self, HttpError, Response};
use godot::global::Error;
use godot::prelude::*;

use super::FabricZone;
use super::config::last_arg;

/// How long a save or a load may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest `GET /rooms/{id}/state` answer read (the backend's 4 MiB document, plus its
/// envelope).
const MAX_STATE_REPLY: usize = 5 << 20;

/// What a backend call was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Load,
    Save { exit: bool, entities: usize },
}

/// The room of a zone and its backend call in flight.
#[derive(Debug, Default)]
pub(crate) struct ZoneRoom {
    /// The room id (empty: no room).
    id: String,
    pending: Option<(Call, Receiver<Result<Response, HttpError>>)>,
    /// The save of the graceful shutdown was started.
    exit_save_started: bool,
}

impl ZoneRoom {
    /// Whether the start's load is still in flight (the zone neither ticks nor admits).
    pub(crate) fn loading(&self) -> bool {
        matches!(self.pending, Some((Call::Load, _)))
    }
}

/// The room named by `--room ID` in `args`: `Ok(None)` when absent, an error for an id the
/// backend would refuse.
pub(crate) fn room_arg(args: &[String]) -> Result<Option<String>, String> {
    match last_arg(args, "--room") {
        Some(v) if !valid_room_id(&v) => {
            Err(format!("--room: `{v}` is not 1-128 of A-Z a-z 0-9 . _ -"))
        }
        v => Ok(v),
    }
}

/// What the backend accepts as a room id.
fn valid_room_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The backend's words for a refusal (`error.message`, else the status).
fn refusal(r: &Response) -> String {
    let msg = r.body["error"]["message"].as_str().unwrap_or("");
    format!("HTTP {} {} {msg}", r.status, r.error_code().unwrap_or(""))
        .trim_end()
        .to_owned()
}

/// What the answer to the start's load means: the entities to restore (none for a room
/// never saved) and the version, or why the zone must not start.
fn loaded_entities(r: Result<Response, HttpError>) -> Result<(Vec<Entity>, u64), String> {
    let r = r.map_err(|e| e.to_string())?;
    match r.status {
        200 => {
            let doc = room_save::decode(&r.body["state"]).map_err(|e| e.to_string())?;
            Ok((doc.entities, r.body["version"].as_u64().unwrap_or(0)))
        }
        404 if r.error_code() == Some("unknown_room") => Ok((Vec::new(), 0)),
        _ => Err(refusal(&r)),
    }
}

#[godot_api(secondary)]
impl FabricZone {
    /// Saves the room now: the zone's `placed_saved` entities go to the backend's
    /// `POST /rooms/{id}/save` in the background; `room_saved` tells the result. Returns false
    /// without a room, when not running, or while another room call is in flight.
    #[func]
    pub fn save_room(&mut self) -> bool {
        self.start_room_save(false)
    }

    /// Whether the room is still being loaded (the zone starts ticking after).
    #[func]
    pub fn is_room_loading(&self) -> bool {
        self.room.loading()
    }
}

impl FabricZone {
    /// The room configured: the `room_id` property, or `--room` in a zone process.
    fn configured_room(&self) -> Result<String, String> {
        let mut id = self.room_id.to_string();
        if self.use_command_line
            && let Some(a) = room_arg(&super::user_args())?
        {
            id = a;
        }
        if !id.is_empty() && !valid_room_id(&id) {
            return Err(format!("room `{id}` is not 1-128 of A-Z a-z 0-9 . _ -"));
        }
        if !id.is_empty() && (self.backend_url.is_empty() || self.api_key.is_empty()) {
            return Err(format!(
                "room `{id}` needs backend_url and an operator API key (--backend-api-key or FABRIC_BACKEND_API_KEY)"
            ));
        }
        Ok(id)
    }

    /// At start, after the runtime: sends the room's load when a room is configured. Returns
    /// whether the zone must wait for it, or `ERR_UNCONFIGURED`.
    pub(super) fn begin_room_load(&mut self) -> Result<bool, Error> {
        let id = self.configured_room().map_err(|e| {
            godot_error!("FabricZone {}: {e}", self.zone_id);
            Error::ERR_UNCONFIGURED
        })?;
        self.room = ZoneRoom {
            id: id.clone(),
            ..ZoneRoom::default()
        };
        if id.is_empty() {
            return Ok(false);
        }
        self.room_id = GString::from(&id);
        let backend = self.room_backend()?;
        let key = self.api_key.clone();
        let path = format!("/rooms/{id}/state");
        let (tx, rx) = mpsc::channel();
        fabric_net::runtime_handle().spawn(async move {
            let r = http::request_to_capped(
                &backend,
                "GET",
                &path,
                Some(&key),
                None,
                TIMEOUT,
                MAX_STATE_REPLY,
            )
            .await;
            let _ = tx.send(r);
        });
        self.room.pending = Some((Call::Load, rx));
        Ok(true)
    }

    /// The backend, pinned by `backend_cert_hash` for `https://` (as registration is).
    fn room_backend(&self) -> Result<http::Endpoint, Error> {
        super::config::backend_endpoint(
            &self.backend_url.to_string(),
            &self.backend_cert_hash.to_string(),
        )
        .map_err(|e| {
            godot_error!("FabricZone {}: room backend: {e}", self.zone_id);
            Error::ERR_UNCONFIGURED
        })
    }

    fn start_room_save(&mut self, exit: bool) -> bool {
        if self.room.id.is_empty() || self.room.pending.is_some() {
            return false;
        }
        let Some(rt) = self.runtime.as_ref() else {
            return false;
        };
        let table = &self.players.ownership.table;
        let avatars = &self.players.avatars;
        let saved: Vec<Entity> = rt
            .zone()
            .holdings()
            .filter(|h| h.state == SlotState::Owned)
            .filter(|h| table.persist_of(h.global_id) == PersistMode::PlacedSaved)
            .filter(|h| avatars.session_of(h.global_id).is_none())
            .filter_map(|h| rt.zone().entity(h.slot))
            .collect();
        let (room, zone, tick) = (
            self.room.id.clone(),
            self.zone_id.max(0) as u32,
            rt.zone().current_tick(),
        );
        let Ok(backend) = self.room_backend() else {
            return false;
        };
        let key = self.api_key.clone();
        let entities = saved.len();
        let (tx, rx) = mpsc::channel();
        fabric_net::runtime_handle().spawn(async move {
            let doc = room_save::encode(&room, zone, tick, &saved);
            let path = format!("/rooms/{room}/save");
            let r =
                http::request_to(&backend, "POST", &path, Some(&key), Some(&doc), TIMEOUT).await;
            let _ = tx.send(r);
        });
        self.room.pending = Some((Call::Save { exit, entities }, rx));
        true
    }

    /// Before a graceful shutdown goes on: starts the room's save once and says whether it is
    /// still in flight (the shutdown then waits).
    pub(super) fn room_exit_save_pending(&mut self) -> bool {
        if self.room.id.is_empty() || self.runtime.is_none() {
            return false;
        }
        if !self.room.exit_save_started {
            // A save already in flight (from `save_room`) is waited for, then the exit's own.
            if self.room.pending.is_none() {
                self.room.exit_save_started = self.start_room_save(true);
            }
            return true;
        }
        self.room.pending.is_some()
    }

    /// Once a frame: the answer of the backend call in flight, if it came.
    pub(super) fn poll_room(&mut self) {
        let Some((call, rx)) = self.room.pending.as_ref() else {
            return;
        };
        let call = *call;
        let result = match rx.try_recv() {
            Ok(r) => r,
            Err(TryRecvError::Empty) => return,
            Err(TryRecvError::Disconnected) => Err(HttpError::Io {
                url: self.backend_url.to_string(),
                reason: "the request task ended without an answer".into(),
            }),
        };
        self.room.pending = None;
        match call {
            Call::Load => self.finish_room_load(result),
            Call::Save { exit, entities } => self.finish_room_save(result, exit, entities),
        }
    }

    fn finish_room_save(&mut self, r: Result<Response, HttpError>, exit: bool, entities: usize) {
        let zone = self.zone_id;
        let room = self.room.id.clone();
        let outcome = match r {
            Ok(r) if r.status == 200 => Ok(r.body["version"].as_u64().unwrap_or(0)),
            Ok(r) => Err(refusal(&r)),
            Err(e) => Err(e.to_string()),
        };
        match &outcome {
            Ok(version) => {
                godot_print!(
                    "FABRIC_ZONE_ROOM_SAVED zone_id={zone} room={room} version={version} entities={entities} exit={exit}"
                );
            }
            Err(e) => {
                godot_error!("FabricZone {zone}: saving room {room}: {e}");
                godot_print!(
                    "FABRIC_ZONE_ROOM_SAVE_FAILED zone_id={zone} room={room} exit={exit} reason={e}"
                );
            }
        }
        let (ok, version, error) = match outcome {
            Ok(v) => (true, v as i64, String::new()),
            Err(e) => (false, 0, e),
        };
        self.signals()
            .room_saved()
            .emit(ok, version, entities as i64, &GString::from(&error));
    }

    fn finish_room_load(&mut self, r: Result<Response, HttpError>) {
        let zone = self.zone_id;
        let room = self.room.id.clone();
        let restored = loaded_entities(r).and_then(|(list, version)| {
            self.restore_room(&list)
                .map(|()| (list.len(), version))
                .map_err(|e| format!("{} entities do not fit: {e}", list.len()))
        });
        match restored {
            Ok((n, version)) => {
                godot_print!(
                    "FABRIC_ZONE_ROOM_LOADED zone_id={zone} room={room} version={version} entities={n}"
                );
                self.signals()
                    .room_loaded()
                    .emit(true, version as i64, n as i64, &GString::new());
                self.announce_ready();
            }
            Err(e) => {
                godot_error!("FabricZone {zone}: loading room {room}: {e}; not started");
                godot_print!("FABRIC_ZONE_FAILED zone_id={zone} reason=room");
                self.signals()
                    .room_loaded()
                    .emit(false, 0, 0, &GString::from(&e));
                self.stop();
                if self.process_zone {
                    self.base().get_tree().quit_ex().exit_code(1).done();
                }
            }
        }
    }

    /// Restores `list` owned by the zone, held by nobody, `placed_saved`: all or none.
    fn restore_room(&mut self, list: &[Entity]) -> Result<(), fabric_core::zone::SpawnError> {
        let Some(rt) = self.runtime.as_mut() else {
            return Ok(());
        };
        let mut added = Vec::with_capacity(list.len());
        for e in list {
            if rt.owned_slot(e.global_id).is_some() {
                continue;
            }
            match rt.restore(*e) {
                Ok(id) => added.push(id),
                Err(err) => {
                    for id in added {
                        rt.despawn(id);
                    }
                    return Err(err);
                }
            }
        }
        rt.publish();
        let table = &mut self.players.ownership.table;
        for e in list {
            table.set_persist(e.global_id, PersistMode::PlacedSaved);
        }
        self.flush_events();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn room_argument() {
        assert_eq!(room_arg(&args(&["--port", "0"])), Ok(None));
        assert_eq!(
            room_arg(&args(&["--room", "lobby-1"])),
            Ok(Some("lobby-1".into()))
        );
        assert_eq!(room_arg(&args(&["--room=a.b_c"])), Ok(Some("a.b_c".into())));
        for bad in ["", "a/b", "x y"] {
            let e = room_arg(&args(&["--room", bad])).unwrap_err();
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
        assert!(room_arg(&args(&["--room", &"r".repeat(129)])).is_err());
    }

    fn reply(status: u16, body: serde_json::Value) -> Result<Response, HttpError> {
        Ok(Response { status, body })
    }

    #[test]
    fn a_load_answer_is_a_room_or_a_reason_not_to_start() {
        let doc = room_save::encode("r", 0, 3, &[Entity::at(7, [Default::default(); 3])]);
        let (list, version) =
            loaded_entities(reply(200, json!({"version": 4, "state": doc}))).unwrap();
        assert_eq!((list.len(), list[0].global_id, version), (1, 7, 4));
        assert_eq!(
            loaded_entities(reply(404, json!({"error": {"code": "unknown_room"}}))),
            Ok((Vec::new(), 0)),
            "never saved: an empty room"
        );
        let e = loaded_entities(reply(
            403,
            json!({"error": {"code": "forbidden", "message": "may not load"}}),
        ))
        .unwrap_err();
        assert_eq!(e, "HTTP 403 forbidden may not load");
        let e = loaded_entities(reply(404, json!({}))).unwrap_err();
        assert!(e.starts_with("HTTP 404"), "a 404 of another kind: {e}");
        let bad = json!({"version": 1, "state": {"format": 1, "entities": [{"id": 0}]}});
        let e = loaded_entities(reply(200, bad)).unwrap_err();
        assert!(e.contains("entity 0"), "{e}");
        let e = loaded_entities(Err(HttpError::BadUrl("x".into()))).unwrap_err();
        assert!(e.contains("invalid backend URL"), "{e}");
    }
}
