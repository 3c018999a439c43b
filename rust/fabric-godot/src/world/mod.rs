//! `FabricWorld`: the Godot client node of a player in the fabric.
//!
//! Thin glue over plain Rust that unit tests drive without Godot:
//!
//! - [`session`]: [`session::WorldSession`], the join exchange, the replication mirror and
//!   its acks, the visible set and its entered / updated / exited events;
//! - [`interpolation`]: the zone-tick clock and per-entity tracks drawn between ticks;
//! - [`command`]: `send_command` kinds and arguments to the zone's 100-byte player packet;
//! - [`follow`]: [`follow::ZoneFollow`], taking the avatar back in the zone it moved to
//!   (`avatar_moved`, on a direct connection);
//! - [`walker`]: `move_avatar_to` as a walk the zone's speed check accepts;
//! - [`stats`]: the replication stream's rates for `get_stats()`;
//! - `test_hooks` (feature `itest` only): `FabricWorldTestHooks`, messages only a misbehaving
//!   client sends, for the end-to-end tests.
//!
//! This file owns the `fabric_net::Client`, drains its events once a frame, turns session
//! events into signals and child nodes, and places the nodes.

use std::collections::HashMap;
use std::time::Instant;

use fabric_core::session_control::OwnershipState;
use fabric_net::{CertHash, Client, ClientConfig, ClientEvent};
use godot::classes::{
    Engine, INode3D, Mesh, MeshInstance3D, Node, Node3D, PackedScene, SphereMesh,
};
use godot::global::Error;
use godot::prelude::*;

pub mod command;
pub mod follow;
pub mod interpolation;
pub mod ownership;
pub mod properties;
pub mod session;
pub mod stats;
#[cfg(feature = "itest")]
pub mod test_hooks;
pub mod walker;

use command::{CommandArgs, CommandKind, Motion, build_command};
use follow::{FollowStep, Moved, ZoneFollow};
use session::{Link, SessionConfig, WorldEvent, WorldSession};
use walker::Walker;

/// Sends the session's bytes on the client.
struct NetLink<'a>(&'a Client);

impl Link for NetLink<'_> {
    fn datagram(&mut self, bytes: &[u8]) {
        if let Err(e) = self.0.send_datagram(bytes) {
            tracing::debug!("FabricWorld: a datagram was not sent: {e}");
        }
    }
    fn message(&mut self, bytes: &[u8]) {
        if let Err(e) = self.0.send_message(bytes.to_vec()) {
            tracing::debug!("FabricWorld: a message was not sent: {e}");
        }
    }
}

/// A child node standing for one visible entity.
struct EntityNode {
    node: Gd<Node>,
    spatial: Option<Gd<Node3D>>,
}

/// A player's view of the fabric: joins a zone with a join token, spawns the player's avatar,
/// and keeps one child node per entity near it, moved smoothly between the zone's ticks.
///
/// Set `zone_url` and `cert_hash` (and `join_token` when the zone is registered with a
/// registry), then `connect_to_fabric()` (or leave `auto_connect` on). `connected` follows
/// once the zone admits the session, `avatar_spawned` once the avatar exists; from then on
/// each entity within the zone's interest radius appears as a child (`entity_entered`, named
/// `Entity_<id>`, an instance of the scene `entity_scenes` gives for its class, or
/// `default_entity_scene`, or a small sphere), moves (`entity_updated`, at the zone's tick
/// rate; the node itself is moved every frame, `interpolation_delay` ticks behind the zone)
/// and is freed when it leaves the view (`entity_exited`).
///
/// Positions are the fabric's world coordinates in metres, relative to this node (children
/// are placed in its local space). Move the avatar with `move_avatar_to()` (a walk at
/// `walk_speed`) or any command with `send_command()`; commands the zone refuses are reported
/// by `command_refused`. `get_stats()` tells what the stream costs. Protocol:
/// `docs/client.md`.
///
/// When the avatar walks into another zone, the session follows it: through the gateway, the
/// gateway does; connected to a zone directly, this node opens a session to the new zone (at
/// the address and certificate hashes the old zone names), claims the avatar there with the
/// old zone's follow ticket and closes the old session. Either way `zone_changed` follows and
/// the visible entities both zones show stay.
#[derive(GodotClass)]
#[class(base = Node3D)]
pub struct FabricWorld {
    base: Base<Node3D>,
    /// The zone's (or the gateway's) WebTransport URL, e.g. `https://127.0.0.1:7443/wt`.
    #[export]
    zone_url: GString,
    /// The pinned certificate hash of the zone (base64, as `FABRIC_ZONE_READY` prints it); a
    /// comma-separated list pins several (current and next, across a rotation).
    #[export]
    cert_hash: GString,
    /// The join token from the registry (`fj1...`; `FabricRegistry.issue_join_token`); empty
    /// for a zone that admits without tokens.
    #[export]
    join_token: GString,
    /// Where the avatar is made, metres (the zone clamps it into the world; when the point
    /// belongs to another zone, the session ends with `disconnected("avatar_elsewhere...")`).
    #[export]
    spawn_at: Vector3,
    /// Ticks the drawn entities stay behind the newest state (2: smooth through one lost or
    /// late packet; 0: newest state, extrapolated between packets).
    #[export]
    interpolation_delay: f64,
    /// Scenes per entity class (the top byte of an entity's first payload word): an `int`
    /// class -> `PackedScene` dictionary, as `MultiplayerSpawner`'s spawnable scenes.
    #[export]
    entity_scenes: VarDictionary,
    /// The scene for classes `entity_scenes` does not name (none: a 0.25 m sphere).
    #[export]
    default_entity_scene: Option<Gd<PackedScene>>,
    /// The scene for the player's own avatar (none: as any entity of its class).
    #[export]
    avatar_scene: Option<Gd<PackedScene>>,
    /// Connect in `_ready` (not in the editor).
    #[export]
    auto_connect: bool,
    /// The zone's ticks per second (its `tick_hz`, 20 by default).
    #[export]
    tick_hz: f64,
    /// The zone's top speed, metres per second (10 by default); commands faster are refused.
    #[export]
    max_speed: f64,
    /// Speed of `move_avatar_to` walks, metres per second.
    #[export]
    walk_speed: f64,
    /// The replication manifest the zone uses (the same resource): each replicated property
    /// value that arrives sets the node property it names on the entity's node (and
    /// `property_changed` fires). None: `property_changed` only.
    #[export]
    replication_manifest: Option<Gd<crate::manifest::FabricReplicationManifest>>,
    started: Instant,
    client: Option<Client>,
    session: Option<WorldSession>,
    /// The session to the zone the avatar moved to, until it is ours there.
    follow: Option<(Client, ZoneFollow)>,
    nodes: HashMap<u32, EntityNode>,
    events: Vec<WorldEvent>,
    walker: Walker,
    walk_due: f64,
    sphere: Option<Gd<Mesh>>,
    /// The last request number `place_asset` used.
    last_request: u32,
}

