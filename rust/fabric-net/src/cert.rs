//! Server identities and pinned certificate hashes.
//!
//! Zones and the gateway present self-signed ECDSA P-256 certificates valid for at most 14 days
//! (what WebTransport's `serverCertificateHashes` accepts); clients pin the SHA-256 hash of the
//! certificate's DER. A hash is written as base64 (the zone registry's `cert_hash` format, 44
//! characters) and parsed from base64 or hex (64 digits, colons allowed).

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use wtransport::Identity;
use wtransport::tls::Sha256Digest;

use crate::NetError;

/// SHA-256 hash of a server certificate (DER), as pinned by clients.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertHash(pub [u8; 32]);

impl CertHash {
    /// Parses base64 (standard alphabet, padded) or hexadecimal (64 digits, optional colons).
    pub fn parse(text: &str) -> Result<Self, NetError> {
        let t = text.trim();
        let bad = || NetError::BadCertHash(t.chars().take(100).collect());
        let hex: String = t.chars().filter(|c| *c != ':').collect();
        if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            let mut out = [0u8; 32];
            for (i, byte) in out.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
            }
            return Ok(Self(out));
        }
        let bytes = STANDARD.decode(t).map_err(|_| bad())?;
        Ok(Self(bytes.try_into().map_err(|_| bad())?))
    }

    /// The canonical text form: standard base64.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// The lowercase hex form with colons (what browsers' devtools show).
    pub fn to_hex(&self) -> String {
        Sha256Digest::new(self.0).to_string()
    }

    pub(crate) fn digest(&self) -> Sha256Digest {
        Sha256Digest::new(self.0)
    }
}

impl fmt::Display for CertHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for CertHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertHash({})", self.to_base64())
    }
}

/// The certificate and key a server presents.
pub struct ServerIdentity {
    pub(crate) identity: Identity,
}

impl fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerIdentity({})", self.hash())
    }
}

impl Clone for ServerIdentity {
    fn clone(&self) -> Self {
        Self {
            identity: self.identity.clone_identity(),
        }
    }
}

impl ServerIdentity {
    /// A fresh self-signed ECDSA P-256 certificate for `names` (host names or IP addresses),
    /// valid from now for `days` (1..=14) days.
    pub fn self_signed(names: &[&str], days: u32) -> Result<Self, NetError> {
        let days = days.clamp(1, 14);
        let identity = Identity::self_signed_builder()
            .subject_alt_names(names)
            .from_now_utc()
            .validity_days(days)
            .build()
            .map_err(|e| NetError::Identity(e.to_string()))?;
        Ok(Self { identity })
    }

    /// The usual identity of a local server: `localhost`, `127.0.0.1` and `::1`, 14 days.
    pub fn self_signed_local() -> Result<Self, NetError> {
        Self::self_signed(&["localhost", "127.0.0.1", "::1"], 14)
    }

    /// Loads a certificate chain and private key from PEM files.
    pub fn load_pem(cert: &Path, key: &Path) -> Result<Self, NetError> {
        let identity = crate::runtime_handle()
            .block_on(Identity::load_pemfiles(cert, key))
            .map_err(|e| {
                NetError::Identity(format!("{} / {}: {e}", cert.display(), key.display()))
            })?;
        Ok(Self { identity })
    }

    /// The hash clients pin: SHA-256 of the end-entity certificate's DER.
    pub fn hash(&self) -> CertHash {
        let digest = self.identity.certificate_chain().as_slice()[0].hash();
        CertHash(*digest.as_ref())
    }

    /// Writes the base64 hash (and a newline) to `path`, atomically (write then rename), so a
    /// process that waits for the file never reads half of it.
    pub fn write_hash_file(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{}\n", self.hash()))?;
        std::fs::rename(tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_parses_base64_and_hex_forms() {
        let h = CertHash([0xab; 32]);
        assert_eq!(CertHash::parse(&h.to_base64()), Ok(h));
        assert_eq!(CertHash::parse(&h.to_hex()), Ok(h), "dotted hex");
        assert_eq!(CertHash::parse(&"ab".repeat(32)), Ok(h), "plain hex");
        assert_eq!(h.to_base64().len(), 44);
        assert!(matches!(
            CertHash::parse("abc"),
            Err(NetError::BadCertHash(_))
        ));
        assert!(matches!(
            CertHash::parse(&STANDARD.encode([1u8; 31])),
            Err(NetError::BadCertHash(_))
        ));
    }

    #[test]
    fn self_signed_identities_differ_and_hash_is_stable() {
        let a = ServerIdentity::self_signed_local().unwrap();
        let b = ServerIdentity::self_signed_local().unwrap();
        assert_ne!(a.hash(), b.hash(), "two fresh keys give two hashes");
        assert_eq!(a.hash(), a.clone().hash());
    }
}
