//! WebSocket subscriptions: heartbeat pushes `zone_updated` with the asset index URL, tuple
//! changes push `relationship_changed` to every dependent zone, deletes push `zone_removed`.

mod common;

use common::{
    Backend, account, register, shard_body, subscribe, subscribe_as, ws_connect, ws_next, ws_send,
};
use fabric_backend::model::{Heartbeat, TupleBody};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

#[tokio::test]
async fn heartbeat_pushes_zone_updated_to_subscribers_only() {
    let be = Backend::spawn(&[]);
    let c = be.client();
    let ann = account(&c, "ann").await;
    let a = register(&c, &ann, &shard_body("a")).await;
    let b = register(&c, &ann, &shard_body("b")).await;

    let mut ws_a = ws_connect(&be.addr).await;
    let mut ws_b = ws_connect(&be.addr).await;
    let topic_a = format!("zone:{}", a.id);
    let ack = subscribe(&mut ws_a, &topic_a).await;
    assert_eq!(ack["zone"]["id"], a.id.to_string(), "ack carries the zone");
    subscribe(&mut ws_b, &format!("zone:{}", b.id)).await;

    let beat = Heartbeat {
        current_users: 3,
        asset_index_url: Some("http://cdn.local/a-v2.caibx".into()),
        cert_hash: None,
        next_cert_hash: None,
    };
    c.heartbeat(a.id, &a.shard_secret, &beat)
        .await
        .expect("beat a");
    let push = ws_next(&mut ws_a).await;
    assert_eq!(push["type"], "zone_updated", "{push}");
    assert_eq!(push["topic"], topic_a);
    assert_eq!(
        push["zone"]["asset_index_url"],
        "http://cdn.local/a-v2.caibx"
    );
    assert_eq!(push["zone"]["current_users"], 3);

    // b's subscriber got nothing from a's heartbeat: the next frame it sees is its own pong.
    ws_send(&mut ws_b, json!({"op": "ping"})).await;
    assert_eq!(
        ws_next(&mut ws_b).await["type"],
        "pong",
        "no cross-topic push"
    );

    // Unsubscribe stops pushes.
    ws_send(&mut ws_a, json!({"op": "unsubscribe", "topic": topic_a})).await;
    assert_eq!(ws_next(&mut ws_a).await["type"], "unsubscribed");
    c.heartbeat(a.id, &a.shard_secret, &Heartbeat::default())
        .await
        .unwrap();
    ws_send(&mut ws_a, json!({"op": "ping"})).await;
    assert_eq!(
        ws_next(&mut ws_a).await["type"],
        "pong",
        "no push after unsubscribe"
    );

    // Delete pushes zone_removed.
    subscribe(&mut ws_b, &format!("zone:{}", b.id)).await;
    c.delete(b.id, &b.shard_secret).await.unwrap();
    let removed = ws_next(&mut ws_b).await;
    assert_eq!(
        (removed["type"].as_str(), removed["reason"].as_str()),
        (Some("zone_removed"), Some("deleted")),
        "{removed}"
    );
}

#[tokio::test]
async fn websocket_bad_frames_get_error_codes() {
    let be = Backend::spawn(&[]);
    let mut ws = ws_connect(&be.addr).await;
    for (frame, code) in [
        ("{nope".to_string(), "malformed_json"),
        (json!({"op": "dance"}).to_string(), "invalid_body"),
        (
            json!({"op": "subscribe", "topic": "lobby"}).to_string(),
            "bad_topic",
        ),
        (
            json!({"op": "subscribe", "topic": "zone:00000000-0000-4000-8000-000000000000"})
                .to_string(),
            "unknown_shard",
        ),
        (
            json!({"op": "unsubscribe", "topic": "zone:x"}).to_string(),
            "not_subscribed",
        ),
    ] {
        use futures_util::SinkExt as _;
        ws.send(tokio_tungstenite::tungstenite::Message::Text(
            frame.clone().into(),
        ))
        .await
        .unwrap();
        let reply = ws_next(&mut ws).await;
        assert_eq!(reply["type"], "error", "{frame} -> {reply}");
        assert_eq!(reply["code"], code, "{frame} -> {reply}");
    }
    ws_send(&mut ws, json!({"op": "ping"})).await;
    assert_eq!(
        ws_next(&mut ws).await["type"],
        "pong",
        "connection survives bad frames"
    );
}

