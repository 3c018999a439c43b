//! Asset delivery benchmark (issue 13, part 5): two versions of a Godot-export-like file with a
//! small change between them, served on loopback, fetched four ways; prints bytes transferred and
//! time to a ready (written and hash-checked) file as a Markdown table.
//!
//! `cargo run --release -p fabric-assets --example delivery_bench [-- FILE]`: with FILE, its
//! bytes are version 1 instead of the generated 48 MiB export.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::routing::get;
use fabric_assets::sample::{export_like, small_change};
use fabric_assets::{
    ChunkId, ChunkParams, DiskStore, FetchOptions, HttpClient, bake, fetch, router,
};

const RUNS: usize = 5;

struct Row {
    name: &'static str,
    bytes: u64,
    times: Vec<Duration>,
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn download(client: &mut HttpClient, path: &str) -> anyhow::Result<Vec<u8>> {
    Ok(client.get(path, 1 << 34).await?.body)
}

fn write_checked(out: &Path, data: &[u8], expected: ChunkId) -> anyhow::Result<()> {
    anyhow::ensure!(
        ChunkId::of(data) == expected,
        "downloaded file does not hash to v2"
    );
    let tmp = out.with_extension("part");
    std::fs::write(&tmp, data)?;
    std::fs::rename(tmp, out)?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let v1 = match std::env::args().nth(1) {
        Some(path) => std::fs::read(&path)?,
        None => export_like(48 << 20, 2026),
    };
    let v2 = small_change(&v1);
    let v2_hash = ChunkId::of(&v2);
    let dir = tempfile::tempdir()?;
    let store = Arc::new(DiskStore::open(dir.path().join("store"))?);
    let t = Instant::now();
    let b1 = bake(&v1[..], ChunkParams::DEFAULT, store.as_ref())?;
    let bake_time = t.elapsed();
    let b2 = bake(&v2[..], ChunkParams::DEFAULT, store.as_ref())?;
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files)?;
    std::fs::write(files.join("v2.pck"), &v2)?;
    let t = Instant::now();
    let whole = zstd::bulk::compress(&v2, 9)?;
    let whole_time = t.elapsed();
    std::fs::write(files.join("v2.pck.zst"), &whole)?;

    let app =
        router(store).merge(
            axum::Router::new()
                .route(
                    "/files/{name}",
                    get(
                        |State(dir): State<Arc<std::path::PathBuf>>,
                         UrlPath(name): UrlPath<String>| async move {
                            std::fs::read(dir.join(name))
                                .map_err(|_| axum::http::StatusCode::NOT_FOUND)
                        },
                    ),
                )
                .with_state(Arc::new(files)),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    let base = format!("http://{addr}");
    let out = dir.path().join("out.pck");

    let mut rows = vec![
        Row {
            name: "plain download",
            bytes: 0,
            times: vec![],
        },
        Row {
            name: "whole-file zstd (level 9)",
            bytes: 0,
            times: vec![],
        },
        Row {
            name: "chunked, cold cache",
            bytes: 0,
            times: vec![],
        },
        Row {
            name: "chunked, warm cache (v1 chunks)",
            bytes: 0,
            times: vec![],
        },
    ];
    let opts = FetchOptions::default();
    for run in 0..RUNS {
        let mut client = HttpClient::new(&base)?;
        let t = Instant::now();
        let body = download(&mut client, "/files/v2.pck").await?;
        write_checked(&out, &body, v2_hash)?;
        rows[0].times.push(t.elapsed());
        rows[0].bytes = body.len() as u64;

        let mut client = HttpClient::new(&base)?;
        let t = Instant::now();
        let body = download(&mut client, "/files/v2.pck.zst").await?;
        let data = zstd::bulk::decompress(&body, v2.len())?;
        write_checked(&out, &data, v2_hash)?;
        rows[1].times.push(t.elapsed());
        rows[1].bytes = body.len() as u64;

        let cold = Arc::new(DiskStore::open(dir.path().join(format!("cold{run}")))?);
        let t = Instant::now();
        let r = fetch(
            &format!("{base}/index/{}", b2.name),
            cold,
            &out,
            &opts,
            |_| {},
        )
        .await?;
        rows[2].times.push(t.elapsed());
        rows[2].bytes = r.bytes_downloaded;

        let warm = Arc::new(DiskStore::open(dir.path().join(format!("warm{run}")))?);
        let v1_out = dir.path().join("v1.pck");
        fetch(
            &format!("{base}/index/{}", b1.name),
            warm.clone(),
            &v1_out,
            &opts,
            |_| {},
        )
        .await?;
        let t = Instant::now();
        let r = fetch(
            &format!("{base}/index/{}", b2.name),
            warm,
            &out,
            &opts,
            |_| {},
        )
        .await?;
        rows[3].times.push(t.elapsed());
        rows[3].bytes = r.bytes_downloaded;
        anyhow::ensure!(std::fs::read(&out)? == v2, "warm fetch rebuilt v2");
    }

    println!(
        "v1 {} bytes, v2 {} bytes; {} chunks (avg {} KiB), {} chunks new in v2; bake {:.0} ms, whole-file zstd -9 {:.0} ms; median of {RUNS} runs, loopback",
        v1.len(),
        v2.len(),
        b2.index.chunks.len(),
        v2.len() / b2.index.chunks.len().max(1) / 1024,
        b2.new_chunks,
        bake_time.as_secs_f64() * 1e3,
        whole_time.as_secs_f64() * 1e3,
    );
    println!();
    println!("| method | bytes transferred | % of file | time to ready (ms) |");
    println!("|---|---:|---:|---:|");
    for row in &mut rows {
        let t = median(&mut row.times);
        println!(
            "| {} | {} | {:.1} | {:.1} |",
            row.name,
            row.bytes,
            row.bytes as f64 * 100.0 / v2.len() as f64,
            t.as_secs_f64() * 1e3
        );
    }
    Ok(())
}
