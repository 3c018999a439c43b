//! A small HTTP/1.1 client on hyper: one keep-alive connection to one origin, bodies read into
//! memory up to a caller-given limit (checked against `Content-Length` before reading).
//!
//! `http://`, or `https://` with the server's certificate pinned by its SHA-256 hash (the
//! backend's `--tls-*` start-up line prints it): the TLS connection is
//! `fabric_net::http::Endpoint`'s, the same pinning zones use for the backend; no certificate
//! authorities, so a CDN with a public certificate is reached through plain `http://` or a
//! pin of its certificate.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use fabric_net::cert::CertHash;
use fabric_net::http::{Endpoint, HttpError, Stream};

use crate::FetchError;

/// A parsed `http://host:port/path` or `https://host:port/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    /// `https://`.
    pub tls: bool,
    /// `host:port`, what the TCP connection dials and the `Host` header carries.
    pub authority: String,
    /// The path and query, starting with `/`.
    pub path: String,
}

impl Url {
    pub(crate) fn parse(url: &str) -> Result<Url, FetchError> {
        let bad = || FetchError::BadUrl(url.to_owned());
        let (tls, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => return Err(bad()),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(bad());
        }
        let authority = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_owned()
        } else {
            format!("{authority}:{}", if tls { 443 } else { 80 })
        };
        Ok(Url {
            tls,
            authority,
            path: path.to_owned(),
        })
    }

    /// The same origin with another path.
    pub(crate) fn with_path(&self, path: String) -> Url {
        Url {
            tls: self.tls,
            authority: self.authority.clone(),
            path,
        }
    }

    /// `http` or `https`.
    pub(crate) fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }

    pub(crate) fn to_url_string(&self) -> String {
        format!("{}://{}{}", self.scheme(), self.authority, self.path)
    }
}

/// A response read whole (status and body).
#[derive(Debug)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// Why a request failed, and whether trying again may help.
#[derive(Debug)]
pub(crate) struct GetError {
    pub reason: String,
    pub retry: bool,
    pub too_large: bool,
}

impl GetError {
    fn retry(reason: impl Into<String>) -> Self {
        GetError {
            reason: reason.into(),
            retry: true,
            too_large: false,
        }
    }
}

/// One keep-alive HTTP/1.1 connection to one origin, reconnected after a failure.
#[derive(Debug)]
pub struct HttpClient {
    authority: String,
    /// The TLS side of an `https://` origin (pinned certificates).
    tls: Option<Endpoint>,
    sender: Option<SendRequest<Empty<Bytes>>>,
}

impl HttpClient {
    /// A client for the origin of `url`, `http://` (connects on first use).
    pub fn new(url: &str) -> Result<HttpClient, FetchError> {
        HttpClient::pinned(url, &[])
    }

    /// A client for the origin of `url`: `http://` with no `pins`, or `https://` accepting only
    /// a certificate whose SHA-256 is one of `pins`.
    pub fn pinned(url: &str, pins: &[CertHash]) -> Result<HttpClient, FetchError> {
        HttpClient::for_url(&Url::parse(url)?, pins)
    }

    pub(crate) fn for_url(url: &Url, pins: &[CertHash]) -> Result<HttpClient, FetchError> {
        let base = format!("{}://{}", url.scheme(), url.authority);
        let endpoint =
            Endpoint::new(&base, pins).map_err(|e| FetchError::Endpoint(e.to_string()))?;
        Ok(HttpClient {
            authority: url.authority.clone(),
            tls: url.tls.then_some(endpoint),
            sender: None,
        })
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The `host:port` this client talks to.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// `http://host:port` or `https://host:port`.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme(), self.authority)
    }

