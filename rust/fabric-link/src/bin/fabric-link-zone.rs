//! A stand-alone zone process on static fabric membership: a real `fabric_core` zone driven
//! through `ZoneLinks`, wanderers spawned in its own range, its state printed ten times a
//! second. For process-level tests (a zone killed with SIGKILL) and for trying links by hand.
//!
//! ```text
//! fabric-link-zone --fabric F --fabric-key-file KEY --zone K --zones N [--bind 127.0.0.1:0]
//!                  [--tick-hz 20] [--entities 0] [--seed 1] [--idle-ms 6000]
//! ```
//! Prints `LINK_ZONE_READY <member>` (the `zone/zones@host:port#hash` entry others need), then
//! reads lines `members <member> <member> ...` on standard input, and prints
//! `LINK_ZONE_STATE ticks=.. linked=a,b held=.. staging=.. rollbacks=.. commits=.. arrivals=..`
//! every 100 ms (`held`: owned, staging and arriving slots).

use std::io::BufRead as _;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fabric_core::config::ZoneConfig;
use fabric_core::coords::{WorldBounds, micros};
use fabric_core::entity::Entity;
use fabric_core::hilbert;
use fabric_core::sim::rng::SimRng;
use fabric_core::slots::SlotState;
use fabric_core::zone::Zone;
use fabric_core::zones::{ZoneId, ZoneLayout};
use fabric_link::drive::Driver;
use fabric_link::links::load_fabric_key;
use fabric_link::{LinkConfig, Member, ZoneLinks};

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let need = |n: &str| arg(&args, n).with_context(|| format!("{n} is required"));
    let num = |n: &str, d: u64| -> anyhow::Result<u64> {
        arg(&args, n).map_or(Ok(d), |v| v.parse().with_context(|| format!("{n} {v}")))
    };
    let fabric = need("--fabric")?;
    let key = load_fabric_key(need("--fabric-key-file")?.as_ref())?;
    let zone = num("--zone", u64::MAX)? as ZoneId;
    let zones = num("--zones", 0)? as usize;
    let tick_hz = num("--tick-hz", 20)? as u32;
    let layout = ZoneLayout::new(zones).context("--zones")?;
    if zone as usize >= zones {
        bail!("--zone must be below --zones");
    }
    let bind = arg(&args, "--bind").unwrap_or("127.0.0.1:0").parse()?;
    let mut cfg = LinkConfig::with_fabric_key(fabric, zone, layout, bind, &key)?;
    cfg.idle_timeout = Duration::from_millis(num("--idle-ms", 6000)?);
    let mut links = ZoneLinks::start(cfg)?;
    let bounds = WorldBounds::demo();
    let mut z = Zone::new(ZoneConfig {
        tick_hz,
        hysteresis_ticks: tick_hz / 4,
        ..ZoneConfig::new(zone, layout, bounds)
    })?;
    let mut rng = SimRng::new(num("--seed", 1)?);
    let vq = z.config().v_max_um / 4;
    let (mut spawned, want) = (0u32, num("--entities", 0)? as u32);
    while spawned < want {
        let p = [0, 1, 2].map(|k| micros(rng.range_i64(bounds.min()[k], bounds.max()[k])));
        if layout.zone_of(hilbert::encode_position(&bounds, &p)) != zone {
            continue;
        }
        let v = [0, 1, 2].map(|_| micros(rng.range_i64(-vq, vq)));
        z.spawn(Entity::at(zone as u32 * 1_000_000 + spawned, p).with_velocity(v))?;
        spawned += 1;
    }
    println!("LINK_ZONE_READY {}", links.member().to_arg());
    let (tx, rx) = std::sync::mpsc::channel::<Vec<Member>>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("members ") {
                let ms: Result<Vec<Member>, _> =
                    rest.split_whitespace().map(Member::parse).collect();
                match ms {
                    Ok(ms) => {
                        let _ = tx.send(ms);
                    }
                    Err(e) => eprintln!("bad members line: {e}"),
                }
            }
        }
    });
    let waiter = links.waiter();
    let mut driver = Driver::new(tick_hz, true);
    let mut next_print = Instant::now();
    loop {
        if let Ok(ms) = rx.try_recv() {
            links.set_members(ms);
        }
        driver.step(&mut z, &mut links, 4);
        if Instant::now() >= next_print {
            next_print += Duration::from_millis(100);
            let linked: Vec<String> = links
                .neighbours()
                .iter()
                .filter(|&p| links.is_linked(p))
                .map(|p| p.to_string())
                .collect();
            let (mut held, mut staging) = (0, 0);
            for h in z.holdings() {
                match h.state {
                    SlotState::Owned | SlotState::Arriving => held += 1,
                    SlotState::Staging => {
                        held += 1;
                        staging += 1
                    }
                    _ => {}
                }
            }
            let s = z.stats();
            println!(
                "LINK_ZONE_STATE ticks={} linked={} held={held} staging={staging} rollbacks={} commits={} arrivals={}",
                driver.stats().ticks,
                linked.join(","),
                s.rollbacks_timeout + s.rollbacks_refused,
                s.commits,
                s.arrivals
            );
        }
        waiter.wait(
            driver
                .until_next_tick()
                .min(next_print.saturating_duration_since(Instant::now())),
        );
    }
}
