//! Join tokens: short-lived, Ed25519-signed statements "user `sub` may join zone `zone` until
//! `exp`", issued by the backend and verified offline by zones and the gateway.
//!
//! # Format (version 1)
//!
//! ```text
//! fj1.<claims>.<signature>
//! ```
//!
//! - `claims` is base64url (no padding) of a UTF-8 JSON object
//!   `{"kid":"…","sub":"…","zone":"…","iat":<u64>,"exp":<u64>,"jti":"…"}`, plus `"place":true`
//!   when the subject may place assets in the zone's map (ReBAC `place` on `map:<map>` when the
//!   token was issued; absent means false, so tokens issued before the claim existed still
//!   decode); `iat` and `exp` are Unix seconds.
//! - `signature` is base64url (no padding) of the 64-byte Ed25519 signature over the ASCII bytes
//!   `fj1.<claims>` (everything before the second dot).
//! - The whole token is at most [`MAX_TOKEN_LEN`] bytes.
//!
//! Verification checks, in order: structure and size, version, claims JSON, key id known,
//! signature (strict), zone, not-before (`iat - leeway`), expiry (`exp + leeway`), and that the
//! lifetime `exp - iat` does not exceed the verifier's maximum. The clock is an argument.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::keys::key_id;

/// Prefix (and version) of every join token.
pub const TOKEN_PREFIX: &str = "fj1";
/// Upper bound on an encoded token, checked before any decoding.
pub const MAX_TOKEN_LEN: usize = 2048;
/// Upper bound on the length of `sub`, `zone` and `jti`.
pub const MAX_FIELD_LEN: usize = 128;

/// The signed content of a join token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinClaims {
    /// Key id of the signing key (see [`crate::keys::key_id`]).
    pub kid: String,
    /// The user (account id) the token was issued to.
    pub sub: String,
    /// The zone (shard id) the token admits to.
    pub zone: String,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds (exclusive: the token is invalid from `exp` on).
    pub exp: u64,
    /// Unique token id, for logs and optional replay caches.
    pub jti: String,
    /// The subject may place assets (CMD_INSTANCE_ASSET) in the zone: it held ReBAC `place`
    /// on the zone's map when the token was issued. Omitted from the JSON when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub place: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Why a token was refused. [`TokenError::code`] gives the stable machine-readable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not `fj1.<b64>.<b64>`, too long, bad base64, bad JSON or an oversized field.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The prefix names a version this verifier does not know.
    #[error("unsupported token version")]
    UnsupportedVersion,
    /// The key id in the claims is not one of the verifier's keys.
    #[error(
        "token signed by unknown key id {0:?}: not a key this verifier trusts (retired after \
         a key rotation, or issued by another registry)"
    )]
    UnknownKey(String),
    /// The signature does not verify under the named key.
    #[error("bad signature")]
    BadSignature,
    /// The token was issued for another zone.
    #[error("token is for zone {actual:?}, not {expected:?}")]
    WrongZone {
        /// The zone the verifier serves.
        expected: String,
        /// The zone named in the token.
        actual: String,
    },
    /// `now` is before `iat` (beyond the leeway).
    #[error("token not valid before {iat}, now {now}")]
    NotYetValid {
        /// Issued-at from the claims.
        iat: u64,
        /// The verifier's clock.
        now: u64,
    },
    /// `now` is at or after `exp` (beyond the leeway).
    #[error("token expired at {exp}, now {now}")]
    Expired {
        /// Expiry from the claims.
        exp: u64,
        /// The verifier's clock.
        now: u64,
    },
    /// `exp - iat` exceeds what the verifier accepts, or `exp <= iat`.
    #[error("token lifetime is invalid or longer than {max_s} s")]
    BadLifetime {
        /// The verifier's maximum lifetime.
        max_s: u64,
    },
}

impl TokenError {
    /// Stable error code, used as the `code` of the backend's JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Malformed(_) => "token_malformed",
            TokenError::UnsupportedVersion => "token_unsupported_version",
            TokenError::UnknownKey(_) => "token_unknown_key",
            TokenError::BadSignature => "token_bad_signature",
            TokenError::WrongZone { .. } => "token_wrong_zone",
            TokenError::NotYetValid { .. } => "token_not_yet_valid",
            TokenError::Expired { .. } => "token_expired",
            TokenError::BadLifetime { .. } => "token_bad_lifetime",
        }
    }
}

/// Signs join tokens. Holds the secret key: lives only in the backend.
pub struct JoinTokenIssuer {
    key: SigningKey,
    kid: String,
    ttl_s: u64,
}

impl std::fmt::Debug for JoinTokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinTokenIssuer")
            .field("kid", &self.kid)
            .field("ttl_s", &self.ttl_s)
            .finish_non_exhaustive()
    }
}

