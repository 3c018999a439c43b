//! Entity row batches (`fabric_core::entity_row`): the batch header and every row decode or get a
//! typed error; a decoded row survives encode then decode unchanged.
#![no_main]

use fabric_core::entity_row::{EntityRow, ROW_LEN, RowBatchHeader};
use libfuzzer_sys::fuzz_target;

fn check_row(bytes: &[u8]) {
    if let Ok(row) = EntityRow::decode(bytes) {
        assert_eq!(
            EntityRow::decode(&row.to_bytes()),
            Ok(row),
            "row round trip"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    check_row(data);
    if let Some(row) = data.get(..ROW_LEN) {
        check_row(row);
    }
    if let Ok((header, rows)) = RowBatchHeader::decode(data) {
        assert_eq!(
            rows.len(),
            header.count as usize * ROW_LEN,
            "rows follow the header"
        );
        assert_eq!(&header.encode()[..], &data[..4], "header round trip");
        rows.chunks(ROW_LEN).for_each(check_row);
    }
});
