//! TLS to PostgreSQL: a real PostgreSQL started by the test with `ssl=on`, a certificate for
//! 127.0.0.1 signed by a certificate authority the test makes, and `hostssl` only (a client
//! without TLS is refused). The backend binary with `--db-root-cert <that CA>` and
//! `?sslmode=require` serves; without a root certificate `sslmode=require` is refused at
//! start-up; with another authority the server's certificate is refused.

mod common;

use std::process::Command;

use common::pg::PgServer;
use common::{Backend, account, register, shard_body};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// A certificate authority: (issuer, PEM).
fn authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// The backend's start-up failure (exit status and stderr) for `args`.
fn refused(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fabric-backend"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .args(common::key_args(args))
        .env("RUST_LOG", "off")
        .output()
        .expect("run fabric-backend");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_backend_reaches_postgresql_over_verified_tls_only() {
    let ca = authority("fabric test database CA");
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let pg = PgServer::start_tls(&server.pem(), &server_key.serialize_pem());
    let db = pg.fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("db-ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let ca_arg = ca_file.display().to_string();
    let url = format!("{db}?sslmode=require");

    // Verified TLS: the backend works end to end on this database.
    let be = Backend::spawn(&["--db", &url, "--db-root-cert", &ca_arg]);
    let c = be.client();
    let ann = account(&c, "ann").await;
    let zone = register(&c, &ann, &shard_body("over-tls")).await;
    assert_eq!(
        c.shard(zone.id, None).await.unwrap().name,
        "over-tls",
        "stored in and read back from PostgreSQL over TLS"
    );
    drop(be);

    // The server takes TLS only: without it the backend cannot start.
    let (ok, err) = refused(&["--db", &db]);
    assert!(!ok, "a plain connection is refused by the server: {err}");
    // sslmode=require without a root certificate: refused before connecting.
    let (ok, err) = refused(&["--db", &url]);
    assert!(
        !ok && err.contains("sslmode=require needs --db-root-cert"),
        "{err}"
    );
    // Another authority: the server's certificate does not verify.
    let other = dir.path().join("other-ca.pem");
    std::fs::write(&other, authority("someone else").pem()).unwrap();
    let (ok, err) = refused(&["--db", &url, "--db-root-cert", &other.display().to_string()]);
    assert!(
        !ok && err.to_lowercase().contains("certificate"),
        "an unknown authority is refused, naming the certificate: {err}"
    );
}
