//! Where a zone's tick spends its time: wall time and the tick thread's CPU time, for the whole
//! tick and for each phase, kept in fixed windows (no allocation once built).
//!
//! Wall time against CPU time tells preemption from work: on a loaded machine a tick whose wall
//! time is ten times its CPU time waited for a core, it did not compute. CPU time is the calling
//! thread's (`CLOCK_THREAD_CPUTIME_ID`, through `libc`: one `clock_gettime` call, no allocation;
//! 0 where the platform has no such clock).
//!
//! [`super::runtime::ZoneRuntime`] marks each phase of its tick with a [`Lap`]; the node adds
//! the client replication that follows the ticks of a frame ([`Phase::Replicate`]), and the
//! pumps between ticks are timed as their own window ([`TickProfile::pump`]).
//! [`ProfileMetrics`] publishes the summaries in the zone's Prometheus registry:
//!
//! | metric | kind | what |
//! |---|---|---|
//! | `fabric_zone_tick_cpu_p50_seconds` / `_p99_` / `_max_` | gauge | the tick thread's CPU time per tick, last minute |
//! | `fabric_zone_phase_p99_seconds{phase}` | gauge | wall time of one phase, p99 of the last minute |
//! | `fabric_zone_phase_cpu_p99_seconds{phase}` | gauge | CPU time of one phase, p99 of the last minute |
//! | `fabric_zone_pump_p99_seconds` / `fabric_zone_pump_cpu_p99_seconds` | gauge | one pump between ticks that handled packets |

use std::time::Instant;

use fabric_core::timing::{Summary, Timings};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// The phases of a tick, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Network events handed to the zone and the ghost table.
    Drain,
    /// `Zone::tick` (and the intents deferred to after it).
    Core,
    /// Interest rows encoded for the neighbours.
    Rows,
    /// The outbox handed to the links.
    Send,
    /// Slot states compared with the last tick's, ghosts expired, figures published.
    Observe,
    /// The tick's journal batch submitted.
    Journal,
    /// Client replication after the frame's ticks (timed by the node).
    Replicate,
}

/// How many phases.
pub const PHASE_COUNT: usize = 7;

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; PHASE_COUNT] = [
        Phase::Drain,
        Phase::Core,
        Phase::Rows,
        Phase::Send,
        Phase::Observe,
        Phase::Journal,
        Phase::Replicate,
    ];

    /// Its name (the `phase` label).
    pub fn name(self) -> &'static str {
        match self {
            Phase::Drain => "drain",
            Phase::Core => "core",
            Phase::Rows => "rows",
            Phase::Send => "send",
            Phase::Observe => "observe",
            Phase::Journal => "journal",
            Phase::Replicate => "replicate",
        }
    }
}

/// CPU time this thread has used, nanoseconds (0 where there is no per-thread clock).
pub fn thread_cpu_ns() -> u64 {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant of the platform.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        if rc != 0 {
            return 0;
        }
        (ts.tv_sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(ts.tv_nsec as u64)
    }
    #[cfg(not(unix))]
    {
        0
    }
}

/// A point in wall and CPU time.
#[derive(Debug, Clone, Copy)]
pub struct Lap {
    wall: Instant,
    cpu: u64,
}

impl Lap {
    /// Now.
    pub fn now() -> Self {
        Self {
            wall: Instant::now(),
            cpu: thread_cpu_ns(),
        }
    }

    /// The wall instant.
    pub fn instant(&self) -> Instant {
        self.wall
    }

    /// Wall and CPU nanoseconds from `self` to `later`.
    pub fn until(&self, later: &Lap) -> (u64, u64) {
        (
            later.wall.saturating_duration_since(self.wall).as_nanos() as u64,
            later.cpu.saturating_sub(self.cpu),
        )
    }
}

/// Wall and CPU windows of one measured thing.
#[derive(Debug, Clone)]
struct Pair {
    wall: Timings,
    cpu: Timings,
}

impl Pair {
    fn new(window: usize) -> Self {
        Self {
            wall: Timings::new(window),
            cpu: Timings::new(window),
        }
    }

    fn record(&mut self, (wall, cpu): (u64, u64)) {
        self.wall.record(wall);
        self.cpu.record(cpu);
    }

