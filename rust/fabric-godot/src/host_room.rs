//! `FabricHostRoom`: a room run by one player's process (a listen server over
//! `FabricMMOGTransportPeer`), which survives that player leaving.
//!
//! Thin glue over [`fabric_core::host_room`]: the authority ([`RoomAuthority`]) when this
//! process is the host, the follower ([`Follower`]) otherwise. Messages travel as
//! SceneMultiplayer raw packets (`send_bytes` / `peer_packet`), so the game's own RPCs,
//! spawners and synchronizers share the session untouched. SceneMultiplayer's signals only
//! queue events here; [`FabricHostRoom::process`] handles them once a frame.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

use fabric_core::host_room::presence::rejoin_hash;
use fabric_core::host_room::wire::{self, RoomMsg};
use fabric_core::host_room::{
    Baseline, Decision, Follower, FollowerEvent, HOST_PEER, Outgoing, RoomAuthority,
};
use fabric_core::ownership::PersistMode;
use godot::classes::multiplayer_peer::TransferMode;
use godot::classes::{INode, MultiplayerPeer, Node, SceneMultiplayer};
use godot::global::Error;
use godot::prelude::*;

use crate::transport_peer::FabricMMOGTransportPeer;

/// What SceneMultiplayer told us, queued until the next frame.
enum NetEvent {
    PeerLeft(i32),
    Packet(i32, Vec<u8>),
    Connected,
    Failed,
    ServerGone,
}

type Queue = Rc<RefCell<VecDeque<NetEvent>>>;

enum Mode {
    Idle,
    Host(Box<RoomAuthority>),
    Follower {
        f: Box<Follower>,
        /// The connection to the host is open.
        linked: bool,
        /// The player being connected to after an election.
        electing: Option<u32>,
    },
}

/// A room hosted by one player (a listen server) with the same room rules as a zone:
/// objects placed by players, ownership requests decided by the host (one holder at a time,
/// refusals counted), persist modes (`transient_held`, `placed_room`, `placed_saved`), and a
/// late joiner gets the whole room state (the baseline) first. When the host leaves or
/// crashes, the remaining players elect the **oldest presence** (the player that joined
/// first) without a vote: each holds the same presence list, published by the host. The
/// elected player becomes host from the last baseline (which every player holds), the others
/// reconnect to it, and the room goes on.
///
/// ```gdscript
/// var room := FabricHostRoom.new()
/// add_child(room)
/// room.host_room(7000)                          # the host; others:
/// room.join_room("https://host:7000/wt", hash)  # hash: the host's get_cert_hash()
/// room.spawn_object("placed_room", Vector3(1, 0, 2))
/// ```
///
/// Every player keeps a standby listener open (`bind_address`, a free port, a fresh
/// certificate) and publishes where others reach it (`listen_address`, the port, the
/// certificate hash) in the presence list: once elected, it is already listening. The host
/// sends a heartbeat every `heartbeat_msec`; players consider it lost after
/// `host_timeout_msec` of silence (or at once when it closes the connection). Protocol and
/// limits: `docs/host-rooms.md`.
///
/// The node uses the tree's `multiplayer` (a SceneMultiplayer) and sets its
/// `multiplayer_peer`; leave that peer to it.
#[derive(GodotClass)]
#[class(base = Node)]
pub struct FabricHostRoom {
    base: Base<Node>,
    /// The address other players reach this one at (published in the presence list).
    #[export]
    listen_address: GString,
    /// The address listeners bind to (`"*"`: all interfaces).
    #[export]
    bind_address: GString,
    /// The host sends a heartbeat this often, in milliseconds.
    #[export]
    heartbeat_msec: i32,
    /// Players consider the host lost after this many milliseconds without a message.
    #[export]
    host_timeout_msec: i32,
    /// A new host waits this long for each player of the old room to reconnect; those that do
    /// not are dropped as if they had left, in milliseconds.
    #[export]
    rejoin_grace_msec: i32,
    /// How long a player tries to reach an elected host before skipping it, in milliseconds.
    #[export]
    connect_timeout_msec: i32,
    mode: Mode,
    standby: Option<Gd<FabricMMOGTransportPeer>>,
    queue: Queue,
    hooked: bool,
    started: Instant,
    last_beat_ms: u64,
    out: Vec<Outgoing>,
    bad_packets: u64,
    /// Rejoin secrets this player sent the hash of, newest last (at most [`KEPT_SECRETS`]):
    /// the proof on a rejoin is the one whose hash the last presence list published.
    secrets: VecDeque<String>,
}

