//! `FabricAssetFetcher` over HTTPS, every part its own process: a real backend serving its
//! chunk store with `--tls-self-signed`, and headless Godot fetchers
//! (`scenes/tests/asset_fetch_client.tscn`). With the certificate hash the backend printed
//! pinned (`backend_cert_hash`), the asset arrives verified, byte for byte, with progress up
//! to its size; with another hash pinned, the fetch fails naming the mismatch and caches
//! nothing.

use std::time::Duration;

use fabric_e2e::zone_probe::field;
use fabric_harness::engine;
use fabric_harness::process::Proc;

#[test]
fn a_godot_fetcher_takes_an_asset_over_https_only_from_the_pinned_backend() {
    let engine = engine::prepare(false).expect("engine and extension ready");
    let dir = std::env::temp_dir().join(format!("fabric-asset-https-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = dir.join("store");
    let data = fabric_assets::sample::export_like(400_000, 5);
    let baked = fabric_assets::bake(
        &data[..],
        fabric_assets::ChunkParams::DEFAULT,
        &fabric_assets::DiskStore::open(&store).unwrap(),
    )
    .expect("bake into the store the backend serves");

    let (store_arg, tls) = (
        store.display().to_string(),
        dir.join("tls").display().to_string(),
    );
    let extra = ["--assets-dir", &store_arg, "--tls-self-signed", &tls];
    let mut backend =
        fabric_e2e::start_backend_with("127.0.0.1:0", ":memory:", &extra).expect("backend starts");
    assert!(backend.url.starts_with("https://"), "{}", backend.url);
    let url = backend.url.clone();
    let hash = backend.cert_hash.clone().expect("cert_hash printed");

    let fetcher = |name: &str, pin: &str| {
        let cache = dir.join(format!("cache-{name}")).display().to_string();
        let args = [
            "--backend",
            &url,
            "--index",
            &baked.name,
            "--cache-dir",
            &cache,
            "--cert-hash",
            pin,
            "--timeout-sec",
            "60",
        ];
        let cmd = engine.scene_command("res://scenes/tests/asset_fetch_client.tscn", &args);
        Proc::spawn(name, cmd, true).expect("fetcher starts")
    };
    let wrong = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    assert_ne!(hash, wrong);
    let mut good = fetcher("pinned", &hash);
    let mut bad = fetcher("wrong-pin", wrong);

    let status = good.wait(Duration::from_secs(90));
    let out = good.output();
    assert!(status.success(), "fetched over https:\n{out}");
    let done = out
        .lines()
        .find_map(|l| l.find("AF_DONE ").map(|i| &l[i..]))
        .unwrap_or_else(|| panic!("no AF_DONE:\n{out}"));
    let path = field(done, "path").expect("path");
    assert_eq!(std::fs::read(path).unwrap(), data, "the same bytes");
    let total = data.len();
    assert!(
        out.contains(&format!("AF_PROGRESS done={total} total={total}")),
        "progress up to the whole file:\n{out}"
    );

    let status = bad.wait(Duration::from_secs(90));
    let out = bad.output();
    assert!(!status.success(), "another certificate is refused:\n{out}");
    assert!(
        out.contains("AF_FAIL reason=") && out.contains("does_not_match_the_pinned_hash"),
        "the reason names the mismatch:\n{out}"
    );
    let chunks = dir.join("cache-wrong-pin").join("chunks");
    let cached = std::fs::read_dir(&chunks)
        .map(|d| d.flatten().count())
        .unwrap_or(0);
    assert_eq!(cached, 0, "nothing cached from a refused server");

    backend.proc.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
