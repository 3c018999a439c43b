//! Follow tickets: "the session that played avatar `avatar` in zone `from` may take it back in
//! zone `to` until `exp`", Ed25519-signed, checked offline by the zone the avatar moved to.
//!
//! Two versions, one per way a fabric's zones come to trust each other:
//!
//! - **version 1**, static membership: signed by the fabric key every zone holds by file
//!   ([`FollowTicketSigner::new`], [`FollowTicketVerifier::new`]);
//! - **version 2**, registry membership (no zone holds a shared secret): signed by the issuing
//!   zone's own link key, and carrying that zone's link credential
//!   ([`crate::link_credential`]: the registry's signature binding the link key to zone `from`
//!   of the fabric). The zone the avatar moved to checks the credential with the registry key
//!   it already trusts for zone links, that it names zone `from` of this fabric and is valid
//!   now, then the ticket's signature with the link key it names
//!   ([`FollowTicketSigner::linked`], [`FollowTicketVerifier::linked`]). A forged ticket, one
//!   signed by another zone's key, one of another fabric or under an expired credential is
//!   refused.
//!
//! When a player's avatar is handed to a neighbour, the old zone sends the player's session an
//! `avatar_moved` control message with a ticket; the player (or the gateway on its behalf) opens
//! a session to the new zone and sends `claim` with it. The new zone checks the ticket
//! ([`FollowTicketVerifier::verify`]): signature, destination zone, expiry, the account it names
//! against the claiming session's account, and that its nonce was not used before
//! ([`ReplayGuard`]), so a ticket binds one session once. The ticket also carries whether the
//! player may place assets (the `place` claim of the join token it was admitted with, decided
//! by the backend for the fabric's map), so a placer keeps that right in the zone it walks into
//! and a watcher does not gain it. A verifier from before that flag reads a placer's ticket as
//! malformed (account length over 64): upgrade every zone of a fabric together.
//!
//! # Layout (version 1, little-endian), sent as base64url without padding
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 2 | magic `"FT"` |
//! | 2 | 1 | version = 1 |
//! | 3 | 1 | from: the zone that handed the avatar over |
//! | 4 | 1 | to: the zone that holds it now (and takes the claim) |
//! | 5 | 1 | bits 0-6: account length n (0..=64; 0 = a session without a join token); bit 7: the player may place assets ([`FollowTicket::place`]) |
//! | 6 | 2 | reserved, zero |
//! | 8 | 4 | avatar global id |
//! | 12 | 8 | exp, Unix seconds (exclusive) |
//! | 20 | 8 | nonce (random; a ticket is taken once) |
//! | 28 | n | account (the join token's subject), UTF-8 |
//! | 28 + n | 64 | Ed25519 signature over `"fabric-follow-ticket/1"`, the fabric name's length (1 byte) and bytes, then bytes `0..28+n` |
//!
//! # Layout version 2: as version 1, except
//!
//! | offset | size | field |
//! |---|---|---|
//! | 2 | 1 | version = 2 |
//! | 6 | 2 | credential length m (1..=[`MAX_CREDENTIAL_LEN`], little-endian) |
//! | 28 + n | m | the issuing zone's link credential (binary) |
//! | 28 + n + m | 64 | Ed25519 signature by the credential's link key over `"fabric-follow-ticket/2"`, the fabric name's length (1 byte) and bytes, then bytes `0..28+n+m` |

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::link_credential::{LinkCredentialError, LinkCredentialVerifier, MAX_CREDENTIAL_LEN};

/// Longest account name a ticket carries.
pub const MAX_ACCOUNT_LEN: usize = 64;
/// Length of the fixed part.
const FIXED_LEN: usize = 28;
/// Longest binary ticket (version 2 with the longest credential).
pub const MAX_TICKET_LEN: usize = FIXED_LEN + MAX_ACCOUNT_LEN + MAX_CREDENTIAL_LEN + 64;
/// Longest ticket text (base64url of [`MAX_TICKET_LEN`] bytes).
pub const MAX_TICKET_TEXT_LEN: usize = MAX_TICKET_LEN.div_ceil(3) * 4;
/// How long a ticket is good for by default, seconds.
pub const DEFAULT_TTL_S: u64 = 30;
const DOMAIN: &[u8] = b"fabric-follow-ticket/1";
const DOMAIN_V2: &[u8] = b"fabric-follow-ticket/2";