/// Rejoin secrets kept ([`FabricHostRoom::secrets`]): a hello whose session failed before the
/// host published its hash does not lose the secret the list still shows.
const KEPT_SECRETS: usize = 4;

/// A position as the room's wire carries it (`f32`), from Godot's `real` (`f32`, or `f64` in a
/// double-precision build).
fn room_pos(v: Vector3) -> [f32; 3] {
    [v.x, v.y, v.z].map(|c| f64::from(c) as f32)
}

/// A Godot vector from a room position.
fn godot_pos(p: [f32; 3]) -> Vector3 {
    let [x, y, z] = p.map(|c| f64::from(c) as real);
    Vector3::new(x, y, z)
}

/// A fresh rejoin secret: 32 random bytes, hex.
fn new_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[godot_api]
impl INode for FabricHostRoom {
    fn init(base: Base<Node>) -> Self {
        Self {
            base,
            listen_address: GString::from("127.0.0.1"),
            bind_address: GString::from("*"),
            heartbeat_msec: 200,
            host_timeout_msec: 1000,
            rejoin_grace_msec: 10_000,
            connect_timeout_msec: 2000,
            mode: Mode::Idle,
            standby: None,
            queue: Queue::default(),
            hooked: false,
            started: Instant::now(),
            last_beat_ms: 0,
            out: Vec::new(),
            bad_packets: 0,
            secrets: VecDeque::new(),
        }
    }

    fn process(&mut self, _delta: f64) {
        let now = self.now_ms();
        let events: Vec<NetEvent> = self.queue.borrow_mut().drain(..).collect();
        for ev in events {
            if self.handle(ev, now) {
                // The host was lost and the session replaced: what is left came from the old one.
                self.queue.borrow_mut().clear();
                break;
            }
        }
        let silent =
            matches!(&self.mode, Mode::Follower { f, linked: true, .. } if f.host_silent(now));
        if silent {
            self.host_lost(now);
        }
        self.host_tick(now);
    }
}

#[godot_api]
impl FabricHostRoom {
    /// This player joined the room: the host gave it `player`, its id (join order).
    #[signal]
    fn joined(player: i64);
    /// The room has a new host: player `player`; `is_local` when it is this process.
    #[signal]
    fn host_changed(player: i64, is_local: bool);
    /// The room state changed (objects, holders, positions): read it with `get_objects()`.
    #[signal]
    fn room_changed();
    /// The host refused a request, release, move or spawn for `entity`: `reason` (`held`,
    /// `cooldown`, `not_holder`, `not_here`, `too_many`, `not_joined`).
    #[signal]
    fn request_denied(entity: i64, reason: GString);
    /// The room cannot go on for this player (no host could be reached, or it never joined).
    #[signal]
    fn room_lost(reason: GString);

    /// Hosts a new room on `port` (0: a free port, see `get_port()`); this player is player
    /// 1. Returns the error of `FabricMMOGTransportPeer.create_server`, or `ERR_ALREADY_IN_USE`.
    #[func]
    pub fn host_room(&mut self, port: i32) -> Error {
        if !matches!(self.mode, Mode::Idle) {
            return Error::ERR_ALREADY_IN_USE;
        }
        let mut peer = FabricMMOGTransportPeer::new_gd();
        let err = peer
            .bind_mut()
            .create_server(port, self.bind_address.clone());
        if err != Error::OK {
            return err;
        }
        let (bound, hash) = Self::listener(&peer);
        let auth = RoomAuthority::found(self.listen_address.to_string(), bound, hash);
        let Some(mut mp) = self.hook() else {
            return Error::ERR_UNCONFIGURED;
        };
        mp.set_multiplayer_peer(&peer.upcast::<MultiplayerPeer>());
        self.mode = Mode::Host(Box::new(auth));
        Error::OK
    }