    fn summary(&mut self) -> PairSummary {
        PairSummary {
            wall: self.wall.summary(),
            cpu: self.cpu.summary(),
        }
    }
}

/// Wall and CPU summaries of one measured thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PairSummary {
    /// Wall time.
    pub wall: Summary,
    /// The thread's CPU time.
    pub cpu: Summary,
}

/// Summaries of a [`TickProfile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProfileSummary {
    /// The whole tick (drain to journal).
    pub tick: PairSummary,
    /// Each phase, in [`Phase::ALL`] order.
    pub phases: [PairSummary; PHASE_COUNT],
    /// Pumps between ticks that handled packets.
    pub pump: PairSummary,
}

/// The windows of a zone's tick: whole tick, each phase and the pumps.
#[derive(Debug, Clone)]
pub struct TickProfile {
    tick: Pair,
    phases: [Pair; PHASE_COUNT],
    pump: Pair,
}

impl TickProfile {
    /// Windows of the last `window` ticks (and pumps).
    pub fn new(window: usize) -> Self {
        Self {
            tick: Pair::new(window),
            phases: std::array::from_fn(|_| Pair::new(window)),
            pump: Pair::new(window),
        }
    }

    /// Records a whole tick from `start` to `end`; returns its wall nanoseconds.
    pub fn tick(&mut self, start: &Lap, end: &Lap) -> u64 {
        let d = start.until(end);
        self.tick.record(d);
        d.0
    }

    /// Wall time of the whole tick (sorts one window).
    pub fn tick_wall(&mut self) -> Summary {
        self.tick.wall.summary()
    }

    /// Records phase `p` from `start` to `end`.
    pub fn phase(&mut self, p: Phase, start: &Lap, end: &Lap) {
        self.phases[p as usize].record(start.until(end));
    }

    /// Records a pump from `start` to `end`.
    pub fn pump(&mut self, start: &Lap, end: &Lap) {
        self.pump.record(start.until(end));
    }

    /// Percentiles of every window (sorts preallocated copies: no allocation).
    pub fn summary(&mut self) -> ProfileSummary {
        let mut phases = [PairSummary::default(); PHASE_COUNT];
        for (s, p) in phases.iter_mut().zip(self.phases.iter_mut()) {
            *s = p.summary();
        }
        ProfileSummary {
            tick: self.tick.summary(),
            phases,
            pump: self.pump.summary(),
        }
    }
}

/// One gauge in seconds.
type Seconds = Gauge<f64, AtomicU64>;

/// The label set of the per-phase gauges.
type PhaseLabel = [(&'static str, &'static str); 1];

/// The profile's metric handles (taken from their families once: no lookup per update).
#[derive(Debug, Default)]
pub struct ProfileMetrics {
    cpu: [Seconds; 3],
    phase_wall: [Seconds; PHASE_COUNT],
    phase_cpu: [Seconds; PHASE_COUNT],
    pump: [Seconds; 2],
}

impl ProfileMetrics {
    /// Handles registered in `registry` (prefix and labels are the registry's).
    pub fn register(registry: &mut Registry) -> Self {
        let mut m = Self::default();
        for (name, g) in ["p50", "p99", "max"].iter().zip(m.cpu.iter()) {
            registry.register(
                format!("tick_cpu_{name}_seconds"),
                format!("The tick thread's CPU time per tick, {name} of the last minute"),
                g.clone(),
            );
        }
        let wall = Family::<PhaseLabel, Seconds>::default();
        let cpu = Family::<PhaseLabel, Seconds>::default();
        for p in Phase::ALL {
            let label = [("phase", p.name())];
            m.phase_wall[p as usize] = wall.get_or_create(&label).clone();
            m.phase_cpu[p as usize] = cpu.get_or_create(&label).clone();
        }
        registry.register(
            "phase_p99_seconds",
            "Wall time of one tick phase, p99 of the last minute",
            wall,
        );
        registry.register(
            "phase_cpu_p99_seconds",
            "The tick thread's CPU time in one tick phase, p99 of the last minute",
            cpu,
        );
        registry.register(
            "pump_p99_seconds",
            "Wall time of a pump between ticks that handled packets, p99",
            m.pump[0].clone(),
        );
        registry.register(
            "pump_cpu_p99_seconds",
            "CPU time of a pump between ticks that handled packets, p99",
            m.pump[1].clone(),
        );
        m
    }

