//! CPU time and resident memory of a whole process group, read from `/proc` (Linux): what a
//! zone (Godot and anything it started), the load generator or the backend costs.

use std::time::Instant;

/// CPU seconds and resident bytes of every process whose process group is `pgid`.
pub fn group_usage(pgid: u32) -> (f64, u64) {
    // SAFETY: sysconf only reads configuration values.
    let (tick, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK).max(1) as f64,
            libc::sysconf(libc::_SC_PAGESIZE).max(1) as u64,
        )
    };
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return (0.0, 0);
    };
    let mut cpu = 0.0;
    let mut rss = 0;
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some((group, ticks, pages)) = parse_stat(&stat)
            && group == pgid
        {
            cpu += ticks as f64 / tick;
            rss += pages * page;
        }
    }
    (cpu, rss)
}

/// True while process `pid` runs (exists and is not a zombie waiting to be reaped; a
/// zombie's process group still answers signal 0).
pub fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rfind(')')
            .and_then(|i| s[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// `(pgrp, utime + stime, rss pages)` from a `/proc/PID/stat` line.
pub fn parse_stat(stat: &str) -> Option<(u32, u64, u64)> {
    // The command name is in parentheses and may hold spaces: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let pgrp = f.get(2)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let rss = f.get(21)?.parse().ok()?;
    Some((pgrp, utime + stime, rss))
}

/// CPU percent (of one core) of a process group between successive samples.
#[derive(Debug)]
pub struct CpuMeter {
    pgid: u32,
    last: Option<(Instant, f64)>,
}

impl CpuMeter {
    /// A meter for the process group `pgid`.
    pub fn new(pgid: u32) -> Self {
        Self { pgid, last: None }
    }

    /// CPU percent since the previous sample (0 at the first) and resident MiB now.
    pub fn sample(&mut self) -> (f64, f64) {
        let now = Instant::now();
        let (cpu, rss) = group_usage(self.pgid);
        let pct = match self.last {
            Some((t, c)) => {
                let dt = (now - t).as_secs_f64();
                // The group's time falls when a member exits (a killed zone): 0, not negative.
                if dt > 0.0 {
                    ((cpu - c) / dt * 100.0).max(0.0)
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        self.last = Some((now, cpu));
        (pct, rss as f64 / (1024.0 * 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_spaces_in_the_name_parses() {
        let line = "1234 (godot (zone) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 100 1000000 2560 18446744073709551615";
        assert_eq!(parse_stat(line), Some((1234, 300, 2560)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_group_uses_some_memory() {
        // SAFETY: getpgrp has no preconditions.
        let pgid = unsafe { libc::getpgrp() } as u32;
        let (_, rss) = group_usage(pgid);
        assert!(rss > 1 << 20, "at least 1 MiB resident: {rss}");
    }

    #[test]
    fn a_process_runs_until_it_exits_even_before_it_is_reaped() {
        let mut child = std::process::Command::new("sleep")
            .arg("0.2")
            .spawn()
            .unwrap();
        assert!(is_running(child.id()), "sleep runs");
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while is_running(child.id()) {
            assert!(Instant::now() < deadline, "sleep 0.2 ended within 10 s");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(child.wait().unwrap().success(), "not reaped until now");
        assert!(!is_running(child.id()), "reaped");
    }
}
