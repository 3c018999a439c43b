//! One simulated player as a tokio task: joins the zone that owns its position (hello with a
//! join token, welcome ack, spawn), walks its [`Walk`] sending position upserts at its command
//! rate, applies and acknowledges every replication packet with a [`ClientMirror`], and
//! measures what it sees ([`PlayerStats`]). When its avatar migrates it follows it as a game
//! client does: while the hand-off runs the zone refuses its commands with `not_here`; once it
//! completes the zone sends `avatar_moved` with a follow ticket, and the player claims the same
//! avatar in the zone it moved to. Only when no `avatar_moved` comes within [`FOLLOW_WAIT`] of
//! the first `not_here` does it join the zone that owns its position and spawn a new avatar.
//!
//! Thousands of these share one runtime; a player costs one task, its client's tasks and one
//! mirror. Nothing on the packet path allocates except the event bytes the client hands over.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fabric_core::client_view::wire::{ACK_LEN, PACKET_KIND};
use fabric_core::client_view::{Applied, ClientMirror, ReplicationConfig};
use fabric_core::command_gate::{COMMAND_FRAME_LEN, command_frame};
use fabric_core::config::V_MAX_METRES_PER_SECOND;
use fabric_core::coords::{Micros, Vec3};
use fabric_core::entity_row::quantize_velocity;
use fabric_core::player_command::{PlayerCommand, PlayerPacket};
use fabric_core::session_control::ControlMessage;
use fabric_net::{Client, ClientEvent};
use tokio::time::{Instant, MissedTickBehavior, interval, sleep_until};

use crate::desync::compare;
use crate::path::Walk;
use crate::stats::{Live, NEAREST, PlayerStats};
use crate::target::Target;
use crate::windows::WindowPlan;

/// How one player behaves.
#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    /// Position commands per second.
    pub command_hz: f64,
    /// The zones' tick rate (for the delay estimate).
    pub tick_hz: f64,
    /// Walking speed, metres per second.
    pub speed_m_s: f64,
    /// Share of players that walk in crowds (0..=1).
    pub crowd: f64,
    /// Seed of the walks.
    pub seed: u64,
    /// How long a join may take before it counts as failed.
    pub join_timeout: Duration,
    /// Failed sessions in a row after which the player gives up (one retry a second, the
    /// zone's address asked of the registry again before each).
    pub max_failures: u32,
    /// The windows before and after a fault in which the player also counts its updates
    /// ([`crate::windows`]).
    pub windows: Option<WindowPlan>,
}

/// How long a player whose commands come back `not_here` waits for `avatar_moved` before it
/// joins the zone that owns its position instead (and spawns a new avatar there).
const FOLLOW_WAIT: Duration = Duration::from_secs(3);

/// An avatar to claim in the zone it moved to (`avatar_moved`).
struct Follow {
    zone: u8,
    id: u32,
    ticket: String,
}

/// How a session ended.
enum End {
    /// The run is over.
    Deadline,
    /// The reconnect storm: drop the session and join again at once.
    Storm,
    /// The avatar left this zone: join again where it is.
    Moved,
    /// The zone said where the avatar went (`avatar_moved`): claim it there with the ticket.
    Followed(Follow),
    /// The spawn point belongs to another zone.
    Elsewhere(u8),
    /// The player stalls: it stops reading and sending, its session held open ([`crate::stall`]).
    Stalled,
}

