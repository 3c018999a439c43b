//! A small HTTP/1.1 client for the backend API (plain `http://`, one kept-alive connection per
//! [`Client`], reconnecting when the server closes it). Zone tooling, tests and the bench use
//! it; it is deliberately minimal (no TLS, no redirects, no proxy).

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::model::{
    AccountCreated, CheckRequest, CheckResult, CreateAccount, Heartbeat, JoinKeys, JoinTokenIssued,
    JoinTokenRequest, RegisterShard, Registered, ShardList, ShardView, TupleBody, TupleChanged,
};

/// Client failures.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting failed.
    #[error("connect: {0}")]
    Connect(#[from] std::io::Error),
    /// The HTTP exchange failed.
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    /// The server answered with an error body.
    #[error("{status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: StatusCode,
        /// Stable error code from the body (`unknown` if the body had none).
        code: String,
        /// Message from the body.
        message: String,
    },
    /// A success body did not decode.
    #[error("decode: {0}")]
    Decode(#[from] serde_json::Error),
    /// The request could not be built (bad header value).
    #[error("request: {0}")]
    Request(#[from] hyper::http::Error),
}

impl ClientError {
    /// The API error code, if this is an API error.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A raw response: status, headers and body bytes.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// Status.
    pub status: StatusCode,
    /// Headers (e.g. `Retry-After` of a 429).
    pub headers: axum::http::HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl RawResponse {
    /// The body as JSON (`Value::Null` when empty or not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The `error.code` of an error body, if present.
    pub fn error_code(&self) -> Option<String> {
        self.json()["error"]["code"].as_str().map(str::to_owned)
    }
}

/// A connection to one backend.
pub struct Client {
    authority: String,
    conn: Mutex<Option<SendRequest<Full<Bytes>>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `host:port` (no scheme). Connects on first use.
    pub fn new(authority: impl Into<String>) -> Self {
        Self {
            authority: authority.into(),
            conn: Mutex::new(None),
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, ClientError> {
        let stream = TcpStream::connect(&self.authority).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "client connection ended");
            }
        });
        Ok(sender)
    }

    /// Sends one request and returns the raw response, whatever its status.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<RawResponse, ClientError> {
        let mut guard = self.conn.lock().await;
        let reusable = match guard.as_mut() {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        if !reusable {
            *guard = Some(self.connect().await?);
        }
        let sender = guard.as_mut().expect("connection set above");
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, &self.authority);
        if let Some(b) = bearer {
            req = req.header(AUTHORIZATION, format!("Bearer {b}"));
        }
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        let req = req.body(Full::new(Bytes::from(body)))?;
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                *guard = None;
                return Err(e.into());
            }
        };
        let status = resp.status();
        // A server that answers before reading the whole request body (an upload refused
        // early) closes the connection after the response: do not reuse it.
        let closing = resp
            .headers()
            .get(axum::http::header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await?.to_bytes();
        if closing {
            *guard = None;
        }
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let (ct, bytes) = match body {
            Some(b) => (Some("application/json"), serde_json::to_vec(b)?),
            None => (None, Vec::new()),
        };
        let resp = self.raw(method, path, bearer, ct, bytes).await?;
        if !resp.status.is_success() {
            let v = resp.json();
            return Err(ClientError::Api {
                status: resp.status,
                code: v["error"]["code"].as_str().unwrap_or("unknown").to_owned(),
                message: v["error"]["message"].as_str().unwrap_or("").to_owned(),
            });
        }
        let bytes = if resp.body.is_empty() {
            Bytes::from_static(b"null")
        } else {
            resp.body
        };
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// `GET /fabrics/{fabric}/members` with the operator's API key.
    pub async fn fabric_members(
        &self,
        api_key: &str,
        fabric: &str,
    ) -> Result<crate::model::MemberList, ClientError> {
        self.call(
            Method::GET,
            &format!("/fabrics/{fabric}/members"),
            Some(api_key),
            None::<&()>,
        )
        .await
    }

    /// `POST /accounts`.
    pub async fn create_account(&self, name: &str) -> Result<AccountCreated, ClientError> {
        let body = CreateAccount { name: name.into() };
        self.call(Method::POST, "/accounts", None, Some(&body))
            .await
    }

    /// `POST /shards` with the operator's API key.
    pub async fn register(
        &self,
        api_key: &str,
        shard: &RegisterShard,
    ) -> Result<Registered, ClientError> {
        self.call(Method::POST, "/shards", Some(api_key), Some(shard))
            .await
    }

    /// `PUT /shards/{id}` with the shard secret.
    pub async fn heartbeat(
        &self,
        id: Uuid,
        shard_secret: &str,
        beat: &Heartbeat,
    ) -> Result<ShardView, ClientError> {
        self.call(
            Method::PUT,
            &format!("/shards/{id}"),
            Some(shard_secret),
            Some(beat),
        )
        .await
    }

    /// `GET /shards`, optionally as an account (to include its private shards).
    pub async fn list(&self, api_key: Option<&str>) -> Result<ShardList, ClientError> {
        self.call(Method::GET, "/shards", api_key, None::<&()>)
            .await
    }

    /// `GET /shards/{id}`.
    pub async fn shard(&self, id: Uuid, api_key: Option<&str>) -> Result<ShardView, ClientError> {
        self.call(Method::GET, &format!("/shards/{id}"), api_key, None::<&()>)
            .await
    }

    /// `DELETE /shards/{id}` with the shard secret or the owner's API key.
    pub async fn delete(&self, id: Uuid, credential: &str) -> Result<(), ClientError> {
        let _: serde_json::Value = self
            .call(
                Method::DELETE,
                &format!("/shards/{id}"),
                Some(credential),
                None::<&()>,
            )
            .await?;
        Ok(())
    }

    /// `GET /keys/join`.
    pub async fn join_keys(&self) -> Result<JoinKeys, ClientError> {
        self.call(Method::GET, "/keys/join", None, None::<&()>)
            .await
    }

    /// `POST /tokens/join`.
    pub async fn issue_join_token(
        &self,
        api_key: &str,
        zone_id: Uuid,
    ) -> Result<JoinTokenIssued, ClientError> {
        let body = JoinTokenRequest { zone_id };
        self.call(Method::POST, "/tokens/join", Some(api_key), Some(&body))
            .await
    }

    /// `POST /relationships`.
    pub async fn add_tuple(
        &self,
        api_key: &str,
        tuple: &TupleBody,
    ) -> Result<TupleChanged, ClientError> {
        self.call(Method::POST, "/relationships", Some(api_key), Some(tuple))
            .await
    }

    /// `DELETE /relationships`.
    pub async fn remove_tuple(
        &self,
        api_key: &str,
        tuple: &TupleBody,
    ) -> Result<TupleChanged, ClientError> {
        self.call(Method::DELETE, "/relationships", Some(api_key), Some(tuple))
            .await
    }

    /// `POST /check` for the caller.
    pub async fn check(
        &self,
        api_key: &str,
        permission: &str,
        object: &str,
    ) -> Result<bool, ClientError> {
        let body = CheckRequest {
            permission: permission.into(),
            object: object.into(),
            subject: None,
        };
        let r: CheckResult = self
            .call(Method::POST, "/check", Some(api_key), Some(&body))
            .await?;
        Ok(r.allowed)
    }
}
