//! Unit tests of [`ZoneFollow`]: the exchange with the new zone byte by byte, retries on
//! simulated time, and each way it fails.

use super::*;

#[derive(Default)]
struct Sent(Vec<ControlMessage>);

impl Link for Sent {
    fn datagram(&mut self, bytes: &[u8]) {
        self.0
            .push(ControlMessage::decode(bytes).expect("a control message"));
    }
    fn message(&mut self, bytes: &[u8]) {
        self.0
            .push(ControlMessage::decode(bytes).expect("a control message"));
    }
}

impl Sent {
    fn take(&mut self) -> Vec<ControlMessage> {
        std::mem::take(&mut self.0)
    }
}

fn moved() -> Moved {
    Moved::new(
        500,
        4,
        Some("127.0.0.1:7001".into()),
        Some("aGFzaA,bmV4dA".into()),
        "ticket-1".into(),
    )
    .expect("followable")
}

fn claim() -> ControlMessage {
    ControlMessage::Claim {
        id: 500,
        ticket: "ticket-1".into(),
    }
}

/// A follow that claimed at 10 ms, got zone 4's welcome as session 9 and acked it.
fn welcomed(link: &mut Sent) -> ZoneFollow {
    let mut f = ZoneFollow::new(moved(), 0);
    f.on_connected(10, link);
    let welcome = ControlMessage::Welcome {
        zone_id: 4,
        tick: 77,
        session: 9,
    };
    assert_eq!(f.on_bytes(30, &welcome.encode(), link), FollowStep::Wait);
    link.take();
    f
}

#[test]
fn the_target_is_the_address_and_hashes_the_message_names() {
    let m = moved();
    assert_eq!(m.url, "https://127.0.0.1:7001/wt");
    assert_eq!(m.cert_hash, "aGFzaA,bmV4dA");
    assert_eq!(
        Moved::new(5, 2, None, Some("h".into()), "t".into()),
        Err(FollowError::NoAddress(2)),
        "a zone missing from the old zone's directory cannot be followed"
    );
    assert_eq!(
        Moved::new(
            5,
            2,
            Some("127.0.0.1:1".into()),
            Some(String::new()),
            "t".into()
        ),
        Err(FollowError::NoAddress(2))
    );
    assert_eq!(
        Moved::new(
            5,
            2,
            Some("127.0.0.1:1".into()),
            Some("h".into()),
            String::new()
        ),
        Err(FollowError::NoTicket(2)),
        "an empty ticket (a zone without a fabric key) cannot be claimed"
    );
}

#[test]
fn a_claim_without_hello_then_the_welcome_acked_then_avatar_completes_it() {
    let mut link = Sent::default();
    let mut f = ZoneFollow::new(moved(), 0);
    assert_eq!(f.poll(5, &mut link), FollowStep::Wait);
    assert!(link.0.is_empty(), "nothing before the transport connects");
    f.on_connected(10, &mut link);
    assert_eq!(
        link.take(),
        [claim()],
        "the ticket admits the session: no hello with a token of another zone"
    );
    let welcome = ControlMessage::Welcome {
        zone_id: 4,
        tick: 77,
        session: 9,
    };
    for at in [30, 40] {
        assert_eq!(
            f.on_bytes(at, &welcome.encode(), &mut link),
            FollowStep::Wait
        );
        assert_eq!(
            link.take(),
            [ControlMessage::WelcomeAck { session: 9 }],
            "each welcome (resent until acked) is acked"
        );
    }
    assert_eq!(f.claims(), 1);
    // Someone else's avatar answer does not complete it.
    let other = ControlMessage::Avatar { id: 501, zone: 4 };
    assert_eq!(
        f.on_bytes(310, &other.encode(), &mut link),
        FollowStep::Wait
    );
    let avatar = ControlMessage::Avatar { id: 500, zone: 4 };
    assert_eq!(
        f.on_bytes(320, &avatar.encode(), &mut link),
        FollowStep::Done {
            zone: 4,
            session: 9
        }
    );
    f.poll(320 + FOLLOW_TIMEOUT_MS, &mut link);
    assert!(link.0.is_empty(), "nothing after it completed");
}

#[test]
fn the_claim_is_resent_while_the_avatar_has_not_arrived() {
    let mut link = Sent::default();
    let mut f = welcomed(&mut link);
    let not_here = ControlMessage::Reply {
        id: "claim".into(),
        result: Err("avatar_not_here: zone 4 does not hold avatar 500 (yet)".into()),
    };
    assert_eq!(
        f.on_bytes(110, &not_here.encode(), &mut link),
        FollowStep::Wait
    );
    f.poll(10 + CLAIM_RETRY_MS - 1, &mut link);
    assert!(link.0.is_empty(), "not resent early");
    f.poll(10 + CLAIM_RETRY_MS, &mut link);
    assert_eq!(link.take(), [claim()]);
    f.poll(10 + 2 * CLAIM_RETRY_MS, &mut link);
    assert_eq!(link.take(), [claim()]);
    assert_eq!(f.claims(), 3);
}

#[test]
fn packets_before_the_switch_are_held_in_order_up_to_the_limit() {
    let mut link = Sent::default();
    let mut f = welcomed(&mut link);
    for i in 0..(MAX_HELD + 4) {
        let packet = vec![PACKET_KIND, 1, i as u8];
        assert_eq!(f.on_bytes(120, &packet, &mut link), FollowStep::Wait);
    }
    let held = f.take_held();
    assert_eq!(held.len(), MAX_HELD, "at most {MAX_HELD}");
    assert_eq!(held[0], [PACKET_KIND, 1, 0]);
    assert_eq!(held[MAX_HELD - 1][2], (MAX_HELD - 1) as u8);
    assert!(f.take_held().is_empty());
}

#[test]
fn a_refused_claim_an_error_a_closed_connection_or_the_timeout_fail_it() {
    let mut link = Sent::default();
    let mut f = welcomed(&mut link);
    let replayed = ControlMessage::Reply {
        id: "claim".into(),
        result: Err("ticket_replayed: the ticket was used before".into()),
    };
    match f.on_bytes(110, &replayed.encode(), &mut link) {
        FollowStep::Failed(why) => assert!(why.contains("ticket_replayed"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        f.poll(200, &mut link),
        FollowStep::Wait,
        "a failed follow stays quiet"
    );
    assert!(link.0.is_empty());

    let mut f = welcomed(&mut link);
    let err = ControlMessage::Error {
        code: "zone_unavailable".into(),
        message: "shutting down".into(),
    };
    assert!(matches!(
        f.on_bytes(110, &err.encode(), &mut link),
        FollowStep::Failed(w) if w.contains("zone_unavailable")
    ));

    let mut f = welcomed(&mut link);
    assert!(matches!(
        f.on_closed("connection refused"),
        FollowStep::Failed(w) if w.contains("connection refused")
    ));

    let mut f = welcomed(&mut link);
    f.poll(FOLLOW_TIMEOUT_MS - 1, &mut link);
    link.take();
    assert!(matches!(
        f.poll(FOLLOW_TIMEOUT_MS, &mut link),
        FollowStep::Failed(w) if w.contains("within")
    ));
    assert!(link.0.is_empty(), "no claim after the timeout");
}

#[test]
fn garbage_from_the_new_zone_is_ignored() {
    let mut link = Sent::default();
    let mut f = welcomed(&mut link);
    for bytes in [&b""[..], b"\x7b not json", &[0xFF, 0, 1]] {
        assert_eq!(f.on_bytes(110, bytes, &mut link), FollowStep::Wait);
    }
    assert!(link.0.is_empty());
}
