//! Hand-off latency and link traffic over real loopback links.
//!
//! `cargo run --release -p fabric-link --example handoff_bench -- [--zones 3] [--entities 1500]
//! [--seconds 20] [--tick-hz 20]`
//!
//! Starts the zones of one static fabric in this process, each on its own thread driving a real
//! `fabric_core` zone through real `ZoneLinks` (authenticated WebTransport sessions on
//! loopback), spawns wanderers that keep crossing borders, and prints the hand-off latency
//! measured by each sender (intent handed to the links -> `ACKK` drained: the hand-off is
//! decided; -> `CMAK`: the commit is acknowledged), p50/p99, and bytes per second per link.
//! The driver pumps packets between ticks, so the answer does not wait for the receiver's tick.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use fabric_core::config::ZoneConfig;
use fabric_core::coords::{WorldBounds, micros};
use fabric_core::entity::Entity;
use fabric_core::hilbert;
use fabric_core::sim::rng::SimRng;
use fabric_core::zone::Zone;
use fabric_core::zones::{ZoneId, ZoneLayout};
use fabric_link::drive::Driver;
use fabric_link::{LinkConfig, LinkStats, Member, ZoneLinks};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Outcome {
    zone: ZoneId,
    decided: Vec<Option<Duration>>,
    acked: Vec<Option<Duration>>,
    samples: usize,
    links: Vec<LinkStats>,
    commits: u64,
    ticks: u64,
}

fn main() {
    let zones = arg("--zones", 3) as usize;
    let entities = arg("--entities", 1500) as u32;
    let seconds = arg("--seconds", 20);
    let tick_hz = arg("--tick-hz", 20) as u32;
    let layout = ZoneLayout::new(zones).expect("1..=32 zones");
    let key = SigningKey::from_bytes(&[42; 32]);
    let bounds = WorldBounds::demo();
    let links: Vec<ZoneLinks> = (0..zones as ZoneId)
        .map(|z| {
            let cfg = LinkConfig::with_fabric_key(
                "bench",
                z,
                layout,
                "127.0.0.1:0".parse().unwrap(),
                &key,
            )
            .expect("link config");
            ZoneLinks::start(cfg).expect("links start")
        })
        .collect();
    let members: Vec<Member> = links.iter().map(ZoneLinks::member).collect();
    let mut zs: Vec<Zone> = (0..zones as ZoneId)
        .map(|z| {
            Zone::new(ZoneConfig {
                tick_hz,
                hysteresis_ticks: tick_hz,
                ..ZoneConfig::new(z, layout, bounds)
            })
            .expect("zone config")
        })
        .collect();
    let mut rng = SimRng::new(7);
    let vq = zs[0].config().v_max_um / 4;
    for id in 0..entities {
        let p = [0, 1, 2].map(|k| micros(rng.range_i64(bounds.min()[k], bounds.max()[k])));
        let v = [0, 1, 2].map(|_| micros(rng.range_i64(-vq, vq)));
        let z = layout.zone_of(hilbert::encode_position(&bounds, &p));
        zs[z as usize]
            .spawn(Entity::at(id, p).with_velocity(v))
            .expect("room for the wanderers");
    }
    let stop = Arc::new(AtomicBool::new(false));
    // Every zone reads its link figures before any zone closes its links.
    let read = Arc::new(std::sync::Barrier::new(zones));
    let threads: Vec<_> = zs
        .into_iter()
        .zip(links)
        .map(|(mut zone, mut links)| {
            links.set_members(members.clone());
            let stop = stop.clone();
            let read = read.clone();
            std::thread::spawn(move || {
                let waiter = links.waiter();
                let mut driver = Driver::new(tick_hz, true);
                // Do not tick before every link is up (the figures are about running links).
                while !stop.load(Ordering::Relaxed)
                    && !links.neighbours().iter().all(|z| links.is_linked(z))
                {
                    driver.pump(&mut zone, &mut links);
                    std::thread::sleep(Duration::from_millis(5));
                }
                let start = Instant::now();
                let mut driver = Driver::new(tick_hz, true);
                while !stop.load(Ordering::Relaxed) {
                    driver.step(&mut zone, &mut links, 4);
                    waiter.wait(driver.until_next_tick());
                }
                let h = driver.handoff();
                let _ = start;
                let link_stats = links.stats();
                read.wait();
                Outcome {
                    zone: zone.id(),
                    decided: [50.0, 99.0].map(|p| h.decided_percentile(p)).to_vec(),
                    acked: [50.0, 99.0].map(|p| h.acknowledged_percentile(p)).to_vec(),
                    samples: h.samples(),
                    links: link_stats,
                    commits: zone.stats().commits,
                    ticks: driver.stats().ticks,
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let ms =
        |d: Option<Duration>| d.map_or("-".into(), |d| format!("{:.2}", d.as_secs_f64() * 1e3));
    println!(
        "handoff_bench: {zones} zones, {entities} wanderers, {tick_hz} Hz (one tick = {:.1} ms), {seconds} s, loopback WebTransport links",
        1e3 / tick_hz as f64
    );
    println!(
        "{:>4} {:>8} {:>9} {:>12} {:>12} {:>12} {:>12}   links: zone out_B/s in_B/s rtt_ms",
        "zone", "commits", "samples", "ackk_p50_ms", "ackk_p99_ms", "cmak_p50_ms", "cmak_p99_ms"
    );
    for t in threads {
        let o = t.join().expect("zone thread");
        let secs = o.ticks as f64 / tick_hz as f64;
        let links: Vec<String> = o
            .links
            .iter()
            .map(|l| {
                format!(
                    "{}:{:.0}/{:.0}/{}",
                    l.zone,
                    l.bytes_out as f64 / secs,
                    l.bytes_in as f64 / secs,
                    ms(l.rtt)
                )
            })
            .collect();
        println!(
            "{:>4} {:>8} {:>9} {:>12} {:>12} {:>12} {:>12}   {}",
            o.zone,
            o.commits,
            o.samples,
            ms(o.decided[0]),
            ms(o.decided[1]),
            ms(o.acked[0]),
            ms(o.acked[1]),
            links.join(" ")
        );
    }
}
