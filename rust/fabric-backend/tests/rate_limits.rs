//! Rate limits on a running backend: sign-ups per address, join tokens per account, requests per
//! address; each refusal is 429 `rate_limited` with a `Retry-After` the caller can act on, and
//! one caller's exhaustion leaves another's budget alone.

mod common;

use axum::http::Method;
use common::{Backend, account, register, shard_body};
use fabric_backend::client::{Client, RawResponse};
use fabric_backend::model::JoinTokenRequest;

fn retry_after(r: &RawResponse) -> u64 {
    r.headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("429 without a Retry-After: {:?}", r.headers))
}

fn assert_limited(r: &RawResponse, what: &str) -> u64 {
    assert_eq!(r.status.as_u16(), 429, "{what}: {:?}", r.json());
    assert_eq!(r.json()["error"]["code"], "rate_limited", "{what}");
    retry_after(r)
}

async fn token(c: &Client, key: &str, zone_id: uuid::Uuid) -> RawResponse {
    let body = serde_json::to_vec(&JoinTokenRequest { zone_id }).unwrap();
    c.raw(
        Method::POST,
        "/tokens/join",
        Some(key),
        Some("application/json"),
        body,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn signups_tokens_and_requests_are_limited_with_retry_after() {
    let be = Backend::spawn(&[
        "--signups-per-ip-per-min",
        "3",
        "--tokens-per-account-per-min",
        "2",
        "--requests-per-ip-per-s",
        "40",
    ]);
    let c = be.client();

    // Sign-ups: 3 from this address within the minute, then refused for about 20 s.
    let ann = account(&c, "ann").await;
    let bob = account(&c, "bob").await;
    account(&c, "cid").await;
    let body = serde_json::to_vec(&serde_json::json!({"name": "dan"})).unwrap();
    let r = c
        .raw(
            Method::POST,
            "/accounts",
            None,
            Some("application/json"),
            body,
        )
        .await
        .unwrap();
    let wait = assert_limited(&r, "fourth sign-up");
    assert!((15..=21).contains(&wait), "one sign-up per 20 s: {wait}");

    // Join tokens: 2 per account, then refused; another account still gets its own.
    let zone = register(&c, &ann, &shard_body("z")).await;
    for i in 0..2 {
        assert_eq!(
            token(&c, &ann, zone.id).await.status.as_u16(),
            200,
            "token {i}"
        );
    }
    let wait = assert_limited(&token(&c, &ann, zone.id).await, "third token for ann");
    assert!((25..=31).contains(&wait), "one token per 30 s: {wait}");
    c.add_tuple(
        &ann,
        &fabric_backend::model::TupleBody {
            object: format!("zone:{}", zone.id),
            relation: "joiner".into(),
            subject: "user:bob".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        token(&c, &bob, zone.id).await.status.as_u16(),
        200,
        "bob's budget is his own"
    );

    // Requests: bursts of 80 from one address, then refused; the backend stays up.
    let mut refused = None;
    for i in 0..200 {
        let r = c
            .raw(Method::GET, "/healthz", None, None, Vec::new())
            .await
            .unwrap();
        if r.status.as_u16() == 429 {
            refused = Some((i, assert_limited(&r, "request flood")));
            break;
        }
    }
    let (at, wait) = refused.expect("a flood of requests is refused");
    assert!((60..=90).contains(&at), "refused after the burst, at {at}");
    assert_eq!(wait, 1, "requests come back within a second");
}
