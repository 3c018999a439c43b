//! Hostile sessions on the link path of real zone processes (issue 10, "Hostile links").
//!
//! Zones 1 and 2 of a 3-zone fabric run as headless Godot processes linked over loopback
//! WebTransport; zone 0 is started, linked and killed, and the test plays it from then on. It
//! opens sessions to zone 1's link listener without a credential, with garbage, with another
//! fabric's credential, one signed by another key, one for another fabric size, another zone's
//! credential without its key, a proof made for another listener, and as a zone that may not
//! dial zone 1; then, proven as zone 0, it sends a commit forged as zone 2's (reliable and as a
//! datagram), a packet of an unknown version, garbage and one good ping.
//!
//! Each attempt is refused with the link close code or dropped, and counted in zone 1's own
//! `/metrics` (`fabric_zone_link_sessions_refused_total{reason}`,
//! `fabric_zone_link_packets_dropped_total{reason}`); nothing changes in either zone: the same
//! global ids held (hysteresis is set so high that nothing migrates, so the sets are exact),
//! no bad packet reached a zone's core, the 1-2 link stays up.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use fabric_e2e::linked_zones::{Fabric, LinkedZone, TEST_FABRIC_KEY, read_state};
use fabric_e2e::zone_probe::{http_get, metrics};
use fabric_link::Member;

/// The hostile sessions, shared with fabric-link's in-process test.
#[path = "../../../rust/fabric-link/tests/common/probe.rs"]
mod probe;

const FABRIC: &str = "e2e-hostile-links";

fn fabric_key() -> SigningKey {
    fabric_auth::keys::signing_key_from_b64(TEST_FABRIC_KEY).expect("the test fabric key")
}

/// A metric of zone `z` with its labels, 0 when absent.
fn labelled(z: &LinkedZone, name: &str, reason: &str) -> f64 {
    let text = http_get(z.metrics, "/metrics").expect("/metrics");
    text.lines()
        .find(|l| l.starts_with(name) && l.contains(&format!("reason=\"{reason}\"")))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0.0)
}

fn refused(z: &LinkedZone, reason: &str) -> f64 {
    labelled(z, "fabric_zone_link_sessions_refused_total", reason)
}

fn dropped(z: &LinkedZone, reason: &str) -> f64 {
    labelled(z, "fabric_zone_link_packets_dropped_total", reason)
}

fn metric(z: &LinkedZone, name: &str) -> f64 {
    metrics(z.metrics)
        .expect("/metrics")
        .get(name)
        .copied()
        .unwrap_or_else(|| panic!("{name} missing"))
}

/// Waits until `what` holds (the zone publishes its metrics once a second).
fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The global ids zone `z` holds.
fn held(z: &LinkedZone) -> BTreeSet<u32> {
    read_state(z.metrics)
        .expect("/state")
        .1
        .into_keys()
        .collect()
}

#[test]
fn hostile_link_sessions_against_real_zone_processes_are_refused_dropped_and_counted() {
    let mut f = Fabric::start(
        FABRIC,
        3,
        &[
            "--population",
            "wanderers",
            "--entities",
            "120",
            "--seed",
            "11",
            // Nothing migrates: the held sets compared below are exact.
            "--hysteresis-ticks",
            "1000000",
        ],
    )
    .expect("3 zone processes");
    f.link_neighbours().expect("the fabric links");
    f.kill(0).expect("zone 0 killed");
    let (z1, z2) = (&f.zones[1], &f.zones[2]);
    // Zone 1 notices zone 0's departure (idle timeout) and keeps its link to zone 2.
    wait_until(
        "zones 1 and 2 unlinked zone 0",
        Duration::from_secs(30),
        || metric(z1, "fabric_zone_links") == 1.0 && metric(z2, "fabric_zone_links") == 1.0,
    );
    let m1 = Member::parse(&z1.member).expect("zone 1's member entry");
    let m2 = Member::parse(&z2.member).expect("zone 2's member entry");
    let before = (held(z1), held(z2));
    assert!(
        !before.0.is_empty() && !before.1.is_empty(),
        "both zones hold wanderers"
    );

    let key = fabric_key();
    probe::without_credential(&m1);
    probe::with_bad_credentials(&key, FABRIC, &m1, &m2);
    probe::as_a_zone_that_may_not_dial(&key, FABRIC, &m1);
    wait_until("the refusals published", Duration::from_secs(5), || {
        refused(z1, "wrong_zone") >= 1.0
    });
    assert_eq!(refused(z1, "no_credential"), 2.0, "no proof, garbage");
    assert_eq!(
        refused(z1, "bad_credential"),
        5.0,
        "fabric, key, size, stolen, listener"
    );
    assert_eq!(refused(z1, "wrong_zone"), 1.0, "zone 2 dialling zone 1");

    // Proven as zone 0: forged `from_zone`, an unknown version, garbage, then a good ping.
    let mut c = probe::proven_zone_0(&key, FABRIC, &m1);
    let pong = probe::forged_and_garbage_then_ping(&mut c);
    assert_eq!(
        (pong.from_zone, pong.field),
        (1, 77),
        "zone 1 answered the good ping"
    );
    // Datagrams are not ordered with the stream, and metrics are published once a second.
    wait_until("the drops published", Duration::from_secs(10), || {
        dropped(z1, "forged_from_zone") >= 2.0 && dropped(z1, "bad_packet") >= 4.0
    });
    assert_eq!(
        dropped(z1, "forged_from_zone"),
        2.0,
        "forged commit, reliable and datagram"
    );
    assert_eq!(
        dropped(z1, "bad_packet"),
        4.0,
        "version, intent-sized blob, two garbage"
    );

    // Nothing changed in either zone.
    assert_eq!(
        (held(z1), held(z2)),
        before,
        "the same entities held by each zone"
    );
    for z in [z1, z2] {
        assert_eq!(
            metric(z, "fabric_zone_bad_packets_total"),
            0.0,
            "nothing reached a core"
        );
        assert_eq!(
            metric(z, "fabric_zone_migrations_in_total"),
            0.0,
            "nothing migrated"
        );
    }
    assert_eq!(
        refused(z2, "no_credential") + refused(z2, "bad_credential"),
        0.0,
        "zone 2 untouched"
    );
    assert_eq!(
        metric(z2, "fabric_zone_links"),
        1.0,
        "the 1-2 link is still up"
    );
    drop(c);
    f.stop();
}
