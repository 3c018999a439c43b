//! Graceful shutdown of a fabric: every zone drains toward zone 0 through ordinary STAGING
//! migration (the core's `Zone::start_drain`, 50 entities per tick), then zone 0 writes the
//! `FabricSnapshot`. Started by `FabricZone.begin_shutdown` or, in a zone process, by SIGINT
//! or SIGTERM.
//!
//! The zones drain as a chain, highest first, because a draining zone refuses arrivals: zone
//! `k` waits for zone `k + 1`'s drain-done notice (the last zone starts at once), then drains
//! into zone `k - 1`; zone 0 waits for zone 1's notice, then saves everything it holds. A zone
//! that has drained keeps running, repeating its notice every second, until zone `k - 1`
//! confirms it (DRAK: nothing from zone `k` is still pinned there, so no commit ack is left to
//! answer), the link to zone `k - 1` is gone (it finished first) or [`LINGER_MAX`] passed; then
//! it finishes. When the deadline passes first (a zone unreachable), a zone saves what it still
//! holds itself (zone `k` to `PATH.zone-k.res`), says how many entities it could not move and
//! what its hand-offs were still waiting for; each of those files is reloaded like the main one.
//!
//! Each step is printed (`FabricZone k: shutdown: ...`), so a long drain shows its progress.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fabric_core::slots::SlotState;
use fabric_core::zones::ZoneId;
use godot::prelude::*;

use super::FabricZone;
use crate::snapshot::file;

/// The longest a drained zone waits for its target to confirm the drain-done notice.
pub const LINGER_MAX: Duration = Duration::from_secs(10);

/// File name of the snapshot in the zone's `data_dir` when no path is given.
pub const SNAPSHOT_FILE: &str = "fabric-snapshot.res";

/// Set by the SIGINT/SIGTERM handler, read by every zone's frame.
static SIGNALLED: AtomicBool = AtomicBool::new(false);

/// Makes SIGINT and SIGTERM start a graceful shutdown instead of ending the process (zone
/// processes only: a zone started from the command line). Installed once per process.
pub fn install_signal_handlers() {
    #[cfg(unix)]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            for sig in [libc::SIGINT, libc::SIGTERM] {
                // SAFETY: the action only stores to an atomic, which is async-signal-safe.
                let r = unsafe {
                    signal_hook_registry::register(sig, || SIGNALLED.store(true, Ordering::SeqCst))
                };
                if let Err(e) = r {
                    tracing::warn!("cannot handle signal {sig}: {e}");
                }
            }
        });
    }
}

/// Where a zone's shutdown is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for the next zone's drain-done notice.
    Waiting,
    /// Sending every entity to the previous zone.
    Draining,
    /// Drained; repeating the notice until the time is up.
    Lingering(Instant),
    /// Finished: drained, or (zone 0) snapshot written.
    Done,
    /// The deadline passed: what the zone still held was saved by itself.
    TimedOut,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Waiting => "waiting",
            Phase::Draining => "draining",
            Phase::Lingering(_) => "lingering",
            Phase::Done => "done",
            Phase::TimedOut => "timed_out",
        }
    }
}

/// One zone's shutdown in progress.
#[derive(Debug, Clone)]
pub struct Shutdown {
    path: String,
    deadline: Instant,
    quit: bool,
    phase: Phase,
    report: String,
}

impl FabricZone {
    /// Starts the graceful shutdown (see the module docs); `path` empty = `data_dir`'s
    /// [`SNAPSHOT_FILE`]. Returns false when the zone is not running or no path is known.
    fn start_shutdown(&mut self, path: &str, timeout: Duration, quit: bool) -> bool {
        if self.runtime.is_none() {
            return false;
        }
        let path = if path.is_empty() {
            if self.data_dir.is_empty() {
                return false;
            }
            format!("{}/{SNAPSHOT_FILE}", self.data_dir)
        } else {
            path.to_owned()
        };
        tracing::info!(zone = self.zone_id, path, "graceful shutdown started");
        self.shutdown = Some(Shutdown {
            path,
            deadline: Instant::now() + timeout,
            quit,
            phase: Phase::Waiting,
            report: String::new(),
        });
        true
    }

