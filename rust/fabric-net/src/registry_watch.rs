//! The zone's subscription to its registry topic (`zone:<id>` over the backend's WebSocket):
//! turns `relationship_changed` pushes into [`RegistryEvent::RelationshipChanged`] and
//! `asset_baked` ones into [`RegistryEvent::AssetBaked`], reconnecting
//! with a back-off when the backend goes away. Liveness is never inferred from this socket.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, warn};

use crate::http::{Endpoint, Stream};
use crate::registry::RegistryEvent;

/// Watches `zone:<shard>` at `backend` until the task is aborted, presenting the shard's
/// `secret` (a private zone's topic is only open to the zone itself and to accounts that may
/// join it). `wss://` when the backend is `https://` (pinned like its HTTP).
pub async fn watch(
    backend: Endpoint,
    shard: String,
    secret: String,
    tx: UnboundedSender<RegistryEvent>,
) {
    let mut backoff = Duration::from_millis(250);
    loop {
        let outcome = match backend.connect().await {
            Ok(stream) => watch_once(&backend, stream, &shard, &secret, &tx).await,
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(()) => backoff = Duration::from_millis(250),
            Err(e) => warn!("registry subscription: {e}"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn watch_once(
    backend: &Endpoint,
    stream: Box<dyn Stream>,
    shard: &str,
    secret: &str,
    tx: &UnboundedSender<RegistryEvent>,
) -> Result<(), String> {
    let host = backend.host();
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
            Some("asset_baked") => {
                let Some(event) = asset_baked(&v) else {
                    warn!("registry: an asset_baked push without a map or hash: {text}");
                    continue;
                };
                if tx.send(event).is_err() {
                    return Ok(());
                }
            }
            Some("subscribed") => {
                debug!(%topic, "subscribed");
                let topic = topic.clone();
                if tx.send(RegistryEvent::Subscribed { topic }).is_err() {
                    return Ok(());
                }
            }
            Some("error") => warn!("registry subscription error: {text}"),
            _ => {}
        }
    }
    Err("the registry closed the subscription".into())
}

/// The event of an `asset_baked` push (`{"asset":{"map":..,"name":..,"hash":<64 hex>,"size":..,
/// "baked_url":..,..}}`, the backend's `SharedFile`); the id is the hash's first 8 bytes,
/// big-endian, as the backend's `asset_id`. A push missing any of these is dropped.
fn asset_baked(v: &Value) -> Option<RegistryEvent> {
    let asset = &v["asset"];
    let hash = asset["hash"]
        .as_str()
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))?;
    let asset_id = u64::from_str_radix(&hash[..16], 16).ok()?;
    Some(RegistryEvent::AssetBaked {
        map: asset["map"].as_str()?.to_owned(),
        asset_id,
        name: asset["name"].as_str()?.to_owned(),
        hash: hash.to_owned(),
        size: asset["size"].as_u64()?,
        baked_url: asset["baked_url"].as_str()?.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_asset_baked_push_names_the_map_and_the_id() {
        let hash = "0123456789abcdeffedcba98765432100123456789abcdeffedcba9876543210";
        let url = format!("/assets/index/{hash}");
        let v = json!({"type": "asset_baked", "topic": "zone:x",
                       "asset": {"map": "plaza", "name": "a.glb", "hash": hash, "size": 1234,
                                 "baked_url": url}});
        match asset_baked(&v) {
            Some(RegistryEvent::AssetBaked {
                map,
                asset_id,
                name,
                hash: h,
                size,
                baked_url,
            }) => {
                assert_eq!((map.as_str(), asset_id), ("plaza", 0x0123_4567_89ab_cdef));
                assert_eq!((name.as_str(), h.as_str(), size), ("a.glb", hash, 1234));
                assert_eq!(baked_url, url);
            }
            other => panic!("{other:?}"),
        }
        let full = |hash: &str| json!({"map": "plaza", "name": "a", "hash": hash, "size": 1, "baked_url": "/x"});
        let without = |key: &str| {
            let mut a = full(hash);
            a.as_object_mut().unwrap().remove(key);
            json!({ "asset": a })
        };
        for bad in [
            json!({"asset": full("0123")}),
            json!({"asset": full(&format!("{}g", &hash[1..]))}),
            without("map"),
            without("name"),
            without("size"),
            without("baked_url"),
            json!({}),
        ] {
            assert!(asset_baked(&bad).is_none(), "{bad}");
        }
    }
}
