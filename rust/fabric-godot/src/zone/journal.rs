//! The zone's crash-recovery journal: [`fabric_journal`] wired into the tick driver.
//!
//! With a data directory, a zone opens (or creates) `<data_dir>/zone-<index>.journal` at start
//! ([`ZoneJournal::open`]); a bad file fails the start with the journal's error, which names
//! the file, so a zone never runs on partial state.
//!
//! **What the zone starts with.** The journal's entity set wins: when the journal holds any
//! mutation, its state (snapshot + later mutations) is the zone's dynamic population and the
//! configured start population is *not* spawned (it was journaled at the first start, and
//! what happened to it since, despawns and migrations out included, is in the journal). Only a
//! new or empty journal lets the start population spawn; it is then journaled like any spawn.
//! Tick numbering continues after the journal's last tick (`docs/persistence.md`), so the
//! entities restart from their journaled state as if it were the state after that tick.
//!
//! **What is journaled** (one [`TickBatch`] per tick, submitted without blocking):
//! spawns (API, start population) and arrivals by migration as `Spawn` with the entity's whole
//! state at that moment; despawns and departures by migration as `Despawn`; payload updates.
//! Positions moved by the physics step are not journaled. The runtime turns its own
//! [`ZoneEvent`](super::runtime::ZoneEvent)s into mutations ([`ZoneJournal::record_event`]), so
//! every path that spawns, migrates or despawns is covered by the events it already emits.
//!
//! Mutations made between ticks (API calls such as `spawn`, hand-offs completed by a pump)
//! belong to the next tick: they are submitted with it, so a command applied while the zone's
//! tick is `t` is durable once the durable tick reaches `t + 1`. A spawn row holds the entity's
//! state when it was recorded (at the spawn, or after the core ran for an arrival).
//!
//! **Queue full**: as the journal crate defines it: the batch is kept, the next tick's
//! mutations join it, and it is submitted again (counted in `fabric_zone_journal_full_total`).
//! **Writer stopped** (disk error): logged once; nothing more becomes durable, which
//! [`ZoneJournal::durable_tick`] shows.

use std::path::{Path, PathBuf};

use fabric_core::durable_handoff::HandoffRecord;
use fabric_core::entity::Entity;
use fabric_core::entity_row::PAYLOAD_WORDS;
use fabric_core::zone::Zone;
use fabric_journal::{
    JournalError, JournalWriter, Loaded, Mutation, SqliteConfig, SqliteJournal, SubmitError,
    TickBatch, WriterConfig,
};

use super::runtime::ZoneEvent;

/// The journal file of zone `index` in `dir`.
pub fn journal_path(dir: &Path, index: u32) -> PathBuf {
    dir.join(format!("zone-{index}.journal"))
}

/// Moves zone `index`'s journal (with SQLite's `-wal`/`-shm` files) aside as
/// `zone-<index>.journal.superseded-<unix seconds>`, when there is one: a graceful shutdown's
/// snapshot that this zone has not reloaded yet supersedes it. Nothing is deleted. Returns the
/// new name of the main file.
pub fn set_aside(dir: &Path, index: u32) -> std::io::Result<Option<PathBuf>> {
    let path = journal_path(dir, index);
    if !path.exists() {
        return Ok(None);
    }
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut moved = None;
    for suffix in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", path.display()));
        if from.exists() {
            let to = PathBuf::from(format!("{}.superseded-{secs}{suffix}", path.display()));
            std::fs::rename(&from, &to)?;
            if suffix.is_empty() {
                moved = Some(to);
            }
        }
    }
    Ok(moved)
}

/// Mutations a batch has room for before it grows: a few busy ticks' worth.
const BATCH_CAPACITY: usize = 4096;

/// A zone's open journal and its writer thread.
#[derive(Debug)]
pub struct ZoneJournal {
    writer: JournalWriter,
    batch: TickBatch,
    path: PathBuf,
    mutations: u64,
    stopped: bool,
}

