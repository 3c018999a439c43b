//! Host-run rooms (issue 15, part 6): a room whose authority is one player's process, and
//! which goes on when that process dies. Every participant is a real headless Godot process
//! (`res://scenes/tests/host_room_player.tscn`: a `FabricHostRoom` and a script that acts and
//! prints what it holds) over real WebTransport on loopback.
//!
//! The host places three objects (one per persist mode) and gives one back to the room;
//! three players join one after the other (so their join order is known), each places three
//! objects and moves one; the first player takes the host's released object and the third
//! is denied it. Once every process holds the same settled room, the host goes: killed with
//! SIGKILL (no goodbye on any link: the players notice the silence), or leaving the room
//! cleanly (`leave_room()`: the players see the session close). Checked:
//!
//! - every process held the same room before the kill, with the holders the actions imply;
//! - the oldest remaining player (the first to join) reports itself host within 2 s of the
//!   kill or the leave (measured on the wall clock both sides share);
//! - every remaining player reconnects to it (its term-2 baseline arrives) and the new host
//!   sees each one back under its old id;
//! - the room after the change, as each of the three dumps it, equals the room before
//!   minus what the departed host's leaving does by persist mode: its `transient_held`
//!   object is gone, its placed objects stay without holder; every other object keeps its
//!   holder, mode and position.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fabric_e2e::mp::{fields, num, tagged};
use fabric_harness::engine;
use fabric_harness::process::Proc;

const SCENE: &str = "res://scenes/tests/host_room_player.tscn";
const PLAYERS: usize = 3;
const WAIT: Duration = Duration::from_secs(60);

fn unix_ms() -> i64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(d.as_millis()).expect("ms fit")
}

