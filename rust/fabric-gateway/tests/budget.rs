//! What a client sends before its zone session opens waits within a byte budget: a reliable
//! message beyond it is never dropped silently, the client session is closed with
//! `UPSTREAM` (3) and a reason that says why; pings are still answered meanwhile.

mod common;

use std::time::Duration;

use common::{next, ping};

use fabric_gateway::{Gateway, GatewayConfig, ZonePin};
use fabric_net::server::close_code;
use fabric_net::{CertHash, Client, ClientConfig, ClientEvent, CloseReason, ServerIdentity};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reliable_message_over_the_pending_budget_closes_the_session_with_a_reason() {
    const BUDGET: usize = 64 * 1024;
    let cfg = GatewayConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        // Nothing answers there: the zone session stays "opening" for the whole test.
        zone: "127.0.0.1:9".parse().unwrap(),
        zone_pin: ZonePin::Hash(vec![CertHash([0; 32])]),
        zone_connect_timeout: Duration::from_secs(8),
        limits: fabric_net::ServerLimits {
            max_sessions: 16,
            ..Default::default()
        },
        websocket: false,
        rotation: None,
        cert_hash_file: None,
        session_budget: BUDGET,
        follow: true,
        zones: Default::default(),
        standby: false,
    };
    let gateway = Gateway::bind(cfg, ServerIdentity::self_signed_local().unwrap()).unwrap();
    let url = format!("https://127.0.0.1:{}/wt", gateway.local_addr().port());
    let hash = gateway.cert_hash();
    let _run = tokio::spawn(gateway.run(std::future::pending()));
    let mut client = Client::connect(ClientConfig::new(url, hash));
    assert!(matches!(
        next(&mut client).await,
        ClientEvent::Connected { .. }
    ));

    // Within the budget: held for the zone. The ping is answered by the gateway meanwhile.
    client.send_message(vec![1; BUDGET / 2]).unwrap();
    let ponged = ping(&mut client, "b1").await.is_some();
    assert!(ponged, "pings are answered while the zone session opens");

    // Beyond it: the session is closed with the reason, not the message dropped.
    client.send_message(vec![2; BUDGET]).unwrap();
    let reason = loop {
        match next(&mut client).await {
            ClientEvent::Closed { reason } => break reason,
            ClientEvent::Datagram(_) | ClientEvent::Message(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(
        matches!(
            &reason,
            CloseReason::ByPeer { code: Some(close_code::UPSTREAM), text, .. }
                if text.contains("fast enough")
        ),
        "closed by the gateway with the upstream code and why: {reason:?}"
    );
}