#[godot_api]
impl INode3D for FabricWorld {
    fn init(base: Base<Node3D>) -> Self {
        let motion = Motion::default();
        Self {
            base,
            zone_url: GString::new(),
            cert_hash: GString::new(),
            join_token: GString::new(),
            spawn_at: Vector3::ZERO,
            interpolation_delay: 2.0,
            entity_scenes: VarDictionary::new(),
            default_entity_scene: None,
            avatar_scene: None,
            auto_connect: true,
            tick_hz: motion.tick_hz,
            max_speed: motion.max_speed,
            walk_speed: 4.0,
            replication_manifest: None,
            started: Instant::now(),
            client: None,
            session: None,
            follow: None,
            nodes: HashMap::new(),
            events: Vec::new(),
            walker: Walker::default(),
            walk_due: 0.0,
            sphere: None,
            last_request: 0,
        }
    }

    fn ready(&mut self) {
        if self.auto_connect && !Engine::singleton().is_editor_hint() && !self.zone_url.is_empty() {
            let _ = self.connect_to_fabric();
        }
    }

    fn process(&mut self, delta: f64) {
        let now = self.now_ms();
        self.pump(now);
        self.walk(delta);
        self.flush_events();
        self.place_nodes(now);
    }

    fn exit_tree(&mut self) {
        // Leaving the tree leaves the fabric (signals included), so no session outlives the node
        // in the scene and no stale entity node is left for the next connection.
        if self.client.is_some() {
            self.leave();
        }
    }
}

