//! Client sessions of a zone: admission (welcome, join tokens), the registry (register,
//! heartbeat, revocations) and certificate rotation. Driven by [`FabricZone`] every frame.

use std::time::{SystemTime, UNIX_EPOCH};

use fabric_auth::JoinTokenVerifier;
use fabric_core::admission::{Action, TokenVerdict};
use fabric_core::session_control::ControlMessage;
use fabric_net::registry::RegistryEvent;
use fabric_net::{ServerEvent, SessionId};
use godot::prelude::*;

use super::FabricZone;

impl FabricZone {
    fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    pub(super) fn pump(&mut self) {
        crate::log_bridge::drain_to_godot();
        self.pump_registry();
        let Some(server) = self.server.as_mut() else {
            return;
        };
        let mut events = Vec::new();
        while let Some(ev) = server.try_next_event() {
            events.push(ev);
        }
        let now = self.now_ms();
        let tick = self.tick as u64;
        let mut actions = std::mem::take(&mut self.actions);
        for ev in events {
            match ev {
                ServerEvent::Opened {
                    session, remote, ..
                } => {
                    godot_print!(
                        "FabricZone {}: session {session} opened from {remote}",
                        self.zone_id
                    );
                    self.admission.open(session, now, tick, &mut actions);
                    self.player_session_opened(session, now);
                    self.signals().session_opened().emit(session as i64);
                }
                ServerEvent::Datagram { session, data } => {
                    self.on_bytes(session, &data, false, now, &mut actions)
                }
                ServerEvent::Message { session, data } => {
                    self.on_bytes(session, &data, true, now, &mut actions)
                }
                ServerEvent::CertRotated { hash, next, .. } => self.on_cert_rotated(hash, next),
                ServerEvent::Closed { session, reason } => {
                    self.admission.close(session);
                    self.player_session_closed(session);
                    godot_print!(
                        "FabricZone {}: session {session} closed: {reason}",
                        self.zone_id
                    );
                    self.signals()
                        .session_closed()
                        .emit(session as i64, &GString::from(&reason.to_string()));
                }
            }
        }
        self.admission.poll(now, tick, &mut actions);
        self.poll_players(now, &mut actions);
        self.run_actions(&mut actions);
        self.actions = actions;
        if let Some(r) = &self.registration {
            r.set_current_users(self.admission.admitted_count() as u32);
        }
    }

    fn on_bytes(
        &mut self,
        session: SessionId,
        data: &[u8],
        reliable: bool,
        now: u64,
        actions: &mut Vec<Action>,
    ) {
        if let Some((ack, rest)) = super::replication::Replication::split_ack(data) {
            self.on_replication_ack(session, ack);
            if super::replication::Replication::is_ack(rest) {
                // At most one frame after the ack: another ack is applied (or counted as bad),
                // never followed further.
                self.on_replication_ack(session, rest);
            } else if !rest.is_empty() {
                self.on_bytes(session, rest, reliable, now, actions);
            }
            return;
        }
        if !ControlMessage::is_control(data) {
            self.on_command(session, data, now);
            return;
        }
        let msg = match ControlMessage::decode(data) {
            Ok(m) => m,
            Err(e) => {
                actions.push(Action::Send {
                    session,
                    bytes: ControlMessage::Reply {
                        id: String::new(),
                        result: Err(e.to_string()),
                    }
                    .encode(),
                    reliable,
                });
                return;
            }
        };
        if let ControlMessage::Spawn { at } = msg {
            self.on_spawn(session, at, reliable, actions);
            return;
        }
        if let ControlMessage::OriginalScheme = msg {
            self.on_original_scheme(session, reliable, actions);
            return;
        }
        if self.on_ownership(session, &msg, actions) {
            return;
        }
        if let ControlMessage::Claim { id, ticket } = &msg {
            self.on_claim(session, *id, ticket, reliable, now, actions);
            return;
        }
        let shard = self.shard_id.to_string();
        let verifier = self.verifier.as_ref();
        let mut check = |token: &str| match verifier {
            None => TokenVerdict::NotReady,
            Some(v) => {
                let now_s = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                match v.verify(token, &shard, now_s) {
                    Ok(claims) => TokenVerdict::AdmitOnce {
                        subject: claims.sub,
                        token_id: claims.jti,
                        place: claims.place,
                    },
                    Err(e) => TokenVerdict::Refuse(format!("{}: {e}", e.code())),
                }
            }
        };
        let tick = self.tick as u64;
        self.admission
            .control(session, &msg, reliable, now, tick, &mut check, actions);
    }

    fn run_actions(&mut self, actions: &mut Vec<Action>) {
        let Some(server) = self.server.as_ref() else {
            actions.clear();
            return;
        };
        let tx = server.sender();
        for a in actions.drain(..) {
            match a {
                Action::Send {
                    session,
                    bytes,
                    reliable,
                } => {
                    let _ = if reliable {
                        tx.send_message(session, bytes)
                    } else {
                        tx.send_datagram(session, &bytes)
                    };
                }
                Action::Close {
                    session,
                    code,
                    reason,
                } => {
                    godot_print!(
                        "FabricZone {}: refusing session {session}: {reason}",
                        self.zone_id
                    );
                    tx.close_session(session, code, &reason);
                }
                Action::Admitted { session, subject } => {
                    let subject = subject.unwrap_or_default();
                    godot_print!(
                        "FabricZone {}: session {session} admitted{}",
                        self.zone_id,
                        if subject.is_empty() {
                            String::new()
                        } else {
                            format!(" as {subject}")
                        }
                    );
                    self.signals()
                        .session_admitted()
                        .emit(session as i64, &GString::from(&subject));
                }
                Action::Acknowledged { session } => {
                    self.signals().welcome_acknowledged().emit(session as i64);
                }
            }
        }
    }

