//! Per-account caps and the public-address rule, against a real backend process: an account
//! may hold `--max-shards-per-account` shards, and a public shard may list only the address it
//! registers from (unless `--allow-any-address`), so nobody can advertise someone else's host.

mod common;

use common::{Backend, account, shard_body};
use fabric_backend::client::{Client, ClientError};
use fabric_backend::model::RegisterShard;

async fn refusal(c: &Client, key: &str, body: &RegisterShard) -> (u16, String, String) {
    match c.register(key, body).await {
        Err(ClientError::Api {
            status,
            code,
            message,
        }) => (status.as_u16(), code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn an_account_holds_at_most_its_cap_of_shards() {
    let be = Backend::spawn(&["--max-shards-per-account", "2"]);
    let c = be.client();
    let ann = account(&c, "ann").await;
    let bob = account(&c, "bob").await;
    let first = c.register(&ann, &shard_body("a1")).await.unwrap();
    c.register(&ann, &shard_body("a2")).await.unwrap();
    let (status, code, message) = refusal(&c, &ann, &shard_body("a3")).await;
    assert_eq!(
        (status, code.as_str()),
        (429, "too_many_shards"),
        "{message}"
    );
    assert!(message.contains("--max-shards-per-account"), "{message}");
    // Another account is not affected; a deleted shard frees a place.
    c.register(&bob, &shard_body("b1")).await.unwrap();
    c.delete(first.id, &ann).await.unwrap();
    c.register(&ann, &shard_body("a3")).await.unwrap();
}

#[tokio::test]
async fn a_public_shard_lists_only_the_address_it_registers_from() {
    let be = Backend::spawn(&[]);
    let c = be.client();
    let ann = account(&c, "ann").await;
    let elsewhere = RegisterShard {
        address: Some("192.0.2.7".into()),
        ..shard_body("spoof")
    };
    let (status, code, message) = refusal(&c, &ann, &elsewhere).await;
    assert_eq!(
        (status, code.as_str()),
        (422, "address_not_caller"),
        "{message}"
    );
    assert!(
        message.contains("192.0.2.7") && message.contains("127.0.0.1"),
        "{message}"
    );
    let by_name = RegisterShard {
        address: Some("zone.example".into()),
        ..shard_body("named")
    };
    assert_eq!(refusal(&c, &ann, &by_name).await.1, "address_not_caller");
    // Its own address, said or left out, is fine; a private shard may list any address.
    let own = RegisterShard {
        address: Some("127.0.0.1".into()),
        ..shard_body("own")
    };
    c.register(&ann, &own).await.unwrap();
    c.register(&ann, &shard_body("implicit")).await.unwrap();
    let private = RegisterShard {
        public: Some(false),
        ..elsewhere.clone()
    };
    c.register(&ann, &private).await.unwrap();
    let listed = c.list(Some(&ann)).await.unwrap();
    assert!(
        listed
            .shards
            .iter()
            .all(|s| s.public == (s.address == "127.0.0.1")),
        "public shards list the caller's address only: {:?}",
        listed
            .shards
            .iter()
            .map(|s| (&s.name, &s.address, s.public))
            .collect::<Vec<_>>()
    );

    // An operator behind NAT opts out.
    let open = Backend::spawn(&["--allow-any-address"]);
    let c = open.client();
    let ann = account(&c, "ann").await;
    let shard = c.register(&ann, &elsewhere).await.unwrap();
    assert_eq!(
        c.shard(shard.id, Some(&ann)).await.unwrap().address,
        "192.0.2.7"
    );
}
