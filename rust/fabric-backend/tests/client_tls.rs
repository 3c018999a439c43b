//! The Rust client over HTTPS against the real binary started with `--tls-self-signed`: with
//! the printed hash pinned it works end to end; a wrong pin is refused naming the pinned-hash
//! mismatch; an `https://` URL without a pin and a pin on `http://` are refused before any
//! connection.

mod common;

use common::Backend;
use fabric_backend::client::{Client, ClientError};
use fabric_net::http::HttpError;

#[tokio::test]
async fn the_client_speaks_pinned_https_and_refuses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().display().to_string();
    let be = Backend::spawn(&["--tls-self-signed", &dir_arg]);
    let hash = be
        .cert_hash
        .clone()
        .expect("the start-up line names the hash");
    let url = format!("https://{}", be.addr);

    let c = Client::with_url(&url, &[&hash]).expect("https with a pin");
    let ann = c.create_account("ann").await.expect("over HTTPS").api_key;
    let zone = c
        .register(&ann, &common::shard_body("plaza"))
        .await
        .expect("register over HTTPS");
    let token = c.issue_join_token(&ann, zone.id).await.expect("a token");
    let verified = c
        .verify_join_token(&token.token, zone.id)
        .await
        .expect("verify over the same kept-alive connection");
    assert_eq!(verified.claims.sub, "ann", "the answer arrived through TLS");
    let listed = c.list(None).await.unwrap();
    assert_eq!(listed.shards.len(), 1, "GET with a query over HTTPS");

    // A pin of another certificate: refused at the handshake, naming the mismatch.
    let other = fabric_net::ServerIdentity::self_signed_local()
        .unwrap()
        .hash();
    let wrong = Client::with_url(&url, &[&other.to_base64()]).unwrap();
    let err = wrong.create_account("bob").await.expect_err("wrong pin");
    assert!(
        matches!(err, ClientError::Endpoint(HttpError::CertMismatch(_))),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("does not match the pinned hash"),
        "{err}"
    );

    // Refused before connecting.
    let unpinned = Client::with_url(&url, &[]).expect_err("https without a pin");
    assert!(
        unpinned
            .to_string()
            .contains("no certificate hash is pinned"),
        "{unpinned}"
    );
    let plain = Client::with_url(&format!("http://{}", be.addr), &[&hash])
        .expect_err("a pin on plain http");
    assert!(plain.to_string().contains("use https://"), "{plain}");
    let bad = Client::with_url(&url, &["not-a-hash"]).expect_err("a malformed pin");
    assert!(matches!(bad, ClientError::Pin(_)), "{bad:?}");
}
