//! Asset delivery benchmark (issue 13, part 5): two versions of a Godot-export-like file with a
//! small change between them, served on loopback, fetched four ways; prints bytes transferred and
//! time to a ready (written and hash-checked) file as a Markdown table.
//!
//! `cargo run --release -p fabric-assets --example delivery_bench [-- FILE [--v2 FILE2]]`: with
//! FILE, its bytes are version 1 instead of the generated 48 MiB export; with `--v2`, FILE2 is
//! version 2 (two real exports of a project with a small change between them) instead of
//! FILE with a generated small change.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::HeaderMap;
use axum::routing::get;
use fabric_assets::sample::{export_like, small_change};
use fabric_assets::{
    ChunkId, ChunkParams, ChunkStore, DiskStore, FetchOptions, HttpClient, Index, MAX_INDEX_BYTES,
    bake, fetch, immutable_response, router,
};
use fabric_linksim::netns::SERVER_ADDR;
use fabric_linksim::{LinkConfig, LinkSim};

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

/// zchunk-style delivery: one archive (every chunk's zstd frame back to back, in file order) and
/// the index; the client gets the index, then byte ranges of the archive for the chunks its cache
/// lacks (adjacent ones merged into one range), over plain HTTP with no chunk server.
/// Returns the bytes transferred.
async fn zchunk_fetch(
    base: &str,
    index: &str,
    archive: &str,
    cache: &DiskStore,
    out: &Path,
    v2: ChunkId,
) -> anyhow::Result<u64> {
    let mut client = HttpClient::new(base)?;
    let raw = client
        .get(&format!("/index/{index}"), MAX_INDEX_BYTES)
        .await?
        .body;
    let idx = Index::decode(&raw)?;
    let mut transferred = raw.len() as u64;
    let mut offset = 0u64;
    let mut runs: Vec<(u64, u64, Vec<usize>)> = Vec::new();
    let mut wanted = std::collections::HashSet::new();
    for (i, c) in idx.chunks.iter().enumerate() {
        let start = offset;
        offset += u64::from(c.compressed_size);
        if cache.has_chunk(&c.id) || !wanted.insert(c.id) {
            continue;
        }
        match runs.last_mut() {
            Some((_, end, members)) if *end + 1 == start => {
                *end = offset - 1;
                members.push(i);
            }
            _ => runs.push((start, offset - 1, vec![i])),
        }
    }
    for (start, end, members) in runs {
        let body = client
            .get_range(&format!("/files/{archive}"), start, end, end - start + 1)
            .await?
            .body;
        transferred += body.len() as u64;
        let mut at = 0usize;
        for i in members {
            let c = &idx.chunks[i];
            let frame = &body[at..at + c.compressed_size as usize];
            cache.put_chunk(&c.id, frame, c.size)?;
            at += c.compressed_size as usize;
        }
    }
    let mut data = Vec::with_capacity(idx.file_size as usize);
    for c in &idx.chunks {
        let z = cache
            .get_chunk(&c.id)?
            .ok_or_else(|| anyhow::anyhow!("chunk missing"))?;
        data.extend_from_slice(&zstd::bulk::decompress(&z, c.size as usize)?);
    }
    write_checked(out, &data, v2)?;
    Ok(transferred)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut conditioned = false;
    let mut mib = 48usize;
    let mut file = None;
    let mut file2 = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--conditioned" => conditioned = true,
            "--mib" => {
                mib = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| anyhow::anyhow!("--mib N"))?
            }
            "--v2" => {
                file2 = Some(args.next().ok_or_else(|| anyhow::anyhow!("--v2 FILE"))?);
            }
            _ => file = Some(a),
        }
    }
    let v1 = match file {
        Some(path) => std::fs::read(&path)?,
        None => export_like(mib << 20, 2026),
    };
    let v2 = match file2 {
        Some(path) => std::fs::read(&path)?,
        None => small_change(&v1),
    };
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
    let mut archive = Vec::new();
    for c in &b2.index.chunks {
        archive.extend_from_slice(&store.get_chunk(&c.id)?.expect("baked chunk"));
    }
    std::fs::write(files.join("v2.zck"), &archive)?;

    let app = router(store).merge(
        axum::Router::new()
            .route(
                "/files/{name}",
                get(
                    |State(dir): State<Arc<std::path::PathBuf>>,
                     UrlPath(name): UrlPath<String>,
                     headers: HeaderMap| async move {
                        let bytes = std::fs::read(dir.join(&name))
                            .map_err(|_| axum::http::StatusCode::NOT_FOUND)?;
                        Ok::<_, axum::http::StatusCode>(immutable_response(
                            bytes,
                            &name,
                            "application/octet-stream",
                            &headers,
                        ))
                    },
                ),
            )
            .with_state(Arc::new(files)),
    );
    // Conditioned: the server listens in one network namespace, the client runs in the other,
    // every IP packet between them goes through fabric-linksim (50 ms each way, 2 % loss).
    let mut sim = None;
    let listener = if conditioned {
        fabric_linksim::available()?;
        let cfg = LinkConfig {
            delay: Duration::from_millis(50),
            loss: 0.02,
            ..Default::default()
        };
        let s = LinkSim::start(
            &format!("fad{}", std::process::id() % 100_000),
            cfg.clone(),
            cfg,
            13,
        )?;
        let l = fabric_linksim::in_netns(s.server_ns(), || {
            std::net::TcpListener::bind((SERVER_ADDR, 0))
        })??;
        sim = Some(s);
        l
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")?
    };
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    let base = format!("http://{addr}");
    let runs = if conditioned { 3 } else { RUNS };
    let setup = Arc::new(Setup {
        v2: v2.clone(),
        v2_hash,
        b1: b1.name.clone(),
        b2: b2.name.clone(),
        dir: dir.path().to_owned(),
        base,
        runs,
    });
    let mut rows = match sim.as_ref() {
        Some(s) => {
            let setup = setup.clone();
            fabric_linksim::in_netns(s.client_ns(), move || -> anyhow::Result<Vec<Row>> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(measure(&setup))
            })??
        }
        None => measure(&setup).await?,
    };
    let link = if conditioned {
        "through fabric-linksim, 50 ms each way, 2 % loss, median of 3 runs"
    } else {
        "loopback, median of 5 runs"
    };

    println!(
        "v1 {} bytes, v2 {} bytes; {} chunks (avg {} KiB), {} chunks new in v2; bake {:.0} ms, whole-file zstd -9 {:.0} ms; {link}",
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
    if let Some(mut s) = sim {
        let st = s.stop();
        println!();
        println!(
            "conditioner: client->server {} packets, {} dropped; server->client {} packets, {} dropped",
            st.to_server.link.received,
            st.to_server.link.dropped,
            st.to_client.link.received,
            st.to_client.link.dropped
        );
    }
    Ok(())
}

