//! TLS for the WebSocket fallback (`wss://`), pinned by the same certificate hash as
//! WebTransport.
//!
//! The server presents its WebTransport identity (self-signed ECDSA P-256) over TLS 1.2/1.3 on
//! the fallback's TCP port. A client accepts exactly the certificate whose SHA-256 (of the DER)
//! is the pinned [`CertHash`]: no certificate authorities, no host-name check (the pin is the
//! trust, as with WebTransport's `serverCertificateHashes`), but the handshake signature is
//! still verified, so only the holder of the key can answer, and the certificate must be valid
//! now and for at most 14 days, as WebTransport requires ([`crate::cert::Validity::check`]).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::NetError;
use crate::cert::{CertHash, ServerIdentity, Validity, ValidityProblem};
use crate::error::{Cause, IdentityError};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// First byte of a TLS handshake record: how the server tells `wss://` from `ws://` on one port.
pub(crate) const TLS_HANDSHAKE_BYTE: u8 = 0x16;

/// The server side: the identity's certificate chain and key, ALPN `http/1.1`.
pub(crate) fn server_config(
    identity: &ServerIdentity,
) -> Result<Arc<rustls::ServerConfig>, NetError> {
    let chain = identity
        .identity
        .certificate_chain()
        .as_slice()
        .iter()
        .map(|c| CertificateDer::from(c.der().to_vec()))
        .collect();
    let key = PrivateKeyDer::try_from(identity.identity.private_key().secret_der().to_vec())
        .map_err(|e| IdentityError::Tls(Cause::new(std::io::Error::other(e))))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| IdentityError::Tls(Cause::new(e)))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| IdentityError::Tls(Cause::new(e)))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The client side: accepts only a pinned certificate (one of `pins`) that WebTransport would
/// also accept (valid now, for at most 14 days).
pub(crate) fn client_config(
    pins: Vec<CertHash>,
) -> Result<(Arc<rustls::ClientConfig>, PinVerdict), NetError> {
    pinned_config(pins, true, vec![b"http/1.1".to_vec()], false)
}

/// The WebTransport client: the same pinned check as [`client_config`] (ours, so a refusal
/// is typed and names the certificate), TLS 1.3 only and ALPN `h3`, as WebTransport needs.
pub(crate) fn webtransport_client_config(
    pins: Vec<CertHash>,
) -> Result<(rustls::ClientConfig, PinVerdict), NetError> {
    let (cfg, verdict) = pinned_config(
        pins,
        true,
        vec![wtransport::tls::WEBTRANSPORT_ALPN.to_vec()],
        true,
    )?;
    Ok((Arc::unwrap_or_clone(cfg), verdict))
}

/// The client side for the registry backend's `https://`: only a pinned certificate, valid now;
/// its validity period may be long (a backend's pinned certificate is not a WebTransport one).
pub(crate) fn https_client_config(
    pins: Vec<CertHash>,
) -> Result<(Arc<rustls::ClientConfig>, PinVerdict), NetError> {
    pinned_config(pins, false, vec![b"http/1.1".to_vec()], false)
}

fn pinned_config(
    pins: Vec<CertHash>,
    webtransport_rules: bool,
    alpn: Vec<Vec<u8>>,
    tls13_only: bool,
) -> Result<(Arc<rustls::ClientConfig>, PinVerdict), NetError> {
    let provider = provider();
    let verdict = PinVerdict::default();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone());
    let builder = if tls13_only {
        builder.with_protocol_versions(&[&rustls::version::TLS13])
    } else {
        builder.with_safe_default_protocol_versions()
    }
    .map_err(|e| IdentityError::Tls(Cause::new(e)))?;
    let mut cfg = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCert {
            pins,
            provider,
            webtransport_rules,
            verdict: verdict.clone(),
        }))
        .with_no_client_auth();
    cfg.alpn_protocols = alpn;
    Ok((Arc::new(cfg), verdict))
}

/// Why a pinned client refused the server's certificate, and which certificate it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PinRefusal {
    /// Its hash is not a pinned one, or it is not a certificate WebTransport pins (valid for
    /// more than 14 days, or unreadable).
    Mismatch {
        /// The hash of the certificate the server presented.
        presented: CertHash,
    },
    /// It is pinned but expired or not valid yet.
    OutOfDate {
        /// The hash of the certificate the server presented.
        presented: CertHash,
    },
}

/// Where a pinned client's certificate check leaves its verdict, for the error the failed
/// handshake turns into: typed, with the presented certificate's hash, instead of the words
/// of a TLS alert.
#[derive(Debug, Clone, Default)]
pub(crate) struct PinVerdict(Arc<std::sync::Mutex<Option<PinRefusal>>>);

impl PinVerdict {
    fn set(&self, refusal: PinRefusal) {
        *self.0.lock().expect("pin verdict lock") = Some(refusal);
    }

    /// The refusal of the last check, if it refused.
    pub(crate) fn refusal(&self) -> Option<PinRefusal> {
        *self.0.lock().expect("pin verdict lock")
    }

    /// The error a handshake that failed after this verdict ends in: the typed refusal for
    /// `url` (pinning `pinned`), or `None` when the certificate was not the cause.
    pub(crate) fn error(&self, url: &str, pinned: &str) -> Option<NetError> {
        Some(match self.refusal()? {
            PinRefusal::Mismatch { presented } => NetError::CertMismatch {
                url: url.to_owned(),
                pinned: pinned.to_owned(),
                presented: presented.to_base64(),
            },
            PinRefusal::OutOfDate { presented } => NetError::CertExpired {
                url: url.to_owned(),
                presented: presented.to_base64(),
            },
        })
    }
}

#[derive(Debug)]
struct PinnedCert {
    pins: Vec<CertHash>,
    provider: Arc<CryptoProvider>,
    /// Also refuse validity periods over 14 days (what WebTransport pins allow).
    webtransport_rules: bool,
    /// Where a refusal is left for the handshake's error.
    verdict: PinVerdict,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let digest = ring::digest::digest(&ring::digest::SHA256, end_entity.as_ref());
        let mut presented = CertHash([0; 32]);
        presented.0.copy_from_slice(digest.as_ref());
        let refuse = |refusal: PinRefusal| {
            self.verdict.set(refusal);
            // The alert the peer gets; this side's error comes from the verdict.
            Err(rustls::Error::InvalidCertificate(match refusal {
                PinRefusal::Mismatch { .. } => rustls::CertificateError::UnknownIssuer,
                PinRefusal::OutOfDate { .. } => rustls::CertificateError::Expired,
            }))
        };
        if !self.pins.contains(&presented) {
            return refuse(PinRefusal::Mismatch { presented });
        }
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(now.as_secs());
        match Validity::of_der(end_entity.as_ref()).and_then(|v| v.check(now)) {
            Ok(()) => Ok(ServerCertVerified::assertion()),
            Err(ValidityProblem::Expired | ValidityProblem::NotYetValid) => {
                refuse(PinRefusal::OutOfDate { presented })
            }
            Err(ValidityProblem::TooLong) if !self.webtransport_rules => {
                Ok(ServerCertVerified::assertion())
            }
            // Too long a period or unreadable: not a certificate WebTransport would pin either.
            Err(_) => refuse(PinRefusal::Mismatch { presented }),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
