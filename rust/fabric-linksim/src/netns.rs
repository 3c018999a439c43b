//! Two network namespaces joined by a conditioned point-to-point link through this process.
//!
//! ```text
//!  netns <tag>-c                      this process                      netns <tag>-s
//!  10.77.0.2  fbl0 (TUN) --read--> Link c->s (seeded) --write--> fbl0 (TUN)  10.77.0.1
//!                        <--write-- Link s->c (seeded) <--read--
//! ```
//!
//! The addresses exist only inside the two namespaces this module creates (and deletes again
//! on drop); nothing is bound on the host's own interfaces. Programs run inside a namespace
//! through [`LinkSim::command_in`] (`ip netns exec`), threads through [`in_netns`].

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

pub use crate::pump::PumpStats;
use crate::{Error, Link, LinkConfig, pump, tun};

/// The server side's address (inside the server namespace only).
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The client side's address (inside the client namespace only).
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const DEV: &str = "fbl0";

/// Whether this process can create namespaces and TUN devices; the error says what is missing.
pub fn available() -> Result<(), Error> {
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Err(Error::Unavailable("/dev/net/tun does not exist".into()));
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    const CAP_NET_ADMIN: u32 = 12;
    const CAP_SYS_ADMIN: u32 = 21;
    for (bit, name) in [
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
        (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
    ] {
        if cap_eff & (1 << bit) == 0 {
            return Err(Error::Unavailable(format!(
                "this process lacks {name} (run as root)"
            )));
        }
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Err(Error::Unavailable(
            "the `ip` command (iproute2) is missing".into(),
        ));
    }
    Ok(())
}

fn ip(args: &[&str]) -> Result<(), Error> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| Error::io("running ip", e))?;
    if !out.status.success() {
        return Err(Error::Command {
            cmd: format!("ip {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

/// Runs `f` on a fresh thread that has joined the named network namespace and returns its
/// result. Sockets and TUN devices made inside `f` belong to that namespace for good.
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || -> Result<T, Error> {
        let c = std::ffi::CString::new(path.clone()).expect("no NUL in a namespace name");
        // SAFETY: open(2) on a NUL-terminated path.
        let raw = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if raw < 0 {
            return Err(Error::last_os(format!("opening {path}")));
        }
        // SAFETY: we own the descriptor just opened.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: setns(2) on a namespace descriptor moves only this thread.
        if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(Error::last_os(format!("setns {path}")));
        }
        Ok(f())
    })
    .join()
    .map_err(|_| Error::Unavailable("namespace thread panicked".into()))?
}

/// Counters of both directions after [`LinkSim::stop`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkSimStats {
    /// Client to server.
    pub to_server: PumpStats,
    /// Server to client.
    pub to_client: PumpStats,
}

/// A running conditioned link between two namespaces. Dropping it stops the pumps and deletes
/// the namespaces.
#[derive(Debug)]
pub struct LinkSim {
    client_ns: String,
    server_ns: String,
    stop: Arc<AtomicBool>,
    pumps: Vec<JoinHandle<PumpStats>>,
    stats: Option<LinkSimStats>,
}

impl LinkSim {
    /// Creates namespaces `<tag>-c` and `<tag>-s` (removing stale ones of the same name), a TUN
    /// device in each, addresses [`CLIENT_ADDR`] and [`SERVER_ADDR`], and starts one pump
    /// thread per direction. Seeds for the two directions derive from `seed`.
    pub fn start(
        tag: &str,
        to_server: LinkConfig,
        to_client: LinkConfig,
        seed: u64,
    ) -> Result<Self, Error> {
        available()?;
        let (up_seed, down_seed) = Self::direction_seeds(seed);
        let up = Link::new(to_server, up_seed)?;
        let down = Link::new(to_client, down_seed)?;
        let client_ns = format!("{tag}-c");
        let server_ns = format!("{tag}-s");
        let mut sim = Self {
            client_ns: client_ns.clone(),
            server_ns: server_ns.clone(),
            stop: Arc::new(AtomicBool::new(false)),
            pumps: Vec::new(),
            stats: None,
        };
        for ns in [&client_ns, &server_ns] {
            let _ = ip(&["netns", "del", ns]);
            ip(&["netns", "add", ns])?;
        }
        let ctun = in_netns(&client_ns, || tun::open(DEV))??;
        let stun = in_netns(&server_ns, || tun::open(DEV))??;
        for (ns, me, peer) in [
            (&client_ns, CLIENT_ADDR, SERVER_ADDR),
            (&server_ns, SERVER_ADDR, CLIENT_ADDR),
        ] {
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &me.to_string(),
                "peer",
                &format!("{peer}/32"),
                "dev",
                DEV,
            ])?;
            ip(&["-n", ns, "link", "set", DEV, "mtu", "1500", "up"])?;
        }
        let ctun = Arc::new(ctun);
        let stun = Arc::new(stun);
        let origin = Instant::now();
        for (input, output, link) in [(ctun.clone(), stun.clone(), up), (stun, ctun, down)] {
            let stop = sim.stop.clone();
            sim.pumps.push(std::thread::spawn(move || {
                pump::run(&input, &output, link, origin, stop)
            }));
        }
        Ok(sim)
    }

    /// The seeds of the client-to-server and server-to-client links for a run seed (so a test
    /// can replay a run's decisions on a plain [`Link`]).
    pub fn direction_seeds(seed: u64) -> (u64, u64) {
        (seed, seed ^ 0x5bd1_e995_0000_0001)
    }

    /// The client namespace's name.
    pub fn client_ns(&self) -> &str {
        &self.client_ns
    }

    /// The server namespace's name.
    pub fn server_ns(&self) -> &str {
        &self.server_ns
    }

    /// A command that runs `program` inside namespace `ns` (`ip netns exec ns program`).
    pub fn command_in(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        c
    }

    /// Stops the pumps and returns what they did (the namespaces stay until drop).
    pub fn stop(&mut self) -> LinkSimStats {
        if let Some(s) = self.stats {
            return s;
        }
        self.stop.store(true, Ordering::Relaxed);
        let mut got: Vec<PumpStats> = self
            .pumps
            .drain(..)
            .map(|h| h.join().unwrap_or_default())
            .collect();
        let to_client = got.pop().unwrap_or_default();
        let to_server = got.pop().unwrap_or_default();
        let s = LinkSimStats {
            to_server,
            to_client,
        };
        self.stats = Some(s);
        s
    }
}

impl Drop for LinkSim {
    fn drop(&mut self) {
        self.stop();
        for ns in [&self.client_ns, &self.server_ns] {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}
