//! Traffic counters of one peer: plain integers bumped by [`PeerCore`](super::PeerCore) as packets
//! pass (nothing to allocate or lock per packet). `FabricMMOGTransportPeer::get_stats()` shows
//! them to GDScript.

/// What a peer sent and received since it was created or its counters were reset.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PeerStats {
    /// Packets `put_packet` accepted (one per call, whatever the number of targets).
    pub packets_sent: u64,
    /// Their payload bytes (without the packet header).
    pub bytes_sent: u64,
    /// Packets queued for `get_packet`.
    pub packets_received: u64,
    /// Their payload bytes.
    pub bytes_received: u64,
    /// Unreliable-ordered packets dropped because a newer one had arrived.
    pub stale_dropped: u64,
    /// `put_packet` calls refused (not connected, too large, unknown target...).
    pub send_errors: u64,
}

impl PeerStats {
    /// Counts one `put_packet` call of `bytes` payload bytes: sent when `ok`, else an error.
    pub fn sent(&mut self, bytes: usize, ok: bool) {
        if ok {
            self.packets_sent += 1;
            self.bytes_sent += bytes as u64;
        } else {
            self.send_errors += 1;
        }
    }

    /// Counts one packet of `bytes` payload bytes queued for `get_packet`.
    pub fn received(&mut self, bytes: usize) {
        self.packets_received += 1;
        self.bytes_received += bytes as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up() {
        let mut s = PeerStats::default();
        s.sent(10, true);
        s.sent(5, true);
        s.sent(7, false);
        s.received(3);
        assert_eq!(
            s,
            PeerStats {
                packets_sent: 2,
                bytes_sent: 15,
                packets_received: 1,
                bytes_received: 3,
                stale_dropped: 0,
                send_errors: 1,
            },
            "two sends, one refusal and one receive"
        );
    }
}
