//! Writes the seed corpora of the fuzz targets: valid encodings of each message (and a few
//! known-bad ones) under `fuzz/seeds/<target>/`, one small file each. The output is committed;
//! run this again after a layout changes:
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example seeds -- fuzz/seeds
//! ```

use std::path::Path;

use ed25519_dalek::SigningKey;
use fabric_auth::follow_ticket::{FollowTicket, FollowTicketSigner};
use fabric_auth::token::JoinTokenIssuer;
use fabric_core::coords::micros;
use fabric_core::entity::Entity;
use fabric_core::entity_row::{EntityRow, PAYLOAD_WORDS, RowBatchHeader};
use fabric_core::hlc::Hlc;
use fabric_core::migration_intent::MigrationIntent;
use fabric_core::packet_frame::{PacketHeader, TransferMode};
use fabric_core::player_command::{PlayerCommand, PlayerPacket};
use fabric_core::manifest::PropertyValue;
use fabric_core::session_control::ControlMessage;
use fabric_core::zone_control::{ControlKind, REFUSE_FULL, ZoneControl};
use fabric_net::CertHash;
use fabric_net::ws::{ENVELOPE_DATAGRAM, ENVELOPE_MESSAGE};

fn write(root: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = root.join(target);
    std::fs::create_dir_all(&dir).expect("create seed folder");
    std::fs::write(dir.join(name), bytes).expect("write seed");
}

fn row(gid: u32) -> EntityRow {
    let mut payload = [0u32; PAYLOAD_WORDS];
    payload[0] = 1 << 24 | 7 << 8;
    EntityRow {
        global_id: gid,
        position: [micros(1_000), micros(-2_000), micros(3_000_000)],
        velocity: [100, -100, 0],
        acceleration: [0, 1, -1],
        hlc: 0x0000_0102,
        payload,
    }
}

fn intent(from: u8, to: u8, id: u32) -> MigrationIntent {
    let mut payload = [0u32; PAYLOAD_WORDS];
    payload[0] = 5 << 24 | 0x12_3456;
    MigrationIntent {
        from_zone: from,
        to_zone: to,
        migration_id: id,
        sender_slot: 3,
        sent_tick: 2,
        sender_hlc: Hlc { l: 2, c: 0 },
        arrival_hlc: Hlc { l: 4, c: 0 },
        entity: Entity {
            global_id: 0xcafe,
            position: [micros(10), micros(20), micros(30)],
            velocity: [micros(1), micros(0), micros(-1)],
            acceleration: [micros(0); 3],
            hlc: 2,
            payload,
        },
        ownership: None,
    }
}

/// One `wire` record: op (`ticks << 1 | run_tick`), length, packet.
fn record(out: &mut Vec<u8>, op: u8, packet: &[u8]) {
    out.push(op);
    out.extend_from_slice(&(packet.len() as u16).to_le_bytes());
    out.extend_from_slice(packet);
}

/// `client_replication` seeds: a pick byte (0: fresh mirror, 1: primed) then the packets of a
/// real view's first ticks, and an ack.
fn client_replication(root: &Path) {
    let link = fabric_core::sim::replication::line_scenario(64, 41, |tick, link, t| {
        if let (Some(len), 1 | 2 | 41) = (t.sent, tick) {
            let mut seed = vec![u8::from(tick == 41)];
            seed.extend_from_slice(link.last_packet(len));
            write(root, "client_replication", &format!("tick-{tick}"), &seed);
        }
    });
    let mut ack = vec![0];
    ack.extend_from_slice(&link.mirror.ack().expect("acked").encode());
    write(root, "client_replication", "ack", &ack);
}

