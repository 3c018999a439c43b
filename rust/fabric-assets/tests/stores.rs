//! One contract, two chunk stores: the same scenario runs against [`DiskStore`] and against
//! [`S3Store`] on a real S3-compatible server (moto's `moto_server`, installed by
//! `scripts/setup-s3.sh` and started on a free loopback port by the test). Each: refuses a chunk
//! that does not match its id, bakes, serves through the real router, is fetched back byte for
//! byte, re-uses chunks for a small change, and a corrupted object in the store is caught by the
//! fetcher's verification with nothing bad cached.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use fabric_assets::{
    ChunkId, ChunkParams, ChunkStore, DiskStore, FetchError, FetchOptions, Index, S3Config,
    S3Store, StoreError, bake, fetch,
};
use fabric_harness::s3::S3Server;
use rusty_s3::S3Action as _;

/// Writes raw bytes into the store under a chunk's name, bypassing its verification (what a
/// disk fault or a tampered bucket does).
type Corrupt = Box<dyn Fn(&ChunkId, Vec<u8>) + Send + Sync>;

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

async fn contract(store: Arc<dyn ChunkStore>, corrupt: Corrupt) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = export_like(1_500_000, 31);
    let (s, d) = (store.clone(), data.clone());
    let baked = blocking(move || {
        // Empty, then a chunk that does not hash to its id is refused and not stored.
        let id = ChunkId::of(b"nothing here");
        assert!(!s.has_chunk(&id), "empty store");
        assert!(s.get_chunk(&id).expect("get").is_none(), "absent chunk");
        assert!(s.get_index("nope").expect("get").is_none(), "absent index");
        let frame = zstd::bulk::compress(b"other bytes", 3).expect("zstd");
        match s.put_chunk(&id, &frame, 11) {
            Err(StoreError::HashMismatch { expected, .. }) => assert_eq!(expected, id),
            other => panic!("expected HashMismatch, got {other:?}"),
        }
        assert!(!s.has_chunk(&id), "a refused chunk is not stored");
        assert!(
            matches!(s.get_index("../x"), Err(StoreError::BadName(_))),
            "index names are one safe segment"
        );
        bake(&d[..], ChunkParams::DEFAULT, &*s).expect("bake")
    })
    .await;
    assert!(baked.new_chunks > 10, "1.5 MB in many chunks");
    let (s, name) = (store.clone(), baked.name.clone());
    let index = blocking(move || s.get_index(&name).expect("get index")).await;
    assert_eq!(
        Index::decode(&index.expect("the index is stored")).expect("decodes"),
        baked.index,
        "the stored index is the baked one"
    );

    let addr = serve(store.clone()).await;
    let cache: Arc<dyn ChunkStore> =
        Arc::new(DiskStore::open(dir.path().join("cache")).expect("cache"));
    let out = dir.path().join("out.glb");
    let url = format!("http://{addr}/index/{}", baked.name);
    let report = fetch(&url, cache, &out, &FetchOptions::default(), |_| {})
        .await
        .expect("fetch");
    assert_eq!(read(&out), data, "fetched back byte for byte");
    assert_eq!(report.fetched_chunks, baked.new_chunks);

    // A small change re-uses all but a few chunks in the store.
    let (s, v2) = (store.clone(), small_change(&data));
    let baked2 = blocking(move || bake(&v2[..], ChunkParams::DEFAULT, &*s).expect("bake v2")).await;
    assert!(
        baked2.new_chunks <= 3 && baked2.reused_chunks + 3 >= baked.new_chunks,
        "new {}, reused {} of {}",
        baked2.new_chunks,
        baked2.reused_chunks,
        baked.new_chunks
    );

    // A corrupted object in the store: the fetcher's verification refuses it, names it, and
    // neither the output nor the cache gets it.
    let victim = baked.index.chunks[1].id;
    let (s, v) = (store.clone(), victim);
    let mut z = blocking(move || s.get_chunk(&v).expect("get").expect("stored")).await;
    let mid = z.len() / 2;
    z[mid] ^= 0xff;
    blocking(move || corrupt(&victim, z)).await;
    let cache2 = Arc::new(DiskStore::open(dir.path().join("cache2")).expect("cache"));
    let out2 = dir.path().join("out2.glb");
    let quick = FetchOptions {
        attempts: 2,
        backoff: Duration::from_millis(5),
        ..FetchOptions::default()
    };
    let err = fetch(&url, cache2.clone(), &out2, &quick, |_| {})
        .await
        .expect_err("a corrupt object fails the fetch");
    match err {
        FetchError::BadChunk { id, .. } => assert_eq!(id, victim, "names the corrupt chunk"),
        other => panic!("expected BadChunk, got {other}"),
    }
    assert!(!out2.exists(), "no output from a failed fetch");
    assert!(
        !cache2.has_chunk(&victim),
        "the corrupt chunk is not cached"
    );

    // Removing is idempotent.
    let s = store.clone();
    blocking(move || {
        s.remove_chunk(&victim).expect("remove");
        assert!(!s.has_chunk(&victim), "removed");
        s.remove_chunk(&victim)
            .expect("removing an absent chunk is fine");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disk_store_keeps_the_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(DiskStore::open(dir.path()).expect("store"));
    let s = store.clone();
    let corrupt: Corrupt = Box::new(move |id, bytes| {
        std::fs::write(s.chunk_path(id), bytes).expect("overwrite the chunk file")
    });
    contract(store, corrupt).await;
}

fn s3_config(server: &S3Server, bucket: &str) -> S3Config {
    S3Config {
        endpoint: server.endpoint.clone(),
        bucket: bucket.to_owned(),
        region: "us-east-1".to_owned(),
        access_key: "fabric-test".to_owned(),
        secret_key: "fabric-test-secret".to_owned(),
        timeout: Duration::from_secs(30),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_store_keeps_the_contract_on_a_real_s3_server() {
    let server = S3Server::start().expect("an S3-compatible server (scripts/setup-s3.sh)");
    let config = s3_config(&server, "fabric-assets");
    let missing = S3Store::open(&config).expect_err("the bucket does not exist yet");
    assert!(
        missing.to_string().contains("no such bucket"),
        "a clear start-up error: {missing}"
    );
    S3Store::create_bucket(&config).expect("create the bucket");
    let store = Arc::new(S3Store::open(&config).expect("open the bucket"));
    let corrupt: Corrupt = Box::new(move |id, bytes| {
        // An unverified PUT straight to the bucket, as a tampered object would be.
        let bucket = rusty_s3::Bucket::new(
            config.endpoint.parse().expect("url"),
            rusty_s3::UrlStyle::Path,
            config.bucket.clone(),
            config.region.clone(),
        )
        .expect("bucket");
        let creds = rusty_s3::Credentials::new(&config.access_key, &config.secret_key);
        let key = format!("chunks/{}.zst", id.to_hex());
        let url = bucket
            .put_object(Some(&creds), &key)
            .sign(Duration::from_secs(60));
        ureq::put(url.as_str())
            .send(&bytes[..])
            .expect("overwrite the object");
    });
    contract(store, corrupt).await;
    drop(server);
}
