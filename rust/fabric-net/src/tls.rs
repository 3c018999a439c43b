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
        .map_err(|e| NetError::Identity(format!("private key for wss: {e}")))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| NetError::Identity(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| NetError::Identity(format!("certificate for wss: {e}")))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The client side: accepts only a pinned certificate (one of `pins`).
pub(crate) fn client_config(pins: Vec<CertHash>) -> Result<Arc<rustls::ClientConfig>, NetError> {
    let provider = provider();
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| NetError::Identity(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCert { pins, provider }))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Text of the error a pin mismatch raises (recognised when mapping errors).
pub(crate) const PIN_MISMATCH: &str = "server certificate does not match the pinned hash";

/// Text of the error a pinned certificate outside its validity period raises.
pub(crate) const PIN_OUT_OF_DATE: &str = "pinned server certificate is expired or not yet valid";

#[derive(Debug)]
struct PinnedCert {
    pins: Vec<CertHash>,
    provider: Arc<CryptoProvider>,
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
        if !self.pins.iter().any(|p| digest.as_ref() == p.0) {
            return Err(rustls::Error::General(PIN_MISMATCH.to_owned()));
        }
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(now.as_secs());
        match Validity::of_der(end_entity.as_ref()).and_then(|v| v.check(now)) {
            Ok(()) => Ok(ServerCertVerified::assertion()),
            Err(ValidityProblem::Expired | ValidityProblem::NotYetValid) => {
                Err(rustls::Error::General(PIN_OUT_OF_DATE.to_owned()))
            }
            // Too long a period or unreadable: not a certificate WebTransport would pin either.
            Err(_) => Err(rustls::Error::General(PIN_MISMATCH.to_owned())),
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
