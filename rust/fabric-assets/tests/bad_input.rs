//! Bad input end to end: real files, the real router or a real misbehaving loopback server.
//! Every case gives a typed error, leaves no output file, and leaves no bad chunk in the cache.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::*;
use fabric_assets::{
    ChunkStore, DiskStore, FetchError, FetchOptions, IndexError, StoreError, fetch, fetch_index,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn quick() -> FetchOptions {
    FetchOptions {
        attempts: 3,
        backoff: Duration::from_millis(5),
        ..FetchOptions::default()
    }
}

async fn setup(
    dir: &Path,
    len: usize,
) -> (Arc<DiskStore>, fabric_assets::BakeReport, Arc<DiskStore>) {
    let server = Arc::new(DiskStore::open(dir.join("server")).expect("store"));
    let baked = bake_bytes(&export_like(len, 21), &server);
    let cache = Arc::new(DiskStore::open(dir.join("cache")).expect("cache"));
    (server, baked, cache)
}

fn assert_clean(out: &Path, cache: &DiskStore) {
    assert!(!out.exists(), "no output file after a failed fetch");
    let leftovers: Vec<_> = std::fs::read_dir(out.parent().expect("parent"))
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary file left: {leftovers:?}"
    );
    for entry in walk(&cache.root().join("chunks")) {
        let name = entry
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let id = fabric_assets::ChunkId::from_hex(name.trim_end_matches(".zst")).expect("hex name");
        let z = std::fs::read(&entry).expect("read");
        let data = zstd::decode_all(&z[..]).expect("cached chunk decompresses");
        assert_eq!(
            fabric_assets::ChunkId::of(&data),
            id,
            "cached chunk {name} verifies"
        );
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p))
        } else {
            out.push(p)
        }
    }
    out
}

#[tokio::test]
async fn a_corrupt_chunk_on_the_server_fails_with_its_id_after_the_retries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, baked, cache) = setup(dir.path(), 1_000_000).await;
    let victim = baked.index.chunks[2].id;
    let mut z = std::fs::read(server.chunk_path(&victim)).expect("read");
    let mid = z.len() / 2;
    z[mid] ^= 0xff;
    std::fs::write(server.chunk_path(&victim), &z).expect("corrupt");
    let addr = serve(server).await;
    let out = dir.path().join("out.bin");
    let err = fetch(
        &format!("http://{addr}/index/{}", baked.name),
        cache.clone(),
        &out,
        &quick(),
        |_| {},
    )
    .await
    .expect_err("a corrupt chunk must fail the fetch");
    match err {
        FetchError::BadChunk { id, attempts, .. } => {
            assert_eq!(id, victim, "the error names the corrupt chunk");
            assert_eq!(attempts, 3, "tried as often as configured");
        }
        other => panic!("expected BadChunk, got {other}"),
    }
    assert!(!cache.has_chunk(&victim), "the corrupt chunk is not cached");
    assert_clean(&out, &cache);
}

#[tokio::test]
async fn a_chunk_swapped_for_another_valid_chunk_is_a_hash_mismatch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, baked, cache) = setup(dir.path(), 1_000_000).await;
    let (a, b) = (baked.index.chunks[0].id, baked.index.chunks[1].id);
    std::fs::copy(server.chunk_path(&b), server.chunk_path(&a)).expect("swap");
    let addr = serve(server).await;
    let out = dir.path().join("out.bin");
    let err = fetch(
        &format!("http://{addr}/index/{}", baked.name),
        cache.clone(),
        &out,
        &quick(),
        |_| {},
    )
    .await
    .expect_err("a swapped chunk must fail");
    assert!(
        matches!(&err, FetchError::BadChunk { id, .. } if *id == a),
        "expected BadChunk for {a}, got {err}"
    );
    assert_clean(&out, &cache);
}

