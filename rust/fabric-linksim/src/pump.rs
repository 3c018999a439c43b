//! The I/O driver of one direction: reads IP packets from one TUN descriptor, runs them through
//! a [`Link`] and writes them to the other descriptor when due.
//!
//! Only IPv4 packets enter the link (and consume random draws); anything else (IPv6 router
//! solicitations the kernel sends on a fresh interface) is counted and discarded, so the
//! decisions for the benchmark's own packets do not depend on background chatter.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::link::{Link, LinkStats};

/// What one direction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PumpStats {
    /// The link's own counters (IPv4 packets only).
    pub link: LinkStats,
    /// Non-IPv4 packets discarded before the link.
    pub ignored: u64,
    /// Writes the kernel refused (counted as losses beyond the configured ones).
    pub write_errors: u64,
}

const MAX_WAIT: Duration = Duration::from_millis(20);

pub(crate) fn run(
    input: &OwnedFd,
    output: &OwnedFd,
    mut link: Link<Vec<u8>>,
    origin: Instant,
    stop: Arc<AtomicBool>,
) -> PumpStats {
    let mut buf = vec![0u8; 65_536];
    let mut ignored = 0;
    let mut write_errors = 0;
    while !stop.load(Ordering::Relaxed) {
        let now = origin.elapsed();
        let wait = link
            .next_due()
            .map(|d| d.saturating_sub(now).min(MAX_WAIT))
            .unwrap_or(MAX_WAIT);
        let mut pfd = libc::pollfd {
            fd: input.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ts = libc::timespec {
            tv_sec: wait.as_secs() as libc::time_t,
            tv_nsec: wait.subsec_nanos() as libc::c_long,
        };
        // SAFETY: one valid pollfd, a valid timespec, no signal mask.
        let n = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
        if n > 0 && pfd.revents & libc::POLLIN != 0 {
            loop {
                // SAFETY: reads at most buf.len() bytes into buf.
                let r =
                    unsafe { libc::read(input.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if r <= 0 {
                    break;
                }
                let pkt = &buf[..r as usize];
                if pkt[0] >> 4 != 4 {
                    ignored += 1;
                    continue;
                }
                link.push(origin.elapsed(), pkt.to_vec());
            }
        }
        let now = origin.elapsed();
        while let Some(p) = link.pop_due(now) {
            // SAFETY: writes p.len() bytes from p.
            let w = unsafe { libc::write(output.as_raw_fd(), p.as_ptr().cast(), p.len()) };
            if w < 0 {
                write_errors += 1;
            }
        }
    }
    PumpStats {
        link: link.stats(),
        ignored,
        write_errors,
    }
}
