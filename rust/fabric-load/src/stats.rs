//! What each simulated player measured ([`PlayerStats`]), the fixed-bucket [`Histogram`] it
//! records gaps and delays in, and the live counters ([`Live`]) the progress line reads.
//!
//! Definitions (the same in the progress line, the summary and the report):
//! - **own updates**: replication packets after which the player's mirror holds its own avatar
//!   at the packet's tick (the zone sent a record for it in that packet).
//! - **gap**: ticks between two successive own updates (1 = every tick).
//! - **nearest update rate**: for the [`NEAREST`] entities nearest to the avatar (other than the
//!   avatar) after each packet, the share updated in that packet, summed over the packets and
//!   divided by the seconds with an avatar: updates per second of a typical near entity.
//! - **delay**: the packet's arrival time minus its tick's nominal time (`tick / tick_hz`),
//!   less the smallest such difference the session has seen: how much later than its fastest
//!   packet a packet arrived. It contains queueing in the zone, the network and this process,
//!   and a zone's late ticks; it cannot contain the constant part of the one-way delay (the
//!   zone's clock is not shared), so it is a delay *variation*, exact only up to that constant.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::desync::Compared;

/// Entities counted as "nearest" for the nearest update rate.
pub const NEAREST: usize = 8;

/// Gap histogram buckets (1 tick each; the last one holds everything longer).
pub const GAP_BUCKETS: usize = 64;

/// Delay histogram buckets ([`DELAY_BUCKET_MS`] each, 5 s in all; the last one holds
/// everything longer).
pub const DELAY_BUCKETS: usize = 2500;

/// Width of a delay bucket, milliseconds.
pub const DELAY_BUCKET_MS: f64 = 2.0;

/// Most error texts a player keeps (the count goes on).
pub const ERRORS_KEPT: usize = 4;

/// Counts in buckets of equal `width` from 0; the last bucket holds the overflow. Written as
/// JSON sparsely (the non-empty buckets only), so thousands of players' histograms stay small.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "SparseHistogram", try_from = "SparseHistogram")]
pub struct Histogram {
    width: f64,
    counts: Vec<u64>,
}

/// [`Histogram`] as written: width, bucket count, and `[bucket, count]` of the non-empty ones.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SparseHistogram {
    width: f64,
    buckets: usize,
    counts: Vec<(usize, u64)>,
}

impl From<Histogram> for SparseHistogram {
    fn from(h: Histogram) -> Self {
        Self {
            width: h.width,
            buckets: h.counts.len(),
            counts: h
                .counts
                .iter()
                .enumerate()
                .filter(|c| *c.1 > 0)
                .map(|(k, c)| (k, *c))
                .collect(),
        }
    }
}

impl TryFrom<SparseHistogram> for Histogram {
    type Error = String;

    fn try_from(s: SparseHistogram) -> Result<Self, String> {
        if s.buckets == 0 || s.buckets > 1 << 20 || s.width.is_nan() || s.width <= 0.0 {
            return Err(format!("histogram of {} buckets of {}", s.buckets, s.width));
        }
        let mut h = Histogram::new(s.width, s.buckets);
        for (k, c) in s.counts {
            *h.counts
                .get_mut(k)
                .ok_or(format!("bucket {k} of {}", s.buckets))? = c;
        }
        Ok(h)
    }
}

impl Histogram {
    /// `buckets` buckets of `width` (both at least 1 and positive).
    pub fn new(width: f64, buckets: usize) -> Self {
        Self {
            width: if width > 0.0 { width } else { 1.0 },
            counts: vec![0; buckets.max(1)],
        }
    }

    /// Counts one value (negative values count as 0).
    pub fn record(&mut self, v: f64) {
        let last = self.counts.len() - 1;
        let k = ((v.max(0.0) / self.width) as usize).min(last);
        self.counts[k] += 1;
    }

    /// Values counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds `other`'s counts (same layout; another layout is ignored).
    pub fn merge(&mut self, other: &Histogram) {
        if other.counts.len() == self.counts.len() && other.width == self.width {
            for (a, b) in self.counts.iter_mut().zip(&other.counts) {
                *a += b;
            }
        }
    }

