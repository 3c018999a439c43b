//! Shared helpers of the integration tests: deterministic Godot-export-like data, a baked store
//! served by the real router on a loopback port, and a raw HTTP/1.1 request helper.
#![allow(dead_code, unused_imports)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use fabric_assets::{BakeReport, ChunkParams, ChunkStore, DiskStore, bake, router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use fabric_assets::sample::{export_like, small_change};

/// Bakes `data` into `store` with the default parameters.
pub fn bake_bytes(data: &[u8], store: &DiskStore) -> BakeReport {
    bake(data, ChunkParams::DEFAULT, store).expect("bake")
}

/// Serves `store` with the crate's router on 127.0.0.1:0; returns the address.
pub async fn serve(store: Arc<dyn ChunkStore>) -> SocketAddr {
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
