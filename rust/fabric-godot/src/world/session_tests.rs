//! Unit tests of [`WorldSession`]: the join exchange byte by byte, and replication from a real
//! `fabric_core::client_view::ClientView` (the zone's own encoder) through the session.

use super::*;
use fabric_core::client_view::wire::ACK_KIND;
use fabric_core::client_view::{Ack, Candidate, ClientView};
use fabric_core::coords::{Micros, ZERO3};
use fabric_core::session_control::OwnershipState;

#[derive(Default)]
struct Sent(Vec<Vec<u8>>);

impl Link for Sent {
    fn datagram(&mut self, bytes: &[u8]) {
        self.0.push(bytes.to_vec());
    }
    fn message(&mut self, bytes: &[u8]) {
        self.0.push(bytes.to_vec());
    }
}

impl Sent {
    fn control(&mut self) -> Vec<ControlMessage> {
        let out = self
            .0
            .iter()
            .filter(|b| b.first() != Some(&ACK_KIND))
            .map(|b| ControlMessage::decode(b).expect("a control message"))
            .collect();
        self.0.clear();
        out
    }
}

fn config() -> SessionConfig {
    SessionConfig {
        token: Some("fj1.token".into()),
        spawn_at: Some([1_000_000, 0, -2_000_000]),
        tick_hz: 20.0,
    }
}

fn events(s: &mut WorldSession) -> Vec<WorldEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// A session that joined as avatar 500 of zone 3.
fn joined(link: &mut Sent) -> WorldSession {
    let mut s = WorldSession::new(config());
    s.on_connected(0, link);
    let welcome = ControlMessage::Welcome {
        zone_id: 3,
        tick: 10,
        session: 42,
    };
    s.on_bytes(10, &welcome.encode(), link);
    let avatar = ControlMessage::Avatar { id: 500, zone: 3 };
    s.on_bytes(20, &avatar.encode(), link);
    link.0.clear();
    events(&mut s);
    s
}

#[test]
fn the_join_says_hello_with_the_token_acks_the_welcome_and_asks_to_spawn_until_answered() {
    let mut link = Sent::default();
    let mut s = WorldSession::new(config());
    s.poll(0, &mut link);
    assert!(link.0.is_empty(), "nothing before the transport connects");
    s.on_connected(0, &mut link);
    assert_eq!(
        link.control(),
        [ControlMessage::Hello {
            id: "fabric-world".into(),
            token: Some("fj1.token".into())
        }]
    );
    s.poll(499, &mut link);
    assert!(link.0.is_empty(), "not resent before {SPAWN_RETRY_MS} ms");
    s.poll(500, &mut link);
    assert_eq!(link.control().len(), 1, "hello resent");
    let welcome = ControlMessage::Welcome {
        zone_id: 3,
        tick: 10,
        session: 42,
    };
    s.on_bytes(510, &welcome.encode(), &mut link);
    let spawn = ControlMessage::Spawn {
        at: Some([1_000_000, 0, -2_000_000]),
    };
    assert_eq!(
        link.control(),
        [ControlMessage::WelcomeAck { session: 42 }, spawn.clone()]
    );
    assert_eq!(events(&mut s), [WorldEvent::Connected { zone: 3 }]);
    assert!(s.is_admitted());
    s.on_bytes(520, &welcome.encode(), &mut link);
    assert_eq!(
        link.control(),
        [ControlMessage::WelcomeAck { session: 42 }],
        "a resent welcome is acked again, and nothing else"
    );
    s.poll(1010, &mut link);
    assert_eq!(link.control(), [spawn], "spawn resent");
    let avatar = ControlMessage::Avatar { id: 500, zone: 3 };
    s.on_bytes(1020, &avatar.encode(), &mut link);
    s.on_bytes(1030, &avatar.encode(), &mut link);
    assert_eq!(
        events(&mut s),
        [WorldEvent::AvatarSpawned { id: 500, zone: 3 }],
        "once, however often the zone answers"
    );
    assert_eq!(s.avatar(), Some(500));
    s.poll(5000, &mut link);
    assert!(link.0.is_empty(), "nothing resent once playing");
}

#[test]
fn a_spawn_point_in_another_zone_or_a_closed_session_ends_it_with_the_reason() {
    let mut link = Sent::default();
    let mut s = WorldSession::new(config());
    s.on_connected(0, &mut link);
    let elsewhere = ControlMessage::AvatarElsewhere {
        zone: 2,
        address: Some("127.0.0.1:7444".into()),
    };
    s.on_bytes(5, &elsewhere.encode(), &mut link);
    assert_eq!(
        events(&mut s),
        [WorldEvent::Disconnected(
            "avatar_elsewhere: the spawn point belongs to zone 2 at 127.0.0.1:7444".into()
        )]
    );
    assert!(s.is_ended());
    s.on_closed("again".into());
    assert!(events(&mut s).is_empty(), "one disconnected event");
}

