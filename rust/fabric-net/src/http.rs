//! A minimal HTTP/1.1 JSON client for talking to the zone registry backend from a zone.
//!
//! `http://host:port`, or `https://host:port` with the backend's certificate pinned by its
//! SHA-256 hash ([`Endpoint`]); one request per connection, bodies capped at [`MAX_RESPONSE`]. Chosen over a full client crate to
//! keep hyper and its tree out of the Godot extension; it speaks exactly what the backend does.

use std::time::Duration;

use serde_json::Value;

use crate::cert::CertHash;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response accepted, in bytes.
pub const MAX_RESPONSE: usize = 1 << 20;

/// Why a request failed before a status line arrived (or the response was unreadable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The base URL is not `http://host:port[/prefix]` or `https://host:port[/prefix]`.
    #[error("invalid backend URL `{0}`: expected http://host:port or https://host:port")]
    BadUrl(String),
    /// An `https://` URL without a pinned certificate hash.
    #[error(
        "backend URL `{0}` is https:// but no certificate hash is pinned: pass the hash the \
         backend printed at start-up (--backend-cert-hash)"
    )]
    Unpinned(String),
    /// A pinned certificate hash for a plain `http://` URL (it would protect nothing).
    #[error("backend URL `{0}` is plain http:// but a certificate hash is pinned: use https://")]
    PinWithoutTls(String),
    /// The backend presented a certificate that is not a pinned one.
    #[error(
        "backend at {0} presented a certificate that does not match the pinned hash (another \
         server, or the backend's certificate changed: pin its new hash)"
    )]
    CertMismatch(String),
    /// Connecting, writing or reading failed.
    #[error("backend at {url} unreachable: {reason}")]
    Io {
        /// The URL.
        url: String,
        /// The reason.
        reason: String,
    },
    /// The response is not HTTP/1.1 we understand, or is too large.
    #[error("backend at {url} sent a bad response: {reason}")]
    BadResponse {
        /// The URL.
        url: String,
        /// The reason.
        reason: String,
    },
}

/// A response: status code and JSON body (`Value::Null` when empty or not JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Parsed body.
    pub body: Value,
}

impl Response {
    /// The backend's stable error code (`{"error":{"code":..}}`), if any.
    pub fn error_code(&self) -> Option<&str> {
        self.body.get("error")?.get("code")?.as_str()
    }
}

/// Splits `http://host:port[/prefix]` or `https://…` into (TLS?, `host:port`, prefix).
fn split_url(base: &str) -> Result<(bool, String, String), HttpError> {
    let (tls, rest) = match (base.strip_prefix("http://"), base.strip_prefix("https://")) {
        (Some(rest), _) => (false, rest),
        (_, Some(rest)) => (true, rest),
        _ => return Err(HttpError::BadUrl(base.to_owned())),
    };
    let (host, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if host.is_empty() || !host.contains(':') {
        return Err(HttpError::BadUrl(base.to_owned()));
    }
    Ok((tls, host.to_owned(), prefix.to_owned()))
}

/// Where the backend is: its base URL and, for `https://`, the TLS set-up that accepts only
/// the pinned certificates (SHA-256 of the DER, as everywhere in the fabric; no certificate
/// authorities, no host-name check: the pin is the trust).
#[derive(Clone)]
pub struct Endpoint {
    base: String,
    host: String,
    prefix: String,
    /// The pinned hashes of an `https://` endpoint (each connection checks them afresh, so
    /// its refusal is its own).
    tls: Option<std::sync::Arc<Vec<CertHash>>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.base)
    }
}

