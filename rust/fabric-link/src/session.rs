//! The link handshake.
//!
//! 1. The lower zone dials the higher one's link listener (`https://host:port/link`), pinning
//!    the certificate hashes its membership lists (so the dialer knows whom it reached).
//! 2. Its first reliable message (channel 0) is a link proof
//!    ([`fabric_auth::LinkProof`]): its link credential, signed by its link key over the
//!    listener's certificate hash and the time. The listener verifies it offline
//!    ([`fabric_auth::LinkCredentialVerifier::verify_proof`]): same fabric and zone count, a
//!    trusted issuer, valid now, made for this listener; and the proven zone must be one that
//!    dials it ([`crate::membership`]). Otherwise the session is closed with
//!    [`REFUSED_CLOSE_CODE`] and counted. No proof within the proof timeout: closed and counted.
//! 3. The listener answers [`accept_message`]; from then on both ends exchange zone packets
//!    (reliable on channel 0, rows as datagrams). Every packet's `from_zone` must be the proven
//!    zone; others are dropped and counted. A newer session from the same zone replaces the
//!    older one.

use std::time::{SystemTime, UNIX_EPOCH};

use fabric_core::zones::ZoneId;

/// Application close code of a refused link session.
pub const REFUSED_CLOSE_CODE: u32 = 4403;
/// Reliable channel of link traffic (proof, accept, migration and control packets).
pub const LINK_CHANNEL: u8 = 0;
const ACCEPT_MAGIC: [u8; 4] = *b"FLA1";

/// The listener's answer to a good proof: `"FLA1"` then the listener's zone.
pub fn accept_message(zone: ZoneId) -> Vec<u8> {
    let mut m = ACCEPT_MAGIC.to_vec();
    m.push(zone);
    m
}

/// The zone named by an accept message, if `bytes` is one.
pub fn parse_accept(bytes: &[u8]) -> Option<ZoneId> {
    match bytes {
        [a, b, c, d, z] if [*a, *b, *c, *d] == ACCEPT_MAGIC => Some(*z),
        _ => None,
    }
}

/// Wall-clock Unix seconds (credential validity and proofs use the real clock).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_round_trips_and_rejects_others() {
        assert_eq!(parse_accept(&accept_message(7)), Some(7));
        assert_eq!(parse_accept(b"FLA1"), None);
        assert_eq!(parse_accept(b"FLX17"), None);
    }
}