#[godot_api]
impl FabricWorld {
    /// The zone admitted the session (`zone`: its id).
    #[signal]
    fn connected(zone: i64);
    /// The player's avatar exists: its entity `id`, made by zone `zone`.
    #[signal]
    fn avatar_spawned(id: i64, zone: i64);
    /// Entity `id` came into view; `node` is its new child node.
    #[signal]
    fn entity_entered(id: i64, node: Gd<Node>);
    /// A newer state of entity `id` arrived: its `position` (metres) at the zone's tick.
    #[signal]
    fn entity_updated(id: i64, position: Vector3);
    /// Entity `id` left the view; its node is being freed.
    #[signal]
    fn entity_exited(id: i64);
    /// The session ended (refused, closed by either side, the zone gone), with the reason.
    #[signal]
    fn disconnected(reason: GString);
    /// The zone refused commands of this player since its last report (at most one a
    /// second): reason (`rate`, `malformed`, `authority`, `bounds`, `speed`, `not_here`, ...)
    /// -> count.
    #[signal]
    fn command_refused(counts: VarDictionary);
    /// Your avatar crossed into zone `zone` and the session followed it (the gateway did, or
    /// on a direct connection this node reconnected to that zone and claimed the avatar): the
    /// session goes on with that zone (entities both zones show stay;
    /// `get_stats()["session_zone"]`).
    #[signal]
    fn zone_changed(zone: i64);
    /// The zone gave entity `id` to `holder` (an avatar id; yours when it is
    /// `get_own_avatar_id()`): sent to every player of the zone.
    #[signal]
    fn ownership_granted(id: i64, holder: i64);
    /// Your request for entity `id` was refused: `reason` (`held`, `cooldown`, `not_here`,
    /// `avatar`, `too_many`, ...) and the current `holder` (-1: the zone).
    #[signal]
    fn ownership_denied(id: i64, reason: GString, holder: i64);
    /// Entity `id` went back to the zone (its holder released it, left, or it left the zone):
    /// `reason` says which.
    #[signal]
    fn ownership_released(id: i64, reason: GString);
    /// The server took entity `id` back from its holder: `reason` says why.
    #[signal]
    fn ownership_revoked(id: i64, reason: GString);
    /// The zone placed the asset of `place_asset`'s `request` as entity `entity`, and the
    /// placement is durable: the zone's journal committed it, so it survives a crash of the
    /// zone (on a zone without a data directory: applied, not durable).
    #[signal]
    fn asset_placed(request: i64, entity: i64);
    /// The zone refused `place_asset`'s `request`: `reason` is `place_forbidden` (the join
    /// token grants no placing in this map), `unknown_asset`, `too_far`
    /// (beyond the placement radius of your avatar, 10 m by default), `not_in_zone`,
    /// `no_capacity`, `ack_backlog` (too many placements wait for the journal) or `not_here`.
    /// Refusals by the command gate (`rate`, `bounds`, ...) arrive as `command_refused` only.
    #[signal]
    fn asset_refused(request: i64, reason: GString);
    /// The zone's late-join baseline is complete: every entity in your interest has arrived
    /// (the visible entities now equal the zone's state as of zone tick `tick`; live updates
    /// follow). Emitted once after joining and once after each change of zone.
    #[signal]
    fn baseline_done(tick: i64);
    /// Replicated property `word` (payload word 1..13; the manifest names it) of entity `id`
    /// has a new `value`: once per change for `reliable_on_change` words, once on entering
    /// your view for `snapshot_only` ones (an older value never replaces a newer one). Its
    /// node, when it exists, already has the manifest's property set.
    #[signal]
    fn property_changed(id: i64, word: i64, value: i64);

    /// Connects to `zone_url`, pinning `cert_hash`, and joins with `join_token`. `OK`, or
    /// `ERR_ALREADY_IN_USE` (call `leave()` first), or `ERR_INVALID_PARAMETER` (a bad URL or
    /// hash, with an error in the Output).
    #[func]
    pub fn connect_to_fabric(&mut self) -> Error {
        if self.client.is_some() {
            return Error::ERR_ALREADY_IN_USE;
        }
        let pins = match CertHash::parse_list(&self.cert_hash.to_string()) {
            Ok(p) if !p.is_empty() => p,
            Ok(_) => {
                godot_error!("FabricWorld: cert_hash is empty");
                return Error::ERR_INVALID_PARAMETER;
            }
            Err(e) => {
                godot_error!("FabricWorld: cert_hash: {e}");
                return Error::ERR_INVALID_PARAMETER;
            }
        };
        let url = self.zone_url.to_string();
        if !url.starts_with("https://") && !url.starts_with("wss://") {
            godot_error!("FabricWorld: zone_url {url:?} is not https://host:port/wt (or wss://)");
            return Error::ERR_INVALID_PARAMETER;
        }
        let Some(cfg) = ClientConfig::pinning(url, &pins) else {
            return Error::ERR_INVALID_PARAMETER;
        };
        let token = self.join_token.to_string();
        let at = self.spawn_at;
        let m = |c: real| (f64::from(c) * 1e6).round() as i64;
        self.session = Some(WorldSession::new(SessionConfig {
            token: (!token.is_empty()).then_some(token),
            spawn_at: Some([m(at.x), m(at.y), m(at.z)]),
            tick_hz: self.tick_hz,
        }));
        self.walker.stop();
        self.follow = None;
        // Nodes of an earlier session that ended without exits (none are expected): freed.
        for (_, mut n) in self.nodes.drain() {
            n.node.queue_free();
        }
        self.client = Some(Client::connect(cfg));
        Error::OK
    }

    /// Leaves: closes the session; every entity exits and `disconnected("left")` follows at
    /// once. The node may connect again. Leaving the scene tree leaves too.
    #[func]
    pub fn leave(&mut self) {
        if let Some(c) = self.client.take() {
            c.close("left");
        }
        if let Some((c, _)) = self.follow.take() {
            c.close("left");
        }
        if let Some(s) = self.session.as_mut() {
            s.on_closed("left".into());
        }
        self.flush_events();
    }

