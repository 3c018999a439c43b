//! Player command packets (`fabric_core::player_command`): any bytes decode or get a typed
//! error; a decoded packet survives encode then decode unchanged.
#![no_main]

use fabric_core::player_command::{PLAYER_PACKET_LEN, PlayerPacket};
use libfuzzer_sys::fuzz_target;

fn check(bytes: &[u8]) {
    if let Ok(p) = PlayerPacket::decode(bytes) {
        assert_eq!(PlayerPacket::decode(&p.to_bytes()), Ok(p), "round trip");
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some(head) = data.get(..PLAYER_PACKET_LEN) {
        check(head);
    }
});
