//! Certificates over real loopback sessions, on WebTransport and the pinned `wss://` fallback:
//! rotation while sessions are open (by call and on a schedule), and certificates a pinning
//! client must refuse although their hash matches (expired, not valid yet, valid too long).

mod common;

use std::time::{Duration, SystemTime};

use common::{Path, next, next_server, url};
use fabric_net::{
    CertHash, CertRotation, Client, ClientConfig, ClientEvent, IdentityError, NetError,
    RotationProblem, Server, ServerConfig, ServerEvent, ServerIdentity,
};

const PINNED: [Path; 2] = [Path::WebTransport, Path::SecureWebSocket];
const DAY: Duration = Duration::from_secs(24 * 3600);

fn start(identity: ServerIdentity, rotation: Option<CertRotation>) -> Server {
    let mut cfg = ServerConfig::new("127.0.0.1:0".parse().unwrap(), identity);
    cfg.websocket = true;
    cfg.rotation = rotation;
    Server::start(cfg).expect("server binds a free loopback port")
}

/// Connects and waits for the outcome: `Ok(client)` when connected, the error otherwise.
async fn connect(server: &Server, path: Path, pin: CertHash) -> Result<Client, NetError> {
    let mut client = Client::connect(ClientConfig::new(url(server, path), pin));
    match next(&mut client).await {
        ClientEvent::Connected { .. } => Ok(client),
        ClientEvent::Failed(e) => Err(e),
        other => panic!("{path:?}: unexpected first event {other:?}"),
    }
}

/// The server's next event that is not a session opening or ending (clients of earlier steps
/// end when they are dropped).
async fn next_non_open(server: &mut Server) -> ServerEvent {
    loop {
        match next_server(server).await {
            ServerEvent::Opened { .. } | ServerEvent::Closed { .. } => {}
            ev => return ev,
        }
    }
}

