//! Registration, heartbeat, listing visibility and deletion against the real binary.

mod common;

use common::{Backend, account, register, shard_body};
use fabric_backend::model::Heartbeat;

#[tokio::test]
async fn register_heartbeat_list_and_delete() {
    let be = Backend::spawn(&[]);
    let c = be.client();
    let ann = account(&c, "ann").await;

    let mut body = shard_body("plaza-1");
    body.next_cert_hash = Some("bmV4dC1hdC1yZWdpc3RyYXRpb24=".into());
    let reg = register(&c, &ann, &body).await;
    assert!(reg.shard_secret.starts_with("fss_"), "secret shape");
    assert_eq!(reg.stale_after_ms, 30_000, "default window reported");

    let listed = c.list(None).await.expect("list").shards;
    assert_eq!(listed.len(), 1, "one live shard");
    let s = &listed[0];
    assert_eq!(s.id, reg.id, "listed id");
    assert_eq!(s.address, "127.0.0.1", "address defaults to the caller");
    assert_eq!(
        (s.port, s.map.as_str(), s.name.as_str(), s.owner.as_str()),
        (7443, "plaza", "plaza-1", "ann"),
        "registered fields"
    );
    assert_eq!((s.max_users, s.current_users), (32, 0), "default capacity");
    assert_eq!(
        s.next_cert_hash.as_deref(),
        Some("bmV4dC1hdC1yZWdpc3RyYXRpb24="),
        "the announced next hash is listed"
    );

    let beat = Heartbeat {
        current_users: 7,
        asset_index_url: Some("http://assets.local/plaza.caibx".into()),
        cert_hash: None,
        next_cert_hash: None,
    };
    let after = c
        .heartbeat(reg.id, &reg.shard_secret, &beat)
        .await
        .expect("heartbeat");
    assert_eq!(after.current_users, 7, "users updated");
    assert!(
        after.last_put_at_ms >= s.last_put_at_ms,
        "last_put_at moves"
    );
    let fetched = c.shard(reg.id, None).await.expect("get one");
    assert_eq!(
        fetched.asset_index_url.as_deref(),
        Some("http://assets.local/plaza.caibx"),
        "url stored"
    );
    assert_eq!(
        fetched.cert_hash, s.cert_hash,
        "a heartbeat without a hash keeps it"
    );

    // A zone that rotated its certificate publishes the new hash with its next heartbeat.
    let rotated = Heartbeat {
        current_users: 7,
        asset_index_url: None,
        cert_hash: Some("bmV3LWNlcnRpZmljYXRlLWhhc2g=".into()),
        next_cert_hash: Some("Zm9sbG93aW5nLWhhc2g=".into()),
    };
    c.heartbeat(reg.id, &reg.shard_secret, &rotated)
        .await
        .expect("heartbeat with a rotated hash");
    let fetched = c.shard(reg.id, None).await.expect("get one");
    assert_eq!(
        (
            fetched.cert_hash.as_str(),
            fetched.asset_index_url.as_deref()
        ),
        (
            "bmV3LWNlcnRpZmljYXRlLWhhc2g=",
            Some("http://assets.local/plaza.caibx")
        ),
        "hash replaced, url kept"
    );
    assert_eq!(
        fetched.next_cert_hash.as_deref(),
        Some("Zm9sbG93aW5nLWhhc2g="),
        "the announced next hash is listed"
    );
    let bad = Heartbeat {
        current_users: 7,
        asset_index_url: None,
        cert_hash: Some(String::new()),
        next_cert_hash: None,
    };
    let err = c
        .heartbeat(reg.id, &reg.shard_secret, &bad)
        .await
        .expect_err("an empty hash is refused");
    assert_eq!(err.code(), Some("invalid_field"), "{err}");
    assert_eq!(
        c.shard(reg.id, None).await.unwrap().cert_hash,
        "bmV3LWNlcnRpZmljYXRlLWhhc2g=",
        "a refused heartbeat changes nothing"
    );

    c.delete(reg.id, &reg.shard_secret).await.expect("delete");
    assert!(
        c.list(None).await.unwrap().shards.is_empty(),
        "gone from list"
    );
    let err = c.shard(reg.id, None).await.expect_err("deleted shard");
    assert_eq!(err.code(), Some("unknown_shard"), "{err}");
}

#[tokio::test]
async fn private_shards_are_listed_only_to_their_owner() {
    let be = Backend::spawn(&[]);
    let c = be.client();
    let ann = account(&c, "ann").await;
    let bob = account(&c, "bob").await;
    let mut private = shard_body("secret-base");
    private.public = Some(false);
    private.address = Some("zone.example.net".into());
    let p = register(&c, &ann, &private).await;
    let q = register(&c, &bob, &shard_body("bob-public")).await;

    let names = |v: Vec<fabric_backend::model::ShardView>| {
        v.into_iter().map(|s| s.name).collect::<Vec<_>>()
    };
    assert_eq!(
        names(c.list(None).await.unwrap().shards),
        vec!["bob-public"],
        "anonymous sees only public"
    );
    assert_eq!(
        names(c.list(Some(&bob)).await.unwrap().shards),
        vec!["bob-public"],
        "bob does not see ann's private zone"
    );
    let mut ann_view = names(c.list(Some(&ann)).await.unwrap().shards);
    ann_view.sort();
    assert_eq!(
        ann_view,
        vec!["bob-public", "secret-base"],
        "owner sees hers"
    );
    let own = c
        .shard(p.id, Some(&ann))
        .await
        .expect("owner reads private");
    assert_eq!(own.address, "zone.example.net", "explicit address kept");
    assert_eq!(
        c.shard(p.id, Some(&bob)).await.unwrap_err().code(),
        Some("unknown_shard"),
        "private shard hidden from others"
    );

    // The owner's API key may delete; another account's may not.
    let err = c.delete(q.id, &ann).await.expect_err("ann deleting bob's");
    assert_eq!(err.code(), Some("forbidden"), "{err}");
    c.delete(q.id, &bob)
        .await
        .expect("owner deletes with API key");
}