    /// Whether the zone admitted the session and it is still open.
    #[func]
    pub fn is_connected_to_fabric(&self) -> bool {
        self.client.is_some() && self.session.as_ref().is_some_and(|s| s.is_admitted())
    }

    /// Sends a player command: `kind` is `position_upsert` (or `position`), `velocity_spike`
    /// (or `velocity`), `nudge`, `stroke_knot` or `instance_asset`; `args` may hold
    /// `entity` (int, default the own avatar), `position` (Vector3, metres; default the
    /// avatar's newest position), `velocity` (Vector3, m/s), `target` (int, `nudge`),
    /// `stroke_id` and `rgba` (int, `stroke_knot`), `asset_id` (int, `instance_asset`).
    /// `OK`; `ERR_UNCONFIGURED` before the avatar exists; `ERR_INVALID_PARAMETER` (with an
    /// error in the Output) for what cannot be sent. The zone still checks it.
    #[func]
    pub fn send_command(&mut self, kind: GString, args: VarDictionary) -> Error {
        let kind = match CommandKind::from_name(&kind.to_string()) {
            Ok(k) => k,
            Err(e) => {
                godot_error!("FabricWorld.send_command: {e}");
                return Error::ERR_INVALID_PARAMETER;
            }
        };
        let Some(own) = self.own_position() else {
            return Error::ERR_UNCONFIGURED;
        };
        let v3 = |key: &str, default: [f64; 3]| match args.get(key) {
            Some(v) => v.try_to::<Vector3>().map(vec3_m).unwrap_or([f64::NAN; 3]),
            None => default,
        };
        let int = |key: &str| {
            args.get(key)
                .and_then(|v| v.try_to::<i64>().ok())
                .unwrap_or(0)
        };
        let a = CommandArgs {
            entity: int("entity") as u32,
            position: v3("position", own),
            velocity: v3("velocity", [0.0; 3]),
            target: int("target") as u32,
            stroke_id: int("stroke_id") as u32,
            rgba: int("rgba") as u32,
            asset_id: int("asset_id") as u64,
            request: 0,
        };
        self.send(kind, &a)
    }

    /// Places an instance of asset `asset_id` (non-zero) at `position` (metres) with
    /// CMD_INSTANCE_ASSET, on the reliable stream. Returns the request number (>= 1) that
    /// `asset_placed` or `asset_refused` will carry, or -1 when nothing was sent: no avatar
    /// yet, not connected, or an invalid id or position (with an error in the Output). Other
    /// players see the instance as an entity of class 5 (`get_entity_asset(id)`).
    #[func]
    pub fn place_asset(&mut self, asset_id: i64, position: Vector3) -> i64 {
        let (Some(client), Some(s)) = (self.client.as_ref(), self.session.as_ref()) else {
            return -1;
        };
        let request = self.last_request.wrapping_add(1).max(1);
        let args = CommandArgs {
            position: vec3_m(position),
            asset_id: asset_id as u64,
            request,
            ..Default::default()
        };
        match build_command(CommandKind::InstanceAsset, &args, s.avatar(), self.motion()) {
            Ok(frame) => match client.send_message(frame.to_vec()) {
                Ok(()) => {
                    self.last_request = request;
                    i64::from(request)
                }
                Err(e) => {
                    godot_error!("FabricWorld.place_asset: {e}");
                    -1
                }
            },
            Err(command::CommandError::NoAvatar) => -1,
            Err(e) => {
                godot_error!("FabricWorld.place_asset: {e}");
                -1
            }
        }
    }

    /// The low 24 bits of the asset id of visible entity `id` when it is an asset instance
    /// (class 5: the part of the id every client receives), or -1.
    #[func]
    pub fn get_entity_asset(&self, id: i64) -> i64 {
        self.visible(id)
            .and_then(|v| fabric_core::asset_placement::asset_of_class_word(v.class_word))
            .map_or(-1, i64::from)
    }

    /// Asks the zone to give you entity `id` (one holder at a time, first come first served;
    /// see `docs/zone.md`, "Ownership"). The answer arrives as `ownership_granted` or
    /// `ownership_denied`. `ERR_UNCONFIGURED` before your avatar exists, `ERR_INVALID_PARAMETER`
    /// for an id out of range.
    #[func]
    pub fn request_ownership(&mut self, id: i64) -> Error {
        self.ownership_request(id, true)
    }

    /// Gives entity `id` back to the zone; answered with `ownership_released`. Same errors as
    /// `request_ownership`.
    #[func]
    pub fn release_ownership(&mut self, id: i64) -> Error {
        self.ownership_request(id, false)
    }

    /// The avatar id holding entity `id` as last heard from the zone, -1 when the zone holds it.
    #[func]
    pub fn get_holder(&self, id: i64) -> i64 {
        let (Ok(id), Some(s)) = (u32::try_from(id), self.session.as_ref()) else {
            return -1;
        };
        s.holder(id).map_or(-1, i64::from)
    }

