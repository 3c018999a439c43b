//! Link queues are bounded in bytes: a send over the outbound bound is refused (and counted),
//! received packets over the inbound bound are dropped (and counted) while the tick does not
//! drain; sends to a zone that is not linked are refused. Reliable packets get twice the
//! bound of datagrams, and are drained before them.

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
    // Reliable packets: bounds of 200 out and 400 in.
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
            limit: 200
        }),
        "a packet over the outbound bound is refused"
    );
    // 200 bytes hold ten pings: a burst runs into the bound until the writer catches up.
    let mut full = 0;
    for _ in 0..50 {
        wait_until("room in the queue", Duration::from_secs(5), || {
            match l0.send(1, Delivery::Reliable, &ping) {
                Ok(()) => true,
                Err(LinkSendError::Full { queued, .. }) => {
                    assert!(queued + 20 > 200, "refused only over the bound: {queued}");
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
        packets, 20,
        "400 bytes of 20-byte pings waited for the tick"
    );
    assert_eq!(
        l1.counters().inbound_full,
        30,
        "the rest was dropped and counted"
    );
    assert_eq!(l1.stats()[0].dropped, 30);
    let s0 = l0.stats()[0];
    assert_eq!(
        (s0.refused, s0.packets_out),
        (2 + full, 50),
        "refusals counted: {s0:?}"
    );
}

/// A backlog of interest rows (datagrams) that fills the inbound bound neither drops
/// reliable packets (hand-offs, control) nor holds them back: it is queued above the rows' bound and drained
/// before them. Before, it was dropped (its zone waited for the resend timeout) or drained
/// after every row ahead of it.
#[test]
fn rows_filling_the_inbound_queue_neither_drop_nor_delay_a_hand_off() {
    use fabric_core::entity_row::{EntityRow, ROW_LEN, RowBatchHeader};
    let layout = ZoneLayout::new(2).unwrap();
    let c0 = link_config(0, layout);
    let mut c1 = link_config(1, layout);
    c1.in_queue_bytes = 1000;
    let l0 = ZoneLinks::start(c0).unwrap();
    let mut l1 = ZoneLinks::start(c1).unwrap();
    let members = vec![l0.member(), l1.member()];
    l0.set_members(members.clone());
    l1.set_members(members);
    wait_until("linked", Duration::from_secs(30), || {
        l0.is_linked(1) && l1.is_linked(0)
    });
    let mut batch = RowBatchHeader {
        from_zone: 0,
        count: 1,
    }
    .encode()
    .to_vec();
    let mut row = [0u8; ROW_LEN];
    EntityRow {
        global_id: 7,
        position: [fabric_core::coords::micros(0); 3],
        velocity: [0; 3],
        acceleration: [0; 3],
        hlc: 0,
        payload: [0; 14],
    }
    .encode(&mut row);
    batch.extend_from_slice(&row);
    assert_eq!(Delivery::of(&batch), Delivery::Datagram);
    for _ in 0..30 {
        l0.send(1, Delivery::Datagram, &batch).unwrap();
    }
    // Rows dropped for the bound: at least 1000 - 104 bytes of rows are waiting.
    wait_until(
        "rows fill the inbound queue",
        Duration::from_secs(10),
        || l1.counters().inbound_full >= 1,
    );
    // Six reliable control packets (120 bytes: more than the room the rows left).
    let ping = ZoneControl::new(ControlKind::Ping, 0, 1, 0, 0).to_bytes();
    assert_eq!(Delivery::of(&ping), Delivery::Reliable);
    for _ in 0..6 {
        l0.send(1, Delivery::Reliable, &ping).unwrap();
    }
    // Rows add multiples of their length to the bytes received, the pings 20 each, in order:
    // all six have arrived once the total leaves the remainder of 120 (whatever rows were lost).
    let n = batch.len() as u64;
    let pings = 6 * ping.len() as u64;
    wait_until("the pings arrived", Duration::from_secs(10), || {
        l1.stats()[0].bytes_in % n == pings % n
    });
    let mut order = Vec::new();
    l1.drain(1000, |ev| {
        if let LinkEvent::Packet { bytes, .. } = ev {
            order.push(bytes.len());
        }
    });
    assert_eq!(
        order[..6],
        [ping.len(); 6],
        "every ping is kept and drained first, then the rows: {order:?}"
    );
    assert!(
        order[6..].iter().all(|&l| l as u64 == n),
        "only rows after them: {order:?}"
    );
    assert!(order.len() > 14, "rows were waiting too: {order:?}");
}
