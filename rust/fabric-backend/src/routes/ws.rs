//! `GET /ws`: the push channel. Client frames are JSON text:
//!
//! ```json
//! {"op":"subscribe","topic":"zone:<id>"}    -> {"type":"subscribed","topic":…,"zone":{…}}
//! {"op":"subscribe","topic":"zone:<id>","credential":"fss_…"|"fak_…"}
//! {"op":"unsubscribe","topic":"zone:<id>"}  -> {"type":"unsubscribed","topic":…}
//! {"op":"ping"}                             -> {"type":"pong"}
//! anything else                             -> {"type":"error","code":…,"message":…}
//! ```
//!
//! Pushes (see [`crate::push`]) arrive on the same socket. The connection is not a liveness
//! signal for zones: only `PUT /shards/{id}` is.
//!
//! **Who may subscribe.** Anyone to a public zone's topic (what it pushes is what `GET /shards`
//! lists). A private zone's topic needs a credential, in the frame's `credential` or as
//! `Authorization: Bearer` on the upgrade request: the zone's own shard secret, or the API key
//! of an account with `join` permission on the zone (its owner, its joiners). Otherwise the
//! reply is `forbidden` (or `invalid_credentials` for an unknown key), and nothing is pushed.

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::IntoResponse as _;
use axum::response::Response;
use futures_util::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::blocking::off_worker;
use crate::error::ApiError;
use crate::extract::{Bearer, account_for};
use crate::listen::ConnectionSlot;
use crate::model::{ShardRecord, ShardView};
use crate::secrets::{SHARD_SECRET_PREFIX, hash_secret};
use crate::state::Shared;
use fabric_auth::ObjectRef;

/// Largest client frame accepted.
const MAX_FRAME: usize = 4096;

pub(super) async fn upgrade(
    State(st): State<Shared>,
    bearer: Bearer,
    slot: Option<Extension<ConnectionSlot>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            return ApiError::new(
                rejection.status(),
                "websocket_upgrade_required",
                rejection.body_text(),
            )
            .into_response();
        }
    };
    ws.max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |socket| async move {
            // The session holds its connection's slot: WebSocket sessions count toward
            // --max-connections like any open connection.
            let _slot = slot;
            session(st, socket, bearer.0).await
        })
}

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum ClientFrame {
    Subscribe {
        topic: String,
        #[serde(default)]
        credential: Option<String>,
    },
    Unsubscribe {
        topic: String,
    },
    Ping,
}

fn error(code: &str, message: &str) -> String {
    json!({"type": "error", "code": code, "message": message}).to_string()
}

fn zone_of(topic: &str) -> Option<Uuid> {
    topic
        .strip_prefix("zone:")
        .and_then(|id| Uuid::parse_str(id).ok())
}

/// Whether `credential` may read the pushes of `shard` (see the module documentation).
fn may_subscribe(
    st: &Shared,
    shard: &ShardRecord,
    credential: Option<&str>,
) -> Result<(), ApiError> {
    if shard.public {
        return Ok(());
    }
    let forbidden = || {
        ApiError::forbidden(
            "a private zone's topic needs its shard secret or the API key of an account that may join it",
        )
    };
    let credential = credential.ok_or_else(forbidden)?;
    if credential.starts_with(SHARD_SECRET_PREFIX) {
        return if hash_secret(credential) == shard.secret_hash {
            Ok(())
        } else {
            Err(forbidden())
        };
    }
    let account = account_for(st, credential)?;
    let zone = ObjectRef::new("zone", shard.id.to_string());
    if super::permits(st, &account, "join", &zone)? {
        Ok(())
    } else {
        tracing::info!(%account, zone = %shard.id, "subscription refused");
        Err(forbidden())
    }
}

fn handle(
    st: &Shared,
    conn: u64,
    tx: &mpsc::Sender<crate::hub::Message>,
    bearer: Option<&str>,
    text: &str,
) -> String {
    let frame: ClientFrame = match serde_json::from_str(text) {
        Ok(f) => f,
        Err(e) if e.is_syntax() || e.is_eof() => return error("malformed_json", &e.to_string()),
        Err(e) => return error("invalid_body", &e.to_string()),
    };
    match frame {
        ClientFrame::Ping => json!({"type": "pong"}).to_string(),
        ClientFrame::Subscribe { topic, credential } => {
            let Some(id) = zone_of(&topic) else {
                return error("bad_topic", "topics are zone:<uuid>");
            };
            match st.store.shard(id) {
                Ok(Some(shard)) => {
                    if let Err(e) = may_subscribe(st, &shard, credential.as_deref().or(bearer)) {
                        return error(e.code, &e.message);
                    }
                    st.hub.subscribe(conn, &topic, tx);
                    json!({"type": "subscribed", "topic": topic, "zone": ShardView::from(&shard)})
                        .to_string()
                }
                Ok(None) => error("unknown_shard", &format!("no shard {id}")),
                Err(e) => {
                    tracing::error!(error = %e, "store failure in ws subscribe");
                    error("internal", "storage failure")
                }
            }
        }
        ClientFrame::Unsubscribe { topic } => {
            if st.hub.unsubscribe(conn, &topic) {
                json!({"type": "unsubscribed", "topic": topic}).to_string()
            } else {
                error("not_subscribed", "not subscribed to that topic")
            }
        }
    }
}

async fn session(st: Shared, socket: WebSocket, bearer: Option<String>) {
    let (mut sink, mut stream) = socket.split();
    let (conn, tx, mut rx) = st.hub.connect();
    let mut shutdown = st.shutdown.clone();
    tracing::debug!(conn, "ws connected");
    loop {
        let out: String = tokio::select! {
            frame = stream.next() => match frame {
                Some(Ok(WsMessage::Text(text))) => {
                    // Subscribing reads the store: off the async workers.
                    let (st, tx, bearer) = (st.clone(), tx.clone(), bearer.clone());
                    off_worker(move || Ok(handle(&st, conn, &tx, bearer.as_deref(), text.as_str())))
                        .await
                        .unwrap_or_else(|e| error(e.code, &e.message))
                }
                Some(Ok(WsMessage::Binary(_))) => error("binary_unsupported", "send JSON text frames"),
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
                Some(Ok(WsMessage::Close(_))) | None => break,
                Some(Err(e)) => {
                    tracing::debug!(conn, error = %e, "ws receive error");
                    break;
                }
            },
            Some(pushed) = rx.recv() => pushed.to_string(),
            () = async { let _ = shutdown.wait_for(|v| *v).await; } => {
                let _ = sink.send(WsMessage::Close(None)).await;
                break;
            }
        };
        if sink
            .send(WsMessage::Text(Utf8Bytes::from(out)))
            .await
            .is_err()
        {
            break;
        }
    }
    st.hub.disconnect(conn);
    tracing::debug!(conn, "ws closed");
}
