//! Per-account caps and the public-address rule, against a real backend process: an account
//! may hold `--max-shards-per-account` shards, and a public shard may list only the address it
//! registers from (unless `--allow-any-address`), so nobody can advertise someone else's host.
//! With `--closed-signup` only the operator makes accounts.

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

/// `--closed-signup`: `POST /accounts` is refused with 403 `signup_closed` and nothing is
/// created; the operator's `--create-account NAME` on the same database makes the account and
/// prints its API key, which then works against the running registry; a second
/// `--create-account` of the same name fails and says why.
#[tokio::test]
async fn closed_signup_refuses_accounts_and_the_operator_creates_them() {
    let dir = std::env::temp_dir().join(format!("fabric-closed-signup-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("registry.sqlite3");
    let db_arg = db.to_str().unwrap();
    let be = Backend::spawn_raw(&["--listen", "127.0.0.1:0", "--db", db_arg, "--closed-signup"]);
    let c = be.client();
    match c.create_account("mallory").await {
        Err(ClientError::Api { status, code, .. }) => {
            assert_eq!((status.as_u16(), code.as_str()), (403, "signup_closed"));
        }
        other => panic!("sign-up is closed, got {other:?}"),
    }

    let operator = |name: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_fabric-backend"))
            .args(["--db", db_arg, "--create-account", name])
            .output()
            .unwrap()
    };
    let out = operator("ann");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let api_key = said
        .rsplit("(shown once): ")
        .next()
        .map(str::trim)
        .filter(|k| k.starts_with("fak_"))
        .unwrap_or_else(|| panic!("prints the API key: {said}"))
        .to_owned();
    c.register(&api_key, &shard_body("ann-zone"))
        .await
        .expect("the operator's account works on the running registry");

    let again = operator("ann");
    assert!(!again.status.success(), "a taken name is refused");
    let why = String::from_utf8_lossy(&again.stderr);
    assert!(why.contains("already exists"), "{why}");
    drop(be);
    std::fs::remove_dir_all(&dir).unwrap();
}
