//! Link queues are bounded in bytes: a send over the outbound bound is refused (and counted),
//! received packets over the inbound bound are dropped (and counted) while the tick does not
//! drain; sends to a zone that is not linked are refused.

mod common;

use std::time::Duration;

use common::*;
use fabric_core::zone_control::{ControlKind, ZoneControl};
use fabric_core::zones::ZoneLayout;
use fabric_link::{Delivery, LinkEvent, LinkSendError, ZoneLinks};

#[test]
fn queues_are_bounded_in_bytes_and_refusals_are_counted() {
    let layout = ZoneLayout::new(2).unwrap();
    let mut c0 = link_config(0, layout);
    c0.out_queue_bytes = 100;
    let mut c1 = link_config(1, layout);
    c1.in_queue_bytes = 200;
    let l0 = ZoneLinks::start(c0).unwrap();
    let mut l1 = ZoneLinks::start(c1).unwrap();
    let ping = ZoneControl::new(ControlKind::Ping, 0, 1, 0, 0).to_bytes();
    assert_eq!(
        l0.send(1, Delivery::Reliable, &ping),
        Err(LinkSendError::NotLinked(1)),
        "no member list yet: not linked"
    );
    let members = vec![l0.member(), l1.member()];
    l0.set_members(members.clone());
    l1.set_members(members);
    wait_until("linked", Duration::from_secs(30), || {
        l0.is_linked(1) && l1.is_linked(0)
    });
    let big = [0u8; 244];
    assert_eq!(
        l0.send(1, Delivery::Reliable, &big),
        Err(LinkSendError::Full {
            zone: 1,
            queued: 0,
            limit: 100
        }),
        "a packet over the outbound bound is refused"
    );
    // 100 bytes hold five pings: a burst runs into the bound until the writer catches up.
    let mut full = 0;
    for _ in 0..50 {
        wait_until("room in the queue", Duration::from_secs(5), || {
            match l0.send(1, Delivery::Reliable, &ping) {
                Ok(()) => true,
                Err(LinkSendError::Full { queued, .. }) => {
                    assert!(queued + 20 > 100, "refused only over the bound: {queued}");
                    full += 1;
                    false
                }
                Err(e) => panic!("{e}"),
            }
        });
    }
    wait_until("50 pings received", Duration::from_secs(10), || {
        l1.stats()[0].packets_in == 50
    });
    let mut packets = 0;
    l1.drain(1000, |ev| {
        if let LinkEvent::Packet { from, bytes } = ev {
            assert_eq!((from, bytes), (0, &ping[..]));
            packets += 1;
        }
    });
    assert_eq!(
        packets, 10,
        "200 bytes of 20-byte pings waited for the tick"
    );
    assert_eq!(
        l1.counters().inbound_full,
        40,
        "the rest was dropped and counted"
    );
    assert_eq!(l1.stats()[0].dropped, 40);
    let s0 = l0.stats()[0];
    assert_eq!(
        (s0.refused, s0.packets_out),
        (2 + full, 50),
        "refusals counted: {s0:?}"
    );
}
