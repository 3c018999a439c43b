//! Join tokens (`fabric_auth::token`): any text verifies or gets a typed error (never a panic),
//! against a verifier that knows the seeds' signing key. The rest of the input drives
//! `arbitrary` claims through sign then verify: claims within the field limits come back equal.
#![no_main]

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use ed25519_dalek::SigningKey;
use fabric_auth::token::{JoinClaims, JoinTokenIssuer, JoinTokenVerifier, MAX_FIELD_LEN};
use libfuzzer_sys::fuzz_target;

/// The signing key of the seed tokens (`fuzz/seeds/join_token/`), so seeds get past the
/// signature check.
pub const SEED_KEY: [u8; 32] = [7; 32];
/// The zone of the seed tokens.
const ZONE: &str = "zone-1";
/// The clock of the verifier (inside the seed tokens' validity).
const NOW: u64 = 1_800_000_100;

fn parties() -> &'static (JoinTokenIssuer, JoinTokenVerifier) {
    static P: OnceLock<(JoinTokenIssuer, JoinTokenVerifier)> = OnceLock::new();
    P.get_or_init(|| {
        let issuer = JoinTokenIssuer::new(SigningKey::from_bytes(&SEED_KEY), 300);
        let verifier = JoinTokenVerifier::new([issuer.verifying_key()]);
        (issuer, verifier)
    })
}

#[derive(Debug, Arbitrary)]
struct Claims {
    sub: String,
    zone: String,
    iat: u64,
    exp: u64,
    jti: String,
    foreign_kid: bool,
    place: bool,
}

fuzz_target!(|data: &[u8]| {
    let (issuer, verifier) = parties();
    let text = String::from_utf8_lossy(data);
    if let Ok(claims) = verifier.verify(&text, ZONE, NOW) {
        assert_eq!(
            claims.zone, ZONE,
            "a verified token names the verifier's zone"
        );
        assert!(
            claims.iat < claims.exp,
            "a verified token has a positive lifetime"
        );
    }
    let _ = verifier.verify_signature(&text);

    let Ok(c) = Claims::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let claims = JoinClaims {
        kid: if c.foreign_kid {
            "other".to_owned()
        } else {
            issuer.kid().to_owned()
        },
        sub: c.sub,
        zone: c.zone,
        iat: c.iat,
        exp: c.exp,
        jti: c.jti,
        place: c.place,
    };
    let token = issuer.sign(&claims);
    let fields_ok = [&claims.sub, &claims.zone, &claims.jti]
        .iter()
        .all(|f| !f.is_empty() && f.len() <= MAX_FIELD_LEN);
    match verifier.verify_signature(&token) {
        Ok(back) => {
            assert!(fields_ok && !c.foreign_kid, "accepted {claims:?}");
            assert_eq!(back, claims, "verify(sign(claims)) == claims");
        }
        Err(e) => assert!(
            !fields_ok || c.foreign_kid || token.len() > fabric_auth::token::MAX_TOKEN_LEN,
            "refused valid claims {claims:?}: {e}"
        ),
    }
});
