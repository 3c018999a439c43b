//! The duplicate check of a load scenario: every second the zones' `/state` dumps are read; when
//! they are of the same tick, no entity id may be held by two zones.
//!
//! The zones of a snapshot ran the same tick number, but not at the same instant: a zone late
//! by more than a tick may show a hand-off its neighbour's dump does not yet (an id seen twice
//! for one snapshot). A real duplicate stays, so an id counts as **duplicated** when two
//! snapshots in a row show it twice; single sightings are counted as transient.

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
}

/// The check, fed one reading a second.
#[derive(Debug, Default)]
pub struct HeldCheck {
    figures: HeldFigures,
    last_tick: u64,
    suspects: BTreeSet<u32>,
}

impl HeldCheck {
    /// Reads every zone's dump at `zones` (their metrics addresses) and checks it when all are
    /// of one new tick; a zone that does not answer skips this reading.
    pub fn sample(&mut self, zones: &[SocketAddr]) {
        let mut dumps = Vec::with_capacity(zones.len());
        for z in zones {
            let Ok(text) = http_get(*z, "/state") else {
                return;
            };
            let Some(d) = parse_held(&text) else {
                return;
            };
            dumps.push(d);
        }
        self.check(&dumps);
    }

    /// Checks dumps `(tick, held ids)`, one per zone.
    pub fn check(&mut self, dumps: &[(u64, Vec<u32>)]) {
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
        for (_, held) in dumps {
            for id in held {
                *seen.entry(*id).or_default() += 1;
            }
        }
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

/// `(tick, held ids)` of a `/state` body's first line.
fn parse_held(text: &str) -> Option<(u64, Vec<u32>)> {
    let first = text.lines().next()?;
    let tick = field(first, "tick")?.parse().ok()?;
    let held = field(first, "held").unwrap_or("");
    let ids = held
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect::<Result<Vec<u32>, _>>()
        .ok()?;
    Some((tick, ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_held_twice_in_two_snapshots_in_a_row_is_a_duplicate() {
        assert_eq!(
            parse_held("FABRIC_ZONE_STATE zone=0 tick=20 dropped=0 held=1,2 incoming=\nE 1"),
            Some((20, vec![1, 2]))
        );
        assert_eq!(parse_held("S tick=20 held= incoming="), Some((20, vec![])));
        let mut c = HeldCheck::default();
        c.check(&[(20, vec![1, 2]), (20, vec![2, 3])]);
        c.check(&[(20, vec![1, 2]), (20, vec![2, 3])]);
        assert_eq!(c.figures().snapshots, 1, "the same tick is checked once");
        c.check(&[(40, vec![1]), (41, vec![1])]);
        assert_eq!(
            c.figures().snapshots,
            1,
            "zones out of step are not compared"
        );
        c.check(&[(60, vec![1, 2]), (60, vec![2, 3])]);
        let f = c.figures();
        assert_eq!((f.snapshots, f.transient, f.duplicated), (2, 1, 1), "{f:?}");
        c.check(&[(80, vec![1, 2]), (80, vec![3])]);
        assert_eq!(c.figures().duplicated, 1, "gone again");
    }
}
