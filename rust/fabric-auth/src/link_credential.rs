//! Link credentials: "the holder of link key `key` is zone `zone` of the `zones`-zone fabric
//! `fabric` until `exp`", Ed25519-signed by the registry (or, without a registry, by a fabric key
//! every zone of a static fabric is given by file), and verified offline by the zone at the other
//! end of a zone link.
//!
//! A credential alone is a bearer statement; a session proves it holds the credential's link key
//! with a [`LinkProof`]: a signature by that key over the listening zone's certificate hash and
//! the time. A proof is therefore good for one listener only (another zone has another
//! certificate), so a zone that received a neighbour's hello cannot replay it elsewhere.
//!
//! # Credential layout (version 1, little-endian), sent as base64url without padding
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 2 | magic `"FL"` |
//! | 2 | 1 | version = 1 |
//! | 3 | 1 | zone (0..zones) |
//! | 4 | 1 | zones (1..=32) |
//! | 5 | 1 | fabric name length n (1..=64) |
//! | 6 | 2 | reserved, zero |
//! | 8 | 8 | iat, Unix seconds |
//! | 16 | 8 | exp, Unix seconds (exclusive) |
//! | 24 | 9 | kid: first 9 bytes of the issuer's public key ([`crate::keys::key_id`]) |
//! | 33 | 7 | reserved, zero |
//! | 40 | 32 | the zone's link public key (Ed25519) |
//! | 72 | n | fabric name, UTF-8 |
//! | 72 + n | 64 | Ed25519 signature by the issuer over `"fabric-link-credential/1"` then bytes `0..72+n` |
//!
//! # Proof layout (version 1)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `"FLP1"` |
//! | 4 | 8 | unix_s, the prover's clock |
//! | 12 | 2 | credential length m (binary, at most [`MAX_CREDENTIAL_LEN`]) |
//! | 14 | m | the credential (binary, as above) |
//! | 14 + m | 64 | Ed25519 signature by the link key over `"fabric-link-proof/1"`, the listener's certificate hash (32 bytes), then bytes `0..14+m` |

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

/// Longest fabric name.
pub const MAX_FABRIC_LEN: usize = 64;
/// Most zones in a fabric (fabric-core's `MAX_ZONES`).
pub const MAX_FABRIC_ZONES: u8 = 32;
/// Length of the fixed part of a credential.
const FIXED_LEN: usize = 72;
/// Longest binary credential.
pub const MAX_CREDENTIAL_LEN: usize = FIXED_LEN + MAX_FABRIC_LEN + 64;
/// Longest proof.
pub const MAX_PROOF_LEN: usize = 14 + MAX_CREDENTIAL_LEN + 64;
const CREDENTIAL_DOMAIN: &[u8] = b"fabric-link-credential/1";
const PROOF_DOMAIN: &[u8] = b"fabric-link-proof/1";

/// What a link credential states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkClaims {
    /// The fabric's name.
    pub fabric: String,
    /// The zone's index.
    pub zone: u8,
    /// Zones in the fabric.
    pub zones: u8,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds (invalid from `exp` on).
    pub exp: u64,
    /// The zone's link key (signs its [`LinkProof`]s).
    pub link_key: VerifyingKey,
}

