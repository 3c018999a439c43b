//! Two backend replicas on one PostgreSQL database (a real server the test starts): started
//! together they sign with the same join key, and accounts, shards, heartbeats and tokens work
//! whichever replica a zone or client reaches.

mod common;

use fabric_backend::model::Heartbeat;

use common::{Backend, account, register, shard_body, subscribe, ws_connect, ws_next, ws_send};

#[tokio::test]
async fn replicas_on_one_database_share_accounts_shards_and_keys() {
    let url = common::pg::shared().fresh_database();
    // Started at once: both find the key missing and race to store theirs.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Backend::spawn_raw(&["--listen", "127.0.0.1:0", "--db", &url]));
        let b = s.spawn(|| Backend::spawn_raw(&["--listen", "127.0.0.1:0", "--db", &url]));
        (a.join().unwrap(), b.join().unwrap())
    });
    let (ca, cb) = (a.client(), b.client());
    let key = |k: fabric_backend::model::JoinKeys| {
        k.keys.into_iter().map(|k| k.public_key).collect::<Vec<_>>()
    };
    assert_eq!(
        key(ca.join_keys().await.unwrap()),
        key(cb.join_keys().await.unwrap()),
        "one signing key for both replicas"
    );

    let ann = account(&ca, "ann").await;
    let reg = register(&cb, &ann, &shard_body("z")).await;
    let beat = Heartbeat {
        current_users: 7,
        asset_index_url: None,
        cert_hash: None,
        next_cert_hash: None,
    };
    cb.heartbeat(reg.id, &reg.shard_secret, &beat)
        .await
        .unwrap();
    let listed = ca.list(None).await.unwrap();
    assert_eq!(
        listed
            .shards
            .iter()
            .map(|s| (s.id, s.current_users))
            .collect::<Vec<_>>(),
        vec![(reg.id, 7)],
        "a heartbeat on B is listed by A"
    );

    let token = cb.issue_join_token(&ann, reg.id).await.unwrap().token;
    let verified = ca
        .raw(
            axum::http::Method::POST,
            "/tokens/join/verify",
            None,
            Some("application/json"),
            serde_json::to_vec(&serde_json::json!({"token": token, "zone_id": reg.id})).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        verified.status.as_u16(),
        200,
        "B's token verifies on A: {:?}",
        verified.json()
    );
}

/// A zone heartbeating to replica B and a client subscribed on replica A: A's subscriber gets
/// B's `zone_updated` (through the database's push log), then `zone_removed` when the zone is
/// deleted through B; B killed after acknowledging a heartbeat loses nothing (A lists it).
#[tokio::test]
async fn a_push_caused_on_one_replica_reaches_subscribers_of_the_other() {
    let url = common::pg::shared().fresh_database();
    let a = Backend::spawn_raw(&["--listen", "127.0.0.1:0", "--db", &url]);
    let b = Backend::spawn_raw(&["--listen", "127.0.0.1:0", "--db", &url]);
    let (ca, cb) = (a.client(), b.client());
    let ann = account(&ca, "ann").await;
    let reg = register(&cb, &ann, &shard_body("z")).await;
    let topic = format!("zone:{}", reg.id);
    let mut ws = ws_connect(&a.addr).await;
    subscribe(&mut ws, &topic).await;

    let beat = |users| Heartbeat {
        current_users: users,
        asset_index_url: None,
        cert_hash: None,
        next_cert_hash: None,
    };
    let sent = std::time::Instant::now();
    cb.heartbeat(reg.id, &reg.shard_secret, &beat(11))
        .await
        .unwrap();
    let push = ws_next(&mut ws).await;
    let took = sent.elapsed();
    assert_eq!(push["type"], "zone_updated", "{push}");
    assert_eq!(push["topic"], topic.as_str());
    assert_eq!(
        push["zone"]["current_users"], 11,
        "B's heartbeat, seen on A"
    );
    println!("cross-replica push delivered in {took:?}");

    // Each push arrives once: the next frame after a ping is the pong.
    ws_send(&mut ws, serde_json::json!({"op": "ping"})).await;
    assert_eq!(ws_next(&mut ws).await["type"], "pong", "no duplicate push");

    // Acknowledged, then B dies: nothing it acknowledged is lost.
    cb.heartbeat(reg.id, &reg.shard_secret, &beat(12))
        .await
        .unwrap();
    assert_eq!(ws_next(&mut ws).await["zone"]["current_users"], 12);
    drop(cb);
    drop(b);
    let listed = ca.list(None).await.unwrap();
    assert_eq!(
        listed
            .shards
            .iter()
            .map(|s| s.current_users)
            .collect::<Vec<_>>(),
        vec![12],
        "A still lists what B acknowledged"
    );

    // A third replica deletes the zone: A's subscriber hears it.
    let c = Backend::spawn_raw(&["--listen", "127.0.0.1:0", "--db", &url]);
    c.client().delete(reg.id, &ann).await.unwrap();
    let removed = ws_next(&mut ws).await;
    assert_eq!(removed["type"], "zone_removed", "{removed}");
    assert_eq!(removed["reason"], "deleted");
}
