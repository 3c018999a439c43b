//! Client replication wire format, version 1: every offset pinned by golden bytes (the layout
//! of `docs/protocol.md`, "Client replication, version 1") and every decoder error reachable.

use fabric_core::client_view::wire::{
    Ack, EnterRecord, MAX_HANDLES, Packet, PacketHeader, PositionCode, ReplWireError, UpdateRecord,
};
use proptest::prelude::*;

fn golden_packet() -> Packet {
    Packet {
        header: PacketHeader {
            tick: 0x0102_0304,
            seq: 0x0506,
            anchor_mm: [1, -1, 1000],
        },
        leaves: vec![3],
        enters: vec![EnterRecord {
            handle: 4,
            global_id: 300,
            class_word: 0x0500_0007,
            zone: 2,
            offset_mm: [1, -2, 0],
            velocity_q: [256, 0, -1],
        }],
        updates: vec![
            UpdateRecord {
                handle: 5,
                age: 3,
                position: PositionCode::Predicted,
                velocity_delta: None,
                zone: None,
            },
            UpdateRecord {
                handle: 6,
                age: 2,
                position: PositionCode::Small([-2, 0, 1]),
                velocity_delta: None,
                zone: Some(1),
            },
            UpdateRecord {
                handle: 9,
                age: 0,
                position: PositionCode::Residual([100, -100, 0]),
                velocity_delta: Some([1, -1, 0]),
                zone: None,
            },
        ],
    }
}

#[rustfmt::skip]
const GOLDEN: &[u8] = &[
    // header: kind 'C', version 1, tick u32 LE, seq u16 LE, leave count, enter count
    0x43, 0x01, 0x04, 0x03, 0x02, 0x01, 0x06, 0x05, 0x01, 0x01,
    // anchor: zigzag varints 1 -> 2, -1 -> 1, 1000 -> 2000
    0x02, 0x01, 0xD0, 0x0F,
    // leave: handle 3
    0x03,
    // enter: handle 4, id 300, class u32 LE, zone 2, offset (1, -2, 0), velocity (256, 0, -1)
    0x04, 0xAC, 0x02, 0x07, 0x00, 0x00, 0x05, 0x02, 0x02, 0x03, 0x00, 0x80, 0x04, 0x00, 0x01,
    // update handle 5: key gap 5 << 1, control: predicted, age 3
    0x0A, 0x18,
    // update handle 6: key gap 0 | zone flag, control: small, age 2; residual byte; zone 1
    0x01, 0x11, 0x38, 0x01,
    // update handle 9: key gap 2 << 1, control: residual + velocity, age 0;
    // residual (100, -100, 0); velocity delta (1, -1, 0)
    0x04, 0x06, 0xC8, 0x01, 0xC7, 0x01, 0x00, 0x02, 0x01, 0x00,
];

#[test]
fn packet_offsets_are_pinned() {
    let mut buf = [0u8; 256];
    let n = golden_packet().encode(&mut buf).expect("fits");
    assert_eq!(&buf[..n], GOLDEN, "encoded bytes");
    let mut p = Packet::default();
    p.decode_into(GOLDEN).expect("decodes");
    assert_eq!(p, golden_packet(), "decoded packet");
}

#[test]
fn ack_offsets_are_pinned() {
    let ack = Ack {
        newest: 0x0102,
        bits: 0x8000_0005,
    };
    let bytes = [0x41, 0x01, 0x02, 0x01, 0x05, 0x00, 0x00, 0x80];
    assert_eq!(ack.encode(), bytes, "ack bytes");
    assert_eq!(Ack::decode(&bytes), Ok(ack), "ack decodes");
    let named: Vec<u16> = ack.acked().collect();
    assert_eq!(
        named,
        vec![0x0102, 0x0101, 0x00FF, 0x00E2],
        "newest, then bits 0, 2, 31"
    );
    assert_eq!(
        Ack::decode(&bytes[..7]),
        Err(ReplWireError::AckLength { got: 7 })
    );
    let mut bad = bytes;
    bad[0] = 0x43;
    assert!(matches!(
        Ack::decode(&bad),
        Err(ReplWireError::Kind { got: 0x43, .. })
    ));
    bad = bytes;
    bad[1] = 2;
    assert_eq!(Ack::decode(&bad), Err(ReplWireError::Version { got: 2 }));
}

fn decode(bytes: &[u8]) -> Result<Packet, ReplWireError> {
    let mut p = Packet::default();
    p.decode_into(bytes).map(|()| p)
}