    /// The smallest bucket edge below which at least the share `q` of the values lie (the upper
    /// edge of the bucket holding the `q` quantile); 0 when empty.
    pub fn quantile(&self, q: f64) -> f64 {
        let n = self.count();
        if n == 0 {
            return 0.0;
        }
        let want = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (k, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return (k + 1) as f64 * self.width;
            }
        }
        self.counts.len() as f64 * self.width
    }

    /// The buckets as `(lower edge, count)`.
    pub fn buckets(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .map(|(k, c)| (k as f64 * self.width, *c))
    }
}

/// What one simulated player experienced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlayerStats {
    /// The player's index.
    pub index: u32,
    /// Sessions that got an avatar (1 plus one per hand-off).
    pub joins: u32,
    /// Times the avatar left its zone and the player joined the zone it went to.
    pub handoffs: u32,
    /// Seconds with an avatar.
    pub seconds: f64,
    /// Bytes received (replication and control).
    pub bytes: u64,
    /// Replication packets applied.
    pub packets: u64,
    /// Own updates (see the module docs).
    pub own_updates: u64,
    /// Sum over packets of the share of the nearest entities updated.
    pub nearest_updates: f64,
    /// Longest gap between own updates, ticks.
    pub max_gap_ticks: u32,
    /// Gaps between own updates, ticks.
    pub gaps: Histogram,
    /// Delays (see the module docs), milliseconds.
    pub delays: Histogram,
    /// Position commands sent.
    pub commands_sent: u64,
    /// Commands the zone reported refused (reason `not_here`, the hand-off signal, excluded).
    pub commands_refused: u64,
    /// Errors (failed joins, ended sessions, refused packets), counted.
    pub error_count: u32,
    /// The first [`ERRORS_KEPT`] error texts.
    pub errors: Vec<String>,
    /// Seconds from dropping its session in the reconnect storm to the first own update after
    /// it; `None` without a storm, or when it never got back.
    #[serde(default)]
    pub storm_recovery_s: Option<f64>,
    /// When the storm dropped this player's session (not written).
    #[serde(skip)]
    pub storm_dropped_at: Option<tokio::time::Instant>,
    /// Where the storm recovery's time went: seconds from the drop to each step of the last
    /// join attempt after it; `None` without a storm.
    #[serde(default)]
    pub storm_phases: Option<StormPhases>,
    /// Seconds from each lost session (one that had an avatar and ended in an error, such as
    /// its zone's process dying) to the first own update after it.
    #[serde(default)]
    pub outages: Vec<f64>,
    /// Lost sessions after which the player was not back by the end of the run.
    #[serde(default)]
    pub outages_unrecovered: u32,
    /// When the session in play was lost, until the player is back (not written).
    #[serde(skip)]
    pub lost_at: Option<tokio::time::Instant>,
    /// Seconds since the players started at which each outage of [`PlayerStats::outages`]
    /// ended (the first own update after it).
    #[serde(default)]
    pub outage_ends_s: Vec<f64>,
    /// Its view compared with the zones' `/state` ([`crate::desync`]).
    #[serde(default)]
    pub compared: Compared,
    /// Own updates, time and gaps before and after a fault ([`crate::windows`]), when the run
    /// has windows.
    #[serde(default)]
    pub windows: Option<[crate::windows::Window; 2]>,
    /// How its session ended when it stalled ([`crate::stall`]); `None` when it did not.
    #[serde(default)]
    pub stall: Option<crate::stall::StallEnd>,
}

/// Seconds from a player's drop in the reconnect storm to each step of its way back (the
/// first own update after it is [`PlayerStats::storm_recovery_s`]); `None`: not reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StormPhases {
    /// The join token came from the registry.
    pub token_s: Option<f64>,
    /// The WebTransport session to the zone was open (QUIC and TLS handshake, CONNECT).
    pub connected_s: Option<f64>,
    /// The zone's `welcome` arrived (it checked the token).
    pub welcomed_s: Option<f64>,
    /// The zone's `avatar` arrived (the spawn was done).
    pub avatar_s: Option<f64>,
}

impl PlayerStats {
    /// Seconds since the storm dropped this player while it is not back yet; `None` otherwise
    /// (no storm, or back already).
    pub fn since_storm_drop(&self) -> Option<f64> {
        match (self.storm_dropped_at, self.storm_recovery_s) {
            (Some(at), None) => Some(at.elapsed().as_secs_f64()),
            _ => None,
        }
    }

