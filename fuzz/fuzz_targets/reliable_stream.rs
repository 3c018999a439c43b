//! Reliable stream framing (`fabric_net::reliable::read_message`): the input is a stream's bytes;
//! messages are read until the stream ends or an error. No message is longer than the limit,
//! the messages plus their length prefixes never exceed the bytes received, and nothing is
//! allocated from an announced length before its bytes arrive (the capped allocator of
//! `fabric_fuzz` aborts on any single allocation over 1 MiB).
#![no_main]

use fabric_fuzz::run_ready;
use fabric_net::reliable::{MAX_MESSAGE_LEN, StreamError, read_message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut stream = data;
    let mut consumed = 0usize;
    loop {
        match run_ready(read_message(&mut stream)) {
            Ok(Some(m)) => {
                assert!(m.len() <= MAX_MESSAGE_LEN, "message over the limit");
                consumed += 4 + m.len();
                assert_eq!(
                    consumed,
                    data.len() - stream.len(),
                    "framing accounts for every byte"
                );
            }
            Ok(None) => {
                assert!(data.len() - consumed < 4, "clean end only between messages");
                return;
            }
            Err(StreamError::TooLong(n)) => {
                assert!(
                    n > MAX_MESSAGE_LEN,
                    "refused a length within the limit: {n}"
                );
                return;
            }
            Err(_) => return,
        }
    }
});