#[tokio::test]
async fn a_truncated_index_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, baked, cache) = setup(dir.path(), 500_000).await;
    let path = server.index_path(&baked.name).expect("name");
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&path, &bytes[..bytes.len() - 41]).expect("truncate");
    let addr = serve(server).await;
    let out = dir.path().join("out.bin");
    let err = fetch(
        &format!("http://{addr}/index/{}", baked.name),
        cache.clone(),
        &out,
        &quick(),
        |_| {},
    )
    .await
    .expect_err("truncated");
    assert!(
        matches!(
            err,
            FetchError::Index {
                source: IndexError::Truncated { .. },
                ..
            }
        ),
        "expected a truncated-index error, got {err}"
    );
    assert_clean(&out, &cache);
}

#[tokio::test]
async fn fetch_index_reads_and_verifies_only_the_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, baked, _cache) = setup(dir.path(), 300_000).await;
    let path = server.index_path(&baked.name).expect("name");
    let bytes = std::fs::read(&path).expect("read");
    // No chunk on the server: a fetch of the index alone must not need one.
    std::fs::remove_dir_all(server.root().join("chunks")).expect("drop the chunks");
    let addr = serve(server).await;
    let url = format!("http://{addr}/index/{}", baked.name);
    let (index, received) = fetch_index(&url, &quick()).await.expect("the index");
    assert_eq!(index, baked.index, "the index as baked");
    assert_eq!(received, bytes.len() as u64, "only the index was read");

    std::fs::write(&path, &bytes[..bytes.len() - 1]).expect("truncate");
    let err = fetch_index(&url, &quick()).await.expect_err("truncated");
    assert!(
        matches!(err, FetchError::Index { .. }),
        "a broken index is an index error: {err}"
    );
    let missing = format!("http://{addr}/index/{}", "0".repeat(64));
    let err = fetch_index(&missing, &quick()).await.expect_err("absent");
    assert!(
        matches!(err, FetchError::Http { .. }),
        "an absent index is an HTTP error: {err}"
    );
}

#[tokio::test]
async fn an_index_claiming_huge_sizes_is_refused_before_any_chunk_is_fetched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, baked, cache) = setup(dir.path(), 500_000).await;
    let path = server.index_path(&baked.name).expect("name");
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[20..28].copy_from_slice(&(1u64 << 40).to_le_bytes()); // 1 TiB file
    std::fs::write(&path, &bytes).expect("inflate size");
    let mut count = std::fs::read(&path).expect("read");
    count[20..28].copy_from_slice(&(1u64 << 30).to_le_bytes());
    count[60..64].copy_from_slice(&u32::MAX.to_le_bytes()); // 4 billion chunks
    let other = "huge-count";
    std::fs::write(server.root().join("index").join(other), &count).expect("inflate count");
    let addr = serve(server).await;
    let out = dir.path().join("out.bin");
    let err = fetch(
        &format!("http://{addr}/index/{}", baked.name),
        cache.clone(),
        &out,
        &quick(),
        |_| {},
    )
    .await
    .expect_err("huge file size");
    assert!(
        matches!(err, FetchError::Index { source: IndexError::FileTooLarge(n), .. } if n == 1 << 40),
        "expected FileTooLarge, got {err}"
    );
    let err = fetch(
        &format!("http://{addr}/index/{other}"),
        cache.clone(),
        &out,
        &quick(),
        |_| {},
    )
    .await
    .expect_err("huge count");
    assert!(
        matches!(err, FetchError::Index { source: IndexError::TooManyChunks { count, .. }, .. } if count == u64::from(u32::MAX)),
        "expected TooManyChunks, got {err}"
    );
    assert!(
        walk(&cache.root().join("chunks")).is_empty(),
        "nothing fetched before the index verified"
    );
    assert_clean(&out, &cache);
}