/// Why a credential or proof was refused. [`LinkCredentialError::code`] is stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkCredentialError {
    /// Wrong size, magic, version, reserved bytes, ranges or base64.
    #[error("malformed link credential: {0}")]
    Malformed(&'static str),
    /// Signed by a key the verifier does not trust.
    #[error("link credential signed by an unknown key")]
    UnknownKey,
    /// The issuer's signature does not verify.
    #[error("link credential has a bad signature")]
    BadSignature,
    /// Issued for another fabric or another fabric size.
    #[error(
        "link credential is for fabric {actual:?} of {actual_zones} zones, not {expected:?} of {expected_zones}"
    )]
    WrongFabric {
        /// The verifier's fabric.
        expected: String,
        /// Its zone count.
        expected_zones: u8,
        /// The credential's fabric.
        actual: String,
        /// The credential's zone count.
        actual_zones: u8,
    },
    /// Outside `iat - leeway .. exp + leeway`, or a lifetime longer than the verifier accepts.
    #[error("link credential not valid now ({now}; valid {iat}..{exp})")]
    NotValidNow {
        /// Issued at.
        iat: u64,
        /// Expiry.
        exp: u64,
        /// The verifier's clock.
        now: u64,
    },
    /// The proof's signature does not verify under the credential's link key, or names another
    /// listener's certificate.
    #[error("link proof has a bad signature (not made for this listener by the credential's key)")]
    BadProof,
    /// The proof's clock is too far from the verifier's.
    #[error("link proof time {proof} is more than {leeway_s} s from {now}")]
    StaleProof {
        /// The proof's time.
        proof: u64,
        /// The verifier's clock.
        now: u64,
        /// Allowed distance.
        leeway_s: u64,
    },
}

impl LinkCredentialError {
    /// Stable machine-readable code (logs, counters).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "link_malformed",
            Self::UnknownKey => "link_unknown_key",
            Self::BadSignature => "link_bad_signature",
            Self::WrongFabric { .. } => "link_wrong_fabric",
            Self::NotValidNow { .. } => "link_not_valid_now",
            Self::BadProof => "link_bad_proof",
            Self::StaleProof { .. } => "link_stale_proof",
        }
    }
}

/// Signs link credentials (the registry, or every zone of a static fabric with its fabric key).
pub struct LinkCredentialIssuer {
    key: SigningKey,
    ttl_s: u64,
}

impl std::fmt::Debug for LinkCredentialIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkCredentialIssuer")
            .field("kid", &crate::keys::key_id(&self.key.verifying_key()))
            .field("ttl_s", &self.ttl_s)
            .finish_non_exhaustive()
    }
}

impl LinkCredentialIssuer {
    /// An issuer whose credentials live `ttl_s` seconds.
    pub fn new(key: SigningKey, ttl_s: u64) -> Self {
        Self { key, ttl_s }
    }

    /// The public half, which verifiers trust.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// A credential (binary) for zone `zone` of `zones` in `fabric`, holding `link_key`.
    pub fn issue_bytes(
        &self,
        fabric: &str,
        zone: u8,
        zones: u8,
        link_key: &VerifyingKey,
        now_unix_s: u64,
    ) -> Result<Vec<u8>, LinkCredentialError> {
        check_shape(fabric, zone, zones)?;
        let mut b = Vec::with_capacity(FIXED_LEN + fabric.len() + 64);
        b.extend_from_slice(b"FL");
        b.extend_from_slice(&[1, zone, zones, fabric.len() as u8, 0, 0]);
        b.extend_from_slice(&now_unix_s.to_le_bytes());
        b.extend_from_slice(&now_unix_s.saturating_add(self.ttl_s).to_le_bytes());
        b.extend_from_slice(&self.key.verifying_key().as_bytes()[..9]);
        b.extend_from_slice(&[0; 7]);
        b.extend_from_slice(link_key.as_bytes());
        b.extend_from_slice(fabric.as_bytes());
        let sig = self.key.sign(&[CREDENTIAL_DOMAIN, &b].concat());
        b.extend_from_slice(&sig.to_bytes());
        Ok(b)
    }

    /// The same credential as text (base64url, what the registry's JSON carries).
    pub fn issue(
        &self,
        fabric: &str,
        zone: u8,
        zones: u8,
        link_key: &VerifyingKey,
        now_unix_s: u64,
    ) -> Result<String, LinkCredentialError> {
        Ok(URL_SAFE_NO_PAD.encode(self.issue_bytes(fabric, zone, zones, link_key, now_unix_s)?))
    }
}

fn check_shape(fabric: &str, zone: u8, zones: u8) -> Result<(), LinkCredentialError> {
    if fabric.is_empty() || fabric.len() > MAX_FABRIC_LEN {
        return Err(LinkCredentialError::Malformed(
            "fabric name must be 1..=64 bytes",
        ));
    }
    if zones == 0 || zones > MAX_FABRIC_ZONES || zone >= zones {
        return Err(LinkCredentialError::Malformed("zone out of range"));
    }
    Ok(())
}

