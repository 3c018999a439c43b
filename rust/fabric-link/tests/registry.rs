//! Registry mode: zones register with a real `fabric-backend` (in this process, on a real
//! socket and SQLite), get their link credentials from it, find each other through
//! `GET /fabrics/{fabric}/members`, link, hand entities over, and relink when a zone comes
//! back on another port; links outlive a rotation of the registry's signing key.

mod common;

use std::time::Duration;

use common::*;
use ed25519_dalek::SigningKey;
use fabric_auth::keys::{key_id, public_key_from_b64};
use fabric_backend::config::Config;
use fabric_backend::server::Bound;
use fabric_core::zone::Zone;
use fabric_core::zones::{ZoneId, ZoneLayout};
use fabric_link::{LinkConfig, ZoneLinks};
use fabric_net::ServerIdentity;
use fabric_net::http::Endpoint;
use fabric_net::registry::{Registration, RegistrationConfig, RegistryEvent};

struct Registry {
    url: String,
    api_key: String,
}

fn start_registry() -> Registry {
    start_registry_with(&Config::new("127.0.0.1:0".parse().unwrap(), ":memory:"))
}

fn start_registry_with(cfg: &Config) -> Registry {
    let rt = fabric_net::runtime_handle();
    let bound = rt.block_on(Bound::bind(cfg)).expect("backend binds");
    let addr = bound.local_addr();
    rt.spawn(bound.serve(std::future::pending()));
    let client = fabric_backend::client::Client::new(addr.to_string());
    let api_key = rt
        .block_on(client.create_account("operator"))
        .expect("account")
        .api_key;
    Registry {
        url: format!("http://{addr}"),
        api_key,
    }
}

/// Starts zone `zone`'s links, registers it as a member and installs its granted credential.
fn join(reg: &Registry, zone: ZoneId, layout: ZoneLayout) -> (ZoneLinks, Registration) {
    let mut cfg = LinkConfig::awaiting_credential(
        FABRIC,
        zone,
        layout,
        "127.0.0.1:0".parse().unwrap(),
        ServerIdentity::self_signed_local().unwrap(),
        SigningKey::generate(&mut rand::rngs::OsRng),
    );
    cfg.proof_timeout = Duration::from_secs(2);
    cfg.idle_timeout = Duration::from_secs(3);
    let mut links = ZoneLinks::start(cfg).expect("links start");
    let me = links.member();
    let mut registration = Registration::start_in_fabric(
        RegistrationConfig {
            backend: Endpoint::new(&reg.url, &[]).unwrap(),
            pinned_join_keys: Vec::new(),
            api_key: reg.api_key.clone(),
            address: Some("127.0.0.1".into()),
            port: links.local_addr().port(),
            map: "fabric".into(),
            name: format!("zone-{zone}"),
            cert_hash: me.cert_hashes[0].to_base64(),
            next_cert_hash: None,
            max_users: 32,
            public: false,
            heartbeat: Duration::from_millis(500),
        },
        links.fabric_membership(),
    );
    let rt = fabric_net::runtime_handle();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match registration.next_event().await {
                    Some(RegistryEvent::Registered { .. }) => return,
                    Some(_) => {}
                    None => panic!("registration ended"),
                }
            }
        })
        .await
        .expect("registered")
    });
    assert!(registration.link_grant().is_some(), "a link credential");
    links.follow_grants(registration.link_grants());
    links.follow_registry(
        &Endpoint::new(&reg.url, &[]).unwrap(),
        &reg.api_key,
        Duration::from_millis(200),
    );
    (links, registration)
}