    /// One step of the shutdown, run every frame after the ticks.
    pub(crate) fn shutdown_step(&mut self) {
        let asked = self.shutdown.is_some() || SIGNALLED.load(Ordering::SeqCst);
        if asked && self.room_exit_save_pending() {
            // The room is saved first (`room`); the shutdown goes on once the backend answered.
            return;
        }
        if self.shutdown.is_none() && SIGNALLED.load(Ordering::SeqCst) {
            let ok = self.start_shutdown("", Duration::from_secs(60), true);
            if !ok {
                godot_print!(
                    "FABRIC_ZONE_SHUTDOWN zone_id={} not running or no data_dir: nothing saved",
                    self.zone_id
                );
                self.stop();
                self.base().get_tree().quit();
                return;
            }
        }
        let (Some(sd), Some(rt)) = (self.shutdown.as_mut(), self.runtime.as_mut()) else {
            return;
        };
        let now = Instant::now();
        let me = rt.zone().id();
        let count = rt.zone().config().layout.count() as ZoneId;
        let timed_out = now >= sd.deadline;
        let next = match sd.phase {
            Phase::Waiting => {
                let next_done = me + 1 >= count || rt.zone().drain_done_from().contains(me + 1);
                if next_done || timed_out {
                    if me == 0 {
                        Some(if next_done {
                            Phase::Done
                        } else {
                            Phase::TimedOut
                        })
                    } else if next_done {
                        rt.zone_mut().start_drain(me - 1);
                        Some(Phase::Draining)
                    } else {
                        Some(Phase::TimedOut)
                    }
                } else {
                    None
                }
            }
            Phase::Draining if rt.zone().drain_done() => Some(Phase::Lingering(now + LINGER_MAX)),
            Phase::Draining if timed_out => Some(Phase::TimedOut),
            Phase::Lingering(until) => {
                let target = me.saturating_sub(1);
                let target_gone = !rt.links().iter().any(|l| l.zone == target);
                (rt.zone().drain_done_acked() || target_gone || now >= until).then_some(Phase::Done)
            }
            _ => None,
        };
        let Some(phase) = next else { return };
        let from = sd.phase;
        sd.phase = phase;
        self.print_progress(from, phase);
        if !matches!(phase, Phase::Done | Phase::TimedOut) {
            return;
        }
        self.finish_shutdown(phase);
    }

    /// Prints one line when the shutdown moves on (a drain of thousands of entities takes
    /// seconds, a stuck one a minute: the log shows where it is).
    fn print_progress(&mut self, from: Phase, to: Phase) {
        let Some(rt) = self.runtime.as_mut() else {
            return;
        };
        let me = rt.zone().id();
        let held = rt.zone().slots().used();
        let last = usize::from(me) + 1 >= rt.zone().config().layout.count();
        let line = match (from, to) {
            (Phase::Waiting, Phase::Draining) => format!(
                "{}; moving the {held} entities held here into zone {}",
                if last {
                    "the last zone drains first".to_owned()
                } else {
                    format!("zone {} drained", me + 1)
                },
                me.saturating_sub(1)
            ),
            (Phase::Draining, Phase::Lingering(_)) => format!(
                "drained; waiting for zone {} to confirm",
                me.saturating_sub(1)
            ),
            (Phase::Lingering(_), Phase::Done) => {
                let target = me.saturating_sub(1);
                if rt.zone().drain_done_acked() {
                    format!("zone {target} confirmed the drain")
                } else if !rt.links().iter().any(|l| l.zone == target) {
                    format!("zone {target} finished before confirming the drain")
                } else {
                    format!(
                        "zone {target} did not confirm the drain within {} s",
                        LINGER_MAX.as_secs()
                    )
                }
            }
            _ => return,
        };
        godot_print!("FabricZone {me}: shutdown: {line}");
    }

    /// What a zone's hand-offs are still waiting for, in words (for a shutdown that timed out).
    fn backlog(&mut self) -> String {
        let Some(rt) = self.runtime.as_mut() else {
            return String::new();
        };
        let mut linked: Vec<ZoneId> = rt.links().iter().map(|l| l.zone).collect();
        linked.sort_unstable();
        let durable = rt
            .durable_tick()
            .map_or_else(|| "none".to_owned(), |t| t.to_string());
        let tick = rt.last_tick_number();
        let z = rt.zone();
        let count = |state| z.holdings().filter(|h| h.state == state).count();
        let heard: Vec<ZoneId> = (0..32)
            .filter(|&k| z.drain_done_from().contains(k))
            .collect();
        let b = z.handoff_backlog();
        format!(
            "slots: {} staging, {} incoming, {} arriving; decisions unanswered: {}; departed \
             neighbours {:?}; sealed \
             waiting for the journal: {}; pinned arrivals: {}; forgets owed: {}; journal durable \
             tick {durable} of {tick}; drain-done heard from zones {heard:?}; linked to zones \
             {linked:?}",
            count(SlotState::Staging),
            count(SlotState::Incoming),
            count(SlotState::Arriving),
            unanswered(z.resolutions()),
            z.departed_peers().iter().collect::<Vec<_>>(),
            b.sealing,
            b.pinned,
            b.forgets_owed,
        )
    }

