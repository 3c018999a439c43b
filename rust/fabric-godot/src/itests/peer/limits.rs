//! The server limits of a peer (`limits`, a `FabricNetLimits`) take effect on real sessions:
//! a cap on sessions per address set through the property turns a second client from the same
//! address away, over either transport, and its slot comes back when the first one leaves.

use super::*;

pub(super) fn the_sessions_per_address_cap_of_the_limits_property_holds(
    via: Via,
) -> Result<(), String> {
    let mut server = FabricMMOGTransportPeer::new_gd();
    let Some(mut limits) = server.bind().get_limits() else {
        return Err("a new peer holds its limits".into());
    };
    // As a script does it: `peer.limits.max_sessions_per_address = 1`.
    let cap = "max_sessions_per_address";
    check!(
        limits.get(cap).try_to::<i64>().ok() == Some(128),
        "the documented default: {}",
        limits.get(cap)
    );
    limits.set(cap, &1.to_variant());
    let err = server.bind_mut().create_server(0, "127.0.0.1".into());
    check!(err == Error::OK, "create_server: {err:?}");
    let mut first = connect_clients(&mut server, via, 1)?;
    let mut second = start_client(&server, via)?;
    let turned_away = wait_until(10.0, || {
        pump(&mut server, &mut first);
        second.poll();
        second.bind().get_state() == FabricMMOGTransportPeer::STATE_FAILED
    });
    check!(
        turned_away,
        "a second session from 127.0.0.1 is refused (state {})",
        second.bind().get_state()
    );
    check!(server.bind().peer_count() == 1, "the server keeps one peer");
    check!(
        first[0].get_connection_status() == ConnectionStatus::CONNECTED,
        "the first client is still served"
    );
    // The first one leaves: its slot is given back and the address may connect again.
    first[0].close();
    let left = wait_until(10.0, || {
        server.poll();
        server.bind().peer_count() == 0
    });
    check!(left, "the first client's session ended");
    second.close();
    let mut again = connect_clients(&mut server, via, 1)?;
    check!(server.bind().peer_count() == 1, "the freed slot is taken");
    again[0].close();
    server.close();
    Ok(())
}
