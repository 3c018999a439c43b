//! Child processes for tests and tools: role-prefixed output, fatal-pattern detection, timeouts,
//! and teardown of the whole process group.
//!
//! A headless Godot whose script fails keeps running, so a Godot process is killed as soon as a
//! line shows one of [`GODOT_FATAL_PATTERNS`]; its [`Outcome`] then names the line. The exit code
//! is always Godot's own (never a pipe's).

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt as _;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Lines that mean a Godot run has failed, whatever its exit code.
pub const GODOT_FATAL_PATTERNS: &[&str] = &[
    "SCRIPT ERROR",
    "Parse Error",
    "Can't open dynamic library",
    "GDExtension dynamic library not found",
    "ObjectDB instances leaked at exit",
];

/// How a process ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Exit code, when it exited by itself.
    pub code: Option<i32>,
    /// The signal that ended it (e.g. 6 for an abort), when it did not exit by itself.
    pub signal: Option<i32>,
    /// It ran past its time and was killed.
    pub timed_out: bool,
    /// The first output line matching a fatal pattern, if any.
    pub fatal: Option<String>,
    /// How long it ran.
    pub elapsed: Duration,
}

impl Outcome {
    /// Exit code 0, no timeout, no fatal line.
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out && self.fatal.is_none()
    }
}

enum Line {
    Text(String),
    Eof,
}

/// A running child process in its own process group.
pub struct Proc {
    role: String,
    child: Child,
    started: Instant,
    lines: Arc<Mutex<Vec<String>>>,
    fatal: Arc<Mutex<Option<String>>>,
    rx: Receiver<Line>,
    eofs: usize,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
    watch_fatal: bool,
}

impl std::fmt::Debug for Proc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Proc({}, pid {})", self.role, self.child.id())
    }
}

impl Proc {
    /// Starts `cmd` as `role` (a short name used to prefix its output). With `godot = true`
    /// the output is watched for [`GODOT_FATAL_PATTERNS`].
    pub fn spawn(role: &str, mut cmd: Command, godot: bool) -> anyhow::Result<Self> {
        use std::os::unix::process::CommandExt as _;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {role}: {cmd:?}"))?;
        let (tx, rx) = channel();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let fatal = Arc::new(Mutex::new(None));
        let pid = child.id() as i32;
        let mut readers = Vec::new();
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        for stream in [Box::new(out) as Box<dyn Read + Send>, Box::new(err)] {
            readers.push(spawn_reader(
                role.to_owned(),
                stream,
                tx.clone(),
                lines.clone(),
                fatal.clone(),
                godot.then_some(pid),
            ));
        }
        Ok(Self {
            role: role.to_owned(),
            child,
            started: Instant::now(),
            lines,
            fatal,
            rx,
            eofs: 0,
            readers,
            status: None,
            watch_fatal: godot,
        })
    }

    /// The process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it printed so far (stdout and stderr interleaved by arrival).
    pub fn output(&self) -> String {
        self.lines.lock().expect("lines lock").join("\n")
    }