/// What a follow ticket states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowTicket {
    /// The zone that handed the avatar over.
    pub from: u8,
    /// The zone that holds it now.
    pub to: u8,
    /// The avatar's global id.
    pub avatar: u32,
    /// The account (join token subject) that played it; empty without tokens.
    pub account: String,
    /// Expiry, Unix seconds (exclusive).
    pub exp: u64,
    /// Random, unique per ticket.
    pub nonce: u64,
    /// The player may place assets (bit 7 of byte 5).
    pub place: bool,
}

/// Bit of byte 5 saying the player may place assets.
const PLACE_FLAG: u8 = 0x80;

/// Why a ticket is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FollowTicketError {
    /// Not base64url, too short or long, wrong magic or version, bad account text.
    #[error("follow ticket malformed: {0}")]
    Malformed(&'static str),
    /// No trusted key made the signature (forged or altered ticket, or another fabric's).
    #[error("follow ticket has a bad signature")]
    BadSignature,
    /// The ticket is for another zone than the one it was shown to.
    #[error("follow ticket is for zone {to}, this is zone {here}")]
    WrongZone {
        /// The ticket's zone.
        to: u8,
        /// This zone.
        here: u8,
    },
    /// The ticket names another avatar than the one claimed.
    #[error("follow ticket is for avatar {ticket}, not {claimed}")]
    WrongAvatar {
        /// The ticket's avatar.
        ticket: u32,
        /// The claimed one.
        claimed: u32,
    },
    /// The ticket ran out.
    #[error("follow ticket expired at {exp} (now {now})")]
    Expired {
        /// Expiry.
        exp: u64,
        /// The verifier's clock.
        now: u64,
    },
    /// The claiming session plays for another account than the ticket names.
    #[error("follow ticket is for account {ticket:?}, the session is {session:?}")]
    WrongAccount {
        /// The ticket's account.
        ticket: String,
        /// The session's.
        session: String,
    },
    /// The ticket was taken before.
    #[error("follow ticket was already used")]
    Replayed,
    /// Too many tickets in use at once to remember another one.
    #[error("too many follow tickets in use; try again shortly")]
    Busy,
    /// A version 2 ticket's link credential was refused (another fabric's, not signed by the
    /// registry, expired), or this zone checks no version 2 tickets.
    #[error("follow ticket's link credential refused: {0}")]
    BadCredential(LinkCredentialError),
    /// A version 2 ticket's credential is of another zone than the one the ticket says handed
    /// the avatar over.
    #[error(
        "follow ticket says zone {ticket} handed the avatar over, its credential is zone {credential}'s"
    )]
    WrongIssuer {
        /// The ticket's `from`.
        ticket: u8,
        /// The credential's zone.
        credential: u8,
    },
}

impl FollowTicketError {
    /// Stable machine-readable code (the claim's error text starts with it).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "ticket_malformed",
            Self::BadSignature => "ticket_bad_signature",
            Self::WrongZone { .. } => "ticket_wrong_zone",
            Self::WrongAvatar { .. } => "ticket_wrong_avatar",
            Self::Expired { .. } => "ticket_expired",
            Self::WrongAccount { .. } => "ticket_wrong_account",
            Self::Replayed => "ticket_replayed",
            Self::Busy => "ticket_busy",
            Self::BadCredential(_) => "ticket_bad_credential",
            Self::WrongIssuer { .. } => "ticket_wrong_issuer",
        }
    }
}

/// A parsed ticket, its bytes, and where a version 2 ticket's credential lies in them.
type Parsed = (FollowTicket, Vec<u8>, Option<std::ops::Range<usize>>);

fn signed_bytes(fabric: &str, body: &[u8]) -> Vec<u8> {
    let domain = if body.get(2) == Some(&2) {
        DOMAIN_V2
    } else {
        DOMAIN
    };
    let name = &fabric.as_bytes()[..fabric.len().min(255)];
    let mut m = Vec::with_capacity(domain.len() + 1 + name.len() + body.len());
    m.extend_from_slice(domain);
    m.push(name.len() as u8);
    m.extend_from_slice(name);
    m.extend_from_slice(body);
    m
}

