//! What a zone publishes: Prometheus metrics (text exposition on `--metrics-addr`), the state
//! dump of held ids, and the figures Godot's Performance monitors read.
//!
//! Metrics are `prometheus-client` handles (atomics behind `Arc`s), set by the main thread once
//! per tick without locking or allocating; a small server thread answers
//! `GET /metrics` (the registry encoded by the crate) and `GET /state` (one
//! `FABRIC_ZONE_STATE` line: the global ids this zone holds and those it has reserved, updated
//! once a second), so tests read the zone's own state, not their own bookkeeping.
//! `prometheus-client` is the Prometheus project's Rust client: typed metrics, a maintained
//! OpenMetrics encoder, no runtime of its own.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fabric_core::command_gate::{REFUSAL_COUNT, Refusal};

use super::link_guard_metrics::LinkGuardMetrics;
use super::ownership_metrics::{OwnershipFigures, OwnershipMetrics};
use super::replication::{ReplRates, ReplTotals};
use super::tick_profile::{ProfileMetrics, ProfileSummary};
use fabric_link::LinkCounters;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Totals and levels the tick publishes.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Figures {
    /// Ticks run.
    pub ticks: u64,
    /// Ticks that took longer than a step.
    pub overruns: u64,
    /// Ticks dropped by bounded catch-up.
    pub dropped_ticks: u64,
    /// Entities owned.
    pub owned: u64,
    /// Entities staging (handed out, waiting for an answer).
    pub staging: u64,
    /// Reservations for neighbours' entities (not ours yet).
    pub incoming: u64,
    /// Committed arrivals not yet owned.
    pub arriving: u64,
    /// Sum of the global ids held (owned, staging, arriving): a list-free checksum.
    pub held_id_sum: u64,
    /// Neighbours' rows kept.
    pub ghosts: u64,
    /// Migrations in.
    pub migrations_in: u64,
    /// Migrations out.
    pub migrations_out: u64,
    /// Hand-offs rolled back.
    pub rollbacks: u64,
    /// Bad packets dropped.
    pub bad_packets: u64,
    /// Sends refused by the links.
    pub refused_sends: u64,
    /// Links up.
    pub links: u64,
    /// Tick time p50 / p99 / max, seconds.
    pub tick_s: [f64; 3],
    /// Hand-off latency p50 / p99, seconds.
    pub handoff_s: [f64; 2],
}

#[derive(Debug, Default, Clone)]
struct Handles {
    ticks: Counter,
    overruns: Counter,
    dropped: Counter,
    mig_in: Counter,
    mig_out: Counter,
    rollbacks: Counter,
    bad: Counter,
    refused: Counter,
    owned: Gauge,
    staging: Gauge,
    incoming: Gauge,
    arriving: Gauge,
    held_sum: Gauge,
    ghosts: Gauge,
    links: Gauge,
    tick_p50: Gauge<f64, AtomicU64>,
    tick_p99: Gauge<f64, AtomicU64>,
    tick_max: Gauge<f64, AtomicU64>,
    handoff_p50: Gauge<f64, AtomicU64>,
    handoff_p99: Gauge<f64, AtomicU64>,
    commands_accepted: Counter,
    /// One handle per [`Refusal`], taken from the family once (no lookup per update).
    commands_refused: [Counter; REFUSAL_COUNT],
    players: Gauge,
    client_bytes: Counter,
    client_packets: Counter,
    client_entities: Counter,
    client_views: Gauge,
    client_bytes_per_s: Gauge<f64, AtomicU64>,
    client_max_bytes_per_s: Gauge<f64, AtomicU64>,
    client_entities_per_packet: Gauge<f64, AtomicU64>,
    journal_durable: Gauge,
    journal_full: Counter,
    journal_mutations: Counter,
}

