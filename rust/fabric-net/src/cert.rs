//! Server identities and pinned certificate hashes.
//!
//! Zones and the gateway present self-signed ECDSA P-256 certificates valid for at most 14 days
//! (what WebTransport's `serverCertificateHashes` accepts); clients pin the SHA-256 hash of the
//! certificate's DER. A hash is written as base64 (the zone registry's `cert_hash` format, 44
//! characters) and parsed from base64 or hex (64 digits, colons allowed).
//!
//! A pinned certificate must be valid now and for at most 14 days ([`Validity::check`], the rule
//! of WebTransport's `serverCertificateHashes`, applied to `wss://` too), so servers replace
//! theirs before it runs out: see [`crate::rotation`].

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use wtransport::Identity;
use wtransport::tls::Sha256Digest;

use crate::NetError;
use crate::error::{Cause, IdentityError};

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

    /// Parses one or more hashes separated by commas or white space (e.g. a zone's current and
    /// next hash, or a hash file with one per line). At least one is required.
    pub fn parse_list(text: &str) -> Result<Vec<Self>, NetError> {
        let hashes = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .map(Self::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if hashes.is_empty() {
            return Err(NetError::BadCertHash(String::new()));
        }
        Ok(hashes)
    }

    /// The canonical text form: standard base64.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// The lowercase hex form with colons (what browsers' devtools show).
    pub fn to_hex(&self) -> String {
        Sha256Digest::new(self.0).to_string()
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

/// Writes `pins` to `path`, one base64 hash per line (the current certificate first, then the
/// announced next one), atomically (write, then rename), so a process that reads the file never
/// sees half of it. [`CertHash::parse_list`] reads it back.
pub fn write_pins(path: &Path, pins: &[CertHash]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let text: String = pins.iter().map(|p| format!("{p}\n")).collect();
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, path)
}

/// Longest validity period a pinned certificate may state (14 days).
pub const MAX_PINNED_VALIDITY: Duration = Duration::from_secs(14 * 24 * 3600);

/// Why a pinned certificate is refused although its hash matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ValidityProblem {
    /// `now` is before its `notBefore`.
    #[error("the server certificate is not valid yet")]
    NotYetValid,
    /// `now` is after its `notAfter`.
    #[error("the server certificate has expired")]
    Expired,
    /// It states a validity period longer than [`MAX_PINNED_VALIDITY`].
    #[error(
        "the server certificate is valid for more than 14 days, which pinned certificates may not be"
    )]
    TooLong,
    /// Its DER could not be parsed.
    #[error("the server certificate cannot be parsed")]
    Unreadable,
}

/// The validity period a certificate states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Not valid before this instant.
    pub not_before: SystemTime,
    /// Not valid after this instant.
    pub not_after: SystemTime,
}

impl Validity {
    /// Reads the period from a certificate's DER.
    pub fn of_der(der: &[u8]) -> Result<Self, ValidityProblem> {
        use x509_parser::prelude::{FromDer, X509Certificate};
        let (_, cert) = X509Certificate::from_der(der).map_err(|_| ValidityProblem::Unreadable)?;
        let at = |t: i64| {
            u64::try_from(t)
                .map(|s| UNIX_EPOCH + Duration::from_secs(s))
                .map_err(|_| ValidityProblem::Unreadable)
        };
        Ok(Self {
            not_before: at(cert.validity().not_before.timestamp())?,
            not_after: at(cert.validity().not_after.timestamp())?,
        })
    }

    /// Whether a client pinning this certificate accepts it at `now`: inside the period, and
    /// the period at most [`MAX_PINNED_VALIDITY`] long.
    pub fn check(&self, now: SystemTime) -> Result<(), ValidityProblem> {
        if now < self.not_before {
            return Err(ValidityProblem::NotYetValid);
        }
        if now > self.not_after {
            return Err(ValidityProblem::Expired);
        }
        match self.not_after.duration_since(self.not_before) {
            Ok(d) if d <= MAX_PINNED_VALIDITY => Ok(()),
            _ => Err(ValidityProblem::TooLong),
        }
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
            .map_err(|e| IdentityError::Generate(Cause::new(e)))?;
        Ok(Self { identity })
    }