impl FollowTicket {
    /// Signs the ticket for `fabric` with `key`; the text to put in `avatar_moved`. An account
    /// longer than [`MAX_ACCOUNT_LEN`] bytes is refused.
    pub fn sign(&self, fabric: &str, key: &SigningKey) -> Result<String, FollowTicketError> {
        self.sign_version(fabric, key, None)
    }

    /// Signs a version 2 ticket with the issuing zone's link `key`, carrying its link
    /// `credential` (binary). A credential longer than [`MAX_CREDENTIAL_LEN`] or empty is
    /// refused.
    pub fn sign_linked(
        &self,
        fabric: &str,
        key: &SigningKey,
        credential: &[u8],
    ) -> Result<String, FollowTicketError> {
        if credential.is_empty() || credential.len() > MAX_CREDENTIAL_LEN {
            return Err(FollowTicketError::Malformed(
                "credential length out of range",
            ));
        }
        self.sign_version(fabric, key, Some(credential))
    }

    fn sign_version(
        &self,
        fabric: &str,
        key: &SigningKey,
        credential: Option<&[u8]>,
    ) -> Result<String, FollowTicketError> {
        if self.account.len() > MAX_ACCOUNT_LEN {
            return Err(FollowTicketError::Malformed("account longer than 64 bytes"));
        }
        let mut b = Vec::with_capacity(MAX_TICKET_LEN);
        b.extend_from_slice(b"FT");
        b.push(if credential.is_some() { 2 } else { 1 });
        b.push(self.from);
        b.push(self.to);
        b.push(self.account.len() as u8 | if self.place { PLACE_FLAG } else { 0 });
        let m = credential.map_or(0, <[u8]>::len) as u16;
        b.extend_from_slice(&m.to_le_bytes());
        b.extend_from_slice(&self.avatar.to_le_bytes());
        b.extend_from_slice(&self.exp.to_le_bytes());
        b.extend_from_slice(&self.nonce.to_le_bytes());
        b.extend_from_slice(self.account.as_bytes());
        b.extend_from_slice(credential.unwrap_or_default());
        let sig = key.sign(&signed_bytes(fabric, &b));
        b.extend_from_slice(&sig.to_bytes());
        Ok(URL_SAFE_NO_PAD.encode(b))
    }

    /// Reads a ticket without checking its signature (see [`FollowTicketVerifier::verify`]).
    /// Returns the ticket, its bytes (the signature last) and, for version 2, where its
    /// credential lies in them.
    fn parse(text: &str) -> Result<Parsed, FollowTicketError> {
        if text.len() > MAX_TICKET_TEXT_LEN {
            return Err(FollowTicketError::Malformed("too long"));
        }
        let b = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| FollowTicketError::Malformed("not base64url"))?;
        if b.len() < FIXED_LEN + 64 {
            return Err(FollowTicketError::Malformed("too short"));
        }
        if &b[0..2] != b"FT" || !matches!(b[2], 1 | 2) {
            return Err(FollowTicketError::Malformed(
                "not a version 1 or 2 follow ticket",
            ));
        }
        let n = usize::from(b[5] & !PLACE_FLAG);
        let m = usize::from(u16::from_le_bytes([b[6], b[7]]));
        if b[2] == 1 && m != 0 {
            return Err(FollowTicketError::Malformed("reserved bytes not zero"));
        }
        if b[2] == 2 && (m == 0 || m > MAX_CREDENTIAL_LEN) {
            return Err(FollowTicketError::Malformed(
                "credential length out of range",
            ));
        }
        if n > MAX_ACCOUNT_LEN || b.len() != FIXED_LEN + n + m + 64 {
            return Err(FollowTicketError::Malformed("length does not match"));
        }
        let credential = (b[2] == 2).then(|| FIXED_LEN + n..FIXED_LEN + n + m);
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        let account = std::str::from_utf8(&b[FIXED_LEN..FIXED_LEN + n])
            .map_err(|_| FollowTicketError::Malformed("account is not UTF-8"))?
            .to_owned();
        let t = Self {
            from: b[3],
            to: b[4],
            avatar: u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")),
            exp: u64_at(12),
            nonce: u64_at(20),
            account,
            place: b[5] & PLACE_FLAG != 0,
        };
        Ok((t, b, credential))
    }
}