    /// Records one step of the way back from the storm with `set`, while the player is not back.
    pub fn storm_step(&mut self, set: impl FnOnce(&mut StormPhases, f64)) {
        if let Some(t) = self.since_storm_drop() {
            set(self.storm_phases.get_or_insert_default(), t);
        }
    }

    /// Nothing measured yet.
    pub fn new(index: u32) -> Self {
        Self {
            index,
            joins: 0,
            handoffs: 0,
            seconds: 0.0,
            bytes: 0,
            packets: 0,
            own_updates: 0,
            nearest_updates: 0.0,
            max_gap_ticks: 0,
            gaps: Histogram::new(1.0, GAP_BUCKETS),
            delays: Histogram::new(DELAY_BUCKET_MS, DELAY_BUCKETS),
            commands_sent: 0,
            commands_refused: 0,
            error_count: 0,
            errors: Vec::new(),
            storm_recovery_s: None,
            storm_dropped_at: None,
            storm_phases: None,
            outages: Vec::new(),
            outages_unrecovered: 0,
            lost_at: None,
            outage_ends_s: Vec::new(),
            compared: Compared::default(),
            windows: None,
            stall: None,
        }
    }

    /// Counts an error and keeps its text while fewer than [`ERRORS_KEPT`] are kept.
    pub fn error(&mut self, text: impl Into<String>) {
        self.error_count += 1;
        if self.errors.len() < ERRORS_KEPT {
            self.errors.push(text.into());
        }
    }

    /// Own updates per second with an avatar.
    pub fn own_hz(&self) -> f64 {
        per_second(self.own_updates as f64, self.seconds)
    }

    /// Updates per second of a typical nearest entity.
    pub fn nearest_hz(&self) -> f64 {
        per_second(self.nearest_updates, self.seconds)
    }

    /// Bytes received per second with an avatar.
    pub fn bytes_per_s(&self) -> f64 {
        per_second(self.bytes as f64, self.seconds)
    }
}

fn per_second(v: f64, s: f64) -> f64 {
    if s > 0.0 { v / s } else { 0.0 }
}

/// Counters every player adds to as it goes, read (and the per-second ones reset) by the
/// progress line once a second. Atomics only: nothing allocates on a packet.
#[derive(Debug)]
pub struct Live {
    /// When the players started (the run's clock: seconds "since the start" count from here).
    pub started: tokio::time::Instant,
    /// Players holding an avatar now.
    pub connected: AtomicU32,
    /// Players that ever got an avatar.
    pub joined: AtomicU32,
    /// Replication packets applied since the last reset.
    pub packets: AtomicU64,
    /// Own updates since the last reset.
    pub own_updates: AtomicU64,
    /// Bytes received since the last reset.
    pub bytes: AtomicU64,
    /// Errors so far.
    pub errors: AtomicU64,
    /// Gaps (ticks) since the last reset.
    gaps: [AtomicU64; GAP_BUCKETS],
}

