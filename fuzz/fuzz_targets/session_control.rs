//! Session control messages (`fabric_core::session_control`): any datagram either decodes or
//! gets a typed error, and a decoded message re-encodes to bytes that decode to the same message.
//! The second half of the input drives an `arbitrary` message through encode, then decode.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use std::collections::BTreeMap;

use fabric_core::session_control::{
    ControlMessage, MAX_CONTROL_LEN, MAX_HASHES_FIELD_LEN, MAX_ID_LEN, MAX_SPAWN_METRES,
    MAX_TICKET_FIELD_LEN, MAX_TOKEN_LEN, OwnershipState,
};
use fabric_core::manifest::PropertyValue;
use libfuzzer_sys::fuzz_target;

/// A control message as `arbitrary` builds it (mirrors [`ControlMessage`]).
#[derive(Debug, Arbitrary)]
enum Msg {
    Ping(String),
    Hello(String, Option<String>),
    WelcomeAck(u64),
    Join(u32),
    Joined(u32),
    Welcome(u32, u64, u64),
    Reply(String, Result<String, String>),
    Error(String, String),
    Spawn(Option<[i64; 3]>),
    OriginalScheme,
    Avatar(u32, u32),
    AvatarElsewhere(u32, Option<String>),
    CommandsRefused(BTreeMap<String, u64>),
    RequestOwnership(u32),
    ReleaseOwnership(u32),
    Ownership(u32, u8, Option<u32>, Option<String>),
    AvatarMoved(u32, u32, Option<String>, Option<String>, String),
    Claim(u32, String),
    ZoneChanged(u32, u32),
    Placed(u32, u32, u64),
    PlaceRefused(u32, String),
    BaselineDone(u64),
    Properties(u32, Vec<(u8, u64, u32)>),
}

impl Msg {
    fn into_message(self) -> ControlMessage {
        match self {
            Msg::Ping(id) => ControlMessage::Ping { id },
            Msg::Hello(id, token) => ControlMessage::Hello { id, token },
            Msg::WelcomeAck(session) => ControlMessage::WelcomeAck { session },
            Msg::Join(peer_id) => ControlMessage::Join { peer_id },
            Msg::Joined(peer_id) => ControlMessage::Joined { peer_id },
            Msg::Welcome(zone_id, tick, session) => ControlMessage::Welcome {
                zone_id,
                tick,
                session,
            },
            Msg::Reply(id, result) => ControlMessage::Reply { id, result },
            Msg::Error(code, message) => ControlMessage::Error { code, message },
            Msg::Spawn(at) => ControlMessage::Spawn { at },
            Msg::OriginalScheme => ControlMessage::OriginalScheme,
            Msg::Avatar(id, zone) => ControlMessage::Avatar { id, zone },
            Msg::AvatarElsewhere(zone, address) => {
                ControlMessage::AvatarElsewhere { zone, address }
            }
            Msg::AvatarMoved(id, zone, address, cert_hash, ticket) => ControlMessage::AvatarMoved {
                id,
                zone,
                address,
                cert_hash,
                ticket,
            },
            Msg::Claim(id, ticket) => ControlMessage::Claim { id, ticket },
            Msg::ZoneChanged(id, zone) => ControlMessage::ZoneChanged { id, zone },
            Msg::Placed(request, entity, asset) => ControlMessage::Placed {
                request,
                entity,
                asset,
            },
            Msg::PlaceRefused(request, reason) => ControlMessage::PlaceRefused { request, reason },
            Msg::BaselineDone(tick) => ControlMessage::BaselineDone { tick },
            Msg::Properties(entity, values) => ControlMessage::Properties {
                entity,
                values: values
                    .into_iter()
                    .map(|(word, seq, value)| PropertyValue { word, seq, value })
                    .collect(),
            },
            // Reason names are short words; the decoder cuts longer ones to 32 characters.
            Msg::CommandsRefused(counts) => ControlMessage::CommandsRefused {
                counts: counts
                    .into_iter()
                    .map(|(k, n)| (k.chars().take(32).collect(), n))
                    .collect(),
            },
            Msg::RequestOwnership(entity) => ControlMessage::RequestOwnership { entity },
            Msg::ReleaseOwnership(entity) => ControlMessage::ReleaseOwnership { entity },
            Msg::Ownership(entity, state, holder, reason) => ControlMessage::Ownership {
                entity,
                state: OwnershipState::ALL[usize::from(state) % OwnershipState::ALL.len()],
                holder,
                reason,
            },
        }
    }
}

