//! TLS to PostgreSQL (`--db-root-cert`): rustls (the same crypto provider as the backend's
//! HTTPS) with the operator's certificate authority as the only root, so the database server's
//! certificate must chain to it and name the URL's host. With a root certificate the connection
//! is TLS or nothing (`sslmode=require`, never a plain fallback); `sslmode=require` without one
//! is refused at start-up rather than silently trusting any certificate.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::StoreError;

/// A connector trusting only the certificates in the PEM file `root_cert`.
pub fn connector(root_cert: &Path) -> Result<MakeRustlsConnect, StoreError> {
    let bad = |why: String| StoreError::Connection(format!("--db-root-cert {root_cert:?}: {why}"));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(root_cert).map_err(|e| bad(e.to_string()))? {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no certificate in the file".into()));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// The refusal of `sslmode=require` without a root certificate.
pub fn require_needs_root() -> StoreError {
    StoreError::Connection(
        "sslmode=require needs --db-root-cert: the PEM certificate of the authority that \
         signed the database server's certificate (without it the server could be anyone)"
            .into(),
    )
}
