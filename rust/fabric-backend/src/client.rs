//! A small HTTP/1.1 client for the backend API (one kept-alive connection per [`Client`],
//! reconnecting when the server closes it). Zone tooling, tests and the bench use it; it is
//! deliberately minimal (no redirects, no proxy). `http://`, or `https://` with the backend's
//! certificate pinned by hash ([`Client::with_url`]) over the same pinned TLS as zones use
//! (`fabric_net::http::Endpoint`).

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
    JoinTokenRequest, RegisterShard, Registered, ShardList, ShardQuery, ShardView, TupleBody,
    TupleChanged,
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
    /// A query string could not be encoded.
    #[error("query: {0}")]
    Encode(String),
    /// The URL or pins are refused (an `https://` URL without a pin, a pin on `http://`, a
    /// malformed hash), or the backend showed a certificate that is not a pinned one.
    #[error("{0}")]
    Endpoint(#[from] fabric_net::http::HttpError),
    /// A pinned certificate hash is not base64 SHA-256.
    #[error("certificate hash: {0}")]
    Pin(String),
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
    /// `https://` (or `http://` with a path prefix) from [`Client::with_url`].
    endpoint: Option<fabric_net::http::Endpoint>,
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
            endpoint: None,
            conn: Mutex::new(None),
        }
    }

    /// A client for `http://host:port`, or `https://host:port` with the backend's certificate
    /// pinned: `cert_hashes` are base64 SHA-256 hashes (what the backend prints at start-up as
    /// `cert_hash=`; several while a certificate is replaced). An `https://` URL without a
    /// hash, or a hash on `http://`, is refused here; a backend showing another certificate is
    /// refused at the first request ("does not match the pinned hash").
    pub fn with_url(url: &str, cert_hashes: &[&str]) -> Result<Self, ClientError> {
        let pins = cert_hashes
            .iter()
            .map(|h| fabric_net::CertHash::parse(h).map_err(|e| ClientError::Pin(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let endpoint = fabric_net::http::Endpoint::new(url, &pins)?;
        Ok(Self {
            authority: endpoint.host().to_owned(),
            endpoint: Some(endpoint),
            conn: Mutex::new(None),
        })
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, ClientError> {
        if let Some(endpoint) = &self.endpoint {
            let stream = endpoint.connect().await?;
            return Self::handshake(stream).await;
        }
        let stream = TcpStream::connect(&self.authority).await?;
        stream.set_nodelay(true)?;
        Self::handshake(stream).await
    }

    async fn handshake(
        stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    ) -> Result<SendRequest<Full<Bytes>>, ClientError> {
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
        let prefix = self.endpoint.as_ref().map_or("", |e| e.prefix());
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{prefix}{path}"))
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

    /// `GET /shards` (the first page, default size), optionally as an account (to include its
    /// private shards).
    pub async fn list(&self, api_key: Option<&str>) -> Result<ShardList, ClientError> {
        self.list_page(api_key, &ShardQuery::default()).await
    }

    /// One page of `GET /shards`: pass the previous page's `next` as `query.after`.
    pub async fn list_page(
        &self,
        api_key: Option<&str>,
        query: &ShardQuery,
    ) -> Result<ShardList, ClientError> {
        let qs =
            serde_urlencoded::to_string(query).map_err(|e| ClientError::Encode(e.to_string()))?;
        let path = if qs.is_empty() {
            "/shards".to_owned()
        } else {
            format!("/shards?{qs}")
        };
        self.call(Method::GET, &path, api_key, None::<&()>).await
    }

    /// Every page of `GET /shards` (pages of `page_size`), concatenated.
    pub async fn list_all(
        &self,
        api_key: Option<&str>,
        map: Option<&str>,
        page_size: u32,
    ) -> Result<Vec<ShardView>, ClientError> {
        let mut query = ShardQuery {
            limit: Some(page_size),
            after: None,
            map: map.map(str::to_owned),
        };
        let mut out = Vec::new();
        loop {
            let page = self.list_page(api_key, &query).await?;
            out.extend(page.shards);
            match page.next {
                Some(next) => query.after = Some(next),
                None => return Ok(out),
            }
        }
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

    /// `POST /shards/{id}/link` with the shard secret: a fresh link credential signed by the
    /// current key.
    pub async fn renew_link(
        &self,
        id: Uuid,
        shard_secret: &str,
        renewal: &crate::model::LinkRenewal,
    ) -> Result<crate::model::LinkGrant, ClientError> {
        self.call(
            Method::POST,
            &format!("/shards/{id}/link"),
            Some(shard_secret),
            Some(renewal),
        )
        .await
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

    /// `POST /tokens/join/verify`: the claims of a token valid for `zone_id` now, or the
    /// `token_*` refusal as [`ClientError::Api`].
    pub async fn verify_join_token(
        &self,
        token: &str,
        zone_id: Uuid,
    ) -> Result<crate::model::VerifiedToken, ClientError> {
        let body = crate::model::VerifyTokenRequest {
            token: token.into(),
            zone_id,
        };
        self.call(Method::POST, "/tokens/join/verify", None, Some(&body))
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
