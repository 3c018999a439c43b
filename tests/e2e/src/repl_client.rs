//! A player client in Rust for the replication tests: joins a zone over WebTransport on
//! loopback (`hello`, with a join token when given, `welcome_ack`, `spawn`), walks its avatar
//! with position upserts, decodes every replication packet with [`ClientMirror`] and acks it
//! (`docs/session-protocol.md`, "Replication frame"). It keeps what it held after each packet,
//! by tick, so a test can compare it with the zones' own `/state` at the same tick.
//!
//! Across zones: through the gateway, `zone_changed` says the gateway followed the avatar and
//! the packets now come from the new zone's fresh view, so the mirror starts again. Connected
//! to a zone directly with [`ReplClient::follow`] on, `avatar_moved` makes the client open a
//! session to the zone it names, `claim` the avatar there with the ticket, and carry on.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fabric_core::client_view::wire::PACKET_KIND;
use fabric_core::client_view::{Applied, ClientMirror, MirrorEntity, ReplicationConfig};
use fabric_core::command_gate::command_frame;
use fabric_core::config::V_MAX_METRES_PER_SECOND;
use fabric_core::coords::{Micros, Vec3};
use fabric_core::entity_row::quantize_velocity;
use fabric_core::player_command::{PlayerCommand, PlayerPacket};
use fabric_core::session_control::ControlMessage;
use fabric_net::{CertHash, Client, ClientConfig, ClientEvent, NetError};

/// Packets of history kept (5 s at 20 Hz).
pub const HISTORY: usize = 100;

/// What the mirror held right after applying the packet of one tick.
#[derive(Debug, Clone)]
pub struct Held {
    /// The packet's tick (low 32 bits of the zone tick).
    pub tick: u32,
    /// Every entity held then.
    pub entities: Vec<MirrorEntity>,
}

/// A joined player and what it received.
pub struct ReplClient {
    client: Client,
    /// The session id the zone gave.
    pub session: u64,
    /// The avatar's global id.
    pub avatar: u32,
    /// The client's copy of what it sees.
    pub mirror: ClientMirror,
    /// What was held after each of the last [`HISTORY`] applied packets, oldest first.
    pub history: VecDeque<Held>,
    /// Replication bytes received.
    pub bytes: u64,
    /// Replication packets applied.
    pub packets: u64,
    /// Entity records (enters and updates) in them.
    pub records: u64,
    /// Packets refused by the mirror, with the reason.
    pub refused: Vec<String>,
    /// `commands_refused` reports received.
    pub reports: usize,
    /// Other control messages received (debug form), for the test's messages.
    pub other: Vec<String>,
    /// `ownership` events received, oldest first (changes and answers; the holders sent with
    /// the baseline are in [`Self::baseline_holders`]).
    pub ownership: Vec<ControlMessage>,
    /// Holders the zone sent with the late-join baseline (entity, holder), oldest first.
    pub baseline_holders: Vec<(u32, Option<u32>)>,
    /// `baseline_done` markers received (the zone tick of each).
    pub baselines: Vec<u64>,
    /// Reconnect by itself when told `avatar_moved` (a client connected to a zone directly).
    pub follow: bool,
    /// The zone serving the avatar, as last told (`avatar`, `zone_changed`, a claim).
    pub zone: u32,
    /// Zone changes seen (`zone_changed` through the gateway, or claims made by itself).
    pub zone_changes: u32,
    /// Ticks at which the own avatar was updated, oldest first (the last 4,096).
    pub own_ticks: VecDeque<u32>,
    /// The zone and ticket of the last `avatar_moved` received.
    pub last_ticket: Option<(u32, String)>,
    /// `placed` answers received, oldest first: (request, entity, asset).
    pub placed: Vec<(u32, u32, u64)>,
    /// `place_refused` answers received, oldest first: (request, reason).
    pub place_refused: Vec<(u32, String)>,
    token: Option<String>,
}

/// The answer to a join: a player, or the zone that owns the spawn point.
pub enum Joined {
    /// The avatar was made here.
    Player(Box<ReplClient>),
    /// The point is in this other zone's range.
    Elsewhere(u32),
}

