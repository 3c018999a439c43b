//! Link statistics: per link (bytes, packets, round trip, refusals) and for the whole endpoint
//! (sessions refused, forged or undecodable packets dropped).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fabric_core::zones::ZoneId;

/// Counters of one link, shared by the tick side and the network tasks.
#[derive(Debug, Default)]
pub(crate) struct LinkCells {
    pub bytes_out: AtomicU64,
    pub packets_out: AtomicU64,
    pub bytes_in: AtomicU64,
    pub packets_in: AtomicU64,
    pub refused: AtomicU64,
    pub dropped: AtomicU64,
}

impl LinkCells {
    pub(crate) fn add(cell: &AtomicU64, n: u64) {
        cell.fetch_add(n, Ordering::Relaxed);
    }
}

/// A snapshot of one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStats {
    /// The zone at the other end.
    pub zone: ZoneId,
    /// Whether the session is up and authenticated.
    pub up: bool,
    /// Smoothed round-trip time of the session (`None` while down).
    pub rtt: Option<Duration>,
    /// Bytes handed to the session (datagrams and reliable messages).
    pub bytes_out: u64,
    /// Packets handed to the session.
    pub packets_out: u64,
    /// Bytes received and handed to the zone.
    pub bytes_in: u64,
    /// Packets received and handed to the zone.
    pub packets_in: u64,
    /// Sends refused (link down, or its queue over its byte bound).
    pub refused: u64,
    /// Received packets dropped: forged `from_zone`, undecodable, or the inbound queue full.
    pub dropped: u64,
    /// Sessions to this zone that came up (1 plus the reconnections).
    pub sessions: u64,
}

impl LinkStats {
    pub(crate) fn read(
        zone: ZoneId,
        c: &LinkCells,
        up: bool,
        rtt: Option<Duration>,
        sessions: u64,
    ) -> Self {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Self {
            zone,
            up,
            rtt,
            bytes_out: r(&c.bytes_out),
            packets_out: r(&c.packets_out),
            bytes_in: r(&c.bytes_in),
            packets_in: r(&c.packets_in),
            refused: r(&c.refused),
            dropped: r(&c.dropped),
            sessions,
        }
    }
}

/// Endpoint-wide counters of refused sessions and dropped packets.
#[derive(Debug, Default)]
pub(crate) struct EndpointCells {
    pub sessions_refused: AtomicU64,
    pub no_credential: AtomicU64,
    pub bad_credential: AtomicU64,
    pub wrong_zone: AtomicU64,
    pub forged_from_zone: AtomicU64,
    pub bad_packets: AtomicU64,
    pub inbound_full: AtomicU64,
}

/// A snapshot of the endpoint-wide counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkCounters {
    /// Sessions refused, for any reason below.
    pub sessions_refused: u64,
    /// ... because no link proof came in time, or the first message was not one.
    pub no_credential: u64,
    /// ... because the proof or its credential did not verify (another fabric, another key,
    /// another listener, expired).
    pub bad_credential: u64,
    /// ... because the proven zone may not dial this one (not a neighbour, or a higher index).
    pub wrong_zone: u64,
    /// Packets dropped because their `from_zone` is not the link's proven zone.
    pub forged_from_zone: u64,
    /// Packets dropped because they do not decode (or arrived before authentication).
    pub bad_packets: u64,
    /// Packets dropped because the inbound queue was over its byte bound.
    pub inbound_full: u64,
}

impl EndpointCells {
    pub(crate) fn read(&self) -> LinkCounters {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        LinkCounters {
            sessions_refused: r(&self.sessions_refused),
            no_credential: r(&self.no_credential),
            bad_credential: r(&self.bad_credential),
            wrong_zone: r(&self.wrong_zone),
            forged_from_zone: r(&self.forged_from_zone),
            bad_packets: r(&self.bad_packets),
            inbound_full: r(&self.inbound_full),
        }
    }
}