#[test]
fn every_decoder_error_is_typed() {
    let header = |leaves: u8, enters: u8| vec![0x43, 1, 0, 0, 0, 0, 0, 0, leaves, enters, 0, 0, 0];
    assert_eq!(decode(&[]), Err(ReplWireError::Truncated { what: "kind" }));
    assert!(matches!(
        decode(&[0x41, 1]),
        Err(ReplWireError::Kind { got: 0x41, .. })
    ));
    assert_eq!(decode(&[0x43, 9]), Err(ReplWireError::Version { got: 9 }));
    assert_eq!(
        decode(&GOLDEN[..9]),
        Err(ReplWireError::Truncated {
            what: "enter count"
        })
    );
    // Anchor beyond 2^44 mm.
    let mut far = header(0, 0);
    far.truncate(10);
    far.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x04, 0, 0]);
    assert!(matches!(
        decode(&far),
        Err(ReplWireError::Range { what: "anchor", .. })
    ));
    // An 11-byte varint.
    let mut long = header(0, 0);
    long.truncate(10);
    long.extend_from_slice(&[0xFF; 11]);
    assert_eq!(decode(&long), Err(ReplWireError::Varint { what: "anchor" }));
    // Leaves out of order, and a handle beyond the bound.
    let mut order = header(2, 0);
    order.extend_from_slice(&[5, 5]);
    assert_eq!(
        decode(&order),
        Err(ReplWireError::Order {
            what: "leave",
            handle: 5
        })
    );
    let mut big = header(1, 0);
    big.extend_from_slice(&[0x80, 0x20]); // 4096
    assert_eq!(
        decode(&big),
        Err(ReplWireError::Handle {
            handle: MAX_HANDLES as u64
        })
    );
    // Counted records missing.
    assert_eq!(
        decode(&header(1, 0)),
        Err(ReplWireError::Truncated { what: "leave" })
    );
    // Update: reserved position mode 3, reserved bits of a small residual, truncated residual.
    let mut mode3 = header(0, 0);
    mode3.extend_from_slice(&[0x00, 0x0B]);
    assert_eq!(
        decode(&mode3),
        Err(ReplWireError::Reserved {
            what: "position mode"
        })
    );
    let mut small = header(0, 0);
    small.extend_from_slice(&[0x00, 0x09, 0x40]);
    assert_eq!(
        decode(&small),
        Err(ReplWireError::Reserved {
            what: "small residual"
        })
    );
    let mut cut = header(0, 0);
    cut.extend_from_slice(&[0x00, 0x0A, 0x02]);
    assert_eq!(
        decode(&cut),
        Err(ReplWireError::Truncated { what: "residual" })
    );
    // Residual beyond 2^25 mm.
    let mut res = header(0, 0);
    res.extend_from_slice(&[0x00, 0x0A, 0x82, 0x80, 0x80, 0x20, 0, 0]);
    assert!(matches!(
        decode(&res),
        Err(ReplWireError::Range {
            what: "residual",
            ..
        })
    ));
    // Update handle gaps that pass the bound.
    let mut gap = header(0, 0);
    gap.extend_from_slice(&[0xFE, 0x3F, 0x08, 0x02, 0x08]);
    assert!(matches!(decode(&gap), Err(ReplWireError::Handle { .. })));
    // A header alone is a valid (empty) packet.
    assert!(decode(&header(0, 0)).is_ok());
}

fn update_strategy() -> impl Strategy<Value = UpdateRecord> {
    let pos = prop_oneof![
        Just(PositionCode::Predicted),
        prop::array::uniform3(-2i8..=1).prop_map(PositionCode::Small),
        prop::array::uniform3(-(1i64 << 25)..=(1 << 25)).prop_map(PositionCode::Residual),
    ];
    (
        0u8..=31,
        pos,
        prop::option::of(prop::array::uniform3(-(1i32 << 25)..=(1 << 25))),
        prop::option::of(any::<u8>()),
    )
        .prop_map(|(age, position, velocity_delta, zone)| UpdateRecord {
            handle: 0,
            age,
            position,
            velocity_delta,
            zone,
        })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let mut p = Packet::default();
        let _ = p.decode_into(&bytes);
        let mut with_header = vec![0x43, 1];
        with_header.extend_from_slice(&bytes);
        let _ = p.decode_into(&with_header);
        let _ = Ack::decode(&bytes);
    }

    #[test]
    fn valid_packets_round_trip(
        tick in any::<u32>(),
        seq in any::<u16>(),
        anchor in prop::array::uniform3(-(1i64 << 44)..=(1 << 44)),
        handles in prop::collection::btree_set(0u16..4096, 0..40),
        updates in prop::collection::vec(update_strategy(), 40),
    ) {
        let updates: Vec<UpdateRecord> = handles
            .iter()
            .zip(updates)
            .map(|(&handle, u)| UpdateRecord { handle, ..u })
            .collect();
        let p = Packet {
            header: PacketHeader { tick, seq, anchor_mm: anchor },
            leaves: handles.iter().copied().take(5).collect(),
            enters: vec![],
            updates,
        };
        let mut buf = vec![0u8; 4096];
        let n = p.encode(&mut buf).expect("fits");
        prop_assert_eq!(decode(&buf[..n]), Ok(p));
    }
}

