//! Migration intents (`fabric_core::migration_intent`): any bytes decode or get a typed error,
//! and a decoded intent re-encodes to exactly the input (the layout has no slack).
#![no_main]

use fabric_core::migration_intent::{INTENT_LEN, MigrationIntent};
use libfuzzer_sys::fuzz_target;

fn check(bytes: &[u8]) {
    if let Ok(i) = MigrationIntent::decode(bytes) {
        assert_eq!(&i.to_bytes()[..], bytes, "encode(decode(x)) == x");
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some(head) = data.get(..INTENT_LEN) {
        check(head);
    }
});
