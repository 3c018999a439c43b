//! Room save and load across restarts (issue 15, part 5) with a real `fabric-backend` (SQLite
//! file) and real headless Godot zone processes (`scenes/tests/room_zone.tscn`, configured with
//! `--room`, the backend and an operator API key in the environment).
//!
//! Save, restart, load: the first zone finds the room never saved, spawns one stationary
//! object per persist mode (two `placed_saved`) and saves with `save_room()`; the backend then
//! holds exactly the two `placed_saved` objects. SIGTERM saves again (a graceful shutdown) and
//! the process exits 0. A second zone process loads the room: it holds exactly those two
//! objects, at the same positions bit for bit (the zones' `/state`), `placed_saved`, held by
//! nobody; the `placed_room` and `transient_held` ones are gone.
//!
//! A refused document (here an object saved as `placed_room`, which the backend's outline
//! check lets through) stops the zone before it is ready: exit code 1,
//! `FABRIC_ZONE_FAILED reason=room`, nothing restored.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fabric_e2e::zone_probe::{field, http_get};
use fabric_e2e::{backend_request, create_account, start_backend};
use fabric_harness::engine::{self, Engine};
use fabric_harness::process::Proc;

const SCENE: &str = "res://scenes/tests/room_zone.tscn";
const WAIT: Duration = Duration::from_secs(60);

fn room_zone(engine: &Engine, backend: &str, key: &str, room: &str) -> Proc {
    let args = [
        "--zone-id",
        "0",
        "--zone-count",
        "1",
        "--world-bounds",
        "15",
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
        "--public-address",
        "127.0.0.1",
        "--metrics-addr",
        "127.0.0.1:0",
        "--backend",
        backend,
        "--heartbeat-sec",
        "0.5",
        "--room",
        room,
    ];
    let mut cmd = engine.scene_command(SCENE, &args);
    cmd.env("FABRIC_BACKEND_API_KEY", key);
    Proc::spawn("room zone", cmd, true).expect("zone process starts")
}

/// The zone's `/state` (published once a second) once it holds `at_least` entities and its
/// tick is past the first second: id -> the exact 64.64 position bits, as printed.
fn exact_state(metrics: SocketAddr, at_least: usize) -> BTreeMap<u32, [String; 3]> {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = http_get(metrics, "/state").expect("/state answers");
        let tick: u64 = text
            .lines()
            .next()
            .and_then(|l| field(l, "tick"))
            .and_then(|t| t.parse().ok())
            .expect("/state has a tick");
        let held = parse_state(&text);
        if tick > 20 && held.len() >= at_least {
            return held;
        }
        assert!(
            Instant::now() < deadline,
            "/state never held {at_least}: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn parse_state(text: &str) -> BTreeMap<u32, [String; 3]> {
    text.lines()
        .filter_map(|l| l.strip_prefix("E "))
        .map(|l| {
            let w: Vec<&str> = l.split(' ').collect();
            (
                w[0].parse().expect("an id"),
                [w[1].to_owned(), w[2].to_owned(), w[3].to_owned()],
            )
        })
        .collect()
}

fn metrics_of(proc: &mut Proc) -> SocketAddr {
    let l = proc
        .wait_for_line(|l| l.starts_with("FABRIC_ZONE_METRICS"), WAIT)
        .expect("metrics line");
    field(&l, "addr").unwrap().parse().unwrap()
}

/// `ROOM_TEST <what> ...` lines printed so far.
fn lines<'a>(out: &'a str, what: &str) -> Vec<&'a str> {
    let prefix = format!("ROOM_TEST {what} ");
    out.lines().filter(|l| l.starts_with(&prefix)).collect()
}

fn terminate(proc: &Proc) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(proc.pid() as i32, libc::SIGTERM);
    }
}

