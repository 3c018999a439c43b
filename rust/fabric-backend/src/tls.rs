//! HTTPS and WSS for the backend: a PEM certificate chain and key (`--tls-cert`, `--tls-key`),
//! or a self-signed certificate kept in a directory (`--tls-self-signed DIR`: created on the
//! first start, the key 0600, and reused so its hash stays what zones pinned). Zones pin the
//! certificate by the SHA-256 of its DER (`--backend-cert-hash`), as clients pin zones: no
//! certificate authority is needed on a private network.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest as _, Sha256};

use crate::config::Config;
use crate::server::ServeError;

/// The certificate file in a `--tls-self-signed` directory.
pub const SELF_SIGNED_CERT: &str = "backend-cert.pem";
/// The key file in a `--tls-self-signed` directory (mode 0600).
pub const SELF_SIGNED_KEY: &str = "backend-key.pem";

/// The server's TLS set-up and the hash zones pin.
#[derive(Clone)]
pub struct Tls {
    /// The rustls configuration (ALPN `http/1.1`).
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate's DER, standard base64.
    pub cert_hash: String,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tls(cert_hash {})", self.cert_hash)
    }
}

fn bad(what: impl std::fmt::Display) -> ServeError {
    ServeError::Tls(what.to_string())
}

/// The TLS set-up `config` asks for, or `None` for plain HTTP.
pub fn load(config: &Config) -> Result<Option<Tls>, ServeError> {
    let (cert, key) = match (&config.tls_cert, &config.tls_key, &config.tls_self_signed) {
        (Some(c), Some(k), None) => (c.clone(), k.clone()),
        (None, None, Some(dir)) => self_signed(dir)?,
        (None, None, None) => return Ok(None),
        _ => {
            return Err(bad(
                "give --tls-cert with --tls-key, or --tls-self-signed DIR, not a mix",
            ));
        }
    };
    from_pem_files(&cert, &key).map(Some)
}

/// The certificate hash zones pin: SHA-256 of the DER, standard base64.
pub fn cert_hash(der: &[u8]) -> String {
    STANDARD.encode(Sha256::digest(der))
}

fn from_pem_files(cert: &Path, key: &Path) -> Result<Tls, ServeError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(format!("{cert:?}: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("{cert:?}: {e}")))?;
    let leaf = chain
        .first()
        .ok_or_else(|| bad(format!("{cert:?} holds no certificate")))?;
    let cert_hash = cert_hash(leaf.as_ref());
    crate::secrets::refuse_shared_key_file(key).map_err(|e| bad(e.to_string()))?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(format!("{key:?}: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(bad)?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| {
            bad(format!(
                "{cert:?} and {key:?} do not make a certificate: {e}"
            ))
        })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        config: Arc::new(cfg),
        cert_hash,
    })
}

/// The self-signed pair in `dir`, created when absent (both files, or neither: a lone file is
/// an error rather than silently replaced, since zones pinned its hash).
fn self_signed(dir: &Path) -> Result<(PathBuf, PathBuf), ServeError> {
    let (cert, key) = (dir.join(SELF_SIGNED_CERT), dir.join(SELF_SIGNED_KEY));
    match (cert.exists(), key.exists()) {
        (true, true) => return Ok((cert, key)),
        (false, false) => {}
        _ => {
            return Err(bad(format!(
                "{dir:?} holds only one of {SELF_SIGNED_CERT} and {SELF_SIGNED_KEY}: restore \
                 the other, or remove both to make a new certificate (zones must pin its new hash)"
            )));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| bad(format!("{dir:?}: {e}")))?;
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .map_err(|e| bad(format!("cannot make a certificate: {e}")))?;
    crate::secrets::write_private(&key, &made.signing_key.serialize_pem())?;
    std::fs::write(&cert, made.cert.pem()).map_err(|e| bad(format!("{cert:?}: {e}")))?;
    tracing::info!(?cert, "made a self-signed TLS certificate");
    Ok((cert, key))
}
