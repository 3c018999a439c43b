//! The acceptance of "Players in the fabric" (issue 11) with real processes on loopback: the
//! registry backend, 3 zone processes registered and linked through it (wanderers), the gateway
//! in front of zone 0, and 8 headless Godot clients, each its own process
//! (`res://examples/fabric_world/bot.tscn`, a `FabricWorld` at 20 frames a second), each with a
//! join token the backend issued to its own account, all joined through the gateway and
//! walking tours through every zone ([`fabric_e2e::demo_fabric::DemoFabric::bot_tour`]).
//!
//! The first client is watched: after each `zone_changed` it prints (the gateway followed its
//! avatar), the zones' own `/state` (read all along by one thread per zone; they publish at
//! the same tick numbers) shows its avatar owned by the zone it entered and by no other at a
//! tick before its next crossing, two crossings in a row; it keeps its one gateway session (the gateway opened one
//! client session per bot and closed none, and no bot disconnected); and the zone ticks of the
//! updates of its own avatar it received (it logs them, `--log-own-ticks`) show no gap longer
//! than [`MAX_GAP_TICKS`] from its first second on, across both crossings. Every other client
//! sees entities and keeps its session too, and zone 0 admitted each by its join token.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fabric_e2e::demo_fabric::{DemoFabric, DemoOptions, Membership, wait_bot_spawned};
use fabric_e2e::linked_zones::read_state;
use fabric_e2e::zone_probe::{field, metrics};
use fabric_harness::engine;
use fabric_harness::process::Proc;

const CLIENTS: usize = 8;
/// Longest run of zone ticks between updates of the watched client's own avatar: the issue's
/// goal. The hand-off itself takes 2: the old zone's last update is of its staging tick T+1
/// (it still sends the avatar until the receiver's ack) and the new zone owns it at T+3 (the
/// 2-tick latency floor at 20 Hz), when the gateway's claim is bound before that tick's
/// replication; one more when the commit or the claim reaches the new zone after it began T+3.
/// Between crossings the walked avatar is updated every tick (an entity moved by position
/// upserts counts as moving: `fabric_core::client_view`).
const MAX_GAP_TICKS: i64 = 3;

/// What the zones published: (tick, low 32 bits; zone) -> the ids it held, and the zone's
/// overrun count (ticks longer than one step) read right after.
type Published = BTreeMap<(u64, usize), (BTreeSet<u32>, f64)>;

/// The looser bound on the own avatar's update gaps when the machine was too busy for its
/// zones during the walk: a zone process overran its ticks (a late zone replicates several
/// ticks' changes at once), or the load average exceeded the cores (a hand-off message waits
/// for a frame of a starved process, and the zones' pacers drop tick numbers). Gaps seen on 2
/// cores shared by 12 processes: 5 ticks at load 9 with no overrun, 10 at load 3.1 (CI, 3
/// December). The tick-number goal is a speed goal, met on an idle machine; on a starved one
/// this bound only tells a slow follow (a second at most) from a broken one (updates stop).
const MAX_GAP_TICKS_OVERRUN: i64 = 20;

/// The one-minute load average and the number of cores (`/proc/loadavg`; 0 when unreadable).
fn machine_load() -> (f64, f64) {
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    (load, cores)
}

/// The ticks a bot's `FABRIC_BOT_OWN` lines list, in order, without the first line's (its
/// first second: the avatar waits at rest until the first walk step lands).
fn own_ticks(output: &str) -> Vec<i64> {
    let mut seen = BTreeSet::new();
    for l in output
        .lines()
        .filter_map(|l| l.find("FABRIC_BOT_OWN ").map(|i| &l[i..]))
        .skip(1)
    {
        let ticks = field(l, "ticks").unwrap_or_default();
        seen.extend(ticks.split(',').filter_map(|t| t.parse::<i64>().ok()));
    }
    seen.into_iter().collect()
}