    /// Publishes `s` (atomics only).
    pub fn publish(&self, s: &ProfileSummary) {
        let sec = |ns: u64| ns as f64 / 1e9;
        let c = s.tick.cpu;
        for (g, ns) in self.cpu.iter().zip([c.p50_ns, c.p99_ns, c.max_ns]) {
            g.set(sec(ns));
        }
        for (i, p) in s.phases.iter().enumerate() {
            self.phase_wall[i].set(sec(p.wall.p99_ns));
            self.phase_cpu[i].set(sec(p.cpu.p99_ns));
        }
        self.pump[0].set(sec(s.pump.wall.p99_ns));
        self.pump[1].set(sec(s.pump.cpu.p99_ns));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Burns CPU for about `ns` of wall time on this thread.
    fn spin(ns: u128) -> u64 {
        let t = Instant::now();
        let mut x = 1u64;
        while t.elapsed().as_nanos() < ns {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        x
    }

    #[cfg(unix)]
    #[test]
    fn thread_cpu_time_counts_work_and_not_sleep() {
        let a = thread_cpu_ns();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let slept = thread_cpu_ns() - a;
        let b = thread_cpu_ns();
        spin(30_000_000);
        let worked = thread_cpu_ns() - b;
        assert!(slept < 10_000_000, "a 30 ms sleep used {slept} ns of CPU");
        // The spin may be preempted on a loaded machine, but it cannot use no CPU at all.
        assert!(
            worked > 1_000_000,
            "30 ms of spinning used {worked} ns of CPU"
        );
        assert!(worked > slept, "work {worked} ns against sleep {slept} ns");
    }

    #[test]
    fn phases_land_in_their_own_windows() {
        let mut p = TickProfile::new(8);
        let start = Lap::now();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let mid = Lap::now();
        p.phase(Phase::Rows, &start, &mid);
        let end = Lap::now();
        p.phase(Phase::Send, &mid, &end);
        let wall = p.tick(&start, &end);
        let s = p.summary();
        let rows = s.phases[Phase::Rows as usize];
        assert_eq!(rows.wall.count, 1, "one rows sample");
        assert!(
            rows.wall.p50_ns >= 5_000_000,
            "the sleep is in rows' wall time"
        );
        assert!(
            rows.cpu.p50_ns < rows.wall.p50_ns,
            "a sleep is not CPU time"
        );
        assert_eq!(
            s.phases[Phase::Core as usize].wall.count,
            0,
            "core untouched"
        );
        assert_eq!(
            s.tick.wall.max_ns, wall,
            "the tick window holds the whole tick"
        );
        assert!(wall >= rows.wall.p50_ns, "the tick includes its phases");
        assert_eq!(s.pump.wall.count, 0);
    }

    #[test]
    fn the_metrics_show_each_phase_and_the_cpu_time() {
        let mut registry = Registry::with_prefix("fabric_zone");
        let m = ProfileMetrics::register(&mut registry);
        let mut s = ProfileSummary::default();
        s.tick.cpu.p99_ns = 1_500_000;
        s.phases[Phase::Rows as usize].wall.p99_ns = 2_000_000;
        s.phases[Phase::Rows as usize].cpu.p99_ns = 250_000;
        m.publish(&s);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for want in [
            "fabric_zone_tick_cpu_p99_seconds 0.0015",
            "fabric_zone_phase_p99_seconds{phase=\"rows\"} 0.002",
            "fabric_zone_phase_cpu_p99_seconds{phase=\"rows\"} 0.00025",
            "fabric_zone_phase_p99_seconds{phase=\"replicate\"} 0.0",
        ] {
            assert!(text.contains(want), "{want} in:\n{text}");
        }
    }

    #[test]
    fn phase_names_are_distinct() {
        let mut names: Vec<_> = Phase::ALL.iter().map(|p| p.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PHASE_COUNT);
        for (i, p) in Phase::ALL.iter().enumerate() {
            assert_eq!(*p as usize, i, "{} indexes its own window", p.name());
        }
    }
}
