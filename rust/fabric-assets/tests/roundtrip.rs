//! Bake -> serve (real router on loopback) -> fetch, cold and warm, with progress and headers.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use fabric_assets::{ChunkStore, DiskStore, FetchOptions, Progress, fetch};

#[tokio::test]
async fn cold_fetch_rebuilds_the_file_and_reports_progress() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Arc::new(DiskStore::open(dir.path().join("server")).expect("store"));
    let data = export_like(3_000_000, 7);
    let baked = bake_bytes(&data, &server);
    assert!(
        baked.index.chunks.len() > 10,
        "3 MB gives many chunks, got {}",
        baked.index.chunks.len()
    );
    assert_eq!(
        baked.index.file_size,
        data.len() as u64,
        "file size in the index"
    );
    let addr = serve(server).await;

    let cache = Arc::new(DiskStore::open(dir.path().join("cache")).expect("cache"));
    let out = dir.path().join("out.pck");
    let seen = Arc::new(Mutex::new(Vec::<Progress>::new()));
    let s = seen.clone();
    let url = format!("http://{addr}/index/{}", baked.name);
    let report = fetch(
        &url,
        cache.clone(),
        &out,
        &FetchOptions::default(),
        move |p| s.lock().unwrap().push(p),
    )
    .await
    .expect("fetch");
    assert_eq!(read(&out), data, "fetched bytes equal the baked file");
    assert_eq!(report.reused_chunks, 0, "cold cache reuses nothing");
    let wire = report.index.compressed_size() + report.index.encode().len() as u64;
    assert!(
        report.bytes_downloaded >= wire,
        "downloaded {} < index + chunks {wire}",
        report.bytes_downloaded
    );
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.last(),
        Some(&Progress {
            done: data.len() as u64,
            total: data.len() as u64
        }),
        "ends at total"
    );
    assert!(
        seen.windows(2).all(|w| w[0].done <= w[1].done),
        "progress never goes back"
    );
    for c in &report.index.chunks {
        assert!(cache.has_chunk(&c.id), "chunk {} kept in the cache", c.id);
    }
}

#[tokio::test]
async fn a_small_change_downloads_only_the_changed_chunks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Arc::new(DiskStore::open(dir.path().join("server")).expect("store"));
    let v1 = export_like(8_000_000, 11);
    let v2 = small_change(&v1);
    let b1 = bake_bytes(&v1, &server);
    let b2 = bake_bytes(&v2, &server);
    assert!(
        b2.new_chunks <= 4,
        "v2 adds at most 4 chunks to the store, added {}",
        b2.new_chunks
    );
    let addr = serve(server).await;
    let cache = Arc::new(DiskStore::open(dir.path().join("cache")).expect("cache"));
    let opts = FetchOptions::default();
    let out = dir.path().join("game.pck");
    fetch(
        &format!("http://{addr}/index/{}", b1.name),
        cache.clone(),
        &out,
        &opts,
        |_| {},
    )
    .await
    .expect("v1");
    assert_eq!(read(&out), v1, "v1 fetched");
    let r = fetch(
        &format!("http://{addr}/index/{}", b2.name),
        cache,
        &out,
        &opts,
        |_| {},
    )
    .await
    .expect("v2");
    assert_eq!(read(&out), v2, "v2 replaced v1 in place");
    assert!(
        r.fetched_chunks <= 4,
        "fetched {} chunks for a small change",
        r.fetched_chunks
    );
    assert!(
        r.bytes_downloaded * 10 < r.index.compressed_size(),
        "warm fetch moved {} bytes, a cold one would move {}",
        r.bytes_downloaded,
        r.index.compressed_size()
    );
}

#[tokio::test]
async fn a_corrupt_cached_chunk_is_dropped_and_fetched_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Arc::new(DiskStore::open(dir.path().join("server")).expect("store"));
    let data = export_like(1_000_000, 3);
    let baked = bake_bytes(&data, &server);
    let addr = serve(server).await;
    let cache = Arc::new(DiskStore::open(dir.path().join("cache")).expect("cache"));
    let url = format!("http://{addr}/index/{}", baked.name);
    let out = dir.path().join("a.bin");
    fetch(&url, cache.clone(), &out, &FetchOptions::default(), |_| {})
        .await
        .expect("first");
    let victim = baked.index.chunks[1].id;
    std::fs::write(cache.chunk_path(&victim), b"not zstd").expect("tamper");
    std::fs::remove_file(&out).expect("rm");
    let r = fetch(&url, cache.clone(), &out, &FetchOptions::default(), |_| {})
        .await
        .expect("second");
    assert_eq!(
        r.fetched_chunks, 1,
        "only the corrupted chunk is fetched again"
    );
    assert_eq!(read(&out), data, "file rebuilt");
    let z = cache.get_chunk(&victim).expect("read").expect("present");
    assert_ne!(z, b"not zstd", "the cache holds the verified chunk again");
}

#[tokio::test]
async fn the_router_sends_immutable_cache_headers_etags_and_ranges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Arc::new(DiskStore::open(dir.path()).expect("store"));
    let baked = bake_bytes(&export_like(200_000, 5), &server);
    let id = baked.index.chunks[0].id;
    let stored = server.get_chunk(&id).expect("read").expect("present");
    let addr = serve(server).await;
    let path = format!("/chunks/{id}");

    let (head, body) = raw_get(addr, &path, "").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("cache-control: public, max-age=31536000, immutable"),
        "{head}"
    );
    assert!(head.contains(&format!("etag: \"{id}\"")), "{head}");
    assert_eq!(body, stored, "chunk body is the stored zstd frame");

    let (head, body) = raw_get(addr, &path, &format!("If-None-Match: \"{id}\"\r\n")).await;
    assert!(head.starts_with("http/1.1 304"), "{head}");
    assert!(body.is_empty(), "304 has no body");

    let (head, body) = raw_get(addr, &path, "Range: bytes=2-9\r\n").await;
    assert!(head.starts_with("http/1.1 206"), "{head}");
    assert!(
        head.contains(&format!("content-range: bytes 2-9/{}", stored.len())),
        "{head}"
    );
    assert_eq!(body, &stored[2..10], "range body");

    let (head, _) = raw_get(addr, &path, &format!("Range: bytes={}-\r\n", stored.len())).await;
    assert!(head.starts_with("http/1.1 416"), "{head}");

    let (head, body) = raw_get(addr, &format!("/index/{}", baked.name), "").await;
    assert!(
        head.starts_with("http/1.1 200") && head.contains("immutable"),
        "{head}"
    );
    assert_eq!(body, baked.index.encode(), "index body");

    for missing in [
        "/index/nope",
        "/index/..",
        &format!("/chunks/{}", "0".repeat(64)),
        "/chunks/xyz",
    ] {
        let (head, _) = raw_get(addr, missing, "").await;
        assert!(head.starts_with("http/1.1 404"), "{missing}: {head}");
    }
}