    /// Whether your avatar holds entity `id` (so the zone accepts your commands on it).
    #[func]
    pub fn is_held_by_me(&self, id: i64) -> bool {
        let me = self.get_own_avatar_id();
        me >= 0 && self.get_holder(id) == me
    }

    /// Walks the own avatar to `target` (metres) at `walk_speed`: one position upsert per
    /// zone tick, the last one on the target (the avatar is at rest between upserts, so it
    /// never runs ahead and back). A new call changes the target.
    #[func]
    pub fn move_avatar_to(&mut self, target: Vector3) {
        if let Some(from) = self.own_position() {
            self.walker.walk_to(from, vec3_m(target));
        } else {
            godot_warn!("FabricWorld.move_avatar_to: no avatar yet (wait for avatar_spawned)");
        }
    }

    /// The own avatar's entity id, or -1 before it exists.
    #[func]
    pub fn get_own_avatar_id(&self) -> i64 {
        self.session
            .as_ref()
            .and_then(|s| s.avatar())
            .map_or(-1, i64::from)
    }

    /// The newest received position of visible entity `id` (metres, exact to 1 mm at the
    /// zone's tick `get_entity_tick(id)`), or `Vector3.ZERO` when not visible. Its node is
    /// drawn `interpolation_delay` ticks behind this.
    #[func]
    pub fn get_entity_position(&self, id: i64) -> Vector3 {
        self.visible(id)
            .map_or(Vector3::ZERO, |v| to_vec3(v.track.last().position))
    }

    /// The replicated value of payload word `word` (1..13) of entity `id`, or -1 when none
    /// arrived (not replicated by the manifest, or not yet).
    #[func]
    pub fn get_entity_property(&self, id: i64, word: i64) -> i64 {
        let (Ok(id), Ok(word), Some(s)) =
            (u32::try_from(id), u8::try_from(word), self.session.as_ref())
        else {
            return -1;
        };
        s.property(id, word).map_or(-1, i64::from)
    }

    /// The zone tick of `get_entity_position(id)`, or -1 when not visible.
    #[func]
    pub fn get_entity_tick(&self, id: i64) -> i64 {
        self.visible(id).map_or(-1, |v| v.track.last().tick)
    }

    /// The zone that owns visible entity `id`, or -1.
    #[func]
    pub fn get_entity_zone(&self, id: i64) -> i64 {
        self.visible(id).map_or(-1, |v| i64::from(v.zone))
    }

    /// The child node of visible entity `id`, or null.
    #[func]
    pub fn get_entity_node(&self, id: i64) -> Option<Gd<Node>> {
        let id = u32::try_from(id).ok()?;
        self.nodes.get(&id).map(|n| n.node.clone())
    }

    /// The ids of every visible entity (the own avatar included), ascending.
    #[func]
    pub fn get_visible_entity_ids(&self) -> PackedInt64Array {
        let mut ids: Vec<i64> = self
            .session
            .as_ref()
            .map(|s| s.iter_visible().map(|(id, _)| i64::from(id)).collect())
            .unwrap_or_default();
        ids.sort_unstable();
        PackedInt64Array::from(ids.as_slice())
    }

    /// The zone tick of the newest replication packet, or -1 before the first.
    #[func]
    pub fn get_last_tick(&self) -> i64 {
        self.session
            .as_ref()
            .and_then(|s| s.last_tick())
            .unwrap_or(-1)
    }

    /// The stream's figures: `visible` (entities), `bytes_per_second`, `updates_per_second`
    /// (replication packets a second, at most the zone's 20 Hz), `entity_updates_per_second`
    /// (entity records a second), `bytes_total`, `packets_total`, `avatar_id` (-1 before it
    /// exists), `avatar_zone` (the zone owning the avatar, -1 unknown), `session_zone` (the
    /// zone this session is with), `last_tick`, `refused_packets` (packets that did not
    /// decode against the mirror), `stale_properties` (replicated property values dropped as
    /// older than the one held), `rtt_msec` (-1 unknown). Empty before `connect_to_fabric`.
    #[func]
    pub fn get_stats(&self) -> VarDictionary {
        let mut d = VarDictionary::new();
        let Some(s) = self.session.as_ref() else {
            return d;
        };
        let r = s.rates();
        let avatar = s.avatar();
        let avatar_zone = avatar
            .and_then(|a| s.visible(a))
            .map_or(-1, |v| i64::from(v.zone));
        d.set("visible", s.visible_count() as i64);
        d.set("bytes_per_second", r.bytes_per_second());
        d.set("updates_per_second", r.packets_per_second());
        d.set("entity_updates_per_second", r.records_per_second());
        d.set("bytes_total", r.bytes_total as i64);
        d.set("packets_total", r.packets_total as i64);
        d.set("avatar_id", avatar.map_or(-1, i64::from));
        d.set("avatar_zone", avatar_zone);
        d.set("session_zone", i64::from(s.zone()));
        d.set("last_tick", s.last_tick().unwrap_or(-1));
        d.set("refused_packets", s.refused_packets().0 as i64);
        d.set("stale_properties", s.stale_properties() as i64);
        let rtt = self.client.as_ref().and_then(|c| c.rtt());
        d.set("rtt_msec", rtt.map_or(-1.0, |r| r.as_secs_f64() * 1000.0));
        d
    }
}

