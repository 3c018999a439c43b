//! Asset upload: `PUT /maps/{map}/assets/{name}` streams the body to disk (never whole in
//! memory, at most `--max-upload-bytes`), bakes it into content-defined chunks in the chunk
//! store (`fabric_assets::bake`), records the [`SharedFile`] and pushes `asset_baked` to the
//! zones of the map. `GET /maps/{map}/assets` lists a map's assets; the index and chunks are
//! served by `fabric_assets::router` under `/assets/` (immutable, cacheable, ranges).
//!
//! The caller needs ReBAC `upload` on `map:<map>` (an `uploader` or `owner` of the map),
//! checked before a byte of the body is read.

use std::io::Write as _;
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, BodyDataStream};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use fabric_assets::ChunkParams;
use fabric_auth::ObjectRef;
use futures_util::StreamExt as _;

use crate::blocking::off_worker;
use crate::config::Config;
use crate::error::ApiError;
use crate::extract::{Bearer, require_account};
use crate::model::{AssetBaked, SharedFile, SharedFileList};
use crate::push;
use crate::state::{AssetSettings, Shared};

/// Longest asset or map name.
const MAX_NAME: usize = 128;

/// Names are `[A-Za-z0-9._-]{1,128}` and not `.` or `..`: safe in paths, URLs and topics.
pub(super) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn check_names(map: &str, name: &str) -> Result<(), ApiError> {
    if !valid_name(map) {
        return Err(ApiError::invalid_field(
            "map",
            "use 1-128 of A-Z a-z 0-9 . _ -",
        ));
    }
    if !valid_name(name) {
        return Err(ApiError::invalid_field(
            "name",
            "use 1-128 of A-Z a-z 0-9 . _ -",
        ));
    }
    Ok(())
}

fn assets(st: &Shared) -> Result<&AssetSettings, ApiError> {
    st.assets.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "assets_disabled",
            "asset uploads are disabled on this backend: start it with --assets-dir DIR or \
             --assets-s3 URL --assets-bucket BUCKET",
        )
    })
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "upload_too_large",
        format!("the upload exceeds the limit of {limit} bytes (--max-upload-bytes)"),
    )
}

fn storage(what: &str, e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "asset {what} failed");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "asset_storage",
        format!("asset {what} failed"),
    )
}

/// A body in transit, removed when dropped (an aborted or failed upload leaves nothing).
struct PartFile(std::path::PathBuf);

impl Drop for PartFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Most bytes of a refused upload's body read and dropped before answering. An HTTP/1.1
/// client that is still sending when the server answers and closes often loses the answer
/// (the unread bytes make the close a reset): reading the rest lets it hear why. Beyond this,
/// the connection is closed as it is (clients of large uploads should send
/// `Expect: 100-continue`, which the server answers before reading any of the body).
const DRAIN_LIMIT: u64 = 16 << 20;

async fn drain(stream: &mut BodyDataStream) {
    let mut read = 0u64;
    while read <= DRAIN_LIMIT {
        match stream.next().await {
            Some(Ok(b)) => read += b.len() as u64,
            _ => return,
        }
    }
}

pub(super) async fn upload(
    State(st): State<Shared>,
    Path((map, name)): Path<(String, String)>,
    bearer: Bearer,
    body: Body,
) -> Result<(StatusCode, Json<AssetBaked>), ApiError> {
    let mut stream = body.into_data_stream();
    let result = receive_and_bake(st, map, name, bearer, &mut stream).await;
    if result.is_err() {
        drain(&mut stream).await;
    }
    result
}