impl Default for Live {
    fn default() -> Self {
        Self {
            started: tokio::time::Instant::now(),
            connected: AtomicU32::new(0),
            joined: AtomicU32::new(0),
            packets: AtomicU64::new(0),
            own_updates: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            gaps: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// One second of the run, as the progress line shows it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Second {
    /// Seconds since the players started.
    pub t: f64,
    /// Players holding an avatar.
    pub connected: u32,
    /// Replication packets applied per second, all players.
    pub packets_per_s: f64,
    /// Own updates per second, all players.
    pub updates_per_s: f64,
    /// Bytes received per second, all players.
    pub bytes_per_s: f64,
    /// 99th percentile of the gaps between own updates in this second, ticks.
    pub p99_gap_ticks: f64,
    /// Errors so far.
    pub errors: u64,
}

impl Live {
    /// Counters of a run whose players started at `started`.
    pub fn starting(started: tokio::time::Instant) -> Self {
        Self {
            started,
            ..Self::default()
        }
    }

    /// Seconds since the players started.
    pub fn since_start(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Counts one gap between own updates.
    pub fn gap(&self, ticks: u32) {
        let k = (ticks as usize).min(GAP_BUCKETS - 1);
        self.gaps[k].fetch_add(1, Ordering::Relaxed);
    }

    /// Takes the per-second counters (resetting them) as the second ending at `t` that
    /// lasted `dt` seconds.
    pub fn take_second(&self, t: f64, dt: f64) -> Second {
        let mut h = Histogram::new(1.0, GAP_BUCKETS);
        for (k, g) in self.gaps.iter().enumerate() {
            let n = g.swap(0, Ordering::Relaxed);
            h.counts[k] = n;
        }
        let rate = |a: &AtomicU64| per_second(a.swap(0, Ordering::Relaxed) as f64, dt);
        Second {
            t,
            connected: self.connected.load(Ordering::Relaxed),
            packets_per_s: rate(&self.packets),
            updates_per_s: rate(&self.own_updates),
            bytes_per_s: rate(&self.bytes),
            // The bucket's lower edge is the gap itself (1 tick wide).
            p99_gap_ticks: (h.quantile(0.99) - 1.0).max(0.0),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_bucket_upper_edges_and_overflow_lands_in_the_last_bucket() {
        let mut h = Histogram::new(1.0, 10);
        for v in [0.2, 1.5, 1.7, 2.0, 500.0] {
            h.record(v);
        }
        assert_eq!(h.count(), 5);
        assert_eq!(h.quantile(0.2), 1.0, "the smallest value is in [0, 1)");
        assert_eq!(h.quantile(0.6), 2.0, "three of five are below 2");
        assert_eq!(h.quantile(1.0), 10.0, "500 went to the last bucket");
        assert_eq!(Histogram::new(1.0, 4).quantile(0.5), 0.0, "empty");
        let mut m = h.clone();
        m.merge(&h);
        assert_eq!(m.count(), 10);
        assert_eq!(m.quantile(0.6), 2.0);
    }

    #[test]
    fn a_histogram_is_written_sparsely_and_read_back_and_a_bad_one_is_refused() {
        let mut h = Histogram::new(2.0, 2500);
        h.record(3.0);
        h.record(9000.0);
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(
            json,
            r#"{"width":2.0,"buckets":2500,"counts":[[1,1],[2499,1]]}"#
        );
        assert_eq!(serde_json::from_str::<Histogram>(&json).unwrap(), h);
        let bad = r#"{"width":2.0,"buckets":4,"counts":[[4,1]]}"#;
        assert!(
            serde_json::from_str::<Histogram>(bad).is_err(),
            "bucket out of range"
        );
        let bad = r#"{"width":0.0,"buckets":4,"counts":[]}"#;
        assert!(
            serde_json::from_str::<Histogram>(bad).is_err(),
            "zero width"
        );
    }

    #[test]
    fn a_second_reports_rates_and_the_gap_p99_then_starts_again() {
        let live = Live::default();
        live.packets.fetch_add(40, Ordering::Relaxed);
        live.bytes.fetch_add(4000, Ordering::Relaxed);
        for _ in 0..99 {
            live.gap(1);
        }
        live.gap(7);
        let s = live.take_second(1.0, 2.0);
        assert_eq!(s.packets_per_s, 20.0);
        assert_eq!(s.bytes_per_s, 2000.0);
        assert_eq!(s.p99_gap_ticks, 1.0, "99 of 100 gaps were 1 tick");
        let s = live.take_second(2.0, 1.0);
        assert_eq!((s.packets_per_s, s.p99_gap_ticks), (0.0, 0.0), "reset");
    }

    #[test]
    fn rates_are_per_second_with_an_avatar_and_errors_keep_only_the_first_texts() {
        let mut p = PlayerStats::new(3);
        p.seconds = 4.0;
        p.own_updates = 80;
        p.bytes = 8000;
        assert_eq!((p.own_hz(), p.bytes_per_s()), (20.0, 2000.0));
        for k in 0..10 {
            p.error(format!("e{k}"));
        }
        assert_eq!(p.error_count, 10);
        assert_eq!(p.errors.len(), ERRORS_KEPT);
        assert_eq!(PlayerStats::new(0).own_hz(), 0.0, "no time, no rate");
    }
}
