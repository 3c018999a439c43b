//! Fetch: rebuild a file from an index URL. Chunks already in the local cache are verified and
//! reused (a bad one is removed and fetched again); the rest are downloaded in parallel over
//! keep-alive connections with bounded concurrency and retries, verified, and written to the
//! cache; then the file is assembled in a temporary file next to the output, checked against the
//! index's whole-file hash and renamed into place. The cache only ever holds verified chunks.

use std::collections::HashMap;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::http::{GetError, HttpClient, Url};
use crate::store::verify_chunk;
use crate::{
    ChunkId, ChunkStore, FetchError, Index, MAX_INDEX_BYTES, StoreError, compressed_bound,
};

/// Bytes of the file ready so far (reused or downloaded and verified) out of its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Uncompressed bytes ready.
    pub done: u64,
    /// The file size.
    pub total: u64,
}

/// How a fetch runs.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Chunks downloaded at once (connections kept open). Default 8.
    pub concurrency: usize,
    /// Tries per request before giving up. Default 4.
    pub attempts: u32,
    /// Wait before the first retry; doubles each time. Default 50 ms.
    pub backoff: Duration,
    /// Where chunks are (`<base><hex>` is a chunk). Default: the index URL with its
    /// `index/<name>` tail replaced by `chunks/`, the layout [`crate::router`] serves.
    pub chunk_base: Option<String>,
    /// For `https://` URLs: the SHA-256 hashes of the server certificates accepted (the
    /// backend's `--tls-*` start-up line prints its hash). Required for `https://`, refused
    /// for `http://`.
    pub cert_pins: Vec<fabric_net::cert::CertHash>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            concurrency: 8,
            attempts: 4,
            backoff: Duration::from_millis(50),
            chunk_base: None,
            cert_pins: Vec::new(),
        }
    }
}

/// What a fetch did.
#[derive(Debug, Clone)]
pub struct FetchReport {
    /// The verified index.
    pub index: Index,
    /// Distinct chunks taken from the cache.
    pub reused_chunks: usize,
    /// Distinct chunks downloaded.
    pub fetched_chunks: usize,
    /// Response body bytes received (index and chunks, retries included).
    pub bytes_downloaded: u64,
}

type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// A distinct chunk still to get: id, uncompressed size, bytes of the file it makes ready.
type Pending = (ChunkId, u32, u64);

/// What the cache check found: chunks to download, bytes already ready, chunks reused.
type CacheCheck = (Vec<Pending>, u64, usize);

fn chunk_base(index_url: &Url) -> String {
    let dir = match index_url.path.rfind('/') {
        Some(i) => &index_url.path[..=i],
        None => "/",
    };
    match dir.strip_suffix("index/") {
        Some(parent) => format!("{parent}chunks/"),
        None => format!("{dir}chunks/"),
    }
}

/// Downloads and verifies only the index at `index_url` (no chunk): retried as `options`
/// says, at most [`MAX_INDEX_BYTES`] read, then decoded and checked by [`Index::decode`]
/// (structure, limits, checksum) before anything sized by it is allocated. Returns the index
/// and the bytes received. A zone uses it to check an asset's manifest before letting players
/// place the asset.
pub async fn fetch_index(
    index_url: &str,
    options: &FetchOptions,
) -> Result<(Index, u64), FetchError> {
    let url = Url::parse(index_url)?;
    let mut client = HttpClient::for_url(&url, &options.cert_pins)?;
    let body = get_with_retries(&mut client, &url.path, MAX_INDEX_BYTES, options)
        .await
        .map_err(|(e, attempts)| to_fetch_error(index_url, MAX_INDEX_BYTES, e, attempts))?;
    let index = Index::decode(&body).map_err(|source| FetchError::Index {
        url: index_url.to_owned(),
        source,
    })?;
    Ok((index, body.len() as u64))
}

