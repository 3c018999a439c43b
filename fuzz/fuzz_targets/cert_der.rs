//! Server certificate DER as the `wss://` client reads it (`fabric_net::Validity::of_der`, on
//! x509-parser): any bytes give a validity period or a typed problem, and checking the period
//! at any instant gives an answer, never a panic (no time arithmetic overflows).
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use fabric_net::cert::{MAX_PINNED_VALIDITY, Validity, ValidityProblem};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = Validity::of_der(data) else {
        return;
    };
    for now in [
        v.not_before,
        v.not_after,
        UNIX_EPOCH,
        UNIX_EPOCH + Duration::from_secs(1 << 40),
    ] {
        if let Ok(()) = v.check(now) {
            let period = v.not_after.duration_since(v.not_before).expect("ordered");
            assert!(
                period <= MAX_PINNED_VALIDITY,
                "accepted a period of {period:?}"
            );
        } else if now == v.not_before && v.not_before <= v.not_after {
            assert_eq!(
                v.check(now),
                Err(ValidityProblem::TooLong),
                "only too long at notBefore"
            );
        }
    }
});
