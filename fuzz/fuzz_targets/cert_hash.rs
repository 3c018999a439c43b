//! Certificate hash parsing (`fabric_net::CertHash::parse` / `parse_list`): any text parses or
//! gets a typed error; a parsed hash prints (base64 and hex) to text that parses back to it.
#![no_main]

use fabric_net::CertHash;
use libfuzzer_sys::fuzz_target;

fn round_trips(h: &CertHash) {
    assert_eq!(
        CertHash::parse(&h.to_base64()).ok(),
        Some(*h),
        "base64 round trip"
    );
    assert_eq!(
        CertHash::parse(&h.to_hex()).ok(),
        Some(*h),
        "hex round trip"
    );
}

fuzz_target!(|data: &[u8]| {
    if let Ok(raw) = <[u8; 32]>::try_from(data.get(..32).unwrap_or_default()) {
        round_trips(&CertHash(raw));
    }
    let text = String::from_utf8_lossy(data);
    if let Ok(h) = CertHash::parse(&text) {
        round_trips(&h);
    }
    if let Ok(list) = CertHash::parse_list(&text) {
        assert!(!list.is_empty(), "a parsed list has at least one hash");
        list.iter().for_each(round_trips);
    }
});
