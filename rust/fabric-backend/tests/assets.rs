//! Asset upload against a real backend process: permission checked before the body is read,
//! the body streamed to disk within `--max-upload-bytes`, baked into the chunk store, recorded,
//! announced with `asset_baked` to a subscribed zone of the map, and fetched back byte for
//! byte by `fabric_assets::fetch` over HTTP. A small change re-uses most chunks.

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
    let dir = TempDir::new("assets");
    let be = Backend::spawn(&[
        "--assets-dir",
        dir.0.to_str().unwrap(),
        "--max-upload-bytes",
        "3000000",
    ]);
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
        (count(&dir.0, "chunks"), count(&dir.0, "index")),
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
        count(&dir.0, "chunks") as u64,
        new1,
        "each new chunk stored once"
    );
    assert_eq!(count(&dir.0, "uploads"), 0, "the body in transit is gone");

    // The zone's subscriber hears it.
    let push = ws_next(&mut ws).await;
    assert_eq!(push["type"], "asset_baked", "{push}");
    assert_eq!(push["asset"]["hash"], hash.as_str());
    assert_eq!(push["asset"]["name"], "hall.glb");

    // Fetched back over HTTP, every chunk verified, byte for byte.
    let out = dir.0.join("fetched-1");
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
    let out2 = dir.0.join("fetched-2");
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

    // Over the limit: 413, and nothing of it stays on disk.
    let (chunks, indexes) = (count(&dir.0, "chunks"), count(&dir.0, "index"));
    let big = fabric_assets::sample::export_like(3_200_000, 9);
    let r = put(&c, "/maps/plaza/assets/big.glb", Some(&ann), big).await;
    assert_eq!(r.status.as_u16(), 413, "{:?}", r.json());
    assert_eq!(r.error_code().as_deref(), Some("upload_too_large"));
    assert_eq!(count(&dir.0, "uploads"), 0, "the partial body is removed");
    assert_eq!(
        (count(&dir.0, "chunks"), count(&dir.0, "index")),
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