/// Fetches the file described by the index at `index_url` into `output`, using `cache` for
/// chunks. `progress` is called with bytes ready out of the total as chunks become ready.
pub async fn fetch(
    index_url: &str,
    cache: Arc<dyn ChunkStore>,
    output: &Path,
    options: &FetchOptions,
    progress: impl Fn(Progress) + Send + Sync + 'static,
) -> Result<FetchReport, FetchError> {
    let progress: ProgressFn = Arc::new(progress);
    let url = Url::parse(index_url)?;
    let (index, index_bytes) = fetch_index(index_url, options).await?;
    let downloaded = Arc::new(AtomicU64::new(index_bytes));

    // Distinct chunks, with how many uncompressed bytes of the file each one makes ready.
    let mut distinct: HashMap<ChunkId, (u32, u64)> = HashMap::new();
    for c in &index.chunks {
        distinct.entry(c.id).or_insert((c.size, 0)).1 += u64::from(c.size);
    }
    let total = index.file_size;
    let done = Arc::new(AtomicU64::new(0));
    let check_cache = {
        let cache = cache.clone();
        let distinct: Vec<Pending> = distinct.iter().map(|(id, (s, b))| (*id, *s, *b)).collect();
        move || -> Result<CacheCheck, StoreError> {
            let (mut missing, mut ready, mut reused) = (Vec::new(), 0, 0);
            for (id, size, bytes) in distinct {
                match cache.get_chunk(&id)? {
                    Some(z) if verify_chunk(&id, &z, size).is_ok() => {
                        ready += bytes;
                        reused += 1;
                    }
                    Some(_) => {
                        tracing::warn!(%id, "cached chunk failed verification, removing it");
                        cache.remove_chunk(&id)?;
                        missing.push((id, size, bytes));
                    }
                    None => missing.push((id, size, bytes)),
                }
            }
            Ok((missing, ready, reused))
        }
    };
    let (missing, ready, reused_chunks) = tokio::task::spawn_blocking(check_cache)
        .await
        .map_err(join_error)??;
    done.store(ready, Ordering::Relaxed);
    progress(Progress { done: ready, total });
    let fetched_chunks = missing.len();

    let base = options
        .chunk_base
        .clone()
        .unwrap_or_else(|| url.with_path(chunk_base(&url)).to_url_string());
    let base_url = Url::parse(&base)?;
    let queue = Arc::new(Mutex::new(missing));
    let abort = Arc::new(AtomicBool::new(false));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..options.concurrency.max(1) {
        let w = Worker {
            client: HttpClient::for_url(&base_url, &options.cert_pins)?,
            base: base_url.path.clone(),
            queue: queue.clone(),
            abort: abort.clone(),
            cache: cache.clone(),
            options: options.clone(),
            downloaded: downloaded.clone(),
            done: done.clone(),
            total,
            progress: progress.clone(),
        };
        workers.spawn(w.run());
    }
    let mut first_error = None;
    while let Some(r) = workers.join_next().await {
        if let Err(e) = r.map_err(join_error).and_then(|r| r) {
            abort.store(true, Ordering::Relaxed);
            first_error.get_or_insert(e);
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }

    let (idx, out) = (index.clone(), output.to_path_buf());
    tokio::task::spawn_blocking(move || assemble(&idx, cache.as_ref(), &out))
        .await
        .map_err(join_error)??;
    let bytes_downloaded = downloaded.load(Ordering::Relaxed);
    tracing::info!(
        reused_chunks,
        fetched_chunks,
        bytes_downloaded,
        "fetched {}",
        output.display()
    );
    Ok(FetchReport {
        index,
        reused_chunks,
        fetched_chunks,
        bytes_downloaded,
    })
}

fn join_error(e: tokio::task::JoinError) -> FetchError {
    FetchError::Io(std::io::Error::other(e))
}

fn to_fetch_error(url: &str, limit: u64, e: GetError, attempts: u32) -> FetchError {
    if e.too_large {
        FetchError::TooLarge {
            url: url.to_owned(),
            limit,
        }
    } else {
        FetchError::Http {
            url: url.to_owned(),
            reason: e.reason,
            attempts,
        }
    }
}

async fn get_with_retries(
    client: &mut HttpClient,
    path: &str,
    limit: u64,
    options: &FetchOptions,
) -> Result<Vec<u8>, (GetError, u32)> {
    let mut wait = options.backoff;
    let mut attempt = 1;
    loop {
        match client.get_inner(path, limit).await {
            Ok(r) => return Ok(r.body),
            Err(e) if !e.retry || attempt >= options.attempts => return Err((e, attempt)),
            Err(e) => tracing::debug!(path, attempt, "retrying: {}", e.reason),
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
        attempt += 1;
    }
}

struct Worker {
    client: HttpClient,
    base: String,
    queue: Arc<Mutex<Vec<Pending>>>,
    abort: Arc<AtomicBool>,
    cache: Arc<dyn ChunkStore>,
    options: FetchOptions,
    downloaded: Arc<AtomicU64>,
    done: Arc<AtomicU64>,
    total: u64,
    progress: ProgressFn,
}

impl Worker {
    async fn run(mut self) -> Result<(), FetchError> {
        loop {
            if self.abort.load(Ordering::Relaxed) {
                return Ok(());
            }
            let next = self.queue.lock().expect("queue lock").pop();
            let Some((id, size, bytes)) = next else {
                return Ok(());
            };
            self.one(id, size).await?;
            let done = self.done.fetch_add(bytes, Ordering::Relaxed) + bytes;
            (self.progress)(Progress {
                done,
                total: self.total,
            });
        }
    }

    /// Downloads, verifies and caches one chunk, retrying transfer and verification failures.
    async fn one(&mut self, id: ChunkId, size: u32) -> Result<(), FetchError> {
        let path = format!("{}{}", self.base, id.to_hex());
        let limit = u64::from(compressed_bound(size));
        let mut wait = self.options.backoff;
        let mut attempt = 1;
        loop {
            let failure = match self.client.get_inner(&path, limit).await {
                Ok(r) => {
                    self.downloaded
                        .fetch_add(r.body.len() as u64, Ordering::Relaxed);
                    let cache = self.cache.clone();
                    let put =
                        tokio::task::spawn_blocking(move || cache.put_chunk(&id, &r.body, size));
                    match put.await.map_err(join_error)? {
                        Ok(()) => return Ok(()),
                        Err(e @ (StoreError::Corrupt(_) | StoreError::HashMismatch { .. })) => {
                            (true, e.to_string(), true)
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => (e.retry, e.reason, e.too_large),
            };
            let (retry, reason, bad_content) = failure;
            if !retry || attempt >= self.options.attempts || self.abort.load(Ordering::Relaxed) {
                let url = format!("{}{path}", self.client_origin());
                return Err(if bad_content {
                    FetchError::BadChunk {
                        id,
                        attempts: attempt,
                        reason,
                    }
                } else {
                    FetchError::Http {
                        url,
                        reason,
                        attempts: attempt,
                    }
                });
            }
            tracing::debug!(%id, attempt, "retrying chunk: {reason}");
            tokio::time::sleep(wait).await;
            wait *= 2;
            attempt += 1;
        }
    }

    fn client_origin(&self) -> String {
        self.client.origin()
    }
}

/// Writes the file from cached chunks into a temporary file beside `output`, checks the
/// whole-file hash, and renames it into place.
fn assemble(index: &Index, cache: &dyn ChunkStore, output: &Path) -> Result<(), FetchError> {
    let dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp: PathBuf = dir.join(format!(".{name}.{}.part", std::process::id()));
    let result = (|| {
        let mut out = BufWriter::with_capacity(1 << 20, fs::File::create(&tmp)?);
        let mut whole = blake3::Hasher::new();
        for c in &index.chunks {
            let z = cache.get_chunk(&c.id)?.ok_or_else(|| {
                StoreError::Io(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("chunk {} left the cache", c.id),
                ))
            })?;
            let data = verify_chunk(&c.id, &z, c.size)?;
            whole.update(&data);
            out.write_all(&data)?;
        }
        let actual = ChunkId(*whole.finalize().as_bytes());
        if actual != index.file_hash {
            return Err(FetchError::FileHashMismatch {
                expected: index.file_hash,
                actual,
            });
        }
        let f = out.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        fs::rename(&tmp, output)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
