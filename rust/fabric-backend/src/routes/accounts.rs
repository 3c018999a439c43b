//! `POST /accounts`: open sign-up. Returns the API key once; only its hash is stored.

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

pub(super) async fn create(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<CreateAccount>,
) -> Result<(StatusCode, Json<AccountCreated>), Response> {
    st.rate
        .signup(peer.ip())
        .map_err(IntoResponse::into_response)?;
    off_worker(move || {
        check_account_name(&body.name)?;
        let api_key = new_api_key();
        match st
            .store
            .create_account(&body.name, &hash_secret(&api_key), st.clock.now_ms())
        {
            Ok(()) => {}
            Err(StoreError::Conflict) => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "account_exists",
                    format!("account {} already exists", body.name),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(account = %body.name, "account created");
        Ok((
            StatusCode::CREATED,
            Json(AccountCreated {
                account_id: body.name,
                api_key,
            }),
        ))
    })
    .await
    .map_err(IntoResponse::into_response)
}
