//! [`WorldSession`]: the client side of a player's session with a zone, without sockets or a
//! clock (time comes in as milliseconds, bytes go out through a [`Link`]), so unit tests drive
//! it against a real `fabric_core` `ClientView`.
//!
//! The join (`docs/session-protocol.md`): on connect it says `hello` (with the join token) until
//! the zone's `welcome`, acknowledges it with `welcome_ack`, then asks to `spawn` at the chosen
//! point every [`SPAWN_RETRY_MS`] until the zone answers `avatar` (or `avatar_elsewhere`).
//! Then every replication packet (frame `0x43`) is applied to a [`ClientMirror`] and acked
//! (frame `0x41`); the visible set is compared with the previous one and each change becomes
//! a [`WorldEvent`] (entered, updated, exited), and each entity's last two states are kept
//! for interpolation ([`Track`]). `commands_refused` reports become events too.
//!
//! After its first packets nothing here allocates per packet: the mirror, the entity table
//! and the event queue are sized at creation or reuse their capacity.

use std::collections::{BTreeMap, HashMap, VecDeque};

use fabric_core::client_view::wire::PACKET_KIND;
use fabric_core::client_view::{Applied, ClientMirror, MirrorEntity, ReplicationConfig};
use fabric_core::manifest::{PropertyStore, StoreOutcome};
use fabric_core::session_control::ControlMessage;

use super::interpolation::{Sample, TickClock, TickUnwrap, Track};
use super::stats::Rates;

/// Milliseconds between `spawn` requests until the zone answers (and between `hello`s until
/// it welcomes).
pub const SPAWN_RETRY_MS: u64 = 500;

/// Where the session's bytes go (the glue's `fabric_net::Client`; a recorder in tests).
pub trait Link {
    /// Sends an unreliable datagram.
    fn datagram(&mut self, bytes: &[u8]);
    /// Sends a reliable message (requests that must not be lost).
    fn message(&mut self, bytes: &[u8]);
}

/// What happened, for the node's signals.
#[derive(Debug, Clone, PartialEq)]
pub enum WorldEvent {
    /// The zone admitted the session.
    Connected {
        /// The zone's id.
        zone: u32,
    },
    /// The avatar exists.
    AvatarSpawned {
        /// Its global id.
        id: u32,
        /// The zone that made it.
        zone: u32,
    },
    /// An entity came into view.
    Entered(u32),
    /// A visible entity's state changed (a newer tick).
    Updated(u32),
    /// An entity left the view.
    Exited(u32),
    /// The zone refused commands: reason -> count since its last report.
    CommandsRefused(BTreeMap<String, u64>),
    /// An ownership answer or change from the zone.
    Ownership(super::ownership::OwnershipEvent),
    /// The session goes on with zone `zone`'s replication: the gateway followed the avatar
    /// there (`zone_changed`), or the node did ([`WorldSession::followed`]).
    ZoneChanged {
        /// The zone now serving the session.
        zone: u32,
    },
    /// The session ended, with the reason in words.
    Disconnected(String),
    /// The zone placed the asset of request `request` as entity `entity`, durably.
    AssetPlaced {
        /// The request number of `place_asset`.
        request: u32,
        /// The instance's global id.
        entity: u32,
    },
    /// The zone refused the placement of request `request`.
    AssetRefused {
        /// The request number of `place_asset`.
        request: u32,
        /// The refusal's name (`unknown_asset`, `too_far`, ...).
        reason: String,
    },
    /// On a direct connection, the zone handed the avatar over (`avatar_moved`): the node
    /// follows it ([`super::follow`]), or the session ends with why it cannot.
    AvatarMoved(super::follow::Moved),
    /// The zone's late-join baseline is complete (`baseline_done`): every entity in the
    /// player's interest arrived, as of zone tick `tick`.
    BaselineDone {
        /// The zone tick.
        tick: u64,
    },
    /// A replicated property of entity `entity` (payload word `word`) has a new value (the
    /// first one, or a newer one that differs; stale and repeated values are dropped).
    Property {
        /// The entity.
        entity: u32,
        /// The payload word, 1..=13.
        word: u8,
        /// Its value.
        value: u32,
    },
}

/// One visible entity.
#[derive(Debug, Clone, Copy)]
pub struct Visible {
    /// Class: the top byte of `payload[0]`.
    pub class: u8,
    /// `payload[0]` whole (an asset instance's holds the low 24 bits of its asset id).
    pub class_word: u32,
    /// Owning zone.
    pub zone: u8,
    /// Its last received states.
    pub track: Track,
    seen: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    Hello,
    Spawning,
    Playing,
    Ended,
}

