//! The connect timeout (`connect_timeout_msec`): a server that never answers ends the attempt
//! after that long, on each transport and in `"auto"` mode (each transport its own timeout).
//! The "server" here is a black hole: a UDP socket nobody reads (so no ICMP "port unreachable"
//! either) and a TCP listener nobody accepts from (the kernel completes the TCP handshake, then
//! TLS gets no answer), both on the same port number, kept open for the whole test.

use std::net::{TcpListener, UdpSocket};
use std::time::{Duration, Instant};

use godot::classes::multiplayer_peer::ConnectionStatus;
use godot::global::Error;
use godot::prelude::*;

use super::super::wait_until;
use super::*;
use crate::transport_peer::FabricMMOGTransportPeer;

/// The timeout the tests set: far below the default (5000), so a timeout that is not passed
/// on to the transport shows.
const TIMEOUT_MSEC: i32 = 300;
/// How late after its timeout a failure may be reported: the network thread and this one
/// share two loaded cores. Still far from the default, so the property must have been used.
const SLACK: Duration = Duration::from_millis(1500);

/// A UDP socket and a TCP listener on one loopback port number that never answer.
struct BlackHole {
    _udp: UdpSocket,
    _tcp: TcpListener,
    port: u16,
}

fn black_hole() -> Result<BlackHole, String> {
    // The TCP listener takes a free port; the UDP number may be taken already: try again.
    for _ in 0..50 {
        let tcp = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = tcp.local_addr().map_err(|e| e.to_string())?.port();
        if let Ok(udp) = UdpSocket::bind(("127.0.0.1", port)) {
            return Ok(BlackHole {
                _udp: udp,
                _tcp: tcp,
                port,
            });
        }
    }
    Err("no port number free on both UDP and TCP".to_owned())
}

/// A client for the black hole with `transport` and the short timeout, and the URL to give it.
fn client_towards(hole: &BlackHole, transport: &str) -> Result<(Peer, String), String> {
    let mut client = FabricMMOGTransportPeer::new_gd();
    client.bind_mut().set_transport(transport.into());
    client.bind_mut().set_connect_timeout_msec(TIMEOUT_MSEC);
    check!(
        client.bind().get_connect_timeout_msec() == TIMEOUT_MSEC,
        "connect_timeout_msec reads back {}",
        client.bind().get_connect_timeout_msec()
    );
    Ok((client, format!("https://127.0.0.1:{}/wt", hole.port)))
}

/// Starts connecting; returns when.
fn begin(client: &mut Peer, url: &str) -> Result<Instant, String> {
    let hash = fabric_net::CertHash([3; 32]).to_base64();
    let started = Instant::now();
    let err = client
        .bind_mut()
        .create_client(GString::from(url), GString::from(&hash));
    check!(err == Error::OK, "create_client: {err:?}");
    Ok(started)
}

/// Polls until the client failed; returns how long after `started` that was.
fn wait_for_failure(client: &mut Peer, started: Instant) -> Result<Duration, String> {
    let failed = wait_until(10.0, || {
        client.poll();
        client.bind().get_state() == FabricMMOGTransportPeer::STATE_FAILED
    });
    let elapsed = started.elapsed();
    check!(
        failed,
        "the attempt failed (state {})",
        client.bind().get_state()
    );
    check!(
        client.get_connection_status() == ConnectionStatus::DISCONNECTED,
        "disconnected after the timeout"
    );
    Ok(elapsed)
}

/// The words of `fabric_net`'s timeout error for `url` with [`TIMEOUT_MSEC`].
fn no_answer(url: &str) -> String {
    format!(
        "no answer from {url} within {} s",
        f64::from(TIMEOUT_MSEC) / 1000.0
    )
}

pub(super) fn connect_timeout_ends_an_attempt_to_a_silent_server(via: Via) -> Result<(), String> {
    let hole = black_hole()?;
    let (mut client, url) = client_towards(&hole, via.name())?;
    let errors = record_text(&mut client, "connection_error");
    let started = begin(&mut client, &url)?;
    let elapsed = wait_for_failure(&mut client, started)?;
    let timeout = Duration::from_millis(TIMEOUT_MSEC as u64);
    check!(
        elapsed >= timeout,
        "not before the timeout: failed after {elapsed:?}"
    );
    check!(
        elapsed < timeout + SLACK,
        "within about {TIMEOUT_MSEC} ms (the default is 5000): failed after {elapsed:?}"
    );
    let tried = match via {
        Via::WebTransport => url,
        Via::WebSocket => format!("wss://127.0.0.1:{}/ws", hole.port),
    };
    let err = client.bind().get_last_error().to_string();
    check!(
        err.contains(&no_answer(&tried)),
        "last_error names the URL and the timeout: {err}"
    );
    check!(
        *errors.borrow() == [err.clone()],
        "one connection_error with the same words: {:?}",
        errors.borrow()
    );
    client.close();
    Ok(())
}

pub fn auto_mode_gives_each_transport_its_connect_timeout() -> Result<(), String> {
    // WebTransport times out first (which starts WebSocket at once, long before the default
    // primary_timeout_msec of 3000), then WebSocket: about twice the timeout in all.
    let hole = black_hole()?;
    let (mut client, url) = client_towards(&hole, "auto")?;
    let states = record(&mut client, "connection_state_changed");
    let started = begin(&mut client, &url)?;
    let elapsed = wait_for_failure(&mut client, started)?;
    let timeout = Duration::from_millis(TIMEOUT_MSEC as u64);
    check!(
        elapsed >= 2 * timeout,
        "each transport waited its timeout: failed after {elapsed:?}"
    );
    check!(
        elapsed < 2 * timeout + SLACK,
        "within about 2 x {TIMEOUT_MSEC} ms: failed after {elapsed:?}"
    );
    check!(
        *states.borrow()
            == [
                i64::from(FabricMMOGTransportPeer::STATE_TRYING_PRIMARY),
                i64::from(FabricMMOGTransportPeer::STATE_TRYING_FALLBACK),
                i64::from(FabricMMOGTransportPeer::STATE_FAILED),
            ],
        "TRYING_PRIMARY -> TRYING_FALLBACK -> FAILED, got {:?}",
        states.borrow()
    );
    let err = client.bind().get_last_error().to_string();
    let ws = format!("wss://127.0.0.1:{}/ws", hole.port);
    let (wt_says, ws_says) = (
        format!("WebTransport: {}", no_answer(&url)),
        format!("; WebSocket: {}", no_answer(&ws)),
    );
    check!(
        err.starts_with(&wt_says) && err.contains(&ws_says),
        "last_error names both attempts, in order: `{err}`"
    );
    client.close();
    Ok(())
}

pub fn connect_timeout_must_be_positive() -> Result<(), String> {
    let mut p = FabricMMOGTransportPeer::new_gd();
    check!(
        p.bind().get_connect_timeout_msec() == 5000,
        "default 5000 ms, fabric_net's default"
    );
    for bad in [0, -1, i32::MIN] {
        p.bind_mut().set_connect_timeout_msec(bad);
        check!(
            p.bind().get_connect_timeout_msec() == 5000,
            "{bad} refused, old value kept: {}",
            p.bind().get_connect_timeout_msec()
        );
    }
    p.bind_mut().set_connect_timeout_msec(1);
    check!(p.bind().get_connect_timeout_msec() == 1, "1 ms is allowed");
    Ok(())
}