/// Signs tickets of one fabric: with the fabric key every zone of a static fabric holds
/// (version 1), or with this zone's link key and credential (version 2).
pub struct FollowTicketSigner {
    fabric: String,
    key: SigningKey,
    credential: Option<Vec<u8>>,
}

impl std::fmt::Debug for FollowTicketSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FollowTicketSigner")
            .field("fabric", &self.fabric)
            .finish_non_exhaustive()
    }
}

impl FollowTicketSigner {
    /// Signs tickets of `fabric` with `key`.
    pub fn new(fabric: &str, key: SigningKey) -> Self {
        Self {
            fabric: fabric.to_owned(),
            key,
            credential: None,
        }
    }

    /// Signs version 2 tickets of `fabric` with this zone's `link_key`, carrying its link
    /// `credential` (binary, as the registry granted it).
    pub fn linked(fabric: &str, link_key: SigningKey, credential: Vec<u8>) -> Self {
        Self {
            fabric: fabric.to_owned(),
            key: link_key,
            credential: Some(credential),
        }
    }

    /// The ticket's text.
    pub fn sign(&self, t: &FollowTicket) -> Result<String, FollowTicketError> {
        match &self.credential {
            Some(c) => t.sign_linked(&self.fabric, &self.key, c),
            None => t.sign(&self.fabric, &self.key),
        }
    }

    /// A verifier for zone `zone` trusting this signer's tickets.
    pub fn verifier(&self, zone: u8) -> FollowTicketVerifier {
        FollowTicketVerifier::new(&self.fabric, zone, [self.key.verifying_key()])
    }
}

/// Checks tickets for one zone of one fabric.
#[derive(Debug, Clone)]
pub struct FollowTicketVerifier {
    fabric: String,
    zone: u8,
    keys: Vec<VerifyingKey>,
    credentials: Option<LinkCredentialVerifier>,
}

impl FollowTicketVerifier {
    /// A verifier for zone `zone` of `fabric` trusting tickets signed by any of `keys`.
    pub fn new(fabric: &str, zone: u8, keys: impl IntoIterator<Item = VerifyingKey>) -> Self {
        Self {
            fabric: fabric.to_owned(),
            zone,
            keys: keys.into_iter().collect(),
            credentials: None,
        }
    }

    /// A verifier for zone `zone` of `fabric` taking version 2 tickets whose link credential
    /// `credentials` accepts (the registry's key, this fabric, valid now). It takes no
    /// version 1 tickets.
    pub fn linked(fabric: &str, zone: u8, credentials: LinkCredentialVerifier) -> Self {
        Self {
            fabric: fabric.to_owned(),
            zone,
            keys: Vec::new(),
            credentials: Some(credentials),
        }
    }

    /// Checks `text` as a claim of `avatar` by a session of `account` (empty without join
    /// tokens) at `now_unix_s`. Does not record the nonce: pass the ticket to
    /// [`ReplayGuard::take`] once the claim is otherwise good.
    pub fn verify(
        &self,
        text: &str,
        avatar: u32,
        account: &str,
        now_unix_s: u64,
    ) -> Result<FollowTicket, FollowTicketError> {
        self.check(text, avatar, Some(account), now_unix_s)
    }

    /// Checks `text` as a claim of `avatar` by a session not admitted otherwise (no join token
    /// of this zone): everything [`FollowTicketVerifier::verify`] checks but the account, which
    /// the ticket then gives the session. The ticket is a bearer credential for its short life,
    /// taken once ([`ReplayGuard`]).
    pub fn verify_bearer(
        &self,
        text: &str,
        avatar: u32,
        now_unix_s: u64,
    ) -> Result<FollowTicket, FollowTicketError> {
        self.check(text, avatar, None, now_unix_s)
    }

