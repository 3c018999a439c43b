//! The zone's player signals and `get_avatar()`, in a live engine over a real loopback session:
//! `spawn` emits `player_joined`, a malformed command emits `command_refused` (with the
//! `commands_refused` report at the client), closing the session emits `player_left`.

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
