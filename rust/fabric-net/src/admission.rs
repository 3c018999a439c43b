//! Admission of a server's sessions: a slot is reserved before the handshake starts, so
//! handshakes in progress count against [`crate::limits::ServerLimits::max_sessions`] and
//! [`crate::limits::ServerLimits::max_sessions_per_address`] exactly, and TCP connections still in TLS or the
//! WebSocket upgrade count against [`crate::limits::ServerLimits::max_pending_per_address`].
//!
//! Every count is taken and given back under one lock, by guards ([`Slot`], [`Pending`]) whose
//! drop gives it back, so no path (a failed handshake, a timeout, an aborted task) can leak one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The limits and the counts.
#[derive(Debug)]
pub(crate) struct Admission {
    max_sessions: usize,
    max_sessions_per_ip: usize,
    max_pending_per_ip: usize,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    sessions: usize,
    /// Per address: (sessions including their handshakes, TCP connections before the upgrade).
    per_ip: HashMap<IpAddr, (usize, usize)>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `max_sessions` reached.
    Full,
    /// This address holds `max_sessions_per_ip` sessions.
    AddressFull,
    /// This address holds `max_pending_per_ip` connections in TLS or the upgrade.
    AddressPending,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::Full => "server full",
            Refusal::AddressFull => "too many sessions from this address",
            Refusal::AddressPending => {
                "too many connections from this address still in TLS or the upgrade"
            }
        })
    }
}

impl Admission {
    pub(crate) fn new(max_sessions: usize, per_ip: usize, pending_per_ip: usize) -> Arc<Self> {
        Arc::new(Self {
            max_sessions,
            max_sessions_per_ip: per_ip,
            max_pending_per_ip: pending_per_ip,
            counts: Mutex::default(),
        })
    }

    /// Reserves a session slot for a handshake from `ip`.
    pub(crate) fn reserve(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let mut c = self.counts.lock().expect("admission lock");
        if c.sessions >= self.max_sessions {
            return Err(Refusal::Full);
        }
        let entry = c.per_ip.entry(ip).or_default();
        if entry.0 >= self.max_sessions_per_ip {
            return Err(Refusal::AddressFull);
        }
        entry.0 += 1;
        c.sessions += 1;
        Ok(Slot {
            admission: self.clone(),
            ip,
        })
    }

    /// Counts a TCP connection from `ip` until it is upgraded or dropped.
    pub(crate) fn pending(self: &Arc<Self>, ip: IpAddr) -> Result<Pending, Refusal> {
        let mut c = self.counts.lock().expect("admission lock");
        let entry = c.per_ip.entry(ip).or_default();
        if entry.1 >= self.max_pending_per_ip {
            return Err(Refusal::AddressPending);
        }
        entry.1 += 1;
        Ok(Pending {
            admission: self.clone(),
            ip,
        })
    }

    /// Sessions admitted now (handshakes in progress included).
    pub(crate) fn sessions(&self) -> usize {
        self.counts.lock().expect("admission lock").sessions
    }

    fn give_back(&self, ip: IpAddr, session: bool) {
        let mut c = self.counts.lock().expect("admission lock");
        if session {
            c.sessions -= 1;
        }
        if let Some(e) = c.per_ip.get_mut(&ip) {
            if session {
                e.0 -= 1;
            } else {
                e.1 -= 1;
            }
            if *e == (0, 0) {
                c.per_ip.remove(&ip);
            }
        }
    }
}

/// A reserved session slot; given back when dropped (the session ended or never opened).
#[derive(Debug)]
pub(crate) struct Slot {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission.give_back(self.ip, true);
    }
}

/// A TCP connection before its upgrade; given back when dropped.
#[derive(Debug)]
pub(crate) struct Pending {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.admission.give_back(self.ip, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_hold_exactly_and_guards_give_back() {
        let a = Admission::new(3, 2, 1);
        let (x, y): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let s1 = a.reserve(x).unwrap();
        let _s2 = a.reserve(x).unwrap();
        assert_eq!(a.reserve(x).unwrap_err(), Refusal::AddressFull);
        let _s3 = a.reserve(y).unwrap();
        assert_eq!(a.reserve(y).unwrap_err(), Refusal::Full, "3 of 3");
        drop(s1);
        assert_eq!(a.sessions(), 2);
        let _s4 = a.reserve(y).unwrap();
        let p = a.pending(x).unwrap();
        assert_eq!(a.pending(x).unwrap_err(), Refusal::AddressPending);
        drop(p);
        assert!(
            a.pending(x).is_ok(),
            "a dropped pending connection gives its place back"
        );
    }
}