impl ReplClient {
    /// Connects to the zone on loopback `port` pinned by `cert_hash`, says `hello` (with
    /// `token`), acknowledges the welcome and asks to spawn at `at` (metres) until answered.
    pub fn join(
        port: u16,
        cert_hash: &str,
        token: Option<String>,
        at: [f64; 3],
    ) -> anyhow::Result<Joined> {
        let url = format!("https://127.0.0.1:{port}/wt");
        let pin = CertHash::parse(cert_hash).context("certificate hash")?;
        let client = Client::connect(ClientConfig::new(url, pin));
        let cfg = ReplicationConfig::default();
        let mut me = ReplClient {
            client,
            session: 0,
            avatar: 0,
            mirror: ClientMirror::new(cfg.max_entities, cfg.mtu),
            history: VecDeque::with_capacity(HISTORY),
            bytes: 0,
            packets: 0,
            records: 0,
            refused: Vec::new(),
            reports: 0,
            other: Vec::new(),
            ownership: Vec::new(),
            baseline_holders: Vec::new(),
            baselines: Vec::new(),
            follow: false,
            zone: 0,
            zone_changes: 0,
            own_ticks: VecDeque::new(),
            last_ticket: None,
            placed: Vec::new(),
            place_refused: Vec::new(),
            token: token.clone(),
        };
        let spawn = ControlMessage::Spawn {
            at: Some(at.map(|m| (m * 1e6).round() as i64)),
        }
        .encode();
        match request(&mut me.client, token, &spawn, Duration::from_secs(20))? {
            (session, ControlMessage::Avatar { id, zone }) => {
                me.session = session;
                me.avatar = id;
                me.zone = zone;
                Ok(Joined::Player(Box::new(me)))
            }
            (_, ControlMessage::AvatarElsewhere { zone, .. }) => Ok(Joined::Elsewhere(zone)),
            (_, other) => bail!("spawn answered with {other:?}"),
        }
    }

