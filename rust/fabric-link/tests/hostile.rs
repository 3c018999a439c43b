//! Hostile link sessions against a real zone's link listener on loopback: no credential,
//! garbage, another fabric's or another zone's credential, a zone that may not dial, and a
//! proven zone sending forged `from_zone` and garbage. Each is refused or dropped and counted,
//! and nothing changes in the zones. The sessions themselves are `common::probe`'s, which the
//! end-to-end test against real zone processes shares.

mod common;

use std::time::Duration;

use common::probe;
use common::*;
use fabric_core::coords::{Vec3, vec3_micros};
use fabric_core::entity::Entity;
use fabric_core::zone::{Holding, Zone, ZoneStats};
use fabric_core::zones::ZoneLayout;
use fabric_link::{LinkCounters, Member, ZoneLinks};

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

    probe::without_credential(&z1);
    let c = counters(&hosts[0]);
    assert_eq!((c.no_credential, c.sessions_refused), (2, 2), "{c:?}");
    let z2 = hosts[1].member();
    probe::with_bad_credentials(&fabric_key(), FABRIC, &z1, &z2);
    let c = counters(&hosts[0]);
    assert_eq!(c.bad_credential, 5, "{c:?}");
    probe::as_a_zone_that_may_not_dial(&fabric_key(), FABRIC, &z1);
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
    let mut c = probe::proven_zone_0(&fabric_key(), FABRIC, &z1);
    wait_until("zone 1 sees zone 0", Duration::from_secs(5), || {
        hosts[0].lock().links.is_linked(0)
    });
    let before: Vec<_> = hosts.iter().map(zone_state).collect();
    let pong = probe::forged_and_garbage_then_ping(&mut c);
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
