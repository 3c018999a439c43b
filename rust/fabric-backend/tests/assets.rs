//! Asset upload against a real backend process: permission checked before the body is read,
//! the body streamed to disk within `--max-upload-bytes`, baked into the chunk store, recorded,
//! announced with `asset_baked` to a subscribed zone of the map, and fetched back byte for
//! byte by `fabric_assets::fetch` over HTTP. A small change re-uses most chunks. The same
//! scenario runs with the chunk store in a directory (`--assets-dir`) and in a bucket of a real
//! S3-compatible server (`--assets-s3`, moto started by the test: `fabric_harness::s3`).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{Backend, register, shard_body, subscribe, ws_connect, ws_next};
use fabric_backend::client::Client;
use fabric_backend::model::TupleBody;
use reqwest_free::*;

/// Plain helpers over the backend's raw client (no extra HTTP crate in the tests).
mod reqwest_free {
    use axum::http::Method;
    use fabric_backend::client::{Client, RawResponse};

    pub async fn put(c: &Client, path: &str, key: Option<&str>, body: Vec<u8>) -> RawResponse {
        c.raw(
            Method::PUT,
            path,
            key,
            Some("application/octet-stream"),
            body,
        )
        .await
        .expect("upload request")
    }

    pub async fn get(c: &Client, path: &str, key: Option<&str>) -> RawResponse {
        c.raw(Method::GET, path, key, None, vec![])
            .await
            .expect("get request")
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        TempDir(std::env::temp_dir().join(format!("fabric-{what}-{}", uuid::Uuid::new_v4())))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where the backend under test keeps its chunks.
enum AssetStore {
    /// `--assets-dir`.
    Dir(TempDir),
    /// `--assets-s3` on a real S3-compatible server, with its upload spool.
    S3 {
        server: fabric_harness::s3::S3Server,
        spool: TempDir,
    },
}

const BUCKET: &str = "fabric-assets";

impl AssetStore {
    fn dir() -> AssetStore {
        AssetStore::Dir(TempDir::new("assets"))
    }

    fn s3() -> AssetStore {
        let server = fabric_harness::s3::S3Server::start()
            .expect("an S3-compatible server (scripts/setup-s3.sh)");
        server.create_bucket(BUCKET).expect("create the bucket");
        AssetStore::S3 {
            server,
            spool: TempDir::new("asset-spool"),
        }
    }

    /// Starts a backend on this store with `extra` options.
    fn backend(&self, extra: &[&str]) -> Backend {
        match self {
            AssetStore::Dir(dir) => {
                let mut args = vec!["--assets-dir", dir.0.to_str().unwrap()];
                args.extend_from_slice(extra);
                Backend::spawn(&args)
            }
            AssetStore::S3 { server, spool } => {
                let mut args = vec![
                    "--assets-s3",
                    &server.endpoint,
                    "--assets-bucket",
                    BUCKET,
                    "--assets-spool",
                    spool.0.to_str().unwrap(),
                ];
                args.extend_from_slice(extra);
                Backend::spawn_env(
                    &args,
                    &[
                        ("AWS_ACCESS_KEY_ID", "fabric-test"),
                        ("AWS_SECRET_ACCESS_KEY", "fabric-test-secret"),
                    ],
                )
            }
        }
    }

    /// Objects stored under `chunks`, `index`, or bodies waiting in `uploads` (the spool).
    fn count(&self, sub: &str) -> usize {
        match (self, sub) {
            (AssetStore::Dir(dir), _) => count(&dir.0, sub),
            (AssetStore::S3 { spool, .. }, "uploads") => count(&spool.0, ""),
            (AssetStore::S3 { server, .. }, _) => server
                .keys(BUCKET, &format!("{sub}/"))
                .expect("list the bucket")
                .len(),
        }
    }
}

/// Files under `dir/sub`, at any depth (0 when it does not exist).
fn count(dir: &Path, sub: &str) -> usize {
    fn walk(p: &Path) -> usize {
        std::fs::read_dir(p).map_or(0, |d| {
            d.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
    }
    walk(&dir.join(sub))
}

async fn account(c: &Client, name: &str) -> (String, String) {
    let a = c.create_account(name).await.expect("account");
    (a.account_id, a.api_key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_baked_announced_and_fetched_back_exactly() {
    upload_bake_announce_fetch(AssetStore::dir()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_with_the_chunks_in_an_s3_bucket() {
    upload_bake_announce_fetch(AssetStore::s3()).await;
}

async fn upload_bake_announce_fetch(store: AssetStore) {
    let scratch = TempDir::new("asset-out");
    std::fs::create_dir_all(&scratch.0).unwrap();
    let be = store.backend(&["--max-upload-bytes", "3000000"]);
    let c = be.client();
    let (ann_id, ann) = account(&c, "ann").await;
    let (_, bob) = account(&c, "bob").await;
    // A zone of the map, with a subscriber listening on its topic.
    let zone = register(&c, &ann, &shard_body("plaza-1")).await;
    let mut ws = ws_connect(&be.addr).await;
    subscribe(&mut ws, &format!("zone:{}", zone.id)).await;

    let v1 = fabric_assets::sample::export_like(2_000_000, 7);
    // Nobody may upload to a map they hold nothing on: refused before the body is stored.
    let r = put(&c, "/maps/plaza/assets/hall.glb", Some(&bob), v1.clone()).await;
    assert_eq!(r.status.as_u16(), 403, "{:?}", r.json());
    assert_eq!(r.error_code().as_deref(), Some("forbidden"));
    let r = put(&c, "/maps/plaza/assets/hall.glb", None, v1.clone()).await;
    assert_eq!(r.status.as_u16(), 401);
    assert_eq!(
        (store.count("chunks"), store.count("index")),
        (0, 0),
        "nothing stored"
    );

    // Ann claims the map and uploads.
    let claim = TupleBody {
        object: "map:plaza".into(),
        relation: "owner".into(),
        subject: format!("user:{ann_id}"),
    };
    c.add_tuple(&ann, &claim).await.expect("claim the map");
    let r = put(&c, "/maps/plaza/assets/hall.glb", Some(&ann), v1.clone()).await;
    assert_eq!(r.status.as_u16(), 201, "{:?}", r.json());
    let baked = r.json();
    let hash = baked["asset"]["hash"].as_str().unwrap().to_owned();
    assert_eq!(
        hash,
        fabric_assets::ChunkId::of(&v1).to_hex(),
        "named by the file's BLAKE3"
    );
    assert_eq!(baked["asset"]["size"], v1.len() as u64);
    assert_eq!(baked["asset"]["uploader"], ann_id.as_str());
    assert_eq!(baked["notified"], 1, "the map's subscribed zone was told");
    let new1 = baked["new_chunks"].as_u64().unwrap();
    assert!(new1 >= 10, "2 MB in ~64 KiB chunks: {new1}");
    assert_eq!(
        store.count("chunks") as u64,
        new1,
        "each new chunk stored once"
    );
    assert_eq!(store.count("uploads"), 0, "the body in transit is gone");

    // The zone's subscriber hears it.
    let push = ws_next(&mut ws).await;
    assert_eq!(push["type"], "asset_baked", "{push}");
    assert_eq!(push["asset"]["hash"], hash.as_str());
    assert_eq!(push["asset"]["name"], "hall.glb");

    // Fetched back over HTTP, every chunk verified, byte for byte.
    let out = scratch.0.join("fetched-1");
    let cache = TempDir::new("asset-cache");
    let cache_store: Arc<dyn fabric_assets::ChunkStore> =
        Arc::new(fabric_assets::DiskStore::open(&cache.0).unwrap());
    let url = format!(
        "http://{}{}",
        be.addr,
        baked["asset"]["baked_url"].as_str().unwrap()
    );
    let report = fabric_assets::fetch(
        &url,
        cache_store.clone(),
        &out,
        &fabric_assets::FetchOptions::default(),
        |_| {},
    )
    .await
    .expect("fetch the baked asset");
    assert_eq!(std::fs::read(&out).unwrap(), v1, "the same bytes come back");
    assert_eq!(report.fetched_chunks as u64, new1);

    // A small change: most chunks are re-used by the bake and by the fetcher's cache.
    let v2 = fabric_assets::sample::small_change(&v1);
    let r = put(&c, "/maps/plaza/assets/hall.glb", Some(&ann), v2.clone()).await;
    assert_eq!(r.status.as_u16(), 201);
    let baked2 = r.json();
    let (new2, reused2) = (
        baked2["new_chunks"].as_u64().unwrap(),
        baked2["reused_chunks"].as_u64().unwrap(),
    );
    assert!(
        new2 <= 3 && reused2 >= new1 - 3,
        "new {new2}, reused {reused2} of {new1}"
    );
    let url2 = format!(
        "http://{}{}",
        be.addr,
        baked2["asset"]["baked_url"].as_str().unwrap()
    );
    let out2 = scratch.0.join("fetched-2");
    let report2 = fabric_assets::fetch(
        &url2,
        cache_store,
        &out2,
        &fabric_assets::FetchOptions::default(),
        |_| {},
    )
    .await
    .expect("fetch the new version");
    assert_eq!(std::fs::read(&out2).unwrap(), v2);
    assert!(
        report2.fetched_chunks as u64 <= new2,
        "only the changed chunks travel"
    );
    let push = ws_next(&mut ws).await;
    assert_eq!(push["asset"]["hash"], baked2["asset"]["hash"]);

    // The listing holds the current version once.
    let list = get(&c, "/maps/plaza/assets", Some(&bob)).await.json();
    let assets = list["assets"].as_array().unwrap();
    assert_eq!(assets.len(), 1, "{list}");
    assert_eq!(assets[0]["hash"], baked2["asset"]["hash"]);
    let first8: [u8; 8] = fabric_assets::ChunkId::of(&v2).0[..8].try_into().unwrap();
    assert_eq!(
        assets[0]["asset_id"].as_u64(),
        Some(u64::from_be_bytes(first8)),
        "the id to place it by: the file hash's first 8 bytes, big-endian"
    );
    assert_eq!(baked2["asset"]["asset_id"], assets[0]["asset_id"]);

    // Over the limit: 413, and nothing of it stays on disk.
    let (chunks, indexes) = (store.count("chunks"), store.count("index"));
    let big = fabric_assets::sample::export_like(3_200_000, 9);
    let r = put(&c, "/maps/plaza/assets/big.glb", Some(&ann), big).await;
    assert_eq!(r.status.as_u16(), 413, "{:?}", r.json());
    assert_eq!(r.error_code().as_deref(), Some("upload_too_large"));
    assert_eq!(store.count("uploads"), 0, "the partial body is removed");
    assert_eq!(
        (store.count("chunks"), store.count("index")),
        (chunks, indexes)
    );

    // Bad names and empty bodies are refused with the field named.
    for (path, field) in [
        ("/maps/plaza/assets/..", "name"),
        ("/maps/pla%20za/assets/x", "map"),
        ("/maps/plaza/assets/empty", "body"),
    ] {
        let r = put(&c, path, Some(&ann), vec![]).await;
        assert_eq!(r.status.as_u16(), 422, "{path}: {:?}", r.json());
        let msg = r.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(msg.starts_with(field), "{path}: {msg}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_refused_clearly_without_an_asset_store() {
    let be = Backend::spawn(&[]);
    let c = be.client();
    let (_, key) = account(&c, "ann").await;
    let r = put(&c, "/maps/plaza/assets/hall.glb", Some(&key), vec![1, 2, 3]).await;
    assert_eq!(r.status.as_u16(), 503);
    assert_eq!(r.error_code().as_deref(), Some("assets_disabled"));
    let msg = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("--assets-dir"), "{msg}");
}

/// The fetcher over HTTPS: a backend serving its asset routes with `--tls-self-signed` (in this
/// process), the chunks fetched with the certificate pinned by the hash the backend prints;
/// without a pin, with a wrong pin, or over plain HTTP, the fetch fails clearly and stores
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fetcher_speaks_https_to_a_pinned_backend() {
    let dir = TempDir::new("assets-tls");
    let mut config = fabric_backend::Config::new("127.0.0.1:0".parse().unwrap(), ":memory:");
    config.assets_dir = Some(dir.0.join("store"));
    config.tls_self_signed = Some(dir.0.join("tls"));
    let bound = fabric_backend::Bound::bind(&config).await.expect("bind");
    let (addr, hash) = (bound.local_addr(), bound.cert_hash().unwrap().to_owned());
    assert_eq!(bound.scheme(), "https");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(bound.serve(async {
        let _ = stopped.await;
    }));
    // An asset in the store the backend serves.
    let data = fabric_assets::sample::export_like(600_000, 3);
    let store = fabric_assets::DiskStore::open(dir.0.join("store")).unwrap();
    let baked =
        fabric_assets::bake(&data[..], fabric_assets::ChunkParams::DEFAULT, &store).expect("bake");

    let url = format!("https://{addr}/assets/index/{}", baked.name);
    let pin = fabric_assets::CertHash::parse(&hash).expect("the printed hash parses");
    let fetch = |pins: Vec<fabric_assets::CertHash>, url: String, out: &'static str| {
        let dir = dir.0.clone();
        async move {
            let cache =
                Arc::new(fabric_assets::DiskStore::open(dir.join(format!("cache-{out}"))).unwrap());
            let options = fabric_assets::FetchOptions {
                cert_pins: pins,
                attempts: 2,
                backoff: std::time::Duration::from_millis(5),
                ..fabric_assets::FetchOptions::default()
            };
            let r =
                fabric_assets::fetch(&url, cache.clone(), &dir.join(out), &options, |_| {}).await;
            (r, cache)
        }
    };
    let (report, _) = fetch(vec![pin], url.clone(), "ok").await;
    let report = report.expect("fetched over https with the pinned certificate");
    assert_eq!(
        std::fs::read(dir.0.join("ok")).unwrap(),
        data,
        "byte for byte"
    );
    assert_eq!(report.fetched_chunks, baked.index.chunks.len());

    let (unpinned, _) = fetch(vec![], url.clone(), "unpinned").await;
    let e = unpinned.expect_err("https needs a pin").to_string();
    assert!(e.contains("no certificate hash is pinned"), "{e}");

    let wrong = fabric_assets::CertHash([7; 32]);
    let (mismatch, cache) = fetch(vec![wrong], url.clone(), "wrong").await;
    match mismatch.expect_err("another certificate is refused") {
        fabric_assets::FetchError::Http {
            reason, attempts, ..
        } => {
            assert!(
                reason.contains("does not match the pinned hash"),
                "{reason}"
            );
            assert_eq!(attempts, 1, "a wrong certificate is not retried");
        }
        other => panic!("expected an HTTP error, got {other}"),
    }
    assert!(!dir.0.join("wrong").exists(), "no output");
    assert!(
        baked
            .index
            .chunks
            .iter()
            .all(|c| !fabric_assets::ChunkStore::has_chunk(&*cache, &c.id)),
        "nothing cached from a refused server"
    );

    let plain = format!("http://{addr}/assets/index/{}", baked.name);
    let (r, _) = fetch(vec![], plain, "plain").await;
    assert!(r.is_err(), "plain http to an https backend fails");

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