impl JoinTokenIssuer {
    /// An issuer for `key` whose tokens live `ttl_s` seconds.
    pub fn new(key: SigningKey, ttl_s: u64) -> Self {
        let kid = key_id(&key.verifying_key());
        Self { key, kid, ttl_s }
    }

    /// The key id written into every token.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half, to publish.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Token lifetime in seconds.
    pub fn ttl_s(&self) -> u64 {
        self.ttl_s
    }

    /// Issues a token for `sub` to join `zone`, valid from `now_unix_s` for the issuer's TTL,
    /// without the `place` claim. `jti` should be unique (the backend uses a random UUID).
    ///
    /// Fails with [`TokenError::Malformed`] when a field exceeds [`MAX_FIELD_LEN`], so that the
    /// issuer never produces a token its own verifier would refuse.
    pub fn issue(
        &self,
        sub: &str,
        zone: &str,
        jti: &str,
        now_unix_s: u64,
    ) -> Result<(String, JoinClaims), TokenError> {
        self.issue_with_place(sub, zone, jti, false, now_unix_s)
    }

    /// As [`JoinTokenIssuer::issue`], with the `place` claim set to `place`.
    pub fn issue_with_place(
        &self,
        sub: &str,
        zone: &str,
        jti: &str,
        place: bool,
        now_unix_s: u64,
    ) -> Result<(String, JoinClaims), TokenError> {
        let claims = JoinClaims {
            kid: self.kid.clone(),
            sub: sub.to_owned(),
            zone: zone.to_owned(),
            iat: now_unix_s,
            exp: now_unix_s.saturating_add(self.ttl_s),
            jti: jti.to_owned(),
            place,
        };
        check_fields(&claims)?;
        Ok((self.sign(&claims), claims))
    }

    /// Signs arbitrary claims as they are (no field checks). Meant for tests that need expired or
    /// odd tokens signed by a real key.
    pub fn sign(&self, claims: &JoinClaims) -> String {
        let json = serde_json::to_vec(claims).expect("claims always serialise");
        let signed = format!("{TOKEN_PREFIX}.{}", URL_SAFE_NO_PAD.encode(json));
        let sig = self.key.sign(signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }
}

fn check_fields(claims: &JoinClaims) -> Result<(), TokenError> {
    for field in [&claims.sub, &claims.zone, &claims.jti, &claims.kid] {
        if field.is_empty() || field.len() > MAX_FIELD_LEN {
            return Err(TokenError::Malformed("empty or oversized field"));
        }
    }
    Ok(())
}

/// Verifies join tokens offline against a set of trusted public keys.
#[derive(Debug, Clone)]
pub struct JoinTokenVerifier {
    keys: HashMap<String, VerifyingKey>,
    leeway_s: u64,
    max_lifetime_s: u64,
}

impl JoinTokenVerifier {
    /// Default clock-skew allowance applied to `iat` and `exp`.
    pub const DEFAULT_LEEWAY_S: u64 = 5;
    /// Default upper bound on `exp - iat`.
    pub const DEFAULT_MAX_LIFETIME_S: u64 = 3600;

    /// A verifier trusting `keys`, with the default leeway and maximum lifetime.
    pub fn new(keys: impl IntoIterator<Item = VerifyingKey>) -> Self {
        Self {
            keys: keys.into_iter().map(|k| (key_id(&k), k)).collect(),
            leeway_s: Self::DEFAULT_LEEWAY_S,
            max_lifetime_s: Self::DEFAULT_MAX_LIFETIME_S,
        }
    }

    /// Sets the clock-skew allowance.
    pub fn with_leeway_s(mut self, leeway_s: u64) -> Self {
        self.leeway_s = leeway_s;
        self
    }

    /// Sets the longest lifetime (`exp - iat`) accepted.
    pub fn with_max_lifetime_s(mut self, max_lifetime_s: u64) -> Self {
        self.max_lifetime_s = max_lifetime_s;
        self
    }

    /// Checks `token` for `zone` at time `now_unix_s` and returns its claims.
    pub fn verify(
        &self,
        token: &str,
        zone: &str,
        now_unix_s: u64,
    ) -> Result<JoinClaims, TokenError> {
        let claims = self.verify_signature(token)?;
        if claims.zone != zone {
            return Err(TokenError::WrongZone {
                expected: zone.to_owned(),
                actual: claims.zone,
            });
        }
        if claims.exp <= claims.iat || claims.exp - claims.iat > self.max_lifetime_s {
            return Err(TokenError::BadLifetime {
                max_s: self.max_lifetime_s,
            });
        }
        if now_unix_s.saturating_add(self.leeway_s) < claims.iat {
            return Err(TokenError::NotYetValid {
                iat: claims.iat,
                now: now_unix_s,
            });
        }
        if now_unix_s >= claims.exp.saturating_add(self.leeway_s) {
            return Err(TokenError::Expired {
                exp: claims.exp,
                now: now_unix_s,
            });
        }
        Ok(claims)
    }

