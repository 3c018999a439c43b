//! Godot Performance custom monitors of a zone (Debugger > Monitors): `FabricZone<k>/owned`,
//! `staging`, `incoming`, `tick_p99_msec`, `migrations_in`, `migrations_out`, `overruns`,
//! `ghosts`, read from the figures the tick publishes once a second.

use std::sync::Arc;

use godot::classes::Performance;
use godot::prelude::*;

use super::metrics::{Figures, Published};

type Read = fn(&Figures) -> f64;

const MONITORS: &[(&str, Read)] = &[
    ("owned", |f| f.owned as f64),
    ("staging", |f| f.staging as f64),
    ("incoming", |f| f.incoming as f64),
    ("tick_p99_msec", |f| f.tick_s[1] * 1e3),
    ("migrations_in", |f| f.migrations_in as f64),
    ("migrations_out", |f| f.migrations_out as f64),
    ("overruns", |f| f.overruns as f64),
    ("ghosts", |f| f.ghosts as f64),
];

/// Adds zone `zone`'s monitors; returns their names (for [`remove`]). A name already taken
/// (another node with the same zone index in this process) is left to its first owner.
pub fn add(published: &Arc<Published>, zone: u32) -> Vec<StringName> {
    let mut perf = Performance::singleton();
    let mut names = Vec::new();
    for &(name, read) in MONITORS {
        let id = StringName::from(&format!("FabricZone{zone}/{name}"));
        if perf.has_custom_monitor(&id) {
            continue;
        }
        let p = published.clone();
        let callable = Callable::from_fn(name, move |_args: &[&Variant]| read(&p.figures()));
        perf.add_custom_monitor(&id, &callable);
        names.push(id);
    }
    names
}

/// Removes monitors added by [`add`].
pub fn remove(names: &mut Vec<StringName>) {
    if names.is_empty() {
        return;
    }
    let mut perf = Performance::singleton();
    for id in names.drain(..) {
        if perf.has_custom_monitor(&id) {
            perf.remove_custom_monitor(&id);
        }
    }
}