    /// Joins the room hosted at `url` (`https://host:port/wt`), pinning `cert_hash`; opens
    /// this player's standby listener first. `joined` follows once the host answered.
    #[func]
    pub fn join_room(&mut self, url: GString, cert_hash: GString) -> Error {
        if !matches!(self.mode, Mode::Idle) {
            return Error::ERR_ALREADY_IN_USE;
        }
        let mut standby = FabricMMOGTransportPeer::new_gd();
        let err = standby
            .bind_mut()
            .create_server(0, self.bind_address.clone());
        if err != Error::OK {
            return err;
        }
        self.standby = Some(standby);
        let now = self.now_ms();
        let f = Follower::new(u64::try_from(self.host_timeout_msec).unwrap_or(1000), now);
        self.mode = Mode::Follower {
            f: Box::new(f),
            linked: false,
            electing: None,
        };
        self.connect_to(&url, &cert_hash)
    }

    /// Leaves the room: closes the session (and the standby listener). As host, the players
    /// elect a successor at once (they see the connection close).
    #[func]
    pub fn leave_room(&mut self) {
        if let Some(mut peer) = self.current_peer() {
            peer.close();
        }
        if let Some(s) = self.standby.take() {
            s.upcast::<MultiplayerPeer>().close();
        }
        self.mode = Mode::Idle;
    }

    /// Places an object with persist mode `persist` (`transient_held`, `placed_room`,
    /// `placed_saved`) at `position`, held by this player; the host assigns its id
    /// (`room_changed` shows it). `ERR_INVALID_PARAMETER` for an unknown mode.
    #[func]
    pub fn spawn_object(&mut self, persist: GString, position: Vector3) -> Error {
        let Some(persist) = PersistMode::parse(&persist.to_string()) else {
            godot_error!("FabricHostRoom.spawn_object: unknown persist mode `{persist}`");
            return Error::ERR_INVALID_PARAMETER;
        };
        self.act(RoomMsg::Spawn {
            persist,
            pos: room_pos(position),
        })
    }

    /// Asks the host for ownership of `entity`; a refusal comes as `request_denied`.
    #[func]
    pub fn request_ownership(&mut self, entity: i64) -> Error {
        self.act(RoomMsg::Request {
            entity: entity_id(entity),
        })
    }

    /// Gives `entity` back to the room.
    #[func]
    pub fn release_ownership(&mut self, entity: i64) -> Error {
        self.act(RoomMsg::Release {
            entity: entity_id(entity),
        })
    }

    /// Moves `entity`, which this player must hold, to `position`.
    #[func]
    pub fn move_object(&mut self, entity: i64, position: Vector3) -> Error {
        self.act(RoomMsg::Move {
            entity: entity_id(entity),
            pos: room_pos(position),
        })
    }

    /// Whether this process is the room's host.
    #[func]
    pub fn is_host(&self) -> bool {
        matches!(self.mode, Mode::Host(_))
    }

    /// This player's id (join order, kept across host changes); 0 before `joined`.
    #[func]
    pub fn get_player_id(&self) -> i64 {
        match &self.mode {
            Mode::Host(a) => i64::from(a.me()),
            Mode::Follower { f, .. } => f.me().map_or(0, i64::from),
            Mode::Idle => 0,
        }
    }

    /// The host's player id; 0 when unknown.
    #[func]
    pub fn get_host_player_id(&self) -> i64 {
        match &self.mode {
            Mode::Host(a) => i64::from(a.me()),
            Mode::Follower { f, .. } => f.list().map_or(0, |l| i64::from(l.host)),
            Mode::Idle => 0,
        }
    }

