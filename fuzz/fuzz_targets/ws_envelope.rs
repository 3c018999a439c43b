//! The WebSocket envelope (`fabric_net::ws::decode`): any binary message decodes to a datagram
//! within the limit or a reliable message, or gets an error; the payload is the message minus
//! its envelope byte, and enveloping it again gives the input back.
#![no_main]

use bytes::Bytes;
use fabric_net::ws::{ENVELOPE_DATAGRAM, ENVELOPE_MESSAGE, Incoming, WS_MAX_DATAGRAM, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (kind, payload) = match decode(Bytes::copy_from_slice(data)) {
        Ok(Incoming::Datagram(d)) => {
            assert!(
                d.len() <= WS_MAX_DATAGRAM,
                "datagram over the limit accepted"
            );
            (ENVELOPE_DATAGRAM, d.to_vec())
        }
        Ok(Incoming::Message(m)) => (ENVELOPE_MESSAGE, m),
        Err(why) => {
            assert!(!why.is_empty(), "an error says what was wrong");
            return;
        }
    };
    assert_eq!(data.first(), Some(&kind), "envelope byte");
    assert_eq!(
        &data[1..],
        &payload[..],
        "payload is the rest of the message"
    );
});
