//! Bad input: every case gets a precise 4xx with a stable JSON error code, and leaves the
//! registry exactly as it was (compared through the API before and after each request).

mod common;

use common::{Backend, account, register, shard_body};
use fabric_backend::client::Client;
use hyper::Method;
use serde_json::{Value, json};

const JSON: Option<&str> = Some("application/json");

async fn snapshot(c: &Client, ann: &str, ids: &[String]) -> Value {
    let mut shards = Vec::new();
    for id in ids {
        let r = c
            .raw(
                Method::GET,
                &format!("/shards/{id}"),
                Some(ann),
                None,
                vec![],
            )
            .await
            .unwrap();
        shards.push(r.json());
    }
    let list = c
        .raw(Method::GET, "/shards", Some(ann), None, vec![])
        .await
        .unwrap();
    let tuples = c
        .raw(
            Method::GET,
            &format!("/relationships?object=zone:{}", ids[0]),
            Some(ann),
            None,
            vec![],
        )
        .await
        .unwrap();
    let accounts = c
        .raw(
            Method::POST,
            "/accounts",
            None,
            JSON,
            br#"{"name":"probe"}"#.to_vec(),
        )
        .await
        .unwrap();
    // The probe account is created by the first snapshot; later ones must see it exist (409),
    // proving no bad request created or removed accounts in between... and the first one
    // creates it, so normalise its status.
    let probe = if accounts.status.as_u16() == 201 {
        409
    } else {
        accounts.status.as_u16()
    };
    json!({"shards": shards, "list": list.json(), "tuples": tuples.json(), "probe": probe})
}

