//! The re-check a zone runs after `relationship_changed` fails closed: a player whose join
//! permission cannot be confirmed (the registry is down or failing) is revoked, after a few
//! retries. Before the fix an unanswered re-check only reported a problem and the player
//! stayed. Runs a real `fabric-backend` in this process on a real socket.

use std::time::Duration;

use fabric_backend::config::Config;
use fabric_net::registry::{Registration, RegistryEvent};
use tokio::sync::oneshot;

mod registry_common;

/// Waits for the next `JoinRevoked`, skipping other events; `None` if none comes in time.
async fn next_revoked(reg: &mut Registration, within: Duration) -> Option<String> {
    tokio::time::timeout(within, async {
        loop {
            match reg.next_event().await {
                Some(RegistryEvent::JoinRevoked { subject }) => return subject,
                Some(_) => continue,
                None => std::future::pending::<()>().await,
            }
        }
    })
    .await
    .ok()
}

#[test]
fn an_unanswerable_recheck_revokes_the_player() {
    let rt = fabric_net::runtime_handle();
    let cfg = Config::new("127.0.0.1:0".parse().unwrap(), ":memory:");
    let (stop, stopped) = oneshot::channel::<()>();
    let backend = registry_common::start_backend(&cfg, async {
        let _ = stopped.await;
    });
    let endpoint =
        fabric_net::http::Endpoint::new(&format!("http://{}", backend.addr), &[]).unwrap();
    let mut reg = Registration::start(registry_common::zone(
        endpoint,
        &backend.api_key,
        Vec::new(),
        Duration::from_secs(30),
    ));
    let server = backend.server;
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let Some(RegistryEvent::Registered { .. }) = reg.next_event().await {
                    return;
                }
            }
        })
        .await
        .expect("registered")
    });

    // The registry answers: the owner stays, a stranger to this private zone is revoked.
    reg.recheck(vec!["operator".into(), "stranger".into()]);
    let first = rt.block_on(next_revoked(&mut reg, Duration::from_secs(20)));
    assert_eq!(
        first.as_deref(),
        Some("stranger"),
        "only the stranger is revoked"
    );

    // The registry goes away: the owner's permission can no longer be confirmed.
    stop.send(()).unwrap();
    rt.block_on(server).unwrap().unwrap();
    reg.recheck(vec!["operator".into()]);
    let second = rt.block_on(next_revoked(&mut reg, Duration::from_secs(20)));
    assert_eq!(
        second.as_deref(),
        Some("operator"),
        "an unanswered re-check fails closed"
    );
}
