//! Join tokens: `GET /keys/join` publishes the verification key, `POST /tokens/join` issues a
//! token after a ReBAC `join` check, `POST /tokens/join/verify` verifies one (for tools and
//! gateways that prefer not to embed the verifier).
//!
//! An issued token also says whether its subject may place assets in the zone: the `place`
//! claim is ReBAC `place` on `map:<the shard's map>` (`placer`, `uploader` or `owner`) at the
//! time of issue, which the zone keeps for the session (`docs/backend.md`, "Join tokens").

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use fabric_auth::ObjectRef;
use fabric_auth::keys::{key_id, public_key_to_b64};

use crate::blocking::off_worker;
use crate::error::ApiError;
use crate::extract::{ApiJson, Bearer, require_account};
use crate::model::{
    JoinKeys, JoinTokenIssued, JoinTokenRequest, PublicKeyView, VerifiedToken, VerifyTokenRequest,
};
use crate::state::Shared;

pub(super) async fn keys(State(st): State<Shared>) -> Json<JoinKeys> {
    let keys = st.signing();
    Json(JoinKeys {
        keys: keys
            .ring
            .valid_at(st.clock.now_ms() / 1000)
            .into_iter()
            .map(|(key, retires_at)| PublicKeyView {
                kid: key_id(&key),
                alg: "Ed25519".into(),
                public_key: public_key_to_b64(&key),
                current: retires_at.is_none(),
                retires_at,
            })
            .collect(),
        token_ttl_s: keys.issuer.ttl_s(),
    })
}

pub(super) async fn issue(
    State(st): State<Shared>,
    bearer: Bearer,
    ApiJson(body): ApiJson<JoinTokenRequest>,
) -> Result<Json<JoinTokenIssued>, Response> {
    let issued = off_worker(move || {
        let account = require_account(&st, &bearer)?;
        if let Err(limited) = st.rate.token(&account) {
            return Ok(Err(limited));
        }
        let Some(shard) = st.store.shard(body.zone_id)? else {
            return Err(ApiError::unknown_shard(body.zone_id));
        };
        let zone = ObjectRef::new("zone", body.zone_id.to_string());
        if !super::permits(&st, &account, "join", &zone)? {
            tracing::info!(%account, zone = %body.zone_id, "join denied");
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "join_denied",
                format!("{account} may not join {zone}"),
            ));
        }
        // A shard registered without a map has no assets to place.
        let place = !shard.map.is_empty()
            && super::permits(&st, &account, "place", &ObjectRef::new("map", &shard.map))?;
        let jti = uuid::Uuid::new_v4().to_string();
        let (token, claims) = st.signing().issuer.issue_with_place(
            &account,
            &body.zone_id.to_string(),
            &jti,
            place,
            st.clock.now_ms() / 1000,
        )?;
        tracing::info!(%account, zone = %body.zone_id, map = %shard.map, place, jti, "join token issued");
        st.metrics.tokens_issued.inc();
        Ok(Ok(Json(JoinTokenIssued {
            token,
            expires_at: claims.exp,
            kid: claims.kid,
            zone_id: body.zone_id,
        })))
    })
    .await;
    match issued {
        Ok(Ok(json)) => Ok(json),
        Ok(Err(limited)) => Err(limited.into_response()),
        Err(e) => Err(e.into_response()),
    }
}

pub(super) async fn verify(
    State(st): State<Shared>,
    ApiJson(body): ApiJson<VerifyTokenRequest>,
) -> Result<Json<VerifiedToken>, ApiError> {
    let now_s = st.clock.now_ms() / 1000;
    let claims =
        st.signing()
            .verifier(now_s)
            .verify(&body.token, &body.zone_id.to_string(), now_s)?;
    Ok(Json(VerifiedToken {
        valid: true,
        claims,
    }))
}
