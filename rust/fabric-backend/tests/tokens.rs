//! Join tokens and ReBAC against the real binary: issuance only after a `join` check,
//! offline verification with the key from `GET /keys/join`, and refusal of forged, expired,
//! edited and wrong-zone tokens.

mod common;

use common::{Backend, account, register, shard_body};
use ed25519_dalek::SigningKey;
use fabric_auth::keys::{public_key_from_b64, signing_key_from_b64};
use fabric_auth::{JoinClaims, JoinTokenIssuer, JoinTokenVerifier, TokenError};
use fabric_backend::model::TupleBody;
use hyper::Method;
use serde_json::json;

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn t(o: &str, r: &str, s: &str) -> TupleBody {
    TupleBody {
        object: o.into(),
        relation: r.into(),
        subject: s.into(),
    }
}

#[tokio::test]
async fn rebac_gates_issuance_and_tokens_verify_offline() {
    let be = Backend::spawn(&["--token-ttl-s", "120"]);
    let c = be.client();
    let ann = account(&c, "ann").await;
    let bob = account(&c, "bob").await;
    let mut private = shard_body("guild-hall");
    private.public = Some(false);
    let z = register(&c, &ann, &private).await;
    let zone = format!("zone:{}", z.id);

    let denied = c
        .issue_join_token(&bob, z.id)
        .await
        .expect_err("bob denied");
    assert_eq!(denied.code(), Some("join_denied"), "{denied}");
    let owner = c
        .issue_join_token(&ann, z.id)
        .await
        .expect("owner may join");
    assert_eq!(owner.zone_id, z.id);

    // bob -> member of guild -> guild may join the zone.
    c.add_tuple(&ann, &t("group:guild", "owner", "user:ann"))
        .await
        .unwrap();
    c.add_tuple(&ann, &t("group:guild", "member", "user:bob"))
        .await
        .unwrap();
    c.add_tuple(&ann, &t(&zone, "joiner", "group:guild#member"))
        .await
        .unwrap();
    let issued = c
        .issue_join_token(&bob, z.id)
        .await
        .expect("bob allowed now");

    // A zone verifies offline with only the published key.
    let keys = c.join_keys().await.expect("keys");
    assert_eq!(keys.keys.len(), 1, "one key");
    assert_eq!(keys.keys[0].alg, "Ed25519");
    assert_eq!(keys.token_ttl_s, 120);
    let pk = public_key_from_b64(&keys.keys[0].public_key).expect("decode key");
    let verifier = JoinTokenVerifier::new([pk]);
    let claims = verifier
        .verify(&issued.token, &z.id.to_string(), now_s())
        .expect("offline verification");
    assert_eq!(claims.sub, "bob", "subject");
    assert_eq!(claims.exp, issued.expires_at, "expiry matches response");
    assert_eq!(claims.exp - claims.iat, 120, "configured TTL");
    assert_eq!(claims.kid, keys.keys[0].kid, "kid matches published key");
    assert!(
        matches!(
            verifier.verify(&issued.token, &z.id.to_string(), claims.exp + 60),
            Err(TokenError::Expired { .. })
        ),
        "expires under an injected later clock"
    );

    // Revocation: removing bob from the guild denies new tokens.
    c.remove_tuple(&ann, &t("group:guild", "member", "user:bob"))
        .await
        .unwrap();
    let denied = c.issue_join_token(&bob, z.id).await.expect_err("revoked");
    assert_eq!(denied.code(), Some("join_denied"), "{denied}");

    // Only admins write tuples on a zone; bob cannot grant himself.
    let err = c
        .add_tuple(&bob, &t(&zone, "joiner", "user:bob"))
        .await
        .expect_err("bob is not admin");
    assert_eq!(err.code(), Some("forbidden"), "{err}");
    // And cannot take over a claimed group.
    let err = c
        .add_tuple(&bob, &t("group:guild", "owner", "user:bob"))
        .await
        .expect_err("group already owned");
    assert_eq!(err.code(), Some("forbidden"), "{err}");
}

