//! The desync check: does what a player sees match what the zones hold?
//!
//! A sampler task reads every zone's `/state` (its tick and the exact position and velocity of
//! everything it holds, refreshed by the zone once a second) a few times a second and publishes
//! the newest reading per zone ([`Truths`]). A player that applies a replication packet of the
//! very tick of its zone's newest reading compares, once per reading, every entity the packet
//! updated and the zone holds ([`compare`]): a **desync** is an entity more than one tick of its
//! own motion (plus the wire's 1 mm position step) away from where the zone has it. Packets a
//! lossy link drops are simply not compared (the player compares at the next reading it meets).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use fabric_core::client_view::ClientMirror;
use fabric_core::coords::{Micros, Vec3};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the wire's position code may be off by, metres (the fabric's 1 mm step).
pub const POSITION_STEP_M: f64 = 0.0011;

/// Largest `/state` answer read (a zone holding tens of thousands of entities fits).
const MAX_STATE_BYTES: u64 = 16 << 20;

/// Why a `/state` reading is unusable.
#[derive(Debug, Error)]
pub enum StateError {
    /// The zone did not answer.
    #[error("reading /state: {0}")]
    Io(#[from] std::io::Error),
    /// The answer has no `tick=` on its first line.
    #[error("/state without a tick")]
    NoTick,
    /// An entity line is not `E id x y z vx vy vz`.
    #[error("/state entity line `{0}`")]
    BadLine(String),
}

/// One zone's state at one tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    /// The zone's tick (low 32 bits, as replication packets carry it).
    pub tick: u32,
    /// Global id -> position and velocity per tick.
    pub held: HashMap<u32, (Vec3, Vec3)>,
}

/// Parses a zone's `/state` answer (the body).
pub fn parse_state(text: &str) -> Result<Truth, StateError> {
    let tick = text
        .lines()
        .next()
        .and_then(|l| l.split(' ').find_map(|f| f.strip_prefix("tick=")))
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or(StateError::NoTick)?;
    let mut held = HashMap::new();
    for line in text.lines().filter_map(|l| l.strip_prefix("E ")) {
        let bad = || StateError::BadLine(line.chars().take(120).collect());
        let n: Vec<i128> = line
            .split(' ')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?;
        if n.len() != 7 || !(0..=i128::from(u32::MAX)).contains(&n[0]) {
            return Err(bad());
        }
        let v = |k: usize| [n[k], n[k + 1], n[k + 2]].map(Micros::from_bits);
        held.insert(n[0] as u32, (v(1), v(4)));
    }
    Ok(Truth {
        tick: tick as u32,
        held,
    })
}

/// A reading and its number (a new number with each new reading).
pub type Reading = (u64, Arc<Truth>);

/// The newest reading of each zone.
#[derive(Debug)]
pub struct Truths {
    zones: Vec<RwLock<Option<Reading>>>,
}

impl Truths {
    /// No readings yet, for `zones` zones.
    pub fn new(zones: usize) -> Self {
        Self {
            zones: (0..zones).map(|_| RwLock::new(None)).collect(),
        }
    }

    /// Zone `zone`'s newest reading and its number.
    pub fn get(&self, zone: u8) -> Option<Reading> {
        let slot = self.zones.get(usize::from(zone))?;
        slot.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, zone: usize, seq: u64, t: Truth) {
        if let Some(slot) = self.zones.get(zone) {
            *slot.write().unwrap_or_else(|p| p.into_inner()) = Some((seq, Arc::new(t)));
        }
    }
}

/// Reads `/state` of the zones at `metrics` (by zone index) every `every`, publishing each new
/// tick's reading in `truths`; runs until the runtime stops.
pub async fn sample(metrics: Vec<SocketAddr>, truths: Arc<Truths>, every: Duration) {
    let mut last = vec![None::<u32>; metrics.len()];
    let mut seq = 0;
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        for (k, addr) in metrics.iter().enumerate() {
            let Ok(t) = read_state(*addr).await else {
                continue;
            };
            if last[k] != Some(t.tick) {
                last[k] = Some(t.tick);
                seq += 1;
                truths.set(k, seq, t);
            }
        }
    }
}