#[tokio::test]
async fn bad_requests_get_precise_errors_and_change_nothing() {
    let be = Backend::spawn(&["--max-body-bytes", "4096"]);
    let c = be.client();
    let ann = account(&c, "ann").await;
    let a = register(&c, &ann, &shard_body("a")).await;
    let b = register(&c, &ann, &shard_body("b")).await;
    let ids = vec![a.id.to_string(), b.id.to_string()];
    let a_path = format!("/shards/{}", a.id);
    let unknown = "/shards/00000000-0000-4000-8000-000000000000".to_string();
    let hb = br#"{"current_users":1}"#.to_vec();
    let good_shard = serde_json::to_vec(&shard_body("x")).unwrap();
    let big = format!(
        r#"{{"port":1,"map":"m","name":"{}","cert_hash":"c"}}"#,
        "n".repeat(8000)
    )
    .into_bytes();
    let huge_url = format!(
        r#"{{"current_users":1,"asset_index_url":"{}"}}"#,
        "u".repeat(3000)
    );
    let fake_secret = "fss_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    type Case<'a> = (
        &'a str,
        Method,
        String,
        Option<&'a str>,
        Option<&'a str>,
        Vec<u8>,
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        ("register malformed json", Method::POST, "/shards".into(), Some(&ann), JSON, b"{port:".to_vec(), 400, "malformed_json"),
        ("register wrong content type", Method::POST, "/shards".into(), Some(&ann), Some("text/plain"), good_shard.clone(), 415, "unsupported_media_type"),
        ("register oversize body", Method::POST, "/shards".into(), Some(&ann), JSON, big, 413, "body_too_large"),
        ("register missing field", Method::POST, "/shards".into(), Some(&ann), JSON, br#"{"port":1}"#.to_vec(), 422, "invalid_body"),
        ("register unknown field", Method::POST, "/shards".into(), Some(&ann), JSON, br#"{"port":1,"map":"m","name":"n","cert_hash":"c","admin":true}"#.to_vec(), 422, "invalid_body"),
        ("register port 0", Method::POST, "/shards".into(), Some(&ann), JSON, br#"{"port":0,"map":"m","name":"n","cert_hash":"c"}"#.to_vec(), 422, "invalid_field"),
        ("register port 70000", Method::POST, "/shards".into(), Some(&ann), JSON, br#"{"port":70000,"map":"m","name":"n","cert_hash":"c"}"#.to_vec(), 422, "invalid_field"),
        ("register empty name", Method::POST, "/shards".into(), Some(&ann), JSON, br#"{"port":1,"map":"m","name":"","cert_hash":"c"}"#.to_vec(), 422, "invalid_field"),
        ("register without credentials", Method::POST, "/shards".into(), None, JSON, good_shard.clone(), 401, "missing_credentials"),
        ("register with unknown key", Method::POST, "/shards".into(), Some("fak_nope"), JSON, good_shard.clone(), 401, "invalid_credentials"),
        ("register with shard secret", Method::POST, "/shards".into(), Some(&a.shard_secret), JSON, good_shard.clone(), 401, "invalid_credentials"),
        ("heartbeat unknown id", Method::PUT, unknown.clone(), Some(&a.shard_secret), JSON, hb.clone(), 404, "unknown_shard"),
        ("heartbeat bad id", Method::PUT, "/shards/not-a-uuid".into(), Some(&a.shard_secret), JSON, hb.clone(), 400, "invalid_id"),
        ("heartbeat another zone's id", Method::PUT, a_path.clone(), Some(&b.shard_secret), JSON, hb.clone(), 403, "wrong_shard"),
        ("heartbeat made-up secret", Method::PUT, a_path.clone(), Some(fake_secret), JSON, hb.clone(), 401, "invalid_credentials"),
        ("heartbeat with owner key", Method::PUT, a_path.clone(), Some(&ann), JSON, hb.clone(), 403, "forbidden"),
        ("heartbeat no credentials", Method::PUT, a_path.clone(), None, JSON, hb.clone(), 401, "missing_credentials"),
        ("heartbeat malformed json", Method::PUT, a_path.clone(), Some(&a.shard_secret), JSON, b"[1,".to_vec(), 400, "malformed_json"),
        ("heartbeat negative users", Method::PUT, a_path.clone(), Some(&a.shard_secret), JSON, br#"{"current_users":-1}"#.to_vec(), 422, "invalid_body"),
        ("heartbeat oversize url", Method::PUT, a_path.clone(), Some(&a.shard_secret), JSON, huge_url.into_bytes(), 422, "invalid_field"),
        ("delete with another zone's secret", Method::DELETE, a_path.clone(), Some(&b.shard_secret), None, vec![], 403, "wrong_shard"),
        ("delete unknown id", Method::DELETE, unknown.clone(), Some(&ann), None, vec![], 404, "unknown_shard"),
        ("token for unknown zone", Method::POST, "/tokens/join".into(), Some(&ann), JSON, br#"{"zone_id":"00000000-0000-4000-8000-000000000000"}"#.to_vec(), 404, "unknown_shard"),
        ("token with bad zone id", Method::POST, "/tokens/join".into(), Some(&ann), JSON, br#"{"zone_id":"zone-1"}"#.to_vec(), 422, "invalid_body"),
        ("verify forged token", Method::POST, "/tokens/join/verify".into(), None, JSON, format!(r#"{{"token":"fj1.e30.{}","zone_id":"{}"}}"#, "A".repeat(86), a.id).into_bytes(), 401, "token_malformed"),
        ("tuple malformed", Method::POST, "/relationships".into(), Some(&ann), JSON, br#"{"object":"zone","relation":"joiner","subject":"user:x"}"#.to_vec(), 422, "malformed_tuple"),
        ("tuple unknown kind", Method::POST, "/relationships".into(), Some(&ann), JSON, br#"{"object":"planet:x","relation":"owner","subject":"user:ann"}"#.to_vec(), 422, "unknown_object_kind"),
        ("tuple unknown relation", Method::POST, "/relationships".into(), Some(&ann), JSON, format!(r#"{{"object":"zone:{}","relation":"king","subject":"user:x"}}"#, a.id).into_bytes(), 422, "unknown_relation"),
        ("tuple on unknown zone", Method::POST, "/relationships".into(), Some(&ann), JSON, br#"{"object":"zone:00000000-0000-4000-8000-000000000000","relation":"joiner","subject":"user:x"}"#.to_vec(), 404, "unknown_shard"),
        ("tuple list without object", Method::GET, "/relationships".into(), Some(&ann), None, vec![], 400, "invalid_query"),
        ("account bad name", Method::POST, "/accounts".into(), None, JSON, br#"{"name":"no spaces"}"#.to_vec(), 422, "invalid_field"),
        ("account duplicate", Method::POST, "/accounts".into(), None, JSON, br#"{"name":"ann"}"#.to_vec(), 409, "account_exists"),
        ("non-bearer authorization", Method::GET, "/shards".into(), Some("fak_x extra"), None, vec![], 401, "invalid_credentials"),
        ("unknown route", Method::GET, "/zones".into(), None, None, vec![], 404, "not_found"),
        ("wrong method", Method::PATCH, "/shards".into(), None, None, vec![], 405, "method_not_allowed"),
    ];

    let before = snapshot(&c, &ann, &ids).await;
    for (name, method, path, bearer, ct, body, status, code) in cases {
        let r = c.raw(method, &path, bearer, ct, body).await.expect(name);
        assert_eq!(
            (r.status.as_u16(), r.error_code().as_deref()),
            (status, Some(code)),
            "{name}: body {}",
            String::from_utf8_lossy(&r.body)
        );
        let after = snapshot(&c, &ann, &ids).await;
        assert_eq!(after, before, "{name} changed the registry");
    }
}
