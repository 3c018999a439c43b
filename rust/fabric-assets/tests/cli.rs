//! The `fabric-assets` command, as real processes: bake a file, serve the store on a free
//! loopback port, fetch it into another directory; with the store in a directory and in a
//! bucket of a real S3-compatible server (`fabric_harness::s3`).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn bake_serve_fetch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store").display().to_string();
    bake_serve_fetch_on(dir.path(), &["--store", &store], &[]);
}

#[test]
fn bake_serve_fetch_on_s3() {
    let server = fabric_harness::s3::S3Server::start().expect("an S3-compatible server");
    server.create_bucket("fabric-cli").expect("bucket");
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [
        ("AWS_ACCESS_KEY_ID", "fabric-test"),
        ("AWS_SECRET_ACCESS_KEY", "fabric-test-secret"),
    ];
    let args = ["--s3", &server.endpoint, "--bucket", "fabric-cli"];
    bake_serve_fetch_on(dir.path(), &args, &env);
    let keys = server.keys("fabric-cli", "index/").expect("list");
    assert_eq!(keys.len(), 1, "the index is in the bucket: {keys:?}");
}

fn bake_serve_fetch_on(dir: &std::path::Path, store: &[&str], env: &[(&str, &str)]) {
    let exe = env!("CARGO_BIN_EXE_fabric-assets");
    let input = dir.join("game.pck");
    let data = fabric_assets::sample::export_like(600_000, 42);
    std::fs::write(&input, &data).expect("write input");

    let baked = Command::new(exe)
        .arg("bake")
        .arg(&input)
        .args(store)
        .envs(env.iter().copied())
        .output()
        .expect("bake");
    assert!(
        baked.status.success(),
        "bake failed: {}",
        String::from_utf8_lossy(&baked.stderr)
    );
    let name = String::from_utf8(baked.stdout)
        .expect("utf8")
        .trim()
        .to_owned();
    assert_eq!(
        name,
        fabric_assets::ChunkId::of(&data).to_hex(),
        "bake prints the file hash as the index name"
    );

    let mut server = Killed(
        Command::new(exe)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(store)
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .expect("serve"),
    );
    let mut line = String::new();
    BufReader::new(server.0.stderr.take().expect("stderr"))
        .read_line(&mut line)
        .expect("read banner");
    let base = line.trim().rsplit(' ').next().expect("url").to_owned();
    assert!(
        base.starts_with("http://127.0.0.1:"),
        "banner names the address: {line}"
    );

    let out = dir.join("fetched.pck");
    let fetched = Command::new(exe)
        .arg("fetch")
        .arg(format!("{base}/index/{name}"))
        .arg("-o")
        .arg(&out)
        .arg("--cache")
        .arg(dir.join("cache"))
        .output()
        .expect("fetch");
    let stderr = String::from_utf8_lossy(&fetched.stderr);
    assert!(fetched.status.success(), "fetch failed: {stderr}");
    assert_eq!(
        std::fs::read(&out).expect("output"),
        data,
        "fetched file equals the input"
    );
    assert!(
        stderr.contains("0 chunks from cache"),
        "summary line: {stderr}"
    );
}