/// Decodes a text credential to its binary form (bounded, before any other work).
pub fn credential_from_text(text: &str) -> Result<Vec<u8>, LinkCredentialError> {
    if text.len() > MAX_CREDENTIAL_LEN * 4 / 3 + 4 {
        return Err(LinkCredentialError::Malformed("credential too long"));
    }
    URL_SAFE_NO_PAD
        .decode(text.trim())
        .map_err(|_| LinkCredentialError::Malformed("credential is not base64url"))
}

/// Verifies link credentials and proofs for one fabric, offline.
#[derive(Debug, Clone)]
pub struct LinkCredentialVerifier {
    keys: HashMap<[u8; 9], VerifyingKey>,
    fabric: String,
    zones: u8,
    leeway_s: u64,
    max_lifetime_s: u64,
}

impl LinkCredentialVerifier {
    /// Default clock-skew allowance (credential validity and proof time).
    pub const DEFAULT_LEEWAY_S: u64 = 60;
    /// Default longest credential lifetime (a zone renews at registration).
    pub const DEFAULT_MAX_LIFETIME_S: u64 = 30 * 24 * 3600;

    /// A verifier for `fabric` of `zones` zones trusting `keys`.
    pub fn new(fabric: &str, zones: u8, keys: impl IntoIterator<Item = VerifyingKey>) -> Self {
        Self {
            keys: keys
                .into_iter()
                .map(|k| {
                    let mut kid = [0u8; 9];
                    kid.copy_from_slice(&k.as_bytes()[..9]);
                    (kid, k)
                })
                .collect(),
            fabric: fabric.to_owned(),
            zones,
            leeway_s: Self::DEFAULT_LEEWAY_S,
            max_lifetime_s: Self::DEFAULT_MAX_LIFETIME_S,
        }
    }

    /// Checks a binary credential at `now_unix_s` and returns what it states.
    pub fn verify(&self, cred: &[u8], now_unix_s: u64) -> Result<LinkClaims, LinkCredentialError> {
        let claims = self.verify_signature(cred)?;
        if claims.fabric != self.fabric || claims.zones != self.zones {
            return Err(LinkCredentialError::WrongFabric {
                expected: self.fabric.clone(),
                expected_zones: self.zones,
                actual: claims.fabric,
                actual_zones: claims.zones,
            });
        }
        let lifetime_ok = claims.exp > claims.iat && claims.exp - claims.iat <= self.max_lifetime_s;
        if !lifetime_ok
            || now_unix_s.saturating_add(self.leeway_s) < claims.iat
            || now_unix_s >= claims.exp.saturating_add(self.leeway_s)
        {
            return Err(LinkCredentialError::NotValidNow {
                iat: claims.iat,
                exp: claims.exp,
                now: now_unix_s,
            });
        }
        Ok(claims)
    }

