//! `/shards`: zone registration, heartbeats, listing and removal.
//!
//! Registration needs an account API key (the zone's operator account) and returns a
//! per-shard secret; heartbeats and deletes must present that secret (deletes may also use
//! the owner's API key). A secret belonging to another shard is 403 `wrong_shard`.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::StatusCode;
use fabric_auth::{ObjectRef, Subject, Tuple};
use uuid::Uuid;

use crate::blocking::off_worker;
use crate::error::ApiError;
use crate::extract::{ApiJson, Bearer, ShardId, account_for, optional_account, require_account};
use crate::model::{
    DEFAULT_MAX_USERS, Heartbeat, MAX_MAX_USERS, MAX_TEXT_LEN, MAX_URL_LEN, RegisterShard,
    Registered, ShardList, ShardQuery, ShardRecord, ShardView, check_text,
};
use crate::push;
use crate::secrets::{SHARD_SECRET_PREFIX, hash_secret, new_shard_secret};
use crate::state::{AppState, Shared};
use crate::store::{HeartbeatUpdate, ShardCursor, ShardPage};

fn check_optional_hash(field: &str, hash: &Option<String>) -> Result<(), ApiError> {
    if let Some(h) = hash {
        check_text(field, h, MAX_TEXT_LEN)?;
    }
    Ok(())
}

/// A public shard lists where players connect: only the caller's own IP, so nobody can point
/// players at a host that is not theirs (`--allow-any-address` lifts it, e.g. behind NAT).
fn check_address_is_caller(address: &str, caller: std::net::IpAddr) -> Result<(), ApiError> {
    match address.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.to_canonical() == caller => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "address_not_caller",
            format!(
                "a public shard must be registered from its own address: declared {address:?}, \
                 request from {caller} (register from that host, leave address out, make the \
                 shard private, or start the backend with --allow-any-address)"
            ),
        )),
    }
}

fn check_url(url: &Option<String>) -> Result<(), ApiError> {
    if let Some(u) = url {
        check_text("asset_index_url", u, MAX_URL_LEN)?;
    }
    Ok(())
}

pub(super) async fn register(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    bearer: Bearer,
    ApiJson(body): ApiJson<RegisterShard>,
) -> Result<(StatusCode, Json<Registered>), ApiError> {
    off_worker(move || {
        let owner = require_account(&st, &bearer)?;
        let port = u16::try_from(body.port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| ApiError::invalid_field("port", "must be 1-65535"))?;
        let caller = peer.ip().to_canonical();
        let public = body.public.unwrap_or(true);
        let address = body.address.unwrap_or_else(|| caller.to_string());
        check_text("address", &address, MAX_TEXT_LEN)?;
        if public && !st.settings.allow_any_address {
            check_address_is_caller(&address, caller)?;
        }
        check_text("map", &body.map, MAX_TEXT_LEN)?;
        check_text("name", &body.name, MAX_TEXT_LEN)?;
        check_text("cert_hash", &body.cert_hash, MAX_TEXT_LEN)?;
        check_optional_hash("next_cert_hash", &body.next_cert_hash)?;
        check_url(&body.asset_index_url)?;
        let max_users = body.max_users.unwrap_or(DEFAULT_MAX_USERS);
        if max_users == 0 || max_users > MAX_MAX_USERS {
            return Err(ApiError::invalid_field("max_users", "must be 1-100000"));
        }
        if let Some(f) = &body.fabric {
            super::fabrics::check_join(&st, &owner, f)?;
        }
        let cap = st.settings.max_shards_per_account;
        if st.store.count_owned_shards(&owner)? >= cap {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_shards",
                format!(
                    "{owner} already has {cap} shards registered (--max-shards-per-account): \
                     delete one or wait for stale ones to be evicted"
                ),
            ));
        }
        let now = st.clock.now_ms();
        let secret = new_shard_secret();
        let record = ShardRecord {
            id: Uuid::new_v4(),
            owner: owner.clone(),
            address,
            port,
            map: body.map,
            name: body.name,
            cert_hash: body.cert_hash,
            next_cert_hash: body.next_cert_hash,
            max_users,
            current_users: 0,
            public,
            asset_index_url: body.asset_index_url,
            secret_hash: hash_secret(&secret),
            created_at_ms: now,
            last_put_at_ms: now,
        };
        let zone = ObjectRef::new("zone", record.id.to_string());
        let mut tuples = vec![Tuple {
            object: zone.clone(),
            relation: "owner".into(),
            subject: Subject::User(owner),
        }];
        if public {
            tuples.push(Tuple {
                object: zone,
                relation: "joiner".into(),
                subject: Subject::AnyUser,
            });
        }
        st.store.insert_shard(&record, &tuples)?;
        let link = match &body.fabric {
            Some(f) => match super::fabrics::join(&st, record.id, &record.address, f) {
                Ok(grant) => Some(grant),
                Err(e) => {
                    st.store.delete_shard(record.id)?;
                    return Err(e);
                }
            },
            None => None,
        };
        tracing::info!(shard = %record.id, owner = %record.owner, addr = %record.address, port, "shard registered");
        Ok((
            StatusCode::CREATED,
            Json(Registered {
                id: record.id,
                shard_secret: secret,
                stale_after_ms: st.settings.stale_after_ms,
                link,
            }),
        ))
    })
    .await
}

