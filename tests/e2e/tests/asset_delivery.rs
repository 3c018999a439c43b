//! Asset delivery end to end, every part its own process: a real backend with an asset store
//! (`--assets-dir`), a real zone, and headless Godot clients. Two small `.glb` files (one
//! triangle each, generated here) are uploaded to map `plaza`; the second one's only chunk is
//! then corrupted in the backend's store. A watcher (`scenes/tests/asset_delivery_client.tscn`,
//! which uses `examples/fabric_world/asset_instancer.gd`) joins; two placers
//! (`asset_place_client.tscn`) place one asset each by the `asset_id` the backend listed. The
//! watcher must resolve each instance's 24 visible bits through the map's list, fetch the good
//! asset (progress seen up to its size, verified) and instantiate its glTF scene at the placed
//! position, and must fail the corrupted one with a reason naming the bad chunk and
//! instantiate nothing for it; its cache keeps only the verified chunk.

use std::time::{Duration, Instant};

use fabric_e2e::assets::{http, lines_with, num, triangle_glb, upload, wait_done};
use fabric_e2e::zone_probe::field;
use fabric_e2e::zone_state::start_observed_zone;
use fabric_harness::engine;
use fabric_harness::process::Proc;

const GOOD_AT: [f64; 3] = [2.0, 0.0, 1.0];
const BAD_AT: [f64; 3] = [-2.0, 1.0, 1.0];