    fn verify_signature(&self, b: &[u8]) -> Result<LinkClaims, LinkCredentialError> {
        use LinkCredentialError::Malformed;
        if b.len() < FIXED_LEN + 1 + 64 || b.len() > MAX_CREDENTIAL_LEN {
            return Err(Malformed("wrong length"));
        }
        if &b[0..2] != b"FL" || b[2] != 1 {
            return Err(Malformed("not a version 1 link credential"));
        }
        let (zone, zones, n) = (b[3], b[4], b[5] as usize);
        if b[6..8] != [0, 0] || b[33..40] != [0; 7] {
            return Err(Malformed("reserved bytes are not zero"));
        }
        if b.len() != FIXED_LEN + n + 64 {
            return Err(Malformed("length does not match the fabric name length"));
        }
        let fabric = std::str::from_utf8(&b[FIXED_LEN..FIXED_LEN + n])
            .map_err(|_| Malformed("fabric name is not UTF-8"))?;
        check_shape(fabric, zone, zones)?;
        let mut kid = [0u8; 9];
        kid.copy_from_slice(&b[24..33]);
        let issuer = self.keys.get(&kid).ok_or(LinkCredentialError::UnknownKey)?;
        let (signed, sig) = b.split_at(FIXED_LEN + n);
        let sig = Signature::from_slice(sig).map_err(|_| LinkCredentialError::BadSignature)?;
        issuer
            .verify_strict(&[CREDENTIAL_DOMAIN, signed].concat(), &sig)
            .map_err(|_| LinkCredentialError::BadSignature)?;
        let link_key = VerifyingKey::from_bytes(b[40..72].try_into().expect("32 bytes"))
            .map_err(|_| Malformed("link key is not a curve point"))?;
        Ok(LinkClaims {
            fabric: fabric.to_owned(),
            zone,
            zones,
            iat: u64::from_le_bytes(b[8..16].try_into().expect("8 bytes")),
            exp: u64::from_le_bytes(b[16..24].try_into().expect("8 bytes")),
            link_key,
        })
    }

    /// Checks a [`LinkProof`] received by the listener whose certificate hash is one of
    /// `listener_hashes`: the credential, then the link key's signature and the time.
    pub fn verify_proof(
        &self,
        proof: &[u8],
        listener_hashes: &[[u8; 32]],
        now_unix_s: u64,
    ) -> Result<LinkClaims, LinkCredentialError> {
        use LinkCredentialError::Malformed;
        if proof.len() < 14 + 64 || proof.len() > MAX_PROOF_LEN || &proof[0..4] != b"FLP1" {
            return Err(Malformed("not a version 1 link proof"));
        }
        let t = u64::from_le_bytes(proof[4..12].try_into().expect("8 bytes"));
        let m = u16::from_le_bytes([proof[12], proof[13]]) as usize;
        if proof.len() != 14 + m + 64 {
            return Err(Malformed(
                "proof length does not match its credential length",
            ));
        }
        let claims = self.verify(&proof[14..14 + m], now_unix_s)?;
        let (signed, sig) = proof.split_at(14 + m);
        let sig = Signature::from_slice(sig).map_err(|_| LinkCredentialError::BadProof)?;
        let ok = listener_hashes.iter().any(|h| {
            claims
                .link_key
                .verify_strict(&[PROOF_DOMAIN, h, signed].concat(), &sig)
                .is_ok()
        });
        if !ok {
            return Err(LinkCredentialError::BadProof);
        }
        if t.abs_diff(now_unix_s) > self.leeway_s {
            return Err(LinkCredentialError::StaleProof {
                proof: t,
                now: now_unix_s,
                leeway_s: self.leeway_s,
            });
        }
        Ok(claims)
    }
}

/// Makes link proofs: what a dialing zone sends first on a link session.
pub struct LinkProof;

