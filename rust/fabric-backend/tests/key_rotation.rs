//! Signing-key rotation against the real binary: `fabric-backend --rotate-join-key`, run
//! against the database of a running backend, makes a new current key; the running backend
//! picks it up at its next refresh, lists both keys at `GET /keys/join`, signs with the new one,
//! still accepts tokens of the old one during the overlap and refuses them (with
//! `token_unknown_key`) after it; a member's link credential is renewed under the new key.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Backend, EVENT_DEADLINE, account, register, shard_body};
use ed25519_dalek::SigningKey;
use fabric_auth::keys::{key_id, public_key_from_b64, public_key_to_b64};
use fabric_auth::link_credential::credential_from_text;
use fabric_auth::{JoinTokenIssuer, LinkCredentialVerifier};
use fabric_backend::client::{Client, ClientError};
use fabric_backend::model::{FabricJoin, JoinKeys, LinkRenewal};

/// Seconds the replaced key keeps verifying in this test: long enough for the checks made
/// inside the overlap on a busy machine (asserted, not assumed), short enough to wait out.
const OVERLAP_S: u64 = 6;

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `POST /tokens/join/verify`: `Ok` (the subject) or the refusal's (status, code, message).
async fn verify(
    c: &Client,
    token: &str,
    zone: uuid::Uuid,
) -> Result<String, (u16, String, String)> {
    match c.verify_join_token(token, zone).await {
        Ok(v) => Ok(v.claims.sub),
        Err(ClientError::Api {
            status,
            code,
            message,
        }) => Err((status.as_u16(), code, message)),
        Err(other) => panic!("verify request: {other}"),
    }
}

