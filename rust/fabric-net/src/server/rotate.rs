//! Certificate rotation of a running server: installing an identity for new handshakes of both
//! transports, and the schedule that installs the announced next one.

use std::sync::Arc;
use std::time::SystemTime;

use tracing::{info, warn};

use super::{ServerEvent, Shared, WtEndpoint};
use crate::NetError;
use crate::cert::{CertHash, ServerIdentity};
use crate::error::{Cause, IdentityError};
use crate::rotation::CertRotation;

/// Installs `identity` for new handshakes of both transports. Builds everything first, so a
/// failure leaves the old certificate in place.
pub(super) fn apply_identity(
    endpoint: Option<&WtEndpoint>,
    shared: &Shared,
    identity: &ServerIdentity,
) -> Result<CertHash, NetError> {
    let not_after = identity
        .validity()
        .map_err(IdentityError::Validity)?
        .not_after;
    let wt = match endpoint {
        // Not rebinding: the address is ignored.
        Some(_) => Some(super::bind::wt_config(
            Err(shared.bind),
            identity,
            shared.keep_alive,
            shared.idle_timeout,
            shared.congestion,
        )?),
        None => None,
    };
    let has_tls = shared.tls.read().expect("tls lock").is_some();
    let tls = if has_tls {
        Some(crate::tls::server_config(identity)?)
    } else {
        None
    };
    if let (Some(e), Some(cfg)) = (endpoint, wt) {
        e.reload_config(cfg, false)
            .map_err(|e| IdentityError::Install(Cause::new(e)))?;
    }
    if tls.is_some() {
        *shared.tls.write().expect("tls lock") = tls;
    }
    let hash = identity.hash();
    *shared.hash.lock().expect("hash lock") = hash;
    let next = shared
        .next
        .lock()
        .expect("next lock")
        .as_ref()
        .map(ServerIdentity::hash);
    info!(%hash, ?next, "certificate replaced");
    shared.emit(ServerEvent::CertRotated {
        hash,
        next,
        not_after,
    });
    Ok(hash)
}

/// A fresh self-signed identity with `rotation`'s names and validity.
pub(super) fn fresh_identity(rotation: &CertRotation) -> Result<ServerIdentity, NetError> {
    let names: Vec<&str> = rotation.names.iter().map(String::as_str).collect();
    ServerIdentity::self_signed(&names, rotation.validity_days)
}

/// One rotation step: the announced next identity goes into use and a fresh one is announced
/// (with no schedule: a fresh local identity, nothing announced). Returns the installed hash
/// and its expiry. On failure the old certificate and announcement stay.
pub(super) fn rotate_to_next(
    endpoint: Option<&WtEndpoint>,
    shared: &Shared,
) -> Result<(CertHash, SystemTime), NetError> {
    let Some(rotation) = &shared.rotation else {
        let id = ServerIdentity::self_signed_local()?;
        let not_after = id.validity().map_err(IdentityError::Validity)?.not_after;
        return Ok((apply_identity(endpoint, shared, &id)?, not_after));
    };
    let following = fresh_identity(rotation)?;
    let previous = shared.next.lock().expect("next lock").replace(following);
    let install = match previous {
        Some(id) => id,
        None => fresh_identity(rotation)?,
    };
    let not_after = install
        .validity()
        .map_err(IdentityError::Validity)?
        .not_after;
    match apply_identity(endpoint, shared, &install) {
        Ok(hash) => Ok((hash, not_after)),
        Err(e) => {
            // Keep announcing the certificate that was not installed.
            *shared.next.lock().expect("next lock") = Some(install);
            Err(e)
        }
    }
}

/// Replaces the certificate on `rotation`'s schedule until the server stops.
pub(super) async fn rotation_loop(
    endpoint: Option<Arc<WtEndpoint>>,
    shared: Arc<Shared>,
    rotation: CertRotation,
    mut not_after: SystemTime,
) {
    let mut installed = SystemTime::now();
    loop {
        let wait = rotation.next_in(SystemTime::now(), installed, not_after);
        tokio::time::sleep(wait).await;
        match rotate_to_next(endpoint.as_deref(), &shared) {
            Ok((_, expires)) => {
                installed = SystemTime::now();
                not_after = expires;
            }
            // Try again after the minimum interval; the old certificate stays in use.
            Err(e) => warn!("certificate rotation failed: {e}"),
        }
    }
}
