//! Process lifecycle: startup line, graceful SIGTERM shutdown, and persistence of shards,
//! accounts and the join signing key in a file database across restarts.

mod common;

use common::{Backend, account, register, shard_body};

#[tokio::test]
async fn file_database_survives_a_graceful_restart() {
    let dir = std::env::temp_dir().join(format!("fabric-backend-db-{}", uuid::Uuid::new_v4()));
    let db = dir.join("registry.sqlite3");
    let db = db.to_str().unwrap();

    let be = Backend::spawn_raw(&["--listen", "127.0.0.1:0", "--db", db]);
    let c = be.client();
    let ann = account(&c, "ann").await;
    let reg = register(&c, &ann, &shard_body("persistent")).await;
    let kid = c.join_keys().await.unwrap().keys[0].kid.clone();
    drop(c);
    let (status, rest) = be.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    assert!(
        rest.contains("fabric-backend stopped"),
        "shutdown line: {rest:?}"
    );

    let be = Backend::spawn_raw(&["--listen", "127.0.0.1:0", "--db", db]);
    let c = be.client();
    let s = c.shard(reg.id, None).await.expect("shard persisted");
    assert_eq!(s.name, "persistent", "same row");
    assert_eq!(
        c.join_keys().await.unwrap().keys[0].kid,
        kid,
        "same signing key"
    );
    let t = c
        .issue_join_token(&ann, reg.id)
        .await
        .expect("api key persisted");
    assert_eq!(t.zone_id, reg.id);
    c.heartbeat(reg.id, &reg.shard_secret, &Default::default())
        .await
        .expect("shard secret persisted");
    drop(c);
    let (status, _) = be.terminate();
    assert!(status.success(), "second clean exit: {status:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
