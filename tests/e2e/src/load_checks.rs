//! The duplicate check of a load scenario: every second the zones' `/state` dumps are read; when
//! they are of the same tick, no entity id may be held by two zones.
//!
//! The zones of a snapshot ran the same tick number, but not at the same instant: a zone late
//! by more than a tick may show a hand-off its neighbour's dump does not yet (an id seen twice
//! for one snapshot). A real duplicate stays, so an id counts as **duplicated** when two
//! snapshots in a row show it twice; single sightings are counted as transient.
//!
//! The same readings check that no entity is lost: the zones' wanderers, read once before the
//! players start ([`HeldCheck::baseline`]), must each be held or incoming (mid hand-off) in
//! some zone at every snapshot; one missing from two snapshots in a row counts as **lost**.
//! (Avatars are left out: a player's avatar goes when its session ends.)

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use crate::zone_probe::{field, http_get};

/// What the check saw over a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeldFigures {
    /// Snapshots compared (all zones at one tick).
    pub snapshots: u32,
    /// Ids held twice in two snapshots in a row.
    pub duplicated: u32,
    /// Ids held twice in one snapshot only (zones out of step).
    pub transient: u32,
    /// A few of the duplicated ones, with their tick.
    pub examples: Vec<String>,
    /// Entities of the baseline (the wanderers before the players started); 0 without one.
    pub baseline: u32,
    /// Baseline entities missing from two snapshots in a row (held and incoming nowhere).
    pub lost: u32,
    /// Baseline entities missing from one snapshot only.
    pub missing_once: u32,
    /// Baseline entities missing from the last snapshot.
    pub missing_last: u32,
}

/// The check, fed one reading a second.
#[derive(Debug, Default)]
pub struct HeldCheck {
    figures: HeldFigures,
    last_tick: u64,
    suspects: BTreeSet<u32>,
    baseline: BTreeSet<u32>,
    missing: BTreeSet<u32>,
}

impl HeldCheck {
    /// Reads every zone's dump at `zones` (their metrics addresses) and checks it when all are
    /// of one new tick; a zone that does not answer skips this reading.
    pub fn sample(&mut self, zones: &[SocketAddr]) {
        if let Some(dumps) = read_dumps(zones) {
            self.check(&dumps);
        }
    }

