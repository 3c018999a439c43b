//! The zone's subscription to its registry topic (`zone:<id>` over the backend's WebSocket):
//! turns `relationship_changed` pushes into [`RegistryEvent::RelationshipChanged`], reconnecting
//! with a back-off when the backend goes away. Liveness is never inferred from this socket.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedSender;
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, warn};

use crate::registry::RegistryEvent;

/// Watches `zone:<shard>` at `backend` (`http://host:port`) until the task is aborted,
/// presenting the shard's `secret` (a private zone's topic is only open to the zone itself and
/// to accounts that may join it).
pub async fn watch(
    backend: String,
    shard: String,
    secret: String,
    tx: UnboundedSender<RegistryEvent>,
) {
    let mut backoff = Duration::from_millis(250);
    loop {
        match watch_once(&backend, &shard, &secret, &tx).await {
            Ok(()) => backoff = Duration::from_millis(250),
            Err(e) => warn!("registry subscription: {e}"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn watch_once(
    backend: &str,
    shard: &str,
    secret: &str,
    tx: &UnboundedSender<RegistryEvent>,
) -> Result<(), String> {
    let host = backend
        .strip_prefix("http://")
        .and_then(|r| r.split('/').next())
        .ok_or_else(|| format!("invalid backend URL {backend}"))?;
    let stream = TcpStream::connect(host)
        .await
        .map_err(|e| format!("cannot reach {host}: {e}"))?;
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{host}/ws"), stream)
        .await
        .map_err(|e| format!("WebSocket handshake with {host}: {e}"))?;
    let topic = format!("zone:{shard}");
    ws.send(Message::text(
        json!({"op": "subscribe", "topic": topic, "credential": secret}).to_string(),
    ))
    .await
    .map_err(|e| e.to_string())?;
    while let Some(frame) = ws.next().await {
        let frame = frame.map_err(|e| e.to_string())?;
        let Message::Text(text) = frame else { continue };
        let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        match v["type"].as_str() {
            Some("relationship_changed") => {
                let object = v["object"].as_str().unwrap_or_default().to_owned();
                if tx
                    .send(RegistryEvent::RelationshipChanged { object })
                    .is_err()
                {
                    return Ok(());
                }
            }
            Some("subscribed") => debug!(%topic, "subscribed"),
            Some("error") => warn!("registry subscription error: {text}"),
            _ => {}
        }
    }
    Err("the registry closed the subscription".into())
}