/// A reliable message from `client` reaches the server and the server's reply reaches the
/// client: the session is alive.
async fn round_trip(server: &mut Server, client: &mut Client, what: &str) {
    client.send_message(what.as_bytes().to_vec()).unwrap();
    let session = match next_non_open(server).await {
        ServerEvent::Message { session, data } => {
            assert_eq!(data, what.as_bytes(), "{what}: server got the message");
            session
        }
        other => panic!("{what}: expected the message, got {other:?}"),
    };
    server
        .sender()
        .send_message(session, b"reply".to_vec())
        .unwrap();
    loop {
        match next(client).await {
            ClientEvent::Message(m) => {
                assert_eq!(m, b"reply", "{what}: client got the reply");
                return;
            }
            ClientEvent::Closed { reason, .. } => panic!("{what}: session closed: {reason}"),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_serves_the_new_certificate_and_keeps_open_sessions() {
    let mut server = start(ServerIdentity::self_signed_local().unwrap(), None);
    let old = server.cert_hash();
    let mut before = Vec::new();
    for path in PINNED {
        before.push((path, connect(&server, path, old).await.expect("connects")));
    }

    let new = server
        .rotate_identity(ServerIdentity::self_signed_local().unwrap())
        .expect("rotation");
    assert_ne!(new, old, "a new certificate has a new hash");
    assert_eq!(server.cert_hash(), new, "the server reports the new hash");
    match next_non_open(&mut server).await {
        ServerEvent::CertRotated {
            hash, not_after, ..
        } => {
            assert_eq!(hash, new);
            let left = not_after.duration_since(SystemTime::now()).unwrap();
            assert!(left > 13 * DAY && left <= 14 * DAY, "{left:?} left");
        }
        other => panic!("expected CertRotated, got {other:?}"),
    }

    for (path, client) in &mut before {
        round_trip(
            &mut server,
            client,
            &format!("{path:?} opened before rotation"),
        )
        .await;
    }
    for path in PINNED {
        let err = connect(&server, path, old)
            .await
            .expect_err("the old hash no longer matches");
        // Typed, and naming the certificate the server presented: the new one.
        assert!(
            matches!(&err, NetError::CertMismatch { presented, .. } if *presented == new.to_base64()),
            "{path:?}: {err}"
        );
        assert!(err.to_string().contains(&new.to_base64()), "{err}");
        let mut client = connect(&server, path, new)
            .await
            .unwrap_or_else(|e| panic!("{path:?} with the new hash: {e}"));
        round_trip(
            &mut server,
            &mut client,
            &format!("{path:?} after rotation"),
        )
        .await;
    }
}

/// Connects pinning every hash of `pins`.
async fn connect_pinning(
    server: &Server,
    path: Path,
    pins: &[CertHash],
) -> Result<Client, NetError> {
    let cfg = ClientConfig::pinning(url(server, path), pins).expect("at least one pin");
    let mut client = Client::connect(cfg);
    match next(&mut client).await {
        ClientEvent::Connected { .. } => Ok(client),
        ClientEvent::Failed(e) => Err(e),
        other => panic!("{path:?}: unexpected first event {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_announced_next_certificate_is_the_one_installed() {
    // A long period: only rotate_now() rotates here, so every step is deterministic.
    let rotation = CertRotation {
        every: Duration::from_secs(3600),
        ..CertRotation::weekly(&ServerIdentity::LOCAL_NAMES)
    };
    let mut server = start(ServerIdentity::self_signed_local().unwrap(), Some(rotation));
    let first = server.cert_hash();
    let announced = server
        .next_cert_hash()
        .expect("the next certificate is announced at start");
    assert_ne!(announced, first);
    // What a client fetched before the rotation: the current and the announced hash.
    let fetched = [first, announced];

    let installed = server.rotate_now().expect("rotation");
    assert_eq!(
        installed, announced,
        "the rotation installs the announced certificate"
    );
    let following = server.next_cert_hash().expect("a new one is announced");
    assert!(!fetched.contains(&following));
    match next_non_open(&mut server).await {
        ServerEvent::CertRotated { hash, next, .. } => {
            assert_eq!(
                (hash, next),
                (announced, Some(following)),
                "the event names both"
            );
        }
        other => panic!("expected CertRotated, got {other:?}"),
    }
    for path in PINNED {
        let mut client = connect_pinning(&server, path, &fetched)
            .await
            .unwrap_or_else(|e| panic!("{path:?}: the pair fetched before the rotation: {e}"));
        round_trip(
            &mut server,
            &mut client,
            &format!("{path:?} across one rotation"),
        )
        .await;
    }

    // Two rotations later the old pair is out of date, and the error lists what was pinned.
    server.rotate_now().expect("second rotation");
    assert_eq!(server.cert_hash(), following);
    for path in PINNED {
        let err = connect_pinning(&server, path, &fetched)
            .await
            .expect_err("two rotations later");
        let text = err.to_string();
        assert!(
            matches!(err, NetError::CertMismatch { .. })
                && text.contains(&first.to_base64())
                && text.contains(&announced.to_base64()),
            "{path:?}: {text}"
        );
    }

    // Without a schedule, rotate_now installs a fresh certificate and announces none.
    let plain = start(ServerIdentity::self_signed_local().unwrap(), None);
    let before = plain.cert_hash();
    assert_eq!(plain.next_cert_hash(), None);
    assert_ne!(plain.rotate_now().unwrap(), before);
    assert_eq!(plain.next_cert_hash(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_rotation_replaces_the_certificate_before_it_expires() {
    let rotation = CertRotation {
        names: vec!["localhost".into(), "127.0.0.1".into()],
        every: Duration::from_secs(1),
        validity_days: 14,
    };
    let first = ServerIdentity::self_signed_local().unwrap();
    let mut server = start(first.clone(), Some(rotation));
    let mut hashes = vec![first.hash()];
    let mut announced = server.next_cert_hash();
    let started = std::time::Instant::now();
    while hashes.len() < 3 {
        match next_non_open(&mut server).await {
            ServerEvent::CertRotated { hash, next, .. } => {
                assert!(
                    !hashes.contains(&hash),
                    "every rotation brings a new certificate"
                );
                assert_eq!(Some(hash), announced, "the announced one");
                hashes.push(hash);
                announced = next;
            }
            other => panic!("expected CertRotated, got {other:?}"),
        }
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900),
        "two rotations 1 s apart took {took:?}"
    );
    // Pinning the current and the next hash survives a rotation during the handshake.
    let pair = [server.cert_hash(), server.next_cert_hash().unwrap()];
    for path in PINNED {
        let mut client = connect_pinning(&server, path, &pair)
            .await
            .unwrap_or_else(|e| panic!("{path:?} with the current pair: {e}"));
        round_trip(
            &mut server,
            &mut client,
            &format!("{path:?} after rotations"),
        )
        .await;
    }

    // A certificate that runs out before the first scheduled rotation is replaced first.
    let now = SystemTime::now();
    let short = ServerIdentity::self_signed_between(
        &ServerIdentity::LOCAL_NAMES,
        now - DAY,
        now + fabric_net::rotation::EXPIRY_MARGIN + Duration::from_secs(2),
    )
    .unwrap();
    let mut server = start(short.clone(), Some(CertRotation::weekly(&["localhost"])));
    match next_non_open(&mut server).await {
        ServerEvent::CertRotated {
            hash, not_after, ..
        } => {
            assert_ne!(hash, short.hash());
            assert!(
                not_after > now + 13 * DAY,
                "replaced by a fresh 14-day certificate"
            );
        }
        other => panic!("expected CertRotated, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rotation_settings_are_refused_at_start() {
    let mut cfg = ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        ServerIdentity::self_signed_local().unwrap(),
    );
    cfg.rotation = Some(CertRotation {
        every: 15 * DAY,
        ..CertRotation::weekly(&["localhost"])
    });
    let err = Server::start(cfg).expect_err("interval longer than the validity");
    assert!(
        matches!(
            err,
            NetError::Identity(IdentityError::Rotation(RotationProblem::Interval {
                validity_days: 14,
                ..
            }))
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_certificates_outside_their_validity_are_refused() {
    let now = SystemTime::now();
    let names = ServerIdentity::LOCAL_NAMES;
    let cases = [
        ("expired", now - 10 * DAY, now - DAY),
        ("not valid yet", now + DAY, now + 3 * DAY),
        ("valid 20 days", now - DAY, now + 19 * DAY),
    ];
    // A good server beside the bad ones: its clients are not affected.
    let mut good = start(ServerIdentity::self_signed_local().unwrap(), None);
    for (what, from, to) in cases {
        let identity = ServerIdentity::self_signed_between(&names, from, to).unwrap();
        let server = start(identity, None);
        for path in PINNED {
            let err = connect(&server, path, server.cert_hash())
                .await
                .expect_err(what);
            let text = err.to_string();
            match what {
                "valid 20 days" => assert!(
                    matches!(err, NetError::CertMismatch { .. }) && text.contains("14 days"),
                    "{what} over {path:?}: {text}"
                ),
                _ => assert!(
                    matches!(err, NetError::CertExpired { .. })
                        && text.contains("expired or not yet valid"),
                    "{what} over {path:?}: {text}"
                ),
            }
        }
        for path in PINNED {
            let mut client = connect(&good, path, good.cert_hash())
                .await
                .expect("the good server still serves");
            round_trip(
                &mut good,
                &mut client,
                &format!("{what}: {path:?} bystander"),
            )
            .await;
        }
    }
}
