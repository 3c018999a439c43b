//! The original fabric's client replication, kept as the baseline ours is measured against
//! (issue 11; `../shared/reference/fabric-prior-art.md`): every entity of the zone, as a
//! 100-byte entity row ([`crate::entity_row`], `docs/protocol.md` "Entity row"), to every
//! client, every tick, up to 11 rows to a row batch datagram (1,104 bytes; fewer where the
//! session's datagrams are smaller). For 1,800 entities at 20 Hz that is 3.7 MB/s per client,
//! against the tens of kilobytes of [`crate::client_view`].
//!
//! [`OriginalScheme::encode_tick`] writes a tick's datagrams into one buffer kept between
//! ticks (no allocation once it has held a full zone); a zone sends them to the sessions that
//! asked for the baseline (`original_scheme`, `docs/session-protocol.md`).

use crate::entity_row::{
    EntityRow, MAX_ROWS_PER_BATCH, ROW_BATCH_HEADER_LEN, ROW_LEN, RowBatchHeader,
};
use crate::zone::Zone;

/// Bytes of a full row batch datagram.
pub const FULL_BATCH_LEN: usize = ROW_BATCH_HEADER_LEN + MAX_ROWS_PER_BATCH * ROW_LEN;

/// One tick of the original scheme: row batch datagrams back to back.
#[derive(Debug, Default)]
pub struct OriginalScheme {
    buf: Vec<u8>,
    /// End offset of each datagram in `buf`.
    ends: Vec<usize>,
    rows: usize,
}

impl OriginalScheme {
    /// Room for `entities` rows (a zone's capacity): no allocation while a tick holds at most
    /// that many.
    pub fn with_capacity(entities: usize) -> Self {
        let batches = entities.div_ceil(MAX_ROWS_PER_BATCH);
        Self {
            buf: Vec::with_capacity(batches * FULL_BATCH_LEN),
            ends: Vec::with_capacity(batches),
            rows: 0,
        }
    }

    /// Encodes every visible entity of `zone` (owned, staging or arriving) as its row, as many
    /// to a batch as fit `max_datagram` bytes (1 to 11), from `zone`'s id. Returns the rows
    /// written.
    pub fn encode_tick(&mut self, zone: &Zone, max_datagram: usize) -> usize {
        let per_batch = max_datagram
            .saturating_sub(ROW_BATCH_HEADER_LEN)
            .div_euclid(ROW_LEN)
            .clamp(1, MAX_ROWS_PER_BATCH);
        self.buf.clear();
        self.ends.clear();
        let from_zone = zone.id();
        let mut in_batch = 0usize;
        let mut head_at = 0usize;
        let (buf, ends) = (&mut self.buf, &mut self.ends);
        let mut row_bytes = [0u8; ROW_LEN];
        self.rows = zone.for_each_visible_row(|row: &EntityRow| {
            if in_batch == 0 {
                head_at = buf.len();
                buf.extend_from_slice(&[0; ROW_BATCH_HEADER_LEN]);
            }
            row.encode(&mut row_bytes);
            buf.extend_from_slice(&row_bytes);
            in_batch += 1;
            if in_batch == per_batch {
                close(buf, ends, head_at, from_zone, in_batch);
                in_batch = 0;
            }
        });
        if in_batch > 0 {
            close(buf, ends, head_at, from_zone, in_batch);
        }
        self.rows
    }

    /// The last tick's datagrams, in order.
    pub fn datagrams(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let d = &self.buf[start..end];
            start = end;
            d
        })
    }

    /// Rows in the last tick's datagrams.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes of the last tick's datagrams (payloads, as one client receives them).
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }
}

/// Writes the header of the batch at `head_at` (`count` rows) and ends the datagram.
fn close(buf: &mut [u8], ends: &mut Vec<usize>, head_at: usize, from_zone: u8, count: usize) {
    let head = RowBatchHeader {
        from_zone,
        count: count as u8,
    }
    .encode();
    buf[head_at..head_at + ROW_BATCH_HEADER_LEN].copy_from_slice(&head);
    ends.push(head_at + ROW_BATCH_HEADER_LEN + count * ROW_LEN);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ZoneConfig;
    use crate::coords::{WorldBounds, metres};
    use crate::entity::Entity;
    use crate::zones::ZoneLayout;

    fn zone_with(n: u32) -> Zone {
        let layout = ZoneLayout::new(1).unwrap();
        let mut cfg = ZoneConfig::new(0, layout, WorldBounds::demo());
        cfg.capacity = 64;
        cfg.headroom = 0;
        let mut z = Zone::new(cfg).unwrap();
        for i in 0..n {
            let x = metres(i as i64 % 10 - 5);
            z.spawn(Entity::at(i + 1, [x, metres(1), metres(2)]))
                .unwrap();
        }
        z
    }

    #[test]
    fn every_entity_goes_out_as_a_decodable_row_eleven_to_a_batch() {
        let z = zone_with(25);
        let mut s = OriginalScheme::with_capacity(64);
        assert_eq!(s.encode_tick(&z, 1200), 25);
        let lens: Vec<usize> = s.datagrams().map(<[u8]>::len).collect();
        assert_eq!(lens, vec![FULL_BATCH_LEN, FULL_BATCH_LEN, 4 + 3 * ROW_LEN]);
        s.encode_tick(&z, 1000);
        let lens: Vec<usize> = s.datagrams().map(<[u8]>::len).collect();
        assert_eq!(
            lens,
            vec![904, 904, 4 + 7 * ROW_LEN],
            "9 rows fit 1,000 bytes"
        );
        assert_eq!(s.bytes(), lens.iter().sum::<usize>());
        let mut ids = Vec::new();
        for d in s.datagrams() {
            let (head, rows) = RowBatchHeader::decode(d).unwrap();
            assert_eq!(head.from_zone, 0);
            for r in rows.chunks(ROW_LEN) {
                let row = EntityRow::decode(r).unwrap();
                assert_eq!(row.position[1], metres(1), "the entity's own state");
                ids.push(row.global_id);
            }
        }
        assert_eq!(ids, (1..=25).collect::<Vec<_>>());
    }

    #[test]
    fn an_empty_zone_sends_nothing_and_the_buffer_is_reused() {
        let mut s = OriginalScheme::with_capacity(64);
        assert_eq!(s.encode_tick(&zone_with(0), 1200), 0);
        assert_eq!(s.datagrams().count(), 0);
        let z = zone_with(64);
        s.encode_tick(&z, 1200);
        let cap = s.buf.capacity();
        s.encode_tick(&z, 1200);
        assert_eq!(s.buf.capacity(), cap, "no growth on the next tick");
        assert_eq!(s.rows(), 64);
    }
}