/// True when the message's fields are inside the ranges the decoder accepts.
fn in_range(m: &ControlMessage) -> bool {
    let peer = |p: u32| (2..=0x7fff_ffff).contains(&p);
    match m {
        ControlMessage::Ping { id } | ControlMessage::Reply { id, .. } => id.len() <= MAX_ID_LEN,
        ControlMessage::Hello { id, token } => {
            id.len() <= MAX_ID_LEN && token.as_ref().is_none_or(|t| t.len() <= MAX_TOKEN_LEN)
        }
        ControlMessage::Join { peer_id } | ControlMessage::Joined { peer_id } => peer(*peer_id),
        ControlMessage::Error { code, .. } => code.len() <= MAX_ID_LEN,
        ControlMessage::WelcomeAck { .. }
        | ControlMessage::Welcome { .. }
        | ControlMessage::Avatar { .. }
        | ControlMessage::OriginalScheme
        | ControlMessage::Spawn { at: None } => true,
        ControlMessage::Spawn { at: Some(at) } => at
            .iter()
            .all(|&um| (um as f64 / 1e6).abs() <= MAX_SPAWN_METRES),
        ControlMessage::AvatarElsewhere { address, .. } => {
            address.as_ref().is_none_or(|a| a.len() <= MAX_ID_LEN)
        }
        ControlMessage::CommandsRefused { counts } => counts.len() <= 16,
        ControlMessage::RequestOwnership { .. } | ControlMessage::ReleaseOwnership { .. } => true,
        ControlMessage::Ownership { reason, .. } => {
            reason.as_ref().is_none_or(|r| r.len() <= MAX_ID_LEN)
        }
        ControlMessage::AvatarMoved {
            address,
            cert_hash,
            ticket,
            ..
        } => {
            address.as_ref().is_none_or(|a| a.len() <= MAX_ID_LEN)
                && cert_hash
                    .as_ref()
                    .is_none_or(|h| h.len() <= MAX_HASHES_FIELD_LEN)
                && ticket.len() <= MAX_TICKET_FIELD_LEN
        }
        ControlMessage::Claim { ticket, .. } => ticket.len() <= MAX_TICKET_FIELD_LEN,
        ControlMessage::ZoneChanged { .. }
        | ControlMessage::Placed { .. }
        | ControlMessage::BaselineDone { .. } => true,
        ControlMessage::PlaceRefused { reason, .. } => reason.len() <= MAX_ID_LEN,
        // 1..=13 values, words 1..=13 strictly ascending.
        ControlMessage::Properties { values, .. } => {
            (1..=13).contains(&values.len())
                && values.iter().all(|p| (1..=13).contains(&p.word))
                && values.windows(2).all(|w| w[0].word < w[1].word)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = ControlMessage::decode(data) {
        let again = m.encode();
        assert_eq!(
            ControlMessage::decode(&again),
            Ok(m),
            "decode(encode(decode(x)))"
        );
    }
    let Ok(msg) = Msg::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let m = msg.into_message();
    let bytes = m.encode();
    assert!(
        ControlMessage::is_control(&bytes),
        "encoded messages start with '{{'"
    );
    if in_range(&m) && bytes.len() <= MAX_CONTROL_LEN {
        assert_eq!(ControlMessage::decode(&bytes), Ok(m), "decode(encode(m))");
    } else {
        assert!(
            ControlMessage::decode(&bytes).is_err(),
            "out of range: {m:?}"
        );
    }
});
