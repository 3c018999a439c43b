//! Zone control packets (`fabric_core::zone_control`): any bytes decode or get a typed error, a
//! decoded packet re-encodes to exactly the input, and `is_control` agrees with the decoder.
#![no_main]

use fabric_core::wire::WireError;
use fabric_core::zone_control::{CONTROL_LEN, ZoneControl, is_control};
use libfuzzer_sys::fuzz_target;

fn check(bytes: &[u8]) {
    let decoded = ZoneControl::decode(bytes);
    if let Ok(c) = decoded {
        assert_eq!(&c.to_bytes()[..], bytes, "encode(decode(x)) == x");
        assert!(is_control(bytes), "a decodable packet is recognised");
    }
    if !is_control(bytes) {
        assert!(
            matches!(
                decoded,
                Err(WireError::Length { .. } | WireError::Kind { .. })
            ),
            "only a wrong length or magic is not a control packet: {decoded:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some(head) = data.get(..CONTROL_LEN) {
        check(head);
    }
});
