//! The UDP socket of a WebTransport server, with a receive buffer sized for many sessions.
//!
//! The kernel's default receive buffer (`net.core.rmem_default`, often 208 KiB) holds only about
//! 170 full-size QUIC packets: when dozens of clients open sessions at once, or the process is
//! briefly descheduled on a busy machine, further packets are dropped (`RcvbufErrors` in
//! `/proc/net/snmp`) and handshakes must be retransmitted. Servers ask for
//! [`SERVER_RECV_BUFFER`]; the kernel caps it at `net.core.rmem_max`.

use std::io;
use std::net::{SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

/// Receive buffer a server socket asks for (the kernel may grant less).
pub const SERVER_RECV_BUFFER: usize = 4 * 1024 * 1024;

/// A UDP socket bound to `addr` with a receive buffer of up to `recv_buffer` bytes. Failing to
/// enlarge the buffer is not an error (the kernel default stays); failing to bind is.
pub fn bind(addr: SocketAddr, recv_buffer: usize) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(e) = socket.set_recv_buffer_size(recv_buffer) {
        tracing::debug!("cannot enlarge the UDP receive buffer to {recv_buffer} bytes: {e}");
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_socket_gets_a_larger_receive_buffer() {
        let default = {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            socket2::SockRef::from(&s).recv_buffer_size().unwrap()
        };
        let s = bind("127.0.0.1:0".parse().unwrap(), SERVER_RECV_BUFFER).unwrap();
        assert_ne!(s.local_addr().unwrap().port(), 0, "bound");
        let got = socket2::SockRef::from(&s).recv_buffer_size().unwrap();
        // Linux grants min(asked, rmem_max) and reports twice that (bookkeeping overhead).
        let cap = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|t| t.trim().parse::<usize>().ok())
            .unwrap_or(usize::MAX);
        if cap > default {
            assert!(
                got > default,
                "buffer {got} not above the default {default} (rmem_max {cap})"
            );
            assert!(got >= SERVER_RECV_BUFFER.min(cap), "buffer {got}");
        }
    }

    #[test]
    fn binding_a_taken_port_is_an_error() {
        let a = bind("127.0.0.1:0".parse().unwrap(), SERVER_RECV_BUFFER).unwrap();
        let taken = a.local_addr().unwrap();
        assert!(bind(taken, SERVER_RECV_BUFFER).is_err());
    }
}
