//! Client replication packets and acks (`fabric_core::client_view`): the first byte picks a
//! client mirror (fresh, or one that already holds a real view), the rest is a packet. Decoding
//! gives a packet or a typed error; a decoded packet survives encode then decode; applying it
//! either succeeds or leaves the mirror exactly as it was.
#![no_main]

use std::sync::OnceLock;

use fabric_core::client_view::ClientMirror;
use fabric_core::client_view::wire::{Ack, Packet};
use fabric_core::sim::replication::line_scenario;
use libfuzzer_sys::fuzz_target;

const CAPACITY: usize = 64;

/// A mirror after 40 ticks of a real view of 50 moving entities (so updates can name handles
/// and baselines it holds).
fn primed() -> &'static ClientMirror {
    static MIRROR: OnceLock<ClientMirror> = OnceLock::new();
    MIRROR.get_or_init(|| line_scenario(CAPACITY, 40, |_, _, _| {}).mirror)
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let _ = Ack::decode(bytes);
    let mut packet = Packet::default();
    if packet.decode_into(bytes).is_ok() {
        let mut buf = vec![0u8; bytes.len() * 2 + 64];
        let n = packet.encode(&mut buf).expect("a decoded packet encodes");
        let mut again = Packet::default();
        again.decode_into(&buf[..n]).expect("its encoding decodes");
        assert_eq!(again, packet, "decode(encode(p)) == p");
    }
    let mut mirror = if pick & 1 == 0 {
        ClientMirror::new(CAPACITY, 1200)
    } else {
        primed().clone()
    };
    let before: Vec<_> = mirror.iter().collect();
    let ack = mirror.ack();
    if mirror.apply(bytes).is_err() {
        assert_eq!(
            mirror.iter().collect::<Vec<_>>(),
            before,
            "a refused packet changes nothing"
        );
        assert_eq!(mirror.ack(), ack, "and is not acked");
    } else {
        assert!(mirror.len() <= CAPACITY, "never more entities than handles");
    }
});