    /// Reads the zones' dumps until they are of one tick (at most `tries` readings, 100 ms
    /// apart) and takes every id held or incoming as the baseline; returns its size.
    pub fn baseline(&mut self, zones: &[SocketAddr], tries: u32) -> usize {
        for _ in 0..tries {
            if let Some(dumps) = read_dumps(zones) {
                let ticks: BTreeSet<u64> = dumps.iter().map(|d| d.0).collect();
                if ticks.len() == 1 && !ticks.contains(&0) {
                    self.set_baseline(&dumps);
                    return self.baseline.len();
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        0
    }

    /// Takes every id of `dumps` as the baseline.
    pub fn set_baseline(&mut self, dumps: &[Dump]) {
        self.baseline = dumps.iter().flat_map(|d| d.2.iter().copied()).collect();
        self.figures.baseline = self.baseline.len() as u32;
    }

    /// Checks dumps `(tick, held ids, held and incoming ids)`, one per zone.
    pub fn check(&mut self, dumps: &[Dump]) {
        let ticks: BTreeSet<u64> = dumps.iter().map(|d| d.0).collect();
        let Some(&tick) = ticks.first() else {
            return;
        };
        // A zone that just started serves tick 0 until its first refresh.
        if ticks.len() != 1 || tick == 0 || tick == self.last_tick {
            return;
        }
        self.last_tick = tick;
        self.figures.snapshots += 1;
        let mut seen: BTreeMap<u32, u32> = BTreeMap::new();
        for (_, held, _) in dumps {
            for id in held {
                *seen.entry(*id).or_default() += 1;
            }
        }
        let present: BTreeSet<u32> = dumps.iter().flat_map(|d| d.2.iter().copied()).collect();
        let missing: BTreeSet<u32> = self.baseline.difference(&present).copied().collect();
        for id in &missing {
            if self.missing.contains(id) {
                self.figures.lost += 1;
            } else {
                self.figures.missing_once += 1;
            }
        }
        self.figures.missing_last = missing.len() as u32;
        self.missing = missing;
        let twice: BTreeSet<u32> = seen
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(id, _)| id)
            .collect();
        for id in &twice {
            if self.suspects.contains(id) {
                self.figures.duplicated += 1;
                if self.figures.examples.len() < 8 {
                    self.figures
                        .examples
                        .push(format!("id {id} held twice at tick {tick}"));
                }
            } else {
                self.figures.transient += 1;
            }
        }
        self.suspects = twice;
    }

    /// What it saw so far.
    pub fn figures(&self) -> HeldFigures {
        self.figures.clone()
    }
}

/// One zone's dump: its tick, the ids it holds, and those it holds or takes in (incoming).
pub type Dump = (u64, Vec<u32>, Vec<u32>);

/// Every zone's dump, or `None` when one does not answer.
fn read_dumps(zones: &[SocketAddr]) -> Option<Vec<Dump>> {
    zones
        .iter()
        .map(|z| http_get(*z, "/state").ok().and_then(|t| parse_held(&t)))
        .collect()
}

/// The [`Dump`] of a `/state` body's first line.
fn parse_held(text: &str) -> Option<Dump> {
    let first = text.lines().next()?;
    let tick = field(first, "tick")?.parse().ok()?;
    let ids = |name: &str| {
        field(first, name)
            .unwrap_or("")
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<u32>, _>>()
            .ok()
    };
    let held = ids("held")?;
    let mut all = held.clone();
    all.extend(ids("incoming")?);
    Some((tick, held, all))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_held_twice_in_two_snapshots_in_a_row_is_a_duplicate() {
        assert_eq!(
            parse_held("FABRIC_ZONE_STATE zone=0 tick=20 dropped=0 held=1,2 incoming=5\nE 1"),
            Some((20, vec![1, 2], vec![1, 2, 5]))
        );
        assert_eq!(
            parse_held("S tick=20 held= incoming="),
            Some((20, vec![], vec![]))
        );
        let d = |tick: u64, held: &[u32]| (tick, held.to_vec(), held.to_vec());
        let mut c = HeldCheck::default();
        c.check(&[d(20, &[1, 2]), d(20, &[2, 3])]);
        c.check(&[d(20, &[1, 2]), d(20, &[2, 3])]);
        assert_eq!(c.figures().snapshots, 1, "the same tick is checked once");
        c.check(&[d(40, &[1]), d(41, &[1])]);
        assert_eq!(
            c.figures().snapshots,
            1,
            "zones out of step are not compared"
        );
        c.check(&[d(60, &[1, 2]), d(60, &[2, 3])]);
        let f = c.figures();
        assert_eq!((f.snapshots, f.transient, f.duplicated), (2, 1, 1), "{f:?}");
        c.check(&[d(80, &[1, 2]), d(80, &[3])]);
        assert_eq!(c.figures().duplicated, 1, "gone again");
    }

    #[test]
    fn a_baseline_entity_missing_from_two_snapshots_in_a_row_is_lost() {
        let mut c = HeldCheck::default();
        c.set_baseline(&[(10, vec![1, 2], vec![1, 2]), (10, vec![3], vec![3])]);
        // 3 is mid hand-off: incoming at zone 0, held nowhere. Not missing.
        c.check(&[(20, vec![1, 2], vec![1, 2, 3]), (20, vec![], vec![])]);
        assert_eq!((c.figures().lost, c.figures().missing_once), (0, 0));
        c.check(&[(40, vec![1], vec![1]), (40, vec![3], vec![3])]);
        assert_eq!((c.figures().lost, c.figures().missing_once), (0, 1));
        c.check(&[(60, vec![1], vec![1]), (60, vec![3], vec![3])]);
        let f = c.figures();
        assert_eq!((f.baseline, f.lost, f.missing_last), (3, 1, 1), "{f:?}");
        c.check(&[(80, vec![1, 2], vec![1, 2]), (80, vec![3], vec![3])]);
        assert_eq!(c.figures().missing_last, 0, "back");
    }
}
