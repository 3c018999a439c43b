//! In-engine tests of `FabricMMOGTransportPeer`, each run over WebTransport (`peer::wt::*`) and
//! over the WebSocket fallback (`peer::ws::*`, wss), plus the transport-specific ones (fallback,
//! certificate mismatch). Everything runs in one process: one server peer, several client peers
//! and, for hostile input, raw `fabric_net` clients. This file holds the shared helpers;
//! [`delivery`] (packets, metadata, targets, channels, drop-stale), [`lifecycle`] (disconnect,
//! refuse, reconnect, hostile input, server close), [`certificates`] (rotation),
//! [`limits`] (the `limits` property), [`observability`] (stats), [`transports`] (fallback, pinning, address rules) and [`timeout`]
//! (the connect timeout) hold the tests.

use std::cell::RefCell;
use std::rc::Rc;

use fabric_core::packet_frame::{PacketHeader, TransferMode as WireMode};
use fabric_core::session_control::ControlMessage;
use fabric_net::{CertHash, Client, ClientConfig, ClientEvent};
use godot::classes::multiplayer_peer::{ConnectionStatus, TransferMode};
use godot::global::Error;
use godot::prelude::*;

use super::wait_until;
use crate::transport_peer::FabricMMOGTransportPeer;

mod certificates;
mod delivery;
mod lifecycle;
mod limits;
mod observability;
mod timeout;
mod transports;

use certificates::*;
use delivery::*;
use lifecycle::*;
use limits::*;
pub use observability::*;
use timeout::connect_timeout_ends_an_attempt_to_a_silent_server;
pub use timeout::{
    auto_mode_gives_each_transport_its_connect_timeout, connect_timeout_must_be_positive,
};
pub use transports::*;

type Peer = Gd<FabricMMOGTransportPeer>;

/// The transport a test runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    WebTransport,
    WebSocket,
}

impl Via {
    fn name(self) -> &'static str {
        match self {
            Via::WebTransport => "webtransport",
            Via::WebSocket => "websocket",
        }
    }

    /// The URL a raw `fabric_net` client uses for this transport.
    fn raw_url(self, server: &Peer) -> String {
        let port = server.bind().get_bound_port();
        match self {
            Via::WebTransport => format!("https://127.0.0.1:{port}/wt"),
            Via::WebSocket => format!("wss://127.0.0.1:{port}/ws"),
        }
    }
}

/// Generates `wt::NAME` and `ws::NAME` wrappers that run `NAME(Via::...)`.
/// Runs each listed test over both transports and registers both runs in [`BOTH`], so a test
/// listed here can never be left out of the runner.
macro_rules! over_both {
    ($($f:ident),* $(,)?) => {
        pub mod wt {
            $(pub fn $f() -> Result<(), String> { super::$f(super::Via::WebTransport) })*
        }
        pub mod ws {
            $(pub fn $f() -> Result<(), String> { super::$f(super::Via::WebSocket) })*
        }
        /// The peer tests, once per transport (`peer::wt::NAME`, `peer::ws::NAME`).
        pub static BOTH: &[crate::test_runner::RustTest] = &[
            $(
                crate::test_runner::RustTest { name: concat!("peer::wt::", stringify!($f)), run: wt::$f },
                crate::test_runner::RustTest { name: concat!("peer::ws::", stringify!($f)), run: ws::$f },
            )*
        ];
    };
}

over_both!(
    client_and_server_exchange_packets_with_metadata,
    oversize_unreliable_packet_is_refused,
    target_peer_broadcasts_excludes_and_targets,
    disconnect_peer_ends_that_session_only,
    refuse_new_connections_turns_clients_away,
    channels_are_independent_per_mode,
    unreliable_ordered_drops_stale_packets,
    close_then_reconnect_reuses_the_peer,
    garbage_from_a_client_ends_only_its_session,
    server_close_reaches_every_client,
    rotation_keeps_sessions_and_pins_the_new_hash,
    stats_count_traffic_and_rtt,
    connect_timeout_ends_an_attempt_to_a_silent_server,
    sessions_that_never_join_are_closed_at_the_deadline,
    the_sessions_per_address_cap_of_the_limits_property_holds,
);

/// A server peer on a free loopback port, listening on both transports.
pub(super) fn server_peer() -> Result<Peer, String> {
    let mut server = FabricMMOGTransportPeer::new_gd();
    let err = server.bind_mut().create_server(0, "127.0.0.1".into());
    check!(err == Error::OK, "create_server: {err:?}");
    Ok(server)
}