    /// Saves what must be saved when the shutdown ends, reports it, and quits if asked.
    fn finish_shutdown(&mut self, phase: Phase) {
        let Some(sd) = self.shutdown.as_ref() else {
            return;
        };
        let zone = self.zone_id;
        let quit = sd.quit;
        let snap = self.snapshot_now().unwrap_or_else(|| {
            fabric_core::snapshot::Snapshot::new(&self.fabric_name.to_string(), 1, 0, 0)
        });
        let target = if zone == 0 {
            Some(sd.path.clone())
        } else if phase == Phase::TimedOut || !snap.is_empty() {
            Some(format!("{}.zone-{zone}.res", sd.path))
        } else {
            None
        };
        let mut report = match (&target, phase) {
            (Some(path), Phase::Done) => format!("saved {} entities to {path}", snap.len()),
            (Some(path), _) if zone == 0 => format!(
                "zone 1 did not report its drain in time: saved the {} entities held here to {path}",
                snap.len()
            ),
            (Some(path), _) => format!(
                "the drain did not finish in time: saved the {} entities it could not move to {path}",
                snap.len()
            ),
            (None, _) => "drained every entity".to_owned(),
        };
        let mut exit_code = 0;
        if let Some(path) = &target
            && let Err(e) = file::save(&snap, path)
        {
            report = format!("could not save: {e}");
            godot_error!("FabricZone {zone}: {report}");
            exit_code = 1;
        }
        if phase == Phase::TimedOut {
            let backlog = self.backlog();
            godot_warn!("FabricZone {zone}: shutdown: {report} ({backlog})");
        }
        // The digest of what was saved, for checking a reload bit for bit (`entity_digest`).
        let digest = snap
            .entities()
            .map_or(0, |e| fabric_core::snapshot::entity_digest(&e));
        godot_print!(
            "FABRIC_ZONE_SHUTDOWN zone_id={zone} {report} digest={digest:016x} hlc={}",
            snap.hlc as u64
        );
        if let Some(sd) = self.shutdown.as_mut() {
            sd.report = report;
        }
        if quit {
            self.stop();
            // Zones hosted in one process: the last one done quits it.
            if let Some(code) = super::hosting::zone_done(exit_code) {
                self.base().get_tree().quit_ex().exit_code(code).done();
            }
        }
    }
}

impl FabricZone {
    /// At start, with a `data_dir`: reloads this zone's range from [`SNAPSHOT_FILE`] there and
    /// from every leftover `SNAPSHOT_FILE.zone-N.res` of a drain that timed out, unless this
    /// zone already reloaded exactly these files (its journal holds their entities since).
    /// No file: nothing to do. The files are marked as reloaded by this zone
    /// (`zone-<index>.restored`) once its journal has made the reloaded entities durable.
    pub(crate) fn restore_at_start(&mut self) -> Result<usize, super::snapshot::RestoreError> {
        if self.data_dir.is_empty() {
            return Ok(0);
        }
        let dir = std::path::PathBuf::from(self.data_dir.to_string());
        let zone = self.zone_id.max(0) as u32;
        let Some(fingerprint) = pending_fingerprint(&dir, zone) else {
            return Ok(0);
        };
        let mut total = 0;
        for name in snapshot_files(&dir) {
            let path = dir.join(&name).to_string_lossy().into_owned();
            let (n, digest) = self.restore_from(&path)?;
            let clock = self
                .runtime
                .as_ref()
                .map_or(0, |rt| rt.zone().clock().now().to_u64());
            godot_print!(
                "FABRIC_ZONE_RESTORED zone_id={} file={path} entities={n} digest={digest:016x} hlc={clock}",
                self.zone_id
            );
            total += n;
        }
        if let Some(rt) = self.runtime.as_ref() {
            let tick = rt.last_tick_number();
            self.restore_marker = Some(RestoreMarker {
                path: marker_path(&dir, zone),
                fingerprint,
                after_tick: tick,
            });
        }
        Ok(total)
    }

    /// Writes the reloaded-snapshot marker once the journal's durable tick is past the reload
    /// (called every frame; does nothing without a pending marker).
    pub(crate) fn mark_restored_when_durable(&mut self) {
        let Some(m) = self.restore_marker.as_ref() else {
            return;
        };
        let durable = self.runtime.as_ref().and_then(|r| r.durable_tick());
        if durable.is_none_or(|t| t <= m.after_tick) {
            return;
        }
        let tmp = m.path.with_extension("restored.partial");
        let r = std::fs::write(&tmp, &m.fingerprint).and_then(|()| std::fs::rename(&tmp, &m.path));
        match r {
            Ok(()) => {
                self.restore_marker = None;
            }
            Err(e) => {
                godot_error!(
                    "FabricZone {}: writing {}: {e} (the snapshot will be reloaded again at the next start)",
                    self.zone_id,
                    m.path.display()
                );
                self.restore_marker = None;
            }
        }
    }
}

