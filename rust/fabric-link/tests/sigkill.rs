//! A zone process killed with SIGKILL (no goodbye on any session): its neighbours, separate
//! processes, notice through the link's idle timeout, keep ticking on time, roll back their
//! hand-offs toward it (their entities stay theirs), and relink when it is started again (its
//! own entities are gone until persistence lands). Process states are read from each zone's
//! own `LINK_ZONE_STATE` lines.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

const TICK_HZ: u64 = 20;

#[derive(Debug, Clone, Default)]
struct State {
    ticks: u64,
    linked: Vec<u8>,
    held: u64,
    rollbacks: u64,
    commits: u64,
    arrivals: u64,
}

fn parse(line: &str) -> Option<State> {
    let rest = line.strip_prefix("LINK_ZONE_STATE ")?;
    let mut s = State::default();
    for kv in rest.split_whitespace() {
        let (k, v) = kv.split_once('=')?;
        let n = || v.parse::<u64>().ok();
        match k {
            "ticks" => s.ticks = n()?,
            "linked" => s.linked = v.split(',').filter_map(|z| z.parse().ok()).collect(),
            "held" => s.held = n()?,
            "rollbacks" => s.rollbacks = n()?,
            "commits" => s.commits = n()?,
            "arrivals" => s.arrivals = n()?,
            _ => {}
        }
    }
    Some(s)
}

struct ZoneProc {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    member: String,
    last: State,
}

impl ZoneProc {
    fn spawn(zone: u8, key_file: &std::path::Path) -> ZoneProc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fabric-link-zone"))
            .args(["--fabric", "kill-test", "--zones", "3", "--entities", "300"])
            .args([
                "--zone",
                &zone.to_string(),
                "--seed",
                &(zone as u64 + 1).to_string(),
            ])
            .args(["--tick-hz", &TICK_HZ.to_string(), "--idle-ms", "2000"])
            .arg("--fabric-key-file")
            .arg(key_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn fabric-link-zone");
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for l in out.lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("a READY line");
        let member = first
            .strip_prefix("LINK_ZONE_READY ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_owned();
        ZoneProc {
            child,
            stdin,
            lines,
            member,
            last: State::default(),
        }
    }

    fn members(&mut self, all: &[&str]) {
        writeln!(self.stdin, "members {}", all.join(" ")).unwrap();
        self.stdin.flush().unwrap();
    }

    /// The zone's latest state line (waits for one to come).
    fn state(&mut self) -> State {
        let mut got = false;
        while let Ok(l) = self.lines.try_recv() {
            if let Some(s) = parse(&l) {
                self.last = s;
                got = true;
            }
        }
        if !got {
            let l = self
                .lines
                .recv_timeout(Duration::from_secs(5))
                .expect("state lines");
            if let Some(s) = parse(&l) {
                self.last = s;
            }
        }
        self.last.clone()
    }
}

impl Drop for ZoneProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_sigkilled_zone_rolls_back_around_and_relinks_when_restarted() {
    let dir = std::env::temp_dir().join(format!("fabric-link-kill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("fabric.key");
    std::fs::write(
        &key_file,
        fabric_auth::keys::signing_key_to_b64(&ed25519_dalek::SigningKey::from_bytes(&[9; 32])),
    )
    .unwrap();
    let mut z: Vec<ZoneProc> = (0..3).map(|k| ZoneProc::spawn(k, &key_file)).collect();
    let members: Vec<String> = z.iter().map(|p| p.member.clone()).collect();
    let refs: Vec<&str> = members.iter().map(String::as_str).collect();
    for p in &mut z {
        p.members(&refs);
    }
    until("all linked", Duration::from_secs(30), || {
        z.iter_mut().all(|p| p.state().linked.len() == 2)
    });
    until("migrations", Duration::from_secs(60), || {
        z.iter_mut().map(|p| p.state().commits).sum::<u64>() >= 30
    });

    // SIGKILL zone 1: no close frame, the survivors find out from the idle timeout (2 s).
    let mut dead = z.remove(1);
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    let killed_at = Instant::now();
    until("zone 1 seen down", Duration::from_secs(15), || {
        z.iter_mut().all(|p| !p.state().linked.contains(&1))
    });
    let detected = killed_at.elapsed();
    assert!(
        detected >= Duration::from_millis(1500),
        "idle timeout, not a close: {detected:?}"
    );
    let before: Vec<State> = z.iter_mut().map(ZoneProc::state).collect();
    let t0 = Instant::now();
    until(
        "hand-offs toward zone 1 roll back",
        Duration::from_secs(20),
        || {
            z.iter_mut()
                .zip(&before)
                .map(|(p, b)| p.state().rollbacks - b.rollbacks)
                .sum::<u64>()
                >= 5
                && t0.elapsed() >= Duration::from_secs(3)
        },
    );
    let after: Vec<State> = z.iter_mut().map(ZoneProc::state).collect();
    let secs = t0.elapsed().as_secs_f64();
    for (b, a) in before.iter().zip(&after) {
        let rate = (a.ticks - b.ticks) as f64 / secs;
        assert!(
            rate >= 0.9 * TICK_HZ as f64,
            "a survivor kept ticking on time: {rate:.1} ticks/s"
        );
    }
    // Their entities stay theirs: nothing of theirs went to the dead zone (the counts are
    // sampled in two processes at slightly different times, so an entity in flight between
    // them may be seen twice or not at all; allow that much).
    let held = |s: &[State]| s.iter().map(|x| x.held).sum::<u64>();
    let in_flight_allowance = 20;
    assert!(
        held(&after) + in_flight_allowance >= held(&before),
        "survivors kept their entities: {} then {}",
        held(&before),
        held(&after)
    );

    // Zone 1 comes back (empty: no persistence yet) on a new port; the others are told.
    let mut back = ZoneProc::spawn(1, &key_file);
    let members = [
        z[0].member.clone(),
        back.member.clone(),
        z[1].member.clone(),
    ];
    let refs: Vec<&str> = members.iter().map(String::as_str).collect();
    for p in z.iter_mut().chain(std::iter::once(&mut back)) {
        p.members(&refs);
    }
    until("relinked", Duration::from_secs(30), || {
        z.iter_mut().all(|p| p.state().linked.len() == 2) && back.state().linked.len() == 2
    });
    until(
        "hand-offs into the new zone 1",
        Duration::from_secs(60),
        || back.state().arrivals >= 5,
    );
}
