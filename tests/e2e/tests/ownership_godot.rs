//! Ownership with headless Godot players as separate processes (issue 15's acceptance): each
//! player is its own Godot running `res://scenes/tests/ownership_client.tscn`, a real
//! `FabricWorld` using `request_ownership`, `release_ownership`, `is_held_by_me`, `get_holder`
//! and the ownership signals, driven in lock step by [`fabric_e2e::godot_players`]. The zone is
//! a real zone process; what is asserted comes from what each player printed it received or
//! believes, and from the zone's own `/state` (its `O entity holder` lines), `/metrics` and
//! stats lines.
//!
//! - Contention: 20 players request the same wanderer at once: one grant, 19 denials (`held`);
//!   then the winner releases and all request again, round after round (4 rounds by default,
//!   `FABRIC_CONTENTION_SECS=60` keeps it going for 60 s): each round one winner (never the
//!   releaser of a contested hold), after each release nobody believes it holds it and the zone
//!   holds it, after each grant exactly one player believes it holds it, every player names
//!   that holder and so does the zone's `/state`. Over the whole run, the times at which each
//!   player believed it held the entity (from its signals) never overlap another's.
//! - Forgery: a player that does not hold the entity moves it and sends an ownership grant
//!   (the one message only a zone may send, through the test build's `FabricWorldTestHooks`):
//!   both are refused and counted (`commands_refused_total{reason="authority"}`, the player's
//!   own `command_refused` signal, `ownership_denials_total{reason="forged"}`), the entity stays
//!   where its holder put it, the holder keeps it and can still move it.
//!
//! - Persist modes: a Godot holder leaves (its process exits). With `placed_room` the zone
//!   keeps the entity where it was, with no holder, and the other player is then granted it;
//!   with `transient_held` the zone despawns it and the other player's request is denied
//!   (`not_here`).
//!
//! `tests/ownership.rs` runs the same protocol with Rust clients (faster).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fabric_e2e::godot_players::{GodotPlayers, To, num};
use fabric_e2e::zone_probe::{self, field};
use fabric_e2e::zone_state::{ObservedZone, start_ownership_zone};
use fabric_harness::engine;

/// How long one lock step may take (20 Godot processes share two cores with whatever else runs).
const STEP: Duration = Duration::from_secs(90);
/// The contended wanderer.
const ENTITY: u32 = 1;

fn start_zone() -> (engine::Engine, ObservedZone) {
    let engine = engine::prepare(false).expect("engine and extension ready");
    let zone = start_ownership_zone(&engine, "placed_room").expect("zone process starts");
    (engine, zone)
}

/// The zone's `/state` (one reading): tick, positions (metres) and holders (its
/// `O entity holder` lines).
fn zone_state(zone: &ObservedZone) -> (u64, BTreeMap<u32, [f64; 3]>, BTreeMap<u32, u32>) {
    let text = zone_probe::http_get(zone.metrics, "/state").expect("/state answers");
    let tick = text
        .lines()
        .next()
        .and_then(|l| field(l, "tick"))
        .and_then(|t| t.parse().ok())
        .expect("/state tick");
    let pairs = |prefix: &str| -> Vec<Vec<i128>> {
        text.lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .map(|l| l.split(' ').map(|w| w.parse().expect("a number")).collect())
            .collect()
    };
    // 64.64 fixed-point micrometres: the integer part is enough for a 1 mm comparison.
    let metres = |bits: i128| (bits >> 64) as f64 / 1e6;
    let positions = pairs("E ")
        .iter()
        .map(|n| (n[0] as u32, [metres(n[1]), metres(n[2]), metres(n[3])]))
        .collect();
    let holders = pairs("O ")
        .iter()
        .map(|n| (n[0] as u32, n[1] as u32))
        .collect();
    (tick, positions, holders)
}

