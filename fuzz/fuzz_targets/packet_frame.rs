//! Packet frames (`fabric_core::packet_frame`): any bytes decode or get a typed error, and a
//! decoded frame re-encodes to exactly the input.
#![no_main]

use fabric_core::packet_frame::PacketHeader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((header, payload)) = PacketHeader::decode(data) {
        let mut out = Vec::new();
        header.encode_into(payload, &mut out);
        assert_eq!(out, data, "encode(decode(x)) == x");
    }
});