#[test]
fn save_restart_load_restores_placed_saved_objects_only() {
    let engine = engine::prepare(false).expect("engine and extension ready");
    let dir = std::env::temp_dir().join(format!("fabric-room-save-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("backend.sqlite").display().to_string();
    let backend = start_backend("127.0.0.1:0", &db).expect("backend starts");
    let key = create_account(&backend.url, "room-operator").expect("account");

    // First life: a room never saved.
    let mut first = room_zone(&engine, &backend.url, &key, "hall-1");
    let metrics = metrics_of(&mut first);
    first
        .wait_for_line(|l| l.starts_with("FABRIC_ZONE_READY"), WAIT)
        .expect("ready once the room is loaded");
    let saved = first
        .wait_for_line(|l| l.starts_with("ROOM_TEST saved "), WAIT)
        .expect("save_room answered");
    assert!(
        saved.contains("ok=true version=1 entities=2"),
        "the first save holds the two placed_saved objects: {saved}"
    );
    let out = first.output();
    assert!(
        out.contains("ROOM_TEST loaded ok=true version=0 entities=0"),
        "{out}"
    );
    let spawned: Vec<(u32, String)> = lines(&out, "spawned")
        .iter()
        .map(|l| {
            (
                field(l, "id").unwrap().parse().unwrap(),
                field(l, "persist").unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(spawned.len(), 4, "{out}");
    let placed_saved: Vec<u32> = spawned
        .iter()
        .filter(|(_, m)| m == "placed_saved")
        .map(|(id, _)| *id)
        .collect();
    let before = exact_state(metrics, 4);
    for (id, _) in &spawned {
        assert!(before.contains_key(id), "{id} is in the first zone");
    }

    // The backend holds the two placed_saved objects, nothing else.
    let (status, body) =
        backend_request(&backend.url, "GET", "/rooms/hall-1/state", Some(&key), None).unwrap();
    assert_eq!(status, 200, "{body}");
    let ids: Vec<u64> = body["state"]["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ids,
        placed_saved
            .iter()
            .map(|&i| u64::from(i))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        body["state"]["entities"][1]["payload"],
        serde_json::json!([(4 << 24) | 5, 3, 4_294_967_295u32])
    );

    // A graceful shutdown saves again, then the process ends well.
    terminate(&first);
    let exit_save = first
        .wait_for_line(|l| l.starts_with("FABRIC_ZONE_ROOM_SAVED"), WAIT)
        .expect("the shutdown saves the room");
    assert!(
        exit_save.contains("version=2 entities=2 exit=true"),
        "{exit_save}"
    );
    let ended = first.wait(WAIT);
    assert_eq!(ended.code, Some(0), "{ended:?}\n{}", first.output());

    // Second life: the room comes back, placed_saved objects only.
    let mut second = room_zone(&engine, &backend.url, &key, "hall-1");
    let metrics = metrics_of(&mut second);
    second
        .wait_for_line(|l| l.starts_with("FABRIC_ZONE_READY"), WAIT)
        .expect("ready once the room is loaded");
    let after = exact_state(metrics, 1);
    assert_eq!(
        after.keys().copied().collect::<Vec<_>>(),
        placed_saved,
        "exactly the placed_saved objects"
    );
    for id in &placed_saved {
        assert_eq!(after[id], before[id], "{id} restored bit for bit");
    }
    let out = second.output();
    assert!(
        out.contains("ROOM_TEST loaded ok=true version=2 entities=2"),
        "{out}"
    );
    let restored = lines(&out, "restored");
    assert_eq!(restored.len(), 2, "{out}");
    for l in restored {
        assert!(
            l.ends_with("persist=placed_saved holder=-1"),
            "zone-owned, held by nobody: {l}"
        );
    }
    second.stop();

    // A document the zone refuses: it does not start.
    let bad = serde_json::json!({"format": 1, "entities": [
        {"id": 77, "persist": "placed_room", "position_um": ["0", "0", "0"]}
    ]});
    let (status, body) = backend_request(
        &backend.url,
        "POST",
        "/rooms/hall-2/save",
        Some(&key),
        Some(bad),
    )
    .unwrap();
    assert_eq!(
        status, 200,
        "the backend's outline check lets it through: {body}"
    );
    let mut third = room_zone(&engine, &backend.url, &key, "hall-2");
    let ended = third.wait(WAIT);
    let out = third.output();
    assert_eq!(ended.code, Some(1), "{ended:?}\n{out}");
    assert!(
        out.contains("FABRIC_ZONE_FAILED zone_id=0 reason=room"),
        "{out}"
    );
    assert!(
        out.contains("entity 0: persist mode `placed_room`"),
        "the error names the entity: {out}"
    );
    assert!(!out.contains("FABRIC_ZONE_READY"), "never ready: {out}");
    let _ = std::fs::remove_dir_all(&dir);
}