fn candidate(id: u32, x_m: f64, zone: u8) -> Candidate {
    Candidate {
        global_id: id,
        position: [Micros::from_num(x_m * 1e6), ZERO3[1], ZERO3[2]],
        velocity: ZERO3,
        zone,
        class_word: 7 << 24,
    }
}

/// Runs the zone side for `tick` and hands its packet (if any) to the session; acks go back.
fn step(
    view: &mut ClientView,
    s: &mut WorldSession,
    link: &mut Sent,
    tick: u64,
    cands: &[Candidate],
) -> bool {
    for b in link.0.drain(..) {
        if b[0] == ACK_KIND {
            view.on_ack(&Ack::decode(&b).expect("a valid ack"));
        }
    }
    let mut buf = vec![0u8; 1200];
    let Some(len) = view.write_tick(tick, &ZERO3, cands, &mut buf) else {
        return false;
    };
    s.on_bytes(tick * 50, &buf[..len], link);
    true
}

#[test]
fn replication_packets_become_entered_updated_and_exited_events_and_are_acked() {
    let mut link = Sent::default();
    let mut s = joined(&mut link);
    let mut view = ClientView::new(ReplicationConfig::with_radius(50_000)).unwrap();
    let cands = [
        candidate(500, 0.0, 3),
        candidate(7, 3.0, 3),
        candidate(8, -4.0, 4),
    ];
    assert!(step(&mut view, &mut s, &mut link, 1, &cands));
    let mut ev = events(&mut s);
    ev.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(
        ev,
        [
            WorldEvent::Entered(500),
            WorldEvent::Entered(7),
            WorldEvent::Entered(8)
        ]
    );
    assert_eq!(link.0.len(), 1, "one ack");
    assert_eq!(link.0[0][0], ACK_KIND);
    assert_eq!(s.visible_count(), 3);
    let v = s.visible(8).unwrap();
    assert_eq!(
        (v.class, v.zone),
        (7, 4),
        "class from the top byte, owning zone"
    );
    assert_eq!(v.track.last().position, [-4.0, 0.0, 0.0]);

    // Entity 7 moves on; 8 goes beyond the radius.
    let moved = [
        candidate(500, 0.0, 3),
        candidate(7, 3.5, 3),
        candidate(8, -80.0, 4),
    ];
    let mut seen_update = false;
    let mut seen_exit = false;
    let mut sent = 1;
    for tick in 2..10 {
        sent += u64::from(step(&mut view, &mut s, &mut link, tick, &moved));
        for e in events(&mut s) {
            seen_update |= e == WorldEvent::Updated(7);
            seen_exit |= e == WorldEvent::Exited(8);
            assert_ne!(e, WorldEvent::Exited(7), "7 stays in view");
        }
    }
    assert!(seen_update, "7's move is an update");
    assert!(seen_exit, "8 left the view");
    let p = s.visible(7).unwrap().track.last().position;
    assert!((p[0] - 3.5).abs() < 0.001, "within the wire's 1 mm: {p:?}");
    assert!(s.visible(8).is_none());
    assert_eq!(
        s.rates().packets_total,
        sent,
        "every packet sent was applied"
    );
    assert!(s.last_tick().unwrap() >= 2);
}

