//! Migration intents (`fabric_core::migration_intent`): any bytes decode or get a typed error;
//! a decoded version-2 intent re-encodes to exactly the input (the layout has no slack), and a
//! decoded version-1 intent re-encodes as version 2 that decodes to the same intent.
#![no_main]

use fabric_core::migration_intent::{INTENT_LEN, INTENT_V1_LEN, MigrationIntent};
use libfuzzer_sys::fuzz_target;

fn check(bytes: &[u8]) {
    if let Ok(i) = MigrationIntent::decode(bytes) {
        let again = i.to_bytes();
        if bytes.len() == INTENT_LEN {
            assert_eq!(&again[..], bytes, "encode(decode(x)) == x");
        } else {
            assert_eq!(bytes.len(), INTENT_V1_LEN, "only v1 and v2 lengths decode");
            assert_eq!(
                MigrationIntent::decode(&again).ok(),
                Some(i),
                "a v1 intent survives re-encoding as v2"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    for len in [INTENT_V1_LEN, INTENT_LEN] {
        if let Some(head) = data.get(..len) {
            check(head);
        }
    }
});
