//! A zone talks to an HTTPS backend only with the backend's certificate pinned: registration,
//! heartbeats and the WSS subscription work with the right pin; a wrong pin, no pin, or plain
//! `http://` against the TLS port fail with an error that says so and register nothing. The
//! self-signed certificate survives a restart (same hash, so pins stay valid), and join keys
//! pinned from configuration replace what the backend publishes. Runs a real `fabric-backend`
//! in this process on a real socket.

use std::path::Path;
use std::time::Duration;

use fabric_backend::config::Config;
use fabric_backend::server::Bound;
use fabric_net::cert::CertHash;
use fabric_net::http::{self, Endpoint, HttpError};
use fabric_net::registry::{Registration, RegistryEvent};
use serde_json::json;
use tokio::sync::oneshot;

mod registry_common;

const WAIT: Duration = Duration::from_secs(20);

struct Backend {
    url: String,
    cert_hash: String,
    stop: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), fabric_backend::server::ServeError>>,
}

fn start_backend(tls_dir: &Path) -> Backend {
    let rt = fabric_net::runtime_handle();
    let mut cfg = Config::new("127.0.0.1:0".parse().unwrap(), ":memory:").without_rate_limits();
    cfg.tls_self_signed = Some(tls_dir.to_owned());
    let bound = rt.block_on(Bound::bind(&cfg)).expect("backend binds");
    assert_eq!(bound.scheme(), "https");
    let cert_hash = bound
        .cert_hash()
        .expect("a TLS backend has a hash")
        .to_owned();
    let url = format!("https://{}", bound.local_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = rt.spawn(bound.serve(async {
        let _ = stopped.await;
    }));
    Backend {
        url,
        cert_hash,
        stop,
        server,
    }
}

impl Backend {
    fn endpoint(&self) -> Endpoint {
        Endpoint::new(&self.url, &[CertHash::parse(&self.cert_hash).unwrap()]).unwrap()
    }

    fn stop(self) {
        self.stop.send(()).unwrap();
        fabric_net::runtime_handle()
            .block_on(self.server)
            .unwrap()
            .unwrap();
    }
}

fn call(
    ep: &Endpoint,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<serde_json::Value>,
) -> Result<http::Response, HttpError> {
    fabric_net::runtime_handle().block_on(http::request_to(
        ep,
        method,
        path,
        bearer,
        body.as_ref(),
        Duration::from_secs(5),
    ))
}

/// Creates the operator account over HTTPS (checking the pinned request works) and returns its
/// API key.
fn operator(ep: &Endpoint) -> String {
    let account = call(
        ep,
        "POST",
        "/accounts",
        None,
        Some(json!({"name": "operator"})),
    )
    .expect("HTTPS request with the pin");
    assert_eq!(account.status, 201);
    account.body["api_key"].as_str().unwrap().to_owned()
}

fn registration(ep: Endpoint, api_key: &str, pinned_join_keys: Vec<String>) -> Registration {
    Registration::start(registry_common::zone(
        ep,
        api_key,
        pinned_join_keys,
        Duration::from_millis(200),
    ))
}

/// Events until `until` says stop (returns its value), or `None` after `within`.
fn wait_for<T>(
    reg: &mut Registration,
    within: Duration,
    mut until: impl FnMut(RegistryEvent) -> Option<T>,
) -> Option<T> {
    fabric_net::runtime_handle().block_on(async {
        tokio::time::timeout(within, async {
            loop {
                match reg.next_event().await {
                    Some(e) => {
                        if let Some(v) = until(e) {
                            return v;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            }
        })
        .await
        .ok()
    })
}

#[test]
fn a_zone_registers_over_https_only_with_the_pinned_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let be = start_backend(dir.path());
    let ep = be.endpoint();
    let api_key = operator(&ep);

    // Registration, heartbeats and the WSS subscription, all over TLS.
    let mut reg = registration(ep.clone(), &api_key, Vec::new());
    let (shard, keys) = wait_for(&mut reg, WAIT, |e| match e {
        RegistryEvent::Registered {
            shard_id,
            join_keys,
        } => Some((shard_id, join_keys)),
        _ => None,
    })
    .expect("registered over https");
    let published = call(&ep, "GET", "/keys/join", None, None).unwrap();
    assert_eq!(
        keys,
        [published.body["keys"][0]["public_key"].as_str().unwrap()]
    );
    assert!(
        wait_for(&mut reg, WAIT, |e| matches!(e, RegistryEvent::HeartbeatOk)
            .then_some(()))
        .is_some(),
        "heartbeats over https"
    );
    // A relationship change on the zone reaches it through the wss:// subscription. The
    // subscription is made right after registering: retry the change until it is heard.
    let mut heard = None;
    for i in 0..20 {
        let tuple = json!({"object": format!("zone:{shard}"), "relation": "joiner", "subject": format!("user:p{i}")});
        let r = call(&ep, "POST", "/relationships", Some(&api_key), Some(tuple)).unwrap();
        assert!(r.status == 200 || r.status == 201, "{r:?}");
        heard = wait_for(&mut reg, Duration::from_millis(500), |e| match e {
            RegistryEvent::RelationshipChanged { object } => Some(object),
            _ => None,
        });
        if heard.is_some() {
            break;
        }
    }
    assert_eq!(heard, Some(format!("zone:{shard}")), "push over wss");
    reg.stop();

    // A wrong pin: refused by name, nothing registered.
    let wrong = Endpoint::new(&be.url, &[CertHash([7; 32])]).unwrap();
    match call(&wrong, "GET", "/keys/join", None, None) {
        Err(e @ HttpError::CertMismatch(_)) => {
            assert!(e.to_string().contains("pinned hash"), "{e}")
        }
        other => panic!("a wrong pin must be refused, got {other:?}"),
    }
    let mut bad = registration(wrong, &api_key, Vec::new());
    let problem = wait_for(&mut bad, WAIT, |e| match e {
        RegistryEvent::Problem(p) => Some(p),
        RegistryEvent::Registered { .. } => panic!("registered with a wrong pin"),
        _ => None,
    })
    .expect("a problem is reported");
    assert!(
        problem.contains("does not match the pinned hash"),
        "{problem}"
    );
    bad.stop();

    // No pin for https://, a pin for http://: refused before connecting.
    assert!(matches!(
        Endpoint::new(&be.url, &[]),
        Err(HttpError::Unpinned(_))
    ));
    let plain = be.url.replace("https://", "http://");
    assert!(matches!(
        Endpoint::new(&plain, &[CertHash([7; 32])]),
        Err(HttpError::PinWithoutTls(_))
    ));
    // Plain HTTP to the TLS port fails (no answer a client could mistake for one).
    let answer = fabric_net::runtime_handle().block_on(http::request(
        &plain,
        "GET",
        "/keys/join",
        None,
        None,
        Duration::from_secs(5),
    ));
    assert!(answer.is_err(), "plain http to a TLS port: {answer:?}");

    // The self-signed certificate is kept: a restart serves the same hash.
    let first_hash = be.cert_hash.clone();
    be.stop();
    let again = start_backend(dir.path());
    assert_eq!(
        again.cert_hash, first_hash,
        "same certificate after a restart"
    );
    again.stop();
}

#[test]
fn pinned_join_keys_replace_the_published_ones() {
    let dir = tempfile::tempdir().unwrap();
    let be = start_backend(dir.path());
    let ep = be.endpoint();
    let api_key = operator(&ep);
    let pinned = vec!["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned()];
    let mut reg = registration(ep, &api_key, pinned.clone());
    let keys = wait_for(&mut reg, WAIT, |e| match e {
        RegistryEvent::Registered { join_keys, .. } => Some(join_keys),
        _ => None,
    })
    .expect("registered");
    assert_eq!(keys, pinned, "the zone trusts the configured key only");
    reg.stop();
    be.stop();
}
