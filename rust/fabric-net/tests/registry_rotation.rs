//! A zone follows a rotation of the registry's signing key: after a heartbeat it reports the
//! new key list (`RegistryEvent::JoinKeysChanged`, the new key first, the old one still there
//! during the overlap) and again when the old key retires, so join tokens of either key admit
//! during the overlap and only the new key's after it. Runs a real `fabric-backend` in this
//! process on a real socket and SQLite file; the rotation is what `--rotate-join-key` runs.

use std::time::{Duration, Instant};

use fabric_auth::JoinTokenVerifier;
use fabric_auth::keys::public_key_from_b64;
use fabric_backend::config::Config;
use fabric_net::http::Endpoint;
use fabric_net::registry::{Registration, RegistryEvent};

mod registry_common;

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The next key list the zone reports (at registration or after a change).
async fn next_keys(reg: &mut Registration) -> Vec<String> {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match reg.next_event().await {
                Some(RegistryEvent::Registered { join_keys, .. })
                | Some(RegistryEvent::JoinKeysChanged { join_keys }) => return join_keys,
                Some(_) => {}
                None => panic!("registration ended"),
            }
        }
    })
    .await
    .expect("a key list within 20 s")
}

fn verifier(keys: &[String]) -> JoinTokenVerifier {
    JoinTokenVerifier::new(keys.iter().map(|k| public_key_from_b64(k).unwrap()))
}

#[test]
fn a_zone_trusts_both_keys_during_the_overlap_and_the_new_one_after() {
    let rt = fabric_net::runtime_handle();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("registry.sqlite3").display().to_string();
    let mut cfg = Config::new("127.0.0.1:0".parse().unwrap(), db.clone());
    cfg.join_key_refresh_ms = 100;
    let backend = registry_common::start_backend(&cfg, std::future::pending());
    let client = fabric_backend::client::Client::new(backend.addr.to_string());
    let api_key = backend.api_key.clone();
    let endpoint = Endpoint::new(&format!("http://{}", backend.addr), &[]).unwrap();
    let mut zone_cfg =
        registry_common::zone(endpoint, &api_key, Vec::new(), Duration::from_millis(100));
    zone_cfg.public = true;
    let mut reg = Registration::start(zone_cfg);
    let first = rt.block_on(next_keys(&mut reg));
    assert_eq!(first.len(), 1, "one key before the rotation");
    let zone = rt.block_on(client.list(None)).unwrap().shards[0].id;
    let old_token = rt
        .block_on(client.issue_join_token(&api_key, zone))
        .unwrap()
        .token;

    let store = fabric_backend::server::open_store(&db, None).unwrap();
    let rotated = fabric_backend::keyring::rotate(&cfg, &*store, now_s(), 4).unwrap();
    let during = rt.block_on(next_keys(&mut reg));
    assert_eq!(during.len(), 2, "new and old key: {during:?}");
    assert_eq!(
        during[1], first[0],
        "the old key is still trusted, after the new one"
    );
    let new_token = rt
        .block_on(client.issue_join_token(&api_key, zone))
        .unwrap()
        .token;
    let zone = zone.to_string();
    let t = now_s();
    assert!(
        t < rotated.previous_retires_at,
        "checked inside the overlap"
    );
    for token in [&old_token, &new_token] {
        verifier(&during)
            .verify(token, &zone, t)
            .expect("both keys' tokens admit during the overlap");
    }

    let start = Instant::now();
    let after = rt.block_on(next_keys(&mut reg));
    assert!(
        now_s() >= rotated.previous_retires_at,
        "changed again only when the old key retired ({:?} after the overlap began)",
        start.elapsed()
    );
    assert_eq!(after, during[..1], "only the new key is left");
    let refused = verifier(&after).verify(&old_token, &zone, now_s());
    assert!(
        matches!(refused, Err(fabric_auth::TokenError::UnknownKey(_))),
        "the old key's token is refused after the overlap: {refused:?}"
    );
    verifier(&after)
        .verify(&new_token, &zone, now_s())
        .expect("the new key's token still admits");
}
