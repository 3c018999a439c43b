//! Zone hosts for the link tests: each one a thread that drives a real `fabric_core` zone
//! through real `ZoneLinks` on loopback, and an ownership check over the zones' own slots.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use fabric_core::config::ZoneConfig;
use fabric_core::coords::{WorldBounds, micros};
use fabric_core::entity::Entity;
use fabric_core::hilbert;
use fabric_core::sim::rng::SimRng;
use fabric_core::slots::SlotState;
use fabric_core::zone::{Decision, Zone};
use fabric_core::zones::{ZoneId, ZoneLayout};
use fabric_link::drive::Driver;
use fabric_link::{LinkConfig, Member, ZoneLinks};

pub const FABRIC: &str = "test-fabric";
pub const TICK_HZ: u32 = 50;

pub fn fabric_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

pub fn zone_config(zone: ZoneId, layout: ZoneLayout) -> ZoneConfig {
    ZoneConfig {
        tick_hz: TICK_HZ,
        capacity: 1024,
        headroom: 128,
        hysteresis_ticks: 4,
        ..ZoneConfig::new(zone, layout, WorldBounds::demo())
    }
}

pub fn link_config(zone: ZoneId, layout: ZoneLayout) -> LinkConfig {
    let mut cfg = LinkConfig::with_fabric_key(
        FABRIC,
        zone,
        layout,
        "127.0.0.1:0".parse().unwrap(),
        &fabric_key(),
    )
    .expect("static link config");
    cfg.proof_timeout = Duration::from_secs(2);
    cfg.idle_timeout = Duration::from_secs(3);
    cfg
}

pub struct HostState {
    pub zone: Zone,
    pub links: ZoneLinks,
    pub driver: Driver,
}

