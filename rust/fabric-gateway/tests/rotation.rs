//! The gateway replaces its own certificate on schedule: the hash file follows, clients pinning
//! the new hash get their pong, clients pinning the old one get a clear mismatch.

mod common;

use std::time::{Duration, Instant};

use common::{next, ping};

use fabric_core::session_control::ControlMessage;
use fabric_gateway::{Gateway, GatewayConfig, ZonePin};
use fabric_net::{
    CertHash, CertRotation, Client, ClientConfig, ClientEvent, NetError, ServerIdentity,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_rotates_its_certificate_and_rewrites_its_hash_file() {
    let dir = std::env::temp_dir().join(format!("fabric-gateway-rotation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gateway.hash");
    let cfg = GatewayConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        // No zone behind it: pings are answered by the gateway itself.
        zone: "127.0.0.1:9".parse().unwrap(),
        zone_pin: ZonePin::Hash(vec![CertHash([0; 32])]),
        zone_connect_timeout: Duration::from_secs(1),
        limits: fabric_net::ServerLimits {
            max_sessions: 16,
            ..Default::default()
        },
        websocket: false,
        rotation: Some(CertRotation {
            every: Duration::from_secs(1),
            ..CertRotation::weekly(&ServerIdentity::LOCAL_NAMES)
        }),
        cert_hash_file: Some(file.clone()),
        session_budget: fabric_gateway::DEFAULT_SESSION_BUDGET,
        follow: true,
        zones: Default::default(),
        standby: false,
    };
    let gateway = Gateway::bind(cfg, ServerIdentity::self_signed_local().unwrap()).unwrap();
    let first = gateway.cert_hash();
    let announced = gateway
        .next_cert_hash()
        .expect("the next certificate is announced");
    let read = || CertHash::parse_list(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(read(), [first, announced], "hash file: current, then next");
    let url = format!("https://127.0.0.1:{}/wt", gateway.local_addr().port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(gateway.run(async {
        let _ = stopped.await;
    }));

    // The file changes once the first rotation (1 s) happened.
    let deadline = Instant::now() + Duration::from_secs(10);
    let rotated = loop {
        let h = read();
        if h[0] != first {
            break h;
        }
        assert!(Instant::now() < deadline, "no rotation within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    assert_eq!(
        rotated[0], announced,
        "the announced certificate went into use"
    );
    // Pinning the pair the file holds survives a further rotation during the handshake.
    let mut client = Client::connect(ClientConfig::pinning(url.clone(), &rotated).unwrap());
    match next(&mut client).await {
        ClientEvent::Connected { .. } => {}
        other => panic!("connecting with the rotated pair: {other:?}"),
    }
    let pong = ping(&mut client, "r1").await;
    let pong = pong.expect("a pong within 5 s");
    assert_eq!(
        ControlMessage::decode(&pong).unwrap(),
        ControlMessage::pong("r1"),
        "the gateway answered"
    );

    let mut stale = Client::connect(ClientConfig::new(url, first));
    match next(&mut stale).await {
        ClientEvent::Failed(e @ NetError::CertMismatch { .. }) => {
            assert!(
                e.to_string().contains("does not match the pinned hash"),
                "{e}"
            );
        }
        other => panic!("the first hash must be refused: {other:?}"),
    }
    let _ = stop.send(());
    run.await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
