//! `fabric-linksim`: a user-space link conditioner for benchmarks and tests.
//!
//! - [`link`]: the sans-IO core. A seeded, deterministic queue that drops, duplicates, delays
//!   (with optional jitter) and reorders packets; time is an argument, so its unit tests need no
//!   sockets, no clock and no privileges.
//! - [`netns`] and [`tun`]: a point-to-point IPv4 link between two network namespaces made for
//!   the run, each holding one TUN device. [`LinkSim`] reads every IP packet one side sends,
//!   runs it through a [`Link`] per direction and writes it into the other side. Because it
//!   works on IP packets, TCP (WebSocket) and UDP (QUIC, ENet) see the same packet-level loss.
//!
//! Kernel `netem` is not needed. Creating namespaces and TUN devices needs `CAP_NET_ADMIN`
//! (root); [`available`] says whether this process has what it takes.

#![warn(missing_docs)]

pub mod link;
pub mod netns;
pub mod tun;

mod pump;

pub use link::{Fate, Link, LinkConfig, LinkStats};
pub use netns::{LinkSim, LinkSimStats, available, in_netns};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A link setting is out of range.
    #[error("bad link configuration: {0}")]
    Config(String),
    /// A system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// An `ip` command failed.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        cmd: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// This process cannot create namespaces or TUN devices (not root, no `/dev/net/tun`).
    #[error("link simulation unavailable: {0}")]
    Unavailable(String),
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn last_os(what: impl Into<String>) -> Self {
        Self::io(what, std::io::Error::last_os_error())
    }
}