#[test]
fn a_placed_glb_is_fetched_verified_and_instantiated_and_a_corrupt_one_is_not() {
    let engine = engine::prepare(false).expect("engine and extension ready");
    let dir = std::env::temp_dir().join(format!("fabric-asset-delivery-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = dir.join("store");
    std::fs::create_dir_all(&store).unwrap();

    let store_arg = store.display().to_string();
    let mut backend =
        fabric_e2e::start_backend_with("127.0.0.1:0", ":memory:", &["--assets-dir", &store_arg])
            .expect("backend starts");
    let be = backend.url.clone();

    // Ann owns map plaza and uploads both assets.
    let json = "application/json";
    let (status, ann) = http(&be, "POST", "/accounts", None, br#"{"name":"ann"}"#, json);
    assert_eq!(status, 201, "{ann}");
    let key = ann["api_key"].as_str().unwrap().to_owned();
    let claim = serde_json::json!({"object": "map:plaza", "relation": "owner",
                                   "subject": format!("user:{}", ann["account_id"].as_str().unwrap())});
    let (status, body) = http(
        &be,
        "POST",
        "/relationships",
        Some(&key),
        claim.to_string().as_bytes(),
        json,
    );
    assert!(status < 300, "claim the map: {status} {body}");
    let upload = |name: &str, glb: &[u8]| upload(&be, &key, "plaza", name, glb);
    let good = upload("tri.glb", &triangle_glb("Tri"));
    let bad = upload("bad.glb", &triangle_glb("Bad"));
    for a in [&good, &bad] {
        let hash = a["hash"].as_str().unwrap();
        assert_eq!(
            a["asset_id"].as_u64(),
            u64::from_str_radix(&hash[..16], 16).ok(),
            "asset_id is the hash's first 8 bytes: {a}"
        );
        assert_eq!(a["chunks"], 1, "a tiny file is one chunk: {a}");
    }
    // A file of one chunk: the chunk's address is the file's hash. Corrupt it in the store.
    let bad_hash = bad["hash"].as_str().unwrap().to_owned();
    let chunk = store
        .join("chunks")
        .join(&bad_hash[..2])
        .join(format!("{bad_hash}.zst"));
    let len = std::fs::metadata(&chunk)
        .unwrap_or_else(|e| panic!("the bad asset's chunk {}: {e}", chunk.display()))
        .len();
    std::fs::write(&chunk, vec![0x5a; len as usize]).unwrap();

    let zone = start_observed_zone(
        &engine,
        &[
            "--zone-id",
            "0",
            "--zone-count",
            "1",
            "--world-bounds",
            "15",
        ],
    )
    .expect("zone starts");
    let url = format!("https://127.0.0.1:{}/wt", zone.port);
    let cache = dir.join("cache").display().to_string();
    let client = |name: &str, scene: &str, extra: &[&str]| {
        let mut args = vec!["--url", &url, "--cert-hash", &zone.cert_hash];
        args.extend_from_slice(&["--spawn", "0,0,1", "--timeout-sec", "90"]);
        args.extend_from_slice(extra);
        Proc::spawn(name, engine.scene_command(scene, &args), true).expect("client starts")
    };
    let mut watcher = client(
        "watcher",
        "res://scenes/tests/asset_delivery_client.tscn",
        &[
            "--backend",
            &be,
            "--map",
            "plaza",
            "--api-key",
            &key,
            "--cache-dir",
            &cache,
            "--expect",
            "2",
        ],
    );
    watcher
        .wait_for_line(|l| l.contains("AD_AVATAR"), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("watcher joined: {e}\n{}", watcher.output()));
    let place = |name: &str, asset: &serde_json::Value, at: [f64; 3]| {
        // Godot's int is signed: the id's 64 bits, as GDScript's int() reads them.
        let id = (asset["asset_id"].as_u64().unwrap() as i64).to_string();
        let at = format!("{},{},{}", at[0], at[1], at[2]);
        client(
            name,
            "res://scenes/tests/asset_place_client.tscn",
            &["--place-asset", &id, "--at", &at],
        )
    };
    let mut placers = [
        place("placer-good", &good, GOOD_AT),
        place("placer-bad", &bad, BAD_AT),
    ];
    let until = Instant::now() + Duration::from_secs(120);
    for p in &placers {
        wait_done(p, "FA_DONE", "FA_FAIL", until);
    }
    wait_done(&watcher, "AD_DONE", "AD_FAIL", until);
    let entity_of = |p: &mut Proc| {
        assert!(p.wait(Duration::from_secs(10)).success(), "{}", p.output());
        let out = p.output();
        num(lines_with(&out, "FA_PLACED ")[0], "entity") as u32
    };
    let good_entity = entity_of(&mut placers[0]);
    let bad_entity = entity_of(&mut placers[1]);
    let status = watcher.wait(Duration::from_secs(10));
    let out = watcher.output();
    assert!(status.success(), "watcher failed:\n{out}");

    // The good asset: progress up to its size, then its scene at the placed position.
    let progress = lines_with(&out, "AD_PROGRESS asset=tri.glb ");
    let size = good["size"].as_f64().unwrap();
    assert!(
        progress
            .iter()
            .any(|l| num(l, "done") == size && num(l, "total") == size),
        "progress reached the whole file ({size} bytes):\n{out}"
    );
    let instanced = lines_with(&out, "AD_INSTANCED ");
    assert_eq!(instanced.len(), 1, "one asset instantiated:\n{out}");
    let line = instanced[0];
    assert_eq!(num(line, "entity") as u32, good_entity, "{line}");
    assert_eq!(field(line, "asset"), Some("tri.glb"), "{line}");
    assert_eq!(
        field(line, "id").and_then(|v| v.parse::<i64>().ok()),
        Some(good["asset_id"].as_u64().unwrap() as i64),
        "FabricAssetFetcher.asset_id_of_hash agrees with the backend's asset_id: {line}"
    );
    assert_eq!(
        field(line, "mesh"),
        Some("Tri"),
        "the glb's own mesh: {line}"
    );
    for (k, axis) in ["x", "y", "z"].iter().enumerate() {
        let err = (num(line, axis) - GOOD_AT[k]).abs();
        assert!(err < 0.01, "{line}: {axis} {err} m off the placed position");
    }

    // The corrupt one: a clear failure naming its chunk, nothing instantiated.
    let failed = lines_with(&out, "AD_FAILED ");
    assert_eq!(failed.len(), 1, "{out}");
    assert_eq!(num(failed[0], "entity") as u32, bad_entity, "{}", failed[0]);
    let reason = field(failed[0], "reason").unwrap_or_default();
    assert!(
        reason.contains("bad.glb")
            && reason.contains(&bad_hash)
            && reason.contains("failed_verification"),
        "reason names the asset and the chunk that failed verification: {reason}"
    );
    assert!(
        !out.contains("asset=bad.glb node="),
        "nothing instantiated from the corrupt asset"
    );
    // The watcher's cache keeps only verified chunks: the good one, not the corrupt one.
    let cached = |hash: &str| {
        dir.join("cache")
            .join("chunks")
            .join(&hash[..2])
            .join(format!("{hash}.zst"))
            .exists()
    };
    assert!(
        cached(good["hash"].as_str().unwrap()),
        "the good chunk is cached"
    );
    assert!(!cached(&bad_hash), "the corrupt chunk is not cached");
    assert!(
        !dir.join("cache").join("files").join(&bad_hash).exists(),
        "no file for the corrupt asset"
    );

    let mut zone = zone;
    zone.proc.stop();
    backend.proc.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
