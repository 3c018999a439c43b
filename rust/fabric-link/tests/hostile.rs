//! Hostile link sessions against a real zone's link listener on loopback: no credential,
//! garbage, another fabric's or another zone's credential, a zone that may not dial, and a
//! proven zone sending forged `from_zone` and garbage. Each is refused or dropped and counted,
//! and nothing changes in the zones.

mod common;

use std::time::Duration;

use common::*;
use ed25519_dalek::SigningKey;
use fabric_auth::{LinkCredentialIssuer, LinkProof};
use fabric_core::coords::{Vec3, vec3_micros};
use fabric_core::entity::Entity;
use fabric_core::zone::{Holding, Zone, ZoneStats};
use fabric_core::zone_control::{ControlKind, ZoneControl};
use fabric_core::zones::{ZoneId, ZoneLayout};
use fabric_link::session::{LINK_CHANNEL, REFUSED_CLOSE_CODE, parse_accept, unix_now};
use fabric_link::{LinkCounters, Member, ZoneLinks};
use fabric_net::{Client, ClientConfig, ClientEvent};

/// A session to `m`'s link listener: waits for the connection, sends `first` (if any) on the
/// link channel, and returns the client with what came back first.
fn attempt(m: &Member, first: Option<Vec<u8>>) -> (Client, Option<ClientEvent>) {
    let rt = fabric_net::runtime_handle();
    let cfg = ClientConfig::pinning(&m.url, &m.cert_hashes).unwrap();
    let mut c = Client::connect(cfg);
    let ev = rt.block_on(async {
        match tokio::time::timeout(Duration::from_secs(5), c.next_event()).await {
            Ok(Some(ClientEvent::Connected { .. })) => {}
            other => panic!("the session should open: {other:?}"),
        }
        if let Some(b) = first {
            c.send_message_on(LINK_CHANNEL, b).unwrap();
        }
        // The zone's rows may come before its answer: skip datagrams.
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match c.next_event().await {
                    Some(ClientEvent::Datagram(_)) => continue,
                    other => return other,
                }
            }
        })
        .await
        .ok()
        .flatten()
    });
    (c, ev)
}

fn assert_refused(ev: Option<ClientEvent>, what: &str) {
    match ev {
        Some(ClientEvent::Closed { code, .. }) => {
            assert_eq!(
                code,
                Some(REFUSED_CLOSE_CODE),
                "{what}: refused with the link code"
            )
        }
        other => panic!("{what}: expected a refusal, got {other:?}"),
    }
}

fn proof(
    fabric_key: &SigningKey,
    fabric: &str,
    zone: ZoneId,
    zones: u8,
    listener: &Member,
) -> Vec<u8> {
    let link_key = SigningKey::from_bytes(&[zone + 100; 32]);
    let cred = LinkCredentialIssuer::new(fabric_key.clone(), 3600)
        .issue_bytes(fabric, zone, zones, &link_key.verifying_key(), unix_now())
        .unwrap();
    LinkProof::make(&link_key, &cred, &listener.cert_hashes[0].0, unix_now())
}

/// Zones 1 and 2 of a 3-zone fabric (zone 0 is played by the tests), linked, each holding
/// a few entities at rest.
fn two_of_three() -> Vec<Host> {
    let layout = ZoneLayout::new(3).unwrap();
    let links: Vec<ZoneLinks> = [1, 2]
        .map(|z| ZoneLinks::start(link_config(z, layout)).unwrap())
        .into();
    let members: Vec<Member> = links.iter().map(ZoneLinks::member).collect();
    let hosts: Vec<Host> = links
        .into_iter()
        .zip([1u8, 2])
        .map(|(l, z)| {
            l.set_members(members.clone());
            let mut zone = Zone::new(zone_config(z, layout)).unwrap();
            let r = layout.range(z).unwrap();
            for i in 0..5u32 {
                let p: Vec3 = code_position(r.start + r.width() / 7 * (i + 1));
                zone.spawn(Entity::at(z as u32 * 100 + i, p)).unwrap();
            }
            Host::start(zone, l)
        })
        .collect();
    let refs: Vec<&Host> = hosts.iter().collect();
    wait_linked_pair(&refs);
    hosts
}

fn code_position(code: u32) -> Vec3 {
    let b = fabric_core::coords::WorldBounds::demo();
    let o = b.cell_origin(fabric_core::hilbert::decode(code));
    vec3_micros([0, 1, 2].map(|k| o[k] + b.cell_size(k) as i64 / 2))
}

fn wait_linked_pair(hosts: &[&Host]) {
    wait_until("1-2 linked", Duration::from_secs(15), || {
        hosts[0].lock().links.is_linked(2) && hosts[1].lock().links.is_linked(1)
    });
}

/// What must not change: holdings and the zone's counters (rows from the neighbour aside).
fn zone_state(h: &Host) -> (Vec<Holding>, ZoneStats) {
    let g = h.lock();
    let mut s = *g.zone.stats();
    s.row_batches = 0;
    (g.zone.holdings().collect(), s)
}

