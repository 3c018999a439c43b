//! Asset helpers of the end-to-end tests: a tiny `.glb` to upload, one raw HTTP request
//! (an upload's body is not JSON, which [`crate::backend_request`] sends), and readers of the
//! Godot asset clients' `KEY=value` lines.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use fabric_harness::process::Proc;

use crate::zone_probe::field;

/// The number `key=` of a client's line.
pub fn num(line: &str, key: &str) -> f64 {
    field(line, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number {key} in {line:?}"))
}

/// The lines of `text` holding `tag`, each from the tag on (Godot may print a prefix).
pub fn lines_with<'a>(text: &'a str, tag: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.find(tag).map(|i| &l[i..]))
        .collect()
}

/// Waits until `p` printed `done` or `fail` (whichever; the caller reads which), panicking
/// with its output past `until` or when it ended first.
pub fn wait_done(p: &Proc, done: &str, fail: &str, until: Instant) {
    while !p.output().contains(done) && !p.output().contains(fail) {
        assert!(Instant::now() < until, "no {done}:\n{}", p.output());
        assert!(p.group_alive(), "ended early:\n{}", p.output());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A minimal glTF 2.0 binary: one node `node_name` with a one-triangle mesh.
pub fn triangle_glb(node_name: &str) -> Vec<u8> {
    let mut bin = Vec::new();
    for v in [[0.0f32, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]] {
        for c in v {
            bin.extend_from_slice(&c.to_le_bytes());
        }
    }
    let json = serde_json::json!({
        "asset": {"version": "2.0"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": node_name}],
        "meshes": [{"name": node_name, "primitives": [{"attributes": {"POSITION": 0}}]}],
        "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3",
                       "min": [0.0, 0.0, 0.0], "max": [1.0, 1.0, 0.0]}],
        "bufferViews": [{"buffer": 0, "byteLength": bin.len()}],
        "buffers": [{"byteLength": bin.len()}],
    });
    let mut json = json.to_string().into_bytes();
    while !json.len().is_multiple_of(4) {
        json.push(b' ');
    }
    let total = 12 + 8 + json.len() + 8 + bin.len();
    let mut glb = Vec::with_capacity(total);
    glb.extend_from_slice(b"glTF");
    glb.extend_from_slice(&2u32.to_le_bytes());
    glb.extend_from_slice(&(total as u32).to_le_bytes());
    glb.extend_from_slice(&(json.len() as u32).to_le_bytes());
    glb.extend_from_slice(b"JSON");
    glb.extend_from_slice(&json);
    glb.extend_from_slice(&(bin.len() as u32).to_le_bytes());
    glb.extend_from_slice(b"BIN\0");
    glb.extend_from_slice(&bin);
    glb
}

/// One HTTP/1.1 request over a plain socket (the upload's raw body is not JSON, which the
/// harness's helper sends): status and parsed JSON body.
pub fn http(
    base: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &[u8],
    content_type: &str,
) -> (u16, serde_json::Value) {
    let authority = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(authority).expect("backend reachable");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n{auth}\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).expect("an answer");
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status");
    (status, serde_json::from_str(body).unwrap_or_default())
}

/// Uploads `bytes` as asset `name` of `map` with the API key `key`; the baked `asset` record.
pub fn upload(be: &str, key: &str, map: &str, name: &str, bytes: &[u8]) -> serde_json::Value {
    let path = format!("/maps/{map}/assets/{name}");
    let (status, body) = http(
        be,
        "PUT",
        &path,
        Some(key),
        bytes,
        "application/octet-stream",
    );
    assert_eq!(status, 201, "upload {name}: {body}");
    body["asset"].clone()
}
