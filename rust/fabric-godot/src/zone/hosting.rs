//! Several zones in one process: `--zones-in-process A..B` makes the zone started from the
//! command line run zone A and add one more `FabricZone` node per zone A+1..B-1 beside it,
//! each with settings derived from the same command line ([`settings_for`]).
//!
//! Why one node per zone and not one node ticking several zone cores: a node per zone keeps
//! every zone exactly what it is in a process of its own (its own client listener, link
//! listener, metrics endpoint, journal, pacer, players, registry membership), so hand-offs
//! between zones of one process go through the same authenticated links as between
//! processes and nothing in the zone changes. What a zone process costs when idle is not the
//! zone but the process: the engine's main loop (a frame every 4 ms at the project's 250 fps),
//! the physics step and the idle threads of the engine. Those are paid once per process
//! here; the Rust side already shares one tokio runtime per process
//! (`fabric_net::runtime_handle`). See `docs/load.md`, "Several zones per process".
//!
//! Per zone: the client, link and metrics ports are the given port plus the zone's offset in
//! the range (0 stays 0: each picks a free port), `--cert-hash-file PATH` becomes
//! `PATH.zone-K`, a display name gets ` K` appended; the data directory is shared (its files
//! are named by zone index already).
//!
//! The process quits at the end of a graceful shutdown only when the last of its zones is
//! done ([`zone_done`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use godot::prelude::*;

use super::FabricZone;
use super::config::{ConfigError, ZoneSettings};

/// Zones of this process started from the command line (itself and the zones it hosts) that
/// have not finished a graceful shutdown.
static PROCESS_ZONES: AtomicU32 = AtomicU32::new(0);

/// Counts a zone of this process (one started from the command line, or hosted beside it).
pub(crate) fn zone_started() {
    PROCESS_ZONES.fetch_add(1, Ordering::SeqCst);
}

/// The worst exit code of the zones of this process that finished their shutdown.
static EXIT_CODE: AtomicI32 = AtomicI32::new(0);

/// A zone finished its graceful shutdown with `exit_code`: the process's exit code (the
/// worst of its zones') when it was the last zone of the process (or the process counts
/// none: a zone made by a script), so the process may quit now; `None` while others run.
pub(crate) fn zone_done(exit_code: i32) -> Option<i32> {
    let worst = EXIT_CODE
        .fetch_max(exit_code, Ordering::SeqCst)
        .max(exit_code);
    let last = PROCESS_ZONES
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .map_or(true, |before| before <= 1);
    last.then_some(worst)
}

/// The settings of zone `k` of the range `base.hosted` (the whole command line's settings).
/// Without a range, `k` must be `base`'s own zone and the settings are `base`'s.
pub fn settings_for(base: &ZoneSettings, k: u32) -> Result<ZoneSettings, ConfigError> {
    let range = base
        .hosted
        .clone()
        .unwrap_or(base.zone_index..base.zone_index + 1);
    if !range.contains(&k) {
        return Err(ConfigError::Zone(format!(
            "zone {k} is not in this process's range {range:?}"
        )));
    }
    if range.len() > 1 && base.zone_count == 0 {
        return Err(ConfigError::Zone(
            "--zones-in-process with several zones needs --zone-count".into(),
        ));
    }
    if base.zone_count != 0 && range.end > base.zone_count {
        return Err(ConfigError::Zone(format!(
            "--zones-in-process {range:?} goes past the fabric's {} zones",
            base.zone_count
        )));
    }
    let offset = k - range.start;
    let several = range.len() > 1;
    let shift = |port: u16, what: &str| -> Result<u16, ConfigError> {
        if port == 0 {
            return Ok(0);
        }
        u16::try_from(u32::from(port) + offset).map_err(|_| {
            ConfigError::Zone(format!(
                "zone {k}: {what} port {port} + {offset} is too large"
            ))
        })
    };
    let mut s = base.clone();
    s.hosted = None;
    s.zone_index = k;
    s.port = shift(base.port, "client")?;
    s.link_port = shift(base.link_port, "link")?;
    if let Some(mut addr) = base.metrics_addr {
        addr.set_port(shift(addr.port(), "metrics")?);
        s.metrics_addr = Some(addr);
    }
    if several {
        s.cert_hash_file = base
            .cert_hash_file
            .as_ref()
            .map(|p| PathBuf::from(format!("{}.zone-{k}", p.display())));
        if !base.zone_name.is_empty() {
            s.zone_name = format!("{} {k}", base.zone_name);
        }
    }
    Ok(s)
}

