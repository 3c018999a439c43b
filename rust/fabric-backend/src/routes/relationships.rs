//! ReBAC administration: add, remove and list tuples, and `POST /check` for the caller's own
//! permissions (the upload-time check) or, for an object's admins, another account's (a zone
//! re-checking its players). Writes on an object require `admin` on it; a `group`
//! or `map` nobody owns yet can be claimed by writing `owner@user:<caller>`. Every change
//! pushes `relationship_changed` on the topic of each zone whose permissions can depend on it.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use fabric_auth::rebac::{check as rebac_check, dependents};
use fabric_auth::{ObjectRef, Subject, Tuple};
use serde::Deserialize;
use uuid::Uuid;

use crate::blocking::off_worker;
use crate::error::ApiError;
use crate::extract::{ApiJson, Bearer, require_account};
use crate::model::{CheckRequest, CheckResult, TupleBody, TupleChanged, TupleList};
use crate::push;
use crate::state::{AppState, Shared};
use crate::store::{Removal, StoreTuples};

fn parse_tuple(st: &AppState, body: &TupleBody) -> Result<Tuple, ApiError> {
    let tuple = Tuple::parse(&body.object, &body.relation, &body.subject)?;
    st.schema.validate(&tuple)?;
    Ok(tuple)
}

/// 404 for a zone object whose shard does not exist (or whose id is not a UUID).
fn require_object_exists(st: &AppState, object: &ObjectRef) -> Result<(), ApiError> {
    if object.kind == "zone" {
        let id = Uuid::parse_str(&object.id).map_err(|_| ApiError::unknown_shard(&object.id))?;
        if st.store.shard(id)?.is_none() {
            return Err(ApiError::unknown_shard(id));
        }
    }
    Ok(())
}

fn is_admin(st: &AppState, account: &str, object: &ObjectRef) -> Result<bool, ApiError> {
    Ok(rebac_check(
        &st.schema,
        &StoreTuples(&*st.store),
        account,
        "admin",
        object,
    )?)
}

/// 403 unless `account` holds `admin` on `object`.
fn require_admin(st: &AppState, account: &str, object: &ObjectRef) -> Result<(), ApiError> {
    if is_admin(st, account, object)? {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "{account} is not an admin of {object}"
        )))
    }
}

/// The reply to a tuple write: notifies the dependent zones when something changed.
fn changed_reply(
    st: &AppState,
    changed: bool,
    what: &str,
    account: &str,
    tuple: &Tuple,
) -> Result<Json<TupleChanged>, ApiError> {
    let notified = if changed {
        tracing::info!(%account, %tuple, "tuple {what}");
        notify(st, &tuple.object)
    } else {
        Vec::new()
    };
    Ok(Json(TupleChanged { changed, notified }))
}

/// Publishes `relationship_changed` to every zone that depends on `object`.
///
/// The write is already committed when this runs. If its reach cannot be computed (the
/// dependents walk hits its node limit, or the store fails), every zone with subscribers is
/// told instead: a spurious re-check costs a round of `POST /check`, a missed one leaves a
/// removed member in the zone.
fn notify(st: &AppState, object: &ObjectRef) -> Vec<String> {
    let text = object.to_string();
    let topics: Vec<String> = match dependents(&StoreTuples(&*st.store), object) {
        Ok(deps) => deps
            .iter()
            .filter(|d| d.kind == "zone")
            .map(ToString::to_string)
            .collect(),
        Err(e) => {
            tracing::warn!(object = %text, error = %e,
                "dependents of a changed object unknown; notifying every subscribed zone");
            st.hub
                .topics()
                .into_iter()
                .filter(|t| t.starts_with("zone:"))
                .collect()
        }
    };
    for topic in &topics {
        push::relationship_changed(st, topic, &text);
    }
    topics
}