impl Endpoint {
    /// `http://host:port[/prefix]` with no pins, or `https://host:port[/prefix]` with at least
    /// one pinned certificate hash (the backend's `--tls-*` start-up line prints it).
    pub fn new(base: &str, pins: &[CertHash]) -> Result<Self, HttpError> {
        let (tls, host, prefix) = split_url(base)?;
        let tls = match (tls, pins.is_empty()) {
            (false, true) => None,
            (false, false) => return Err(HttpError::PinWithoutTls(base.to_owned())),
            (true, true) => return Err(HttpError::Unpinned(base.to_owned())),
            (true, false) => {
                // Checked once here, so a bad set-up fails at start, not at the first request.
                crate::tls::https_client_config(pins.to_vec()).map_err(|e| HttpError::Io {
                    url: base.to_owned(),
                    reason: e.to_string(),
                })?;
                Some(std::sync::Arc::new(pins.to_vec()))
            }
        };
        Ok(Self {
            base: base.to_owned(),
            host,
            prefix,
            tls,
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `host:port`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The path prefix of the base URL (`""` or `/prefix`), put before every request's path.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Opens a TCP connection, wrapped in TLS for `https://` (accepting only a pinned
    /// certificate: [`HttpError::CertMismatch`] otherwise). Other HTTP clients (the backend's
    /// `Client`) speak over it, so there is one TLS set-up for the backend in the fabric.
    pub async fn connect(&self) -> Result<Box<dyn Stream>, HttpError> {
        let tcp = TcpStream::connect(&self.host)
            .await
            .map_err(|e| HttpError::Io {
                url: self.base.clone(),
                reason: e.to_string(),
            })?;
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some(pins) => {
                let (cfg, verdict) =
                    crate::tls::https_client_config(pins.to_vec()).map_err(|e| HttpError::Io {
                        url: self.base.clone(),
                        reason: e.to_string(),
                    })?;
                let tls = tokio_rustls::TlsConnector::from(cfg)
                    .connect(self.server_name()?, tcp)
                    .await
                    .map_err(|e| tls_error(&self.base, &verdict, e))?;
                Ok(Box::new(tls))
            }
        }
    }

    /// The host part for TLS (an IP address or a DNS name, without port or brackets).
    fn server_name(&self) -> Result<rustls::pki_types::ServerName<'static>, HttpError> {
        let host = self
            .host
            .rsplit_once(':')
            .map_or(self.host.as_str(), |h| h.0);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|_| HttpError::BadUrl(self.base.clone()))
    }
}

/// A byte stream to the backend, plain or TLS.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Sends one request to `base` + `path` (plain `http://`) with an optional bearer credential
/// and JSON body.
pub async fn request(
    base: &str,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
    timeout: Duration,
) -> Result<Response, HttpError> {
    request_to(
        &Endpoint::new(base, &[])?,
        method,
        path,
        bearer,
        body,
        timeout,
    )
    .await
}

/// Sends one request to the endpoint (`http://`, or `https://` with a pinned certificate).
pub async fn request_to(
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
    timeout: Duration,
) -> Result<Response, HttpError> {
    request_to_capped(endpoint, method, path, bearer, body, timeout, MAX_RESPONSE).await
}