    /// Records the hashes in use and announced, and writes them to `--cert-hash-file`.
    pub(super) fn publish_hashes(
        &mut self,
        hash: fabric_net::CertHash,
        next: Option<fabric_net::CertHash>,
    ) -> Result<(), String> {
        self.cert_hash = GString::from(&hash.to_base64());
        self.next_cert_hash = next.map_or_else(GString::new, |n| GString::from(&n.to_base64()));
        if let Some(path) = &self.hash_file {
            let pins: Vec<_> = std::iter::once(hash).chain(next).collect();
            fabric_net::cert::write_pins(path, &pins)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        Ok(())
    }

    fn on_cert_rotated(&mut self, hash: fabric_net::CertHash, next: Option<fabric_net::CertHash>) {
        if let Err(e) = self.publish_hashes(hash, next) {
            godot_error!("FabricZone: {e}");
        }
        let (now, following) = (self.cert_hash.clone(), self.next_cert_hash.clone());
        if let Some(r) = &self.registration {
            let following = following.to_string();
            r.set_cert_hash(
                &now.to_string(),
                (!following.is_empty()).then_some(&following[..]),
            );
        }
        godot_print!("FABRIC_ZONE_CERT_ROTATED cert_hash={now} next_cert_hash={following}");
        self.signals().cert_rotated().emit(&now, &following);
    }

    /// Verifies join tokens with `join_keys` (base64url) from now on.
    fn trust_join_keys(&mut self, join_keys: &[String]) {
        let keys: Vec<_> = join_keys
            .iter()
            .filter_map(|k| fabric_auth::keys::public_key_from_b64(k).ok())
            .collect();
        if keys.is_empty() {
            godot_error!(
                "FabricZone {}: the registry's join keys are unreadable",
                self.zone_id
            );
        }
        self.verifier = Some(JoinTokenVerifier::new(keys));
    }

    fn pump_registry(&mut self) {
        let mut events = Vec::new();
        if let Some(r) = self.registration.as_mut() {
            while let Some(ev) = r.try_next_event() {
                events.push(ev);
            }
        }
        for ev in events {
            match ev {
                RegistryEvent::Registered {
                    shard_id,
                    join_keys,
                } => {
                    self.trust_join_keys(&join_keys);
                    self.shard_id = GString::from(&shard_id);
                    godot_print!(
                        "FABRIC_ZONE_REGISTERED shard_id={shard_id} zone_id={}",
                        self.zone_id
                    );
                    self.signals().registered().emit(&GString::from(&shard_id));
                    // (Re-)registered: read the map's asset list (again: pushes may have been
                    // missed while the backend was away).
                    if let Some(m) = self.map_assets.as_mut() {
                        m.refresh();
                    }
                }
                RegistryEvent::AssetBaked {
                    map,
                    asset_id,
                    name,
                    hash,
                    size,
                    baked_url,
                } => {
                    if let Some(m) = self.map_assets.as_mut() {
                        let asset = super::map_assets::Listed {
                            id: asset_id,
                            name,
                            hash,
                            size,
                            baked_url,
                        };
                        m.baked(&map, asset);
                    }
                }
                RegistryEvent::HeartbeatOk => {}
                RegistryEvent::Subscribed { topic } => {
                    godot_print!(
                        "FABRIC_ZONE_SUBSCRIBED zone_id={} topic={topic}",
                        self.zone_id
                    );
                }
                // The registry rotated its key (or a replaced one retired).
                RegistryEvent::JoinKeysChanged { join_keys } => self.trust_join_keys(&join_keys),
                RegistryEvent::CertHashPublished {
                    cert_hash,
                    next_cert_hash,
                } => {
                    godot_print!(
                        "FABRIC_ZONE_CERT_PUBLISHED cert_hash={cert_hash} next_cert_hash={}",
                        next_cert_hash.unwrap_or_default()
                    );
                }
                RegistryEvent::RelationshipChanged { object } => {
                    let subjects = self.admission.admitted_subjects();
                    godot_print!(
                        "FabricZone {}: relationships of {object} changed; re-checking {} player(s)",
                        self.zone_id,
                        subjects.len()
                    );
                    if let Some(r) = &self.registration {
                        r.recheck(subjects);
                    }
                }
                RegistryEvent::JoinRevoked { subject } => {
                    let mut actions = std::mem::take(&mut self.actions);
                    self.admission.revoke(&subject, &mut actions);
                    self.run_actions(&mut actions);
                    self.actions = actions;
                }
                RegistryEvent::Problem(p) => {
                    godot_warn!("FabricZone {}: registry: {p}", self.zone_id);
                    self.signals().registry_problem().emit(&GString::from(&p));
                }
            }
        }
        self.pump_map_assets();
    }

    /// Applies the map's placeable assets when they changed (`FABRIC_ZONE_ASSETS map=M
    /// known=N checking=C unplaceable=U`: `known` counts the assets whose manifest the zone
    /// verified, the placeable ones).
    fn pump_map_assets(&mut self) {
        let Some(m) = self.map_assets.as_mut() else {
            return;
        };
        let problems = m.poll();
        let changed = m.take_changed().map(|f| {
            let counts = (m.len(), m.checking(), m.unplaceable());
            (f, counts, m.map().to_owned())
        });
        for p in problems {
            godot_warn!("FabricZone {}: {p}", self.zone_id);
            self.signals().registry_problem().emit(&GString::from(&p));
        }
        if let Some((filter, (known, checking, unplaceable), map)) = changed {
            self.players.placements.set_assets(filter);
            godot_print!(
                "FABRIC_ZONE_ASSETS zone_id={} map={map} known={known} checking={checking} unplaceable={unplaceable}",
                self.zone_id
            );
        }
    }
}
