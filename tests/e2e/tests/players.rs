//! Players on a real zone process: clients join over WebTransport on loopback, get avatars,
//! move them with position upserts, and a hostile client's commands (moving another player's
//! avatar, faster than `v_max`, malformed bytes, 10,000 commands a second) are refused,
//! counted per reason in the zone's `/metrics` and reported back to that client only, while a
//! well-behaved client on the same zone keeps moving with no refusal and every tick stays on
//! time. Everything asserted comes from the zone's own `/state`, `/metrics` and stats lines, or
//! from what the clients receive.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fabric_core::avatars::default_spawn;
use fabric_core::command_gate::{FRAME_COMMAND, command_frame};
use fabric_core::config::ZoneConfig;
use fabric_core::coords::{Micros, WorldBounds};
use fabric_core::player_command::{PlayerCommand, PlayerPacket};
use fabric_core::session_control::ControlMessage;
use fabric_core::zones::ZoneLayout;
use fabric_e2e::zone_probe::{self, field};
use fabric_e2e::zone_state::start_observed_zone;
use fabric_harness::engine;
use fabric_harness::process::Proc;
use fabric_net::{CertHash, Client, ClientConfig, ClientEvent};

/// A zone process with its client port, certificate hash and metrics address.
struct Zone {
    proc: Proc,
    port: u16,
    hash: String,
    metrics: SocketAddr,
}

fn start_zone(zone_count: &str) -> Zone {
    let engine = engine::prepare(false).expect("engine and extension ready");
    let z = start_observed_zone(
        &engine,
        &[
            "--zone-id",
            "0",
            "--zone-count",
            zone_count,
            "--world-bounds",
            "15",
            "--stats-every",
            "1",
        ],
    )
    .expect("zone process starts");
    Zone {
        proc: z.proc,
        port: z.port,
        hash: z.cert_hash,
        metrics: z.metrics,
    }
}

/// Connects to `zone`, acknowledges the welcome, asks to spawn at `at` (metres; `None` = the
/// zone's own spawn point) until answered; returns the session and the answer.
fn spawn(zone: &Zone, at: Option<[f64; 3]>) -> (Client, u64, ControlMessage) {
    spawn_via(zone.port, &zone.hash, at)
}

/// [`spawn`] through the server on loopback `port` pinned by `hash` (a zone or a gateway).
fn spawn_via(port: u16, hash: &str, at: Option<[f64; 3]>) -> (Client, u64, ControlMessage) {
    let url = format!("https://127.0.0.1:{port}/wt");
    let pin = CertHash::parse(hash).expect("the ready line's hash");
    let mut client = Client::connect(ClientConfig::new(url, pin));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut session = None;
    let mut spawn_sent = Instant::now() - Duration::from_secs(1);
    let at_um = at.map(|at| at.map(|m| (m * 1e6).round() as i64));
    loop {
        assert!(Instant::now() < deadline, "no answer to spawn within 20 s");
        let Some(ev) = client.try_next_event() else {
            if session.is_some() && spawn_sent.elapsed() > Duration::from_millis(500) {
                // Resent until answered (the reliable channel makes a repeat rare).
                let spawn = ControlMessage::Spawn { at: at_um }.encode();
                client.send_message(spawn).expect("spawn sent");
                spawn_sent = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        let bytes = match ev {
            ClientEvent::Datagram(b) => b.to_vec(),
            ClientEvent::Message(b) => b,
            ClientEvent::Connected { .. } => {
                let hello = ControlMessage::Hello {
                    id: "h1".into(),
                    token: None,
                };
                client.send_datagram(&hello.encode()).expect("hello sent");
                continue;
            }
            other => panic!("session ended before the answer to spawn: {other:?}"),
        };
        match ControlMessage::decode(&bytes) {
            Ok(ControlMessage::Welcome { session: s, .. }) if session.is_none() => {
                let ack = ControlMessage::WelcomeAck { session: s }.encode();
                client.send_datagram(&ack).expect("ack sent");
                session = Some(s);
            }
            Ok(
                m @ (ControlMessage::Avatar { .. }
                | ControlMessage::AvatarElsewhere { .. }
                | ControlMessage::Reply { result: Err(_), .. }),
            ) => return (client, session.expect("welcomed first"), m),
            _ => {}
        }
    }
}

/// A player: a session on the zone and what it heard.
struct Player {
    client: Client,
    session: u64,
    avatar: u32,
    /// `commands_refused` reports received.
    reports: Vec<BTreeMap<String, u64>>,
}

impl Player {
    /// Connects, acknowledges the welcome and spawns at `at` (metres).
    fn join(zone: &Zone, at: [f64; 3]) -> Player {
        let (client, session, answer) = spawn(zone, Some(at));
        let ControlMessage::Avatar { id, zone } = answer else {
            panic!("no avatar: {answer:?}");
        };
        assert_eq!(zone, 0, "made by the zone asked");
        Player {
            client,
            session,
            avatar: id,
            reports: Vec::new(),
        }
    }

    /// Reads what arrived; keeps the error reports.
    fn drain(&mut self) {
        while let Some(ev) = self.client.try_next_event() {
            let bytes = match ev {
                ClientEvent::Datagram(b) => b.to_vec(),
                ClientEvent::Message(b) => b,
                other => panic!("session {} ended: {other:?}", self.session),
            };
            if let Ok(ControlMessage::CommandsRefused { counts }) = ControlMessage::decode(&bytes) {
                self.reports.push(counts);
            }
        }
    }

    fn send(&self, packet: &PlayerPacket) {
        self.client
            .send_datagram(&command_frame(packet))
            .expect("command sent");
    }
}

fn upsert(gid: u32, at: [f64; 3], velocity: [i16; 3]) -> PlayerPacket {
    PlayerPacket {
        global_id: gid,
        position: at.map(|m| Micros::from_num(m * 1e6)),
        velocity,
        acceleration: [0; 3],
        hlc: 0,
        command: PlayerCommand::PositionUpsert,
    }
}

/// The zone's `/state`: held id -> position in metres.
fn positions(zone: &Zone) -> BTreeMap<u32, [f64; 3]> {
    let state = zone_probe::http_get(zone.metrics, "/state").expect("/state answers");
    state
        .lines()
        .filter_map(|l| l.strip_prefix("E "))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let c = |i: usize| (w[i].parse::<i128>().unwrap() >> 64) as f64 / 1e6;
            (w[0].parse().unwrap(), [c(1), c(2), c(3)])
        })
        .collect()
}