#[tokio::test]
async fn public_zones_admit_any_account_and_upload_checks_follow_tuples() {
    let be = Backend::spawn(&[]);
    let c = be.client();
    let ann = account(&c, "ann").await;
    let bob = account(&c, "bob").await;
    let z = register(&c, &ann, &shard_body("public")).await;
    c.issue_join_token(&bob, z.id)
        .await
        .expect("public zone admits bob");

    c.add_tuple(&ann, &t("map:plaza", "owner", "user:ann"))
        .await
        .unwrap();
    assert!(
        c.check(&ann, "upload", "map:plaza").await.unwrap(),
        "owner uploads"
    );
    assert!(
        !c.check(&bob, "upload", "map:plaza").await.unwrap(),
        "bob may not"
    );
    c.add_tuple(&ann, &t("map:plaza", "uploader", "user:bob"))
        .await
        .unwrap();
    assert!(
        c.check(&bob, "upload", "map:plaza").await.unwrap(),
        "granted"
    );
    let err = c
        .check(&bob, "fly", "map:plaza")
        .await
        .expect_err("no such permission");
    assert_eq!(err.code(), Some("unknown_relation"), "{err}");
}

async fn verify_code(c: &fabric_backend::client::Client, token: &str, zone: &str) -> (u16, String) {
    match c.verify_join_token(token, zone.parse().unwrap()).await {
        Ok(_) => (200, "ok".into()),
        Err(e) => match e {
            fabric_backend::client::ClientError::Api { status, code, .. } => {
                (status.as_u16(), code)
            }
            other => panic!("verify request: {other}"),
        },
    }
}

