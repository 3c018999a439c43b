//! The incoming packet queue of a peer and the newest sequence number seen per sender and
//! channel, which drops stale unreliable-ordered packets before they are queued.
//!
//! Godot's `MultiplayerPeer` reads this queue one packet at a time (`get_packet_peer`,
//! `get_packet_channel`, `get_packet_mode` describe the front, `get_packet` takes it), in the
//! order the packets were accepted.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::packet_frame::{PacketHeader, TransferMode};

use super::PeerStats;

/// One packet waiting for `get_packet`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The peer it came from (1 = the server).
    pub from: i32,
    /// Its channel.
    pub channel: u8,
    /// How it was sent.
    pub mode: TransferMode,
    /// The payload, without the packet frame header.
    pub data: Vec<u8>,
}

/// The queue and the per-sender, per-channel newest unreliable-ordered sequence numbers.
#[derive(Debug, Default)]
pub(super) struct Incoming {
    queue: VecDeque<Packet>,
    newest: FxHashMap<(i32, u8), u32>,
}

impl Incoming {
    /// Queues the payload of a decoded frame from `source`, unless it is an unreliable-ordered
    /// packet not newer than the newest seen on its channel (wrapping comparison; counted in
    /// `stale_dropped`). Returns whether it was queued.
    pub fn accept(
        &mut self,
        source: i32,
        header: &PacketHeader,
        payload: &[u8],
        stats: &mut PeerStats,
    ) -> bool {
        if header.mode == TransferMode::UnreliableOrdered {
            let last = self.newest.entry((source, header.channel)).or_insert(0);
            if *last != 0 && (header.seq.wrapping_sub(*last) as i32) <= 0 {
                stats.stale_dropped += 1;
                return false;
            }
            *last = header.seq;
        }
        stats.received(payload.len());
        self.queue.push_back(Packet {
            from: source,
            channel: header.channel,
            mode: header.mode,
            data: payload.to_vec(),
        });
        true
    }

    /// Forgets everything of `peer`: its queued packets (SceneMultiplayer drains the queue after
    /// `poll()`, and a packet of a peer it was told is gone fails its `connected_peers` check)
    /// and its sequence numbers (a peer id may come back in a new session).
    pub fn forget(&mut self, peer: i32) {
        self.newest.retain(|(p, _), _| *p != peer);
        self.queue.retain(|p| p.from != peer);
    }

    /// Empties the queue and the sequence numbers.
    pub fn clear(&mut self) {
        self.queue.clear();
        self.newest.clear();
    }

    pub fn front(&self) -> Option<&Packet> {
        self.queue.front()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Packet> {
        self.queue.iter()
    }

    pub fn pop(&mut self) -> Option<Packet> {
        self.queue.pop_front()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(mode: TransferMode, channel: u8, seq: u32) -> PacketHeader {
        PacketHeader {
            mode,
            channel,
            peer: 0,
            seq,
        }
    }

    #[test]
    fn ordered_packets_older_than_the_newest_are_dropped_per_sender_and_channel() {
        let mut q = Incoming::default();
        let mut stats = PeerStats::default();
        let o = TransferMode::UnreliableOrdered;
        assert!(q.accept(5, &header(o, 0, 10), b"a", &mut stats));
        assert!(!q.accept(5, &header(o, 0, 9), b"b", &mut stats), "older");
        assert!(!q.accept(5, &header(o, 0, 10), b"c", &mut stats), "same");
        assert!(
            q.accept(5, &header(o, 1, 3), b"d", &mut stats),
            "other channel"
        );
        assert!(
            q.accept(6, &header(o, 0, 1), b"e", &mut stats),
            "other sender"
        );
        assert!(q.accept(5, &header(o, 0, 11), b"f", &mut stats));
        assert_eq!(stats.stale_dropped, 2, "two stale packets counted");
        let order: Vec<u8> = std::iter::from_fn(|| q.pop()).map(|p| p.data[0]).collect();
        assert_eq!(order, b"adef", "queued in arrival order");
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut q = Incoming::default();
        let mut stats = PeerStats::default();
        let o = TransferMode::UnreliableOrdered;
        assert!(q.accept(2, &header(o, 0, u32::MAX), b"", &mut stats));
        assert!(
            q.accept(2, &header(o, 0, 1), b"", &mut stats),
            "1 follows u32::MAX"
        );
        assert!(!q.accept(2, &header(o, 0, u32::MAX - 1), b"", &mut stats));
    }

    #[test]
    fn unordered_and_reliable_packets_are_never_dropped() {
        let mut q = Incoming::default();
        let mut stats = PeerStats::default();
        for mode in [TransferMode::Unreliable, TransferMode::Reliable] {
            assert!(q.accept(2, &header(mode, 0, 0), b"x", &mut stats));
            assert!(q.accept(2, &header(mode, 0, 0), b"x", &mut stats));
        }
        assert_eq!(q.len(), 4, "all four queued");
        assert_eq!(stats.packets_received, 4, "all four counted");
    }

    #[test]
    fn forgetting_a_peer_drops_its_packets_and_sequence_numbers() {
        let mut q = Incoming::default();
        let mut stats = PeerStats::default();
        let o = TransferMode::UnreliableOrdered;
        q.accept(2, &header(o, 0, 50), b"a", &mut stats);
        q.accept(3, &header(o, 0, 50), b"b", &mut stats);
        q.forget(2);
        assert_eq!(
            q.front().map(|p| p.from),
            Some(3),
            "only peer 3's packet left"
        );
        assert!(
            q.accept(2, &header(o, 0, 1), b"c", &mut stats),
            "a new session of peer 2 starts its sequence again"
        );
    }
}