/// Polls `GET /keys/join` until `done` holds (a guard deadline, not a timing assertion).
async fn keys_until(c: &Client, what: &str, done: impl Fn(&JoinKeys) -> bool) -> JoinKeys {
    let start = Instant::now();
    loop {
        let keys = c.join_keys().await.expect("GET /keys/join");
        if done(&keys) {
            return keys;
        }
        assert!(start.elapsed() < EVENT_DEADLINE, "{what}: still {keys:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn rotation_overlaps_then_retires_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    // The operator command must reach the running backend's storage: a SQLite file here (or
    // the suite's PostgreSQL database).
    let db = match common::test_db().as_str() {
        ":memory:" => dir.path().join("reg.sqlite3").display().to_string(),
        url => url.to_owned(),
    };
    let be = Backend::spawn(&["--db", &db, "--join-key-refresh-ms", "100"]);
    let c = be.client();
    let ann = account(&c, "ann").await;
    let zone = register(&c, &ann, &shard_body("plaza")).await;
    let link_key = SigningKey::from_bytes(&[9; 32]).verifying_key();
    let member_body = fabric_backend::model::RegisterShard {
        fabric: Some(FabricJoin {
            name: "world".into(),
            zone: 0,
            zones: 2,
            link_address: None,
            link_port: 7500,
            link_cert_hash: "h0".into(),
            link_next_cert_hash: None,
            link_public_key: public_key_to_b64(&link_key),
        }),
        ..shard_body("world-0")
    };
    let member = register(&c, &ann, &member_body).await;
    let first_grant = member.link.clone().expect("a link credential");
    let before = c.join_keys().await.unwrap();
    assert_eq!(before.keys.len(), 1, "one key before any rotation");
    assert!(before.keys[0].current && before.keys[0].retires_at.is_none());
    let old_kid = before.keys[0].kid.clone();
    let old_token = c.issue_join_token(&ann, zone.id).await.unwrap();
    assert_eq!(old_token.kid, old_kid);

    // The operator rotates, against the same database, while the backend runs.
    let out = Command::new(env!("CARGO_BIN_EXE_fabric-backend"))
        .args(["--db", &db, "--rotate-join-key"])
        .args(common::key_args(&["--db", &db]))
        .args(["--join-key-overlap-s", &OVERLAP_S.to_string()])
        .output()
        .expect("run the rotation");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "rotation failed: {said} {:?}",
        out.stderr
    );
    assert!(
        said.contains(&format!("previous kid {old_kid}")),
        "names the replaced key: {said}"
    );

    let during = keys_until(&c, "the backend picks up the rotation", |k| {
        k.keys.len() == 2
    })
    .await;
    let (new, old) = (&during.keys[0], &during.keys[1]);
    assert!(
        new.current && new.retires_at.is_none(),
        "current first: {during:?}"
    );
    assert_ne!(new.kid, old_kid, "a new key signs");
    assert!(said.contains(&format!("current kid {}", new.kid)), "{said}");
    assert_eq!(old.kid, old_kid, "the old key is still listed");
    assert!(!old.current, "the old key only verifies");
    let retires_at = old.retires_at.expect("the old key retires");

    // Inside the overlap: the old token still admits, new tokens carry the new key.
    assert!(now_s() < retires_at, "checks below run inside the overlap");
    assert_eq!(
        verify(&c, &old_token.token, zone.id).await,
        Ok("ann".into()),
        "a token of the old key admits during the overlap"
    );
    let new_token = c.issue_join_token(&ann, zone.id).await.unwrap();
    assert_eq!(new_token.kid, new.kid, "tokens are signed by the new key");
    // A member renews its link credential: signed by the new key, same membership and link key.
    let renewal = LinkRenewal {
        fabric: "world".into(),
        zone: 0,
        link_public_key: public_key_to_b64(&link_key),
    };
    let renewed = c
        .renew_link(member.id, &member.shard_secret, &renewal)
        .await
        .expect("renew the link credential");
    assert_eq!(renewed.issuer_key, new.public_key, "signed by the new key");
    assert_ne!(renewed.issuer_key, first_grant.issuer_key);
    // A neighbour trusting both listed keys accepts the credential from before and the renewed one.
    let both: Vec<_> = during
        .keys
        .iter()
        .map(|k| public_key_from_b64(&k.public_key).unwrap())
        .collect();
    let verifier = LinkCredentialVerifier::new("world", 2, both);
    for grant in [&first_grant, &renewed] {
        let claims = verifier
            .verify(&credential_from_text(&grant.credential).unwrap(), now_s())
            .expect("both credentials verify during the overlap");
        assert_eq!((claims.zone, claims.link_key), (0, link_key));
    }
    assert!(
        now_s() < retires_at,
        "the overlap lasted through the checks"
    );
    // Renewal is for the shard's own membership only.
    let wrong = c
        .renew_link(zone.id, &zone.shard_secret, &renewal)
        .await
        .expect_err("a non-member shard");
    assert_eq!(wrong.code(), Some("not_a_member"), "{wrong}");

    // After the overlap: the old key is gone from the list and its tokens are refused.
    let after = keys_until(&c, "the old key retires", |k| k.keys.len() == 1).await;
    assert_eq!(after.keys[0].kid, new.kid, "only the new key is left");
    assert!(
        now_s() >= retires_at,
        "retired at its stated time, not before"
    );
    let (status, code, message) = verify(&c, &old_token.token, zone.id)
        .await
        .expect_err("old token after the overlap");
    assert_eq!(
        (status, code.as_str()),
        (401, "token_unknown_key"),
        "{message}"
    );
    assert!(
        message.contains(&old_kid) && message.contains("rotation"),
        "the error names the key and why: {message}"
    );
    assert_eq!(
        verify(&c, &new_token.token, zone.id).await,
        Ok("ann".into()),
        "the new key's token still admits"
    );
}

#[tokio::test]
async fn a_token_of_an_unknown_key_is_refused_clearly() {
    let be = Backend::spawn(&[]);
    let c = be.client();
    let ann = account(&c, "ann").await;
    let zone = register(&c, &ann, &shard_body("plaza")).await;
    let stranger = JoinTokenIssuer::new(SigningKey::from_bytes(&[7; 32]), 60);
    let (token, _) = stranger
        .issue("ann", &zone.id.to_string(), "j", now_s())
        .unwrap();
    let (status, code, message) = verify(&c, &token, zone.id)
        .await
        .expect_err("a stranger's token");
    assert_eq!(
        (status, code.as_str()),
        (401, "token_unknown_key"),
        "{message}"
    );
    let kid = key_id(&stranger.verifying_key());
    assert!(
        message.contains(&kid) && message.contains("unknown key id"),
        "names the unknown kid: {message}"
    );
}

#[tokio::test]
async fn rotation_rewrites_a_key_file_privately_and_a_backend_serves_both_keys() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("join.key");
    let file_arg = file.display().to_string();
    let be = Backend::spawn(&["--join-key-file", &file_arg]);
    let old_kid = be.client().join_keys().await.unwrap().keys[0].kid.clone();
    drop(be);
    let out = Command::new(env!("CARGO_BIN_EXE_fabric-backend"))
        .args(["--db", ":memory:", "--join-key-file", &file_arg])
        .args(["--rotate-join-key", "--join-key-overlap-s", "3600"])
        .output()
        .expect("run the rotation");
    assert!(out.status.success(), "{out:?}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the rotated file stays private");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        text.lines().count(),
        2,
        "current and previous key: {}",
        text.len()
    );
    assert!(
        !dir.path().join("join.rotating").exists(),
        "no temporary file left"
    );
    let be = Backend::spawn(&["--join-key-file", &file_arg]);
    let keys = be.client().join_keys().await.unwrap();
    let kids: Vec<_> = keys
        .keys
        .iter()
        .map(|k| (k.kid.as_str(), k.current))
        .collect();
    assert_eq!(kids.len(), 2, "{kids:?}");
    assert_eq!(
        kids[1],
        (old_kid.as_str(), false),
        "the old key verifies, the new signs"
    );
}