    fn check(
        &self,
        text: &str,
        avatar: u32,
        account: Option<&str>,
        now_unix_s: u64,
    ) -> Result<FollowTicket, FollowTicketError> {
        let (t, b, credential) = FollowTicket::parse(text)?;
        let split = b.len() - 64;
        let sig = Signature::from_bytes(b[split..].try_into().expect("64 bytes"));
        let msg = signed_bytes(&self.fabric, &b[..split]);
        let signed = match credential {
            None => self
                .keys
                .iter()
                .any(|k| k.verify_strict(&msg, &sig).is_ok()),
            Some(range) => {
                let claims = self
                    .credentials
                    .as_ref()
                    .ok_or(FollowTicketError::BadCredential(
                        LinkCredentialError::UnknownKey,
                    ))?
                    .verify(&b[range], now_unix_s)
                    .map_err(FollowTicketError::BadCredential)?;
                if claims.zone != t.from {
                    return Err(FollowTicketError::WrongIssuer {
                        ticket: t.from,
                        credential: claims.zone,
                    });
                }
                claims.link_key.verify_strict(&msg, &sig).is_ok()
            }
        };
        if !signed {
            return Err(FollowTicketError::BadSignature);
        }
        if t.to != self.zone {
            return Err(FollowTicketError::WrongZone {
                to: t.to,
                here: self.zone,
            });
        }
        if t.avatar != avatar {
            return Err(FollowTicketError::WrongAvatar {
                ticket: t.avatar,
                claimed: avatar,
            });
        }
        if now_unix_s >= t.exp {
            return Err(FollowTicketError::Expired {
                exp: t.exp,
                now: now_unix_s,
            });
        }
        if let Some(account) = account
            && t.account != account
        {
            return Err(FollowTicketError::WrongAccount {
                ticket: t.account,
                session: account.to_owned(),
            });
        }
        Ok(t)
    }
}

/// The nonces of tickets already taken, each kept until its ticket expires (bounded).
#[derive(Debug, Clone)]
pub struct ReplayGuard {
    used: HashMap<u64, u64>,
    capacity: usize,
}