    /// The room's term: 1 under the founding host, +1 per host change; 0 when unknown.
    #[func]
    pub fn get_term(&self) -> i64 {
        match &self.mode {
            Mode::Host(a) => i64::from(a.list().term),
            Mode::Follower { f, .. } => f.list().map_or(0, |l| i64::from(l.term)),
            Mode::Idle => 0,
        }
    }

    /// The players in the room (host included), in join order.
    #[func]
    pub fn get_players(&self) -> PackedInt64Array {
        let list = match &self.mode {
            Mode::Host(a) => Some(a.list()),
            Mode::Follower { f, .. } => f.list(),
            Mode::Idle => None,
        };
        list.map(|l| l.players.iter().map(|p| i64::from(p.player)).collect())
            .unwrap_or_default()
    }

    /// On a host that took over: players of the old room not back yet (0 otherwise).
    #[func]
    pub fn get_awaiting_count(&self) -> i64 {
        match &self.mode {
            Mode::Host(a) => i64::try_from(a.awaiting()).unwrap_or(i64::MAX),
            _ => 0,
        }
    }

    /// The host's listening port (this process's when host); 0 otherwise.
    #[func]
    pub fn get_port(&self) -> i64 {
        self.current_peer()
            .and_then(|p| p.try_cast::<FabricMMOGTransportPeer>().ok())
            .map_or(0, |p| i64::from(p.bind().get_bound_port()))
    }

    /// The host's certificate hash when this process is host (for others to pin); empty
    /// otherwise.
    #[func]
    pub fn get_cert_hash(&self) -> GString {
        match &self.mode {
            Mode::Host(a) => a
                .list()
                .get(a.me())
                .map_or_else(GString::new, |p| GString::from(&p.cert_hash)),
            _ => GString::new(),
        }
    }

    /// The room's objects, in id order: dictionaries with `entity`, `persist`, `holder` (a
    /// player id, 0 when the room owns it) and `position`.
    #[func]
    pub fn get_objects(&self) -> Array<VarDictionary> {
        let b = self.baseline();
        b.objects
            .iter()
            .map(|o| {
                vdict! {
                    "entity" => i64::from(o.entity),
                    "persist" => o.persist.name(),
                    "holder" => o.holder.map_or(0, i64::from),
                    "position" => godot_pos(o.pos),
                }
            })
            .collect()
    }

    /// The room state as one line (`entity:persist:holder:x,y,z` per object, `;` between),
    /// to compare across processes.
    #[func]
    pub fn get_state_dump(&self) -> GString {
        GString::from(&self.baseline().dump())
    }

    /// Packets that were not valid room messages (counted and dropped), and, on the host,
    /// host-only messages sent by players and rejoin claims without the right secret.
    #[func]
    pub fn get_refused_count(&self) -> i64 {
        let forged = match &self.mode {
            Mode::Host(a) => a.forged(),
            _ => 0,
        };
        i64::try_from(self.bad_packets + forged).unwrap_or(i64::MAX)
    }
}

fn entity_id(entity: i64) -> u32 {
    u32::try_from(entity).unwrap_or(u32::MAX)
}

impl FabricHostRoom {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn listener(peer: &Gd<FabricMMOGTransportPeer>) -> (u16, String) {
        let p = peer.bind();
        let port = u16::try_from(p.get_bound_port()).unwrap_or(0);
        (port, p.get_cert_hash().to_string())
    }

    fn baseline(&self) -> Baseline {
        match &self.mode {
            Mode::Host(a) => a.baseline(),
            Mode::Follower { f, .. } => f.baseline().clone(),
            Mode::Idle => Baseline::default(),
        }
    }

    fn scene_multiplayer(&self) -> Option<Gd<SceneMultiplayer>> {
        self.base()
            .get_multiplayer()
            .and_then(|m| m.try_cast::<SceneMultiplayer>().ok())
    }