impl LinkProof {
    /// A proof that the holder of `link_key` holds `credential` (binary), made for the listener
    /// whose certificate hash is `listener_hash`, at `now_unix_s`.
    pub fn make(
        link_key: &SigningKey,
        credential: &[u8],
        listener_hash: &[u8; 32],
        now_unix_s: u64,
    ) -> Vec<u8> {
        let m = credential.len().min(u16::MAX as usize);
        let mut b = Vec::with_capacity(14 + m + 64);
        b.extend_from_slice(b"FLP1");
        b.extend_from_slice(&now_unix_s.to_le_bytes());
        b.extend_from_slice(&(m as u16).to_le_bytes());
        b.extend_from_slice(&credential[..m]);
        let sig = link_key.sign(&[PROOF_DOMAIN, listener_hash, &b].concat());
        b.extend_from_slice(&sig.to_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;
    const HASH: [u8; 32] = [9; 32];

    fn setup() -> (LinkCredentialIssuer, LinkCredentialVerifier, SigningKey) {
        let issuer = LinkCredentialIssuer::new(SigningKey::from_bytes(&[1; 32]), 3600);
        let verifier = LinkCredentialVerifier::new("world", 3, [issuer.verifying_key()]);
        (issuer, verifier, SigningKey::from_bytes(&[2; 32]))
    }

    #[test]
    fn issued_credential_and_proof_verify_offline() {
        let (issuer, verifier, link) = setup();
        let cred = issuer
            .issue_bytes("world", 1, 3, &link.verifying_key(), NOW)
            .unwrap();
        assert_eq!(cred.len(), 72 + 5 + 64, "layout size");
        let c = verifier.verify(&cred, NOW + 10).expect("valid");
        assert_eq!((c.zone, c.zones, c.fabric.as_str()), (1, 3, "world"));
        assert_eq!((c.iat, c.exp), (NOW, NOW + 3600));
        let proof = LinkProof::make(&link, &cred, &HASH, NOW);
        let p = verifier
            .verify_proof(&proof, &[[0; 32], HASH], NOW + 5)
            .unwrap();
        assert_eq!(p, c, "proof names the credential's claims");
        let text = issuer
            .issue("world", 1, 3, &link.verifying_key(), NOW)
            .unwrap();
        assert_eq!(credential_from_text(&text).unwrap(), cred, "text form");
    }

    #[test]
    fn wrong_fabric_key_listener_time_and_garbage_are_refused() {
        let (issuer, verifier, link) = setup();
        let cred = issuer
            .issue_bytes("other", 1, 3, &link.verifying_key(), NOW)
            .unwrap();
        assert_eq!(
            verifier.verify(&cred, NOW).unwrap_err().code(),
            "link_wrong_fabric"
        );
        let cred4 = issuer
            .issue_bytes("world", 1, 4, &link.verifying_key(), NOW)
            .unwrap();
        assert_eq!(
            verifier.verify(&cred4, NOW).unwrap_err().code(),
            "link_wrong_fabric"
        );
        let rogue = LinkCredentialIssuer::new(SigningKey::from_bytes(&[5; 32]), 3600);
        let cred = rogue
            .issue_bytes("world", 1, 3, &link.verifying_key(), NOW)
            .unwrap();
        assert_eq!(
            verifier.verify(&cred, NOW),
            Err(LinkCredentialError::UnknownKey)
        );
        let mut cred = issuer
            .issue_bytes("world", 1, 3, &link.verifying_key(), NOW)
            .unwrap();
        assert_eq!(
            verifier.verify(&cred, NOW + 3600 + 61).unwrap_err().code(),
            "link_not_valid_now"
        );
        // Proof for another listener, by another key, or too old.
        let proof = LinkProof::make(&link, &cred, &HASH, NOW);
        assert_eq!(
            verifier.verify_proof(&proof, &[[1; 32]], NOW),
            Err(LinkCredentialError::BadProof)
        );
        let thief = SigningKey::from_bytes(&[3; 32]);
        let stolen = LinkProof::make(&thief, &cred, &HASH, NOW);
        assert_eq!(
            verifier.verify_proof(&stolen, &[HASH], NOW),
            Err(LinkCredentialError::BadProof)
        );
        assert_eq!(
            verifier
                .verify_proof(&proof, &[HASH], NOW + 120)
                .unwrap_err()
                .code(),
            "link_stale_proof"
        );
        // Claiming another zone by editing the byte breaks the signature.
        cred[3] = 2;
        assert_eq!(
            verifier.verify(&cred, NOW),
            Err(LinkCredentialError::BadSignature)
        );
        for junk in [&b""[..], b"FL", &[0u8; 300], b"FLP1garbage"] {
            assert!(verifier.verify(junk, NOW).is_err(), "junk credential");
            assert!(
                verifier.verify_proof(junk, &[HASH], NOW).is_err(),
                "junk proof"
            );
        }
        assert!(credential_from_text("!!!").is_err());
        assert!(issuer.issue("", 0, 3, &link.verifying_key(), NOW).is_err());
        assert!(issuer.issue("w", 3, 3, &link.verifying_key(), NOW).is_err());
    }
}
