//! Two backend replicas on one PostgreSQL database (a real server the test starts): started
//! together they sign with the same join key, and accounts, shards, heartbeats and tokens work
//! whichever replica a zone or client reaches.

mod common;

use fabric_backend::model::Heartbeat;

use common::{Backend, account, register, shard_body};

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