/// `fabric_zone_commands_refused_total{reason=...}` per reason, and the other samples by name.
fn refused_by_reason(zone: &Zone) -> BTreeMap<String, f64> {
    let text = zone_probe::http_get(zone.metrics, "/metrics").expect("/metrics answers");
    text.lines()
        .filter(|l| l.starts_with("fabric_zone_commands_refused_total{"))
        .filter_map(|l| {
            let reason = l.split("reason=\"").nth(1)?.split('"').next()?;
            Some((reason.to_owned(), l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect()
}

/// Waits until `check` holds on the zone's state (published once a second).
fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn players_join_move_and_hostile_commands_are_refused_counted_and_reported() {
    let mut zone = start_zone("1");
    let mut walker = Player::join(&zone, [0.0, 0.0, 0.0]);
    let mut hostile = Player::join(&zone, [3.0, 0.0, 0.0]);
    assert_ne!(walker.avatar, hostile.avatar, "one avatar per player");
    wait_until("both avatars in /state at their spawn points", || {
        let p = positions(&zone);
        p.get(&walker.avatar) == Some(&[0.0; 3]) && p.get(&hostile.avatar) == Some(&[3.0, 0.0, 0.0])
    });

    // The hostile client: another player's avatar, faster than v_max (a diagonal at the
    // per-axis maximum), a jump of 10 m in one tick, malformed bytes.
    hostile.send(&upsert(walker.avatar, [5.0, 0.0, 0.0], [0; 3]));
    hostile.send(&upsert(hostile.avatar, [3.0, 0.0, 0.0], [32767, 32767, 0]));
    hostile.send(&upsert(hostile.avatar, [13.0, 0.0, 0.0], [0; 3]));
    hostile
        .client
        .send_datagram(b"\x43this is not a player packet")
        .unwrap();
    let mut bad_version = command_frame(&upsert(hostile.avatar, [3.0, 0.0, 0.0], [0; 3]));
    bad_version[1 + 45] = 9;
    hostile.client.send_datagram(&bad_version).unwrap();
    assert_eq!(bad_version[0], FRAME_COMMAND);

    // Then 10,000 commands in one second, while the walker walks 2 m along x at 2 m/s.
    let flood = upsert(hostile.avatar, [3.0, 0.0, 0.0], [0; 3]);
    let started = Instant::now();
    let mut sent = 0u32;
    let mut step = 0;
    // Paced at 10,000 per second; on a loaded machine the loop runs until every one was sent.
    while started.elapsed() < Duration::from_secs(1) || step < 20 || sent < 10_000 {
        let due = (started.elapsed().as_micros() / 100) as u32;
        while sent < due.min(10_000) {
            hostile.send(&flood);
            sent += 1;
        }
        let due_steps = (started.elapsed().as_millis() / 50) as i32;
        while step < due_steps.min(20) {
            step += 1;
            walker.send(&upsert(
                walker.avatar,
                [0.1 * f64::from(step), 0.0, 0.0],
                [0; 3],
            ));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    assert_eq!(sent, 10_000);

    wait_until("the walker's avatar at x = 2 m", || {
        positions(&zone).get(&walker.avatar) == Some(&[2.0, 0.0, 0.0])
    });
    wait_until("the refusals counted per reason", || {
        let r = refused_by_reason(&zone);
        let n = |k: &str| r.get(k).copied().unwrap_or(0.0);
        n("authority") >= 1.0 && n("speed") >= 2.0 && n("malformed") >= 2.0 && n("rate") >= 5_000.0
    });
    let r = refused_by_reason(&zone);
    assert_eq!(r["authority"], 1.0, "{r:?}");
    assert_eq!(r["speed"], 2.0, "{r:?}");
    assert_eq!(r["malformed"], 2.0, "{r:?}");
    assert_eq!(r["not_joined"], 0.0, "{r:?}");
    // The burst (120) and about 60 a second pass; the rest of the flood that arrived is refused.
    assert!(r["rate"] >= 5_000.0 && r["rate"] <= 10_000.0, "{r:?}");
    assert_eq!(
        positions(&zone).get(&hostile.avatar),
        Some(&[3.0, 0.0, 0.0]),
        "nothing moved the hostile avatar off its spot"
    );

    wait_until("an error report at the hostile client", || {
        hostile.drain();
        hostile.reports.iter().any(|c| c.contains_key("rate"))
    });
    let total: BTreeMap<String, u64> =
        hostile
            .reports
            .iter()
            .flatten()
            .fold(BTreeMap::new(), |mut acc, (k, v)| {
                *acc.entry(k.clone()).or_default() += v;
                acc
            });
    assert!(
        total.get("authority") == Some(&1) && total.get("malformed") == Some(&2),
        "the reports carry the counts: {total:?}"
    );
    assert!(
        hostile.reports.len() <= 4,
        "at most one report a second: {}",
        hostile.reports.len()
    );
    walker.drain();
    assert!(
        walker.reports.is_empty(),
        "the walker had no refusal: {:?}",
        walker.reports
    );

    // Closing a session despawns its avatar.
    hostile.client.close("done");
    let gone = hostile.avatar;
    wait_until("the hostile avatar despawned", || {
        !positions(&zone).contains_key(&gone)
    });
    assert!(
        positions(&zone).contains_key(&walker.avatar),
        "the walker stays"
    );
    // The stats line printed after the close covers the whole run (its counts are totals).
    let stats = zone
        .proc
        .wait_for_line(
            |l| {
                l.starts_with("FABRIC_ZONE_STATS")
                    && l.contains(" players=1 ")
                    && l.contains(" refused_authority=1 ")
            },
            Duration::from_secs(5),
        )
        .expect("a stats line after the close");
    let num = |k: &str| -> u64 { field(&stats, k).and_then(|v| v.parse().ok()).unwrap() };
    assert_eq!(num("overruns"), 0, "every tick on time: {stats}");
    assert_eq!(num("dropped_ticks"), 0, "no tick dropped: {stats}");
    assert!(num("refused_rate") >= 5_000, "{stats}");
    assert!(num("commands_accepted") >= 20, "{stats}");
    zone.proc.stop();
}

#[test]
fn a_spawn_point_in_another_zones_range_is_answered_with_that_zone() {
    let mut zone = start_zone("2");
    let layout = ZoneLayout::new(2).unwrap();
    let bounds = WorldBounds::cube_metres(15).unwrap();
    let theirs =
        default_spawn(&ZoneConfig::new(1, layout, bounds)).map(|c| c.to_num::<f64>() / 1e6);
    let (_other, _, answer) = spawn(&zone, Some(theirs));
    assert_eq!(
        answer,
        ControlMessage::AvatarElsewhere {
            zone: 1,
            address: None
        },
        "a point in zone 1's range, asked of zone 0"
    );
    let (_mine, session, answer) = spawn(&zone, None);
    let ControlMessage::Avatar { id, zone: made_by } = answer else {
        panic!("the zone's own spawn point gives an avatar: {answer:?}");
    };
    assert_eq!(made_by, 0);
    let ours = default_spawn(&ZoneConfig::new(0, layout, bounds)).map(|c| c.to_num::<f64>() / 1e6);
    wait_until("the avatar in /state at zone 0's spawn point", || {
        positions(&zone).get(&id) == Some(&ours)
    });
    assert_eq!(
        positions(&zone).len(),
        1,
        "only session {session}'s avatar was made"
    );
    zone.proc.stop();
}

#[test]
fn a_client_through_the_gateway_gets_its_avatar_and_moves_it() {
    let mut zone = start_zone("1");
    let mut gateway =
        fabric_e2e::start_gateway(zone.port, &zone.hash).expect("gateway in front of the zone");
    let (client, _, answer) = spawn_via(gateway.port, &gateway.cert_hash, Some([-4.0, 1.0, 2.0]));
    let ControlMessage::Avatar { id, zone: made_by } = answer else {
        panic!("an avatar through the gateway: {answer:?}");
    };
    assert_eq!(made_by, 0);
    wait_until("the avatar in /state at its spawn point", || {
        positions(&zone).get(&id) == Some(&[-4.0, 1.0, 2.0])
    });
    for step in 1..=10 {
        let to = [-4.0 + 0.25 * f64::from(step), 1.0, 2.0];
        client
            .send_datagram(&command_frame(&upsert(id, to, [0; 3])))
            .expect("command sent");
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_until(
        "the avatar moved by the commands sent through the gateway",
        || positions(&zone).get(&id) == Some(&[-1.5, 1.0, 2.0]),
    );
    client.close("done");
    wait_until("the avatar despawned when the session closed", || {
        !positions(&zone).contains_key(&id)
    });
    gateway.proc.stop();
    zone.proc.stop();
}