/// Settings of a session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    /// The join token (`fj1...`), if the zone needs one.
    pub token: Option<String>,
    /// Where to spawn, micrometres (`None`: the zone's own spawn point).
    pub spawn_at: Option<[i64; 3]>,
    /// Zone ticks per second.
    pub tick_hz: f64,
}

/// The client side of one session with a zone.
pub struct WorldSession {
    cfg: SessionConfig,
    phase: Phase,
    session: u64,
    zone: u32,
    avatar: Option<u32>,
    last_request_ms: Option<u64>,
    mirror: ClientMirror,
    visible: HashMap<u32, Visible>,
    generation: u64,
    unwrap: TickUnwrap,
    clock: TickClock,
    last_tick: Option<i64>,
    events: VecDeque<WorldEvent>,
    rates: Rates,
    refused_packets: u64,
    last_refusal: Option<String>,
    holders: super::ownership::Holders,
    /// Replicated property values (the manifest's `props` messages), stale ones dropped.
    props: PropertyStore,
}

impl WorldSession {
    /// A session not yet connected.
    pub fn new(cfg: SessionConfig) -> Self {
        let repl = ReplicationConfig::default();
        let clock = TickClock::new(cfg.tick_hz);
        Self {
            cfg,
            phase: Phase::Connecting,
            session: 0,
            zone: 0,
            avatar: None,
            last_request_ms: None,
            mirror: ClientMirror::new(repl.max_entities, repl.mtu),
            visible: HashMap::with_capacity(repl.max_entities),
            generation: 0,
            unwrap: TickUnwrap::default(),
            clock,
            last_tick: None,
            events: VecDeque::with_capacity(repl.max_entities),
            rates: Rates::default(),
            refused_packets: 0,
            last_refusal: None,
            holders: super::ownership::Holders::default(),
            props: PropertyStore::new(),
        }
    }

    /// Asks the zone for `entity` (answered with an `ownership` event: granted or denied).
    /// False before the avatar exists (the zone only answers players).
    pub fn request_ownership(&mut self, entity: u32, link: &mut dyn Link) -> bool {
        self.send_playing(&ControlMessage::RequestOwnership { entity }, link)
    }

    /// Gives `entity` back to the zone (answered with `released`, or `denied` `not_holder`).
    pub fn release_ownership(&mut self, entity: u32, link: &mut dyn Link) -> bool {
        self.send_playing(&ControlMessage::ReleaseOwnership { entity }, link)
    }

    fn send_playing(&mut self, msg: &ControlMessage, link: &mut dyn Link) -> bool {
        if self.phase != Phase::Playing {
            return false;
        }
        link.message(&msg.encode());
        true
    }

    /// The replicated value of payload word `word` of `entity`, if one arrived.
    pub fn property(&self, entity: u32, word: u8) -> Option<u32> {
        self.props.get(entity, word)
    }