/// Polls the zone's `/state` until the holder of [`ENTITY`] is `want`.
fn zone_holder_becomes(zone: &ObservedZone, want: Option<u32>) {
    let deadline = Instant::now() + STEP;
    loop {
        let got = zone_state(zone).2.get(&ENTITY).copied();
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the zone's /state holder of {ENTITY} is {got:?}, not {want:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A counter of the zone's `/metrics` with label `reason` (0 when absent).
fn counter(zone: &ObservedZone, name: &str, reason: &str) -> f64 {
    let text = zone_probe::http_get(zone.metrics, "/metrics").expect("/metrics answers");
    let label = format!("reason=\"{reason}\"");
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(&label))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// One `OC_EVENT` of [`ENTITY`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct Event {
    kind: String,
    holder: i64,
    reason: String,
    mine: bool,
    t_us: i64,
}

fn events(lines: &[String]) -> Vec<Event> {
    lines
        .iter()
        .filter(|l| l.starts_with("OC_EVENT ") && num(l, "id") == i64::from(ENTITY))
        .map(|l| Event {
            kind: field(l, "kind").unwrap_or("").to_owned(),
            holder: num(l, "holder"),
            reason: field(l, "reason").unwrap_or("").to_owned(),
            mine: num(l, "mine") == 1,
            t_us: num(l, "t_us"),
        })
        .collect()
}

fn count(lines: &[String], kind: &str) -> usize {
    events(lines).iter().filter(|e| e.kind == kind).count()
}

/// A player's answers to its requests: (grants naming its own avatar, denials).
fn answers(lines: &[String], avatar: u32) -> (usize, usize) {
    let ev = events(lines);
    (
        ev.iter()
            .filter(|e| e.kind == "granted" && e.holder == i64::from(avatar))
            .count(),
        ev.iter().filter(|e| e.kind == "denied").count(),
    )
}

/// `sample` at every player: (players that believe they hold it, holders they name).
fn sample(players: &mut GodotPlayers) -> (Vec<usize>, Vec<i64>) {
    let got = players
        .run(To::All, &format!("sample {ENTITY}"), "OC_SAMPLE ", STEP)
        .expect("every player samples");
    let lines: Vec<String> = got.into_iter().map(|l| l.expect("sampled")).collect();
    (
        (0..lines.len())
            .filter(|&i| num(&lines[i], "mine") == 1)
            .collect(),
        lines.iter().map(|l| num(l, "holder")).collect(),
    )
}

/// Whether `p` is `t` to within 1 mm on each axis.
fn at_target(p: Option<[f64; 3]>, t: [f64; 3]) -> bool {
    p.is_some_and(|p| (0..3).all(|k| (p[k] - t[k]).abs() < 1e-3))
}

/// Player `holder` moves [`ENTITY`] to `target` until the zone's `/state` shows it there (a
/// datagram may be lost: it is sent again).
fn holder_moves_it(
    players: &mut GodotPlayers,
    zone: &ObservedZone,
    holder: usize,
    target: [f64; 3],
) {
    let to = format!("move {ENTITY} {},{},{}", target[0], target[1], target[2]);
    let deadline = Instant::now() + STEP;
    loop {
        players.run(To::One(holder), &to, "OC_DID ", STEP).unwrap();
        if at_target(zone_state(zone).1.get(&ENTITY).copied(), target) {
            return;
        }
        assert!(Instant::now() < deadline, "{to} never showed in /state");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn twenty_godot_players_at_once_get_one_grant_and_a_release_regrab_loop_keeps_one_owner() {
    const N: usize = 20;
    const MIN_ROUNDS: usize = 4;
    let min_secs: f64 = std::env::var("FABRIC_CONTENTION_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let (engine, mut zone) = start_zone();
    let spawns: Vec<[f64; 3]> = (0..N).map(|i| [-9.5 + i as f64, -3.0, 0.0]).collect();
    let t_start = Instant::now();
    let mut players = GodotPlayers::start(
        &engine,
        zone.port,
        &zone.cert_hash,
        &spawns,
        30,
        Duration::from_secs(600),
    )
    .expect("20 Godot players joined");
    let started = Instant::now();
    println!(
        "contention: {N} Godot players joined in {:.1} s",
        started.duration_since(t_start).as_secs_f64()
    );
    let avatars = players.avatars.clone();
    let grant = format!("request {ENTITY}");
    let mut winners: Vec<usize> = Vec::new();
    let mut samples = 0;
    while winners.len() < MIN_ROUNDS || started.elapsed().as_secs_f64() < min_secs {
        let round = winners.len();
        if let Some(&w) = winners.last() {
            // The release and the others' requests travel on different sessions: the next
            // requests go once the releaser heard the zone confirm it.
            let before = count(&players.lines()[w], "released");
            players
                .send(To::One(w), &format!("release {ENTITY}"))
                .unwrap();
            players
                .wait("the release confirmed", STEP, |l| {
                    count(&l[w], "released") > before
                })
                .unwrap();
            zone_holder_becomes(&zone, None);
            let (mine, _) = sample(&mut players);
            samples += 1;
            assert!(
                mine.is_empty(),
                "round {round}: released, yet players {mine:?} believe they hold it"
            );
        }
        let lines = players.lines();
        let before: Vec<(usize, usize)> = (0..N).map(|i| answers(&lines[i], avatars[i])).collect();
        players.send(To::All, &grant).unwrap();
        let lines = players
            .wait("every request answered and the grant heard", STEP, |l| {
                (0..N).all(|i| {
                    let (g, d) = answers(&l[i], avatars[i]);
                    g + d == before[i].0 + before[i].1 + 1 && count(&l[i], "granted") == round + 1
                })
            })
            .unwrap();
        let won: Vec<usize> = (0..N)
            .filter(|&i| answers(&lines[i], avatars[i]).0 > before[i].0)
            .collect();
        assert_eq!(won.len(), 1, "round {round}: exactly one grant: {won:?}");
        let denials: Vec<Event> = (0..N)
            .filter(|&i| answers(&lines[i], avatars[i]).1 > before[i].1)
            .map(|i| {
                events(&lines[i])
                    .into_iter()
                    .rfind(|e| e.kind == "denied")
                    .unwrap()
            })
            .collect();
        assert_eq!(denials.len(), N - 1, "round {round}: {} denials", N - 1);
        for d in &denials {
            assert!(
                d.reason == "held" || d.reason == "cooldown",
                "round {round}: denied for {d:?}"
            );
        }
        if let Some(&prev) = winners.last() {
            assert_ne!(
                won[0], prev,
                "round {round}: the releaser of a contested entity lets the others go first"
            );
        }
        let holder = avatars[won[0]];
        zone_holder_becomes(&zone, Some(holder));
        let (mine, named) = sample(&mut players);
        samples += 1;
        assert_eq!(
            mine,
            vec![won[0]],
            "round {round}: exactly the winner believes it holds it"
        );
        assert!(
            named.iter().all(|&h| h == i64::from(holder)),
            "round {round}: every player names holder {holder}: {named:?}"
        );
        winners.push(won[0]);
    }
    let rounds = winners.len();
    let lines = players.lines();

    // Every player heard the same history: granted to the winner, released, granted, ...
    let expected: Vec<(String, i64)> = winners
        .iter()
        .enumerate()
        .flat_map(|(k, &w)| {
            let g = ("granted".to_owned(), i64::from(avatars[w]));
            if k == 0 {
                vec![g]
            } else {
                vec![("released".to_owned(), -1), g]
            }
        })
        .collect();
    // Each player's belief over time (from its own signals): when it started and stopped
    // believing it held the entity, system clock microseconds shared by all the processes.
    let mut held_spans: Vec<(i64, i64, usize)> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let ev = events(l);
        let history: Vec<(String, i64)> = ev
            .iter()
            .filter(|e| e.kind == "granted" || e.kind == "released")
            .map(|e| (e.kind.clone(), e.holder))
            .collect();
        assert_eq!(
            history, expected,
            "player {i} heard one holder at a time, in order"
        );
        let mut since: Option<i64> = None;
        for e in &ev {
            match (since, e.mine) {
                (None, true) => since = Some(e.t_us),
                (Some(s), false) => {
                    held_spans.push((s, e.t_us, i));
                    since = None;
                }
                _ => {}
            }
        }
        if let Some(s) = since {
            held_spans.push((s, i64::MAX, i));
        }
    }
    held_spans.sort_unstable();
    assert_eq!(held_spans.len(), rounds, "one belief span per grant");
    for pair in held_spans.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1,
            "players {} and {} believed they held it at once: {pair:?}",
            pair[0].2,
            pair[1].2
        );
    }

    // Stats lines come once a second, so one may fall between a round's grant and its last
    // denials: the first line with every refusal counted is the one checked.
    let refusals = (rounds * (N - 1)) as u64;
    let value = |l: &str, k: &str| -> u64 { field(l, k).and_then(|v| v.parse().ok()).unwrap() };
    let stats = zone
        .proc
        .wait_for_line(
            |l| {
                l.starts_with("FABRIC_ZONE_STATS")
                    && value(l, "ownership_refused_held") + value(l, "ownership_refused_cooldown")
                        >= refusals
            },
            STEP,
        )
        .expect("a stats line with every refusal");
    let stat = |k: &str| value(&stats, k);
    assert_eq!(stat("ownership_granted"), rounds as u64, "{stats}");
    assert_eq!(stat("holders"), 1, "{stats}");
    assert_eq!(stat("ownership_released"), rounds as u64 - 1, "{stats}");
    assert_eq!(
        stat("ownership_refused_held") + stat("ownership_refused_cooldown"),
        refusals,
        "{stats}"
    );
    let m = zone_probe::metrics(zone.metrics).expect("/metrics");
    assert_eq!(
        m.get("fabric_zone_ownership_grants_total"),
        Some(&(rounds as f64)),
        "grants in /metrics"
    );
    assert_eq!(m.get("fabric_zone_ownership_held"), Some(&1.0), "held now");
    let refused = counter(&zone, "fabric_zone_ownership_denials_total", "held")
        + counter(&zone, "fabric_zone_ownership_denials_total", "cooldown");
    assert_eq!(refused, (rounds * (N - 1)) as f64, "denials in /metrics");
    players.quit(STEP).expect("every player leaves");
    println!(
        "contention: {N} Godot players, {rounds} rounds in {:.1} s, one grant and {} denials \
         each, {samples} samples with one believed owner at most (the zone's), {} belief spans \
         without overlap; zone overruns {}",
        started.elapsed().as_secs_f64(),
        N - 1,
        held_spans.len(),
        stat("overruns")
    );
}

/// Two Godot players (A at x = -5, B at x = 5) on `zone`; A requests [`ENTITY`] and is granted
/// it, both hear the grant and the zone's `/state` names A. Returns the players.
fn two_players_a_holds(engine: &engine::Engine, zone: &ObservedZone) -> GodotPlayers {
    let mut players = GodotPlayers::start(
        engine,
        zone.port,
        &zone.cert_hash,
        &[[-5.0, 0.0, 0.0], [5.0, 0.0, 0.0]],
        30,
        Duration::from_secs(300),
    )
    .expect("2 Godot players joined");
    let avatar_a = players.avatars[0];
    players
        .send(To::One(0), &format!("request {ENTITY}"))
        .unwrap();
    players
        .wait("A's grant heard by both", STEP, |l| {
            answers(&l[0], avatar_a).0 == 1 && count(&l[1], "granted") == 1
        })
        .unwrap();
    zone_holder_becomes(zone, Some(avatar_a));
    players
}

#[test]
fn a_godot_player_that_does_not_hold_an_entity_has_its_forged_move_and_grant_refused() {
    let (engine, mut zone) = start_zone();
    let mut players = two_players_a_holds(&engine, &zone);
    let (a, b) = (0, 1);
    let (avatar_a, avatar_b) = (players.avatars[a], players.avatars[b]);

    // The holder puts it beside its own avatar; the zone's state shows it there, at rest.
    let target = [-4.0, 1.0, 0.0];
    holder_moves_it(&mut players, &zone, a, target);

    // B moves it: a forged update.
    let authority = "fabric_zone_commands_refused_total";
    let before = counter(&zone, authority, "authority");
    let did = players
        .run(To::One(b), &format!("move {ENTITY} 5,1,0"), "OC_DID ", STEP)
        .unwrap();
    assert_eq!(
        num(did[b].as_deref().unwrap(), "err"),
        0,
        "FabricWorld sends it: the zone judges"
    );
    players
        .wait("B's command_refused(authority)", STEP, |l| {
            l[b].iter()
                .any(|l| l.starts_with("OC_REFUSED ") && field(l, "authority").is_some())
        })
        .unwrap();
    let deadline = Instant::now() + STEP;
    while counter(&zone, authority, "authority") < before + 1.0 {
        assert!(
            Instant::now() < deadline,
            "B's move is not counted as refused"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // B sends a grant of the entity to itself: forged.
    let denials = "fabric_zone_ownership_denials_total";
    let forged_before = counter(&zone, denials, "forged");
    let did = players
        .run(
            To::One(b),
            &format!("forge_grant {ENTITY} {avatar_b}"),
            "OC_DID ",
            STEP,
        )
        .unwrap();
    assert_eq!(
        num(did[b].as_deref().unwrap(), "err"),
        0,
        "the forged grant was sent"
    );
    let deadline = Instant::now() + STEP;
    while counter(&zone, denials, "forged") < forged_before + 1.0 {
        assert!(Instant::now() < deadline, "the forged grant is not counted");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Nothing changed: a /state of a later tick still has it where A put it, held by A.
    let (tick_then, _, _) = zone_state(&zone);
    let deadline = Instant::now() + STEP;
    let (_, positions, holders) = loop {
        let s = zone_state(&zone);
        if s.0 > tick_then {
            break s;
        }
        assert!(Instant::now() < deadline, "/state is not refreshed");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        at_target(positions.get(&ENTITY).copied(), target),
        "the forged move changed nothing: {:?}",
        positions.get(&ENTITY)
    );
    assert_eq!(holders.get(&ENTITY), Some(&avatar_a), "A still holds it");
    let (mine, named) = sample(&mut players);
    assert_eq!(mine, vec![a], "only A believes it holds it");
    assert_eq!(
        named,
        vec![i64::from(avatar_a); 2],
        "both name A as the holder"
    );
    assert_eq!(
        count(&players.lines()[b], "granted"),
        1,
        "B heard no grant but A's"
    );

    // The holder keeps acting on it.
    let target = [-4.5, 2.0, 0.0];
    holder_moves_it(&mut players, &zone, a, target);
    let stats = zone
        .proc
        .wait_for_line(
            |l| l.starts_with("FABRIC_ZONE_STATS") && l.contains(" ownership_refused_forged=1 "),
            STEP,
        )
        .expect("the stats line counts the forged grant");
    assert_eq!(field(&stats, "holders"), Some("1"), "{stats}");
    assert!(
        field(&stats, "refused_authority")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n >= 1),
        "{stats}"
    );
    players.quit(STEP).expect("both players leave");
}

#[test]
fn a_godot_holder_that_leaves_lets_the_entity_follow_its_persist_mode() {
    for mode in ["placed_room", "transient_held"] {
        let engine = engine::prepare(false).expect("engine and extension ready");
        let zone = start_ownership_zone(&engine, mode).expect("zone process starts");
        let mut players = two_players_a_holds(&engine, &zone);
        let (a, b) = (0, 1);
        let avatar_b = players.avatars[b];

        // A closes the game.
        players.quit_one(a, STEP).expect("A leaves");
        if mode == "placed_room" {
            // Kept where it was, held by nobody; B hears the release and may take it.
            zone_holder_becomes(&zone, None);
            assert!(
                zone_state(&zone).1.contains_key(&ENTITY),
                "{mode}: the zone keeps the entity"
            );
            players
                .wait("B hears the entity released", STEP, |l| {
                    count(&l[b], "released") >= 1
                })
                .unwrap();
            players
                .send(To::One(b), &format!("request {ENTITY}"))
                .unwrap();
            players
                .wait("B's grant", STEP, |l| answers(&l[b], avatar_b).0 == 1)
                .unwrap();
            zone_holder_becomes(&zone, Some(avatar_b));
        } else {
            // Despawned with its holder's departure: gone from the zone, and B is told so.
            let deadline = Instant::now() + STEP;
            while zone_state(&zone).1.contains_key(&ENTITY) {
                assert!(
                    Instant::now() < deadline,
                    "{mode}: the entity is still in the zone's /state"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            players
                .send(To::One(b), &format!("request {ENTITY}"))
                .unwrap();
            let lines = players
                .wait("B's request answered", STEP, |l| {
                    answers(&l[b], avatar_b).1 >= 1
                })
                .unwrap();
            let denied: Vec<String> = events(&lines[b])
                .into_iter()
                .filter(|e| e.kind == "denied")
                .map(|e| e.reason)
                .collect();
            assert_eq!(denied, vec!["not_here".to_owned()], "{mode}: B is denied");
            assert_eq!(
                answers(&lines[b], avatar_b).0,
                0,
                "{mode}: nobody is granted a despawned entity"
            );
        }
        players.quit(STEP).expect("B leaves");
        println!("persist mode {mode}: the entity followed it after its Godot holder left");
    }
}