/// Registers the replication metrics (`client_*`).
fn register_replication(registry: &mut Registry, h: &Handles) {
    registry.register(
        "client_bytes",
        "Replication bytes sent to players",
        h.client_bytes.clone(),
    );
    registry.register(
        "client_packets",
        "Replication packets sent to players",
        h.client_packets.clone(),
    );
    registry.register(
        "client_entities",
        "Entity records (updates and enters) sent to players",
        h.client_entities.clone(),
    );
    registry.register(
        "client_views",
        "Players with a replication view here",
        h.client_views.clone(),
    );
    registry.register(
        "client_bytes_per_second",
        "Replication bytes per second to all players, last second",
        h.client_bytes_per_s.clone(),
    );
    registry.register(
        "client_max_bytes_per_second",
        "Replication bytes per second to the busiest player, last second",
        h.client_max_bytes_per_s.clone(),
    );
    registry.register(
        "client_entities_per_packet",
        "Entity records per replication packet, last second",
        h.client_entities_per_packet.clone(),
    );
}

/// The label set of `commands_refused`: the reason's name.
type ReasonLabel = [(&'static str, &'static str); 1];

/// Player command figures as last published (counters advance by the difference).
#[derive(Debug, Clone, Copy, Default)]
struct CommandFigures {
    accepted: u64,
    refused: [u64; REFUSAL_COUNT],
}

/// The state dump: held and reserved ids, refreshed once a second.
#[derive(Debug, Default)]
struct Dump {
    tick: u64,
    dropped: u64,
    held: Vec<u32>,
    incoming: Vec<u32>,
    motion: Vec<Motion>,
    /// Asset instances held: global id and asset id.
    assets: Vec<(u32, u64)>,
    /// Held ids sealed in a durable hand-off (promised to a neighbour, which may hold it too).
    sealed: Vec<u32>,
    /// Entities a player holds: entity and holder (avatar id), refreshed every frame.
    holders: Vec<(u32, u32)>,
}

/// A held entity's exact state in a state dump: position and velocity per axis as the core
/// holds them, 64.64 fixed-point micrometres (velocity per tick), i.e. the raw `i128` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Motion {
    /// Global id.
    pub id: u32,
    /// Position bits (x, y, z).
    pub position: [i128; 3],
    /// Velocity bits per tick (x, y, z).
    pub velocity: [i128; 3],
}

/// Everything a zone publishes, shared with the server thread and Performance monitors.
#[derive(Debug)]
pub struct Published {
    zone: u32,
    registry: Registry,
    h: Handles,
    last: Mutex<Figures>,
    dump: Mutex<Dump>,
    commands: Mutex<CommandFigures>,
    replication: Mutex<ReplTotals>,
    ownership: OwnershipMetrics,
    ownership_last: Mutex<OwnershipFigures>,
    link_guard: LinkGuardMetrics,
    link_guard_last: Mutex<LinkCounters>,
    profile: ProfileMetrics,
    stop: AtomicBool,
}