#[test]
fn a_garbled_packet_is_counted_and_changes_nothing() {
    let mut link = Sent::default();
    let mut s = joined(&mut link);
    let mut view = ClientView::new(ReplicationConfig::with_radius(50_000)).unwrap();
    step(&mut view, &mut s, &mut link, 1, &[candidate(7, 1.0, 0)]);
    events(&mut s);
    link.0.clear();
    for junk in [
        &[0x43u8][..],
        &[0x43, 1, 0, 0],
        &[0x43, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    ] {
        s.on_bytes(100, junk, &mut link);
    }
    assert_eq!(s.refused_packets().0, 3, "each counted");
    assert!(link.0.is_empty(), "not acked");
    assert!(events(&mut s).is_empty());
    assert_eq!(s.visible_count(), 1);
}

#[test]
fn when_the_session_closes_every_visible_entity_exits_then_it_is_disconnected() {
    let mut link = Sent::default();
    let mut s = joined(&mut link);
    let mut view = ClientView::new(ReplicationConfig::with_radius(50_000)).unwrap();
    step(&mut view, &mut s, &mut link, 1, &[candidate(7, 1.0, 0)]);
    events(&mut s);
    s.on_closed("zone went away".into());
    assert_eq!(
        events(&mut s),
        [
            WorldEvent::Exited(7),
            WorldEvent::Disconnected("zone went away".into())
        ]
    );
    assert_eq!(s.visible_count(), 0);
}

#[test]
fn refusal_reports_become_events() {
    let mut link = Sent::default();
    let mut s = joined(&mut link);
    let counts = BTreeMap::from([("speed".to_owned(), 3u64)]);
    let msg = ControlMessage::CommandsRefused {
        counts: counts.clone(),
    };
    s.on_bytes(100, &msg.encode(), &mut link);
    assert_eq!(events(&mut s), [WorldEvent::CommandsRefused(counts)]);
}

#[test]
fn ownership_requests_go_reliably_once_playing_and_answers_set_the_holder() {
    let mut link = Sent::default();
    let mut early = WorldSession::new(config());
    early.on_connected(0, &mut link);
    link.0.clear();
    assert!(!early.request_ownership(7, &mut link), "no avatar yet");
    assert!(link.0.is_empty());

    let mut s = joined(&mut link);
    assert!(s.request_ownership(7, &mut link));
    assert!(s.release_ownership(8, &mut link));
    assert_eq!(
        link.control(),
        [
            ControlMessage::RequestOwnership { entity: 7 },
            ControlMessage::ReleaseOwnership { entity: 8 }
        ]
    );
    let granted = ControlMessage::Ownership {
        entity: 7,
        state: OwnershipState::Granted,
        holder: Some(500),
        reason: None,
    };
    s.on_bytes(30, &granted.encode(), &mut link);
    assert_eq!(s.holder(7), Some(500));
    let denied = ControlMessage::Ownership {
        entity: 9,
        state: OwnershipState::Denied,
        holder: Some(501),
        reason: Some("held".into()),
    };
    s.on_bytes(31, &denied.encode(), &mut link);
    let released = ControlMessage::Ownership {
        entity: 7,
        state: OwnershipState::Released,
        holder: None,
        reason: Some("released".into()),
    };
    s.on_bytes(32, &released.encode(), &mut link);
    assert_eq!((s.holder(7), s.holder(9)), (None, Some(501)));
    let seen: Vec<_> = events(&mut s)
        .into_iter()
        .filter_map(|e| match e {
            WorldEvent::Ownership(o) => Some((o.entity, o.state, o.holder, o.reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        seen,
        [
            (7, OwnershipState::Granted, Some(500), String::new()),
            (9, OwnershipState::Denied, Some(501), "held".to_owned()),
            (7, OwnershipState::Released, None, "released".to_owned()),
        ]
    );
}

#[test]
fn zone_changed_restarts_the_mirror_and_keeps_the_entities_both_zones_show() {
    let mut link = Sent::default();
    let mut s = joined(&mut link);
    let cands = [
        candidate(500, 0.0, 3),
        candidate(7, 3.0, 3),
        candidate(8, -4.0, 4),
    ];
    let mut old = ClientView::new(ReplicationConfig::with_radius(50_000)).unwrap();
    for tick in 1..4 {
        step(&mut old, &mut s, &mut link, tick, &cands);
    }
    events(&mut s);
    assert_eq!(s.visible_count(), 3);
    // The gateway followed the avatar to zone 4: the datagram copy, then the reliable one.
    let changed = ControlMessage::ZoneChanged { id: 500, zone: 4 };
    s.on_bytes(200, &changed.encode(), &mut link);
    s.on_bytes(201, &changed.encode(), &mut link);
    assert_eq!(
        events(&mut s),
        [WorldEvent::ZoneChanged { zone: 4 }],
        "once"
    );
    assert_eq!(s.zone(), 4);
    // Zone 4's fresh view: the same entities (now owned by 4), one more, 8 gone.
    let after = [
        candidate(500, 0.5, 4),
        candidate(7, 3.0, 4),
        candidate(9, 5.0, 4),
    ];
    let mut new = ClientView::new(ReplicationConfig::with_radius(50_000)).unwrap();
    let refused_before = s.refused_packets().0;
    for tick in 5..9 {
        step(&mut new, &mut s, &mut link, tick, &after);
    }
    assert_eq!(
        s.refused_packets().0,
        refused_before,
        "the new zone's packets apply"
    );
    let ev = events(&mut s);
    assert!(
        ev.contains(&WorldEvent::Entered(9)) && ev.contains(&WorldEvent::Exited(8)),
        "{ev:?}"
    );
    assert!(
        !ev.contains(&WorldEvent::Exited(500)) && !ev.contains(&WorldEvent::Exited(7)),
        "entities both zones show stay: {ev:?}"
    );
    assert_eq!(s.visible(7).unwrap().zone, 4);
    // A zone_changed for someone else's avatar changes nothing.
    s.on_bytes(
        300,
        &ControlMessage::ZoneChanged { id: 1, zone: 9 }.encode(),
        &mut link,
    );
    assert_eq!(s.zone(), 4);
}

#[test]
fn avatar_moved_asks_the_node_to_follow_and_followed_switches_like_zone_changed() {
    let mut link = Sent::default();
    let mut s = joined(&mut link);
    let cands = [candidate(500, 0.0, 3), candidate(7, 3.0, 3)];
    let mut old = ClientView::new(ReplicationConfig::with_radius(50_000)).unwrap();
    for tick in 1..4 {
        step(&mut old, &mut s, &mut link, tick, &cands);
    }
    events(&mut s);
    let moved = |id: u32, address: Option<&str>| ControlMessage::AvatarMoved {
        id,
        zone: 4,
        address: address.map(str::to_owned),
        cert_hash: Some("aGFzaA".into()),
        ticket: "t".into(),
    };
    // Someone else's avatar: nothing.
    s.on_bytes(200, &moved(501, Some("127.0.0.1:9")).encode(), &mut link);
    assert_eq!(events(&mut s), []);
    s.on_bytes(210, &moved(500, Some("127.0.0.1:9")).encode(), &mut link);
    let want = super::super::follow::Moved::new(
        500,
        4,
        Some("127.0.0.1:9".into()),
        Some("aGFzaA".into()),
        "t".into(),
    )
    .unwrap();
    assert_eq!(events(&mut s), [WorldEvent::AvatarMoved(want)]);
    assert_eq!(s.zone(), 3, "still zone 3's until the node took it back");
    s.followed(4, 77);
    assert_eq!(events(&mut s), [WorldEvent::ZoneChanged { zone: 4 }]);
    assert_eq!((s.zone(), s.session()), (4, 77));
    s.followed(4, 78);
    assert_eq!(
        events(&mut s),
        [],
        "a second switch to the same zone does nothing"
    );
    // Zone 4's fresh view applies on the restarted mirror and keeps both entities.
    let mut new = ClientView::new(ReplicationConfig::with_radius(50_000)).unwrap();
    let after = [candidate(500, 0.5, 4), candidate(7, 3.0, 4)];
    for tick in 5..8 {
        step(&mut new, &mut s, &mut link, tick, &after);
    }
    assert_eq!(s.refused_packets().0, 0, "the new zone's packets apply");
    let ev = events(&mut s);
    assert!(
        !ev.iter().any(|e| matches!(e, WorldEvent::Exited(_))),
        "{ev:?}"
    );
    assert_eq!(s.visible(500).unwrap().zone, 4);
}

#[test]
fn an_avatar_moved_that_cannot_be_followed_ends_the_session_with_why() {
    let mut link = Sent::default();
    let mut s = joined(&mut link);
    let moved = ControlMessage::AvatarMoved {
        id: 500,
        zone: 4,
        address: None,
        cert_hash: None,
        ticket: "t".into(),
    };
    s.on_bytes(200, &moved.encode(), &mut link);
    match events(&mut s).as_slice() {
        [WorldEvent::Disconnected(why)] => {
            assert!(why.contains("names no address"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    assert!(s.is_ended());
}

/// `props` messages: each new value is one `Property` event; a reordered older one and a
/// repeated one change nothing and are counted as stale; a garbled one is dropped whole.
#[test]
fn property_values_are_events_once_and_older_ones_are_dropped() {
    use fabric_core::manifest::PropertyValue;
    let mut link = Sent::default();
    let mut s = joined(&mut link);
    let props = |values: &[(u8, u64, u32)]| {
        ControlMessage::Properties {
            entity: 9,
            values: values
                .iter()
                .map(|&(word, seq, value)| PropertyValue { word, seq, value })
                .collect(),
        }
        .encode()
    };
    s.on_bytes(30, &props(&[(1, 100, 4), (2, 100, 50)]), &mut link);
    s.on_bytes(31, &props(&[(1, 120, 5)]), &mut link);
    s.on_bytes(32, &props(&[(1, 110, 3)]), &mut link); // older: dropped
    s.on_bytes(33, &props(&[(1, 120, 5)]), &mut link); // repeated: dropped
    s.on_bytes(
        34,
        br#"{"entity":9,"event":"props","v":1,"values":[[1,999,7],[1,999,8]]}"#,
        &mut link,
    );
    let prop = |word, value| WorldEvent::Property {
        entity: 9,
        word,
        value,
    };
    assert_eq!(events(&mut s), vec![prop(1, 4), prop(2, 50), prop(1, 5)]);
    assert_eq!(s.property(9, 1), Some(5), "the newest value");
    assert_eq!(s.property(9, 2), Some(50));
    assert_eq!(s.property(9, 3), None);
    assert_eq!(s.properties(9).collect::<Vec<_>>(), vec![(1, 5), (2, 50)]);
    assert_eq!(s.stale_properties(), 2);
}