    /// Checks structure, key and signature only (no zone, no clock). Useful for logging who
    /// presented a token that later failed a time check.
    pub fn verify_signature(&self, token: &str) -> Result<JoinClaims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed("token too long"));
        }
        let mut parts = token.split('.');
        let (Some(prefix), Some(claims_b64), Some(sig_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("expected three dot-separated parts"));
        };
        if prefix != TOKEN_PREFIX {
            return Err(if prefix.starts_with("fj") {
                TokenError::UnsupportedVersion
            } else {
                TokenError::Malformed("missing fj1 prefix")
            });
        }
        let claims_json = URL_SAFE_NO_PAD
            .decode(claims_b64)
            .map_err(|_| TokenError::Malformed("claims are not base64url"))?;
        let sig_bytes = URL_SAFE_NO_PAD
            .decode(sig_b64)
            .map_err(|_| TokenError::Malformed("signature is not base64url"))?;
        let sig_bytes = <[u8; 64]>::try_from(sig_bytes.as_slice())
            .map_err(|_| TokenError::Malformed("signature must be 64 bytes"))?;
        let claims: JoinClaims = serde_json::from_slice(&claims_json)
            .map_err(|_| TokenError::Malformed("claims are not the expected JSON"))?;
        check_fields(&claims)?;
        let key = self
            .keys
            .get(&claims.kid)
            .ok_or_else(|| TokenError::UnknownKey(claims.kid.clone()))?;
        let signed_len = prefix.len() + 1 + claims_b64.len();
        key.verify_strict(
            &token.as_bytes()[..signed_len],
            &Signature::from_bytes(&sig_bytes),
        )
        .map_err(|_| TokenError::BadSignature)?;
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;
    const ZONE: &str = "8f0c1c52-54f8-4a4e-a1c2-9c7b3d2e1f00";

    fn issuer(seed: u8) -> JoinTokenIssuer {
        JoinTokenIssuer::new(SigningKey::from_bytes(&[seed; 32]), 300)
    }

    #[test]
    fn issued_token_verifies_with_public_key_only() {
        let iss = issuer(1);
        let (token, claims) = iss.issue("alice", ZONE, "j1", NOW).unwrap();
        assert!(token.starts_with("fj1."), "prefix: {token}");
        let v = JoinTokenVerifier::new([iss.verifying_key()]);
        let got = v.verify(&token, ZONE, NOW + 10).expect("valid token");
        assert_eq!(got, claims, "verified claims equal issued claims");
        assert_eq!(got.exp, NOW + 300, "exp = iat + ttl");
    }

    #[test]
    fn expiry_and_not_before_respect_the_injected_clock_and_leeway() {
        let iss = issuer(1);
        let (token, _) = iss.issue("alice", ZONE, "j1", NOW).unwrap();
        let v = JoinTokenVerifier::new([iss.verifying_key()]).with_leeway_s(5);
        assert!(v.verify(&token, ZONE, NOW + 304).is_ok(), "inside leeway");
        assert_eq!(
            v.verify(&token, ZONE, NOW + 305),
            Err(TokenError::Expired {
                exp: NOW + 300,
                now: NOW + 305
            }),
            "expired once exp + leeway is reached"
        );
        assert!(
            v.verify(&token, ZONE, NOW - 5).is_ok(),
            "skew inside leeway"
        );
        assert_eq!(
            v.verify(&token, ZONE, NOW - 6),
            Err(TokenError::NotYetValid {
                iat: NOW,
                now: NOW - 6
            }),
            "issued in the future"
        );
    }

    #[test]
    fn forged_tokens_are_refused() {
        let real = issuer(1);
        let forger = issuer(2);
        let v = JoinTokenVerifier::new([real.verifying_key()]);

        // Signed by another key: unknown kid.
        let (other, _) = forger.issue("mallory", ZONE, "j", NOW).unwrap();
        assert!(
            matches!(v.verify(&other, ZONE, NOW), Err(TokenError::UnknownKey(_))),
            "foreign key refused"
        );

        // Another key but claiming the real kid: bad signature.
        let (_, mut claims) = real.issue("mallory", ZONE, "j", NOW).unwrap();
        claims.sub = "mallory".into();
        let forged = forger.sign(&claims);
        assert_eq!(v.verify(&forged, ZONE, NOW), Err(TokenError::BadSignature));

        // Real signature, edited claims.
        let (good, _) = real.issue("alice", ZONE, "j", NOW).unwrap();
        let mut parts: Vec<&str> = good.split('.').collect();
        let mut claims: JoinClaims =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        claims.sub = "admin".into();
        let edited = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        parts[1] = &edited;
        assert_eq!(
            v.verify(&parts.join("."), ZONE, NOW),
            Err(TokenError::BadSignature),
            "edited claims break the signature"
        );
    }

    #[test]
    fn zone_and_lifetime_are_checked() {
        let iss = issuer(1);
        let v = JoinTokenVerifier::new([iss.verifying_key()]).with_max_lifetime_s(600);
        let (token, _) = iss.issue("alice", ZONE, "j", NOW).unwrap();
        assert!(
            matches!(
                v.verify(&token, "other-zone", NOW),
                Err(TokenError::WrongZone { .. })
            ),
            "zone mismatch"
        );
        let long = JoinClaims {
            kid: iss.kid().into(),
            sub: "alice".into(),
            zone: ZONE.into(),
            iat: NOW,
            exp: NOW + 601,
            jti: "j".into(),
            place: false,
        };
        assert_eq!(
            v.verify(&iss.sign(&long), ZONE, NOW),
            Err(TokenError::BadLifetime { max_s: 600 })
        );
    }

    #[test]
    fn the_place_claim_round_trips_and_is_absent_when_false() {
        let iss = issuer(1);
        let v = JoinTokenVerifier::new([iss.verifying_key()]);
        let (token, claims) = iss.issue_with_place("ann", ZONE, "j", true, NOW).unwrap();
        assert!(claims.place, "issued with place");
        let got = v.verify(&token, ZONE, NOW).expect("valid token");
        assert!(got.place, "the verified claims carry place");
        let json = URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap();
        let json = String::from_utf8(json).unwrap();
        assert!(json.contains(r#""place":true"#), "{json}");

        let (token, _) = iss.issue("bob", ZONE, "k", NOW).unwrap();
        let json = URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap();
        let json = String::from_utf8(json).unwrap();
        assert!(!json.contains("place"), "false is left out: {json}");
        assert!(!v.verify(&token, ZONE, NOW).unwrap().place);
    }

    #[test]
    fn a_token_signed_before_the_place_claim_existed_decodes_as_not_placing() {
        // The claims JSON exactly as the previous version wrote it, signed by a real key.
        let iss = issuer(1);
        let json = format!(
            r#"{{"kid":"{}","sub":"ann","zone":"{ZONE}","iat":{NOW},"exp":{},"jti":"old"}}"#,
            iss.kid(),
            NOW + 60
        );
        let signed = format!("{TOKEN_PREFIX}.{}", URL_SAFE_NO_PAD.encode(&json));
        let sig = iss.key.sign(signed.as_bytes());
        let token = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()));
        let v = JoinTokenVerifier::new([iss.verifying_key()]);
        let claims = v
            .verify(&token, ZONE, NOW)
            .expect("an old token still verifies");
        assert_eq!(claims.sub, "ann");
        assert!(!claims.place, "no claim: may not place");

        // Unknown fields are still refused, and `place` must be a boolean.
        for extra in [r#","admin":true"#, r#","place":"yes""#] {
            let bad = json.replace(r#""jti":"old""#, &format!(r#""jti":"old"{extra}"#));
            let signed = format!("{TOKEN_PREFIX}.{}", URL_SAFE_NO_PAD.encode(bad));
            let sig = iss.key.sign(signed.as_bytes());
            let token = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()));
            assert!(
                matches!(v.verify(&token, ZONE, NOW), Err(TokenError::Malformed(_))),
                "{extra} refused"
            );
        }
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let v = JoinTokenVerifier::new([issuer(1).verifying_key()]);
        for bad in [
            "",
            "fj1",
            "fj1..",
            "fj1.a.b.c",
            "xx.AAAA.AAAA",
            "fj1.!!!.AAAA",
            "fj1.AAAA.AAAA",
            "fj1.e30.AAAA",
        ] {
            assert!(
                matches!(v.verify(bad, ZONE, NOW), Err(TokenError::Malformed(_))),
                "{bad:?} should be malformed"
            );
        }
        assert_eq!(
            v.verify("fj2.AAAA.AAAA", ZONE, NOW),
            Err(TokenError::UnsupportedVersion)
        );
        let huge = "a".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(
            v.verify(&huge, ZONE, NOW),
            Err(TokenError::Malformed("token too long"))
        );
        let iss = issuer(1);
        assert!(
            iss.issue("", ZONE, "j", NOW).is_err(),
            "issuer refuses empty subject"
        );
    }
}
