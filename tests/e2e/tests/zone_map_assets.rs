//! A registered zone takes its placeable assets from the backend, every part its own process:
//! a real backend with an asset store, a real zone registered on map `plaza` (no `--assets`),
//! and headless Godot players holding join tokens. An asset uploaded before the zone started is
//! known from the map's list; one uploaded while the zone runs becomes known through the
//! `asset_baked` push and is placeable; an id the backend never listed is refused with
//! `unknown_asset`.

use std::time::Duration;

use fabric_e2e::assets::{triangle_glb, upload};
use fabric_e2e::zone_probe::field;
use fabric_e2e::{backend_request, start_backend_with, start_registered_zone_with};
use fabric_harness::engine;
use fabric_harness::process::Proc;

fn known(line: &str) -> u64 {
    field(line, "known")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no known= in {line:?}"))
}

#[test]
fn an_asset_baked_after_the_zone_started_is_placeable_and_an_unknown_one_is_refused() {
    let engine = engine::prepare(false).expect("engine and extension ready");
    let dir = std::env::temp_dir().join(format!("fabric-zone-map-assets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = dir.display().to_string();
    let mut backend =
        start_backend_with("127.0.0.1:0", ":memory:", &["--assets-dir", &store]).unwrap();
    let be = backend.url.trim_end_matches('/').to_owned();

    let account = |name: &str| {
        let body = serde_json::json!({ "name": name });
        let (status, a) = backend_request(&be, "POST", "/accounts", None, Some(body)).unwrap();
        assert_eq!(status, 201, "{a}");
        a
    };
    // Ann owns map plaza, runs its zone and uploads one asset before the zone starts.
    let ann = account("ann");
    let key = ann["api_key"].as_str().unwrap().to_owned();
    let claim = serde_json::json!({"object": "map:plaza", "relation": "owner",
        "subject": format!("user:{}", ann["account_id"].as_str().unwrap())});
    let (status, body) =
        backend_request(&be, "POST", "/relationships", Some(&key), Some(claim)).unwrap();
    assert!(status < 300, "claim the map: {status} {body}");
    let early = upload(&be, &key, "plaza", "early.glb", &triangle_glb("Early"));

    let (mut zone, shard) = start_registered_zone_with(
        &engine,
        0,
        0,
        &be,
        &key,
        &[
            "--map",
            "plaza",
            "--zone-count",
            "1",
            "--world-bounds",
            "15",
        ],
    )
    .expect("zone registers");
    let line = zone
        .proc
        .wait_for_line(
            |l| l.starts_with("FABRIC_ZONE_ASSETS") && known(l) >= 1,
            Duration::from_secs(30),
        )
        .expect("the zone reads the map's list");
    assert_eq!(known(&line), 1, "the one asset listed: {line}");
    assert_eq!(field(&line, "map"), Some("plaza"), "{line}");

    // Uploaded while the zone runs: the push makes it known.
    let late = upload(&be, &key, "plaza", "late.glb", &triangle_glb("Late"));
    let line = zone
        .proc
        .wait_for_line(
            |l| l.starts_with("FABRIC_ZONE_ASSETS") && known(l) >= 2,
            Duration::from_secs(30),
        )
        .expect("the zone hears asset_baked");
    assert_eq!(known(&line), 2, "{line}");

    // A player with a join token for the zone places the late asset, then an unknown id.
    let pat = account("pat");
    let pat_key = pat["api_key"].as_str().unwrap();
    let url = format!("https://127.0.0.1:{}/wt", zone.port);
    let place = |name: &str, id: i64| {
        let (status, body) = backend_request(
            &be,
            "POST",
            "/tokens/join",
            Some(pat_key),
            Some(serde_json::json!({"zone_id": shard})),
        )
        .unwrap();
        assert_eq!(status, 200, "join token: {body}");
        let token = body["token"].as_str().unwrap().to_owned();
        let id = id.to_string();
        let args = [
            "--url",
            &url,
            "--cert-hash",
            &zone.cert_hash,
            "--token",
            &token,
            "--spawn",
            "0,0,1",
            "--place-asset",
            &id,
            "--at",
            "1,0,1",
            "--timeout-sec",
            "60",
        ];
        let cmd = engine.scene_command("res://scenes/tests/asset_place_client.tscn", &args);
        Proc::spawn(name, cmd, true).expect("player starts")
    };
    // Godot's int is signed: the id's 64 bits, as GDScript's int() reads them.
    let id_of = |a: &serde_json::Value| a["asset_id"].as_u64().unwrap() as i64;
    let mut good = place("placer-late", id_of(&late));
    let unknown = id_of(&late) ^ 1;
    assert_ne!(unknown, id_of(&early));
    let mut bad = place("placer-unknown", unknown);

    let ok = good.wait(Duration::from_secs(90));
    let out = good.output();
    assert!(ok.success(), "the late asset is placed:\n{out}");
    assert!(out.contains("FA_PLACED "), "{out}");
    let refused = bad.wait(Duration::from_secs(90));
    let out = bad.output();
    assert!(!refused.success(), "an unknown id is not placed:\n{out}");
    assert!(
        out.contains("FA_REFUSED ") && out.contains("reason=unknown_asset"),
        "refused as unknown_asset:\n{out}"
    );

    zone.proc.stop();
    backend.proc.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
