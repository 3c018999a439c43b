//! A player client in Rust for the replication tests: joins a zone over WebTransport on
//! loopback (`hello`, with a join token when given, `welcome_ack`, `spawn`), walks its avatar
//! with position upserts, decodes every replication packet with [`ClientMirror`] and acks it
//! (`docs/session-protocol.md`, "Replication frame"). It keeps what it held after each packet,
//! by tick, so a test can compare it with the zones' own `/state` at the same tick.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fabric_core::client_view::wire::PACKET_KIND;
use fabric_core::client_view::{Applied, ClientMirror, MirrorEntity, ReplicationConfig};
use fabric_core::command_gate::command_frame;
use fabric_core::coords::{Micros, Vec3};
use fabric_core::player_command::{PlayerCommand, PlayerPacket};
use fabric_core::session_control::ControlMessage;
use fabric_net::{CertHash, Client, ClientConfig, ClientEvent};

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
    /// `ownership` events received, oldest first.
    pub ownership: Vec<ControlMessage>,
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
        };
        let spawn = ControlMessage::Spawn {
            at: Some(at.map(|m| (m * 1e6).round() as i64)),
        }
        .encode();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut welcomed = false;
        let mut last_spawn: Option<Instant> = None;
        while Instant::now() < deadline {
            let Some(ev) = me.client.try_next_event() else {
                if welcomed && last_spawn.is_none_or(|t| t.elapsed() > Duration::from_millis(500)) {
                    me.client.send_message(spawn.clone())?;
                    last_spawn = Some(Instant::now());
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
                    me.client.send_datagram(&hello.encode())?;
                    continue;
                }
                ClientEvent::Datagram(b) => b.to_vec(),
                ClientEvent::Message(b) => b,
                other => bail!("session ended while joining: {other:?}"),
            };
            match ControlMessage::decode(&bytes) {
                Ok(ControlMessage::Welcome { session, .. }) if !welcomed => {
                    let ack = ControlMessage::WelcomeAck { session }.encode();
                    me.client.send_datagram(&ack)?;
                    me.session = session;
                    welcomed = true;
                }
                Ok(ControlMessage::Avatar { id, .. }) => {
                    me.avatar = id;
                    return Ok(Joined::Player(Box::new(me)));
                }
                Ok(ControlMessage::AvatarElsewhere { zone, .. }) => {
                    return Ok(Joined::Elsewhere(zone));
                }
                Ok(ControlMessage::Reply { result: Err(e), .. }) => bail!("spawn refused: {e}"),
                _ => {}
            }
        }
        bail!("no answer to spawn within 20 s")
    }

    /// Moves the avatar to `at` (metres), at rest, with a position upsert.
    pub fn walk_to(&self, at: [f64; 3]) -> anyhow::Result<()> {
        self.move_entity(self.avatar, at)
    }

    /// Sends a control message on the reliable channel.
    pub fn send_control(&self, msg: &ControlMessage) -> anyhow::Result<()> {
        self.client.send_message(msg.encode())?;
        Ok(())
    }

    /// Moves entity `global_id` (the avatar or an entity this player holds) to `at` (metres),
    /// at rest, with a position upsert.
    pub fn move_entity(&self, global_id: u32, at: [f64; 3]) -> anyhow::Result<()> {
        let p = PlayerPacket {
            global_id,
            position: at.map(|m| Micros::from_num(m * 1e6)),
            velocity: [0; 3],
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
                Ok(m @ ControlMessage::Ownership { .. }) => self.ownership.push(m),
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
            self.client.send_datagram(&ack.encode())?;
        }
        self.packets += 1;
        let tick = u32::from_le_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
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

/// Distance in metres between two positions.
pub fn distance_m(a: &Vec3, b: &Vec3) -> f64 {
    (0..3)
        .map(|k| (a[k] - b[k]).to_num::<f64>().powi(2))
        .sum::<f64>()
        .sqrt()
        / 1e6
}