#[test]
fn sessions_without_a_good_credential_are_refused_and_counted() {
    let hosts = two_of_three();
    let before: Vec<_> = hosts.iter().map(zone_state).collect();
    let z1 = hosts[0].member();
    let counters = |h: &Host| -> LinkCounters { h.lock().links.counters() };

    let (_c, ev) = attempt(&z1, None);
    assert_refused(ev, "no credential");
    let (_c, ev) = attempt(&z1, Some(b"let me in".to_vec()));
    assert_refused(ev, "garbage instead of a proof");
    let c = counters(&hosts[0]);
    assert_eq!((c.no_credential, c.sessions_refused), (2, 2), "{c:?}");

    let (_c, ev) = attempt(&z1, Some(proof(&fabric_key(), "another-fabric", 0, 3, &z1)));
    assert_refused(ev, "another fabric's credential");
    let rogue = SigningKey::from_bytes(&[7; 32]);
    let (_c, ev) = attempt(&z1, Some(proof(&rogue, FABRIC, 0, 3, &z1)));
    assert_refused(ev, "a credential signed by another key");
    let (_c, ev) = attempt(&z1, Some(proof(&fabric_key(), FABRIC, 0, 4, &z1)));
    assert_refused(ev, "a credential for another fabric size");
    // Zone 2's credential (from its real hello to zone 1, say) with a proof by another key.
    let link_key = SigningKey::from_bytes(&[1; 32]);
    let cred2 = LinkCredentialIssuer::new(fabric_key(), 3600)
        .issue_bytes(
            FABRIC,
            2,
            3,
            &SigningKey::from_bytes(&[2; 32]).verifying_key(),
            unix_now(),
        )
        .unwrap();
    let stolen = LinkProof::make(&link_key, &cred2, &z1.cert_hashes[0].0, unix_now());
    let (_c, ev) = attempt(&z1, Some(stolen));
    assert_refused(ev, "another zone's credential without its key");
    // A proof made for another listener (zone 2's) replayed to zone 1.
    let z2 = hosts[1].member();
    let (_c, ev) = attempt(&z1, Some(proof(&fabric_key(), FABRIC, 0, 3, &z2)));
    assert_refused(ev, "a proof made for another listener");
    let c = counters(&hosts[0]);
    assert_eq!(c.bad_credential, 5, "{c:?}");

    // A genuine zone 2 may not dial zone 1 (the lower zone dials).
    let (_c, ev) = attempt(&z1, Some(proof(&fabric_key(), FABRIC, 2, 3, &z1)));
    assert_refused(ev, "a zone that does not dial this one");
    let c = counters(&hosts[0]);
    assert_eq!((c.wrong_zone, c.sessions_refused), (1, 8), "{c:?}");

    let after: Vec<_> = hosts.iter().map(zone_state).collect();
    assert_eq!(before, after, "nothing changed in the zones");
    assert!(
        hosts[0].lock().links.is_linked(2),
        "the real link is still up"
    );
}

#[test]
fn forged_from_zone_and_garbage_from_a_proven_zone_are_dropped_and_counted() {
    let hosts = two_of_three();
    let z1 = hosts[0].member();
    let (c, ev) = attempt(&z1, Some(proof(&fabric_key(), FABRIC, 0, 3, &z1)));
    match ev {
        Some(ClientEvent::Message(m)) => {
            assert_eq!(parse_accept(&m), Some(1), "accepted by zone 1")
        }
        other => panic!("a proven zone 0 is accepted: {other:?}"),
    }
    wait_until("zone 1 sees zone 0", Duration::from_secs(5), || {
        hosts[0].lock().links.is_linked(0)
    });
    let before: Vec<_> = hosts.iter().map(zone_state).collect();
    // A commit "from zone 2" on zone 0's link, an intent-sized blob, garbage, on both channels.
    let forged = ZoneControl::new(ControlKind::Commit, 2, 1, 0, 0)
        .to_bytes()
        .to_vec();
    let mut bad_version = ZoneControl::new(ControlKind::Ping, 0, 1, 0, 0)
        .to_bytes()
        .to_vec();
    bad_version[8] = 9;
    c.send_message_on(LINK_CHANNEL, forged.clone()).unwrap();
    c.send_datagram(&forged).unwrap();
    c.send_message_on(LINK_CHANNEL, bad_version).unwrap();
    c.send_message_on(LINK_CHANNEL, vec![0x4D; 244]).unwrap();
    c.send_message_on(LINK_CHANNEL, b"garbage".to_vec())
        .unwrap();
    c.send_datagram(b"more garbage").unwrap();
    // One good ping last: once zone 1 answers it, the reliable packets before it were handled.
    let ping = ZoneControl::new(ControlKind::Ping, 0, 77, 0, 0)
        .to_bytes()
        .to_vec();
    c.send_message_on(LINK_CHANNEL, ping).unwrap();
    let mut c = c;
    let pong = fabric_net::runtime_handle().block_on(async {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match c.next_event().await {
                    Some(ClientEvent::Message(m)) => {
                        if let Ok(p) = ZoneControl::decode(&m)
                            && p.kind == ControlKind::Pong
                        {
                            return p;
                        }
                    }
                    Some(ClientEvent::Datagram(_)) => {}
                    other => panic!("session ended: {other:?}"),
                }
            }
        })
        .await
        .expect("a pong")
    });
    assert_eq!(
        (pong.from_zone, pong.field),
        (1, 77),
        "zone 1 answered the good ping"
    );
    // Datagrams are not ordered with the stream: wait for them too.
    wait_until("the datagrams counted", Duration::from_secs(5), || {
        let c = hosts[0].lock().links.counters();
        c.forged_from_zone >= 2 && c.bad_packets >= 4
    });
    let counters = hosts[0].lock().links.counters();
    assert_eq!(
        counters.forged_from_zone, 2,
        "forged commit, reliable and datagram: {counters:?}"
    );
    assert_eq!(counters.bad_packets, 4, "undecodable packets: {counters:?}");
    let link0 = hosts[0]
        .lock()
        .links
        .stats()
        .into_iter()
        .find(|s| s.zone == 0)
        .unwrap();
    assert_eq!(link0.dropped, 6, "all dropped on the link: {link0:?}");
    let after: Vec<_> = hosts.iter().map(zone_state).collect();
    // The ping moved the zone's clock and ping state only; holdings and counters are the same.
    assert_eq!(before, after, "nothing changed in the zones");
}