    fn current_peer(&self) -> Option<Gd<MultiplayerPeer>> {
        self.scene_multiplayer()?.get_multiplayer_peer()
    }

    /// The tree's SceneMultiplayer, with its signals feeding our queue (once).
    fn hook(&mut self) -> Option<Gd<SceneMultiplayer>> {
        let Some(mut mp) = self.scene_multiplayer() else {
            godot_error!("FabricHostRoom: needs to be in the tree with a SceneMultiplayer");
            return None;
        };
        if self.hooked {
            return Some(mp);
        }
        self.hooked = true;
        let me = self.to_gd();
        let q = self.queue.clone();
        let on_packet = Callable::from_linked_fn("fabric_host_room_packet", &me, move |args| {
            let id = args.first().and_then(|v| v.try_to::<i64>().ok());
            let bytes = args.get(1).and_then(|v| v.try_to::<PackedByteArray>().ok());
            if let (Some(id), Some(bytes)) = (id, bytes) {
                let id = i32::try_from(id).unwrap_or(0);
                q.borrow_mut()
                    .push_back(NetEvent::Packet(id, bytes.to_vec()));
            }
        });
        mp.connect("peer_packet", &on_packet);
        let q = self.queue.clone();
        let on_left = Callable::from_linked_fn("fabric_host_room_left", &me, move |args| {
            if let Some(id) = args.first().and_then(|v| v.try_to::<i64>().ok()) {
                let id = i32::try_from(id).unwrap_or(0);
                q.borrow_mut().push_back(NetEvent::PeerLeft(id));
            }
        });
        mp.connect("peer_disconnected", &on_left);
        for (signal, ev) in [
            ("connected_to_server", 0),
            ("connection_failed", 1),
            ("server_disconnected", 2),
        ] {
            let q = self.queue.clone();
            let cb = Callable::from_linked_fn("fabric_host_room_link", &me, move |_| {
                q.borrow_mut().push_back(match ev {
                    0 => NetEvent::Connected,
                    1 => NetEvent::Failed,
                    _ => NetEvent::ServerGone,
                });
            });
            mp.connect(signal, &cb);
        }
        Some(mp)
    }

    /// Opens a client session to `url` as the tree's multiplayer peer.
    fn connect_to(&mut self, url: &GString, cert_hash: &GString) -> Error {
        let Some(mut mp) = self.hook() else {
            return Error::ERR_UNCONFIGURED;
        };
        let mut peer = FabricMMOGTransportPeer::new_gd();
        peer.bind_mut()
            .set_connect_timeout_msec(self.connect_timeout_msec.max(1));
        let err = peer
            .bind_mut()
            .create_client(url.clone(), cert_hash.clone());
        if err != Error::OK {
            return err;
        }
        mp.set_multiplayer_peer(&peer.upcast::<MultiplayerPeer>());
        Error::OK
    }

    fn send(&self, to: i32, msg: &RoomMsg, reliable: bool) {
        let Some(mut mp) = self.scene_multiplayer() else {
            return;
        };
        let mode = if reliable {
            TransferMode::RELIABLE
        } else {
            TransferMode::UNRELIABLE
        };
        let bytes = PackedByteArray::from(msg.encode().as_slice());
        let err = mp.send_bytes_ex(&bytes).id(to).mode(mode).done();
        if err != Error::OK {
            tracing::debug!("FabricHostRoom: a packet to {to} was not sent: {err:?}");
        }
    }

    /// A player action: decided locally on the host, sent to the host otherwise.
    fn act(&mut self, msg: RoomMsg) -> Error {
        match &mut self.mode {
            Mode::Host(a) => {
                a.on_message(HOST_PEER, msg, &mut self.out);
                Error::OK
            }
            Mode::Follower { linked: true, .. } => {
                self.send(HOST_PEER, &msg, true);
                Error::OK
            }
            _ => Error::ERR_UNCONFIGURED,
        }
    }