    /// Takes the avatar back in the zone `avatar_moved` named: a new session there, `claim`
    /// with the ticket, then the old session is closed and the mirror starts again.
    fn reconnect(
        &mut self,
        zone: u32,
        address: Option<String>,
        cert_hash: Option<String>,
        ticket: String,
    ) -> anyhow::Result<()> {
        let (Some(address), Some(hashes)) = (address, cert_hash) else {
            bail!("avatar_moved to zone {zone} names no address: cannot follow");
        };
        let pins = CertHash::parse_list(&hashes).context("avatar_moved certificate hashes")?;
        let cfg = ClientConfig::pinning(format!("https://{address}/wt"), &pins)
            .context("avatar_moved names no hash")?;
        let mut client = Client::connect(cfg);
        let claim = ControlMessage::Claim {
            id: self.avatar,
            ticket,
        }
        .encode();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match request(
                &mut client,
                self.token.clone(),
                &claim,
                Duration::from_secs(10),
            )? {
                (session, ControlMessage::Avatar { id, zone }) if id == self.avatar => {
                    let old = std::mem::replace(&mut self.client, client);
                    old.close("followed the avatar");
                    self.session = session;
                    self.zone = zone;
                    self.zone_changes += 1;
                    self.restart_mirror();
                    return Ok(());
                }
                (_, ControlMessage::Reply { result: Err(e), .. })
                    if e.starts_with("avatar_not_here") && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                (_, other) => bail!("claim in zone {zone} answered with {other:?}"),
            }
        }
    }

    fn restart_mirror(&mut self) {
        let cfg = ReplicationConfig::default();
        self.mirror = ClientMirror::new(cfg.max_entities, cfg.mtu);
    }

    /// The longest run of ticks without an update of the own avatar among the updates
    /// recorded since tick `from`: (gap in ticks, the tick that ended it).
    pub fn worst_own_gap(&self, from: u32) -> Option<(u32, u32)> {
        let ticks: Vec<u32> = self
            .own_ticks
            .iter()
            .copied()
            .filter(|&t| t >= from)
            .collect();
        ticks
            .windows(2)
            .map(|w| (w[1] - w[0], w[1]))
            .max_by_key(|&(gap, _)| gap)
    }

    /// Moves the avatar to `at` (metres), at rest, with a position upsert.
    pub fn walk_to(&self, at: [f64; 3]) -> anyhow::Result<()> {
        self.walk(at, [0.0; 3])
    }

    /// Sends a control message on the reliable channel.
    pub fn send_control(&self, msg: &ControlMessage) -> anyhow::Result<()> {
        self.client.send_message(msg.encode())?;
        Ok(())
    }

    /// Moves entity `global_id` (the avatar or an entity this player holds) to `at` (metres),
    /// at rest, with a position upsert.
    pub fn move_entity(&self, global_id: u32, at: [f64; 3]) -> anyhow::Result<()> {
        self.upsert(global_id, at, [0.0; 3])
    }

    /// Moves the avatar to `at` (metres) with velocity `mps` (metres per second, for a zone of
    /// the default 20 Hz and 10 m/s `v_max`), with a position upsert. A moving avatar is
    /// replicated at the full rate; one at rest at a quarter of it.
    pub fn walk(&self, at: [f64; 3], mps: [f64; 3]) -> anyhow::Result<()> {
        self.upsert(self.avatar, at, mps)
    }

    /// Sends CMD_INSTANCE_ASSET for `asset` at `at` (metres, rounded to whole micrometres)
    /// with request number `request`, on the reliable stream; the answer arrives in
    /// [`Self::placed`] or [`Self::place_refused`].
    pub fn place(&self, asset: u64, at: [f64; 3], request: u32) -> anyhow::Result<()> {
        let p = PlayerPacket {
            global_id: self.avatar,
            position: at.map(|m| Micros::from_num((m * 1e6).round())),
            velocity: [0; 3],
            acceleration: [0; 3],
            hlc: 0,
            command: PlayerCommand::InstanceAsset {
                asset_id: asset,
                request,
            },
        };
        self.client.send_message(command_frame(&p).to_vec())?;
        Ok(())
    }

    fn upsert(&self, global_id: u32, at: [f64; 3], mps: [f64; 3]) -> anyhow::Result<()> {
        let v_max_um = V_MAX_METRES_PER_SECOND * 1_000_000 / 20;
        let p = PlayerPacket {
            global_id,
            position: at.map(|m| Micros::from_num(m * 1e6)),
            velocity: mps.map(|v| quantize_velocity(Micros::from_num(v * 1e6 / 20.0), v_max_um)),
            acceleration: [0; 3],
            hlc: 0,
            command: PlayerCommand::PositionUpsert,
        };
        self.client.send_datagram(&command_frame(&p))?;
        Ok(())
    }

    /// Handles everything that arrived: applies and acks replication packets, counts the
    /// rest. Returns the packets applied. An ended session is an error.
    pub fn poll(&mut self) -> anyhow::Result<usize> {
        let mut applied = 0;
        while let Some(ev) = self.client.try_next_event() {
            let bytes = match ev {
                ClientEvent::Datagram(b) => b.to_vec(),
                ClientEvent::Message(b) => b,
                other => bail!("session {} ended: {other:?}", self.session),
            };
            if bytes.first() == Some(&PACKET_KIND) {
                self.bytes += bytes.len() as u64;
                applied += usize::from(self.apply(&bytes)?);
                continue;
            }
            match ControlMessage::decode(&bytes) {
                Ok(ControlMessage::CommandsRefused { .. }) => self.reports += 1,
                Ok(ControlMessage::Ownership {
                    entity,
                    holder,
                    reason: Some(r),
                    ..
                }) if r == "baseline" => self.baseline_holders.push((entity, holder)),
                Ok(m @ ControlMessage::Ownership { .. }) => self.ownership.push(m),
                Ok(ControlMessage::Placed {
                    request,
                    entity,
                    asset,
                }) => self.placed.push((request, entity, asset)),
                Ok(ControlMessage::PlaceRefused { request, reason }) => {
                    self.place_refused.push((request, reason))
                }
                Ok(ControlMessage::BaselineDone { tick }) => self.baselines.push(tick),
                // Sent twice (datagram and reliable): the first copy switches.
                Ok(ControlMessage::ZoneChanged { id, zone })
                    if id == self.avatar && zone != self.zone =>
                {
                    self.zone = zone;
                    self.zone_changes += 1;
                    self.restart_mirror();
                }
                Ok(ControlMessage::AvatarMoved {
                    id,
                    zone,
                    address,
                    cert_hash,
                    ticket,
                }) if id == self.avatar => {
                    self.last_ticket = Some((zone, ticket.clone()));
                    if self.follow {
                        self.reconnect(zone, address, cert_hash, ticket)?;
                    } else {
                        self.other.push(format!("avatar_moved to zone {zone}"));
                    }
                }
                Ok(m) => self.other.push(format!("{m:?}")),
                Err(e) => self.other.push(format!("undecodable: {e}")),
            }
        }
        Ok(applied)
    }

    /// Applies one packet and acks it; false when stale or refused.
    fn apply(&mut self, bytes: &[u8]) -> anyhow::Result<bool> {
        match self.mirror.apply(bytes) {
            Ok(Applied::Applied {
                entered, updated, ..
            }) => self.records += (entered + updated) as u64,
            Ok(Applied::Stale) => return Ok(false),
            Err(e) => {
                self.refused.push(e.to_string());
                return Ok(false);
            }
        }
        if let Some(ack) = self.mirror.ack() {
            match self.client.send_datagram(&ack.encode()) {
                // The session closed after this packet arrived: its close event, with the
                // zone's reason, is behind it in the queue and ends the next poll.
                Err(NetError::NotConnected) => {}
                other => other?,
            }
        }
        self.packets += 1;
        let tick = u32::from_le_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
        if self.mirror.get(self.avatar).is_some_and(|e| e.tick == tick) {
            if self.own_ticks.len() == 4096 {
                self.own_ticks.pop_front();
            }
            self.own_ticks.push_back(tick);
        }
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(Held {
            tick,
            entities: self.mirror.iter().collect(),
        });
        Ok(true)
    }

    /// What was held after the packet of `tick` (low 32 bits), if one was applied then.
    pub fn held_at(&self, tick: u64) -> Option<&Held> {
        self.history.iter().find(|h| h.tick == tick as u32)
    }
}