/// One `GET /state` on loopback.
pub async fn read_state(addr: SocketAddr) -> Result<Truth, StateError> {
    let read = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(b"GET /state HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await?;
        let mut raw = Vec::new();
        s.take(MAX_STATE_BYTES).read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let text = String::from_utf8_lossy(&raw);
    let body = text.split_once("\r\n\r\n").map_or(&*text, |(_, b)| b);
    parse_state(body)
}

/// One comparison of a player's view with its zone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Compared {
    /// Entities compared.
    pub entities: u64,
    /// Of those, the ones further off than one tick of their motion.
    pub desynced: u64,
    /// The largest distance beyond the allowance, metres (0 when none is beyond).
    pub worst_excess_m: f64,
}

impl Compared {
    /// Adds `other`.
    pub fn add(&mut self, other: Compared) {
        self.entities += other.entities;
        self.desynced += other.desynced;
        self.worst_excess_m = self.worst_excess_m.max(other.worst_excess_m);
    }
}

/// Compares the entities `mirror` holds at `tick` (updated by that tick's packet) with
/// `truth`, which must be of the same tick; entities the zone does not hold are skipped.
pub fn compare(mirror: &ClientMirror, truth: &Truth) -> Compared {
    let mut c = Compared::default();
    for e in mirror.iter().filter(|e| e.tick == truth.tick) {
        let Some((at, v)) = truth.held.get(&e.global_id) else {
            continue;
        };
        let allowed = norm_m(v) + POSITION_STEP_M;
        let off = distance_m(&e.position, at);
        c.entities += 1;
        if off > allowed {
            c.desynced += 1;
            c.worst_excess_m = c.worst_excess_m.max(off - allowed);
        }
    }
    c
}

fn norm_m(v: &Vec3) -> f64 {
    v.iter()
        .map(|c| (c.to_num::<f64>() / 1e6).powi(2))
        .sum::<f64>()
        .sqrt()
}

fn distance_m(a: &Vec3, b: &Vec3) -> f64 {
    (0..3)
        .map(|k| ((a[k] - b[k]).to_num::<f64>() / 1e6).powi(2))
        .sum::<f64>()
        .sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(m: f64) -> i128 {
        Micros::from_num(m * 1e6).to_bits()
    }

    #[test]
    fn a_state_answer_parses_and_bad_lines_are_typed_errors() {
        let text = format!(
            "FABRIC_ZONE_STATE zone=0 tick=4294967301 dropped=0 held=7 incoming=\nE 7 {} {} {} {} 0 0\n",
            bits(1.5),
            bits(-2.0),
            bits(0.25),
            bits(0.05),
        );
        let t = parse_state(&text).unwrap();
        assert_eq!(t.tick, 5, "the low 32 bits, as packets carry it");
        let (p, v) = t.held[&7];
        assert_eq!(p[1].to_num::<f64>(), -2_000_000.0);
        assert!((norm_m(&v) - 0.05).abs() < 1e-9);
        assert!(matches!(parse_state("nothing"), Err(StateError::NoTick)));
        assert!(matches!(
            parse_state("X tick=1\nE 1 2 3\n"),
            Err(StateError::BadLine(_))
        ));
        assert!(matches!(
            parse_state("X tick=1\nE -1 0 0 0 0 0 0\n"),
            Err(StateError::BadLine(_))
        ));
    }

    #[test]
    fn truths_keep_the_newest_reading_per_zone() {
        let t = Truths::new(2);
        assert!(t.get(0).is_none());
        assert!(t.get(9).is_none(), "no such zone");
        t.set(1, 3, parse_state("S tick=10\n").unwrap());
        let (seq, truth) = t.get(1).unwrap();
        assert_eq!((seq, truth.tick), (3, 10));
    }
}
