//! A registered zone takes its placeable assets from the backend, every part its own process:
//! a real backend with an asset store, a real zone registered on map `plaza` (no `--assets`),
//! and headless Godot players holding join tokens. An asset uploaded before the zone started is
//! known from the map's list; one uploaded while the zone runs becomes known through the
//! `asset_baked` push and is placeable; an id the backend never listed is refused with
//! `unknown_asset`. The zone fetches and verifies each asset's manifest first: one whose index
//! was damaged in the store stays unplaceable, with a line naming it. Only a player holding a
//! `placer` relation on the map may place: another player's placement is refused with
//! `place_forbidden` and spawns nothing.

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
    // Its manifest damaged in the store (one byte of the whole-file hash): listed, never placeable.
    let broken = upload(&be, &key, "plaza", "broken.glb", &triangle_glb("Broken"));
    let broken_hash = broken["hash"].as_str().unwrap();
    let index = dir.join("index").join(broken_hash);
    let mut bytes = std::fs::read(&index)
        .unwrap_or_else(|e| panic!("the broken asset's index {}: {e}", index.display()));
    bytes[40] ^= 0xff;
    std::fs::write(&index, bytes).unwrap();

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
            "--stats-every",
            "0.5",
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
    assert_eq!(known(&line), 1, "the one sound asset listed: {line}");
    assert_eq!(field(&line, "map"), Some("plaza"), "{line}");
    // Both checks run at once: the line may have come before the one awaited above.
    let is_bad_line = |l: &str| l.contains("asset broken.glb") && l.contains("not placeable");
    if !zone.proc.output().lines().any(is_bad_line) {
        zone.proc
            .wait_for_line(is_bad_line, Duration::from_secs(30))
            .expect("the zone names the asset whose manifest fails");
    }
    let out = zone.proc.output();
    let bad_line = out.lines().find(|l| is_bad_line(l)).unwrap();
    assert!(
        bad_line.contains("failed verification") && bad_line.contains(broken_hash),
        "{bad_line}"
    );

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

    // Pat may place (a placer of the map); Quinn may join but not place.
    let pat = account("pat");
    let pat_key = pat["api_key"].as_str().unwrap().to_owned();
    let quinn = account("quinn");
    let quinn_key = quinn["api_key"].as_str().unwrap().to_owned();
    let grant = serde_json::json!({"object": "map:plaza", "relation": "placer",
        "subject": format!("user:{}", pat["account_id"].as_str().unwrap())});
    let (status, body) =
        backend_request(&be, "POST", "/relationships", Some(&key), Some(grant)).unwrap();
    assert!(status < 300, "grant placer: {status} {body}");
    let url = format!("https://127.0.0.1:{}/wt", zone.port);
    let place = |name: &str, who: &str, id: i64| {
        let (status, body) = backend_request(
            &be,
            "POST",
            "/tokens/join",
            Some(who),
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
    let mut good = place("placer-late", &pat_key, id_of(&late));
    let unknown = id_of(&late) ^ 1;
    assert_ne!(unknown, id_of(&early));
    let mut bad = place("placer-unknown", &pat_key, unknown);
    let mut forbidden = place("placer-forbidden", &quinn_key, id_of(&late));
    let mut unverified = place("placer-broken", &pat_key, id_of(&broken));

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
    let refused = unverified.wait(Duration::from_secs(90));
    let out = unverified.output();
    assert!(
        !refused.success(),
        "an unverified asset is not placed:\n{out}"
    );
    assert!(
        out.contains("FA_REFUSED ") && out.contains("reason=unknown_asset"),
        "an asset whose manifest failed is unknown:\n{out}"
    );
    let refused = forbidden.wait(Duration::from_secs(90));
    let out = forbidden.output();
    assert!(!refused.success(), "quinn may not place:\n{out}");
    assert!(
        out.contains("FA_REFUSED ") && out.contains("reason=place_forbidden"),
        "refused as place_forbidden:\n{out}"
    );
    // Only pat's placement spawned anything; the zone counted the refusal by its reason.
    let stats = zone
        .proc
        .wait_for_line(
            |l| {
                l.starts_with("FABRIC_ZONE_STATS")
                    && field(l, "refused_place_forbidden").is_some_and(|v| v != "0")
            },
            Duration::from_secs(30),
        )
        .expect("a stats line after the refusal");
    assert_eq!(field(&stats, "placed"), Some("1"), "one instance: {stats}");
    assert_eq!(
        field(&stats, "refused_place_forbidden"),
        Some("1"),
        "{stats}"
    );

    zone.proc.stop();
    backend.proc.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