impl Published {
    /// Metrics of zone `zone` of fabric `fabric` (both are labels on every metric).
    pub fn new(fabric: &str, zone: u32) -> Arc<Self> {
        let mut registry = Registry::with_prefix_and_labels(
            "fabric_zone",
            [
                ("fabric".into(), fabric.to_owned().into()),
                ("zone".into(), zone.to_string().into()),
            ]
            .into_iter(),
        );
        let mut h = Handles::default();
        let refused = Family::<ReasonLabel, Counter>::default();
        for r in Refusal::ALL {
            h.commands_refused[r.index()] = refused.get_or_create(&[("reason", r.name())]).clone();
        }
        registry.register(
            "commands_refused",
            "Player commands refused, per reason (docs/zone.md, \"Players\")",
            refused,
        );
        registry.register(
            "commands_accepted",
            "Player commands accepted",
            h.commands_accepted.clone(),
        );
        registry.register("players", "Sessions with an avatar here", h.players.clone());
        register_replication(&mut registry, &h);
        registry.register("ticks", "Ticks run", h.ticks.clone());
        registry.register("overruns", "Ticks longer than one step", h.overruns.clone());
        registry.register(
            "dropped_ticks",
            "Ticks dropped by bounded catch-up after a stall",
            h.dropped.clone(),
        );
        registry.register("migrations_in", "Entities migrated in", h.mig_in.clone());
        registry.register("migrations_out", "Entities migrated out", h.mig_out.clone());
        registry.register("rollbacks", "Hand-offs rolled back", h.rollbacks.clone());
        registry.register(
            "bad_packets",
            "Zone packets dropped as invalid",
            h.bad.clone(),
        );
        registry.register(
            "refused_sends",
            "Packets the links refused",
            h.refused.clone(),
        );
        registry.register("owned", "Entities owned", h.owned.clone());
        registry.register(
            "staging",
            "Entities handed out, waiting for an answer",
            h.staging.clone(),
        );
        registry.register(
            "incoming",
            "Reservations for neighbours' entities",
            h.incoming.clone(),
        );
        registry.register(
            "arriving",
            "Committed arrivals not yet owned",
            h.arriving.clone(),
        );
        registry.register(
            "held_id_sum",
            "Sum of the global ids held (owned, staging, arriving)",
            h.held_sum.clone(),
        );
        registry.register("ghosts", "Neighbours' rows kept", h.ghosts.clone());
        registry.register("links", "Links to neighbours up", h.links.clone());
        registry.register(
            "tick_p50_seconds",
            "Tick time, median of the last minute",
            h.tick_p50.clone(),
        );
        registry.register(
            "tick_p99_seconds",
            "Tick time, p99 of the last minute",
            h.tick_p99.clone(),
        );
        registry.register(
            "tick_max_seconds",
            "Tick time, max of the last minute",
            h.tick_max.clone(),
        );
        registry.register(
            "handoff_p50_seconds",
            "Hand-off latency, intent sent to acceptance seen, median",
            h.handoff_p50.clone(),
        );
        registry.register(
            "handoff_p99_seconds",
            "Hand-off latency, intent sent to acceptance seen, p99",
            h.handoff_p99.clone(),
        );
        registry.register(
            "journal_durable_tick",
            "Latest tick whose journal mutations are committed (-1: none yet or no journal)",
            h.journal_durable.clone(),
        );
        h.journal_durable.set(-1);
        registry.register(
            "journal_full",
            "Journal submits refused because the queue was full (kept for the next tick)",
            h.journal_full.clone(),
        );
        registry.register(
            "journal_mutations",
            "Mutations handed to the journal writer",
            h.journal_mutations.clone(),
        );
        let ownership = OwnershipMetrics::register(&mut registry);
        let profile = ProfileMetrics::register(&mut registry);
        let link_guard = LinkGuardMetrics::register(&mut registry);
        Arc::new(Self {
            link_guard,
            link_guard_last: Mutex::new(LinkCounters::default()),
            profile,
            zone,
            ownership,
            ownership_last: Mutex::new(OwnershipFigures::default()),
            registry,
            h,
            last: Mutex::new(Figures::default()),
            dump: Mutex::new(Dump::default()),
            commands: Mutex::new(CommandFigures::default()),
            replication: Mutex::new(ReplTotals::default()),
            stop: AtomicBool::new(false),
        })
    }

