//! Shared helpers of the integration tests: deterministic Godot-export-like data, a baked store
//! served by the real router on a loopback port, and a raw HTTP/1.1 request helper.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use fabric_assets::{BakeReport, ChunkParams, DiskStore, bake, router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `len` bytes that look like a game export: runs of incompressible bytes (textures, audio)
/// between runs of repetitive text (scenes, scripts). Same seed, same bytes.
pub fn export_like(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let run = 4096 + (next() % 60_000) as usize;
        if next() % 10 < 6 {
            for _ in 0..run / 8 {
                out.extend_from_slice(&next().to_le_bytes());
            }
        } else {
            let n = next() % 1000;
            while out.len() < len && run > 0 {
                let line = format!(
                    "[node name=\"Node{n}\" type=\"MeshInstance3D\" parent=\".\"]\nmesh = SubResource(\"{}\")\n",
                    next() % 50
                );
                out.extend_from_slice(line.as_bytes());
                if out.len() % 65_536 < line.len() {
                    break;
                }
            }
        }
    }
    out.truncate(len);
    out
}

/// A copy of `v1` with a few bytes changed near 3/8 of it and 1000 bytes inserted near 3/4.
pub fn small_change(v1: &[u8]) -> Vec<u8> {
    let mut v2 = v1.to_vec();
    let at = v2.len() * 3 / 8;
    for b in &mut v2[at..at + 100] {
        *b = b.wrapping_add(1);
    }
    let at = v2.len() * 3 / 4;
    v2.splice(at..at, std::iter::repeat_n(0x5a, 1000));
    v2
}

/// Bakes `data` into `store` with the default parameters.
pub fn bake_bytes(data: &[u8], store: &DiskStore) -> BakeReport {
    bake(data, ChunkParams::DEFAULT, store).expect("bake")
}

/// Serves `store` with the crate's router on 127.0.0.1:0; returns the address.
pub async fn serve(store: Arc<DiskStore>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router(store)).await });
    addr
}

/// Sends one raw `GET` with extra header lines and returns (status line + headers, body).
pub async fn raw_get(addr: SocketAddr, path: &str, extra: &str) -> (String, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut all = Vec::new();
    s.read_to_end(&mut all).await.expect("read");
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end")
        + 4;
    (
        String::from_utf8_lossy(&all[..split]).to_lowercase(),
        all[split..].to_vec(),
    )
}

/// Reads a file, panicking with its name.
pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}
