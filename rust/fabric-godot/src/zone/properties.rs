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
use crate::manifest::FabricReplicationManifest;

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

#[godot_api(secondary)]
impl FabricZone {
    /// Sets `replication_manifest`; it applies from the next tick on (an invalid entry is
    /// reported in the Output and the manifest is not used).
    #[func]
    pub fn set_replication_manifest(&mut self, manifest: Option<Gd<FabricReplicationManifest>>) {
        self.replication_manifest = manifest;
        self.apply_manifest();
    }
}

impl FabricZone {
    /// Hands the manifest resource, as the core's manifest, to the replication.
    pub(super) fn apply_manifest(&mut self) {
        let core = match self.replication_manifest.as_ref().map(|m| m.bind().to_core()) {
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