#[tokio::test]
async fn forged_expired_and_wrong_zone_tokens_are_refused() {
    // The operator's key file lets this test sign tokens with the real key (e.g. expired ones).
    let dir = std::env::temp_dir().join(format!("fabric-backend-key-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_path = dir.join("join.key");
    let be = Backend::spawn(&["--join-key-file", key_path.to_str().unwrap()]);
    let c = be.client();
    let real = signing_key_from_b64(&std::fs::read_to_string(&key_path).unwrap()).unwrap();
    let real = JoinTokenIssuer::new(real, 300);
    let ann = account(&c, "ann").await;
    let z = register(&c, &ann, &shard_body("z")).await;
    let other = register(&c, &ann, &shard_body("other")).await;
    let zone = z.id.to_string();

    let good = c.issue_join_token(&ann, z.id).await.unwrap().token;
    assert_eq!(
        verify_code(&c, &good, &zone).await,
        (200, "ok".into()),
        "valid token"
    );
    assert_eq!(
        c.join_keys().await.unwrap().keys[0].kid,
        real.kid(),
        "server uses the key file"
    );

    let now = now_s();
    let claims = |iat: u64, exp: u64, zone: &str| JoinClaims {
        kid: real.kid().into(),
        sub: "ann".into(),
        zone: zone.into(),
        iat,
        exp,
        jti: "test".into(),
        place: false,
    };
    let expired = real.sign(&claims(now - 1000, now - 700, &zone));
    let future = real.sign(&claims(now + 1000, now + 1100, &zone));
    let forger = JoinTokenIssuer::new(SigningKey::from_bytes(&[9; 32]), 300);
    let foreign = forger.issue("ann", &zone, "f", now).unwrap().0;
    let forged = forger.sign(&claims(now, now + 100, &zone)); // claims the real kid
    let mut edited = good.clone();
    edited.replace_range(10..11, if &good[10..11] == "A" { "B" } else { "A" });

    for (name, token, zone_id, code) in [
        ("expired", expired.as_str(), zone.as_str(), "token_expired"),
        (
            "future",
            future.as_str(),
            zone.as_str(),
            "token_not_yet_valid",
        ),
        (
            "foreign key",
            foreign.as_str(),
            zone.as_str(),
            "token_unknown_key",
        ),
        (
            "forged",
            forged.as_str(),
            zone.as_str(),
            "token_bad_signature",
        ),
        (
            "wrong zone",
            good.as_str(),
            &other.id.to_string(),
            "token_wrong_zone",
        ),
        ("garbage", "fj1.xx.yy", zone.as_str(), "token_malformed"),
    ] {
        assert_eq!(
            verify_code(&c, token, zone_id).await,
            (401, code.to_string()),
            "{name}"
        );
    }
    let (status, code) = verify_code(&c, &edited, &zone).await;
    assert_eq!(status, 401, "edited token refused ({code})");
    assert!(
        code == "token_bad_signature" || code == "token_malformed",
        "edited token code {code}"
    );
    drop(be);
    std::fs::remove_dir_all(&dir).unwrap();
}

async fn check_for(
    c: &fabric_backend::client::Client,
    key: &str,
    subject: &str,
    object: &str,
) -> (u16, serde_json::Value) {
    let body = json!({"permission": "join", "object": object, "subject": subject})
        .to_string()
        .into_bytes();
    let r = c
        .raw(
            Method::POST,
            "/check",
            Some(key),
            Some("application/json"),
            body,
        )
        .await
        .expect("check request");
    (r.status.as_u16(), r.json())
}

#[tokio::test]
async fn zone_admins_check_their_players_and_others_may_not() {
    let be = Backend::spawn(&[]);
    let c = be.client();
    let ann = account(&c, "ann").await;
    let bob = account(&c, "bob").await;
    let mut private = shard_body("guild-hall");
    private.public = Some(false);
    let z = register(&c, &ann, &private).await;
    let zone = format!("zone:{}", z.id);
    // The owner (the zone's operator) checks bob: denied, then allowed once bob is a joiner.
    assert_eq!(
        check_for(&c, &ann, "bob", &zone).await,
        (200, json!({"allowed": false}))
    );
    c.add_tuple(&ann, &t(&zone, "joiner", "user:bob"))
        .await
        .unwrap();
    assert_eq!(
        check_for(&c, &ann, "bob", &zone).await,
        (200, json!({"allowed": true}))
    );
    // Bob is no admin: he may not ask about anyone else, and the refusal says so.
    let (status, body) = check_for(&c, &bob, "ann", &zone).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    // Naming oneself is the plain check.
    assert_eq!(
        check_for(&c, &bob, "bob", &zone).await,
        (200, json!({"allowed": true}))
    );
}

#[tokio::test]
async fn join_tokens_carry_place_when_the_account_may_place_on_the_shards_map() {
    let be = Backend::spawn(&[]);
    let c = be.client();
    let ann = account(&c, "ann").await;
    let bob = account(&c, "bob").await;
    let pia = account(&c, "pia").await;
    let z = register(&c, &ann, &shard_body("public")).await; // on map plaza
    let verifier = JoinTokenVerifier::new([public_key_from_b64(
        &c.join_keys().await.unwrap().keys[0].public_key,
    )
    .unwrap()]);
    let place = |token: &str| {
        verifier
            .verify(token, &z.id.to_string(), now_s())
            .expect("a valid token")
            .place
    };
    let token = |key| {
        let c = &c;
        let id = z.id;
        async move { c.issue_join_token(key, id).await.expect("may join").token }
    };
    assert!(
        !place(&token(&bob).await),
        "nobody may place before any tuple"
    );

    c.add_tuple(&ann, &t("map:plaza", "owner", "user:ann"))
        .await
        .unwrap();
    c.add_tuple(&ann, &t("map:plaza", "placer", "user:pia"))
        .await
        .unwrap();
    assert!(place(&token(&ann).await), "the map's owner may place");
    assert!(place(&token(&pia).await), "a placer may place");
    assert!(
        !place(&token(&bob).await),
        "bob holds no relation on the map"
    );
    assert!(
        c.check(&pia, "place", "map:plaza").await.unwrap(),
        "POST /check knows the permission"
    );
    assert!(
        !c.check(&pia, "upload", "map:plaza").await.unwrap(),
        "placing does not grant uploading"
    );
    c.add_tuple(&ann, &t("map:plaza", "uploader", "user:bob"))
        .await
        .unwrap();
    assert!(place(&token(&bob).await), "an uploader may place");
    c.remove_tuple(&ann, &t("map:plaza", "placer", "user:pia"))
        .await
        .unwrap();
    assert!(
        !place(&token(&pia).await),
        "a token issued after the tuple went says no"
    );
}