    /// Handles one queued event; true when the host was lost (the session was replaced).
    fn handle(&mut self, ev: NetEvent, now: u64) -> bool {
        if let Mode::Host(a) = &mut self.mode {
            match ev {
                NetEvent::PeerLeft(id) => a.peer_left(id),
                NetEvent::Packet(id, bytes) => match wire::decode(&bytes) {
                    Ok(msg) => a.on_message(id, msg, &mut self.out),
                    Err(wire::WireError::NotOurs) => {}
                    Err(e) => {
                        self.bad_packets += 1;
                        tracing::debug!("FabricHostRoom: bad packet from {id}: {e}");
                    }
                },
                NetEvent::Connected | NetEvent::Failed | NetEvent::ServerGone => {}
            }
            return false;
        }
        match ev {
            NetEvent::Connected => {
                let Mode::Follower {
                    f,
                    linked,
                    electing,
                } = &mut self.mode
                else {
                    return false;
                };
                f.connected(now);
                *linked = true;
                *electing = None;
                let claim = f.me().unwrap_or(0);
                // The secret behind the hash the last list published for this player.
                let published = f
                    .list()
                    .and_then(|l| l.get(claim))
                    .map(|p| p.rejoin_hash.clone())
                    .unwrap_or_default();
                let proof = self
                    .secrets
                    .iter()
                    .find(|s| claim != 0 && rejoin_hash(s) == published)
                    .cloned()
                    .unwrap_or_default();
                let secret = new_secret();
                let next_hash = rejoin_hash(&secret);
                if self.secrets.len() == KEPT_SECRETS {
                    // The oldest secret, but never the one the list still publishes.
                    let spent = self
                        .secrets
                        .iter()
                        .position(|s| rejoin_hash(s) != published);
                    self.secrets.remove(spent.unwrap_or(0));
                }
                self.secrets.push_back(secret);
                let (port, cert_hash) = self
                    .standby
                    .as_ref()
                    .map_or((0, String::new()), Self::listener);
                let hello = RoomMsg::Hello {
                    player: claim,
                    address: self.listen_address.to_string(),
                    port,
                    cert_hash,
                    rejoin_hash: next_hash,
                    proof,
                };
                self.send(HOST_PEER, &hello, true);
                false
            }
            NetEvent::Packet(id, bytes) if id == HOST_PEER => match wire::decode(&bytes) {
                Ok(msg) => {
                    self.follower_message(msg, now);
                    false
                }
                Err(wire::WireError::NotOurs) => false,
                Err(e) => {
                    self.bad_packets += 1;
                    tracing::debug!("FabricHostRoom: bad packet from the host: {e}");
                    false
                }
            },
            NetEvent::Failed => {
                let electing = match &self.mode {
                    Mode::Follower { linked: true, .. } => return false,
                    Mode::Follower { electing, .. } => *electing,
                    _ => None,
                };
                match electing {
                    Some(p) => {
                        let d = match &mut self.mode {
                            Mode::Follower { f, .. } => f.unreachable(p),
                            _ => None,
                        };
                        self.follow(d, now);
                    }
                    None => self.lost("could not connect to the host"),
                }
                true
            }
            NetEvent::ServerGone => {
                // Only the session to the current host counts: a close of a session already
                // given up (after a silence) must not start a second election.
                if !matches!(self.mode, Mode::Follower { linked: true, .. }) {
                    return false;
                }
                self.host_lost(now);
                true
            }
            NetEvent::Packet(..) | NetEvent::PeerLeft(_) => false,
        }
    }