fn main() {
    let root = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/seeds".into());
    let root = Path::new(&root);

    let controls = [
        (
            "ping",
            ControlMessage::Ping {
                id: "c1-1746600000".into(),
            },
        ),
        (
            "hello",
            ControlMessage::Hello {
                id: "h-1".into(),
                token: None,
            },
        ),
        (
            "hello-token",
            ControlMessage::Hello {
                id: "h-2".into(),
                token: Some("fj1.abc.def".into()),
            },
        ),
        ("welcome-ack", ControlMessage::WelcomeAck { session: 7 }),
        ("join", ControlMessage::Join { peer_id: 12345 }),
        ("joined", ControlMessage::Joined { peer_id: 2 }),
        (
            "welcome",
            ControlMessage::Welcome {
                zone_id: 3,
                tick: 12345,
                session: 9,
            },
        ),
        ("pong", ControlMessage::pong("c1-1746600000")),
        (
            "reply-err",
            ControlMessage::Reply {
                id: "y".into(),
                result: Err("nope".into()),
            },
        ),
        (
            "error",
            ControlMessage::Error {
                code: "zone_unavailable".into(),
                message: "zone refused".into(),
            },
        ),
        (
            "props",
            ControlMessage::Properties {
                entity: 42,
                values: vec![
                    PropertyValue {
                        word: 1,
                        seq: 812,
                        value: 3,
                    },
                    PropertyValue {
                        word: 2,
                        seq: 790,
                        value: 0xFF80_2040,
                    },
                ],
            },
        ),
    ];
    for (name, m) in &controls {
        write(root, "session_control", name, &m.encode());
    }

    let mut frame = Vec::new();
    for (name, mode, payload) in [
        ("unreliable", TransferMode::Unreliable, &b"hello"[..]),
        ("ordered", TransferMode::UnreliableOrdered, &b"\x00\x01"[..]),
        ("reliable-empty", TransferMode::Reliable, &b""[..]),
    ] {
        PacketHeader {
            mode,
            channel: 3,
            peer: -2,
            seq: 77,
        }
        .encode_into(payload, &mut frame);
        write(root, "packet_frame", name, &frame);
    }

    client_replication(root);

    write(root, "entity_row", "row", &row(1).to_bytes());
    for count in [1u8, 3] {
        let mut batch = RowBatchHeader {
            from_zone: 2,
            count,
        }
        .encode()
        .to_vec();
        for g in 0..count {
            batch.extend_from_slice(&row(g.into()).to_bytes());
        }
        write(root, "entity_row", &format!("batch-{count}"), &batch);
    }

    let base = PlayerPacket {
        global_id: 7,
        position: [micros(10), micros(20), micros(-30)],
        velocity: [1, 2, 3],
        acceleration: [4, 5, 6],
        hlc: 0x0102_0304,
        command: PlayerCommand::PositionUpsert,
    };
    for (name, command) in [
        ("upsert", PlayerCommand::PositionUpsert),
        ("spike", PlayerCommand::VelocitySpike),
        ("nudge", PlayerCommand::Nudge { target: 9 }),
        (
            "stroke",
            PlayerCommand::StrokeKnot {
                stroke_id: 5,
                rgba: 0xff00_80ff,
            },
        ),
        (
            "asset",
            PlayerCommand::InstanceAsset {
                asset_id: 0x1122_3344_5566_7788,
                request: 7,
            },
        ),
    ] {
        write(
            root,
            "player_command",
            name,
            &PlayerPacket { command, ..base }.to_bytes(),
        );
    }

    write(
        root,
        "migration_intent",
        "intent",
        &intent(0, 1, 1).to_bytes(),
    );

    for k in ControlKind::ALL {
        let field2 = if k == ControlKind::Refuse {
            REFUSE_FULL
        } else {
            0
        };
        let c = ZoneControl::new(k, 0, 1, field2, 3);
        write(
            root,
            "zone_control",
            &format!("{k:?}").to_lowercase(),
            &c.to_bytes(),
        );
    }

    // The zone under test is zone 1 of 4; its neighbour 0 migrates an entity in, then commits.
    let it = intent(0, 1, 1).to_bytes();
    let commit = ZoneControl::new(ControlKind::Commit, 0, 1, 0, 0).to_bytes();
    let abort = ZoneControl::new(ControlKind::Abort, 0, 1, 0, 0).to_bytes();
    let drain = ZoneControl::new(ControlKind::Drain, 0, 2, 0, 0).to_bytes();
    let mut batch = RowBatchHeader {
        from_zone: 0,
        count: 1,
    }
    .encode()
    .to_vec();
    batch.extend_from_slice(&row(1).to_bytes());
    for (name, packets) in [
        (
            "intent-commit",
            vec![(3u8, &it[..]), (3, &commit[..]), (3, &[][..])],
        ),
        ("intent-abort", vec![(3, &it[..]), (2, &abort[..])]),
        ("drain-rows", vec![(1, &drain[..]), (3, &batch[..])]),
    ] {
        let mut out = Vec::new();
        for (op, p) in packets {
            record(&mut out, op, p);
        }
        write(root, "wire", name, &out);
    }

    write(
        root,
        "ws_envelope",
        "datagram",
        &[&[ENVELOPE_DATAGRAM][..], b"abc"].concat(),
    );
    write(
        root,
        "ws_envelope",
        "message",
        &[&[ENVELOPE_MESSAGE][..], b"xyz"].concat(),
    );

    let mut stream = Vec::new();
    for m in [&b"hello"[..], b"", b"\x01\x02\x03"] {
        stream.extend_from_slice(&(m.len() as u32).to_le_bytes());
        stream.extend_from_slice(m);
    }
    write(root, "reliable_stream", "three-messages", &stream);
    // A 16 MiB announcement followed by two bytes: the read must not allocate 16 MiB.
    write(
        root,
        "reliable_stream",
        "announce-16mib",
        &[0x00, 0x00, 0x00, 0x01, b'a', b'b'],
    );

    let h = CertHash(std::array::from_fn(|i| i as u8 * 7));
    write(root, "cert_hash", "base64", h.to_base64().as_bytes());
    write(root, "cert_hash", "hex-colons", h.to_hex().as_bytes());
    write(
        root,
        "cert_hash",
        "list",
        format!("{h},{}\n", CertHash([0xab; 32])).as_bytes(),
    );

    let identity = wtransport::Identity::self_signed(["localhost", "127.0.0.1"]).expect("identity");
    let der = identity.certificate_chain().as_slice()[0].der().to_vec();
    write(root, "cert_der", "self-signed-14d", &der);

    let issuer = JoinTokenIssuer::new(SigningKey::from_bytes(&[7; 32]), 300);
    let (token, _) = issuer
        .issue("alice", "zone-1", "j-1", 1_800_000_000)
        .expect("issue");
    write(root, "join_token", "valid", token.as_bytes());
    let (other, _) = issuer
        .issue("bob", "zone-2", "j-2", 1_700_000_000)
        .expect("issue");
    write(root, "join_token", "wrong-zone-expired", other.as_bytes());

    let signer = FollowTicketSigner::new("fuzz", SigningKey::from_bytes(&[9; 32]));
    let ticket = FollowTicket {
        from: 0,
        to: 1,
        avatar: 7,
        account: String::new(),
        exp: 1_800_000_030,
        nonce: 1,
        place: false,
    };
    write(
        root,
        "follow_ticket",
        "valid",
        signer.sign(&ticket).expect("sign").as_bytes(),
    );

    let http: [(&str, &[u8]); 4] = [
        ("plain", b"HTTP/1.1 201 Created\r\nContent-Length: 9\r\n\r\n{\"a\":1}  "),
        ("chunked", b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"err\r\n11\r\nor\":{\"code\":\"x\"}}\r\n0\r\n\r\n"),
        ("chunk-ext", b"HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n2;x=y\r\n[]\r\n0\r\n\r\n"),
        ("hostile-chunk-size", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n{}\r\n0\r\n\r\n"),
    ];
    for (name, raw) in http {
        write(root, "http_response", name, raw);
    }
    println!("seeds written under {}", root.display());
}