pub(super) async fn add(
    State(st): State<Shared>,
    bearer: Bearer,
    ApiJson(body): ApiJson<TupleBody>,
) -> Result<Json<TupleChanged>, ApiError> {
    off_worker(move || {
        let account = require_account(&st, &bearer)?;
        let tuple = parse_tuple(&st, &body)?;
        require_object_exists(&st, &tuple.object)?;
        // Claiming an unowned group or map: the store checks and writes atomically, so of
        // concurrent claims exactly one wins and the others fall back to the admin check.
        let claimed = tuple.object.kind != "zone"
            && tuple.relation == "owner"
            && tuple.subject == Subject::User(account.clone())
            && st.store.claim_owner(&tuple)?;
        let changed = if claimed {
            true
        } else {
            require_admin(&st, &account, &tuple.object)?;
            st.store.add_tuple(&tuple)?
        };
        changed_reply(&st, changed, "added", &account, &tuple)
    })
    .await
}

pub(super) async fn remove(
    State(st): State<Shared>,
    bearer: Bearer,
    ApiJson(body): ApiJson<TupleBody>,
) -> Result<Json<TupleChanged>, ApiError> {
    off_worker(move || {
        let account = require_account(&st, &bearer)?;
        let tuple = parse_tuple(&st, &body)?;
        require_object_exists(&st, &tuple.object)?;
        require_admin(&st, &account, &tuple.object)?;
        // The changed object is itself among its dependents, so a removed zone tuple always
        // notifies that zone; a removed group tuple notifies every zone reaching the group.
        let changed = match st.store.remove_tuple(&tuple)? {
            Removal::Removed => true,
            Removal::Absent => false,
            Removal::LastOwner => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "last_owner",
                    format!(
                        "{} is the last owner of {}: add another owner first (an object \
                         without an owner could not be administered any more)",
                        tuple.subject, tuple.object
                    ),
                ));
            }
        };
        changed_reply(&st, changed, "removed", &account, &tuple)
    })
    .await
}

#[derive(Debug, Deserialize)]
pub(super) struct ObjectQuery {
    object: String,
}

pub(super) async fn list(
    State(st): State<Shared>,
    bearer: Bearer,
    query: Result<Query<ObjectQuery>, QueryRejection>,
) -> Result<Json<TupleList>, ApiError> {
    off_worker(move || {
        let account = require_account(&st, &bearer)?;
        let Query(q) = query
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))?;
        let object: ObjectRef = q.object.parse()?;
        require_object_exists(&st, &object)?;
        if !is_admin(&st, &account, &object)? {
            return Err(ApiError::forbidden(format!(
                "{account} is not an admin of {object}"
            )));
        }
        let tuples = st
            .store
            .tuples_on(&object)?
            .into_iter()
            .map(|t| TupleBody {
                object: t.object.to_string(),
                relation: t.relation,
                subject: t.subject.to_string(),
            })
            .collect();
        Ok(Json(TupleList { tuples }))
    })
    .await
}

pub(super) async fn check(
    State(st): State<Shared>,
    bearer: Bearer,
    ApiJson(body): ApiJson<CheckRequest>,
) -> Result<Json<CheckResult>, ApiError> {
    off_worker(move || {
        let account = require_account(&st, &bearer)?;
        let object: ObjectRef = body.object.parse()?;
        if st
            .schema
            .granting(&object.kind, &body.permission)
            .is_empty()
        {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_relation",
                format!("{} has no permission {:?}", object.kind, body.permission),
            ));
        }
        let subject = match body.subject {
            Some(other) if other != account => {
                if !is_admin(&st, &account, &object)? {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "forbidden",
                        format!("checking another account's permissions needs admin on {object}"),
                    ));
                }
                other
            }
            _ => account,
        };
        let allowed = rebac_check(
            &st.schema,
            &StoreTuples(&*st.store),
            &subject,
            &body.permission,
            &object,
        )?;
        Ok(Json(CheckResult { allowed }))
    })
    .await
}