/// As [`request_to`], accepting a response of up to `max_response` bytes (a room's saved
/// state may be up to the backend's `--max-room-bytes`).
pub async fn request_to_capped(
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
    timeout: Duration,
    max_response: usize,
) -> Result<Response, HttpError> {
    let url = format!("{}{path}", endpoint.base);
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let mut head = format!(
        "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: application/json\r\n",
        endpoint.prefix, endpoint.host
    );
    if let Some(t) = bearer {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if body.is_some() {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", payload.len()));
    let fut = async {
        let stream = endpoint.connect().await?;
        let raw = exchange(stream, &head, &payload, &url, max_response).await?;
        parse_response(&raw).map_err(|e| HttpError::BadResponse {
            url: url.clone(),
            reason: e.to_string(),
        })
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(HttpError::Io {
            url: url.clone(),
            reason: format!("no response within {} ms", timeout.as_millis()),
        }),
    }
}

/// A failed TLS handshake: a certificate that is not the pinned one is named as such (the
/// check's own verdict, not the alert's words).
fn tls_error(url: &str, verdict: &crate::tls::PinVerdict, e: std::io::Error) -> HttpError {
    match verdict.refusal() {
        Some(crate::tls::PinRefusal::Mismatch { .. }) => HttpError::CertMismatch(url.to_owned()),
        Some(crate::tls::PinRefusal::OutOfDate { .. }) => HttpError::Io {
            url: url.to_owned(),
            reason: "the pinned certificate is expired or not yet valid".into(),
        },
        None => HttpError::Io {
            url: url.to_owned(),
            reason: format!("TLS handshake failed: {e}"),
        },
    }
}

/// Writes the request and reads the whole response (until the server closes), at most
/// `max_response` bytes.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    head: &str,
    payload: &str,
    url: &str,
    max_response: usize,
) -> Result<Vec<u8>, HttpError> {
    let io = |e: std::io::Error| HttpError::Io {
        url: url.to_owned(),
        reason: e.to_string(),
    };
    stream.write_all(head.as_bytes()).await.map_err(io)?;
    stream.write_all(payload.as_bytes()).await.map_err(io)?;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(n) => n,
            // A TLS peer that closes without close_notify after a complete response.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => 0,
            Err(e) => return Err(io(e)),
        };
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&chunk[..n]);
        if raw.len() > max_response {
            return Err(HttpError::BadResponse {
                url: url.to_owned(),
                reason: "response too large".into(),
            });
        }
    }
    Ok(raw)
}

/// Why bytes are not an HTTP/1.1 response this client understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// No blank line ends the headers.
    #[error("no end of headers")]
    NoEndOfHeaders,
    /// The headers are not UTF-8.
    #[error("headers are not UTF-8")]
    HeadersNotUtf8,
    /// The status line has no numeric status code.
    #[error("bad status line")]
    StatusLine,
    /// A chunk-size line is missing, not hexadecimal, or does not fit 64 bits.
    #[error("bad chunk size")]
    ChunkSize,
    /// A chunk announces more bytes than the response holds.
    #[error("truncated chunk: {size} bytes announced, {available} left")]
    TruncatedChunk {
        /// The announced size.
        size: u64,
        /// Bytes left in the response after the size line.
        available: usize,
    },
    /// A chunk's data is not followed by CRLF.
    #[error("chunk data is not followed by CRLF")]
    ChunkEnd,
}

/// Parses a complete response (everything read until the server closed the connection):
/// status line, headers, and a body that is plain or `Transfer-Encoding: chunked`. A body that
/// is not JSON becomes `Value::Null`. Public for the fuzz targets (`fuzz/fuzz_targets/http_response.rs`).
pub fn parse_response(raw: &[u8]) -> Result<Response, ParseError> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(ParseError::NoEndOfHeaders)?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| ParseError::HeadersNotUtf8)?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or(ParseError::StatusLine)?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(ParseError::StatusLine)?;
    let mut chunked = false;
    for l in lines {
        if let Some((k, v)) = l.split_once(':')
            && k.eq_ignore_ascii_case("transfer-encoding")
            && v.trim().eq_ignore_ascii_case("chunked")
        {
            chunked = true;
        }
    }
    let rest = &raw[end + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    };
    Ok(Response { status, body })
}