impl ZoneJournal {
    /// Opens (or creates, with `dir`) zone `index`'s journal in `dir`, loads it and starts its writer.
    /// Returns the journal and what it holds.
    pub fn open(dir: &Path, index: u32) -> Result<(Self, Loaded), JournalError> {
        Self::open_with(dir, index, SqliteConfig::default())
    }

    /// [`Self::open`] with the SQLite settings `sqlite` (its `synchronous`).
    pub fn open_with(
        dir: &Path,
        index: u32,
        sqlite: SqliteConfig,
    ) -> Result<(Self, Loaded), JournalError> {
        let path = journal_path(dir, index);
        std::fs::create_dir_all(dir).map_err(|source| JournalError::Io {
            path: dir.to_owned(),
            source,
        })?;
        // The integrity check runs beside the read: a restart takes about the longer of the two.
        let (journal, loaded) = SqliteJournal::open_or_create_and_load(&path, sqlite)?;
        let writer = JournalWriter::start(
            journal,
            WriterConfig {
                batch_capacity: BATCH_CAPACITY,
                ..WriterConfig::default()
            },
        );
        Ok((
            Self {
                writer,
                batch: TickBatch::with_capacity(BATCH_CAPACITY),
                path,
                mutations: 0,
                stopped: false,
            },
            loaded,
        ))
    }

    /// The journal's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds a spawn (or an arrival) with the entity's whole state to this tick's batch.
    pub fn spawned(&mut self, e: &Entity) {
        self.batch.push(Mutation::Spawn(*e));
    }

    /// Adds a despawn (or a departure) to this tick's batch.
    pub fn despawned(&mut self, global_id: u32) {
        self.batch.push(Mutation::Despawn { global_id });
    }

    /// Adds a payload update to this tick's batch.
    pub fn payload_updated(&mut self, global_id: u32, payload: [u32; PAYLOAD_WORDS]) {
        self.batch
            .push(Mutation::PayloadUpdate { global_id, payload });
    }

    /// Adds the mutations `events` stand for: spawns and arrivals with the entity's state in
    /// `zone` now, despawns and departures. An entity spawned and gone again before this call
    /// is not in `zone` any more: its spawn is left out (its despawn is harmless). With
    /// durable hand-offs the zone's own records journal arrivals and departures
    /// ([`Self::record_handoffs`]), so those events are skipped here.
    pub fn record_events(&mut self, events: &[ZoneEvent], zone: &Zone) {
        let handoffs_here = !zone.durable_handoffs();
        for ev in events {
            match *ev {
                ZoneEvent::Spawned(id) => self.spawn_held(zone, id),
                ZoneEvent::MigratedIn { id, .. } if handoffs_here => self.spawn_held(zone, id),
                ZoneEvent::Despawned(id) => self.despawned(id),
                ZoneEvent::MigratedOut { id, .. } if handoffs_here => self.despawned(id),
                _ => {}
            }
        }
    }

    fn spawn_held(&mut self, zone: &Zone, id: u32) {
        if let Some(e) = zone.find_owned(id).and_then(|slot| zone.entity(slot)) {
            self.spawned(&e);
        }
    }

    /// Adds the mutations of the zone's durable hand-off steps, in order: a seal or a pin is
    /// a mark, a refused commit or a forgotten arrival clears it, a release is a despawn, an
    /// arrival a spawn (then its mark).
    pub fn record_handoffs(&mut self, records: &[HandoffRecord]) {
        for r in records {
            match *r {
                HandoffRecord::Sealed { global_id, mark } => {
                    self.batch.push(Mutation::Mark { global_id, mark })
                }
                HandoffRecord::Unsealed { global_id } | HandoffRecord::Unpinned { global_id } => {
                    self.batch.push(Mutation::Unmark { global_id })
                }
                HandoffRecord::Released { global_id } => self.despawned(global_id),
                HandoffRecord::Arrived { entity, mark } => {
                    self.spawned(&entity);
                    let global_id = entity.global_id;
                    self.batch.push(Mutation::Mark { global_id, mark });
                }
            }
        }
    }

    /// Whether mutations wait in the batch.
    pub fn has_pending(&self) -> bool {
        !self.batch.is_empty()
    }

