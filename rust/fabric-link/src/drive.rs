//! The zone host's loop step: drain the links into a `fabric-core` zone, tick it, hand its
//! outbox to the links. Used by the tests, the benchmark and (planned) the `FabricZone` node.
//!
//! Packets are handled as soon as the host calls [`Driver::pump`], not only at tick
//! boundaries (the core accepts input between ticks), so an intent is answered within one
//! loop turn rather than one tick: a host that sleeps until the next tick can wake early with
//! [`crate::ZoneLinks::wait`] and pump.

use std::time::{Duration, Instant};

use fabric_core::zone::Zone;

use crate::delivery::Delivery;
use crate::handoff::HandoffLatency;
use crate::links::{LinkEvent, ZoneLinks};

/// Most link events handled per pump (bounds the work one pump can do).
pub const MAX_EVENTS_PER_PUMP: usize = 4096;

/// Counters of a driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DriveStats {
    /// Ticks run.
    pub ticks: u64,
    /// Packets handed to the zone.
    pub packets_in: u64,
    /// Packets the zone rejected (bad or misrouted; the zone counts them too).
    pub packets_rejected: u64,
    /// Packets handed to the links.
    pub packets_out: u64,
    /// Packets the links refused (down or full): the core resends or rolls back.
    pub sends_refused: u64,
    /// Links that came up.
    pub linked: u64,
    /// Links that went down.
    pub unlinked: u64,
}

/// Fixed-step tick scheduling and pumping for one zone.
#[derive(Debug)]
pub struct Driver {
    period: Duration,
    next_tick_at: Instant,
    tick: u64,
    emit_rows: bool,
    stats: DriveStats,
    handoff: HandoffLatency,
}

impl Driver {
    /// Ticks at `tick_hz`, starting now; with `emit_rows`, interest rows go to the neighbours
    /// after every tick.
    ///
    /// Tick numbers count periods since the Unix epoch, so the zones of a fabric (each on its
    /// own host clock, kept in step by NTP) agree on them, and a restarted zone does not start
    /// behind its neighbours (the core drops intents whose clock is more than 256 ticks ahead
    /// of its own).
    pub fn new(tick_hz: u32, emit_rows: bool) -> Self {
        let hz = tick_hz.max(1) as u128;
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            period: Duration::from_secs(1) / tick_hz.max(1),
            next_tick_at: Instant::now(),
            tick: (since_epoch.as_millis() * hz / 1000) as u64,
            emit_rows,
            stats: DriveStats::default(),
            handoff: HandoffLatency::default(),
        }
    }

    /// Handles every waiting link event and sends what the zone queued. Returns the events.
    pub fn pump(&mut self, zone: &mut Zone, links: &mut ZoneLinks) -> usize {
        let now_tick = self.tick + 1;
        let now = Instant::now();
        let (stats, handoff) = (&mut self.stats, &mut self.handoff);
        let n = links.drain(MAX_EVENTS_PER_PUMP, |ev| match ev {
            LinkEvent::Packet { from, bytes } => {
                stats.packets_in += 1;
                handoff.on_received(from, bytes, now);
                if zone.handle(now_tick, bytes).is_err() {
                    stats.packets_rejected += 1;
                }
            }
            LinkEvent::Linked { .. } => stats.linked += 1,
            LinkEvent::Unlinked { .. } => stats.unlinked += 1,
        });
        self.flush(zone, links);
        n
    }

    fn flush(&mut self, zone: &mut Zone, links: &ZoneLinks) {
        let now = Instant::now();
        for (to, bytes) in zone.outbox().iter() {
            self.handoff.on_sent(to, bytes, now);
            match links.send(to, Delivery::of(bytes), bytes) {
                Ok(()) => self.stats.packets_out += 1,
                Err(_) => self.stats.sends_refused += 1,
            }
        }
        zone.clear_outbox();
    }

    /// Pumps, then runs every tick that is due (at most `max_catch_up` of them). Returns the
    /// ticks run.
    pub fn step(&mut self, zone: &mut Zone, links: &mut ZoneLinks, max_catch_up: u32) -> u32 {
        self.pump(zone, links);
        let mut ran = 0;
        while Instant::now() >= self.next_tick_at && ran < max_catch_up {
            self.tick += 1;
            zone.tick(self.tick);
            if self.emit_rows {
                zone.emit_interest_rows();
            }
            self.flush(zone, links);
            self.stats.ticks += 1;
            self.next_tick_at += self.period;
            ran += 1;
        }
        if Instant::now() >= self.next_tick_at {
            // Too far behind: skip ahead rather than tick in a burst forever.
            self.next_tick_at = Instant::now() + self.period;
        }
        ran
    }

    /// Time until the next tick is due (zero when late).
    pub fn until_next_tick(&self) -> Duration {
        self.next_tick_at.saturating_duration_since(Instant::now())
    }

    /// The last tick run (periods since the Unix epoch).
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// Counters.
    pub fn stats(&self) -> DriveStats {
        self.stats
    }

    /// Hand-off latency of this zone's migrations.
    pub fn handoff(&self) -> &HandoffLatency {
        &self.handoff
    }
}
