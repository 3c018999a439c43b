//! `GET /ws`: the push channel. Client frames are JSON text:
//!
//! ```json
//! {"op":"subscribe","topic":"zone:<id>"}    -> {"type":"subscribed","topic":…,"zone":{…}}
//! {"op":"unsubscribe","topic":"zone:<id>"}  -> {"type":"unsubscribed","topic":…}
//! {"op":"ping"}                             -> {"type":"pong"}
//! anything else                             -> {"type":"error","code":…,"message":…}
//! ```
//!
//! Pushes (see [`crate::push`]) arrive on the same socket. The connection is not a liveness
//! signal for zones: only `PUT /shards/{id}` is.

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
use crate::model::ShardView;
use crate::state::Shared;

/// Largest client frame accepted.
const MAX_FRAME: usize = 4096;

pub(super) async fn upgrade(
    State(st): State<Shared>,
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
        .on_upgrade(move |socket| session(st, socket))
}

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum ClientFrame {
    Subscribe { topic: String },
    Unsubscribe { topic: String },
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

fn handle(st: &Shared, conn: u64, tx: &mpsc::Sender<crate::hub::Message>, text: &str) -> String {
    let frame: ClientFrame = match serde_json::from_str(text) {
        Ok(f) => f,
        Err(e) if e.is_syntax() || e.is_eof() => return error("malformed_json", &e.to_string()),
        Err(e) => return error("invalid_body", &e.to_string()),
    };
    match frame {
        ClientFrame::Ping => json!({"type": "pong"}).to_string(),
        ClientFrame::Subscribe { topic } => {
            let Some(id) = zone_of(&topic) else {
                return error("bad_topic", "topics are zone:<uuid>");
            };
            match st.store.shard(id) {
                Ok(Some(shard)) => {
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

async fn session(st: Shared, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (conn, tx, mut rx) = st.hub.connect();
    let mut shutdown = st.shutdown.clone();
    tracing::debug!(conn, "ws connected");
    loop {
        let out: String = tokio::select! {
            frame = stream.next() => match frame {
                Some(Ok(WsMessage::Text(text))) => {
                    // Subscribing reads the store: off the async workers.
                    let (st, tx) = (st.clone(), tx.clone());
                    off_worker(move || Ok(handle(&st, conn, &tx, text.as_str())))
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
