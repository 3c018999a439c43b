//! Fabric membership: a shard registered with `fabric` is zone k of that fabric; it gets a
//! link credential (signed by the registry's key, verified offline by its neighbours), and
//! `GET /fabrics/{fabric}/members` lists the fabric's live members so zones find each other.
//!
//! A fabric name belongs to the account of its live members: registering a member of a fabric
//! whose live members are another account's is 409 `fabric_taken` (a stranger cannot obtain a
//! credential for your fabric), and a zone count that differs from the live members' is 409
//! `fabric_size`. Registering zone k again (a restarted zone) replaces the earlier entry.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use fabric_auth::keys::{public_key_from_b64, public_key_to_b64};
use fabric_auth::link_credential::{MAX_FABRIC_LEN, MAX_FABRIC_ZONES};
use uuid::Uuid;

use crate::blocking::off_worker;
use crate::error::ApiError;
use crate::extract::{ApiJson, ShardId};
use crate::extract::{Bearer, require_account};
use crate::model::{
    FabricJoin, LinkGrant, LinkRenewal, MAX_TEXT_LEN, MemberList, MemberView, check_text,
};
use crate::state::{AppState, Shared};
use crate::store::MemberRecord;

/// Lifetime of a link credential (zones re-register before it ends).
pub const LINK_CREDENTIAL_TTL_S: u64 = 7 * 24 * 3600;

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.len() > MAX_FABRIC_LEN || name.contains('/') {
        return Err(ApiError::invalid_field(
            "fabric.name",
            "must be 1-64 bytes without '/'",
        ));
    }
    Ok(())
}

/// Checks a registration's `fabric` part before the shard is stored.
pub(super) fn check_join(st: &AppState, owner: &str, f: &FabricJoin) -> Result<(), ApiError> {
    check_name(&f.name)?;
    if f.zones == 0 || f.zones > MAX_FABRIC_ZONES || f.zone >= f.zones {
        return Err(ApiError::invalid_field(
            "fabric.zone",
            "zone must be below zones, zones 1-32",
        ));
    }
    if f.link_port == 0 || f.link_port > u16::MAX as u32 {
        return Err(ApiError::invalid_field(
            "fabric.link_port",
            "must be 1-65535",
        ));
    }
    check_text("fabric.link_cert_hash", &f.link_cert_hash, MAX_TEXT_LEN)?;
    if let Some(h) = &f.link_next_cert_hash {
        check_text("fabric.link_next_cert_hash", h, MAX_TEXT_LEN)?;
    }
    if let Some(a) = &f.link_address {
        check_text("fabric.link_address", a, MAX_TEXT_LEN)?;
    }
    public_key_from_b64(&f.link_public_key).map_err(|_| {
        ApiError::invalid_field(
            "fabric.link_public_key",
            "must be an Ed25519 key, base64url",
        )
    })?;
    let since = st.clock.now_ms().saturating_sub(st.settings.stale_after_ms);
    for (m, member_owner, _) in st.store.fabric_members(&f.name, since)? {
        if member_owner != owner {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "fabric_taken",
                "this fabric's live members belong to another account",
            ));
        }
        if m.zones != f.zones {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "fabric_size",
                format!("the fabric's live members have {} zones", m.zones),
            ));
        }
    }
    Ok(())
}

/// Records the stored shard `shard_id` (reachable at `address`) as a member and issues its
/// link credential.
pub(super) fn join(
    st: &AppState,
    shard_id: Uuid,
    address: &str,
    f: &FabricJoin,
) -> Result<LinkGrant, ApiError> {
    let host = f.link_address.as_deref().unwrap_or(address);
    let link_address = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{}", f.link_port)
    } else {
        format!("{host}:{}", f.link_port)
    };
    st.store.put_member(&MemberRecord {
        shard_id,
        fabric: f.name.clone(),
        zone: f.zone,
        zones: f.zones,
        link_address,
        link_cert_hash: f.link_cert_hash.clone(),
        link_next_cert_hash: f.link_next_cert_hash.clone(),
    })?;
    let key = public_key_from_b64(&f.link_public_key)
        .map_err(|_| ApiError::invalid_field("fabric.link_public_key", "not a key"))?;
    grant(st, &f.name, f.zone, f.zones, &key)
}

/// A link credential for zone `zone` of `zones` in `fabric` holding `key`, signed by the
/// current key.
fn grant(
    st: &AppState,
    fabric: &str,
    zone: u8,
    zones: u8,
    key: &ed25519_dalek::VerifyingKey,
) -> Result<LinkGrant, ApiError> {
    let now_s = st.clock.now_ms() / 1000;
    let keys = st.signing();
    let credential = keys
        .link_issuer
        .issue(fabric, zone, zones, key, now_s)
        .map_err(|e| ApiError::invalid_field("fabric", &e.to_string()))?;
    Ok(LinkGrant {
        credential,
        issuer_key: public_key_to_b64(&keys.link_issuer.verifying_key()),
        expires_at: now_s + LINK_CREDENTIAL_TTL_S,
    })
}

/// `POST /shards/{id}/link` (shard secret): a fresh credential, signed by the current key, for
/// the membership the shard registered. Zones ask for it when `GET /keys/join` shows that the
/// key which signed theirs is no longer current (a rotation), well before it retires.
pub(super) async fn renew(
    State(st): State<Shared>,
    ShardId(id): ShardId,
    bearer: Bearer,
    ApiJson(body): ApiJson<LinkRenewal>,
) -> Result<Json<LinkGrant>, ApiError> {
    off_worker(move || {
        super::shards::authorize(&st, id, &bearer, false)?;
        check_name(&body.fabric)?;
        let key = public_key_from_b64(&body.link_public_key).map_err(|_| {
            ApiError::invalid_field("link_public_key", "must be an Ed25519 key, base64url")
        })?;
        let since = st.clock.now_ms().saturating_sub(st.settings.stale_after_ms);
        let member = st
            .store
            .fabric_members(&body.fabric, since)?
            .into_iter()
            .map(|(m, _, _)| m)
            .find(|m| m.shard_id == id && m.zone == body.zone)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_a_member",
                    format!(
                        "shard {id} is not zone {} of fabric {:?} (register again)",
                        body.zone, body.fabric
                    ),
                )
            })?;
        let granted = grant(&st, &member.fabric, member.zone, member.zones, &key)?;
        tracing::info!(shard = %id, fabric = %member.fabric, zone = member.zone, "link credential renewed");
        Ok(Json(granted))
    })
    .await
}

/// `GET /fabrics/{fabric}/members`: the caller's live members of `fabric`, by zone.
pub(super) async fn members(
    State(st): State<Shared>,
    Path(fabric): Path<String>,
    bearer: Bearer,
) -> Result<Json<MemberList>, ApiError> {
    off_worker(move || {
        let account = require_account(&st, &bearer)?;
        check_name(&fabric)?;
        let since = st.clock.now_ms().saturating_sub(st.settings.stale_after_ms);
        let members = st
            .store
            .fabric_members(&fabric, since)?
            .into_iter()
            .filter(|(_, owner, _)| *owner == account)
            .map(|(m, _, last)| MemberView {
                shard_id: m.shard_id,
                zone: m.zone,
                zones: m.zones,
                link_address: m.link_address,
                link_cert_hash: m.link_cert_hash,
                link_next_cert_hash: m.link_next_cert_hash,
                last_put_at_ms: last,
            })
            .collect();
        Ok(Json(MemberList { fabric, members }))
    })
    .await
}
