//! A committed tuple write always reaches the zones it can affect. When the dependents walk of
//! the changed object exceeds its node limit, the write has already happened; before the fix
//! the API answered 422 `check_too_deep` and pushed nothing, so a removed member kept their
//! session. Now every subscribed zone gets `relationship_changed` and re-checks.

mod common;

use std::sync::Arc;

use fabric_auth::Tuple;
use fabric_auth::rebac::MAX_CHECK_NODES;
use fabric_backend::Config;
use fabric_backend::model::TupleBody;
use fabric_backend::store::Store;
use fabric_backend::store::sqlite::SqliteStore;

use common::inproc::InProcess;
use common::{account, register, shard_body, subscribe, ws_connect, ws_next};

#[tokio::test]
async fn a_write_past_the_dependents_limit_still_notifies_the_zone() {
    let store = Arc::new(SqliteStore::open(":memory:").unwrap());
    let server = InProcess::start(
        store.clone(),
        Config::new("127.0.0.1:0".parse().unwrap(), ":memory:").without_rate_limits(),
    );
    let c = fabric_backend::client::Client::new(server.addr.clone());
    let ann = account(&c, "ann").await;
    let zone = register(&c, &ann, &shard_body("z")).await.id;
    let topic = format!("zone:{zone}");
    // The zone admits group g0's members, and more groups than the walk may visit nest g0.
    let seed =
        |o: &str, r: &str, s: &str| store.add_tuple(&Tuple::parse(o, r, s).unwrap()).unwrap();
    seed("group:g0", "owner", "user:ann");
    seed(&topic, "joiner", "group:g0#member");
    for i in 1..=MAX_CHECK_NODES + 4 {
        seed(&format!("group:g{i}"), "member", "group:g0#member");
    }
    let mut ws = ws_connect(&server.addr).await;
    subscribe(&mut ws, &topic).await;

    let reply = c
        .add_tuple(
            &ann,
            &TupleBody {
                object: "group:g0".into(),
                relation: "member".into(),
                subject: "user:bob".into(),
            },
        )
        .await
        .expect("a committed write is reported as such, not as 422");
    assert!(reply.changed, "the tuple was added");
    assert!(
        reply.notified.contains(&topic),
        "the subscribed zone is notified: {:?}",
        reply.notified
    );
    let push = ws_next(&mut ws).await;
    assert_eq!(push["type"], "relationship_changed", "{push}");
    assert_eq!(push["object"], "group:g0", "{push}");
}
