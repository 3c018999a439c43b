//! Ed25519 key material as text: base64url (no padding) encodings of the 32-byte seed and the
//! 32-byte public key, and the short key id (`kid`) that names a public key inside a token.
//!
//! The backend serves public keys in this encoding at `GET /keys/join`; a zone configured with
//! one of those strings can verify join tokens without ever talking to the backend again.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{SigningKey, VerifyingKey};

/// Errors decoding key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text is not base64url without padding.
    #[error("key is not valid base64url")]
    Base64,
    /// The decoded key does not have 32 bytes.
    #[error("key must be 32 bytes, got {0}")]
    Length(usize),
    /// The 32 bytes are not a valid Ed25519 public key (not a curve point).
    #[error("not a valid Ed25519 public key")]
    InvalidPoint,
}

fn decode32(text: &str) -> Result<[u8; 32], KeyError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim())
        .map_err(|_| KeyError::Base64)?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| KeyError::Length(bytes.len()))
}

/// Encodes a signing key's 32-byte seed as base64url. This is a secret: it belongs in the
/// backend's store or key file and never in a response.
pub fn signing_key_to_b64(key: &SigningKey) -> String {
    URL_SAFE_NO_PAD.encode(key.to_bytes())
}

/// Decodes a signing key from its base64url seed.
pub fn signing_key_from_b64(text: &str) -> Result<SigningKey, KeyError> {
    Ok(SigningKey::from_bytes(&decode32(text)?))
}

/// Encodes a public key as base64url (43 characters).
pub fn public_key_to_b64(key: &VerifyingKey) -> String {
    URL_SAFE_NO_PAD.encode(key.as_bytes())
}

/// Decodes a public key from base64url, rejecting bytes that are not a curve point.
pub fn public_key_from_b64(text: &str) -> Result<VerifyingKey, KeyError> {
    VerifyingKey::from_bytes(&decode32(text)?).map_err(|_| KeyError::InvalidPoint)
}

/// The key id of a public key: base64url of its first 9 bytes (12 characters).
///
/// The id only selects which key to try; trust comes from the signature, so a collision can at
/// worst make a verification fail, never succeed.
pub fn key_id(key: &VerifyingKey) -> String {
    URL_SAFE_NO_PAD.encode(&key.as_bytes()[..9])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_bad_text() {
        let sk = SigningKey::from_bytes(&[7u8; 32]);
        let text = signing_key_to_b64(&sk);
        assert_eq!(text.len(), 43, "32 bytes are 43 base64url chars");
        assert_eq!(
            signing_key_from_b64(&text).unwrap().to_bytes(),
            sk.to_bytes(),
            "seed round trip"
        );
        let pk = sk.verifying_key();
        let pk_text = public_key_to_b64(&pk);
        assert_eq!(
            public_key_from_b64(&pk_text).unwrap(),
            pk,
            "public key round trip"
        );
        assert_eq!(key_id(&pk).len(), 12, "kid is 12 chars");
        assert_eq!(public_key_from_b64("!!"), Err(KeyError::Base64));
        assert_eq!(public_key_from_b64("AAAA"), Err(KeyError::Length(3)));
    }
}