/// Metres from a Godot vector.
fn vec3_m(v: Vector3) -> [f64; 3] {
    [f64::from(v.x), f64::from(v.y), f64::from(v.z)]
}

/// A Godot vector from metres.
fn to_vec3(p: [f64; 3]) -> Vector3 {
    Vector3::new(p[0] as real, p[1] as real, p[2] as real)
}

impl FabricWorld {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn motion(&self) -> Motion {
        Motion {
            tick_hz: self.tick_hz.max(1.0),
            max_speed: self.max_speed,
        }
    }

    fn visible(&self, id: i64) -> Option<&session::Visible> {
        self.session.as_ref()?.visible(u32::try_from(id).ok()?)
    }

    /// The avatar's newest received position (else where it was asked to spawn), once it
    /// exists.
    fn own_position(&self) -> Option<[f64; 3]> {
        let s = self.session.as_ref()?;
        let a = s.avatar()?;
        Some(
            s.visible(a)
                .map_or(vec3_m(self.spawn_at), |v| v.track.last().position),
        )
    }

    fn send(&mut self, kind: CommandKind, args: &CommandArgs) -> Error {
        let (Some(client), Some(s)) = (self.client.as_ref(), self.session.as_ref()) else {
            return Error::ERR_UNCONFIGURED;
        };
        match build_command(kind, args, s.avatar(), self.motion()) {
            Ok(frame) => match client.send_datagram(&frame) {
                Ok(()) => Error::OK,
                Err(e) => {
                    godot_error!("FabricWorld.send_command: {e}");
                    Error::ERR_CONNECTION_ERROR
                }
            },
            Err(command::CommandError::NoAvatar) => Error::ERR_UNCONFIGURED,
            Err(e) => {
                godot_error!("FabricWorld.send_command: {e}");
                Error::ERR_INVALID_PARAMETER
            }
        }
    }

    /// Drains the client's events into the session.
    fn pump(&mut self, now: u64) {
        let (Some(client), Some(s)) = (self.client.as_mut(), self.session.as_mut()) else {
            return;
        };
        while let Some(ev) = client.try_next_event() {
            let mut link = NetLink(client);
            match ev {
                ClientEvent::Connected { .. } => s.on_connected(now, &mut link),
                ClientEvent::Datagram(b) => s.on_bytes(now, &b, &mut link),
                ClientEvent::Message(b) => s.on_bytes(now, &b, &mut link),
                ClientEvent::Failed(e) => s.on_closed(format!("connection failed: {e}")),
                ClientEvent::Closed { reason } => s.on_closed(match reason.code() {
                    Some(c) => format!("closed by the zone (code {c}): {reason}"),
                    None => format!("closed: {reason}"),
                }),
            }
        }
        s.poll(now, &mut NetLink(client));
        if s.is_ended() {
            self.client = None;
            self.follow = None;
        }
        self.pump_follow(now);
    }

    /// The avatar moved to another zone: opens a session there and starts claiming it.
    fn start_follow(&mut self, moved: Moved) {
        if self.follow.is_some() || self.client.is_none() {
            return;
        }
        let pins = CertHash::parse_list(&moved.cert_hash).unwrap_or_default();
        let Some(cfg) = ClientConfig::pinning(moved.url.clone(), &pins) else {
            self.follow_failed(format!(
                "zone {} certificate hashes {:?} do not parse",
                moved.zone, moved.cert_hash
            ));
            return;
        };
        tracing::info!(
            "FabricWorld: avatar {} moved to zone {}: following to {}",
            moved.id,
            moved.zone,
            moved.url
        );
        let f = ZoneFollow::new(moved, self.now_ms());
        self.follow = Some((Client::connect(cfg), f));
    }