impl ReplayGuard {
    /// Remembers at most `capacity` unexpired tickets.
    pub fn new(capacity: usize) -> Self {
        Self {
            used: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Records `t` as taken at `now_unix_s`; refuses a ticket taken before.
    pub fn take(&mut self, t: &FollowTicket, now_unix_s: u64) -> Result<(), FollowTicketError> {
        if self.used.contains_key(&t.nonce) {
            return Err(FollowTicketError::Replayed);
        }
        if self.used.len() >= self.capacity {
            self.used.retain(|_, exp| *exp > now_unix_s);
            if self.used.len() >= self.capacity {
                return Err(FollowTicketError::Busy);
            }
        }
        self.used.insert(t.nonce, t.exp);
        Ok(())
    }

    /// True when `t` was taken before (and has not expired since).
    pub fn is_used(&self, t: &FollowTicket) -> bool {
        self.used.contains_key(&t.nonce)
    }

    /// Tickets remembered now.
    pub fn len(&self) -> usize {
        self.used.len()
    }

    /// True when none is remembered.
    pub fn is_empty(&self) -> bool {
        self.used.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn ticket() -> FollowTicket {
        FollowTicket {
            from: 0,
            to: 1,
            avatar: 0x0100_0007,
            account: "alice".into(),
            exp: 1_000,
            nonce: 42,
            place: false,
        }
    }

    #[test]
    fn the_place_flag_is_bit_7_of_byte_5_and_signed() {
        let placer = FollowTicket {
            place: true,
            ..ticket()
        };
        let text = placer.sign("f", &key(1)).unwrap();
        let b = URL_SAFE_NO_PAD.decode(&text).unwrap();
        assert_eq!(b[5], 0x80 | 5, "flag and account length");
        let v = FollowTicketVerifier::new("f", 1, [key(1).verifying_key()]);
        let got = v.verify(&text, 0x0100_0007, "alice", 999).unwrap();
        assert!(got.place, "the flag survives");
        assert_eq!(got, placer);
        let plain = URL_SAFE_NO_PAD
            .decode(ticket().sign("f", &key(1)).unwrap())
            .unwrap();
        assert_eq!(plain[5], 5, "no flag: the layout of before");
        // Clearing the flag of a signed ticket breaks the signature.
        let mut forged = b.clone();
        forged[5] = 5;
        assert_eq!(
            v.verify(&URL_SAFE_NO_PAD.encode(forged), 0x0100_0007, "alice", 999)
                .unwrap_err()
                .code(),
            FollowTicketError::BadSignature.code()
        );
    }

    #[test]
    fn a_signed_ticket_verifies_and_its_layout_is_pinned() {
        let text = ticket().sign("f", &key(1)).unwrap();
        let b = URL_SAFE_NO_PAD.decode(&text).unwrap();
        assert_eq!(b.len(), 28 + 5 + 64);
        assert_eq!(
            &b[..28],
            &[
                b'F', b'T', 1, 0, 1, 5, 0, 0, 7, 0, 0, 1, 0xe8, 3, 0, 0, 0, 0, 0, 0, 42, 0, 0, 0,
                0, 0, 0, 0
            ],
            "fixed part"
        );
        assert_eq!(&b[28..33], b"alice");
        let v = FollowTicketVerifier::new("f", 1, [key(1).verifying_key()]);
        assert_eq!(v.verify(&text, 0x0100_0007, "alice", 999), Ok(ticket()));
        let signer = FollowTicketSigner::new("f", key(1));
        assert_eq!(
            signer.sign(&ticket()).unwrap(),
            text,
            "Ed25519 is deterministic"
        );
        assert_eq!(
            signer.verifier(1).verify(&text, 0x0100_0007, "alice", 1),
            Ok(ticket())
        );
    }

    #[test]
    fn every_wrong_ticket_gets_its_own_error() {
        let text = ticket().sign("f", &key(1)).unwrap();
        let v = FollowTicketVerifier::new("f", 1, [key(1).verifying_key()]);
        let code = |r: Result<FollowTicket, FollowTicketError>| r.unwrap_err().code();
        let other_key = ticket().sign("f", &key(2)).unwrap();
        assert_eq!(
            code(v.verify(&other_key, 0x0100_0007, "alice", 1)),
            "ticket_bad_signature"
        );
        let other_fabric = FollowTicketVerifier::new("g", 1, [key(1).verifying_key()]);
        assert_eq!(
            code(other_fabric.verify(&text, 0x0100_0007, "alice", 1)),
            "ticket_bad_signature",
            "the fabric name is signed"
        );
        let zone2 = FollowTicketVerifier::new("f", 2, [key(1).verifying_key()]);
        assert_eq!(
            code(zone2.verify(&text, 0x0100_0007, "alice", 1)),
            "ticket_wrong_zone"
        );
        assert_eq!(code(v.verify(&text, 8, "alice", 1)), "ticket_wrong_avatar");
        assert_eq!(
            code(v.verify(&text, 0x0100_0007, "alice", 1_000)),
            "ticket_expired"
        );
        assert_eq!(
            code(v.verify(&text, 0x0100_0007, "bob", 1)),
            "ticket_wrong_account"
        );
        // As a bearer ticket (a session admitted by it): the account is the ticket's, the rest
        // is checked all the same.
        assert_eq!(v.verify_bearer(&text, 0x0100_0007, 1), Ok(ticket()));
        assert_eq!(code(v.verify_bearer(&text, 8, 1)), "ticket_wrong_avatar");
        assert_eq!(
            code(v.verify_bearer(&text, 0x0100_0007, 1_000)),
            "ticket_expired"
        );
        assert_eq!(
            code(zone2.verify_bearer(&text, 0x0100_0007, 1)),
            "ticket_wrong_zone"
        );
        assert_eq!(
            code(v.verify_bearer(&other_key, 0x0100_0007, 1)),
            "ticket_bad_signature"
        );
        // One bit flipped anywhere in the signed part.
        let mut b = URL_SAFE_NO_PAD.decode(&text).unwrap();
        b[9] ^= 1;
        let flipped = URL_SAFE_NO_PAD.encode(&b);
        assert_eq!(
            code(v.verify(&flipped, 0x0100_0007, "alice", 1)),
            "ticket_bad_signature"
        );
        for bad in ["", "!!", "RlQ", &text[..text.len() - 4]] {
            assert_eq!(
                code(v.verify(bad, 0x0100_0007, "alice", 1)),
                "ticket_malformed",
                "{bad:?}"
            );
        }
        let long = "A".repeat(MAX_TICKET_TEXT_LEN + 1);
        assert_eq!(code(v.verify(&long, 1, "", 1)), "ticket_malformed");
        let mut t = ticket();
        t.account = "x".repeat(65);
        assert_eq!(t.sign("f", &key(1)).unwrap_err().code(), "ticket_malformed");
    }

    /// Zone `zone` of 2 in fabric `fabric`: its link key (seed `10 + zone`) and credential,
    /// signed by registry key `registry` at t = 100 for `ttl` seconds.
    fn credential(fabric: &str, zone: u8, registry: u8, ttl: u64) -> (SigningKey, Vec<u8>) {
        let link = key(10 + zone);
        let issuer = crate::link_credential::LinkCredentialIssuer::new(key(registry), ttl);
        let c = issuer
            .issue_bytes(fabric, zone, 2, &link.verifying_key(), 100)
            .unwrap();
        (link, c)
    }

    fn linked_verifier(fabric: &str, zone: u8) -> FollowTicketVerifier {
        let creds = LinkCredentialVerifier::new(fabric, 2, [key(7).verifying_key()]);
        FollowTicketVerifier::linked(fabric, zone, creds)
    }

    #[test]
    fn a_version_2_ticket_carries_the_zone_credential_and_verifies_against_the_registry_key() {
        let (link, cred) = credential("f", 0, 7, 3_600);
        let text = FollowTicketSigner::linked("f", link.clone(), cred.clone())
            .sign(&ticket())
            .unwrap();
        assert!(text.len() <= MAX_TICKET_TEXT_LEN);
        let b = URL_SAFE_NO_PAD.decode(&text).unwrap();
        let m = cred.len();
        assert_eq!(b.len(), 28 + 5 + m + 64);
        assert_eq!(&b[..3], b"FT\x02", "version 2");
        assert_eq!(&b[6..8], &(m as u16).to_le_bytes(), "credential length");
        assert_eq!(&b[28..33], b"alice");
        assert_eq!(&b[33..33 + m], &cred[..], "the credential, as granted");
        let v = linked_verifier("f", 1);
        assert_eq!(v.verify(&text, 0x0100_0007, "alice", 500), Ok(ticket()));
        // Same text from the ticket's own method.
        assert_eq!(ticket().sign_linked("f", &link, &cred).unwrap(), text);
    }

    #[test]
    fn forged_misissued_other_fabric_and_expired_version_2_tickets_are_refused() {
        let code = |r: Result<FollowTicket, FollowTicketError>| r.unwrap_err().code();
        let v = linked_verifier("f", 1);
        let (_, cred0) = credential("f", 0, 7, 3_600);
        // Forged: zone 0's credential, signed by a key that is not its link key.
        let forged = ticket().sign_linked("f", &key(99), &cred0).unwrap();
        assert_eq!(
            code(v.verify(&forged, 0x0100_0007, "alice", 500)),
            "ticket_bad_signature"
        );
        // Zone 1's own credential on a ticket that says zone 0 handed the avatar over.
        let (link1, cred1) = credential("f", 1, 7, 3_600);
        let misissued = ticket().sign_linked("f", &link1, &cred1).unwrap();
        assert_eq!(
            code(v.verify(&misissued, 0x0100_0007, "alice", 500)),
            "ticket_wrong_issuer"
        );
        // A credential the registry did not sign.
        let (link, rogue) = credential("f", 0, 8, 3_600);
        let t = ticket().sign_linked("f", &link, &rogue).unwrap();
        assert_eq!(
            code(v.verify(&t, 0x0100_0007, "alice", 500)),
            "ticket_bad_credential"
        );
        // Another fabric's zone, with a credential the same registry key signed for it.
        let (link, other) = credential("g", 0, 7, 3_600);
        let t = ticket().sign_linked("g", &link, &other).unwrap();
        assert_eq!(
            code(v.verify(&t, 0x0100_0007, "alice", 500)),
            "ticket_bad_credential"
        );
        // This fabric's credential, the ticket signed for another fabric's name.
        let (link, cred) = credential("f", 0, 7, 3_600);
        let t = ticket().sign_linked("g", &link, &cred).unwrap();
        assert_eq!(
            code(v.verify(&t, 0x0100_0007, "alice", 500)),
            "ticket_bad_signature"
        );
        // Expired: the ticket itself, or the credential under it (10 s from t = 100, 60 s
        // leeway).
        let good = ticket().sign_linked("f", &link, &cred).unwrap();
        assert_eq!(
            code(v.verify(&good, 0x0100_0007, "alice", 1_000)),
            "ticket_expired"
        );
        let (short_link, short) = credential("f", 0, 7, 10);
        let t = ticket().sign_linked("f", &short_link, &short).unwrap();
        assert_eq!(
            v.verify(&t, 0x0100_0007, "alice", 169).map(|t| t.nonce),
            Ok(42)
        );
        assert_eq!(
            code(v.verify(&t, 0x0100_0007, "alice", 170)),
            "ticket_bad_credential"
        );
        // Each kind of verifier refuses the other kind of ticket.
        let static_v = FollowTicketVerifier::new("f", 1, [key(1).verifying_key()]);
        assert_eq!(
            code(static_v.verify(&good, 0x0100_0007, "alice", 500)),
            "ticket_bad_credential"
        );
        let v1 = ticket().sign("f", &key(1)).unwrap();
        assert_eq!(
            code(v.verify(&v1, 0x0100_0007, "alice", 500)),
            "ticket_bad_signature"
        );
        // Malformed version 2: no credential, a credential length past the end, too long.
        let mut b = URL_SAFE_NO_PAD.decode(&good).unwrap();
        b[6] = 0;
        b[7] = 0;
        let empty = URL_SAFE_NO_PAD.encode(&b);
        assert_eq!(
            code(v.verify(&empty, 0x0100_0007, "alice", 500)),
            "ticket_malformed"
        );
        b[6] = 0xff;
        let past = URL_SAFE_NO_PAD.encode(&b);
        assert_eq!(
            code(v.verify(&past, 0x0100_0007, "alice", 500)),
            "ticket_malformed"
        );
        assert_eq!(
            ticket().sign_linked("f", &link, &[]).unwrap_err().code(),
            "ticket_malformed"
        );
        assert_eq!(
            ticket()
                .sign_linked("f", &link, &[0; MAX_CREDENTIAL_LEN + 1])
                .unwrap_err()
                .code(),
            "ticket_malformed"
        );
    }

    #[test]
    fn a_ticket_is_taken_once_and_the_guard_is_bounded() {
        let mut g = ReplayGuard::new(2);
        let t = ticket();
        assert!(!g.is_used(&t));
        assert_eq!(g.take(&t, 10), Ok(()));
        assert!(g.is_used(&t));
        assert_eq!(g.take(&t, 10), Err(FollowTicketError::Replayed));
        let mut u = ticket();
        u.nonce = 43;
        u.exp = 20;
        assert_eq!(g.take(&u, 10), Ok(()));
        let mut w = ticket();
        w.nonce = 44;
        assert_eq!(
            g.take(&w, 10),
            Err(FollowTicketError::Busy),
            "full of live tickets"
        );
        assert_eq!(g.take(&w, 20), Ok(()), "an expired one made room");
        assert_eq!(g.len(), 2);
    }

    #[test]
    fn random_bytes_never_panic() {
        let v = FollowTicketVerifier::new("f", 1, [key(1).verifying_key()]);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let text = URL_SAFE_NO_PAD.encode(&bytes);
            assert!(v.verify(&text, 1, "", 1).is_err());
            let mut v2 = bytes.clone();
            if v2.len() > 8 {
                v2[..3].copy_from_slice(b"FT\x02");
            }
            let text = URL_SAFE_NO_PAD.encode(&v2);
            assert!(linked_verifier("f", 1).verify(&text, 1, "", 1).is_err());
        }
    }
}