    /// Every `(word, value)` replicated for `entity`, lowest word first.
    pub fn properties(&self, entity: u32) -> impl Iterator<Item = (u8, u32)> + '_ {
        self.props.values(entity)
    }

    /// Property values dropped as stale (older than, or the same as, the one held).
    pub fn stale_properties(&self) -> u64 {
        self.props.stale_dropped()
    }

    /// The holder (avatar id) of `entity` as last heard from the zone; `None`: the zone.
    pub fn holder(&self, entity: u32) -> Option<u32> {
        self.holders.holder(entity)
    }

    /// The transport session opened: say `hello`.
    pub fn on_connected(&mut self, now_ms: u64, link: &mut dyn Link) {
        if self.phase == Phase::Connecting {
            self.phase = Phase::Hello;
            self.send_request(now_ms, link);
        }
    }

    /// Resends `hello` or `spawn` when unanswered for [`SPAWN_RETRY_MS`].
    pub fn poll(&mut self, now_ms: u64, link: &mut dyn Link) {
        if matches!(self.phase, Phase::Hello | Phase::Spawning)
            && self
                .last_request_ms
                .is_none_or(|t| now_ms.saturating_sub(t) >= SPAWN_RETRY_MS)
        {
            self.send_request(now_ms, link);
        }
    }

    fn send_request(&mut self, now_ms: u64, link: &mut dyn Link) {
        let msg = match self.phase {
            Phase::Hello => ControlMessage::Hello {
                id: "fabric-world".into(),
                token: self.cfg.token.clone(),
            },
            Phase::Spawning => ControlMessage::Spawn {
                at: self.cfg.spawn_at,
            },
            _ => return,
        };
        link.datagram(&msg.encode());
        self.last_request_ms = Some(now_ms);
    }

    /// The transport session ended (or never opened).
    pub fn on_closed(&mut self, reason: String) {
        if self.phase == Phase::Ended {
            return;
        }
        self.phase = Phase::Ended;
        self.clear_view();
        self.events.push_back(WorldEvent::Disconnected(reason));
    }

    /// Bytes from the zone (a datagram or a reliable message).
    pub fn on_bytes(&mut self, now_ms: u64, bytes: &[u8], link: &mut dyn Link) {
        if self.phase == Phase::Ended {
            return;
        }
        if bytes.first() == Some(&PACKET_KIND) {
            self.on_packet(now_ms, bytes, link);
            return;
        }
        let Ok(msg) = ControlMessage::decode(bytes) else {
            return; // not for us (or garbled): dropped, as the zone does
        };
        match msg {
            ControlMessage::Welcome {
                session, zone_id, ..
            } => {
                link.datagram(&ControlMessage::WelcomeAck { session }.encode());
                if self.phase == Phase::Hello {
                    self.session = session;
                    self.zone = zone_id;
                    self.phase = Phase::Spawning;
                    self.events
                        .push_back(WorldEvent::Connected { zone: zone_id });
                    self.send_request(now_ms, link);
                }
            }
            ControlMessage::Avatar { id, zone } if self.avatar != Some(id) => {
                self.avatar = Some(id);
                self.zone = zone;
                self.phase = Phase::Playing;
                self.events
                    .push_back(WorldEvent::AvatarSpawned { id, zone });
            }
            ControlMessage::AvatarElsewhere { zone, address } => {
                let at = address.map(|a| format!(" at {a}")).unwrap_or_default();
                self.on_closed(format!(
                    "avatar_elsewhere: the spawn point belongs to zone {zone}{at}"
                ));
            }
            ControlMessage::CommandsRefused { counts } => {
                self.events.push_back(WorldEvent::CommandsRefused(counts));
            }
            // Sent twice by the gateway (datagram, then reliable): the first copy switches.
            ControlMessage::ZoneChanged { id, zone }
                if self.avatar == Some(id) && zone != self.zone =>
            {
                self.switch_zone(zone);
            }
            ControlMessage::AvatarMoved {
                id,
                zone,
                address,
                cert_hash,
                ticket,
            } if self.avatar == Some(id) && zone != self.zone => {
                match super::follow::Moved::new(id, zone, address, cert_hash, ticket) {
                    Ok(m) => self.events.push_back(WorldEvent::AvatarMoved(m)),
                    Err(e) => self.on_closed(format!("cannot follow the avatar: {e}")),
                }
            }
            ControlMessage::Ownership {
                entity,
                state,
                holder,
                reason,
            } => {
                let ev = super::ownership::OwnershipEvent {
                    entity,
                    state,
                    holder,
                    reason: reason.unwrap_or_default(),
                };
                self.holders.apply(&ev);
                self.events.push_back(WorldEvent::Ownership(ev));
            }
            ControlMessage::Error { code, message } => {
                self.on_closed(format!("{code}: {message}"));
            }
            ControlMessage::Placed {
                request, entity, ..
            } => self
                .events
                .push_back(WorldEvent::AssetPlaced { request, entity }),
            ControlMessage::PlaceRefused { request, reason } => self
                .events
                .push_back(WorldEvent::AssetRefused { request, reason }),
            ControlMessage::BaselineDone { tick } => {
                self.events.push_back(WorldEvent::BaselineDone { tick });
            }
            ControlMessage::Properties { entity, values } => {
                for v in &values {
                    if self.props.apply(entity, v) == StoreOutcome::Changed {
                        self.events.push_back(WorldEvent::Property {
                            entity,
                            word: v.word,
                            value: v.value,
                        });
                    }
                }
            }
            _ => {}
        }
    }

    /// The node took the avatar back in zone `zone` on a new connection (session `session`
    /// there, [`super::follow`]): the same switch as the gateway's `zone_changed`.
    pub fn followed(&mut self, zone: u32, session: u64) {
        if self.phase == Phase::Playing && zone != self.zone {
            self.session = session;
            self.switch_zone(zone);
        }
    }

    /// The new zone's packets come from its fresh view of this player, so the mirror starts
    /// again; the visible table stays, and the diff after the first packet keeps the entities
    /// both zones show (no exit and re-enter).
    fn switch_zone(&mut self, zone: u32) {
        let repl = ReplicationConfig::default();
        self.mirror = ClientMirror::new(repl.max_entities, repl.mtu);
        self.zone = zone;
        self.events.push_back(WorldEvent::ZoneChanged { zone });
    }

    fn on_packet(&mut self, now_ms: u64, bytes: &[u8], link: &mut dyn Link) {
        self.rates.on_bytes(now_ms, bytes.len());
        match self.mirror.apply(bytes) {
            Ok(Applied::Applied {
                entered, updated, ..
            }) => self.rates.on_packet(now_ms, entered + updated),
            Ok(Applied::Stale) => return,
            Err(e) => {
                self.refused_packets += 1;
                self.last_refusal = Some(e.to_string());
                return;
            }
        }
        if let Some(ack) = self.mirror.ack() {
            link.datagram(&ack.encode());
        }
        // A packet the mirror applied is at least the fixed header long.
        let wire_tick = u32::from_le_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
        let tick = self.unwrap.unwrap(wire_tick);
        self.last_tick = Some(tick);
        self.clock.on_packet(tick, now_ms);
        self.diff_view(wire_tick);
    }

    /// Compares what the mirror holds with the visible table: enters, updates, exits.
    fn diff_view(&mut self, wire_tick: u32) {
        self.generation += 1;
        let generation = self.generation;
        for e in self.mirror.iter() {
            let sample = sample_of(&e, self.unwrap.peek(e.tick));
            match self.visible.get_mut(&e.global_id) {
                Some(v) => {
                    v.seen = generation;
                    v.zone = e.zone;
                    if e.tick == wire_tick && v.track.push(sample) {
                        self.events.push_back(WorldEvent::Updated(e.global_id));
                    }
                }
                None => {
                    self.visible.insert(
                        e.global_id,
                        Visible {
                            class: (e.class_word >> 24) as u8,
                            class_word: e.class_word,
                            zone: e.zone,
                            track: Track::new(sample),
                            seen: generation,
                        },
                    );
                    self.events.push_back(WorldEvent::Entered(e.global_id));
                }
            }
        }
        let events = &mut self.events;
        self.visible.retain(|&id, v| {
            let keep = v.seen == generation;
            if !keep {
                events.push_back(WorldEvent::Exited(id));
            }
            keep
        });
    }

    fn clear_view(&mut self) {
        for &id in self.visible.keys() {
            self.events.push_back(WorldEvent::Exited(id));
        }
        self.visible.clear();
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<WorldEvent> {
        self.events.pop_front()
    }

    /// The own avatar's id, once spawned.
    pub fn avatar(&self) -> Option<u32> {
        self.avatar
    }

    /// The zone the session is with (the avatar's zone once spawned).
    pub fn zone(&self) -> u32 {
        self.zone
    }

    /// Whether the zone admitted the session and it has not ended.
    pub fn is_admitted(&self) -> bool {
        matches!(self.phase, Phase::Spawning | Phase::Playing)
    }

    /// Whether the session ended.
    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// A visible entity.
    pub fn visible(&self, id: u32) -> Option<&Visible> {
        self.visible.get(&id)
    }

    /// Every visible entity.
    pub fn iter_visible(&self) -> impl Iterator<Item = (u32, &Visible)> + '_ {
        self.visible.iter().map(|(&id, v)| (id, v))
    }

    /// Visible entities.
    pub fn visible_count(&self) -> usize {
        self.visible.len()
    }

    /// The wire tick of the newest packet applied (continuous).
    pub fn last_tick(&self) -> Option<i64> {
        self.last_tick
    }

    /// The tick to draw at `now_ms`, `delay` ticks behind the zone's estimated tick.
    pub fn render_tick(&mut self, now_ms: u64, delay: f64) -> Option<f64> {
        self.clock.render_tick(now_ms, delay)
    }

    /// Traffic figures.
    pub fn rates(&self) -> &Rates {
        &self.rates
    }

    /// Packets the mirror refused (and the last reason).
    pub fn refused_packets(&self) -> (u64, Option<&str>) {
        (self.refused_packets, self.last_refusal.as_deref())
    }

    /// The session number the zone gave.
    pub fn session(&self) -> u64 {
        self.session
    }
}

fn sample_of(e: &MirrorEntity, tick: i64) -> Sample {
    Sample {
        tick,
        position: e.position.map(|c| c.to_num::<f64>() / 1e6),
        velocity: e.velocity.map(|c| c.to_num::<f64>() / 1e6),
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
