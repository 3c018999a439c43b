//! Registry-driven membership: the fabric's members from the registry backend
//! (`GET /fabrics/{fabric}/members`, see `docs/backend.md`), polled by
//! [`crate::ZoneLinks::follow_registry`].

use std::sync::Arc;
use std::time::Duration;

use fabric_net::http;
use tokio::sync::watch;
use tracing::warn;

use crate::links::only_fabric;
use crate::membership::Member;

const TIMEOUT: Duration = Duration::from_secs(5);

/// The live members of `fabric` the account of `api_key` registered.
pub async fn fetch_members(
    backend: &str,
    api_key: &str,
    fabric: &str,
) -> Result<Vec<Member>, String> {
    let r = http::request(
        backend,
        "GET",
        &format!("/fabrics/{fabric}/members"),
        Some(api_key),
        None,
        TIMEOUT,
    )
    .await
    .map_err(|e| format!("cannot list the fabric's members: {e}"))?;
    if r.status != 200 {
        return Err(format!("listing the fabric's members: HTTP {}", r.status));
    }
    r.body["members"]
        .as_array()
        .ok_or("member list without members")?
        .iter()
        .map(|m| Member::from_registry_json(m).map_err(|e| e.to_string()))
        .collect()
}

pub(crate) async fn follow(
    backend: String,
    api_key: String,
    fabric: String,
    zones: u8,
    members: Arc<watch::Sender<Vec<Member>>>,
    every: Duration,
) {
    loop {
        match fetch_members(&backend, &api_key, &fabric).await {
            Ok(list) => {
                let list = only_fabric(list, zones);
                members.send_if_modified(|m| {
                    let changed = *m != list;
                    if changed {
                        *m = list;
                    }
                    changed
                });
            }
            Err(e) => warn!("{e}"),
        }
        tokio::time::sleep(every).await;
    }
}