    /// Drives the follow, and switches to its session once the new zone gave the avatar back.
    fn pump_follow(&mut self, now: u64) {
        let Some((client, f)) = self.follow.as_mut() else {
            return;
        };
        let mut step = FollowStep::Wait;
        while let Some(ev) = client.try_next_event() {
            let mut link = NetLink(client);
            step = match ev {
                ClientEvent::Connected { .. } => {
                    f.on_connected(now, &mut link);
                    FollowStep::Wait
                }
                ClientEvent::Datagram(b) => f.on_bytes(now, &b, &mut link),
                ClientEvent::Message(b) => f.on_bytes(now, &b, &mut link),
                ClientEvent::Failed(e) => f.on_closed(&e.to_string()),
                ClientEvent::Closed { reason } => f.on_closed(&reason.to_string()),
            };
            if step != FollowStep::Wait {
                break;
            }
        }
        if step == FollowStep::Wait {
            step = f.poll(now, &mut NetLink(client));
        }
        match step {
            FollowStep::Wait => {}
            FollowStep::Done { zone, session } => {
                let Some((new, mut f)) = self.follow.take() else {
                    return;
                };
                if let Some(old) = self.client.replace(new) {
                    old.close("followed the avatar");
                }
                let (Some(client), Some(s)) = (self.client.as_ref(), self.session.as_mut()) else {
                    return;
                };
                s.followed(zone, session);
                let mut link = NetLink(client);
                for b in f.take_held() {
                    s.on_bytes(now, &b, &mut link);
                }
            }
            FollowStep::Failed(why) => self.follow_failed(why),
        }
    }

    /// Following failed: the avatar is no longer ours where we are, so the session ends.
    fn follow_failed(&mut self, why: String) {
        if let Some((c, _)) = self.follow.take() {
            c.close("follow failed");
        }
        if let Some(c) = self.client.take() {
            c.close("follow failed");
        }
        if let Some(s) = self.session.as_mut() {
            s.on_closed(format!("could not follow the avatar: {why}"));
        }
    }

    /// One position upsert per zone tick while walking, each `walk_speed / tick_hz` on.
    fn walk(&mut self, delta: f64) {
        // While the avatar is being taken back in its new zone, the old zone would refuse the
        // steps (and a lost step would make the next one too long): the walk waits.
        if !self.walker.walking() || self.follow.is_some() {
            self.walk_due = 0.0;
            return;
        }
        let interval = 1.0 / self.tick_hz.max(1.0);
        self.walk_due += delta;
        if self.walk_due < interval {
            return;
        }
        // One step a frame; a backlog beyond one more step (a long frame) is dropped.
        self.walk_due = (self.walk_due - interval).min(interval);
        let reach = self.walk_speed.clamp(0.0, self.max_speed) * interval;
        if let Some(position) = self.walker.step(reach) {
            let args = CommandArgs {
                position,
                ..Default::default()
            };
            self.send(CommandKind::PositionUpsert, &args);
        }
    }

    /// Sends `msg` on the session's reliable stream as it is (the zone judges it): for
    /// `test_hooks`. `ERR_UNCONFIGURED` before the avatar exists.
    #[cfg(feature = "itest")]
    pub(crate) fn send_control_for_test(
        &mut self,
        msg: &fabric_core::session_control::ControlMessage,
    ) -> Error {
        let (Some(client), Some(s)) = (self.client.as_ref(), self.session.as_ref()) else {
            return Error::ERR_UNCONFIGURED;
        };
        if s.avatar().is_none() {
            return Error::ERR_UNCONFIGURED;
        }
        match client.send_message(msg.encode()) {
            Ok(()) => Error::OK,
            Err(e) => {
                godot_error!("FabricWorldTestHooks: {e}");
                Error::ERR_CONNECTION_ERROR
            }
        }
    }

    fn ownership_request(&mut self, id: i64, request: bool) -> Error {
        let Ok(entity) = u32::try_from(id) else {
            return Error::ERR_INVALID_PARAMETER;
        };
        let (Some(client), Some(session)) = (self.client.as_ref(), self.session.as_mut()) else {
            return Error::ERR_UNCONFIGURED;
        };
        let mut link = NetLink(client);
        let sent = if request {
            session.request_ownership(entity, &mut link)
        } else {
            session.release_ownership(entity, &mut link)
        };
        if sent {
            Error::OK
        } else {
            Error::ERR_UNCONFIGURED
        }
    }

    fn emit_ownership(&mut self, ev: &ownership::OwnershipEvent) {
        let id = i64::from(ev.entity);
        let holder = ev.holder.map_or(-1, i64::from);
        let reason = GString::from(ev.reason.as_str());
        match ev.state {
            OwnershipState::Granted => self.signals().ownership_granted().emit(id, holder),
            OwnershipState::Denied => {
                self.signals().ownership_denied().emit(id, &reason, holder);
            }
            OwnershipState::Released => self.signals().ownership_released().emit(id, &reason),
            OwnershipState::Revoked => self.signals().ownership_revoked().emit(id, &reason),
        }
    }

