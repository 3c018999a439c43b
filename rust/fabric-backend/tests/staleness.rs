//! Staleness of the listing and janitor eviction, with short configured windows.
//! Waiting is event- or condition-driven with a generous deadline; nothing asserts on timing.

mod common;

use std::time::{Duration, Instant};

use common::{
    Backend, EVENT_DEADLINE, account, register, shard_body, subscribe, ws_connect, ws_next,
};
use fabric_backend::model::Heartbeat;

#[tokio::test]
async fn listing_hides_shards_after_the_window_and_heartbeat_revives_them() {
    // Janitor off: the row must survive while hidden.
    let be = Backend::spawn(&["--stale-after-ms", "1500", "--janitor-interval-ms", "0"]);
    let c = be.client();
    let ann = account(&c, "ann").await;
    // Taken before the request, so it is no later than the server's last_put_at.
    let registered_at = Instant::now();
    let reg = register(&c, &ann, &shard_body("z")).await;
    assert_eq!(
        c.list(None).await.unwrap().shards.len(),
        1,
        "fresh shard listed"
    );

    let deadline = Instant::now() + EVENT_DEADLINE;
    while !c.list(None).await.unwrap().shards.is_empty() {
        assert!(Instant::now() < deadline, "shard never went stale");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        registered_at.elapsed() >= Duration::from_millis(1500),
        "hidden no earlier than the window"
    );
    let row = c.shard(reg.id, None).await.expect("row still exists");
    assert_eq!(row.id, reg.id, "stale row kept (janitor disabled)");

    c.heartbeat(reg.id, &reg.shard_secret, &Heartbeat::default())
        .await
        .expect("heartbeat on a stale shard");
    assert_eq!(
        c.list(None).await.unwrap().shards.len(),
        1,
        "heartbeat revives"
    );
}

#[tokio::test]
async fn janitor_evicts_stale_rows_and_ignores_websocket_activity() {
    let be = Backend::spawn(&[
        "--stale-after-ms",
        "200",
        "--evict-after-ms",
        "1000",
        "--janitor-interval-ms",
        "50",
    ]);
    let c = be.client();
    let ann = account(&c, "ann").await;
    let reg = register(&c, &ann, &shard_body("z")).await;
    let keep = register(&c, &ann, &shard_body("kept")).await;

    // A connected, chatty WebSocket subscriber must not keep the zone alive.
    let mut ws = ws_connect(&be.addr).await;
    let topic = format!("zone:{}", reg.id);
    subscribe(&mut ws, &topic).await;
    let keeper = tokio::spawn({
        let c = be.client();
        let (id, secret) = (keep.id, keep.shard_secret.clone());
        async move {
            loop {
                if c.heartbeat(id, &secret, &Heartbeat::default())
                    .await
                    .is_err()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    let removed = loop {
        common::ws_send(&mut ws, serde_json::json!({"op": "ping"})).await;
        let msg = ws_next(&mut ws).await;
        if msg["type"] == "zone_removed" {
            break msg;
        }
        assert_eq!(msg["type"], "pong", "only pongs before removal: {msg}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(removed["topic"], topic, "removal on the zone's topic");
    assert_eq!(removed["reason"], "stale", "janitor reason");
    let err = c.shard(reg.id, None).await.expect_err("row deleted");
    assert_eq!(err.code(), Some("unknown_shard"), "{err}");
    let err = c
        .heartbeat(reg.id, &reg.shard_secret, &Heartbeat::default())
        .await
        .expect_err("heartbeat after eviction");
    assert_eq!(err.code(), Some("unknown_shard"), "zone must re-register");
    let kept = c
        .shard(keep.id, None)
        .await
        .expect("heartbeating shard kept");
    assert_eq!(kept.name, "kept", "janitor spared the live shard");
    keeper.abort();
}