    /// Publishes `f` (counters advance by the difference with the last call).
    pub fn publish(&self, f: &Figures) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let h = &self.h;
        let add = |c: &Counter, now: u64, before: u64| {
            c.inc_by(now.saturating_sub(before));
        };
        add(&h.ticks, f.ticks, last.ticks);
        add(&h.overruns, f.overruns, last.overruns);
        add(&h.dropped, f.dropped_ticks, last.dropped_ticks);
        add(&h.mig_in, f.migrations_in, last.migrations_in);
        add(&h.mig_out, f.migrations_out, last.migrations_out);
        add(&h.rollbacks, f.rollbacks, last.rollbacks);
        add(&h.bad, f.bad_packets, last.bad_packets);
        add(&h.refused, f.refused_sends, last.refused_sends);
        let set = |g: &Gauge, v: u64| {
            g.set(v as i64);
        };
        set(&h.owned, f.owned);
        set(&h.staging, f.staging);
        set(&h.incoming, f.incoming);
        set(&h.arriving, f.arriving);
        set(&h.held_sum, f.held_id_sum);
        set(&h.ghosts, f.ghosts);
        set(&h.links, f.links);
        h.tick_p50.set(f.tick_s[0]);
        h.tick_p99.set(f.tick_s[1]);
        h.tick_max.set(f.tick_s[2]);
        h.handoff_p50.set(f.handoff_s[0]);
        h.handoff_p99.set(f.handoff_s[1]);
        *last = *f;
    }

    /// Publishes the player command totals and the number of players (no allocation).
    pub fn publish_commands(&self, accepted: u64, refused: &[u64; REFUSAL_COUNT], players: u64) {
        let mut last = self.commands.lock().unwrap_or_else(|p| p.into_inner());
        let h = &self.h;
        h.commands_accepted
            .inc_by(accepted.saturating_sub(last.accepted));
        for (i, c) in h.commands_refused.iter().enumerate() {
            c.inc_by(refused[i].saturating_sub(last.refused[i]));
        }
        h.players.set(players as i64);
        *last = CommandFigures {
            accepted,
            refused: *refused,
        };
    }

    /// Publishes the replication to players: totals (counters advance by the difference) and
    /// the last second's rates (no allocation).
    pub(crate) fn publish_replication(&self, t: &ReplTotals, r: &ReplRates, views: u64) {
        let mut last = self.replication.lock().unwrap_or_else(|p| p.into_inner());
        let h = &self.h;
        h.client_bytes.inc_by(t.bytes.saturating_sub(last.bytes));
        h.client_packets
            .inc_by(t.packets.saturating_sub(last.packets));
        h.client_entities
            .inc_by(t.entities.saturating_sub(last.entities));
        h.client_views.set(views as i64);
        h.client_bytes_per_s.set(r.bytes_per_s);
        h.client_max_bytes_per_s.set(r.max_client_bytes_per_s);
        h.client_entities_per_packet.set(r.entities_per_packet);
        *last = *t;
    }

    /// Publishes the tick profile (wall and CPU time per tick and per phase; atomics only).
    pub fn publish_profile(&self, s: &ProfileSummary) {
        self.profile.publish(s);
    }

    /// Publishes the ownership totals ([`super::ownership_metrics`]; no allocation).
    pub fn publish_ownership(&self, f: &OwnershipFigures) {
        let mut last = self
            .ownership_last
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.ownership.publish(f, &last);
        *last = *f;
    }

    /// Publishes what the link listener refused and dropped ([`super::link_guard_metrics`]).
    pub fn publish_link_guard(&self, c: &LinkCounters) {
        let mut last = self
            .link_guard_last
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.link_guard.publish(c, &last);
        *last = *c;
    }

    /// Publishes the journal's figures (every tick: atomics only): the durable tick and the
    /// running totals of full-queue refusals and mutations submitted.
    pub fn publish_journal(&self, durable_tick: Option<u64>, full: u64, mutations: u64) {
        let h = &self.h;
        h.journal_durable
            .set(durable_tick.map_or(-1, |t| i64::try_from(t).unwrap_or(i64::MAX)));
        h.journal_full
            .inc_by(full.saturating_sub(h.journal_full.get()));
        h.journal_mutations
            .inc_by(mutations.saturating_sub(h.journal_mutations.get()));
    }

    /// The last published figures.
    pub fn figures(&self) -> Figures {
        *self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes room in the state dump for `slots` entities, so publishing never grows it.
    pub fn reserve_dump(&self, slots: usize) {
        let mut d = self.dump.lock().unwrap_or_else(|p| p.into_inner());
        d.motion.reserve(slots);
        d.held.reserve(slots);
        d.incoming.reserve(slots);
        d.assets.reserve(slots);
        d.sealed.reserve(slots);
        d.holders.reserve(slots);
    }

    /// Replaces the state dump (buffers are reused: no allocation once warmed up): the tick,
    /// the ticks dropped so far, held and reserved ids, and the exact motion of held entities.
    pub fn set_dump(
        &self,
        tick: u64,
        dropped: u64,
        held: impl Iterator<Item = Motion>,
        incoming: impl Iterator<Item = u32>,
    ) {
        let mut d = self.dump.lock().unwrap_or_else(|p| p.into_inner());
        d.tick = tick;
        d.dropped = dropped;
        d.motion.clear();
        d.motion.extend(held);
        let Dump { held, motion, .. } = &mut *d;
        held.clear();
        held.extend(motion.iter().map(|m| m.id));
        d.incoming.clear();
        d.incoming.extend(incoming);
    }

    /// Replaces the sealed ids of the state dump (with [`Self::set_dump`], the same tick).
    pub fn set_sealed(&self, sealed: impl Iterator<Item = u32>) {
        let mut d = self.dump.lock().unwrap_or_else(|p| p.into_inner());
        d.sealed.clear();
        d.sealed.extend(sealed);
    }

    /// Replaces the asset instances of the state dump (with [`Self::set_dump`], the same
    /// tick): global id and asset id of each held instance.
    pub fn set_assets(&self, assets: impl Iterator<Item = (u32, u64)>) {
        let mut d = self.dump.lock().unwrap_or_else(|p| p.into_inner());
        d.assets.clear();
        d.assets.extend(assets);
    }

    /// Replaces the holders of the state dump (every frame, from the ownership table): entity
    /// and holder avatar id of each entity a player holds.
    pub fn set_holders(&self, holders: impl Iterator<Item = (u32, u32)>) {
        let mut d = self.dump.lock().unwrap_or_else(|p| p.into_inner());
        d.holders.clear();
        d.holders.extend(holders);
    }

    /// The metrics in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// The state dump: `FABRIC_ZONE_STATE zone=Z tick=T dropped=D held=1,2,3 incoming=4`
    /// (and ` sealed=2` when held entities are sealed in a durable hand-off: their receiver
    /// may list them too, as it holds them once committed), then one line per held entity, `E id px py pz vx vy vz`: the core's exact 64.64
    /// fixed-point micrometres as `i128` integers (divide by 2^64 for micrometres; velocity per
    /// tick). `dropped` counts the ticks this zone skipped so far (its entities did not move then).
    /// Then one line per held asset instance (CMD_INSTANCE_ASSET), `I id asset`: its global id
    /// and asset id (decimal u64). Then one line per entity a player holds, `O id holder`: the
    /// entity and its holder's avatar id, as of the zone's last frame (not the dump's tick).
    pub fn state_line(&self) -> String {
        use std::fmt::Write as _;
        let d = self.dump.lock().unwrap_or_else(|p| p.into_inner());
        let list = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let mut out = format!(
            "FABRIC_ZONE_STATE zone={} tick={} dropped={} held={} incoming={}\n",
            self.zone,
            d.tick,
            d.dropped,
            list(&d.held),
            list(&d.incoming)
        );
        if !d.sealed.is_empty() {
            out.pop();
            // Writing into a String cannot fail.
            let _ = writeln!(out, " sealed={}", list(&d.sealed));
        }
        for m in &d.motion {
            let [px, py, pz] = m.position;
            let [vx, vy, vz] = m.velocity;
            // Writing into a String cannot fail.
            let _ = writeln!(out, "E {} {px} {py} {pz} {vx} {vy} {vz}", m.id);
        }
        for (id, asset) in &d.assets {
            // Writing into a String cannot fail.
            let _ = writeln!(out, "I {id} {asset}");
        }
        for (id, holder) in &d.holders {
            // Writing into a String cannot fail.
            let _ = writeln!(out, "O {id} {holder}");
        }
        out
    }

    /// Tells the server thread to stop (it notices within 20 ms of its current request).
    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The metrics server thread. Dropping it stops the thread and waits for it: the thread runs
/// code of this library, so it must be gone before Godot unloads the library at exit.
pub struct MetricsServer {
    published: Arc<Published>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.published.stop();
        if let Some(t) = self.thread.take() {
            // The thread checks the flag every 20 ms, or after a request (2 s read timeout).
            let _ = t.join();
        }
    }
}

