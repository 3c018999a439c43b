//! Certificate rotation on a running server peer, over each transport: open sessions go on,
//! the announced next certificate is the one installed, clients pinning the pair fetched before
//! the rotation still connect, clients pinning only the old hash are refused with the reason.
use std::cell::RefCell;
use std::rc::Rc;

use godot::classes::multiplayer_peer::{ConnectionStatus, TransferMode};
use godot::global::Error;
use godot::prelude::*;

use super::super::wait_until;
use super::*;
use crate::transport_peer::FabricMMOGTransportPeer;

pub(super) fn rotation_keeps_sessions_and_pins_the_new_hash(via: Via) -> Result<(), String> {
    let mut server = server_peer()?;
    let rotated = Rc::new(RefCell::new(Vec::<String>::new()));
    let sink = rotated.clone();
    server.connect(
        "cert_rotated",
        &Callable::from_fn("record_hash", move |args: &[&Variant]| {
            sink.borrow_mut()
                .push(args.first().map(|v| v.to_string()).unwrap_or_default());
        }),
    );
    let mut clients = connect_clients(&mut server, via, 1)?;
    let old = server.bind().get_cert_hash().to_string();
    let announced = server.bind().get_next_cert_hash().to_string();
    check!(
        announced.len() == 44 && announced != old,
        "the next certificate is announced: {announced:?}"
    );

    let err = server.bind_mut().rotate_certificate();
    check!(err == Error::OK, "rotate_certificate: {err:?}");
    let new = server.bind().get_cert_hash().to_string();
    check!(new == announced, "the announced certificate went into use");
    let following = server.bind().get_next_cert_hash().to_string();
    check!(
        following.len() == 44 && following != new && following != old,
        "a new one is announced: {following:?}"
    );
    let told = wait_until(5.0, || {
        pump(&mut server, &mut clients);
        !rotated.borrow().is_empty()
    });
    check!(
        told && *rotated.borrow() == [new.clone()],
        "cert_rotated announced the new hash: {:?}",
        rotated.borrow()
    );

    // The session opened before the rotation goes on.
    check!(
        put(&mut clients[0], TransferMode::RELIABLE, 0, 1, b"after") == Error::OK,
        "old session sends"
    );
    let got = wait_until(5.0, || {
        pump(&mut server, &mut clients);
        server.get_available_packet_count() > 0
    });
    check!(
        got && server.get_packet().as_slice() == b"after",
        "the server still hears the session opened before the rotation"
    );

    // A new client pins the new hash (start_client reads get_cert_hash()) and joins.
    let more = connect_clients(&mut server, via, 1)?;
    clients.extend(more);

    // A client holding the pair fetched before the rotation ("old,announced") joins too.
    let mut paired = FabricMMOGTransportPeer::new_gd();
    paired.bind_mut().set_transport(via.name().into());
    let pair = GString::from(&format!("{old},{announced}"));
    check!(
        paired.bind_mut().create_client(client_url(&server), pair) == Error::OK,
        "create_client with two hashes"
    );
    let joined = wait_until(10.0, || {
        pump(&mut server, &mut clients);
        paired.poll();
        paired.get_connection_status() == ConnectionStatus::CONNECTED
    });
    check!(
        joined,
        "the pair fetched before the rotation connects: {}",
        paired.bind().get_last_error()
    );
    clients.push(paired);

    // A client that still pins the old hash is refused, and says why.
    let mut stale = FabricMMOGTransportPeer::new_gd();
    stale.bind_mut().set_transport(via.name().into());
    let err = stale
        .bind_mut()
        .create_client(client_url(&server), GString::from(&old));
    check!(err == Error::OK, "create_client: {err:?}");
    let failed = wait_until(10.0, || {
        pump(&mut server, &mut clients);
        stale.poll();
        stale.bind().get_state() == FabricMMOGTransportPeer::STATE_FAILED
    });
    let why = stale.bind().get_last_error().to_string();
    check!(
        failed && why.contains("does not match the pinned hash"),
        "stale pin refused over {via:?}: {why}"
    );
    check!(
        stale.get_connection_status() == ConnectionStatus::DISCONNECTED,
        "stale client is disconnected"
    );
    check!(
        clients
            .iter()
            .all(|c| c.get_connection_status() == ConnectionStatus::CONNECTED),
        "the other clients are unaffected"
    );
    for c in clients.iter_mut() {
        c.close();
    }
    server.close();
    Ok(())
}
