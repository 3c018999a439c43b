//! The replication manifest on the zone: `FabricZone.replication_manifest` (a
//! [`FabricReplicationManifest`] resource) becomes the core's manifest in the zone's
//! [`super::replication::Replication`], and after each replication run the property sends it
//! decided go out as `props` control messages (`docs/session-protocol.md`, "Properties"):
//! snapshots and `reliable_on_change` changes on the session's reliable stream,
//! `high_rate_unreliable` words as datagrams. Called before the baseline markers, so a view's
//! snapshots precede its `baseline_done`.

use fabric_core::manifest::{Delivery, PropertyValue};
use fabric_core::session_control::ControlMessage;
use godot::prelude::*;

use super::FabricZone;

/// Totals of the property messages sent (cumulative).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PropTotals {
    /// Messages on the reliable stream (snapshots and changes).
    pub reliable: u64,
    /// Datagrams (`high_rate_unreliable` words).
    pub datagrams: u64,
    /// Bytes of both.
    pub bytes: u64,
}

impl FabricZone {
    /// Hands the manifest resource, as the core's manifest, to the replication.
    pub(super) fn apply_manifest(&mut self) {
        let core = match self
            .replication_manifest
            .as_ref()
            .map(|m| m.bind().to_core())
        {
            None => Default::default(),
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                godot_error!("FabricZone.replication_manifest: {e}; no property is replicated");
                Default::default()
            }
        };
        self.players.replication.set_manifest(core);
    }

    /// Sends the property messages the last replication run decided.
    pub(super) fn send_properties(&mut self) {
        let repl = &mut self.players.replication;
        let Some(server) = self.server.as_ref() else {
            repl.take_property_sends().for_each(drop);
            return;
        };
        let tx = server.sender();
        let mut sends = std::mem::take(&mut self.prop_scratch);
        sends.extend(repl.take_property_sends());
        let mut totals = repl.prop_totals();
        for (session, p) in sends.drain(..) {
            let mut values: Vec<PropertyValue> = Vec::with_capacity(p.mask.count_ones() as usize);
            repl.tracker().values(p.entity, p.mask, &mut values);
            if values.is_empty() {
                continue;
            }
            let bytes = ControlMessage::Properties {
                entity: p.entity,
                values,
            }
            .encode();
            totals.bytes += bytes.len() as u64;
            match p.delivery {
                Delivery::Snapshot | Delivery::Reliable => {
                    totals.reliable += 1;
                    let _ = tx.send_message(session, bytes);
                }
                Delivery::Unreliable => {
                    totals.datagrams += 1;
                    let _ = tx.send_datagram(session, &bytes);
                }
            }
        }
        repl.set_prop_totals(totals);
        self.prop_scratch = sends;
    }
}

#[cfg(test)]
mod tests {
    use fabric_core::avatars::Avatars;
    use fabric_core::coords::{Micros, ZERO3};
    use fabric_core::entity_row::PAYLOAD_WORDS;
    use fabric_core::manifest::{Delivery, Manifest, PropertyMode, PropertySend};

    use crate::zone::config::ZoneSettings;
    use crate::zone::players::tests::runtime;
    use crate::zone::replication::Replication;

    /// A zone with a player and a crate of class 7 (word 1 reliable_on_change, word 2
    /// snapshot_only): the player's session gets the crate's snapshot in the first run (its
    /// view takes the crate in), then one reliable send for the change of word 1 at tick 5,
    /// and nothing for the change of word 2; the tracker holds the new values, stamped.
    #[test]
    fn a_view_gets_the_snapshot_on_enter_then_each_reliable_change_once() {
        let mut rt = runtime();
        let mut avatars = Avatars::new();
        let me = rt
            .spawn([Micros::ZERO; 3], ZERO3, [0; PAYLOAD_WORDS])
            .unwrap();
        let mut p = [0u32; PAYLOAD_WORDS];
        p[0] = 7 << 24;
        p[1] = 1;
        p[2] = 100;
        let at = [Micros::from_num(1_000_000), Micros::ZERO, Micros::ZERO];
        let crate_id = rt.spawn(at, ZERO3, p).unwrap();
        avatars.insert(1, me);
        let cfg = ZoneSettings::default().replication_config().unwrap();
        let mut repl = Replication::new(cfg).unwrap();
        let mut m = Manifest::new();
        m.declare(7, 1, PropertyMode::ReliableOnChange).unwrap();
        m.declare(7, 2, PropertyMode::SnapshotOnly).unwrap();
        repl.set_manifest(m);
        let mut log: Vec<(u64, u64, PropertySend)> = Vec::new();
        let mut changed_at = 0;
        for k in 0..10 {
            if k == 5 {
                p[1] = 2;
                p[2] = 101;
                let slot = rt.owned_slot(crate_id).unwrap();
                rt.zone_mut().set_payload(slot, p);
            }
            rt.run_tick();
            let tick = rt.zone().current_tick();
            if k == 5 {
                changed_at = tick;
            }
            repl.run(&rt, &avatars, |_| 1200, |_, _| {});
            log.extend(repl.take_property_sends().map(|(s, p)| (tick, s, p)));
        }
        let sends: Vec<(u64, PropertySend)> = log.iter().map(|l| (l.1, l.2)).collect();
        assert_eq!(
            sends,
            vec![
                (
                    1,
                    PropertySend {
                        entity: crate_id,
                        mask: 1 << 1 | 1 << 2,
                        delivery: Delivery::Snapshot,
                    }
                ),
                (
                    1,
                    PropertySend {
                        entity: crate_id,
                        mask: 1 << 1,
                        delivery: Delivery::Reliable,
                    }
                ),
            ],
            "a snapshot, then the one reliable change: {log:?}"
        );
        assert_eq!(log[1].0, changed_at, "sent in the tick it changed");
        assert_eq!(repl.tracker().get(crate_id, 1), Some((2, changed_at)));
        assert_eq!(repl.tracker().get(crate_id, 2), Some((101, changed_at)));
        assert!(!repl.tracker().contains(me), "class 0 replicates nothing");
    }
}