/// A reloaded snapshot waiting for the journal to hold its entities.
#[derive(Debug)]
pub struct RestoreMarker {
    path: std::path::PathBuf,
    fingerprint: String,
    /// The reloaded entities are durable once the journal's durable tick is past this one.
    after_tick: u64,
}

/// The snapshot files in `dir` that a zone reloads at start, sorted.
fn snapshot_files(dir: &std::path::Path) -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n == SNAPSHOT_FILE
                || (n.starts_with(&format!("{SNAPSHOT_FILE}.zone-")) && n.ends_with(".res"))
        })
        .collect();
    files.sort();
    files
}

fn marker_path(dir: &std::path::Path, zone: u32) -> std::path::PathBuf {
    dir.join(format!("zone-{zone}.restored"))
}

/// The snapshot files' names, sizes and modification times, one line each, when there are
/// files and zone `zone` has not reloaded exactly these yet.
fn pending_fingerprint(dir: &std::path::Path, zone: u32) -> Option<String> {
    use std::fmt::Write as _;
    let files = snapshot_files(dir);
    if files.is_empty() {
        return None;
    }
    let mut fp = String::new();
    for name in &files {
        let meta = std::fs::metadata(dir.join(name)).ok();
        let len = meta.as_ref().map_or(0, std::fs::Metadata::len);
        let modified = meta
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let _ = writeln!(fp, "{name} {len} {modified}");
    }
    let done = std::fs::read_to_string(marker_path(dir, zone)).unwrap_or_default();
    (done != fp).then_some(fp)
}

/// Whether `dir` holds snapshot files zone `zone` has not reloaded yet: they supersede its
/// journal (a graceful shutdown drained the fabric into them).
pub fn snapshot_pending(dir: &std::path::Path, zone: u32) -> bool {
    pending_fingerprint(dir, zone).is_some()
}

#[godot_api(secondary)]
impl FabricZone {
    /// Starts a graceful shutdown of this zone (call it on every zone of the fabric): zones
    /// drain toward zone 0 one after the other, highest first, then zone 0 saves every entity
    /// to `path` as a `FabricSnapshot` (empty `path`: `fabric-snapshot.res` in `data_dir`).
    /// After `timeout_sec` a zone that has not finished saves what it still holds to
    /// `PATH.zone-N.res`. With `quit`, the engine quits when this zone is done (exit code 0, or 1
    /// when its file could not be written).
    /// SIGINT and SIGTERM call it in a zone process (`data_dir`, 60 s, quit). Returns false when
    /// the zone is not running or no path is known. Follow it with `get_shutdown_state()`.
    #[func]
    pub fn begin_shutdown(&mut self, path: GString, timeout_sec: f64, quit: bool) -> bool {
        let timeout = Duration::from_secs_f64(timeout_sec.clamp(0.0, 86_400.0));
        self.start_shutdown(&path.to_string(), timeout, quit)
    }

    /// `""` (no shutdown), `"waiting"`, `"draining"`, `"lingering"`, `"done"` or `"timed_out"`.
    #[func]
    pub fn get_shutdown_state(&self) -> GString {
        self.shutdown
            .as_ref()
            .map_or(GString::new(), |s| GString::from(s.phase.name()))
    }

    /// What the finished shutdown did, in words (what was saved where, what could not move).
    #[func]
    pub fn get_shutdown_report(&self) -> GString {
        self.shutdown
            .as_ref()
            .map_or(GString::new(), |s| GString::from(&s.report))
    }
}

/// Unanswered decisions in words, by kind and peer: "5 (commits to 0: 2, aborts to 2: 3)".
fn unanswered(rs: &[fabric_core::zone::Resolution]) -> String {
    use fabric_core::zone::Decision;
    let mut counts = std::collections::BTreeMap::new();
    for r in rs {
        let kind = match r.decision {
            Decision::Commit => "commits",
            Decision::Abort => "aborts",
        };
        *counts.entry((kind, r.peer)).or_insert(0usize) += 1;
    }
    if counts.is_empty() {
        return "0".to_owned();
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|((kind, peer), n)| format!("{kind} to {peer}: {n}"))
        .collect();
    format!("{} ({})", rs.len(), parts.join(", "))
}