#[tokio::test]
async fn the_store_refuses_a_chunk_that_does_not_match_its_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = DiskStore::open(dir.path()).expect("store");
    let data = b"hello chunk".repeat(100);
    let z = zstd::encode_all(&data[..], 3).expect("zstd");
    let wrong = fabric_assets::ChunkId::of(b"something else");
    let err = store
        .put_chunk(&wrong, &z, data.len() as u32)
        .expect_err("mismatch");
    assert!(matches!(err, StoreError::HashMismatch { .. }), "{err}");
    assert!(!store.has_chunk(&wrong), "nothing stored");
    let right = fabric_assets::ChunkId::of(&data);
    let err = store
        .put_chunk(&right, &z, 10)
        .expect_err("claimed size smaller than the content");
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    store
        .put_chunk(&right, &z, data.len() as u32)
        .expect("a good chunk is stored");
    assert!(store.has_chunk(&right), "stored");
    let err = store.put_index("../escape", b"x").expect_err("bad name");
    assert!(matches!(err, StoreError::BadName(_)), "{err}");
}

/// A keep-alive HTTP/1.1 server over real loopback that serves a store's files, but cuts the
/// connection halfway through the body of the first `cuts` chunk responses.
async fn flaky_server(store: Arc<DiskStore>, cuts: u32) -> (SocketAddr, Arc<AtomicU32>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let left = Arc::new(AtomicU32::new(cuts));
    let l = left.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (store, left) = (store.clone(), l.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut tmp = [0u8; 4096];
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match sock.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end + 4);
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let body = if let Some(name) = path.strip_prefix("/index/") {
                        store.get_index(name).ok().flatten()
                    } else if let Some(hex) = path.strip_prefix("/chunks/") {
                        fabric_assets::ChunkId::from_hex(hex)
                            .and_then(|id| store.get_chunk(&id).ok().flatten())
                    } else {
                        None
                    };
                    let Some(body) = body else {
                        let _ = sock
                            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                            .await;
                        continue;
                    };
                    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                    let cut = path.starts_with("/chunks/")
                        && left
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok();
                    let _ = sock.write_all(head.as_bytes()).await;
                    if cut {
                        let _ = sock.write_all(&body[..body.len() / 2]).await;
                        return; // drops the socket mid-body
                    }
                    let _ = sock.write_all(&body).await;
                }
            });
        }
    });
    (addr, left)
}

#[tokio::test]
async fn a_connection_dropped_mid_chunk_is_retried_and_the_fetch_succeeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, baked, cache) = setup(dir.path(), 1_000_000).await;
    let data = export_like(1_000_000, 21);
    let (addr, left) = flaky_server(server, 2).await;
    let out = dir.path().join("out.bin");
    let r = fetch(
        &format!("http://{addr}/index/{}", baked.name),
        cache,
        &out,
        &quick(),
        |_| {},
    )
    .await
    .expect("two cuts are within three attempts per chunk");
    assert_eq!(left.load(Ordering::SeqCst), 0, "both cuts happened");
    assert_eq!(read(&out), data, "file intact");
    assert_eq!(
        r.fetched_chunks,
        baked.index.chunks.len(),
        "every chunk fetched"
    );
}

#[tokio::test]
async fn a_server_that_always_drops_gives_a_clear_error_after_the_retries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, baked, cache) = setup(dir.path(), 300_000).await;
    let (addr, _) = flaky_server(server, u32::MAX).await;
    let out = dir.path().join("out.bin");
    let opts = FetchOptions {
        concurrency: 1,
        ..quick()
    };
    let err = fetch(
        &format!("http://{addr}/index/{}", baked.name),
        cache.clone(),
        &out,
        &opts,
        |_| {},
    )
    .await
    .expect_err("never completes a chunk");
    match &err {
        FetchError::Http { url, attempts, .. } => {
            assert_eq!(*attempts, 3, "gave up after the configured attempts");
            assert!(url.contains("/chunks/"), "names the chunk URL: {url}");
        }
        other => panic!("expected an HTTP error, got {other}"),
    }
    assert_clean(&out, &cache);
}
