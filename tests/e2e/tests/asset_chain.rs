//! The whole asset chain of issue 13, every part its own process: a real backend with an asset
//! store, a real zone registered on map `plaza` (no `--assets`: it follows the map), and three
//! headless Godot players holding join tokens.
//!
//! 1. The zone runs before anything is uploaded; Ann (the map's owner) uploads a `.glb`, the
//!    backend bakes it and pushes `asset_baked`; the zone fetches and verifies its manifest and
//!    only then counts it placeable (`FABRIC_ZONE_ASSETS known=1`).
//! 2. Quinn may join but holds no relation on the map: his CMD_INSTANCE_ASSET is refused with
//!    `place_forbidden`, and nothing is spawned.
//! 3. Pat holds `placer` on `map:plaza`: his join token carries the `place` claim and his
//!    CMD_INSTANCE_ASSET places the asset (`scenes/tests/asset_place_client.tscn`).
//! 4. Wes watches (`scenes/tests/asset_delivery_client.tscn` with
//!    `examples/fabric_world/asset_instancer.gd`): he sees the instance, fetches the asset with
//!    progress up to its size and instantiates its glTF scene at the placed position, and sees
//!    nothing from Quinn.

use std::time::{Duration, Instant};

use fabric_e2e::assets::{http, lines_with, num, triangle_glb, wait_done};
use fabric_e2e::zone_probe::field;
use fabric_e2e::{backend_request, start_backend_with, start_registered_zone_with};
use fabric_harness::engine;
use fabric_harness::process::Proc;

const AT: [f64; 3] = [2.0, 0.0, 1.0];

