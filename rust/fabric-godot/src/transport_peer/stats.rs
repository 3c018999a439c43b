//! Traffic counters of one `FabricMMOGTransportPeer`, kept on the main thread (plain integers:
//! nothing to allocate or lock per packet) and shown to GDScript by `get_stats()`.

use godot::prelude::*;

/// What the peer sent and received since it was created or `reset_stats()` was called.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stats {
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

impl Stats {
    pub fn sent(&mut self, bytes: usize, ok: bool) {
        if ok {
            self.packets_sent += 1;
            self.bytes_sent += bytes as u64;
        } else {
            self.send_errors += 1;
        }
    }

    pub fn received(&mut self, bytes: usize) {
        self.packets_received += 1;
        self.bytes_received += bytes as u64;
    }

    /// The counters as a Dictionary (int values), plus `extra` entries.
    pub fn to_dictionary(self, extra: &[(&str, Variant)]) -> VarDictionary {
        let mut d = VarDictionary::new();
        let count = |v: u64| i64::try_from(v).unwrap_or(i64::MAX).to_variant();
        d.set("packets_sent", &count(self.packets_sent));
        d.set("bytes_sent", &count(self.bytes_sent));
        d.set("packets_received", &count(self.packets_received));
        d.set("bytes_received", &count(self.bytes_received));
        d.set("stale_dropped", &count(self.stale_dropped));
        d.set("send_errors", &count(self.send_errors));
        for (k, v) in extra {
            d.set(*k, v);
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up() {
        let mut s = Stats::default();
        s.sent(10, true);
        s.sent(5, true);
        s.sent(7, false);
        s.received(3);
        assert_eq!(
            s,
            Stats {
                packets_sent: 2,
                bytes_sent: 15,
                packets_received: 1,
                bytes_received: 3,
                stale_dropped: 0,
                send_errors: 1,
            }
        );
    }
}
