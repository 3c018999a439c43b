//! Hostile link sessions, shared by the in-process link tests (`tests/hostile.rs`) and the
//! end-to-end test against real zone processes (`tests/e2e/tests/hostile_links.rs`, which
//! includes this file by path): sessions to a zone's link listener with missing, bad or stolen
//! credentials, and, once proven, packets with a forged `from_zone`, a bad version or garbage.
#![allow(dead_code)]

use std::time::Duration;

use ed25519_dalek::SigningKey;
use fabric_auth::{LinkCredentialIssuer, LinkProof};
use fabric_core::zone_control::{ControlKind, ZoneControl};
use fabric_core::zones::ZoneId;
use fabric_link::Member;
use fabric_link::session::{LINK_CHANNEL, REFUSED_CLOSE_CODE, parse_accept, unix_now};
use fabric_net::{Client, ClientConfig, ClientEvent, CloseReason};

/// A session to `m`'s link listener: waits for the connection, sends `first` (if any) on the
/// link channel, and returns the client with what came back first (datagrams skipped: the
/// zone's rows may come before its answer).
pub fn attempt(m: &Member, first: Option<Vec<u8>>) -> (Client, Option<ClientEvent>) {
    let rt = fabric_net::runtime_handle();
    let cfg = ClientConfig::pinning(&m.url, &m.cert_hashes).unwrap();
    let mut c = Client::connect(cfg);
    let ev = rt.block_on(async {
        match tokio::time::timeout(Duration::from_secs(10), c.next_event()).await {
            Ok(Some(ClientEvent::Connected { .. })) => {}
            other => panic!("the session should open: {other:?}"),
        }
        if let Some(b) = first {
            c.send_message_on(LINK_CHANNEL, b).unwrap();
        }
        tokio::time::timeout(Duration::from_secs(15), async {
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

/// Asserts that `ev` is the link listener's refusal.
pub fn assert_refused(ev: Option<ClientEvent>, what: &str) {
    match ev {
        Some(ClientEvent::Closed { reason }) => assert!(
            matches!(
                reason,
                CloseReason::ByPeer {
                    code: Some(REFUSED_CLOSE_CODE),
                    ..
                }
            ),
            "{what}: refused by the listener with the link code: {reason:?}"
        ),
        other => panic!("{what}: expected a refusal, got {other:?}"),
    }
}

/// A link proof for `zone` of a `zones`-zone fabric `fabric`, its credential signed by
/// `fabric_key`, made for `listener`.
pub fn proof(
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

/// Two sessions to `target` without a credential: none sent, and garbage instead of a proof.
/// Each must be refused (counted as `no_credential`).
pub fn without_credential(target: &Member) {
    let (_c, ev) = attempt(target, None);
    assert_refused(ev, "no credential");
    let (_c, ev) = attempt(target, Some(b"let me in".to_vec()));
    assert_refused(ev, "garbage instead of a proof");
}

/// Five sessions to `target` (zone 1 of a 3-zone fabric `fabric` signed by `key`), each as
/// zone 0 with a credential that must not verify: another fabric's, one signed by another
/// key, one for another fabric size, zone 2's credential without zone 2's key, and a proof
/// made for `other`'s listener. Each must be refused (counted as `bad_credential`).
pub fn with_bad_credentials(key: &SigningKey, fabric: &str, target: &Member, other: &Member) {
    let (_c, ev) = attempt(target, Some(proof(key, "another-fabric", 0, 3, target)));
    assert_refused(ev, "another fabric's credential");
    let rogue = SigningKey::from_bytes(&[7; 32]);
    let (_c, ev) = attempt(target, Some(proof(&rogue, fabric, 0, 3, target)));
    assert_refused(ev, "a credential signed by another key");
    let (_c, ev) = attempt(target, Some(proof(key, fabric, 0, 4, target)));
    assert_refused(ev, "a credential for another fabric size");
    // Zone 2's credential (from its real hello to zone 1, say) with a proof by another key.
    let cred2 = LinkCredentialIssuer::new(key.clone(), 3600)
        .issue_bytes(
            fabric,
            2,
            3,
            &SigningKey::from_bytes(&[2; 32]).verifying_key(),
            unix_now(),
        )
        .unwrap();
    let link_key = SigningKey::from_bytes(&[1; 32]);
    let stolen = LinkProof::make(&link_key, &cred2, &target.cert_hashes[0].0, unix_now());
    let (_c, ev) = attempt(target, Some(stolen));
    assert_refused(ev, "another zone's credential without its key");
    let (_c, ev) = attempt(target, Some(proof(key, fabric, 0, 3, other)));
    assert_refused(ev, "a proof made for another listener");
}

/// A genuine zone 2 dialling `target` (zone 1; the lower zone dials): must be refused
/// (counted as `wrong_zone`).
pub fn as_a_zone_that_may_not_dial(key: &SigningKey, fabric: &str, target: &Member) {
    let (_c, ev) = attempt(target, Some(proof(key, fabric, 2, 3, target)));
    assert_refused(ev, "a zone that does not dial this one");
}

/// Opens a session to `target` (zone 1 of 3) proven as zone 0, which must be accepted.
pub fn proven_zone_0(key: &SigningKey, fabric: &str, target: &Member) -> Client {
    let (c, ev) = attempt(target, Some(proof(key, fabric, 0, 3, target)));
    match ev {
        Some(ClientEvent::Message(m)) => {
            assert_eq!(parse_accept(&m), Some(1), "accepted by zone 1")
        }
        other => panic!("a proven zone 0 is accepted: {other:?}"),
    }
    c
}

/// On a session proven as zone 0 to zone 1: a commit forged as zone 2's (reliable and as a
/// datagram: 2 `forged_from_zone`), a ping of an unknown version, an intent-sized blob and
/// two garbage packets (4 `bad_packet`), then one good ping; returns zone 1's pong (once it
/// came, every reliable packet before it was handled; the datagrams may still be on the way).
pub fn forged_and_garbage_then_ping(c: &mut Client) -> ZoneControl {
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
    let ping = ZoneControl::new(ControlKind::Ping, 0, 77, 0, 0)
        .to_bytes()
        .to_vec();
    c.send_message_on(LINK_CHANNEL, ping).unwrap();
    fabric_net::runtime_handle().block_on(async {
        tokio::time::timeout(Duration::from_secs(10), async {
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
    })
}