/// A thread that drives one zone until stopped.
pub struct Host {
    pub id: ZoneId,
    pub state: Arc<Mutex<HostState>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Host {
    pub fn start(zone: Zone, links: ZoneLinks) -> Host {
        let id = zone.id();
        let waiter = links.waiter();
        let state = Arc::new(Mutex::new(HostState {
            zone,
            links,
            driver: Driver::new(TICK_HZ, true),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let wait = {
                    let mut g = s.lock().unwrap();
                    let HostState {
                        zone,
                        links,
                        driver,
                    } = &mut *g;
                    driver.step(zone, links, 4);
                    driver.until_next_tick()
                };
                waiter.wait(wait.min(Duration::from_millis(5)));
            }
        });
        Host {
            id,
            state,
            stop,
            thread: Some(thread),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, HostState> {
        self.state.lock().unwrap()
    }

    pub fn member(&self) -> Member {
        self.lock().links.member()
    }

    /// Stops the thread and drops the zone and its links (what a killed process leaves: the
    /// zone's entities are gone and its sessions end).
    pub fn kill(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts `n` zones of one static fabric on loopback, each told every member.
pub fn fabric(n: usize) -> Vec<Host> {
    let layout = ZoneLayout::new(n).unwrap();
    let links: Vec<ZoneLinks> = (0..n as ZoneId)
        .map(|z| ZoneLinks::start(link_config(z, layout)).expect("links start"))
        .collect();
    let members: Vec<Member> = links.iter().map(ZoneLinks::member).collect();
    links
        .into_iter()
        .enumerate()
        .map(|(z, l)| {
            l.set_members(members.clone());
            Host::start(Zone::new(zone_config(z as ZoneId, layout)).unwrap(), l)
        })
        .collect()
}

/// Restarts zone `zone` (fresh, empty) in a running fabric and tells the others its new address.
pub fn restart(hosts: &[&Host], zone: ZoneId, layout: ZoneLayout) -> Host {
    let links = ZoneLinks::start(link_config(zone, layout)).expect("links start");
    let mut members: Vec<Member> = hosts.iter().map(|h| h.member()).collect();
    members.push(links.member());
    links.set_members(members.clone());
    for h in hosts {
        h.lock().links.set_members(members.clone());
    }
    Host::start(Zone::new(zone_config(zone, layout)).unwrap(), links)
}

/// Spawns `n` wanderers (ids from `first`) at random places with random velocities, each in
/// the zone that owns its place. Returns the ids.
pub fn spawn_wanderers(hosts: &[Host], first: u32, n: u32, seed: u64) -> BTreeSet<u32> {
    let b = WorldBounds::demo();
    let mut rng = SimRng::new(seed);
    let mut ids = BTreeSet::new();
    let mut guards: Vec<_> = hosts.iter().map(Host::lock).collect();
    let layout = guards[0].zone.config().layout;
    let vq = guards[0].zone.config().v_max_um / 4;
    for id in first..first + n {
        let p = [0, 1, 2].map(|k| micros(rng.range_i64(b.min()[k], b.max()[k])));
        let v = [0, 1, 2].map(|_| micros(rng.range_i64(-vq, vq)));
        let z = layout.zone_of(hilbert::encode_position(&b, &p));
        let g = guards
            .iter_mut()
            .find(|g| g.zone.id() == z)
            .expect("zone host");
        g.zone
            .spawn(Entity::at(id, p).with_velocity(v))
            .expect("room");
        ids.insert(id);
    }
    ids
}

/// Where the entities are, from the zones' own slots.
#[derive(Debug, Default, Clone, Copy)]
pub struct Census {
    pub held: usize,
    pub staging: usize,
    pub in_flight: usize,
    pub commits: u64,
    pub arrivals: u64,
}

/// Locks every host at once and lists where each entity is held: owned, staging at its
/// sender, arriving at its receiver, or committed by its sender and reserved at its receiver
/// (tentative reservations do not hold an entity).
fn held(hosts: &[&Host]) -> (BTreeMap<u32, Vec<(ZoneId, SlotState)>>, Census) {
    let guards: Vec<_> = hosts.iter().map(|h| h.lock()).collect();
    let zones: Vec<&Zone> = guards.iter().map(|g| &g.zone).collect();
    let mut committed = BTreeSet::new();
    for z in &zones {
        for r in z.resolutions() {
            if r.decision == Decision::Commit {
                committed.insert((z.id(), r.peer, r.migration_id));
            }
        }
    }
    let mut c = Census::default();
    let mut held: BTreeMap<u32, Vec<(ZoneId, SlotState)>> = BTreeMap::new();
    for z in &zones {
        c.commits += z.stats().commits;
        c.arrivals += z.stats().arrivals;
        for h in z.holdings() {
            match h.state {
                SlotState::Incoming if committed.contains(&(h.peer, z.id(), h.migration_id)) => {
                    c.in_flight += 1
                }
                SlotState::Incoming | SlotState::Free => continue,
                SlotState::Staging => c.staging += 1,
                _ => {}
            }
            held.entry(h.global_id).or_default().push((z.id(), h.state));
        }
    }
    (held, c)
}

/// The ids the hosts hold now.
pub fn held_ids(hosts: &[&Host]) -> BTreeSet<u32> {
    held(hosts).0.into_keys().collect()
}

/// Checks that every id of `ids` is held exactly once and no other id is held.
pub fn census(hosts: &[&Host], ids: &BTreeSet<u32>) -> Result<Census, String> {
    let (held, mut c) = held(hosts);
    for id in ids {
        match held.get(id).map(Vec::len) {
            Some(1) => c.held += 1,
            None => return Err(format!("entity {id} is lost")),
            Some(_) => return Err(format!("entity {id} is duplicated: {:?}", held[id])),
        }
    }
    if let Some(extra) = held.keys().find(|id| !ids.contains(id)) {
        return Err(format!("unexpected entity {extra}: {:?}", held[extra]));
    }
    Ok(c)
}

/// Checks the census every 50 ms until `done` says so or `limit` passes; returns the last one.
pub fn watch(
    hosts: &[&Host],
    ids: &BTreeSet<u32>,
    limit: Duration,
    mut done: impl FnMut(&Census) -> bool,
) -> Census {
    let start = Instant::now();
    loop {
        let c = census(hosts, ids).unwrap_or_else(|e| panic!("after {:?}: {e}", start.elapsed()));
        if done(&c) {
            return c;
        }
        assert!(
            start.elapsed() < limit,
            "condition not reached within {limit:?}: {c:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `cond` holds (polling every 20 ms), failing after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until every pair of hosts is linked.
pub fn wait_linked(hosts: &[&Host]) {
    wait_until("all links up", Duration::from_secs(30), || {
        hosts.iter().all(|h| {
            let g = h.lock();
            g.links.neighbours().iter().all(|z| g.links.is_linked(z))
        })
    });
}
pub mod probe;
