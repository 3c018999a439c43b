//! A fetch of one asset, outside Godot: where the index is (from what a game has at hand: the
//! map list's `baked_url`, a full URL or a bare hash), where the file goes, and the run itself
//! on the shared background runtime, reporting [`JobEvent`]s over a channel that the Godot
//! class ([`super::FabricAssetFetcher`]) drains on the main thread.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use fabric_assets::{ChunkStore, DiskStore, FetchOptions, Progress};

/// What a running fetch reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEvent {
    /// Bytes of the file ready (reused or downloaded and verified) out of its size.
    Progress(Progress),
    /// The file is in place, verified: its path.
    Finished(PathBuf),
    /// The fetch stopped: why (the typed error's text).
    Failed(String),
}

/// Why a fetch could not start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JobError {
    /// The index is neither a URL, a path on the backend, nor a 64-character hash.
    #[error("{0:?} is not an index URL, a /assets/index/<hash> path or a hash")]
    BadIndex(String),
    /// A path or hash was given without a backend URL to resolve it against.
    #[error("a backend URL (http://host:port or https://host:port) is needed to resolve {0:?}")]
    NoBackend(String),
    /// The cache folder is empty.
    #[error("a cache folder is needed")]
    NoCache,
    /// `backend_cert_hash` is not a list of SHA-256 hashes.
    #[error("backend_cert_hash {0:?} is not SHA-256 hashes (base64 or hex, comma-separated)")]
    BadCertHash(String),
}

/// The pinned certificate hashes of `text` (empty: none, for `http://`).
pub fn cert_pins(text: &str) -> Result<Vec<fabric_assets::CertHash>, JobError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    fabric_assets::CertHash::parse_list(text).map_err(|_| JobError::BadCertHash(text.to_owned()))
}

/// The index URL for `index`: a full `http://` or `https://` URL as it is, a path (`/assets/index/<hash>`,
/// as `GET /maps/{map}/assets` lists `baked_url`) or a bare hash on `backend`.
pub fn index_url(backend: &str, index: &str) -> Result<String, JobError> {
    let index = index.trim();
    if index.starts_with("http://") || index.starts_with("https://") {
        return Ok(index.to_owned());
    }
    let path = if index.starts_with('/') {
        index.to_owned()
    } else if fabric_assets::ChunkId::from_hex(index).is_some() {
        format!("/assets/index/{index}")
    } else {
        return Err(JobError::BadIndex(index.to_owned()));
    };
    let backend = backend.trim().trim_end_matches('/');
    if backend.is_empty() {
        return Err(JobError::NoBackend(index.to_owned()));
    }
    Ok(format!("{backend}{path}"))
}

/// Where the fetched file of `index_url` goes: `cache/files/<last path segment>`.
pub fn output_path(cache: &Path, index_url: &str) -> Result<PathBuf, JobError> {
    let name = index_url
        .rsplit('/')
        .next()
        .filter(|n| fabric_assets::ChunkId::from_hex(n).is_some())
        .or_else(|| index_url.rsplit('/').next().filter(|n| is_plain(n)))
        .ok_or_else(|| JobError::BadIndex(index_url.to_owned()))?;
    Ok(cache.join("files").join(name))
}

/// A file name without path separators, dots only inside.
fn is_plain(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Starts fetching `index_url` into `output`, chunks cached in `cache`, on the shared runtime;
/// the events arrive on the returned channel, ending with `Finished` or `Failed`.
pub fn start(
    index_url: String,
    cache: PathBuf,
    output: PathBuf,
    cert_pins: Vec<fabric_assets::CertHash>,
) -> Receiver<JobEvent> {
    let (tx, rx) = channel();
    let options = FetchOptions {
        cert_pins,
        ..FetchOptions::default()
    };
    fabric_net::runtime_handle().spawn(async move {
        let last = match run(&index_url, &cache, &output, &options, tx.clone()).await {
            Ok(()) => JobEvent::Finished(output),
            Err(reason) => {
                tracing::warn!(%index_url, "asset fetch failed: {reason}");
                JobEvent::Failed(reason)
            }
        };
        let _ = tx.send(last);
    });
    rx
}

async fn run(
    index_url: &str,
    cache: &Path,
    output: &Path,
    options: &FetchOptions,
    tx: Sender<JobEvent>,
) -> Result<(), String> {
    let (cache_dir, out_dir) = (cache.to_path_buf(), output.parent().map(Path::to_path_buf));
    let store = tokio::task::spawn_blocking(move || -> std::io::Result<DiskStore> {
        if let Some(d) = out_dir {
            std::fs::create_dir_all(d)?;
        }
        std::fs::create_dir_all(&cache_dir)?;
        DiskStore::open(&cache_dir).map_err(std::io::Error::other)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("cache folder {}: {e}", cache.display()))?;
    let store: Arc<dyn ChunkStore> = Arc::new(store);
    fabric_assets::fetch(index_url, store, output, options, move |p| {
        let _ = tx.send(JobEvent::Progress(p));
    })
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "0123456789abcdeffedcba98765432100123456789abcdeffedcba9876543210";

    #[test]
    fn an_index_is_found_from_a_url_a_path_or_a_hash() {
        let be = "http://127.0.0.1:8080/";
        let want = format!("http://127.0.0.1:8080/assets/index/{HASH}");
        assert_eq!(index_url(be, &want).unwrap(), want);
        assert_eq!(
            index_url(be, &format!("/assets/index/{HASH}")).unwrap(),
            want
        );
        assert_eq!(index_url(be, HASH).unwrap(), want);
        assert_eq!(
            index_url(be, "tree.glb"),
            Err(JobError::BadIndex("tree.glb".into()))
        );
        assert_eq!(index_url("", HASH), Err(JobError::NoBackend(HASH.into())));
    }

    #[test]
    fn the_file_goes_under_files_by_its_hash() {
        let url = format!("http://h:1/assets/index/{HASH}");
        assert_eq!(
            output_path(Path::new("/c"), &url).unwrap(),
            Path::new("/c/files").join(HASH)
        );
        assert!(output_path(Path::new("/c"), "http://h:1/assets/index/..").is_err());
        assert!(output_path(Path::new("/c"), "http://h:1/").is_err());
    }
}