    /// A self-signed ECDSA P-256 certificate for `names` valid exactly from `not_before` to
    /// `not_after` (whole seconds). Any period is accepted here, so tests can make expired,
    /// future or too-long certificates; clients refuse those ([`Validity::check`]).
    pub fn self_signed_between(
        names: &[&str],
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<Self, NetError> {
        use wtransport::tls::self_signed::time::OffsetDateTime;
        let at = |t: SystemTime| {
            let secs = match t.duration_since(UNIX_EPOCH) {
                Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
            };
            OffsetDateTime::from_unix_timestamp(secs)
                .map_err(|e| IdentityError::TimeOutOfRange(Cause::new(e)))
        };
        let identity = Identity::self_signed_builder()
            .subject_alt_names(names)
            .not_before(at(not_before)?)
            .not_after(at(not_after)?)
            .build()
            .map_err(|e| IdentityError::Generate(Cause::new(e)))?;
        Ok(Self { identity })
    }

    /// The usual names of a local server: `localhost`, `127.0.0.1` and `::1`.
    pub const LOCAL_NAMES: [&'static str; 3] = ["localhost", "127.0.0.1", "::1"];

    /// The usual identity of a local server: [`Self::LOCAL_NAMES`], 14 days.
    pub fn self_signed_local() -> Result<Self, NetError> {
        Self::self_signed(&Self::LOCAL_NAMES, 14)
    }

    /// The validity period of the end-entity certificate.
    pub fn validity(&self) -> Result<Validity, ValidityProblem> {
        Validity::of_der(self.identity.certificate_chain().as_slice()[0].der())
    }

    /// Loads a certificate chain and private key from PEM files.
    pub fn load_pem(cert: &Path, key: &Path) -> Result<Self, NetError> {
        let identity = crate::runtime_handle()
            .block_on(Identity::load_pemfiles(cert, key))
            .map_err(|e| IdentityError::Load {
                cert: cert.display().to_string(),
                key: key.display().to_string(),
                cause: Cause::new(e),
            })?;
        Ok(Self { identity })
    }

    /// The hash clients pin: SHA-256 of the end-entity certificate's DER.
    pub fn hash(&self) -> CertHash {
        let digest = self.identity.certificate_chain().as_slice()[0].hash();
        CertHash(*digest.as_ref())
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
        let g = CertHash([0xcd; 32]);
        let two = format!("{h}, {g}");
        assert_eq!(CertHash::parse_list(&two), Ok(vec![h, g]), "comma list");
        let lines = format!("{h}\n{g}\n");
        assert_eq!(CertHash::parse_list(&lines), Ok(vec![h, g]), "one per line");
        assert_eq!(
            CertHash::parse_list(&h.to_hex()),
            Ok(vec![h]),
            "hex with colons"
        );
        assert!(CertHash::parse_list(" , ").is_err(), "none");
        assert!(
            CertHash::parse_list(&format!("{h},abc")).is_err(),
            "one bad"
        );
        assert!(matches!(
            CertHash::parse(&STANDARD.encode([1u8; 31])),
            Err(NetError::BadCertHash(_))
        ));
    }

    #[test]
    fn validity_is_read_back_and_checked_like_webtransport() {
        let now = SystemTime::now();
        let day = Duration::from_secs(24 * 3600);
        let fresh = ServerIdentity::self_signed_local()
            .unwrap()
            .validity()
            .unwrap();
        let len = fresh.not_after.duration_since(fresh.not_before).unwrap();
        assert_eq!(len, 14 * day, "self_signed_local is valid 14 days");
        assert!(fresh.not_before <= now + Duration::from_secs(1));
        assert_eq!(fresh.check(now), Ok(()));

        let names = ServerIdentity::LOCAL_NAMES;
        let make = |from: SystemTime, to: SystemTime| {
            ServerIdentity::self_signed_between(&names, from, to)
                .unwrap()
                .validity()
                .unwrap()
        };
        let expired = make(now - 10 * day, now - day);
        assert_eq!(expired.check(now), Err(ValidityProblem::Expired));
        assert_eq!(
            expired.check(now - 2 * day),
            Ok(()),
            "valid inside its period"
        );
        let future = make(now + day, now + 2 * day);
        assert_eq!(future.check(now), Err(ValidityProblem::NotYetValid));
        let long = make(now - day, now + 14 * day);
        assert_eq!(long.check(now), Err(ValidityProblem::TooLong), "15 days");
        let exact = make(now - day, now + 13 * day);
        assert_eq!(exact.check(now), Ok(()), "exactly 14 days is allowed");
        assert_eq!(
            Validity::of_der(b"not a certificate"),
            Err(ValidityProblem::Unreadable)
        );
    }

    #[test]
    fn self_signed_identities_differ_and_hash_is_stable() {
        let a = ServerIdentity::self_signed_local().unwrap();
        let b = ServerIdentity::self_signed_local().unwrap();
        assert_ne!(a.hash(), b.hash(), "two fresh keys give two hashes");
        assert_eq!(a.hash(), a.clone().hash());
    }
}
