//! HTTP serving of a [`ChunkStore`]: `GET /index/{name}` and `GET /chunks/{hex}`.
//!
//! Both are content-addressed (an index is named by its file's hash, a chunk by its own), so
//! responses carry `Cache-Control: public, max-age=31536000, immutable` and a strong `ETag`;
//! `If-None-Match` gets `304`, a single `Range: bytes=` range gets `206` (or `416`). The backend
//! mounts this router under its own prefix (`Router::nest`).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;

use crate::{ChunkId, ChunkStore, StoreError};

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// A router serving `store`: `GET|HEAD /index/{name}` and `GET|HEAD /chunks/{hex}`.
pub fn router(store: Arc<dyn ChunkStore>) -> Router {
    Router::new()
        .route("/index/{name}", get(get_index))
        .route("/chunks/{hex}", get(get_chunk))
        .with_state(store)
}

async fn get_index(
    State(store): State<Arc<dyn ChunkStore>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let found = tokio::task::spawn_blocking(move || store.get_index(&name)).await;
    match found {
        Ok(Ok(Some(bytes))) => {
            let etag = ChunkId::of(&bytes).to_hex();
            immutable_response(bytes, &etag, "application/octet-stream", &headers)
        }
        Ok(Ok(None)) | Ok(Err(StoreError::BadName(_))) => status(StatusCode::NOT_FOUND),
        _ => status(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

async fn get_chunk(
    State(store): State<Arc<dyn ChunkStore>>,
    Path(hex): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(id) = ChunkId::from_hex(&hex) else {
        return status(StatusCode::NOT_FOUND);
    };
    match tokio::task::spawn_blocking(move || store.get_chunk(&id)).await {
        Ok(Ok(Some(bytes))) => {
            immutable_response(bytes, &id.to_hex(), "application/zstd", &headers)
        }
        Ok(Ok(None)) => status(StatusCode::NOT_FOUND),
        _ => status(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

fn status(code: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = code;
    r
}

/// A response for an immutable blob with `etag` (unquoted), honouring `If-None-Match` and one
/// byte range; for other content-addressed blobs a server wants to send the same way.
pub fn immutable_response(
    bytes: Vec<u8>,
    etag: &str,
    content_type: &'static str,
    req: &HeaderMap,
) -> Response {
    let etag = format!("\"{etag}\"");
    let len = bytes.len() as u64;
    let not_modified = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let range = req
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| parse_range(v, len));
    let mut r = match (not_modified, range) {
        (true, _) => status(StatusCode::NOT_MODIFIED),
        (false, None) | (false, Some(Range::Ignore)) => Response::new(Body::from(bytes)),
        (false, Some(Range::Unsatisfiable)) => {
            let mut r = status(StatusCode::RANGE_NOT_SATISFIABLE);
            let cr = HeaderValue::from_str(&format!("bytes */{len}")).expect("ascii");
            r.headers_mut().insert(header::CONTENT_RANGE, cr);
            r
        }
        (false, Some(Range::Bytes(start, end))) => {
            let part = bytes[start as usize..=end as usize].to_vec();
            let mut r = Response::new(Body::from(part));
            *r.status_mut() = StatusCode::PARTIAL_CONTENT;
            let cr = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")).expect("ascii");
            r.headers_mut().insert(header::CONTENT_RANGE, cr);
            r
        }
    };
    let modified = r.status() != StatusCode::NOT_MODIFIED;
    let h = r.headers_mut();
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("hex is ascii"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if modified {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    r
}

/// What a `Range` header asks of a blob of a given length.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Range {
    /// Inclusive byte range inside the blob.
    Bytes(u64, u64),
    /// Syntactically a byte range, but outside the blob.
    Unsatisfiable,
    /// Not a single `bytes=` range: serve the whole blob (RFC 9110 allows ignoring it).
    Ignore,
}

/// Parses `bytes=a-b`, `bytes=a-` and `bytes=-n` for a blob of `len` bytes.
pub(crate) fn parse_range(v: &str, len: u64) -> Range {
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Range::Ignore;
    };
    if spec.contains(',') {
        return Range::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Range::Ignore;
    };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.is_empty(), b.is_empty()) {
        (true, false) => match b.parse::<u64>() {
            Ok(0) => return Range::Unsatisfiable,
            Ok(n) => Some((len.saturating_sub(n), len.saturating_sub(1))),
            Err(_) => None,
        },
        (false, true) => a.parse::<u64>().ok().map(|s| (s, len.saturating_sub(1))),
        (false, false) => match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(s), Ok(e)) if s <= e => Some((s, e.min(len.saturating_sub(1)))),
            _ => None,
        },
        (true, true) => None,
    };
    match parsed {
        None => Range::Ignore,
        Some((s, _)) if len == 0 || s >= len => Range::Unsatisfiable,
        Some((s, e)) => Range::Bytes(s, e),
    }
}

#[cfg(test)]
mod tests {
    use super::{Range, parse_range};

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Range::Bytes(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), Range::Bytes(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), Range::Bytes(90, 99));
        assert_eq!(parse_range("bytes=50-500", 100), Range::Bytes(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Range::Ignore);
        assert_eq!(parse_range("items=0-1", 100), Range::Ignore);
        assert_eq!(parse_range("bytes=9-1", 100), Range::Ignore);
    }
}
