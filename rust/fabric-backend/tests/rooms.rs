//! Room saves through the backend: the first saver owns the room, versions count up, the
//! latest document comes back as saved; ReBAC decides who may save (editor, owner) and load
//! (viewer too); malformed documents and over-large bodies are refused and store nothing.

mod common;

use axum::http::Method;
use common::{Backend, account};
use fabric_backend::client::{Client, RawResponse};
use fabric_backend::model::TupleBody;
use serde_json::{Value, json};

async fn save(c: &Client, key: &str, room: &str, doc: &Value) -> RawResponse {
    c.raw(
        Method::POST,
        &format!("/rooms/{room}/save"),
        Some(key),
        Some("application/json"),
        serde_json::to_vec(doc).unwrap(),
    )
    .await
    .unwrap()
}

async fn load(c: &Client, key: &str, room: &str) -> RawResponse {
    c.raw(
        Method::GET,
        &format!("/rooms/{room}/state"),
        Some(key),
        None,
        Vec::new(),
    )
    .await
    .unwrap()
}

fn doc(n: usize) -> Value {
    let entities: Vec<Value> = (0..n)
        .map(|i| {
            json!({"id": i, "class": 7, "persist": "placed_saved",
                   "position": ["12.5", "0", "-3.25"], "properties": {"color": i}})
        })
        .collect();
    json!({"format": 1, "entities": entities})
}

fn code(r: &RawResponse) -> (u16, String) {
    (
        r.status.as_u16(),
        r.json()["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

#[tokio::test]
async fn rooms_are_saved_versioned_loaded_and_guarded() {
    let be = Backend::spawn(&["--max-room-bytes", "4000"]);
    let c = be.client();
    let ann = account(&c, "ann").await;
    let bob = account(&c, "bob").await;

    // First save: ann claims the room; version 1; loading gives the document back.
    let r = save(&c, &ann, "hall", &doc(3)).await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.json());
    assert_eq!(r.json()["version"], 1);
    assert_eq!(r.json()["entities"], 3);
    let loaded = load(&c, &ann, "hall").await.json();
    assert_eq!(loaded["state"], doc(3), "stored as saved");
    assert_eq!(loaded["saved_by"], "ann");
    assert_eq!(loaded["version"], 1);
    let r = save(&c, &ann, "hall", &doc(5)).await;
    assert_eq!(r.json()["version"], 2, "each save is the next version");
    assert_eq!(load(&c, &ann, "hall").await.json()["state"], doc(5));

    // Bob may neither save nor load ann's room; as a viewer he loads; as an editor he saves.
    assert_eq!(
        code(&save(&c, &bob, "hall", &doc(1)).await),
        (403, "forbidden".into())
    );
    assert_eq!(
        code(&load(&c, &bob, "hall").await),
        (403, "forbidden".into())
    );
    let grant = |relation: &str| TupleBody {
        object: "room:hall".into(),
        relation: relation.into(),
        subject: "user:bob".into(),
    };
    c.add_tuple(&ann, &grant("viewer")).await.unwrap();
    assert_eq!(
        load(&c, &bob, "hall").await.json()["version"],
        2,
        "a viewer loads"
    );
    assert_eq!(
        code(&save(&c, &bob, "hall", &doc(1)).await),
        (403, "forbidden".into())
    );
    c.add_tuple(&ann, &grant("editor")).await.unwrap();
    assert_eq!(
        save(&c, &bob, "hall", &doc(1)).await.json()["version"],
        3,
        "an editor saves"
    );

    // Refusals store nothing.
    for (why, body, want) in [
        (
            "another format",
            json!({"format": 2, "entities": []}),
            "invalid_field",
        ),
        ("no entities", json!({"format": 1}), "invalid_field"),
        (
            "an entity that is not an object",
            json!({"format": 1, "entities": [1]}),
            "invalid_field",
        ),
        ("not an object", json!([1, 2]), "invalid_field"),
    ] {
        assert_eq!(
            code(&save(&c, &ann, "hall", &body).await),
            (422, want.into()),
            "{why}"
        );
    }
    assert_eq!(
        code(&save(&c, &ann, "hall", &doc(60)).await).0,
        413,
        "over --max-room-bytes"
    );
    assert_eq!(
        code(&save(&c, &ann, "bad%20id", &doc(1)).await),
        (422, "invalid_field".into())
    );
    let latest = load(&c, &ann, "hall").await.json();
    assert_eq!(
        (latest["version"].clone(), latest["state"].clone()),
        (json!(3), doc(1))
    );

    // Owned by nobody (never saved): 404 unknown_room for anyone.
    assert_eq!(
        code(&load(&c, &bob, "new-room").await),
        (404, "unknown_room".into())
    );

    // Owned but never saved: 404 unknown_room for the owner.
    c.add_tuple(
        &ann,
        &TupleBody {
            object: "room:empty".into(),
            relation: "owner".into(),
            subject: "user:ann".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        code(&load(&c, &ann, "empty").await),
        (404, "unknown_room".into())
    );
}