    /// Waits until a line satisfies `pred` and returns it. Fails when the process ends, prints a
    /// fatal line, or `timeout` passes first; the error includes its output.
    pub fn wait_for_line(
        &mut self,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(f) = self.fatal.lock().expect("fatal lock").clone() {
                bail!("{} failed: `{f}`\n{}", self.role, self.output());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Line::Text(l)) if pred(&l) => return Ok(l),
                Ok(Line::Text(_)) => {}
                Ok(Line::Eof) => {
                    self.eofs += 1;
                    if self.eofs == 2 {
                        let code = self.child.wait().ok().and_then(|s| s.code());
                        bail!(
                            "{} exited (code {code:?}) before printing the expected line\n{}",
                            self.role,
                            self.output()
                        );
                    }
                }
                Err(RecvTimeoutError::Timeout) => bail!(
                    "{} did not print the expected line within {:.1} s\n{}",
                    self.role,
                    timeout.as_secs_f64(),
                    self.output()
                ),
                Err(RecvTimeoutError::Disconnected) => bail!("{} output closed", self.role),
            }
        }
    }

    /// Waits for the process to exit by itself, killing it after `timeout` or on a fatal line.
    pub fn wait(&mut self, timeout: Duration) -> Outcome {
        let deadline = Instant::now() + timeout;
        let mut timed_out = false;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.status = Some(st);
                break;
            }
            if self.watch_fatal && self.fatal.lock().expect("fatal lock").is_some() {
                self.kill_group(libc::SIGKILL);
                self.status = self.child.wait().ok();
                break;
            }
            if Instant::now() >= deadline {
                timed_out = true;
                self.stop();
                break;
            }
            // Wake on output or every 20 ms to check the exit status.
            let _ = self.rx.recv_timeout(Duration::from_millis(20));
        }
        self.join_readers();
        Outcome {
            code: if timed_out {
                None
            } else {
                self.status.and_then(|s| s.code())
            },
            signal: if timed_out {
                None
            } else {
                self.status.and_then(|s| s.signal())
            },
            timed_out,
            fatal: self.fatal.lock().expect("fatal lock").clone(),
            elapsed: self.started.elapsed(),
        }
    }

    /// Asks the whole process group to stop (SIGTERM), then kills it after 3 s.
    pub fn stop(&mut self) {
        if self.status.is_some() {
            return;
        }
        self.kill_group(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.status = Some(st);
                // Anything else left in the group goes too.
                self.kill_group(libc::SIGKILL);
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill_group(libc::SIGKILL);
        self.status = self.child.wait().ok();
    }

    /// Kills the whole process group at once (SIGKILL: no goodbye on any link, nothing
    /// flushed) and reaps it: a crash, for the tests that need one.
    pub fn kill(&mut self) {
        if self.status.is_some() {
            return;
        }
        self.kill_group(libc::SIGKILL);
        self.status = self.child.wait().ok();
    }

    fn kill_group(&self, signal: i32) {
        // SAFETY: kill(2) with a negative pid signals the process group we created for the child.
        unsafe {
            libc::kill(-(self.child.id() as i32), signal);
        }
    }

    fn join_readers(&mut self) {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }

    /// True while any process of its group is still alive.
    pub fn group_alive(&self) -> bool {
        // SAFETY: signal 0 only checks for existence.
        unsafe { libc::kill(-(self.child.id() as i32), 0) == 0 }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
        self.join_readers();
    }
}

fn spawn_reader(
    role: String,
    stream: Box<dyn Read + Send>,
    tx: Sender<Line>,
    lines: Arc<Mutex<Vec<String>>>,
    fatal: Arc<Mutex<Option<String>>>,
    kill_pgid_on_fatal: Option<i32>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let quiet = std::env::var_os("FABRIC_QUIET").is_some();
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if !quiet {
                eprintln!("[{role}] {line}");
            }
            if let Some(pgid) = kill_pgid_on_fatal
                && GODOT_FATAL_PATTERNS.iter().any(|p| line.contains(p))
            {
                let mut f = fatal.lock().expect("fatal lock");
                if f.is_none() {
                    *f = Some(line.clone());
                    // SAFETY: signals the child's own process group.
                    unsafe {
                        libc::kill(-pgid, libc::SIGKILL);
                    }
                }
            }
            lines.lock().expect("lines lock").push(line.clone());
            let _ = tx.send(Line::Text(line));
        }
        let _ = tx.send(Line::Eof);
    })
}

/// Runs `scripts/<name>` of the repository with bash (its progress on our standard error) and
/// returns the last line it prints: the set-up scripts print the path of what they installed.
pub fn setup_script(name: &str) -> anyhow::Result<String> {
    let script = crate::paths::repo_root().join("scripts").join(name);
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!("{} failed ({})", script.display(), out.status);
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .with_context(|| format!("{} printed no path", script.display()))
}