/// The zone to join next for a player walking `walk` ([`Target::join_zone`]); `None` (an
/// error counted) when there is none.
fn next_zone(target: &Target, walk: &mut Walk, stats: &mut PlayerStats, live: &Live) -> Option<u8> {
    match target.join_zone(walk) {
        Ok(z) => Some(z),
        Err(e) => {
            stats.error(e.to_string());
            live.errors.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// Runs player `index` against `target` until `deadline`; returns what it measured. At
/// `storm` (the reconnect storm), a player that holds an avatar drops its session and joins
/// again at once ([`PlayerStats::storm_recovery_s`] measures how long it took). At `stall`
/// the player stops reading and sending and holds its session so until the end
/// ([`crate::stall`]).
pub async fn run(
    index: u32,
    target: Arc<Target>,
    how: Behaviour,
    live: Arc<Live>,
    deadline: Instant,
    storm: Option<Instant>,
    stall: Option<Instant>,
) -> PlayerStats {
    let mut stats = PlayerStats::new(index);
    let mut walk = Walk::plan(how.seed, index, target.half_m, how.crowd, how.speed_m_s);
    let Some(mut zone) = next_zone(&target, &mut walk, &mut stats, &live) else {
        return stats;
    };
    let mut failures = 0;
    let mut follow: Option<Follow> = None;
    while Instant::now() < deadline {
        let storm = storm.filter(|_| stats.storm_dropped_at.is_none());
        let joins_before = stats.joins;
        let mut s = Session::new(index, &target, how, &live, &mut stats);
        let next = s
            .run(zone, &mut walk, deadline, storm, stall, follow.take())
            .await;
        match next {
            Ok(End::Deadline | End::Stalled) => break,
            Ok(End::Storm) => {
                stats.storm_dropped_at = Some(Instant::now());
                let Some(z) = next_zone(&target, &mut walk, &mut stats, &live) else {
                    break;
                };
                zone = z;
            }
            Ok(End::Moved) => {
                stats.handoffs += 1;
                let Some(z) = next_zone(&target, &mut walk, &mut stats, &live) else {
                    break;
                };
                zone = z;
            }
            Ok(End::Followed(f)) if usize::from(f.zone) < target.zones.len() => {
                stats.handoffs += 1;
                zone = f.zone;
                follow = Some(f);
            }
            Ok(End::Followed(f)) => {
                stats.error(format!(
                    "followed to zone {}, which the fabric does not have",
                    f.zone
                ));
                live.errors.fetch_add(1, Ordering::Relaxed);
                break;
            }
            Ok(End::Elsewhere(z))
                if usize::from(z) < target.zones.len() && target.gateway.is_none() =>
            {
                zone = z
            }
            Ok(End::Elsewhere(z)) => {
                stats.error(format!("sent to zone {z}, which the fabric does not have"));
                live.errors.fetch_add(1, Ordering::Relaxed);
                break;
            }
            Err(e) => {
                if stats.joins > 0 && stats.lost_at.is_none() {
                    stats.lost_at = Some(Instant::now());
                }
                stats.error(e);
                live.errors.fetch_add(1, Ordering::Relaxed);
                failures += 1;
                if failures >= how.max_failures {
                    break;
                }
                // Not a storm of retries: one a second.
                sleep_until((Instant::now() + Duration::from_secs(1)).min(deadline)).await;
                let Some(z) = next_zone(&target, &mut walk, &mut stats, &live) else {
                    break;
                };
                zone = z;
                // A zone that restarted registered anew (new certificate and shard id).
                if let Err(e) = target.refresh(zone).await {
                    stats.error(e.to_string());
                    live.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if stats.joins > joins_before {
            failures = 0;
        }
    }
    if stats.lost_at.take().is_some() {
        stats.outages_unrecovered += 1;
    }
    stats
}

/// One session with one zone.
struct Session<'a> {
    index: u32,
    target: &'a Target,
    how: Behaviour,
    live: &'a Live,
    stats: &'a mut PlayerStats,
    avatar: u32,
    mirror: ClientMirror,
    last_own_tick: Option<u32>,
    min_offset: f64,
    epoch: Instant,
    zone: u8,
    /// The number of the zone reading last compared ([`crate::desync`]).
    compared_reading: u64,
    /// The ack of the newest packet, not sent yet: it rides in the next command's datagram
    /// when commands go out at least once a tick ([`Session::coalesces_acks`]).
    pending_ack: Option<[u8; ACK_LEN]>,
}

impl<'a> Session<'a> {
    fn new(
        index: u32,
        target: &'a Target,
        how: Behaviour,
        live: &'a Live,
        stats: &'a mut PlayerStats,
    ) -> Self {
        let cfg = ReplicationConfig::default();
        Self {
            index,
            target,
            how,
            live,
            stats,
            avatar: 0,
            mirror: ClientMirror::new(cfg.max_entities, cfg.mtu),
            last_own_tick: None,
            min_offset: f64::INFINITY,
            epoch: Instant::now(),
            zone: 0,
            compared_reading: 0,
            pending_ack: None,
        }
    }

    async fn run(
        &mut self,
        zone: u8,
        walk: &mut Walk,
        deadline: Instant,
        storm: Option<Instant>,
        stall: Option<Instant>,
        follow: Option<Follow>,
    ) -> Result<End, String> {
        self.zone = zone;
        // A new session: its zone numbers packets and handles afresh, so the last session's
        // view would refuse them (stale sequence numbers, enters on handles it still holds).
        self.mirror.clear();
        self.pending_ack = None;
        let joined = match follow {
            // The avatar moved here: claim it with the ticket (no token, no new avatar).
            Some(f) => {
                let cfg = self.target.client_config(zone).map_err(|e| e.to_string())?;
                let mut client = Client::connect(cfg);
                let claimed = self.claim(&mut client, f, deadline).await;
                (client, claimed)
            }
            None => {
                let token = self.target.token(zone).await.map_err(|e| e.to_string())?;
                self.stats.storm_step(|p, t| p.token_s = Some(t));
                let cfg = self.target.client_config(zone).map_err(|e| e.to_string())?;
                let mut client = Client::connect(cfg);
                let joined = self
                    .join(&mut client, token, walk.position(), deadline)
                    .await;
                (client, joined)
            }
        };
        let (mut client, joined) = joined;
        let end = match joined {
            Ok(None) => self.play(&mut client, walk, deadline, storm, stall).await,
            Ok(Some(end)) => Ok(end),
            Err(e) => Err(e),
        };
        if let Ok(End::Stalled) = end {
            self.stats.stall = Some(crate::stall::hold(&mut client, deadline).await);
        }
        client.close("load generator: session over");
        end
    }

    /// Claims the avatar `f.id` that moved to this zone (`claim` with the ticket, sent again
    /// every 250 ms until the zone answers `avatar`, `avatar_not_here` included); `None` once
    /// it is this session's.
    async fn claim(
        &mut self,
        client: &mut Client,
        f: Follow,
        deadline: Instant,
    ) -> Result<Option<End>, String> {
        let claim = ControlMessage::Claim {
            id: f.id,
            ticket: f.ticket,
        }
        .encode();
        let mut opening = Opening::new(self.how.join_timeout, deadline);
        loop {
            let bytes = match opening.next(client, "claiming").await? {
                Step::Resend | Step::Connected => {
                    send(client.send_message(claim.clone()))?;
                    continue;
                }
                Step::GaveUp { deadline: true } => return Ok(Some(End::Deadline)),
                Step::GaveUp { deadline: false } => {
                    return Err(format!(
                        "avatar {} not claimed within {:?}",
                        f.id, self.how.join_timeout
                    ));
                }
                Step::Bytes(b) => b,
            };
            self.stats.bytes += bytes.len() as u64;
            match ControlMessage::decode(&bytes) {
                Ok(ControlMessage::Avatar { id, .. }) if id == f.id => {
                    self.avatar = id;
                    return Ok(None);
                }
                // The hand-off may not have reached this zone yet: the claim goes again at
                // the next resend, until the join timeout (as `FabricWorld` does).
                Ok(ControlMessage::Reply { id, result: Err(e) })
                    if id == "claim" && e.starts_with("avatar_not_here") => {}
                Ok(ControlMessage::Reply { id, result: Err(e) }) if id == "claim" => {
                    return Err(format!("claim of avatar {} refused: {e}", f.id));
                }
                Ok(ControlMessage::Error { code, message }) => {
                    return Err(format!("zone error {code}: {message}"));
                }
                _ => {}
            }
        }
    }

    /// Hello, welcome ack, spawn; `None` when the avatar exists.
    async fn join(
        &mut self,
        client: &mut Client,
        token: Option<String>,
        at: [f64; 3],
        deadline: Instant,
    ) -> Result<Option<End>, String> {
        let hello = ControlMessage::Hello {
            id: format!("load-{}", self.index),
            token,
        }
        .encode();
        let spawn = ControlMessage::Spawn {
            at: Some(at.map(|m| (m * 1e6).round() as i64)),
        }
        .encode();
        let mut opening = Opening::new(self.how.join_timeout, deadline);
        let mut welcomed = false;
        loop {
            let bytes = match opening.next(client, "joining").await? {
                Step::Resend if welcomed => {
                    send(client.send_message(spawn.clone()))?;
                    continue;
                }
                Step::Resend => {
                    send(client.send_datagram(&hello))?;
                    continue;
                }
                Step::Connected => {
                    self.stats.storm_step(|p, t| p.connected_s = Some(t));
                    send(client.send_datagram(&hello))?;
                    continue;
                }
                Step::GaveUp { deadline: true } => return Ok(Some(End::Deadline)),
                Step::GaveUp { deadline: false } => {
                    return Err(format!("no avatar within {:?}", self.how.join_timeout));
                }
                Step::Bytes(b) => b,
            };
            self.stats.bytes += bytes.len() as u64;
            match ControlMessage::decode(&bytes) {
                Ok(ControlMessage::Welcome { session, .. }) if !welcomed => {
                    self.stats.storm_step(|p, t| p.welcomed_s = Some(t));
                    send(client.send_datagram(&ControlMessage::WelcomeAck { session }.encode()))?;
                    send(client.send_message(spawn.clone()))?;
                    welcomed = true;
                }
                Ok(ControlMessage::Avatar { id, .. }) => {
                    self.stats.storm_step(|p, t| p.avatar_s = Some(t));
                    self.avatar = id;
                    return Ok(None);
                }
                Ok(ControlMessage::AvatarElsewhere { zone, .. }) => {
                    return Ok(Some(End::Elsewhere(u8::try_from(zone).unwrap_or(u8::MAX))));
                }
                Ok(ControlMessage::Reply { result: Err(e), .. }) => {
                    return Err(format!("spawn refused: {e}"));
                }
                Ok(ControlMessage::Error { code, message }) => {
                    return Err(format!("zone error {code}: {message}"));
                }
                _ => {}
            }
        }
    }

    /// Walks and receives until the deadline or the avatar leaves.
    async fn play(
        &mut self,
        client: &mut Client,
        walk: &mut Walk,
        deadline: Instant,
        storm: Option<Instant>,
        stall: Option<Instant>,
    ) -> Result<End, String> {
        self.stats.joins += 1;
        self.live
            .joined
            .fetch_add(u32::from(self.stats.joins == 1), Ordering::Relaxed);
        self.live.connected.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let from_t = self.live.since_start();
        let end = self.play_inner(client, walk, deadline, storm, stall).await;
        self.live.connected.fetch_sub(1, Ordering::Relaxed);
        self.stats.seconds += started.elapsed().as_secs_f64();
        if let Some(plan) = &self.how.windows {
            let run_end = (deadline - self.live.started).as_secs_f64();
            let to_t = self.live.since_start();
            self.stats.window_time(plan, from_t, to_t, run_end);
        }
        end
    }

    async fn play_inner(
        &mut self,
        client: &mut Client,
        walk: &mut Walk,
        deadline: Instant,
        storm: Option<Instant>,
        stall: Option<Instant>,
    ) -> Result<End, String> {
        let period = Duration::from_secs_f64(1.0 / self.how.command_hz.max(0.1));
        let mut commands = interval(period);
        commands.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_step = Instant::now();
        // Since when the zone refuses commands with `not_here`: the avatar is being handed
        // over, and `avatar_moved` (to follow it) comes once the hand-off completes.
        let mut handing_over: Option<Instant> = None;
        let mut frame = PlayerPacket {
            global_id: self.avatar,
            position: [Micros::ZERO; 3],
            velocity: [0; 3],
            acceleration: [0; 3],
            hlc: 0,
            command: PlayerCommand::PositionUpsert,
        };
        loop {
            let ev = tokio::select! {
                ev = client.next_event() => ev,
                _ = commands.tick() => {
                    let now = Instant::now();
                    let at = walk.advance((now - last_step).as_secs_f64());
                    last_step = now;
                    frame.position = at.map(|m| Micros::from_num(m * 1e6));
                    frame.velocity = walk.velocity().map(|v| self.quantized(v));
                    match self.pending_ack.take() {
                        // One datagram: the ack, then the command (the zone splits them).
                        Some(ack) => {
                            let mut both = [0u8; ACK_LEN + COMMAND_FRAME_LEN];
                            both[..ACK_LEN].copy_from_slice(&ack);
                            both[ACK_LEN..].copy_from_slice(&command_frame(&frame));
                            send(client.send_datagram(&both))?;
                        }
                        None => send(client.send_datagram(&command_frame(&frame)))?,
                    }
                    self.stats.commands_sent += 1;
                    continue;
                }
                _ = sleep_until(deadline) => return Ok(End::Deadline),
                // No `avatar_moved` after the refusals: join where the avatar is now.
                _ = sleep_until(handing_over.map_or(deadline, |t| t + FOLLOW_WAIT)),
                    if handing_over.is_some() => return Ok(End::Moved),
                _ = sleep_until(storm.unwrap_or(deadline)), if storm.is_some() => {
                    return Ok(End::Storm);
                }
                _ = sleep_until(stall.unwrap_or(deadline)), if stall.is_some() => {
                    return Ok(End::Stalled);
                }
            };
            let bytes = match ev {
                Some(ClientEvent::Datagram(b)) => b,
                Some(ClientEvent::Message(b)) => b.into(),
                Some(other) => return Err(format!("session ended: {other:?}")),
                None => return Err("session ended".into()),
            };
            self.stats.bytes += bytes.len() as u64;
            self.live
                .bytes
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            if bytes.first() == Some(&PACKET_KIND) {
                self.replication(client, &bytes)?;
                continue;
            }
            match ControlMessage::decode(&bytes) {
                Ok(ControlMessage::CommandsRefused { counts }) => {
                    for (reason, n) in &counts {
                        if reason == "not_here" {
                            // Keep the session: the old zone tells where the avatar went
                            // (`avatar_moved`, below). Leaving now would orphan it there.
                            // Through a gateway, the gateway follows it (`zone_changed`).
                            if self.target.gateway.is_none() {
                                handing_over.get_or_insert_with(Instant::now);
                            }
                        } else {
                            self.stats.commands_refused += n;
                        }
                    }
                }
                Ok(ControlMessage::Error { code, message }) => {
                    return Err(format!("zone error {code}: {message}"));
                }
                // The gateway followed the avatar to another zone: that zone's fresh view
                // numbers its packets and handles from zero, as a new session's.
                Ok(ControlMessage::ZoneChanged { id, zone }) if id == self.avatar => {
                    self.mirror.clear();
                    self.pending_ack = None;
                    self.last_own_tick = None;
                    self.min_offset = f64::INFINITY;
                    self.zone = u8::try_from(zone).unwrap_or(u8::MAX);
                    self.stats.handoffs += 1;
                    handing_over = None;
                }
                // The zone handed the avatar on and says where: follow it there. (Commands
                // the old zone gets meanwhile are refused as `not_joined`: it no longer
                // plays this session.)
                Ok(ControlMessage::AvatarMoved {
                    id, zone, ticket, ..
                }) if id == self.avatar => {
                    return Ok(End::Followed(Follow {
                        zone: u8::try_from(zone).unwrap_or(u8::MAX),
                        id,
                        ticket,
                    }));
                }
                _ => {}
            }
        }
    }

    /// A velocity component (metres per second) as the packet carries it: micrometres per
    /// tick, quantised against the zones' `v_max`. The zone moves the avatar by it each tick
    /// between commands, as a real client's dead reckoning would.
    fn quantized(&self, v_m_s: f64) -> i16 {
        let per_tick = 1e6 / self.how.tick_hz;
        let v_max_um = (V_MAX_METRES_PER_SECOND as f64 * per_tick) as i64;
        quantize_velocity(Micros::from_num(v_m_s * per_tick), v_max_um)
    }

    /// Whether acks wait for the next command (sent at least once a tick, so an ack is at
    /// most a tick late) instead of going out in a datagram of their own: half the datagrams
    /// a zone receives from a walking player.
    fn coalesces_acks(&self) -> bool {
        self.how.command_hz >= self.how.tick_hz
    }

    /// Applies one replication packet, acks it and measures it.
    fn replication(&mut self, client: &Client, bytes: &[u8]) -> Result<(), String> {
        let arrived = self.epoch.elapsed().as_secs_f64();
        match self.mirror.apply(bytes) {
            Ok(Applied::Applied { .. }) => {}
            Ok(Applied::Stale) => return Ok(()),
            Err(e) => {
                self.stats
                    .error(format!("packet refused by the mirror: {e}"));
                self.live.errors.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        }
        if let Some(ack) = self.mirror.ack() {
            if self.coalesces_acks() {
                self.pending_ack = Some(ack.encode());
            } else {
                send(client.send_datagram(&ack.encode()))?;
            }
        }
        self.stats.packets += 1;
        self.live.packets.fetch_add(1, Ordering::Relaxed);
        // The mirror validated the header: bytes 2..6 are the tick.
        let tick = u32::from_le_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
        let offset = arrived - f64::from(tick) / self.how.tick_hz;
        self.min_offset = self.min_offset.min(offset);
        self.stats.delays.record((offset - self.min_offset) * 1e3);
        let Some(own) = self.mirror.get(self.avatar) else {
            return Ok(());
        };
        if own.tick == tick {
            if let Some(dropped) = self.stats.storm_dropped_at
                && self.stats.storm_recovery_s.is_none()
            {
                self.stats.storm_recovery_s = Some(dropped.elapsed().as_secs_f64());
            }
            let t = self.live.since_start();
            if let Some(lost) = self.stats.lost_at.take() {
                self.stats.outages.push(lost.elapsed().as_secs_f64());
                self.stats.outage_ends_s.push(t);
            }
            self.stats.own_updates += 1;
            self.live.own_updates.fetch_add(1, Ordering::Relaxed);
            let gap = self.last_own_tick.map(|last| tick.wrapping_sub(last));
            if let Some(gap) = gap {
                self.stats.gaps.record(f64::from(gap));
                self.stats.max_gap_ticks = self.stats.max_gap_ticks.max(gap);
                self.live.gap(gap);
            }
            if let Some(plan) = &self.how.windows {
                self.stats.window_update(plan, t, gap);
            }
            self.last_own_tick = Some(tick);
        }
        self.stats.nearest_updates +=
            nearest_updated_share(&self.mirror, &own.position, self.avatar, tick);
        self.compare_with_zone(tick);
        Ok(())
    }

    /// When the zone's newest `/state` reading is of `tick` and not compared yet, compares the
    /// entities this packet updated with it ([`crate::desync`]).
    fn compare_with_zone(&mut self, tick: u32) {
        let Some(truths) = &self.target.truths else {
            return;
        };
        let Some((reading, truth)) = truths.get(self.zone) else {
            return;
        };
        if reading == self.compared_reading || truth.tick != tick {
            return;
        }
        self.compared_reading = reading;
        self.stats.compared.add(compare(&self.mirror, &truth));
    }
}

/// What happened next while a session opens ([`Opening::next`]).
enum Step {
    /// The session is open: send the first request.
    Connected,
    /// 250 ms without an answer (once open): send the request again.
    Resend,
    /// A datagram or message from the zone.
    Bytes(Vec<u8>),
    /// The time for opening ran out; `deadline` when it was the end of the run.
    GaveUp {
        /// Whether the run's end was the limit.
        deadline: bool,
    },
}

/// The clock of a session being opened (join or claim): its resend timer and when to give up.
struct Opening {
    connected: bool,
    resend: tokio::time::Interval,
    give_up: Instant,
    deadline: Instant,
}

impl Opening {
    fn new(timeout: Duration, deadline: Instant) -> Self {
        let mut resend = interval(Duration::from_millis(250));
        resend.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            connected: false,
            resend,
            give_up: (Instant::now() + timeout).min(deadline),
            deadline,
        }
    }

    /// The next step; an error when the session ended (`while` names what it was doing).
    async fn next(&mut self, client: &mut Client, while_: &str) -> Result<Step, String> {
        loop {
            let ev = tokio::select! {
                ev = client.next_event() => ev,
                _ = self.resend.tick() => {
                    if self.connected {
                        return Ok(Step::Resend);
                    }
                    continue;
                }
                _ = sleep_until(self.give_up) => {
                    return Ok(Step::GaveUp { deadline: self.give_up >= self.deadline });
                }
            };
            return match ev {
                Some(ClientEvent::Connected { .. }) => {
                    self.connected = true;
                    Ok(Step::Connected)
                }
                Some(ClientEvent::Datagram(b)) => Ok(Step::Bytes(b.to_vec())),
                Some(ClientEvent::Message(b)) => Ok(Step::Bytes(b)),
                Some(other) => Err(format!("session ended while {while_}: {other:?}")),
                None => Err(format!("session ended while {while_}")),
            };
        }
    }
}

/// Of the [`NEAREST`] entities nearest to `me` (the avatar `own` excluded), the share whose
/// state is of `tick`; 0 when none is held. No allocation: a fixed array of the best so far.
fn nearest_updated_share(mirror: &ClientMirror, me: &Vec3, own: u32, tick: u32) -> f64 {
    let mut best = [(f64::INFINITY, false); NEAREST];
    for e in mirror.iter() {
        if e.global_id == own {
            continue;
        }
        let d: f64 = (0..3)
            .map(|k| (e.position[k] - me[k]).to_num::<f64>().powi(2))
            .sum();
        if d < best[NEAREST - 1].0 {
            let mut k = NEAREST - 1;
            while k > 0 && best[k - 1].0 > d {
                best[k] = best[k - 1];
                k -= 1;
            }
            best[k] = (d, e.tick == tick);
        }
    }
    let held = best.iter().filter(|b| b.0.is_finite()).count();
    if held == 0 {
        return 0.0;
    }
    best.iter().filter(|b| b.1).count() as f64 / held as f64
}

fn send(r: Result<(), fabric_net::NetError>) -> Result<(), String> {
    r.map_err(|e| format!("send failed: {e}"))
}
