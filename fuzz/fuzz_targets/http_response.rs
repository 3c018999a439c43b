//! The registry client's HTTP/1.1 response parser (`fabric_net::http::parse_response`),
//! chunked bodies included: any bytes parse or get a typed error. A valid chunked body, however
//! it is cut into chunks, parses to the same JSON as the plain body.
#![no_main]

use fabric_net::http::parse_response;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_response(data);

    // The input's bytes as a body, cut into chunks of sizes taken from the input itself.
    let body = data;
    let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let mut rest = body;
    let mut i = 0;
    while !rest.is_empty() {
        let n = (usize::from(data[i % data.len()]) % 17 + 1).min(rest.len());
        chunked.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        chunked.extend_from_slice(&rest[..n]);
        chunked.extend_from_slice(b"\r\n");
        rest = &rest[n..];
        i += 1;
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let mut plain = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec();
    plain.extend_from_slice(body);
    let a = parse_response(&chunked).expect("a well-formed chunked response parses");
    let b = parse_response(&plain).expect("a well-formed plain response parses");
    assert_eq!(a, b, "chunked and plain bodies agree");
});