    fn follower_message(&mut self, msg: RoomMsg, now: u64) {
        let Mode::Follower { f, .. } = &mut self.mode else {
            return;
        };
        match f.on_message(msg, now) {
            FollowerEvent::Welcomed(p) => {
                self.signals().joined().emit(i64::from(p));
            }
            FollowerEvent::Presence { host_changed } => {
                if host_changed {
                    let host = f.list().map_or(0, |l| i64::from(l.host));
                    self.signals().host_changed().emit(host, false);
                }
            }
            FollowerEvent::Baseline => self.signals().room_changed().emit(),
            FollowerEvent::Denied { entity, reason } => {
                self.signals()
                    .request_denied()
                    .emit(i64::from(entity), &GString::from(&reason));
            }
            FollowerEvent::Beat => {}
            FollowerEvent::Unexpected => self.bad_packets += 1,
        }
    }

    /// The host is gone (silent or closed): close its session and follow the election.
    fn host_lost(&mut self, now: u64) {
        if let Some(mut peer) = self.current_peer() {
            peer.close();
        }
        let d = match &mut self.mode {
            Mode::Follower { f, linked, .. } => {
                *linked = false;
                f.elect()
            }
            _ => return,
        };
        tracing::info!("FabricHostRoom: host lost, election: {d:?}");
        self.follow(d, now);
    }

    fn follow(&mut self, decision: Option<Decision>, now: u64) {
        match decision {
            None => self.lost("no other player to take over the room"),
            Some(Decision::TakeOver) => self.take_over(now),
            Some(Decision::Connect(p)) => {
                if let Mode::Follower { electing, .. } = &mut self.mode {
                    *electing = Some(p.player);
                }
                let url = GString::from(&format!("https://{}:{}/wt", p.address, p.port));
                if self.connect_to(&url, &GString::from(&p.cert_hash)) != Error::OK {
                    let d = match &mut self.mode {
                        Mode::Follower { f, .. } => f.unreachable(p.player),
                        _ => None,
                    };
                    self.follow(d, now);
                }
            }
        }
    }

    /// This player was elected: its standby listener becomes the room's server.
    fn take_over(&mut self, now: u64) {
        let Mode::Follower { f, .. } = &self.mode else {
            return;
        };
        let (Some(me), Some(list), Some(standby)) =
            (f.me(), f.list().cloned(), self.standby.take())
        else {
            return self.lost("elected without an id, a list or a listener");
        };
        let grace = u64::try_from(self.rejoin_grace_msec).unwrap_or(0);
        let auth = RoomAuthority::take_over(me, list, f.baseline(), now, grace);
        let Some(mut mp) = self.hook() else {
            return;
        };
        mp.set_multiplayer_peer(&standby.upcast::<MultiplayerPeer>());
        self.mode = Mode::Host(Box::new(auth));
        self.last_beat_ms = 0;
        self.signals().host_changed().emit(i64::from(me), true);
    }

    fn lost(&mut self, reason: &str) {
        self.mode = Mode::Idle;
        self.signals().room_lost().emit(&GString::from(reason));
    }

    /// The host's part of a frame: expiry, publishing, the heartbeat, sending.
    fn host_tick(&mut self, now: u64) {
        let Mode::Host(a) = &mut self.mode else {
            return;
        };
        a.poll(now, &mut self.out);
        let beat_every = u64::try_from(self.heartbeat_msec).unwrap_or(200);
        let beat = (now.saturating_sub(self.last_beat_ms) >= beat_every).then(|| a.beat());
        let out = std::mem::take(&mut self.out);
        let mut changed = false;
        for o in &out {
            match o {
                Outgoing::To(HOST_PEER, RoomMsg::Denied { entity, reason }) => {
                    self.signals()
                        .request_denied()
                        .emit(i64::from(*entity), &GString::from(reason));
                }
                Outgoing::To(HOST_PEER, _) => {}
                Outgoing::To(peer, msg) => self.send(*peer, msg, true),
                Outgoing::All(msg) => {
                    changed |= matches!(msg, RoomMsg::Baseline { .. });
                    self.send(0, msg, true);
                }
            }
        }
        self.out = out;
        self.out.clear();
        if let Some(b) = beat {
            self.last_beat_ms = now;
            self.send(0, &b, false);
        }
        if changed {
            self.signals().room_changed().emit();
        }
    }
}
