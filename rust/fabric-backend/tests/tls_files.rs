//! TLS start-up refusals: a certificate directory holding only one of the pair, a private key
//! others can read, a certificate that is not PEM, and a mix of `--tls-cert` with
//! `--tls-self-signed` each stop the backend with a message naming the problem; nothing is
//! overwritten (the lone file is still there, unchanged).

use std::path::Path;

use fabric_backend::config::Config;
use fabric_backend::server::Bound;
use fabric_backend::tls::{SELF_SIGNED_CERT, SELF_SIGNED_KEY};

fn bind(cfg: Config) -> Result<Bound, String> {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(Bound::bind(&cfg))
        .map_err(|e| e.to_string())
}

fn config() -> Config {
    Config::new("127.0.0.1:0".parse().unwrap(), ":memory:")
}

fn self_signed(dir: &Path) -> Result<Bound, String> {
    let mut cfg = config();
    cfg.tls_self_signed = Some(dir.to_owned());
    bind(cfg)
}

#[test]
fn bad_tls_files_stop_the_backend_with_a_clear_error() {
    // A good directory first: made once, then reused.
    let dir = tempfile::tempdir().unwrap();
    let first = self_signed(dir.path()).expect("makes a certificate");
    let hash = first.cert_hash().unwrap().to_owned();
    drop(first);
    assert_eq!(
        self_signed(dir.path()).unwrap().cert_hash(),
        Some(hash.as_str())
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join(SELF_SIGNED_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the key is private: {mode:o}");
    }

    // Only the certificate left: refused, and the file is not replaced.
    let lone = tempfile::tempdir().unwrap();
    let cert = std::fs::read(dir.path().join(SELF_SIGNED_CERT)).unwrap();
    std::fs::write(lone.path().join(SELF_SIGNED_CERT), &cert).unwrap();
    let e = self_signed(lone.path()).unwrap_err();
    assert!(e.contains("holds only one of"), "{e}");
    assert_eq!(
        std::fs::read(lone.path().join(SELF_SIGNED_CERT)).unwrap(),
        cert
    );

    // A key others can read.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let key = dir.path().join(SELF_SIGNED_KEY);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = self_signed(dir.path()).unwrap_err();
        assert!(e.contains("readable by others"), "{e}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    // A certificate file that is not PEM.
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, b"not a certificate").unwrap();
    let mut cfg = config();
    cfg.tls_cert = Some(junk.clone());
    cfg.tls_key = Some(dir.path().join(SELF_SIGNED_KEY));
    let e = bind(cfg).unwrap_err();
    assert!(e.contains("junk.pem"), "names the file: {e}");

    // Both ways at once.
    let mut cfg = config();
    cfg.tls_cert = Some(dir.path().join(SELF_SIGNED_CERT));
    cfg.tls_key = Some(dir.path().join(SELF_SIGNED_KEY));
    cfg.tls_self_signed = Some(dir.path().to_owned());
    let e = bind(cfg).unwrap_err();
    assert!(e.contains("not a mix"), "{e}");
}