/// Resolves the shard and checks that `bearer` is its secret (or, with `allow_owner`, its
/// owner's API key).
pub(super) fn authorize(
    st: &AppState,
    id: Uuid,
    bearer: &Bearer,
    allow_owner: bool,
) -> Result<ShardRecord, ApiError> {
    let cred = bearer
        .0
        .as_deref()
        .ok_or_else(ApiError::missing_credentials)?;
    let shard = st
        .store
        .shard(id)?
        .ok_or_else(|| ApiError::unknown_shard(id))?;
    if cred.starts_with(SHARD_SECRET_PREFIX) {
        let hash = hash_secret(cred);
        if hash == shard.secret_hash {
            return Ok(shard);
        }
        return match st.store.shard_by_secret_hash(&hash)? {
            Some(other) => {
                tracing::warn!(shard = %id, presented_for = %other, "shard secret of another shard");
                Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "wrong_shard",
                    "this secret belongs to another shard",
                ))
            }
            None => Err(ApiError::invalid_credentials()),
        };
    }
    let account = account_for(st, cred)?;
    if allow_owner && account == shard.owner {
        Ok(shard)
    } else {
        Err(ApiError::forbidden(
            "only the shard (with its secret) or its owner may do this",
        ))
    }
}

pub(super) async fn heartbeat(
    State(st): State<Shared>,
    ShardId(id): ShardId,
    bearer: Bearer,
    ApiJson(body): ApiJson<Heartbeat>,
) -> Result<Json<ShardView>, ApiError> {
    off_worker(move || {
        authorize(&st, id, &bearer, false)?;
        check_url(&body.asset_index_url)?;
        check_optional_hash("cert_hash", &body.cert_hash)?;
        check_optional_hash("next_cert_hash", &body.next_cert_hash)?;
        let update = HeartbeatUpdate {
            current_users: body.current_users,
            asset_index_url: body.asset_index_url,
            cert_hash: body.cert_hash,
            next_cert_hash: body.next_cert_hash,
        };
        let record = st
            .store
            .heartbeat(id, &update, st.clock.now_ms())?
            .ok_or_else(|| ApiError::unknown_shard(id))?;
        let delivered = push::zone_updated(&st, &record);
        tracing::debug!(shard = %id, users = record.current_users, delivered, "heartbeat");
        st.metrics.heartbeats.inc();
        Ok(Json(ShardView::from(&record)))
    })
    .await
}

pub(super) async fn delete(
    State(st): State<Shared>,
    ShardId(id): ShardId,
    bearer: Bearer,
) -> Result<StatusCode, ApiError> {
    off_worker(move || {
        authorize(&st, id, &bearer, true)?;
        if !st.store.delete_shard(id)? {
            return Err(ApiError::unknown_shard(id));
        }
        push::zone_removed(&st, id, "deleted");
        tracing::info!(shard = %id, "shard deleted");
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// Shards per page when the caller names no `limit`.
pub const DEFAULT_PAGE: u32 = 100;
/// The largest `limit` accepted.
pub const MAX_PAGE: u32 = 1000;

/// The text form of a cursor: `<created_at_ms>.<id>`, opaque to clients.
fn encode_cursor(c: ShardCursor) -> String {
    format!("{}.{}", c.created_at_ms, c.id)
}

fn decode_cursor(text: &str) -> Result<ShardCursor, ApiError> {
    let bad = || ApiError::invalid_field("after", "not a cursor from a previous page's `next`");
    let (ms, id) = text.split_once('.').ok_or_else(bad)?;
    Ok(ShardCursor {
        created_at_ms: ms.parse().map_err(|_| bad())?,
        id: id.parse().map_err(|_| bad())?,
    })
}

/// Checks the query and turns it into the store's page (asking one row more than the page,
/// to learn whether a next page exists).
fn page_of(q: ShardQuery) -> Result<(ShardPage, u32), ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::invalid_field("limit", "must be 1-1000"));
    }
    if let Some(m) = &q.map {
        check_text("map", m, MAX_TEXT_LEN)?;
    }
    let after = q.after.as_deref().map(decode_cursor).transpose()?;
    let page = ShardPage {
        after,
        map: q.map,
        limit: limit + 1,
    };
    Ok((page, limit))
}

pub(super) async fn list(
    State(st): State<Shared>,
    bearer: Bearer,
    query: Result<Query<ShardQuery>, QueryRejection>,
) -> Result<Json<ShardList>, ApiError> {
    off_worker(move || {
        let Query(q) = query
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))?;
        let (page, limit) = page_of(q)?;
        let viewer = optional_account(&st, &bearer)?;
        let since = st.clock.now_ms().saturating_sub(st.settings.stale_after_ms);
        let mut shards = st.store.list_shards(since, viewer.as_deref(), &page)?;
        let next = if shards.len() > limit as usize {
            shards.truncate(limit as usize);
            shards.last().map(|r| {
                encode_cursor(ShardCursor {
                    created_at_ms: r.created_at_ms,
                    id: r.id,
                })
            })
        } else {
            None
        };
        Ok(Json(ShardList {
            shards: shards.iter().map(ShardView::from).collect(),
            next,
        }))
    })
    .await
}

pub(super) async fn get_one(
    State(st): State<Shared>,
    ShardId(id): ShardId,
    bearer: Bearer,
) -> Result<Json<ShardView>, ApiError> {
    off_worker(move || {
        let viewer = optional_account(&st, &bearer)?;
        match st.store.shard(id)? {
            Some(s) if s.public || viewer.as_deref() == Some(s.owner.as_str()) => {
                Ok(Json(ShardView::from(&s)))
            }
            _ => Err(ApiError::unknown_shard(id)),
        }
    })
    .await
}
