//! Which channel a zone packet takes, and which zone it claims to come from.
//!
//! Dispatch mirrors `fabric_core::zone::Zone::handle`: a 20-byte packet is a control packet, a
//! 256-byte (or version 1's 244-byte) packet starting with `0x4D` a migration intent, a packet starting with `0x52` a row
//! batch. Rows are refreshed every tick, so they go as datagrams (a lost one is replaced by the
//! next); intents and controls go on the reliable channel (the core also resends, but a lost
//! intent costs a rollback and an RTO, so we do not lose them on purpose).

use fabric_core::entity_row::{ROW_BATCH_KIND, RowBatchHeader};
use fabric_core::migration_intent::{INTENT_LEN, MigrationIntent, is_intent};
use fabric_core::wire::WireError;
use fabric_core::zone_control::{CONTROL_LEN, ZoneControl};
use fabric_core::zones::ZoneId;

/// How a packet travels on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// In order, retransmitted (one QUIC stream): migration intents and control packets.
    Reliable,
    /// Unreliable datagram: interest row batches.
    Datagram,
}

impl Delivery {
    /// Classifies a packet of a `fabric-core` zone outbox.
    pub fn of(bytes: &[u8]) -> Delivery {
        if bytes.len() != CONTROL_LEN && !is_intent(bytes) && bytes.first() == Some(&ROW_BATCH_KIND)
        {
            Delivery::Datagram
        } else {
            Delivery::Reliable
        }
    }
}

/// Decodes `bytes` with the core's own codecs and returns the `from_zone` of its header.
///
/// A packet that does not decode is an error (the link counts and drops it; it never reaches
/// the zone), so a link can compare every packet's sender with the zone it proved to be.
pub fn from_zone(bytes: &[u8]) -> Result<ZoneId, WireError> {
    if is_intent(bytes) {
        MigrationIntent::decode(bytes).map(|i| i.from_zone)
    } else if bytes.len() == CONTROL_LEN {
        ZoneControl::decode(bytes).map(|c| c.from_zone)
    } else if bytes.first() == Some(&ROW_BATCH_KIND) {
        let (h, rows) = RowBatchHeader::decode(bytes)?;
        for row in rows.chunks(fabric_core::entity_row::ROW_LEN) {
            fabric_core::entity_row::EntityRow::decode(row)?;
        }
        Ok(h.from_zone)
    } else {
        Err(WireError::Length {
            what: "zone packet",
            expected: INTENT_LEN,
            got: bytes.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fabric_core::zone_control::ControlKind;

    #[test]
    fn rows_are_datagrams_and_the_rest_reliable() {
        let c = ZoneControl::new(ControlKind::Ack, 2, 0x52, 0, 0).to_bytes();
        assert_eq!(
            c[0], 0x52,
            "a control packet may start with the row kind byte"
        );
        assert_eq!(Delivery::of(&c), Delivery::Reliable, "control by length");
        assert_eq!(from_zone(&c), Ok(2), "control's from_zone");
        let rows = [ROW_BATCH_KIND, 1, 3, 0];
        assert_eq!(Delivery::of(&rows), Delivery::Datagram, "row batch");
        assert!(
            from_zone(&rows).is_err(),
            "a batch without rows does not decode"
        );
        assert_eq!(
            Delivery::of(b"junk"),
            Delivery::Reliable,
            "unknown: reliable"
        );
        assert!(from_zone(b"junk").is_err(), "junk has no sender");
        assert!(from_zone(&[]).is_err(), "empty has no sender");
        let mut bad = c;
        bad[9] = 40;
        assert!(from_zone(&bad).is_err(), "out-of-range from_zone");
    }
}