#[tokio::test]
async fn tuple_changes_push_relationship_changed_to_dependent_zones() {
    let be = Backend::spawn(&[]);
    let c = be.client();
    let ann = account(&c, "ann").await;
    let mut private = shard_body("guild-hall");
    private.public = Some(false);
    let z = register(&c, &ann, &private).await;
    let other = register(&c, &ann, &shard_body("unrelated")).await;
    let topic = format!("zone:{}", z.id);
    let mut ws = ws_connect(&be.addr).await;
    subscribe_as(&mut ws, &topic, &z.shard_secret).await;
    let mut ws_other = ws_connect(&be.addr).await;
    subscribe(&mut ws_other, &format!("zone:{}", other.id)).await;

    let t = |o: &str, r: &str, s: &str| TupleBody {
        object: o.into(),
        relation: r.into(),
        subject: s.into(),
    };
    c.add_tuple(&ann, &t("group:guild", "owner", "user:ann"))
        .await
        .expect("claim group");
    let grant = c
        .add_tuple(&ann, &t(&topic, "joiner", "group:guild#member"))
        .await
        .expect("grant group");
    assert_eq!(
        grant.notified,
        vec![topic.clone()],
        "zone tuple notifies its zone"
    );
    let msg = ws_next(&mut ws).await;
    assert_eq!(msg["type"], "relationship_changed", "{msg}");
    assert_eq!(msg["object"], topic.as_str());

    // A membership change on the group reaches the zone that references the group.
    let added = c
        .add_tuple(&ann, &t("group:guild", "member", "user:bob"))
        .await
        .expect("add member");
    assert!(added.changed, "new tuple");
    assert_eq!(added.notified, vec![topic.clone()], "dependent zone found");
    let msg = ws_next(&mut ws).await;
    assert_eq!(
        (msg["type"].as_str(), msg["object"].as_str()),
        (Some("relationship_changed"), Some("group:guild")),
        "{msg}"
    );
    let again = c
        .add_tuple(&ann, &t("group:guild", "member", "user:bob"))
        .await
        .unwrap();
    assert!(
        !again.changed && again.notified.is_empty(),
        "duplicate is a no-op"
    );
    let removed = c
        .remove_tuple(&ann, &t("group:guild", "member", "user:bob"))
        .await
        .unwrap();
    assert!(removed.changed, "removed");
    assert_eq!(ws_next(&mut ws).await["type"], "relationship_changed");

    ws_send(&mut ws_other, json!({"op": "ping"})).await;
    assert_eq!(
        ws_next(&mut ws_other).await["type"],
        "pong",
        "unrelated zone not notified"
    );
}

/// A private zone's topic: nobody without a credential, nor an account that may not join it;
/// its owner, a joiner and the zone itself (shard secret, in the frame or as
/// `Authorization: Bearer` on the upgrade) may subscribe, and then get its pushes.
#[tokio::test]
async fn private_zone_topics_need_a_credential_that_may_join() {
    let be = Backend::spawn(&[]);
    let c = be.client();
    let ann = account(&c, "ann").await;
    let bob = account(&c, "bob").await;
    let cid = account(&c, "cid").await;
    let mut body = shard_body("private");
    body.public = Some(false);
    let zone = register(&c, &ann, &body).await;
    let topic = format!("zone:{}", zone.id);
    c.add_tuple(
        &ann,
        &TupleBody {
            object: format!("zone:{}", zone.id),
            relation: "joiner".into(),
            subject: "user:cid".into(),
        },
    )
    .await
    .expect("ann lets cid join");

    let attempt = |credential: Option<&str>| {
        let mut frame = json!({"op": "subscribe", "topic": topic});
        if let Some(c) = credential {
            frame["credential"] = json!(c);
        }
        let addr = be.addr.clone();
        async move {
            let mut ws = ws_connect(&addr).await;
            ws_send(&mut ws, frame).await;
            let reply = ws_next(&mut ws).await;
            (ws, reply)
        }
    };
    for (who, cred, code) in [
        ("nobody", None, "forbidden"),
        ("bob, who may not join", Some(bob.as_str()), "forbidden"),
        (
            "an unknown key",
            Some("fak_not-a-key"),
            "invalid_credentials",
        ),
        (
            "another zone's secret",
            Some("fss_not-this-one"),
            "forbidden",
        ),
    ] {
        let (_, reply) = attempt(cred).await;
        assert_eq!(reply["type"], "error", "{who}: {reply}");
        assert_eq!(reply["code"], code, "{who}: {reply}");
    }
    for (who, cred) in [
        ("ann, the owner", ann.as_str()),
        ("cid, a joiner", cid.as_str()),
        ("the zone's own secret", zone.shard_secret.as_str()),
    ] {
        let (_, reply) = attempt(Some(cred)).await;
        assert_eq!(reply["type"], "subscribed", "{who}: {reply}");
    }

    // The bearer header of the upgrade request counts for the whole connection.
    let mut request = format!("ws://{}/ws", be.addr)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", zone.shard_secret).parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    subscribe(&mut ws, &topic).await;
    c.heartbeat(zone.id, &zone.shard_secret, &Heartbeat::default())
        .await
        .unwrap();
    let push = ws_next(&mut ws).await;
    assert_eq!(push["type"], "zone_updated", "{push}");
}
