//! The zone's player signals and `get_avatar()`, in a live engine over a real loopback session:
//! `spawn` emits `player_joined`, a malformed command emits `command_refused` (with the
//! `commands_refused` report at the client), a CMD_INSTANCE_ASSET emits `asset_placed` and is
//! answered with `placed` (at once: no journal) with the entity whose payload names the asset,
//! closing the session emits `player_left`.

use std::cell::RefCell;
use std::rc::Rc;

use fabric_core::session_control::ControlMessage;
use fabric_net::{Client, ClientEvent};
use godot::global::Error;
use godot::prelude::*;

use super::wait_until;
use crate::zone::FabricZone;

/// Control messages that arrived at `client`.
fn received(client: &mut Client) -> Vec<ControlMessage> {
    let mut out = Vec::new();
    while let Some(ev) = client.try_next_event() {
        let bytes = match ev {
            ClientEvent::Datagram(d) => d.to_vec(),
            ClientEvent::Message(m) => m,
            _ => continue,
        };
        if let Ok(m) = ControlMessage::decode(&bytes) {
            out.push(m);
        }
    }
    out
}

pub(super) fn join_are_refused_and_leave_with_signals() -> Result<(), String> {
    let mut zone = FabricZone::new_alloc();
    {
        let mut z = zone.bind_mut();
        z.configure_for_test(0, 0);
        check!(z.start() == Error::OK, "zone starts");
    }
    let heard: Rc<RefCell<Vec<String>>> = Rc::default();
    let h = heard.clone();
    zone.signals()
        .player_joined()
        .connect(move |s: i64, id: i64| h.borrow_mut().push(format!("joined {s} {id}")));
    let h = heard.clone();
    zone.signals()
        .player_left()
        .connect(move |s: i64, id: i64| h.borrow_mut().push(format!("left {s} {id}")));
    let h = heard.clone();
    zone.signals()
        .asset_placed()
        .connect(move |s: i64, id: i64, a: i64| {
            h.borrow_mut().push(format!("placed {s} {id} {a}"))
        });
    let h = heard.clone();
    zone.signals()
        .command_refused()
        .connect(move |s: i64, why: GString| h.borrow_mut().push(format!("refused {s} {why}")));
    let mut client = super::client_of(&zone)?;
    let mut session = None;
    let ok = wait_until(5.0, || {
        zone.bind_mut().pump_for_test();
        for m in received(&mut client) {
            if let ControlMessage::Welcome { session: s, .. } = m {
                session = Some(s);
            }
        }
        session.is_some()
    });
    check!(ok, "welcomed");
    let s = session.unwrap_or_default();
    check!(
        zone.bind().get_avatar(s as i64) == -1,
        "no avatar before spawn"
    );
    let spawn = ControlMessage::Spawn { at: None }.encode();
    client.send_message(spawn).map_err(|e| e.to_string())?;
    let mut avatar = None;
    let ok = wait_until(5.0, || {
        zone.bind_mut().pump_for_test();
        for m in received(&mut client) {
            if let ControlMessage::Avatar { id, zone } = m
                && zone == 0
            {
                avatar = Some(id);
            }
        }
        avatar.is_some()
    });
    check!(ok, "avatar event received");
    let id = i64::from(avatar.unwrap_or_default());
    check!(
        zone.bind().get_avatar(s as i64) == id,
        "get_avatar gives the avatar the client was told"
    );
    check!(
        heard.borrow().contains(&format!("joined {s} {id}")),
        "player_joined emitted: {:?}",
        heard.borrow()
    );
    client
        .send_message(b"\x43not a packet".to_vec())
        .map_err(|e| e.to_string())?;
    let mut reported = false;
    let ok = wait_until(5.0, || {
        zone.bind_mut().pump_for_test();
        for m in received(&mut client) {
            if let ControlMessage::CommandsRefused { counts } = m {
                reported |= counts.get("malformed") == Some(&1);
            }
        }
        reported && heard.borrow().contains(&format!("refused {s} malformed"))
    });
    check!(
        ok,
        "command_refused emitted and reported: {:?}",
        heard.borrow()
    );
    // An asset 1 m above the avatar.
    let at = zone.bind_mut().get_entity_position(id) + Vector3::new(0.0, 1.0, 0.0);
    let packet = fabric_core::player_command::PlayerPacket {
        global_id: id as u32,
        position: [at.x, at.y, at.z].map(|m| fabric_core::coords::Micros::from_num(m as f64 * 1e6)),
        velocity: [0; 3],
        acceleration: [0; 3],
        hlc: 0,
        command: fabric_core::player_command::PlayerCommand::InstanceAsset {
            asset_id: 4242,
            request: 5,
        },
    };
    client
        .send_message(fabric_core::command_gate::command_frame(&packet).to_vec())
        .map_err(|e| e.to_string())?;
    let mut placed = None;
    let ok = wait_until(5.0, || {
        zone.bind_mut().pump_for_test();
        for m in received(&mut client) {
            if let ControlMessage::Placed {
                request: 5,
                entity,
                asset: 4242,
            } = m
            {
                placed = Some(i64::from(entity));
            }
        }
        placed.is_some()
    });
    check!(ok, "placed answered");
    let entity = placed.unwrap_or_default();
    check!(
        heard
            .borrow()
            .contains(&format!("placed {s} {entity} 4242")),
        "asset_placed emitted: {:?}",
        heard.borrow()
    );
    let payload = zone.bind_mut().get_payload(entity);
    check!(
        payload.as_slice().get(2) == Some(&4242)
            && payload.as_slice().first() == Some(&((5 << 24) | 4242)),
        "the instance's payload names the asset: {payload:?}"
    );
    client.close("done");
    let ok = wait_until(5.0, || {
        zone.bind_mut().pump_for_test();
        heard.borrow().contains(&format!("left {s} {id}"))
    });
    check!(ok, "player_left emitted: {:?}", heard.borrow());
    check!(
        zone.bind().get_avatar(s as i64) == -1,
        "no avatar after the close"
    );
    zone.bind_mut().stop();
    zone.free();
    Ok(())
}