/// The room after its host `host` left: its `transient_held` objects are gone, its other
/// objects have no holder. Dumps are `entity:persist:holder:x,y,z` joined by `;`.
fn after_host_left(dump: &str, host: &str) -> String {
    dump.split(';')
        .filter_map(|item| {
            let parts: Vec<&str> = item.split(':').collect();
            assert_eq!(parts.len(), 4, "dump item {item}");
            if parts[2] != host {
                return Some(item.to_owned());
            }
            (parts[1] != "transient_held")
                .then(|| format!("{}:{}:-:{}", parts[0], parts[1], parts[3]))
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Starts one process of the scene named `name` with `args`.
fn spawn(engine: &engine::Engine, name: &str, args: &[&str]) -> Proc {
    let mut all = vec!["--name", name];
    all.extend_from_slice(args);
    Proc::spawn(name, engine.scene_command(SCENE, &all), true)
        .unwrap_or_else(|e| panic!("{name} starts: {e:#}"))
}

fn last_field(out: &str, tag: &str, key: &str) -> String {
    let lines = tagged(out, tag);
    let f = lines
        .last()
        .unwrap_or_else(|| panic!("no {tag} line in:\n{out}"));
    f.get(key)
        .unwrap_or_else(|| panic!("{tag} without {key}: {f:?}"))
        .to_string()
}

/// How the host goes.
#[derive(Debug, Clone, Copy)]
enum Exit {
    /// SIGKILL.
    Killed,
    /// `leave_room()`, when the file the host watches appears.
    Leaves,
}

#[test]
fn the_oldest_player_takes_over_a_host_run_room_when_the_host_is_killed() {
    host_goes(Exit::Killed);
}

#[test]
fn the_oldest_player_takes_over_a_host_run_room_when_the_host_leaves() {
    host_goes(Exit::Leaves);
}

fn host_goes(exit: Exit) {
    let engine = engine::prepare(false).expect("engine and extension ready");
    let dir = std::env::temp_dir().join(format!("host_room_{}_{exit:?}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let leave_file = dir.join("leave");
    let _ = std::fs::remove_file(&leave_file);
    let leave_arg = leave_file.to_str().expect("utf-8 path").to_owned();
    let mut host = spawn(
        &engine,
        "host",
        &["--role", "host", "--leave-file", &leave_arg],
    );
    let ready = host
        .wait_for_line(|l| l.starts_with("HR_READY "), WAIT)
        .expect("host ready");
    let f = fields(&ready);
    let url = format!("https://127.0.0.1:{}/wt", f["port"]);
    let hash = f["cert_hash"].to_owned();

    // Players join one at a time: join order is p1, p2, p3.
    let mut players: Vec<(String, Proc)> = Vec::new();
    let mut ids = BTreeMap::new();
    for i in 1..=PLAYERS {
        let name = format!("p{i}");
        let index = i.to_string();
        let mut p = spawn(
            &engine,
            &name,
            &[
                "--role",
                "player",
                "--url",
                &url,
                "--cert-hash",
                &hash,
                "--index",
                &index,
            ],
        );
        let joined = p
            .wait_for_line(|l| l.starts_with("HR_JOINED "), WAIT)
            .expect("player joins");
        ids.insert(name.clone(), num::<i64>(&fields(&joined), "player"));
        players.push((name, p));
    }
    assert_eq!(
        ids.values().copied().collect::<Vec<_>>(),
        [2, 3, 4],
        "ids follow join order: {ids:?}"
    );

    // Every player settles on the same room; so does the host.
    let mut settled = Vec::new();
    for (name, p) in &mut players {
        let l = p
            .wait_for_line(|l| l.starts_with("HR_SETTLED "), WAIT)
            .unwrap_or_else(|e| panic!("{name} settles: {e:#}"));
        settled.push(fields(&l)["dump"].to_owned());
    }
    let before = settled[0].clone();
    for (d, (name, _)) in settled.iter().zip(&players) {
        assert_eq!(d, &before, "{name} holds the room p1 holds");
    }
    // The host published that state too: its last dump.
    host.wait_for_line(|l| l.starts_with("HR_SETTLED "), WAIT)
        .expect("host settles");
    assert_eq!(last_field(&host.output(), "HR_SETTLED", "dump"), before);
    // What the actions imply: 12 objects; each player's three held by it (its placed_saved
    // moved to y 3.5), the host's 1 and 3 held by it, entity 2 taken by p1 (id 2).
    let items: Vec<&str> = before.split(';').collect();
    assert_eq!(items.len(), 12, "12 objects: {before}");
    assert!(items[0].starts_with("1:transient_held:1:"), "{before}");
    assert!(
        items[1].starts_with("2:placed_room:2:101,0,0"),
        "p1 took 2: {before}"
    );
    assert!(items[2].starts_with("3:placed_saved:1:"), "{before}");
    for (i, (name, _)) in players.iter().enumerate() {
        let id = ids[name];
        let mine: Vec<&&str> = items
            .iter()
            .filter(|it| it.split(':').nth(2) == Some(&id.to_string()))
            .collect();
        let want = if i == 0 { 4 } else { 3 };
        assert_eq!(mine.len(), want, "{name} holds its objects: {before}");
        let x = 10 * (i + 1) + 2;
        let moved = format!(":placed_saved:{id}:{x},3.5,-1.25");
        assert!(
            items.iter().any(|it| it.ends_with(&moved)),
            "{name}'s placed_saved object moved ({moved}): {before}"
        );
    }
    let p3_out = players[2].1.output();
    let denied = tagged(&p3_out, "HR_DENIED");
    assert!(
        denied
            .iter()
            .any(|f| f.get("entity") == Some(&"2") && f.get("reason") == Some(&"held")),
        "p3 was denied entity 2 (held): {denied:?}"
    );

    // The host goes.
    let killed_at = unix_ms();
    match exit {
        Exit::Killed => host.kill(),
        Exit::Leaves => {
            std::fs::write(&leave_file, b"").expect("leave file");
            host.wait_for_line(|l| l.starts_with("HR_LEFT "), WAIT)
                .expect("host leaves");
        }
    }

    let mut migrated = Vec::new();
    for (name, p) in &mut players {
        let l = p
            .wait_for_line(|l| l.starts_with("HR_MIGRATED "), WAIT)
            .unwrap_or_else(|e| panic!("{name} continues under the new host: {e:#}"));
        migrated.push((name.clone(), l));
    }
    let p1_out = players[0].1.output();
    let new_host = p1_out
        .lines()
        .find(|l| l.starts_with("HR_HOST_CHANGED ") && l.contains("local=true"))
        .map(fields)
        .map(|f| (num::<i64>(&f, "player"), num::<i64>(&f, "unix_ms")))
        .expect("p1 became host");
    let took_ms = new_host.1 - killed_at;
    eprintln!("host_room ({exit:?}): p1 became host {took_ms} ms after the host went");
    assert_eq!(new_host.0, ids["p1"], "the oldest remaining presence");
    assert!(
        (0..2000).contains(&took_ms),
        "the new host took over within 2 s of the host going ({exit:?}): {took_ms} ms"
    );
    for (name, p) in &players[1..] {
        let out = p.output();
        let local = tagged(&out, "HR_HOST_CHANGED");
        assert!(
            local.iter().all(|f| f.get("local") == Some(&"false")),
            "{name} did not take over: {local:?}"
        );
    }

    let want = after_host_left(&before, "1");
    assert_ne!(want, before, "the host's leaving changes something");
    for (name, l) in &migrated {
        let f = fields(l);
        assert_eq!(f["term"], "2", "{name}: one host change");
        assert_eq!(f["host"], ids["p1"].to_string(), "{name}: follows p1");
        assert_eq!(f["players"], "2,3,4", "{name}: everyone but the old host");
        assert_eq!(f["dump"], want, "{name}: the room goes on as it was");
        let at: i64 = num(&f, "unix_ms");
        eprintln!(
            "host_room ({exit:?}): {name} continued {} ms after the host went",
            at - killed_at
        );
    }
    for (name, p) in &players {
        let out = p.output();
        let fails: Vec<&str> = out
            .lines()
            // A host that leaves closes its sessions in order: not an error on the players.
            .filter(|l| l.contains("HR_FAIL") || l.starts_with("ERROR:"))
            .collect();
        assert!(fails.is_empty(), "{name} logged failures: {fails:#?}");
    }
    drop(host);
    let _ = std::fs::remove_dir_all(&dir);
}