#[test]
fn zones_find_each_other_through_the_registry_and_relink_when_one_moves() {
    let reg = start_registry();
    let layout = ZoneLayout::new(3).unwrap();
    let mut registrations = Vec::new();
    let mut hosts: Vec<Host> = (0..3)
        .map(|z| {
            let (links, r) = join(&reg, z, layout);
            registrations.push(r);
            Host::start(Zone::new(zone_config(z, layout)).unwrap(), links)
        })
        .collect();
    let refs: Vec<&Host> = hosts.iter().collect();
    wait_linked(&refs);
    let ids = spawn_wanderers(&hosts, 0, 400, 5);
    let c = watch(&refs, &ids, Duration::from_secs(60), |c| c.commits >= 100);
    assert_eq!(c.held, 400);

    // Zone 2 stops (deregisters) and comes back on another port with a new certificate and
    // link key: the others learn it from the registry and relink.
    let old_port = hosts[2].lock().links.local_addr().port();
    hosts.pop().unwrap().kill();
    registrations.pop().unwrap().stop();
    let (links, r) = join(&reg, 2, layout);
    registrations.push(r);
    assert_ne!(links.local_addr().port(), old_port, "moved");
    hosts.push(Host::start(
        Zone::new(zone_config(2, layout)).unwrap(),
        links,
    ));
    let refs: Vec<&Host> = hosts.iter().collect();
    wait_linked(&refs);
    let sessions: u64 = hosts[0]
        .lock()
        .links
        .stats()
        .iter()
        .find(|s| s.zone == 2)
        .unwrap()
        .sessions;
    assert_eq!(sessions, 2, "zone 0 dialed the new zone 2");
}

/// The key id of the key that signed a registration's current credential.
fn grant_kid(r: &Registration) -> String {
    let grant = r.link_grant().expect("a grant");
    key_id(&public_key_from_b64(&grant.issuer_key).unwrap())
}

fn sessions(host: &Host, peer: ZoneId) -> u64 {
    host.lock()
        .links
        .stats()
        .iter()
        .find(|s| s.zone == peer)
        .map_or(0, |s| s.sessions)
}

/// Closes the link 0-1 and waits until zone 0 made a new session to zone 1 (both sides then
/// checked each other's credential again).
fn relink(hosts: &[Host]) {
    let before = sessions(&hosts[0], 1);
    hosts[0].lock().links.disconnect(1);
    wait_until("relinked", Duration::from_secs(30), || {
        sessions(&hosts[0], 1) > before && hosts[0].lock().links.is_linked(1)
    });
    wait_linked(&hosts.iter().collect::<Vec<_>>());
}

#[test]
fn links_outlive_a_rotation_of_the_registry_key() {
    // Seconds the replaced key keeps verifying: several heartbeats (500 ms) long.
    const OVERLAP_S: u64 = 5;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("registry.sqlite3").display().to_string();
    let mut cfg = Config::new("127.0.0.1:0".parse().unwrap(), db.clone());
    cfg.join_key_refresh_ms = 100;
    let reg = start_registry_with(&cfg);
    let layout = ZoneLayout::new(2).unwrap();
    let mut registrations = Vec::new();
    let hosts: Vec<Host> = (0..2)
        .map(|z| {
            let (links, r) = join(&reg, z, layout);
            registrations.push(r);
            Host::start(Zone::new(zone_config(z, layout)).unwrap(), links)
        })
        .collect();
    wait_linked(&hosts.iter().collect::<Vec<_>>());
    let first = sessions(&hosts[0], 1);
    let old_kid = grant_kid(&registrations[0]);

    // What `fabric-backend --rotate-join-key` does, on the running registry's database.
    let store = fabric_backend::server::open_store(&db, None).unwrap();
    let now_s = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let rotated = fabric_backend::keyring::rotate(&cfg, &*store, now_s(), OVERLAP_S).unwrap();
    assert_eq!(rotated.previous_kid, old_kid);
    wait_until(
        "both zones renew their credentials",
        Duration::from_secs(30),
        || {
            registrations
                .iter()
                .all(|r| grant_kid(r) == rotated.current_kid)
        },
    );
    assert!(
        hosts[0].lock().links.is_linked(1) && hosts[1].lock().links.is_linked(0),
        "the links made before the rotation are still up"
    );
    assert_eq!(sessions(&hosts[0], 1), first, "and were not remade");

    // Inside the overlap a new session is checked with the renewed credentials.
    relink(&hosts);
    // After it the old key verifies nothing: the zones trust the new key alone and still link.
    wait_until("the old key retires", Duration::from_secs(30), || {
        now_s() >= rotated.previous_retires_at
            && registrations
                .iter()
                .all(|r| r.link_grant().unwrap().trusted_keys.len() == 1)
    });
    relink(&hosts);
    assert_eq!(sessions(&hosts[0], 1), first + 2, "two relinks, no more");
}