    /// Turns the session's events into nodes and signals.
    fn flush_events(&mut self) {
        let mut buf = std::mem::take(&mut self.events);
        if let Some(s) = self.session.as_mut() {
            buf.extend(std::iter::from_fn(|| s.poll_event()));
        }
        for ev in buf.drain(..) {
            match ev {
                WorldEvent::Connected { zone } => {
                    self.signals().connected().emit(i64::from(zone));
                }
                WorldEvent::AvatarSpawned { id, zone } => {
                    self.signals()
                        .avatar_spawned()
                        .emit(i64::from(id), i64::from(zone));
                }
                WorldEvent::Entered(id) => {
                    let node = self.spawn_node(id);
                    self.signals().entity_entered().emit(i64::from(id), &node);
                }
                WorldEvent::Updated(id) => {
                    let at = self.get_entity_position(i64::from(id));
                    self.signals().entity_updated().emit(i64::from(id), at);
                }
                WorldEvent::Exited(id) => {
                    if let Some(mut n) = self.nodes.remove(&id) {
                        n.node.queue_free();
                    }
                    self.signals().entity_exited().emit(i64::from(id));
                }
                WorldEvent::CommandsRefused(counts) => {
                    let mut d = VarDictionary::new();
                    for (reason, n) in counts {
                        d.set(reason.as_str(), n as i64);
                    }
                    self.signals().command_refused().emit(&d);
                }
                WorldEvent::Ownership(ev) => self.emit_ownership(&ev),
                WorldEvent::ZoneChanged { zone } => {
                    self.signals().zone_changed().emit(i64::from(zone));
                }
                WorldEvent::AssetPlaced { request, entity } => {
                    self.signals()
                        .asset_placed()
                        .emit(i64::from(request), i64::from(entity));
                }
                WorldEvent::AssetRefused { request, reason } => {
                    self.signals()
                        .asset_refused()
                        .emit(i64::from(request), &GString::from(reason.as_str()));
                }
                WorldEvent::AvatarMoved(moved) => self.start_follow(moved),
                WorldEvent::Property {
                    entity,
                    word,
                    value,
                } => {
                    let class = self.visible(i64::from(entity)).map(|v| v.class);
                    if let (Some(class), Some(n)) = (class, self.nodes.get_mut(&entity)) {
                        let m = self.replication_manifest.as_ref();
                        properties::set_on_node(m, &mut n.node, class, word, value);
                    }
                    self.signals().property_changed().emit(
                        i64::from(entity),
                        i64::from(word),
                        i64::from(value),
                    );
                }
                WorldEvent::BaselineDone { tick } => {
                    self.signals()
                        .baseline_done()
                        .emit(i64::try_from(tick).unwrap_or(i64::MAX));
                }
                WorldEvent::Disconnected(reason) => {
                    self.walker.stop();
                    self.signals()
                        .disconnected()
                        .emit(&GString::from(reason.as_str()));
                }
            }
        }
        self.events = buf;
    }

    fn scene_for(&self, id: u32, class: u8) -> Option<Gd<PackedScene>> {
        let own = self.session.as_ref().and_then(|s| s.avatar()) == Some(id);
        if own && let Some(s) = &self.avatar_scene {
            return Some(s.clone());
        }
        self.entity_scenes
            .get(i64::from(class))
            .and_then(|v| v.try_to::<Gd<PackedScene>>().ok())
            .or_else(|| self.default_entity_scene.clone())
    }

    /// A new child for entity `id`, placed at its newest position.
    fn spawn_node(&mut self, id: u32) -> Gd<Node> {
        let (class, at) = self
            .session
            .as_ref()
            .and_then(|s| s.visible(id))
            .map_or((0, [0.0; 3]), |v| (v.class, v.track.last().position));
        let mut node = match self.scene_for(id, class).and_then(|s| s.instantiate()) {
            Some(n) => n,
            None => {
                let mesh = self
                    .sphere
                    .get_or_insert_with(|| {
                        let mut s = SphereMesh::new_gd();
                        s.set_radius(0.25);
                        s.set_height(0.5);
                        s.upcast()
                    })
                    .clone();
                let mut m = MeshInstance3D::new_alloc();
                m.set_mesh(&mesh);
                m.upcast()
            }
        };
        node.set_name(&format!("Entity_{id}"));
        if let Some(s) = self.session.as_ref() {
            let m = self.replication_manifest.as_ref();
            for (word, value) in s.properties(id) {
                properties::set_on_node(m, &mut node, class, word, value);
            }
        }
        let mut spatial = node.clone().try_cast::<Node3D>().ok();
        if let Some(n) = spatial.as_mut() {
            n.set_position(to_vec3(at));
        }
        self.base_mut().add_child(&node);
        self.nodes.insert(
            id,
            EntityNode {
                node: node.clone(),
                spatial,
            },
        );
        node
    }

    /// Places every entity node at its interpolated position.
    fn place_nodes(&mut self, now: u64) {
        let delay = self.interpolation_delay.max(0.0);
        let Some(s) = self.session.as_mut() else {
            return;
        };
        let Some(t) = s.render_tick(now, delay) else {
            return;
        };
        for (id, n) in self.nodes.iter_mut() {
            if let (Some(v), Some(sp)) = (s.visible(*id), n.spatial.as_mut()) {
                sp.set_position(to_vec3(v.track.at(t)));
            }
        }
    }
}