/// Joins the zone on loopback `port` (pinned by `cert_hash`) at `at` and waits (up to 10 s)
/// until `own_updates` replication packets carried the own avatar. Panics when the point is
/// another zone's or the updates do not come: for tests.
pub fn joined_player(port: u16, cert_hash: &str, at: [f64; 3], own_updates: usize) -> ReplClient {
    let mut c = match ReplClient::join(port, cert_hash, None, at).expect("joined") {
        Joined::Player(c) => *c,
        Joined::Elsewhere(z) => panic!("{at:?} is zone {z}'s"),
    };
    let until = Instant::now() + Duration::from_secs(10);
    while c.own_ticks.len() < own_updates {
        assert!(
            Instant::now() < until,
            "no updates of the own avatar in 10 s"
        );
        c.poll().expect("session open");
        std::thread::sleep(Duration::from_millis(5));
    }
    c
}

/// Opens a session to the zone on loopback `port` (pinned by `cert_hash`) and claims avatar
/// `id` with `ticket`; the zone's answer (`avatar`, or an error reply).
pub fn claim(port: u16, cert_hash: &str, id: u32, ticket: &str) -> anyhow::Result<ControlMessage> {
    let pin = CertHash::parse(cert_hash).context("certificate hash")?;
    let mut client = Client::connect(ClientConfig::new(
        format!("https://127.0.0.1:{port}/wt"),
        pin,
    ));
    let req = ControlMessage::Claim {
        id,
        ticket: ticket.to_owned(),
    };
    let (_, answer) = request(&mut client, None, &req.encode(), Duration::from_secs(10))?;
    client.close("done");
    Ok(answer)
}

/// Sends `req` on `client`'s session once it is welcomed (saying `hello` with `token` first),
/// again every 500 ms, until an answer to it comes: `avatar`, `avatar_elsewhere` or an error
/// reply. Returns the session number the welcome gave and the answer.
fn request(
    client: &mut Client,
    token: Option<String>,
    req: &[u8],
    within: Duration,
) -> anyhow::Result<(u64, ControlMessage)> {
    let deadline = Instant::now() + within;
    let mut session = None;
    let mut last: Option<Instant> = None;
    while Instant::now() < deadline {
        let Some(ev) = client.try_next_event() else {
            if session.is_some() && last.is_none_or(|t| t.elapsed() > Duration::from_millis(500)) {
                client.send_message(req.to_vec())?;
                last = Some(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(2));
            continue;
        };
        let bytes = match ev {
            ClientEvent::Connected { .. } => {
                let hello = ControlMessage::Hello {
                    id: "repl".into(),
                    token: token.clone(),
                };
                client.send_datagram(&hello.encode())?;
                continue;
            }
            ClientEvent::Datagram(b) => b.to_vec(),
            ClientEvent::Message(b) => b,
            other => bail!("session ended while joining: {other:?}"),
        };
        match ControlMessage::decode(&bytes) {
            Ok(ControlMessage::Welcome { session: s, .. }) if session.is_none() => {
                client.send_datagram(&ControlMessage::WelcomeAck { session: s }.encode())?;
                session = Some(s);
            }
            Ok(
                m @ (ControlMessage::Avatar { .. }
                | ControlMessage::AvatarElsewhere { .. }
                | ControlMessage::Reply { result: Err(_), .. }),
            ) => return Ok((session.unwrap_or(0), m)),
            _ => {}
        }
    }
    bail!("no answer within {} s", within.as_secs())
}

/// Distance in metres between two positions.
pub fn distance_m(a: &Vec3, b: &Vec3) -> f64 {
    (0..3)
        .map(|k| (a[k] - b[k]).to_num::<f64>().powi(2))
        .sum::<f64>()
        .sqrt()
        / 1e6
}