impl FabricZone {
    /// Applies the command line's settings `s` to this node (the first zone of `s.hosted`, or
    /// the only zone) and adds a child `FabricZone` for each other zone of the range. Returns
    /// the error when a zone's settings cannot be derived (nothing is added then).
    pub(crate) fn host_zones(&mut self, s: &ZoneSettings) -> Result<(), ConfigError> {
        let range = s.hosted.clone().unwrap_or(s.zone_index..s.zone_index + 1);
        let all: Vec<ZoneSettings> = range
            .clone()
            .map(|k| settings_for(s, k))
            .collect::<Result<_, _>>()?;
        self.set_properties(&all[0]);
        self.process_zone = true;
        zone_started();
        if all.len() > 1 {
            godot_print!(
                "FABRIC_ZONE_HOSTING zones={}..{} count={}",
                range.start,
                range.end,
                all.len()
            );
        }
        for zs in &all[1..] {
            let mut node = FabricZone::new_alloc();
            {
                let mut z = node.bind_mut();
                z.use_command_line = false;
                z.autostart = self.autostart;
                z.serve_clients = self.serve_clients;
                z.set_properties(zs);
                z.process_zone = true;
            }
            zone_started();
            node.set_name(&format!("Zone{}", zs.zone_index));
            self.base_mut().add_child(&node);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::config::parse_args;

    fn parsed(line: &str) -> ZoneSettings {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        parse_args(ZoneSettings::default(), &args).unwrap()
    }

    #[test]
    fn each_zone_gets_its_own_ports_files_and_name() {
        let base = parsed(
            "--zone-count 8 --zones-in-process 4..8 --port 7000 --link-port 9000 \
             --metrics-addr 127.0.0.1:9100 --cert-hash-file /tmp/h --name east --data-dir /d",
        );
        let z: Vec<ZoneSettings> = (4..8).map(|k| settings_for(&base, k).unwrap()).collect();
        assert_eq!(
            z.iter().map(|s| s.zone_index).collect::<Vec<_>>(),
            [4, 5, 6, 7]
        );
        assert_eq!(
            z.iter().map(|s| s.port).collect::<Vec<_>>(),
            [7000, 7001, 7002, 7003]
        );
        assert_eq!(z[3].link_port, 9003, "link port + offset");
        assert_eq!(z[2].metrics_addr, Some("127.0.0.1:9102".parse().unwrap()));
        assert_eq!(z[1].cert_hash_file, Some(PathBuf::from("/tmp/h.zone-5")));
        assert_eq!(z[0].zone_name, "east 4");
        assert!(
            z.iter().all(|s| s.data_dir == Some(PathBuf::from("/d"))),
            "one data dir: its files are named by zone index"
        );
        assert!(
            z.iter().all(|s| s.hosted.is_none()),
            "a hosted zone hosts nothing"
        );
        assert!(z.iter().all(|s| s.core_config().is_ok()), "valid zones");
    }

    #[test]
    fn free_ports_stay_free_and_one_zone_is_unchanged() {
        let base =
            parsed("--zone-count 4 --zones-in-process 0..4 --port 0 --metrics-addr 127.0.0.1:0");
        let s = settings_for(&base, 3).unwrap();
        assert_eq!(
            (s.port, s.link_port),
            (0, 0),
            "0: each zone picks a free port"
        );
        assert_eq!(s.metrics_addr, Some("127.0.0.1:0".parse().unwrap()));
        let alone =
            parsed("--zone-id 2 --zone-count 4 --port 7000 --cert-hash-file /tmp/h --name n");
        let s = settings_for(&alone, 2).unwrap();
        assert_eq!(
            (s.port, s.cert_hash_file, s.zone_name.as_str()),
            (7000, Some(PathBuf::from("/tmp/h")), "n"),
            "no range: the zone's own settings"
        );
    }

    #[test]
    fn ranges_outside_the_fabric_and_port_overflow_are_errors() {
        let past = parsed("--zone-count 4 --zones-in-process 2..6");
        assert!(matches!(settings_for(&past, 2), Err(ConfigError::Zone(_))));
        let no_count = parsed("--zones-in-process 0..2");
        assert!(matches!(
            settings_for(&no_count, 0),
            Err(ConfigError::Zone(_))
        ));
        let base = parsed("--zone-count 4 --zones-in-process 0..2");
        assert!(
            matches!(settings_for(&base, 3), Err(ConfigError::Zone(_))),
            "3 is not hosted"
        );
        let high = parsed("--zone-count 4 --zones-in-process 0..4 --port 65534");
        assert!(settings_for(&high, 1).is_ok(), "65535 fits");
        assert!(
            matches!(settings_for(&high, 2), Err(ConfigError::Zone(_))),
            "65536 does not"
        );
    }

    #[test]
    fn the_process_quits_after_its_last_zone() {
        // The counter is process-wide: this is the only test that touches it.
        assert_eq!(
            zone_done(0),
            Some(0),
            "no zones counted: a script's zone quits at once"
        );
        zone_started();
        zone_started();
        assert_eq!(zone_done(1), None, "one zone left");
        assert_eq!(zone_done(0), Some(1), "the last one; a zone failed to save");
        assert_eq!(zone_done(1), Some(1), "never below zero");
    }
}
