//! Registry-driven membership: the fabric's members from the registry backend
//! (`GET /fabrics/{fabric}/members`, see `docs/backend.md`), polled by
//! [`crate::ZoneLinks::follow_registry`]; and the registry's link grants (the zone's
//! credential and the keys that verify its neighbours'), installed by
//! [`crate::ZoneLinks::install_grant`] and, across key rotations,
//! [`crate::ZoneLinks::follow_grants`].

use std::sync::Arc;
use std::time::Duration;

use fabric_auth::LinkCredentialVerifier;
use fabric_auth::keys::public_key_from_b64;
use fabric_auth::link_credential::credential_from_text;
use fabric_net::http::{self, Endpoint};
use fabric_net::registry::LinkGrant;
use tokio::sync::watch;
use tracing::{Instrument as _, info_span, warn};

use crate::links::{ZoneLinks, only_fabric};
use crate::membership::Member;

const TIMEOUT: Duration = Duration::from_secs(5);

/// The live members of `fabric` the account of `api_key` registered.
pub async fn fetch_members(
    backend: &Endpoint,
    api_key: &str,
    fabric: &str,
) -> Result<Vec<Member>, String> {
    let r = http::request_to(
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

/// How long member polling stays at its fast rate after a change, an incomplete list or a
/// dropped link, before it slows down to [`STABLE_POLL_FACTOR`] times the fast interval.
pub const FAST_POLL_FOR: Duration = Duration::from_secs(10);

/// A complete, unchanged member list is fetched this many times less often than a changing one.
pub const STABLE_POLL_FACTOR: u32 = 8;

/// Polls the member list into `members`: every `fast` while the fabric is changing (a member
/// missing, the list changed, or a link dropped: `wake`) and for [`FAST_POLL_FOR`] after, else
/// every `fast * STABLE_POLL_FACTOR`. A fabric of 32 zones polling every 250 ms cost its
/// backend a quarter of a core; a settled one needs no such rate, and a dropped link (a
/// neighbour restarting elsewhere) brings the fast rate back at once.
pub(crate) async fn follow(
    backend: Endpoint,
    api_key: String,
    fabric: String,
    zones: u8,
    members: Arc<watch::Sender<Vec<Member>>>,
    fast: Duration,
    wake: Arc<tokio::sync::Notify>,
) {
    let mut fast_until = tokio::time::Instant::now() + FAST_POLL_FOR;
    loop {
        match fetch_members(&backend, &api_key, &fabric).await {
            Ok(list) => {
                let list = only_fabric(list, zones);
                let complete = (0..zones).all(|z| list.iter().any(|m| m.zone == z));
                let changed = members.send_if_modified(|m| {
                    let changed = *m != list;
                    if changed {
                        *m = list;
                    }
                    changed
                });
                if changed || !complete {
                    fast_until = tokio::time::Instant::now() + FAST_POLL_FOR;
                }
            }
            Err(e) => warn!("{e}"),
        }
        let now = tokio::time::Instant::now();
        let every = if now < fast_until {
            fast
        } else {
            fast * STABLE_POLL_FACTOR
        };
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = wake.notified() => fast_until = tokio::time::Instant::now() + FAST_POLL_FOR,
        }
    }
}

/// Decodes a grant for zone links of `fabric` (`zones` zones): the credential (binary) and a
/// verifier of neighbours' credentials trusting every key of the grant.
pub fn decode_grant(
    fabric: &str,
    zones: u8,
    grant: &LinkGrant,
) -> Result<(Vec<u8>, LinkCredentialVerifier), String> {
    let credential = credential_from_text(&grant.credential).map_err(|e| e.to_string())?;
    let keys = grant
        .trusted_keys
        .iter()
        .chain(std::iter::once(&grant.issuer_key))
        .map(|k| public_key_from_b64(k).map_err(|e| format!("registry key {k:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((credential, LinkCredentialVerifier::new(fabric, zones, keys)))
}

impl ZoneLinks {
    /// Installs a grant of the registry ([`fabric_net::registry::Registration::link_grant`]):
    /// this zone's credential and the keys its neighbours' credentials may be signed by.
    /// Links already up stay up; the next ones are made and checked with these.
    pub fn install_grant(&self, grant: &LinkGrant) -> Result<(), String> {
        let m = self.fabric_membership();
        let (credential, verifier) = decode_grant(&m.name, m.zones, grant)?;
        self.set_credential(credential, verifier);
        Ok(())
    }

    /// Installs every grant `grants` yields, the current one first: after the registry rotates
    /// its signing key the zone trusts the new key and presents a credential signed by it
    /// (renewed by the registration), without dropping a link.
    pub fn follow_grants(&mut self, mut grants: watch::Receiver<Option<LinkGrant>>) {
        let m = self.fabric_membership();
        let auth = self.auth_handle();
        let task = async move {
            loop {
                let grant = grants.borrow_and_update().clone();
                if let Some(grant) = grant {
                    match decode_grant(&m.name, m.zones, &grant) {
                        Ok((credential, verifier)) => auth(credential, verifier),
                        Err(e) => warn!("registry link grant: {e}"),
                    }
                }
                if grants.changed().await.is_err() {
                    return;
                }
            }
        };
        self.tasks.push(
            fabric_net::current_or_shared()
                .spawn(task.instrument(info_span!("grants", zone = m.zone))),
        );
    }
}