/// What every measured case needs.
struct Setup {
    v2: Vec<u8>,
    v2_hash: ChunkId,
    b1: String,
    b2: String,
    dir: std::path::PathBuf,
    base: String,
    runs: usize,
}

/// Runs every case `setup.runs` times against the server at `setup.base`.
async fn measure(setup: &Setup) -> anyhow::Result<Vec<Row>> {
    let Setup {
        v2,
        v2_hash,
        b1,
        b2,
        dir,
        base,
        runs,
    } = setup;
    let (v2_hash, dir, base) = (*v2_hash, dir.as_path(), base.as_str());
    let out = dir.join("out.pck");
    let names = [
        "plain download",
        "whole-file zstd (level 9)",
        "chunked, cold cache",
        "chunked, warm cache (v1 chunks)",
        "zchunk-style ranges, cold cache",
        "zchunk-style ranges, warm cache (v1 chunks)",
    ];
    let mut rows: Vec<Row> = names
        .iter()
        .map(|&name| Row {
            name,
            bytes: 0,
            times: vec![],
        })
        .collect();
    let opts = FetchOptions::default();
    for run in 0..*runs {
        let mut client = HttpClient::new(base)?;
        let t = Instant::now();
        let body = download(&mut client, "/files/v2.pck").await?;
        write_checked(&out, &body, v2_hash)?;
        rows[0].times.push(t.elapsed());
        rows[0].bytes = body.len() as u64;

        let mut client = HttpClient::new(base)?;
        let t = Instant::now();
        let body = download(&mut client, "/files/v2.pck.zst").await?;
        let data = zstd::bulk::decompress(&body, v2.len())?;
        write_checked(&out, &data, v2_hash)?;
        rows[1].times.push(t.elapsed());
        rows[1].bytes = body.len() as u64;

        let cold = Arc::new(DiskStore::open(dir.join(format!("cold{run}")))?);
        let t = Instant::now();
        let r = fetch(&format!("{base}/index/{}", b2), cold, &out, &opts, |_| {}).await?;
        rows[2].times.push(t.elapsed());
        rows[2].bytes = r.bytes_downloaded;

        let warm = Arc::new(DiskStore::open(dir.join(format!("warm{run}")))?);
        let v1_out = dir.join("v1.pck");
        fetch(
            &format!("{base}/index/{}", b1),
            warm.clone(),
            &v1_out,
            &opts,
            |_| {},
        )
        .await?;
        let t = Instant::now();
        let r = fetch(&format!("{base}/index/{}", b2), warm, &out, &opts, |_| {}).await?;
        rows[3].times.push(t.elapsed());
        rows[3].bytes = r.bytes_downloaded;
        anyhow::ensure!(std::fs::read(&out)? == *v2, "warm fetch rebuilt v2");

        let cold = DiskStore::open(dir.join(format!("zcold{run}")))?;
        let t = Instant::now();
        rows[4].bytes = zchunk_fetch(base, b2, "v2.zck", &cold, &out, v2_hash).await?;
        rows[4].times.push(t.elapsed());

        let warm = Arc::new(DiskStore::open(dir.join(format!("zwarm{run}")))?);
        fetch(
            &format!("{base}/index/{}", b1),
            warm.clone(),
            &v1_out,
            &opts,
            |_| {},
        )
        .await?;
        let t = Instant::now();
        rows[5].bytes = zchunk_fetch(base, b2, "v2.zck", &warm, &out, v2_hash).await?;
        rows[5].times.push(t.elapsed());
    }

    Ok(rows)
}