pub(super) fn client_url(server: &Peer) -> GString {
    GString::from(&format!(
        "https://127.0.0.1:{}/wt",
        server.bind().get_bound_port()
    ))
}

/// A client peer forced onto `via`, connecting (not yet connected).
pub(super) fn start_client(server: &Peer, via: Via) -> Result<Peer, String> {
    let mut client = FabricMMOGTransportPeer::new_gd();
    client.bind_mut().set_transport(via.name().into());
    let hash = server.bind().get_cert_hash();
    let err = client.bind_mut().create_client(client_url(server), hash);
    check!(err == Error::OK, "create_client over {via:?}: {err:?}");
    Ok(client)
}

pub(super) fn pump(server: &mut Peer, clients: &mut [Peer]) {
    server.poll();
    for c in clients.iter_mut() {
        c.poll();
    }
}

/// Connects `n` clients over `via` and waits until every one is joined.
pub(super) fn connect_clients(server: &mut Peer, via: Via, n: usize) -> Result<Vec<Peer>, String> {
    let mut clients = Vec::new();
    for _ in 0..n {
        clients.push(start_client(server, via)?);
    }
    let ok = wait_until(10.0, || {
        pump(server, &mut clients);
        clients
            .iter()
            .all(|c| c.get_connection_status() == ConnectionStatus::CONNECTED)
    });
    let errors: Vec<String> = clients
        .iter()
        .map(|c| c.bind().get_last_error().to_string())
        .collect();
    check!(ok, "{n} clients connected over {via:?}; errors: {errors:?}");
    for c in &clients {
        check!(
            c.bind().get_active_transport() == via.name(),
            "client runs over {}",
            c.bind().get_active_transport()
        );
    }
    Ok(clients)
}

/// Records the integer argument of every emission of `signal`.
pub(super) fn record(peer: &mut Peer, signal: &str) -> Rc<RefCell<Vec<i64>>> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let sink = seen.clone();
    peer.connect(
        signal,
        &Callable::from_fn("record", move |args: &[&Variant]| {
            sink.borrow_mut()
                .push(args.first().map_or(-1, |v| v.try_to::<i64>().unwrap_or(-1)));
        }),
    );
    seen
}

/// Records the text argument of every emission of `signal`.
pub(super) fn record_text(peer: &mut Peer, signal: &str) -> Rc<RefCell<Vec<String>>> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let sink = seen.clone();
    peer.connect(
        signal,
        &Callable::from_fn("record_text", move |args: &[&Variant]| {
            sink.borrow_mut()
                .push(args.first().map_or_else(String::new, |v| v.to_string()));
        }),
    );
    seen
}

/// Drains every packet a peer has queued: `(from, channel, mode, payload)`.
pub(super) fn drain(peer: &mut Peer) -> Vec<(i32, i32, TransferMode, Vec<u8>)> {
    let mut out = Vec::new();
    while peer.get_available_packet_count() > 0 {
        let (from, channel, mode) = (
            peer.get_packet_peer(),
            peer.get_packet_channel(),
            peer.get_packet_mode(),
        );
        out.push((from, channel, mode, peer.get_packet().to_vec()));
    }
    out
}

pub(super) fn put(
    peer: &mut Peer,
    mode: TransferMode,
    channel: i32,
    target: i32,
    data: &[u8],
) -> Error {
    peer.set_transfer_mode(mode);
    peer.set_transfer_channel(channel);
    peer.set_target_peer(target);
    peer.put_packet(&PackedByteArray::from(data))
}

/// A raw `fabric_net` client joined to the server peer as `peer_id`.
pub(super) fn raw_joined_client(
    server: &mut Peer,
    via: Via,
    peer_id: u32,
) -> Result<Client, String> {
    let pin =
        CertHash::parse(&server.bind().get_cert_hash().to_string()).map_err(|e| e.to_string())?;
    let mut raw = Client::connect(ClientConfig::new(via.raw_url(server), pin));
    let before = server.bind().peer_count();
    let mut connected = false;
    let ok = wait_until(5.0, || {
        server.poll();
        while let Some(ev) = raw.try_next_event() {
            if matches!(ev, ClientEvent::Connected { .. }) {
                connected = true;
                let _ = raw.send_message(ControlMessage::Join { peer_id }.encode());
            }
        }
        connected && server.bind().peer_count() > before
    });
    check!(ok, "raw client over {via:?} joined as {peer_id}");
    Ok(raw)
}

pub(super) fn frame(mode: WireMode, channel: u8, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketHeader {
        mode,
        channel,
        peer: 1,
        seq,
    }
    .encode_into(payload, &mut out);
    out
}