    /// Submits the batch as tick `tick`'s, without blocking. When the queue is full the batch
    /// is kept and goes with the next submit; when the writer stopped, the error is logged once.
    pub fn submit(&mut self, tick: u64) {
        self.batch.tick = tick;
        let n = self.batch.len() as u64;
        match self.writer.submit(&mut self.batch) {
            Ok(()) => self.mutations += n,
            Err(SubmitError::Full) => {}
            Err(SubmitError::Stopped) => {
                if !self.stopped {
                    self.stopped = true;
                    tracing::error!(
                        file = %self.path.display(),
                        "journal writer stopped: nothing more becomes durable"
                    );
                }
                // Nothing can take it: do not let it grow without bound.
                self.batch.clear();
            }
        }
    }

    /// The latest tick whose mutations (and every earlier tick's) are committed, `None` while
    /// none is.
    pub fn durable_tick(&self) -> Option<u64> {
        self.writer.durable_tick()
    }

    /// Submits refused because the queue was full.
    pub fn full_count(&self) -> u64 {
        self.writer.full_count()
    }

    /// Mutations handed to the writer.
    pub fn mutations(&self) -> u64 {
        self.mutations
    }

    /// Submits what is pending as tick `tick`'s, writes everything queued and stops the
    /// writer (a graceful stop; a crash loses only what was not yet durable).
    pub fn close(mut self, tick: u64) -> Result<(), JournalError> {
        // Stopping may wait for the disk: the queue drains as the writer commits.
        while self.has_pending() {
            self.submit(tick);
            if self.has_pending() {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        self.writer.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::config::Population;
    use crate::zone::runtime::ZoneRuntime;
    use crate::zone::runtime::tests::{allocations, zone_of_three};
    use fabric_core::coords::vec3_micros;
    use fabric_core::durable_handoff::HandoffMark;
    use fabric_core::slots::SlotState;
    use std::collections::{BTreeMap, BTreeSet};
    use std::time::{Duration, Instant};

    fn wait_durable(j: &ZoneJournal, tick: u64) {
        let until = Instant::now() + Duration::from_secs(10);
        while j.durable_tick() < Some(tick) {
            assert!(Instant::now() < until, "tick {tick} never became durable");
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_journal_reopens_with_what_was_submitted() {
        let dir = std::env::temp_dir().join(format!("zone-journal-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut j, loaded) = ZoneJournal::open(&dir, 3).unwrap();
        assert_eq!(loaded.last_seq, 0, "a new journal is empty");
        assert_eq!(j.path(), dir.join("zone-3.journal"));
        j.spawned(&Entity::at(1, vec3_micros([1, 2, 3])));
        j.spawned(&Entity::at(2, vec3_micros([4, 5, 6])));
        let mut payload = [0; PAYLOAD_WORDS];
        payload[0] = 77;
        j.payload_updated(2, payload);
        j.despawned(1);
        j.submit(5);
        wait_durable(&j, 5);
        assert_eq!(j.mutations(), 4);
        j.close(6).unwrap();
        let (j, loaded) = ZoneJournal::open(&dir, 3).unwrap();
        assert_eq!(loaded.last_tick, 5);
        let ids: Vec<u32> = loaded.state.entities().map(|e| e.global_id).collect();
        assert_eq!(ids, [2]);
        let e = loaded.state.get(2).unwrap();
        assert_eq!(e.position, vec3_micros([4, 5, 6]));
        assert_eq!(e.payload[0], 77);
        drop(j);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn zones(name: &str, dir: &Path, population: bool) -> Vec<ZoneRuntime> {
        (0..3)
            .map(|z| {
                let mut rt = zone_of_three(name, z);
                let (j, holds) = ZoneJournal::open(dir, z).unwrap();
                assert_eq!(holds.last_seq > 0, !population);
                rt.attach_journal(j, &holds).unwrap();
                if population {
                    rt.spawn_population(Population::Wanderers {
                        entities: 900,
                        seed: 4,
                    });
                }
                rt
            })
            .collect()
    }

    /// The ids a zone journaled: every entity it holds but reservations (owned, staging,
    /// committed arrivals; with durable hand-offs an arrival is journaled at its commit).
    fn journaled_ids(rt: &ZoneRuntime) -> BTreeSet<u32> {
        rt.zone()
            .holdings()
            .filter(|h| h.state != SlotState::Incoming)
            .map(|h| h.global_id)
            .collect()
    }

    /// Every id held (reservations aside) by exactly one zone, or by two in one hand-off: sealed
    /// at its sender and pinned at its receiver, under the same migration.
    fn check_exactly_once(zs: &[ZoneRuntime], ids: impl Iterator<Item = u32>) {
        let mut holders: BTreeMap<u32, Vec<(usize, u8, u8, u32)>> = BTreeMap::new();
        for (z, rt) in zs.iter().enumerate() {
            for h in rt.zone().holdings() {
                if h.state != SlotState::Incoming {
                    let mark = rt.zone().slots().mark(h.slot);
                    let held = (z, mark, h.peer, h.migration_id);
                    holders.entry(h.global_id).or_default().push(held);
                }
            }
        }
        for id in ids {
            match holders.get(&id).map(Vec::as_slice) {
                Some([_]) => {}
                Some([(a, 1, pa, ma), (b, 2, pb, mb)] | [(b, 2, pb, mb), (a, 1, pa, ma)])
                    if *pa as usize == *b && *pb as usize == *a && ma == mb => {}
                other => panic!("entity {id}: held by {other:?}"),
            }
        }
    }

    /// Three zones handing wanderers over (arrivals = spawns, departures = despawns, an API
    /// spawn, a payload update, a despawn), each with a real journal file; closed and reopened,
    /// each journal holds exactly the entities its zone held, and zones restarted from them hold
    /// the same entities with the journaled state, ticking on after the journal's last tick.
    #[test]
    fn zones_journal_migrations_and_restart_from_their_journals() {
        let dir = std::env::temp_dir().join(format!("zone-journal-rt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut zs = zones("journal-rt-1", &dir, true);
        let mut payload = [0; PAYLOAD_WORDS];
        payload[2] = 0xfeed;
        let api_id = zs[0]
            .spawn(vec3_micros([1, 2, 3]), vec3_micros([0, 0, 0]), payload)
            .unwrap();
        let mut gone = 0;
        for tick in 1..=300u64 {
            for z in zs.iter_mut() {
                z.run_tick();
                z.pump();
                z.drain_events().for_each(drop);
            }
            if tick == 100 {
                let z = &mut zs[1];
                let id = z
                    .zone()
                    .holdings()
                    .find(|h| h.state == SlotState::Owned)
                    .unwrap()
                    .global_id;
                let slot = z.owned_slot(id).unwrap();
                payload[0] = 9;
                assert!(z.zone_mut().set_payload(slot, payload));
                z.journal_payload(id, payload);
                gone = z
                    .zone()
                    .holdings()
                    .filter(|h| h.state == SlotState::Owned)
                    .nth(3)
                    .unwrap()
                    .global_id;
                assert!(z.despawn(gone));
            }
        }
        let migrations: u64 = zs.iter().map(|z| z.totals().migrations_in).sum();
        assert!(migrations > 50, "wanderers migrated: {migrations}");
        let expect: Vec<BTreeSet<u32>> = zs.iter().map(journaled_ids).collect();
        let ticks: Vec<u64> = zs.iter().map(|z| z.zone().current_tick()).collect();
        for z in zs.iter_mut() {
            z.close_journal().unwrap().unwrap();
        }
        drop(zs);
        let mut loaded = Vec::new();
        for z in 0..3u32 {
            let (j, holds) = ZoneJournal::open(&dir, z).unwrap();
            drop(j);
            let ids: BTreeSet<u32> = holds.state.entities().map(|e| e.global_id).collect();
            assert_eq!(ids, expect[z as usize], "zone {z}: journal = entities held");
            assert!(holds.last_tick <= ticks[z as usize]);
            loaded.push(holds);
        }
        assert!(
            loaded[0]
                .state
                .get(api_id)
                .is_some_and(|e| e.payload[2] == 0xfeed)
        );
        // Across the journals: every entity but the despawned one; in two journals only when
        // in a hand-off, sealed in its sender's and pinned in its receiver's.
        let mut seen: BTreeMap<u32, Vec<Option<HandoffMark>>> = BTreeMap::new();
        for l in &loaded {
            for e in l.state.entities() {
                seen.entry(e.global_id)
                    .or_default()
                    .push(l.state.mark(e.global_id));
            }
        }
        let missing: Vec<u32> = (1..=900).filter(|id| !seen.contains_key(id)).collect();
        assert_eq!(missing, [gone], "only the despawned entity is missing");
        for (id, marks) in &seen {
            if marks.len() > 1 {
                let kinds: BTreeSet<u8> = marks.iter().flatten().map(|m| m.kind as u8).collect();
                assert_eq!(marks.len(), 2, "{id}: {marks:?}");
                assert_eq!(kinds.len(), 2, "{id}: sealed and pinned, {marks:?}");
            }
        }
        // Restart: each zone holds its journal's entities, bit for bit, and ticks on after it.
        let mut zs = zones("journal-rt-2", &dir, false);
        for (z, rt) in zs.iter_mut().enumerate() {
            let holds = &loaded[z];
            for e in holds.state.entities() {
                let slot = rt
                    .zone()
                    .holdings()
                    .find(|h| h.global_id == e.global_id)
                    .expect("restored")
                    .slot;
                assert_eq!(
                    rt.zone().entity(slot).as_ref(),
                    Some(e),
                    "zone {z}: exact state"
                );
            }
            assert_eq!(rt.counts().owned, 0, "counts are taken by the tick");
            rt.run_tick();
            assert_eq!(rt.zone().current_tick(), holds.last_tick + 1, "zone {z}");
        }
        // The hand-offs in progress finish; every entity stays held once.
        let alive = || (1..=900u32).filter(|id| *id != gone);
        for _ in 0..200 {
            for z in zs.iter_mut() {
                z.run_tick();
                z.pump();
                z.drain_events().for_each(drop);
            }
            check_exactly_once(&zs, alive());
        }
        // The API id counter continues after the journaled ids.
        let next = zs[0]
            .spawn(vec3_micros([0, 0, 0]), vec3_micros([0, 0, 0]), payload)
            .unwrap();
        assert!(next > api_id, "{next:#x} after {api_id:#x}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A zone restarted from its journal starts its clock no earlier than what it journaled:
    /// the last tick, and an arrival's HLC stamped by a neighbour running ahead (100 ticks).
    /// An entity never stamped (HLC 0) does not move it.
    #[test]
    fn a_restarted_zone_clock_never_goes_back() {
        use fabric_core::hlc::Hlc;
        let dir = std::env::temp_dir().join(format!("zone-journal-hlc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut j, _) = ZoneJournal::open(&dir, 0).unwrap();
        let ahead = Hlc { l: 5_100, c: 4 };
        let mut arrived = Entity::at(7, vec3_micros([1, 2, 3]));
        arrived.hlc = ahead.to_row_u32();
        j.spawned(&arrived);
        j.spawned(&Entity::at(8, vec3_micros([4, 5, 6])));
        j.submit(5_000);
        wait_durable(&j, 5_000);
        j.close(5_000).unwrap();
        let mut rt = zone_of_three("journal-hlc", 0);
        let (j, holds) = ZoneJournal::open(&dir, 0).unwrap();
        rt.attach_journal(j, &holds).unwrap();
        assert_eq!(
            rt.zone().clock().now(),
            ahead,
            "restored at the arrival's HLC"
        );
        rt.run_tick();
        assert_eq!(rt.zone().current_tick(), 5_001);
        assert!(
            rt.zone().clock().now() >= ahead,
            "the tick does not take it back"
        );
        rt.close_journal().unwrap().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A steady-state tick and pump with the journal on (migrations, payload updates) allocates
    /// nothing on the tick thread: the batch is reused and swapped with the writer's pool.
    #[test]
    fn a_journaled_tick_does_not_allocate() {
        let dir = std::env::temp_dir().join(format!("zone-journal-alloc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut zs = zones("journal-alloc", &dir, true);
        let mut payload = [0u32; PAYLOAD_WORDS];
        let mut run = |zs: &mut Vec<ZoneRuntime>, ticks: u32| {
            for t in 0..ticks {
                for z in zs.iter_mut() {
                    let first = z.zone().holdings().find(|h| h.state == SlotState::Owned);
                    if let Some(h) = first {
                        payload[0] = t;
                        z.zone_mut().set_payload(h.slot, payload);
                        z.journal_payload(h.global_id, payload);
                    }
                    z.run_tick();
                    z.pump();
                    z.drain_events().for_each(drop);
                }
            }
        };
        run(&mut zs, 300);
        let before = allocations();
        run(&mut zs, 200);
        let allocated = allocations() - before;
        let mutations: u64 = zs.iter().map(|z| z.journal().unwrap().mutations()).sum();
        assert!(mutations > 900 + 600, "the ticks journaled: {mutations}");
        assert_eq!(allocated, 0, "600 journaled zone ticks and pumps");
        for z in zs.iter_mut() {
            z.close_journal().unwrap().unwrap();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Benchmark: the tick's p50/p99/max with the journal on and off, in the same run: two
    /// fabrics of three zones in memory (900 wanderers handed over between them, and 20
    /// payload updates per zone per tick), one journaling into real SQLite files (default
    /// `synchronous = Full`), their ticks interleaved so both see the same machine load.
    /// `cargo test --release -p fabric-godot --lib bench_tick_with_journal_on_and_off -- --ignored --nocapture`
    #[test]
    #[ignore = "benchmark: run with --ignored --nocapture"]
    fn bench_tick_with_journal_on_and_off() {
        let dir = std::env::temp_dir().join(format!("zone-journal-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut on = zones("journal-bench-on", &dir, true);
        let mut off: Vec<ZoneRuntime> = (0..3)
            .map(|z| {
                let mut rt = zone_of_three("journal-bench-off", z);
                rt.spawn_population(Population::Wanderers {
                    entities: 900,
                    seed: 4,
                });
                rt
            })
            .collect();
        let ticks = 2400usize;
        let mut times = [Vec::with_capacity(ticks * 3), Vec::with_capacity(ticks * 3)];
        let mut payload = [0u32; PAYLOAD_WORDS];
        for tick in 0..ticks {
            for (k, fabric) in [&mut off, &mut on].into_iter().enumerate() {
                for z in fabric.iter_mut() {
                    payload[0] = tick as u32;
                    let ids: Vec<u32> = z
                        .zone()
                        .holdings()
                        .filter(|h| h.state == SlotState::Owned)
                        .take(20)
                        .map(|h| h.global_id)
                        .collect();
                    for id in ids {
                        let slot = z.owned_slot(id).unwrap();
                        z.zone_mut().set_payload(slot, payload);
                        z.journal_payload(id, payload);
                    }
                    let t = Instant::now();
                    z.run_tick();
                    times[k].push(t.elapsed().as_nanos() as u64);
                    z.pump();
                    z.drain_events().for_each(drop);
                }
            }
        }
        let pct = |v: &mut Vec<u64>, p: f64| {
            v.sort_unstable();
            v[((v.len() - 1) as f64 * p) as usize] as f64 / 1e3
        };
        let full: u64 = on.iter().map(|z| z.journal().unwrap().full_count()).sum();
        let mutations: u64 = on.iter().map(|z| z.journal().unwrap().mutations()).sum();
        let migrations: u64 = on.iter().map(|z| z.totals().migrations_in).sum();
        for (name, v) in ["off", "on"].iter().zip(times.iter_mut()) {
            println!(
                "journal {name}: tick p50 {:.1} us, p99 {:.1} us, max {:.1} us over {} zone ticks",
                pct(v, 0.5),
                pct(v, 0.99),
                pct(v, 1.0),
                v.len()
            );
        }
        println!(
            "journal on: {mutations} mutations ({migrations} migrations in), {full} full-queue submits"
        );
        for z in on.iter_mut() {
            z.close_journal().unwrap().unwrap();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