#[test]
fn eight_godot_clients_cross_zones_on_one_gateway_session_each() {
    let eng = engine::prepare(false).expect("engine and extension ready");
    let started = Instant::now();
    let opts = DemoOptions {
        zones: 3,
        entities: 150,
        half_m: 15.0,
        radius_m: 8.0,
        membership: Membership::Registry,
    };
    let mut demo = DemoFabric::start("fclients", opts).expect("3 zones and the gateway");
    let lap = |what: &str| {
        println!(
            "FABRIC_CLIENTS {what} at {:.1} s",
            started.elapsed().as_secs_f64()
        )
    };
    lap("fabric up");
    // The zones' /state as it changes (each publishes once a second, all at the same tick
    // numbers), read all along by one thread per zone: the ids each holds, by tick. Checked
    // afterwards by tick numbers, so it does not matter when the client's lines arrive.
    let zones = demo.zones.len();
    let stop = Arc::new(AtomicBool::new(false));
    let held: Arc<Mutex<Published>> = Arc::default();
    let pollers: Vec<_> = demo
        .zones
        .iter()
        .enumerate()
        .map(|(z, zone)| {
            let (addr, stop, held) = (zone.metrics, stop.clone(), held.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    if let Ok((tick, ids)) = read_state(addr) {
                        let overruns = metrics(addr)
                            .ok()
                            .and_then(|m| m.get("fabric_zone_overruns_total").copied())
                            .unwrap_or(f64::NAN);
                        let ids = (ids.into_keys().collect(), overruns);
                        // The low 32 bits: the wire's tick, as the client counts.
                        held.lock().unwrap().insert((tick & 0xFFFF_FFFF, z), ids);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        })
        .collect();

    let mut bots: Vec<Proc> = (0..CLIENTS)
        .map(|i| {
            let name = format!("bot{i}");
            let mut args = vec!["--fps", "20"];
            if i == 0 {
                // Slower, so it stays in each zone longer than the zones' once-a-second /state.
                args.extend(["--log-own-ticks", "--walk-speed", "2"]);
            }
            let cmd = demo
                .bot_command(&eng, &name, i, &args)
                .expect("bot command with its join token");
            Proc::spawn(&name, cmd, true).expect("bot starts")
        })
        .collect();

    let (avatar, spawn_zone) =
        wait_bot_spawned(&mut bots[0], Duration::from_secs(40)).expect("bot0's avatar spawned");
    assert_eq!(spawn_zone, 0, "bot0 spawns in zone 0");
    lap("bot0 spawned");

    // Two crossings: the zone entered and the client's tick then.
    let mut crossings: Vec<(usize, i64)> = Vec::new();
    for crossing in 1..=2 {
        let line = bots[0]
            .wait_for_line(|l| l.contains("zone_changed"), Duration::from_secs(40))
            .unwrap_or_else(|e| panic!("crossing {crossing}: {e}"));
        let num = |k: &str| -> i64 {
            field(&line, k)
                .and_then(|z| z.parse().ok())
                .unwrap_or_else(|| panic!("{k} in {line:?}"))
        };
        crossings.push((num("zone") as usize, num("tick")));
        println!(
            "FABRIC_CLIENTS crossing {crossing} into zone {} at tick {} ({:.1} s)",
            num("zone"),
            num("tick"),
            started.elapsed().as_secs_f64()
        );
    }
    // Walk on to the next publication of every zone after the second crossing.
    let after = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < after {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::SeqCst);
    for p in pollers {
        p.join().expect("poller");
    }
    let next_crossing = bots[0]
        .output()
        .lines()
        .filter(|l| l.contains("zone_changed"))
        .nth(2)
        .and_then(|l| field(l, "tick").and_then(|t| t.parse::<i64>().ok()))
        .unwrap_or(i64::MAX);
    // After each crossing, a tick at which every zone published and only the entered zone
    // held the avatar: between the hand-off (at most MAX_GAP_TICKS after the client's tick)
    // and the next crossing.
    let held = held.lock().unwrap();
    let ends = [crossings[1].1, next_crossing];
    for (i, (&(k, tick), end)) in crossings.iter().zip(ends).enumerate() {
        let from = (tick + MAX_GAP_TICKS + 1) as u64;
        let to = u64::try_from(end).unwrap_or(u64::MAX);
        let ticks: BTreeSet<u64> = held
            .keys()
            .map(|&(t, _)| t)
            .filter(|t| (from..to).contains(t))
            .collect();
        let agreeing: Vec<u64> = ticks
            .iter()
            .copied()
            .filter(|&t| {
                (0..zones).all(|z| {
                    held.get(&(t, z)).map(|(ids, _)| ids.contains(&avatar)) == Some(z == k)
                })
            })
            .collect();
        let seen: Vec<_> = ticks
            .iter()
            .map(|&t| {
                let holds = |z| held.get(&(t, z)).map(|(ids, _)| ids.contains(&avatar));
                (t, (0..zones).map(holds).collect::<Vec<_>>())
            })
            .collect();
        assert!(
            !agreeing.is_empty(),
            "crossing {} into zone {k} (client tick {tick}): no published tick in {from}..{to} \
             shows the avatar {avatar} held by zone {k} alone: {seen:?}",
            i + 1
        );
        println!(
            "FABRIC_CLIENTS crossing {} into zone {k}: /state of ticks {agreeing:?} agree",
            i + 1
        );
    }
    // Did a zone overrun its ticks while the client walked (its first second to a second
    // after the second crossing)?
    let (first, last) = (crossings[0].1 - 60, crossings[1].1 + 20);
    let overran: f64 = (0..zones)
        .map(|z| {
            let o: Vec<f64> = held
                .iter()
                .filter(|(key, _)| key.1 == z && (first..=last).contains(&(key.0 as i64)))
                .map(|(_, v)| v.1)
                .collect();
            let lo = o.iter().copied().fold(f64::MAX, f64::min);
            let hi = o.iter().copied().fold(f64::MIN, f64::max);
            if o.is_empty() { 0.0 } else { hi - lo }
        })
        .sum();
    drop(held);

    // From its first second to a second after the second crossing.
    let ticks: Vec<i64> = own_ticks(&bots[0].output())
        .into_iter()
        .filter(|&t| t <= last)
        .collect();
    assert!(ticks.len() >= 40, "own avatar updates logged: {ticks:?}");
    let worst = ticks
        .windows(2)
        .map(|w| (w[1] - w[0], w[1]))
        .max()
        .expect("two updates");
    let gaps: Vec<(i64, i64)> = ticks
        .windows(2)
        .filter(|w| w[1] - w[0] > 1)
        .map(|w| (w[1] - w[0], w[1]))
        .collect();
    println!(
        "FABRIC_CLIENTS bot0: {} own updates over ticks {}..{}, worst gap {} ticks (ending at {}), \
         gaps over 1: {gaps:?}",
        ticks.len(),
        ticks[0],
        ticks[ticks.len() - 1],
        worst.0,
        worst.1
    );
    // 12 processes share this machine's cores: when they want more CPU than it has, a link
    // message can wait a whole frame of a starved process without any tick overrunning (seen:
    // a 5-tick gap at a crossing with 0 overruns at load 9 on 2 cores).
    let (load, cores) = machine_load();
    let limit = if overran > 0.0 || load > cores {
        println!(
            "FABRIC_CLIENTS the machine was too busy during the walk (zone overruns {overran}, \
             load average {load:.1} on {cores} cores): gap limit {MAX_GAP_TICKS_OVERRUN} \
             instead of {MAX_GAP_TICKS}"
        );
        MAX_GAP_TICKS_OVERRUN
    } else {
        MAX_GAP_TICKS
    };
    assert!(
        worst.0 <= limit,
        "own avatar updates {} ticks apart (ending at tick {}), limit {limit} (zone overruns \
         during the walk: {overran})",
        worst.0,
        worst.1
    );

    // Every client: joined, sees entities, never disconnected; the gateway kept one session each.
    for (i, bot) in bots.iter_mut().enumerate() {
        // On a loaded machine the last ones take a while to start.
        bot.wait_for_line(|l| l.contains(" visible="), Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("bot{i} reports: {e}"));
        let text = bot.output();
        assert!(
            !text.contains("disconnected"),
            "bot{i} disconnected:\n{text}"
        );
        let status = text
            .lines()
            .rfind(|l| l.contains("FABRIC_BOT name=") && l.contains(" visible="))
            .unwrap_or_else(|| panic!("bot{i} printed no status:\n{text}"));
        let visible: usize = field(status, "visible").unwrap().parse().unwrap();
        let own: i64 = field(status, "avatar").unwrap().parse().unwrap();
        println!(
            "FABRIC_CLIENTS {}",
            &status[status.find("FABRIC_BOT").unwrap()..]
        );
        assert!(own >= 0 && visible >= 1, "bot{i}: {status}");
    }
    // Each client joined with its own join token: zone 0 (behind the gateway) admitted its
    // session as the token's account.
    let zone0 = demo.zone_output(0);
    for i in 0..CLIENTS {
        let admitted = format!("admitted as bot{i}\n");
        assert!(
            zone0.contains(&admitted),
            "zone 0 admitted bot{i} by its join token:\n{zone0}"
        );
    }
    let gw = demo.gateway.proc.output();
    let opened = gw.matches("client session opened").count();
    let closed = gw.matches("client session closed").count();
    assert_eq!(
        (opened, closed),
        (CLIENTS, 0),
        "one gateway session per client, none closed:\n{gw}"
    );
    for b in &mut bots {
        b.stop();
    }
    demo.stop();
    println!(
        "FABRIC_CLIENTS done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