/// The packets a real `ClientView` writes for two entities, pinned byte for byte: the enter
/// packet, the next one (the enters were acked in between, so not resent), and a steady-state
/// steady-state packet where the moving entity's update is two bytes (on course: predicted).
#[test]
fn a_view_writes_the_documented_bytes() {
    use fabric_core::client_view::{Candidate, ClientMirror, ClientView, ReplicationConfig};
    use fabric_core::coords::{ZERO3, micros};

    let cfg = ReplicationConfig::with_radius(10_000);
    let mut view = ClientView::new(cfg).expect("config");
    let mut mirror = ClientMirror::new(cfg.max_entities, cfg.mtu);
    let mut buf = [0u8; 1200];
    let mut ents = [
        Candidate {
            global_id: 7,
            position: [micros(1_000_000), ZERO3[1], micros(-2_000_000)],
            velocity: [micros(1_000), ZERO3[1], ZERO3[2]], // 1 mm per tick along x
            zone: 1,
            class_word: 0x0100_0203,
        },
        Candidate {
            global_id: 300,
            position: [ZERO3[0], micros(500_000), ZERO3[2]],
            velocity: ZERO3,
            zone: 2,
            class_word: 0,
        },
    ];
    let mut packets = Vec::new();
    let mut pending_ack = None;
    for tick in 1..=3u64 {
        if let Some(ack) = pending_ack.take() {
            view.on_ack(&ack);
        }
        let v = ents[0].velocity[0];
        ents[0].position[0] += v;
        let len = view
            .write_tick(tick, &ZERO3, &ents, &mut buf)
            .expect("a packet every tick");
        mirror.apply(&buf[..len]).expect("valid");
        pending_ack = mirror.ack();
        packets.push(buf[..len].to_vec());
    }
    #[rustfmt::skip]
    let enter: &[u8] = &[
        0x43, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, // tick 1, seq 0, 0 leaves, 2 enters
        0x00, 0x00, 0x00,                                           // anchor (0, 0, 0) mm
        // handle 0, id 7, class, zone 1, offset (1001, 0, -2000) mm, velocity (256, 0, 0)
        0x00, 0x07, 0x03, 0x02, 0x00, 0x01, 0x01, 0xD2, 0x0F, 0x00, 0x9F, 0x1F, 0x80, 0x04, 0x00, 0x00,
        // handle 1, id 300, class 0, zone 2, offset (0, 500, 0) mm, velocity 0
        0x01, 0xAC, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0xE8, 0x07, 0x00, 0x00, 0x00, 0x00,
    ];
    assert_eq!(packets[0], enter, "tick 1: both enter");
    assert_eq!(packets[1][2], 2, "tick 2");
    assert_eq!(packets[1][6], 1, "seq 1");
    assert_eq!(
        packets[1][9], 0,
        "the enters of tick 1 were acked before tick 2: none resent"
    );
    #[rustfmt::skip]
    let steady: &[u8] = &[
        0x43, 0x01, 0x03, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, // tick 3, seq 2, no leaves, no enters
        0x00, 0x00, 0x00,                                           // anchor
        0x00, 0x08, // handle 0: predicted from tick 2's update, acked (age 1)
    ];
    // Entity 300 is idle: weight 1/4, so it is not due yet.
    assert_eq!(packets[2], steady, "tick 3: one 2-byte update");
    let m = mirror.get(7).expect("held");
    assert_eq!(m.position[0], micros(1_003_000), "x after three 1 mm steps");
}