    async fn sender(&mut self) -> Result<&mut SendRequest<Empty<Bytes>>, GetError> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream: Box<dyn Stream> = match &self.tls {
                None => {
                    let tcp = TcpStream::connect(&self.authority)
                        .await
                        .map_err(|e| GetError::retry(format!("connect: {e}")))?;
                    let _ = tcp.set_nodelay(true);
                    Box::new(tcp)
                }
                // A certificate that is not the pinned one is not a transient failure.
                Some(endpoint) => endpoint.connect().await.map_err(|e| GetError {
                    retry: !matches!(e, HttpError::CertMismatch(_)),
                    reason: e.to_string(),
                    too_large: false,
                })?,
            };
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| GetError::retry(format!("handshake: {e}")))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!("http connection ended: {e}");
                }
            });
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("just set"))
    }

    /// `GET path` on this origin; a body over `limit` bytes is refused.
    pub async fn get(&mut self, path: &str, limit: u64) -> Result<Response, FetchError> {
        let url = format!("{}://{}{path}", self.scheme(), self.authority);
        self.get_inner(path, limit).await.map_err(|e| {
            if e.too_large {
                FetchError::TooLarge { url, limit }
            } else {
                FetchError::Http {
                    url,
                    reason: e.reason,
                    attempts: 1,
                }
            }
        })
    }

    /// `GET path` with `Range: bytes=start-end` (inclusive); the body over `limit` is refused.
    pub async fn get_range(
        &mut self,
        path: &str,
        start: u64,
        end: u64,
        limit: u64,
    ) -> Result<Response, FetchError> {
        let url = format!("{}://{}{path}", self.scheme(), self.authority);
        self.try_get(path, Some((start, end)), limit)
            .await
            .map_err(|e| {
                self.sender = None;
                FetchError::Http {
                    url,
                    reason: e.reason,
                    attempts: 1,
                }
            })
    }

    pub(crate) async fn get_inner(&mut self, path: &str, limit: u64) -> Result<Response, GetError> {
        let result = self.try_get(path, None, limit).await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }

    async fn try_get(
        &mut self,
        path: &str,
        range: Option<(u64, u64)>,
        limit: u64,
    ) -> Result<Response, GetError> {
        let mut req =
            hyper::Request::get(path).header(hyper::header::HOST, self.authority.as_str());
        if let Some((start, end)) = range {
            req = req.header(hyper::header::RANGE, format!("bytes={start}-{end}"));
        }
        let req = req.body(Empty::<Bytes>::new()).map_err(|e| GetError {
            reason: format!("request: {e}"),
            retry: false,
            too_large: false,
        })?;
        let sender = self.sender().await?;
        sender
            .ready()
            .await
            .map_err(|e| GetError::retry(format!("connection: {e}")))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| GetError::retry(format!("send: {e}")))?;
        let status = resp.status().as_u16();
        if status != 200 && status != 206 {
            return Err(GetError {
                reason: format!("HTTP status {status}"),
                retry: status >= 500,
                too_large: false,
            });
        }
        let too_large = || GetError {
            reason: "body over the limit".into(),
            retry: false,
            too_large: true,
        };
        let declared = resp
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut body = Vec::with_capacity(declared.unwrap_or(0) as usize);
        let mut incoming = resp.into_body();
        while let Some(frame) = incoming.frame().await {
            let frame = frame.map_err(|e| GetError::retry(format!("body: {e}")))?;
            if let Ok(data) = frame.into_data() {
                if body.len() as u64 + data.len() as u64 > limit {
                    return Err(too_large());
                }
                body.extend_from_slice(&data);
            }
        }
        Ok(Response { status, body })
    }
}

#[cfg(test)]
mod tests {
    use super::Url;

    #[test]
    fn urls() {
        let u = Url::parse("http://127.0.0.1:8080/assets/index/ab").expect("valid");
        assert_eq!(u.authority, "127.0.0.1:8080");
        assert_eq!(u.path, "/assets/index/ab");
        assert_eq!(
            Url::parse("http://example/x").expect("valid").authority,
            "example:80"
        );
        let s = Url::parse("https://example/x").expect("valid");
        assert_eq!((s.tls, s.authority.as_str()), (true, "example:443"));
        assert_eq!(s.to_url_string(), "https://example:443/x");
        assert!(Url::parse("ftp://h/x").is_err(), "http or https only");
        assert!(Url::parse("http:///x").is_err(), "no host");
    }
}