/// Serves `/metrics` and `/state` on `addr` from a thread of its own until the returned
/// [`MetricsServer`] is dropped. Returns it with the bound address.
pub fn serve(
    addr: SocketAddr,
    published: Arc<Published>,
) -> std::io::Result<(MetricsServer, SocketAddr)> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let shared = published.clone();
    let thread = std::thread::Builder::new()
        .name(format!("fabric-metrics-{}", published.zone))
        .spawn(move || {
            while !shared.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Err(e) = answer(stream, &shared) {
                            tracing::debug!("metrics request failed: {e}");
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(e) => {
                        tracing::warn!("metrics endpoint: {e}");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })?;
    Ok((
        MetricsServer {
            published,
            thread: Some(thread),
        },
        bound,
    ))
}

fn answer(stream: TcpStream, p: &Published) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    // A request line and headers of at most 8 KiB: a client cannot grow this thread's memory.
    let mut reader = BufReader::new(stream.try_clone()?.take(8 * 1024));
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // Skip the headers.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let (status, kind, body) = match path {
        "/metrics" => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            p.encode(),
        ),
        "/state" => ("200 OK", "text/plain; charset=utf-8", p.state_line()),
        _ => (
            "404 Not Found",
            "text/plain",
            "try /metrics or /state\n".into(),
        ),
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn serves_metrics_and_state_over_real_http() {
        let p = Published::new("f", 2);
        let f = Figures {
            ticks: 10,
            owned: 7,
            held_id_sum: 28,
            tick_s: [0.001, 0.002, 0.003],
            ..Figures::default()
        };
        p.publish(&f);
        p.publish(&Figures { ticks: 12, ..f });
        let m = |id: u32| Motion {
            id,
            position: [i128::from(id) << 64, -1, (10_000_000_000_000i128 << 64) + 1],
            velocity: [5 << 64, 0, -(1 << 63)],
        };
        p.set_dump(12, 3, [1, 2, 3].map(m).into_iter(), [9].into_iter());
        let (server, addr) = serve("127.0.0.1:0".parse().unwrap(), p.clone()).unwrap();
        let m = get(addr, "/metrics");
        assert!(m.starts_with("HTTP/1.1 200 OK"), "{m}");
        assert!(
            m.contains("fabric_zone_ticks_total{fabric=\"f\",zone=\"2\"} 12"),
            "counter advanced to 12: {m}"
        );
        assert!(
            m.contains("fabric_zone_owned{fabric=\"f\",zone=\"2\"} 7"),
            "{m}"
        );
        assert!(
            m.contains("fabric_zone_tick_p99_seconds{fabric=\"f\",zone=\"2\"} 0.002"),
            "{m}"
        );
        let s = get(addr, "/state");
        assert!(
            s.contains("FABRIC_ZONE_STATE zone=2 tick=12 dropped=3 held=1,2,3 incoming=9\n"),
            "{s}"
        );
        assert!(
            s.contains(&format!(
                "\nE 2 {} -1 {} {} 0 {}\n",
                2i128 << 64,
                (10_000_000_000_000i128 << 64) + 1,
                5i128 << 64,
                -(1i128 << 63)
            )),
            "exact 64.64 bits per held entity: {s}"
        );
        assert_eq!(s.matches("\nE ").count(), 3, "{s}");
        // Held entities sealed in a durable hand-off are listed as such.
        p.set_sealed([2].into_iter());
        let s = get(addr, "/state");
        assert!(
            s.contains("held=1,2,3 incoming=9 sealed=2\n"),
            "sealed ids at the end of the first line: {s}"
        );
        // Holders: one `O entity holder` line each, after the entities.
        p.set_holders([(2, 40), (3, 41)].into_iter());
        let s = get(addr, "/state");
        assert!(s.ends_with("\nO 2 40\nO 3 41\n"), "holders listed: {s}");
        p.set_holders(std::iter::empty());
        assert!(!get(addr, "/state").contains("\nO "), "none held");
        assert!(get(addr, "/nope").starts_with("HTTP/1.1 404"));
        // Dropping the server joins its thread; the port is then closed.
        drop(server);
        assert!(
            TcpStream::connect(addr).is_err(),
            "the listener is gone once the server is dropped"
        );
    }
}