async fn receive_and_bake(
    st: Shared,
    map: String,
    name: String,
    bearer: Bearer,
    stream: &mut BodyDataStream,
) -> Result<(StatusCode, Json<AssetBaked>), ApiError> {
    check_names(&map, &name)?;
    let limit = assets(&st)?.max_upload_bytes;
    let account = {
        let (st, map) = (st.clone(), map.clone());
        off_worker(move || {
            let account = require_account(&st, &bearer)?;
            let object = ObjectRef::new("map", &map);
            if !super::permits(&st, &account, "upload", &object)? {
                return Err(ApiError::forbidden(format!(
                    "{account} may not upload to {object} (needs uploader or owner)"
                )));
            }
            Ok(account)
        })
        .await?
    };
    let store = assets(&st)?.store.clone();
    let part = PartFile(
        assets(&st)?
            .spool
            .join(format!("{}.part", uuid::Uuid::new_v4())),
    );
    // The body goes to disk as it arrives; over the limit it stops at once.
    let mut file = {
        let path = part.0.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(path.parent().expect("uploads folder"))?;
            std::fs::File::create(&path)
        })
        .await
        .map_err(|e| storage("upload", e))?
        .map_err(|e| storage("upload", e))?
    };
    let mut received = 0u64;
    while let Some(frame) = stream.next().await {
        let bytes = frame.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "upload_interrupted",
                format!("the upload body ended early: {e}"),
            )
        })?;
        received += bytes.len() as u64;
        if received > limit {
            return Err(too_large(limit));
        }
        file = tokio::task::spawn_blocking(move || file.write_all(&bytes).map(|()| file))
            .await
            .map_err(|e| storage("upload", e))?
            .map_err(|e| storage("upload", e))?;
    }
    if received == 0 {
        return Err(ApiError::invalid_field("body", "an asset cannot be empty"));
    }
    drop(file);
    let at_ms = st.clock.now_ms();
    off_worker(move || {
        let input = std::fs::File::open(&part.0).map_err(|e| storage("bake", e))?;
        let report = fabric_assets::bake(
            std::io::BufReader::with_capacity(256 << 10, input),
            ChunkParams::DEFAULT,
            &*store,
        )
        .map_err(|e| storage("bake", e))?;
        drop(part);
        let asset = SharedFile {
            map,
            name,
            baked_url: format!("/assets/index/{}", report.name),
            asset_id: report.index.file_hash.asset_id(),
            hash: report.name,
            size: report.index.file_size,
            chunks: report.index.chunks.len() as u64,
            uploader: account,
            baked_at_ms: at_ms,
        };
        st.store.put_shared_file(&asset)?;
        let notified = push::asset_baked(&st, &asset)?;
        tracing::info!(
            map = %asset.map,
            name = %asset.name,
            size = asset.size,
            new = report.new_chunks,
            reused = report.reused_chunks,
            notified,
            "asset baked"
        );
        Ok((
            StatusCode::CREATED,
            Json(AssetBaked {
                asset,
                new_chunks: report.new_chunks as u64,
                reused_chunks: report.reused_chunks as u64,
                notified,
            }),
        ))
    })
    .await
}

pub(super) async fn list(
    State(st): State<Shared>,
    Path(map): Path<String>,
    bearer: Bearer,
) -> Result<Json<SharedFileList>, ApiError> {
    if !valid_name(&map) {
        return Err(ApiError::invalid_field(
            "map",
            "use 1-128 of A-Z a-z 0-9 . _ -",
        ));
    }
    off_worker(move || {
        require_account(&st, &bearer)?;
        Ok(Json(SharedFileList {
            assets: st.store.shared_files(&map)?,
        }))
    })
    .await
}

/// The chunk store served under `/assets/`, when uploads are enabled.
pub(super) fn chunk_store(st: &Shared) -> Option<Arc<dyn fabric_assets::ChunkStore>> {
    st.assets.as_ref().map(|a| a.store.clone())
}

/// Opens the asset store the options name: `--assets-dir` (a [`fabric_assets::DiskStore`]),
/// `--assets-s3` with `--assets-bucket` (a [`fabric_assets::S3Store`], checked with a request
/// so a wrong endpoint, bucket or key fails the start), or none.
pub async fn open_asset_store(config: &Config) -> std::io::Result<Option<AssetSettings>> {
    let failed = |what: String, e: fabric_assets::StoreError| {
        std::io::Error::other(format!("cannot open the asset store {what}: {e}"))
    };
    let (store, default_spool): (Arc<dyn fabric_assets::ChunkStore>, _) =
        match (&config.assets_dir, &config.assets_s3, &config.assets_bucket) {
            (Some(dir), _, _) => (
                Arc::new(
                    fabric_assets::DiskStore::open(dir)
                        .map_err(|e| failed(format!("{dir:?}"), e))?,
                ),
                dir.join("uploads"),
            ),
            (None, Some(endpoint), Some(bucket)) => {
                let s3 = fabric_assets::S3Config::from_env(endpoint, bucket)
                    .map_err(|e| failed(format!("{endpoint} {bucket}"), e))?;
                let store = tokio::task::spawn_blocking(move || fabric_assets::S3Store::open(&s3))
                    .await
                    .map_err(std::io::Error::other)?
                    .map_err(|e| failed(format!("{endpoint} {bucket}"), e))?;
                tracing::info!(
                    store = store.label(),
                    "asset store on S3-compatible storage"
                );
                (
                    Arc::new(store),
                    std::env::temp_dir().join("fabric-backend-uploads"),
                )
            }
            _ => return Ok(None),
        };
    Ok(Some(AssetSettings {
        store,
        spool: config.assets_spool.clone().unwrap_or(default_spool),
        max_upload_bytes: config.max_upload_bytes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_in_paths_and_urls() {
        for ok in ["plaza", "tree_01.glb", "a-b.c", &"x".repeat(128)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", "a%2f", &"x".repeat(129)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