/// Joins the chunks of a chunked body. Sizes are checked against the bytes present before any
/// arithmetic or copy, so a hostile size (up to `u64::MAX`) is an error, not an overflow.
fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, ParseError> {
    let mut out = Vec::new();
    loop {
        let nl = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or(ParseError::ChunkSize)?;
        let line = std::str::from_utf8(&data[..nl]).map_err(|_| ParseError::ChunkSize)?;
        let digits = line.split(';').next().unwrap_or("").trim();
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParseError::ChunkSize);
        }
        let size = u64::from_str_radix(digits, 16).map_err(|_| ParseError::ChunkSize)?;
        data = &data[nl + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = usize::try_from(size)
            .ok()
            .filter(|&n| n <= data.len())
            .ok_or(ParseError::TruncatedChunk {
                size,
                available: data.len(),
            })?;
        let (bytes, tail) = data.split_at(chunk);
        out.extend_from_slice(bytes);
        data = tail.strip_prefix(b"\r\n").ok_or(ParseError::ChunkEnd)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_responses() {
        let r = parse_response(b"HTTP/1.1 201 Created\r\nContent-Length: 9\r\n\r\n{\"a\":1}  ")
            .unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.body["a"], 1);
        let r = parse_response(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"err\r\n11\r\nor\":{\"code\":\"x\"}}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(r.error_code(), Some("x"));
        assert!(parse_response(b"garbage").is_err());
    }

    /// A real listener on loopback answering a 3,000-byte body: refused as too large under a
    /// 2,000-byte cap, read whole under the default one.
    #[test]
    fn the_response_cap_is_the_callers() {
        let rt = crate::runtime_handle();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        rt.spawn(async move {
            let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(2990));
            for _ in 0..2 {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut req = [0u8; 1024];
                let _ = s.read(&mut req).await;
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(body.as_bytes()).await;
            }
        });
        let t = Duration::from_secs(5);
        let endpoint = Endpoint::new(&base, &[]).unwrap();
        let small = rt.block_on(request_to_capped(
            &endpoint, "GET", "/", None, None, t, 2000,
        ));
        assert!(
            matches!(&small, Err(HttpError::BadResponse { reason, .. }) if reason.contains("too large")),
            "{small:?}"
        );
        let whole = rt
            .block_on(request(&base, "GET", "/", None, None, t))
            .unwrap();
        assert_eq!(whole.body["pad"].as_str().map(str::len), Some(2990));
    }

    #[test]
    fn hostile_chunk_sizes_are_errors_not_overflows() {
        // Found by `cargo fuzz run http_response`: `size + 2` overflowed (a panic in debug
        // builds, an out-of-bounds slice in release) for a size near usize::MAX.
        let r = dechunk(b"ffffffffffffffff\r\nab\r\n0\r\n\r\n");
        assert_eq!(
            r,
            Err(ParseError::TruncatedChunk {
                size: u64::MAX,
                available: 9
            })
        );
        assert_eq!(
            dechunk(b"fffffffffffffffff\r\n"),
            Err(ParseError::ChunkSize),
            "more than 64 bits"
        );
        assert_eq!(
            dechunk(b"fffffffffffffffe\r\n"),
            Err(ParseError::TruncatedChunk {
                size: u64::MAX - 1,
                available: 0
            })
        );
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n{}\r\n0\r\n\r\n";
        assert!(matches!(
            parse_response(raw),
            Err(ParseError::TruncatedChunk { .. })
        ));
    }

    #[test]
    fn malformed_chunks_are_refused() {
        assert_eq!(
            dechunk(b"+2\r\nab\r\n0\r\n\r\n"),
            Err(ParseError::ChunkSize)
        );
        assert_eq!(dechunk(b"\r\n"), Err(ParseError::ChunkSize), "empty size");
        assert_eq!(dechunk(b"2\r\nabXY0\r\n\r\n"), Err(ParseError::ChunkEnd));
        assert_eq!(
            dechunk(b"2\r\nab\r\n"),
            Err(ParseError::ChunkSize),
            "no last chunk"
        );
        assert_eq!(
            dechunk(b"2;ext=1\r\nab\r\n0\r\n\r\n"),
            Ok(b"ab".to_vec()),
            "chunk extensions are ignored"
        );
    }

    #[test]
    fn urls_are_checked() {
        assert_eq!(
            split_url("http://127.0.0.1:8080/api/").unwrap(),
            (false, "127.0.0.1:8080".into(), "/api".into())
        );
        assert_eq!(
            split_url("https://x:1").unwrap(),
            (true, "x:1".into(), String::new())
        );
        assert!(split_url("ftp://x:1").is_err());
        assert!(split_url("http://nohostport").is_err());
        let ipv6 = Endpoint::new("https://[::1]:8443", &[CertHash([1; 32])]).unwrap();
        assert_eq!(
            ipv6.server_name().unwrap(),
            rustls::pki_types::ServerName::try_from("::1").unwrap()
        );
    }
}
