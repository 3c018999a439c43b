//! A minimal HTTP/1.1 JSON client for talking to the zone registry backend from a zone.
//!
//! Plain `http://host:port` only (the backend runs beside the zones or behind a TLS proxy), one
//! request per connection, bodies capped at [`MAX_RESPONSE`]. Chosen over a full client crate to
//! keep hyper and its tree out of the Godot extension; it speaks exactly what the backend does.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response accepted, in bytes.
pub const MAX_RESPONSE: usize = 1 << 20;

/// Why a request failed before a status line arrived (or the response was unreadable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The base URL is not `http://host:port[/prefix]`.
    #[error("invalid backend URL `{0}`: expected http://host:port")]
    BadUrl(String),
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

fn split_url(base: &str) -> Result<(String, String), HttpError> {
    let rest = base
        .strip_prefix("http://")
        .ok_or_else(|| HttpError::BadUrl(base.to_owned()))?;
    let (host, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if host.is_empty() || !host.contains(':') {
        return Err(HttpError::BadUrl(base.to_owned()));
    }
    Ok((host.to_owned(), prefix.to_owned()))
}

/// Sends one request to `base` + `path` with an optional bearer credential and JSON body.
pub async fn request(
    base: &str,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
    timeout: Duration,
) -> Result<Response, HttpError> {
    let (host, prefix) = split_url(base)?;
    let url = format!("{base}{path}");
    let io = |e: std::io::Error| HttpError::Io {
        url: url.clone(),
        reason: e.to_string(),
    };
    let fut = async {
        let mut stream = TcpStream::connect(&host).await.map_err(io)?;
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let mut head = format!(
            "{method} {prefix}{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAccept: application/json\r\n"
        );
        if let Some(t) = bearer {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        if body.is_some() {
            head.push_str("Content-Type: application/json\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", payload.len()));
        stream.write_all(head.as_bytes()).await.map_err(io)?;
        stream.write_all(payload.as_bytes()).await.map_err(io)?;
        let mut raw = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = stream.read(&mut chunk).await.map_err(io)?;
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&chunk[..n]);
            if raw.len() > MAX_RESPONSE {
                return Err(HttpError::BadResponse {
                    url: url.clone(),
                    reason: "response too large".into(),
                });
            }
        }
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
            ("127.0.0.1:8080".into(), "/api".into())
        );
        assert!(split_url("https://x:1").is_err());
        assert!(split_url("http://nohostport").is_err());
    }
}