#[test]
fn upload_announce_verify_place_and_watch_and_a_player_without_the_relation_is_refused() {
    let engine = engine::prepare(false).expect("engine and extension ready");
    let dir = std::env::temp_dir().join(format!("fabric-asset-chain-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = dir.join("store");
    std::fs::create_dir_all(&store).unwrap();
    let store_arg = store.display().to_string();
    let mut backend =
        start_backend_with("127.0.0.1:0", ":memory:", &["--assets-dir", &store_arg]).unwrap();
    let be = backend.url.trim_end_matches('/').to_owned();

    let account = |name: &str| {
        let body = serde_json::json!({ "name": name });
        let (status, a) = backend_request(&be, "POST", "/accounts", None, Some(body)).unwrap();
        assert_eq!(status, 201, "{a}");
        (
            a["api_key"].as_str().unwrap().to_owned(),
            format!("user:{}", a["account_id"].as_str().unwrap()),
        )
    };
    let (ann, ann_user) = account("ann");
    let (pat, pat_user) = account("pat");
    let (quinn, _) = account("quinn");
    let (wes, _) = account("wes");
    let tuple = |relation: &str, subject: &str| {
        let t =
            serde_json::json!({"object": "map:plaza", "relation": relation, "subject": subject});
        let (status, body) =
            backend_request(&be, "POST", "/relationships", Some(&ann), Some(t)).unwrap();
        assert!(status < 300, "{relation} {subject}: {status} {body}");
    };
    tuple("owner", &ann_user);
    tuple("placer", &pat_user);

    let (mut zone, shard) = start_registered_zone_with(
        &engine,
        0,
        0,
        &be,
        &ann,
        &[
            "--map",
            "plaza",
            "--zone-count",
            "1",
            "--world-bounds",
            "15",
            "--stats-every",
            "0.5",
        ],
    )
    .expect("zone registers");
    zone.proc
        .wait_for_line(
            |l| l.starts_with("FABRIC_ZONE_SUBSCRIBED"),
            Duration::from_secs(30),
        )
        .expect("the zone subscribed to its topic");

    // Uploaded while the zone runs: announced, manifest verified, placeable.
    let (status, body) = http(
        &be,
        "PUT",
        "/maps/plaza/assets/tri.glb",
        Some(&ann),
        &triangle_glb("Tri"),
        "application/octet-stream",
    );
    assert_eq!(status, 201, "upload: {body}");
    assert_eq!(
        body["notified"], 1,
        "the zone was told (asset_baked): {body}"
    );
    let asset = body["asset"].clone();
    let line = zone
        .proc
        .wait_for_line(
            |l| l.starts_with("FABRIC_ZONE_ASSETS") && field(l, "known") == Some("1"),
            Duration::from_secs(30),
        )
        .expect("the push made the asset placeable");
    assert_eq!(field(&line, "unplaceable"), Some("0"), "{line}");
    let asset_id = asset["asset_id"].as_u64().unwrap();

    let url = format!("https://127.0.0.1:{}/wt", zone.port);
    let token = |key: &str| {
        let (status, body) = backend_request(
            &be,
            "POST",
            "/tokens/join",
            Some(key),
            Some(serde_json::json!({"zone_id": shard})),
        )
        .unwrap();
        assert_eq!(status, 200, "join token: {body}");
        body["token"].as_str().unwrap().to_owned()
    };
    let client = |name: &str, key: &str, scene: &str, extra: &[&str]| {
        let token = token(key);
        let mut args = vec!["--url", &url, "--cert-hash", &zone.cert_hash];
        args.extend_from_slice(&["--token", &token, "--spawn", "0,0,1", "--timeout-sec", "90"]);
        args.extend_from_slice(extra);
        Proc::spawn(name, engine.scene_command(scene, &args), true).expect("client starts")
    };
    let cache = dir.join("cache").display().to_string();
    let mut watcher = client(
        "watcher",
        &wes,
        "res://scenes/tests/asset_delivery_client.tscn",
        &[
            "--backend",
            &be,
            "--map",
            "plaza",
            "--api-key",
            &wes,
            "--cache-dir",
            &cache,
            "--expect",
            "1",
        ],
    );
    watcher
        .wait_for_line(|l| l.contains("AD_AVATAR"), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("watcher joined: {e}\n{}", watcher.output()));

    // Godot's int is signed: the id's 64 bits, as GDScript's int() reads them.
    let id_arg = (asset_id as i64).to_string();
    let at = format!("{},{},{}", AT[0], AT[1], AT[2]);
    let place = |name: &str, key: &str| {
        client(
            name,
            key,
            "res://scenes/tests/asset_place_client.tscn",
            &["--place-asset", &id_arg, "--at", &at],
        )
    };
    let until = Instant::now() + Duration::from_secs(150);
    // Quinn first: refused, nothing spawned.
    let mut quinn_p = place("placer-quinn", &quinn);
    wait_done(&quinn_p, "FA_DONE", "FA_FAIL", until);
    let status = quinn_p.wait(Duration::from_secs(10));
    let out = quinn_p.output();
    assert!(!status.success(), "quinn placed nothing:\n{out}");
    assert!(
        !out.contains("FA_PLACED "),
        "no acknowledgement for quinn:\n{out}"
    );
    let refused = lines_with(&out, "FA_REFUSED ");
    assert_eq!(refused.len(), 1, "{out}");
    assert_eq!(
        field(refused[0], "reason"),
        Some("place_forbidden"),
        "{out}"
    );
    let stats = zone
        .proc
        .wait_for_line(
            |l| {
                l.starts_with("FABRIC_ZONE_STATS")
                    && field(l, "refused_place_forbidden") == Some("1")
            },
            Duration::from_secs(30),
        )
        .expect("the refusal is counted by its reason");
    assert_eq!(
        field(&stats, "placed"),
        Some("0"),
        "nothing spawned: {stats}"
    );

    // Pat places it; the watcher sees it, fetches it and instantiates it.
    let mut pat_p = place("placer-pat", &pat);
    wait_done(&pat_p, "FA_DONE", "FA_FAIL", until);
    assert!(
        pat_p.wait(Duration::from_secs(10)).success(),
        "pat placed the asset:\n{}",
        pat_p.output()
    );
    let out = pat_p.output();
    let placed = lines_with(&out, "FA_PLACED ");
    assert_eq!(placed.len(), 1, "{out}");
    let entity = num(placed[0], "entity") as u32;
    wait_done(&watcher, "AD_DONE", "AD_FAIL", until);
    let status = watcher.wait(Duration::from_secs(10));
    let out = watcher.output();
    assert!(status.success(), "watcher failed:\n{out}");

    let size = asset["size"].as_f64().unwrap();
    let progress = lines_with(&out, "AD_PROGRESS asset=tri.glb ");
    assert!(
        progress
            .iter()
            .any(|l| num(l, "done") == size && num(l, "total") == size),
        "progress reached the whole file ({size} bytes):\n{out}"
    );
    let instanced = lines_with(&out, "AD_INSTANCED ");
    assert_eq!(instanced.len(), 1, "one instance, pat's:\n{out}");
    let line = instanced[0];
    assert_eq!(num(line, "entity") as u32, entity, "pat's entity: {line}");
    assert_eq!(field(line, "asset"), Some("tri.glb"), "{line}");
    assert_eq!(
        field(line, "id").and_then(|v| v.parse::<i64>().ok()),
        Some(asset_id as i64),
        "the placed asset's id: {line}"
    );
    assert_eq!(
        field(line, "mesh"),
        Some("Tri"),
        "the glb's own mesh: {line}"
    );
    for (k, axis) in ["x", "y", "z"].iter().enumerate() {
        let err = (num(line, axis) - AT[k]).abs();
        assert!(err < 0.01, "{line}: {axis} {err} m off the placed position");
    }
    assert!(lines_with(&out, "AD_FAILED ").is_empty(), "{out}");
    let stats = zone
        .proc
        .wait_for_line(
            |l| l.starts_with("FABRIC_ZONE_STATS") && field(l, "placed") == Some("1"),
            Duration::from_secs(30),
        )
        .expect("one instance in the zone");
    assert_eq!(
        field(&stats, "refused_place_forbidden"),
        Some("1"),
        "{stats}"
    );

    zone.proc.stop();
    backend.proc.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
