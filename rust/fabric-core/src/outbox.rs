//! The zone's outgoing packet queue: one reused byte buffer, no allocation once warmed up.
//!
//! The zone appends packets while it ticks and handles input; the driver (network crate, test
//! harness) reads them with [`Outbox::iter`] and then calls [`Outbox::clear`]. Capacity is
//! reserved up front and kept across ticks, so steady-state ticks do not allocate.

use crate::zones::ZoneId;

/// One queued packet: destination and where its bytes are in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Transmit {
    to: ZoneId,
    start: u32,
    len: u32,
}

/// Outgoing packets of a zone.
#[derive(Debug, Clone, Default)]
pub struct Outbox {
    bytes: Vec<u8>,
    packets: Vec<Transmit>,
}

impl Outbox {
    /// An outbox with room for `bytes` bytes in `packets` packets before it must grow.
    pub fn with_capacity(bytes: usize, packets: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes),
            packets: Vec::with_capacity(packets),
        }
    }

    /// Queues `data` for zone `to`.
    pub fn push(&mut self, to: ZoneId, data: &[u8]) {
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(data);
        self.packets.push(Transmit {
            to,
            start,
            len: data.len() as u32,
        });
    }

    /// Number of queued packets.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// Total queued bytes.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// The queued packets in order: `(destination, bytes)`.
    pub fn iter(&self) -> impl Iterator<Item = (ZoneId, &[u8])> {
        self.packets.iter().map(|t| {
            let s = t.start as usize;
            (t.to, &self.bytes[s..s + t.len as usize])
        })
    }

    /// Forgets every queued packet, keeping the capacity.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.packets.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_keep_order_and_boundaries() {
        let mut o = Outbox::with_capacity(16, 4);
        o.push(1, b"abc");
        o.push(2, b"");
        o.push(3, b"de");
        let got: Vec<(u8, Vec<u8>)> = o.iter().map(|(z, b)| (z, b.to_vec())).collect();
        assert_eq!(
            got,
            vec![(1, b"abc".to_vec()), (2, vec![]), (3, b"de".to_vec())],
            "in order, with their own bytes"
        );
        assert_eq!(o.byte_len(), 5, "bytes counted");
        o.clear();
        assert!(o.is_empty(), "cleared");
    }
}
