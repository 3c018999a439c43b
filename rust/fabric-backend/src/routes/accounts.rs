//! `POST /accounts`: sign-up (open unless `--closed-signup`), and [`create_account`], which the
//! route and the operator command `--create-account` share. The API key is returned once; only
//! its hash is stored.

use axum::Json;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::blocking::off_worker;
use crate::error::{ApiError, StoreError};
use crate::extract::ApiJson;
use crate::model::{AccountCreated, CreateAccount, check_account_name};
use crate::secrets::{hash_secret, new_api_key};
use crate::state::Shared;
use crate::store::Store;

pub(super) async fn create(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<CreateAccount>,
) -> Result<(StatusCode, Json<AccountCreated>), Response> {
    if st.settings.closed_signup {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "signup_closed",
            "sign-up is closed on this registry: its operator creates accounts \
             (fabric-backend --create-account NAME)",
        )
        .into_response());
    }
    st.rate
        .signup(peer.ip())
        .map_err(IntoResponse::into_response)?;
    off_worker(move || {
        let created = create_account(&*st.store, &body.name, st.clock.now_ms())?;
        st.metrics.signups.inc();
        Ok((StatusCode::CREATED, Json(created)))
    })
    .await
    .map_err(IntoResponse::into_response)
}

/// Creates the account `name` with a new API key (only its hash is stored) and returns the key.
pub fn create_account(
    store: &dyn Store,
    name: &str,
    now_ms: u64,
) -> Result<AccountCreated, ApiError> {
    check_account_name(name)?;
    let api_key = new_api_key();
    match store.create_account(name, &hash_secret(&api_key), now_ms) {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "account_exists",
                format!("account {name} already exists"),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(account = %name, "account created");
    Ok(AccountCreated {
        account_id: name.to_owned(),
        api_key,
    })
}
