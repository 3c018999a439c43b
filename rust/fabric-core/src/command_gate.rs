//! The command gate: every player command a session sends is checked here before the zone
//! applies it.
//!
//! A command travels as a *command frame*: the byte [`FRAME_COMMAND`] (`0x43`, `'C'`) followed by
//! one 100-byte player packet ([`crate::player_command`]), 101 bytes in all, as a datagram or a
//! reliable message. The checks, in order (the first that fails is the reason):
//!
//! 1. **rate** ([`Refusal::RateLimited`]): a token bucket per session, `rate_per_s` tokens a
//!    second up to `burst` (60 and 120 by default); each command takes one. Checked first, so a
//!    flood costs one subtraction per packet and is never decoded.
//! 2. **malformed** ([`Refusal::Malformed`]): not a command frame, or the packet's own decoder
//!    refuses it (length, version, opcode, reserved bytes, ranges).
//! 3. **not joined** ([`Refusal::NotJoined`]): the session has no avatar yet.
//! 4. **authority** ([`Refusal::Authority`]): the packet's entity (and a nudge's target) is neither
//!    the session's avatar nor an entity granted to it ([`Authority`], provided by the zone).
//! 5. **bounds** ([`Refusal::Bounds`]): the position is outside the world bounds.
//! 6. **speed** ([`Refusal::Speed`]): the velocity's magnitude is above `v_max`, or a position
//!    upsert lies further from the session's last accepted position than `v_max` times the
//!    ticks since then plus one, at most `max_gap_ticks` (a quarter second): an idle player
//!    cannot save up distance for a teleport.
//!
//! [`Refusal::NotHere`] is counted by the zone when a valid command names an avatar that has
//! migrated to another zone. A CMD_INSTANCE_ASSET that passed the gate can still be refused by
//! the zone's placement rules ([`crate::asset_placement`]): [`Refusal::PlaceForbidden`] (the
//! player's join token does not grant placing), [`Refusal::UnknownAsset`],
//! [`Refusal::TooFar`], [`Refusal::NotInZone`], [`Refusal::NoCapacity`] (no free slot) and
//! [`Refusal::AckBacklog`] (the table of acknowledgements waiting for the journal is full).
//!
//! Every refusal is counted per reason, in totals ([`CommandGate::refused`]) and per session
//! since that session's last report. [`CommandGate::poll_reports`] hands out at most one
//! [`ErrorReport`] per session and `report_every_ms` (1 s), carrying the counts since the last
//! one; the zone sends it as a `commands_refused` control message.
//!
//! Sessions are registered when they open ([`CommandGate::open`], the only allocation); a
//! check is a hash lookup and arithmetic: O(1) per packet, no allocation.

use rustc_hash::FxHashMap;
use thiserror::Error;

use crate::config::ZoneConfig;
use crate::coords::{Vec3, WorldBounds};
use crate::player_command::{PLAYER_PACKET_LEN, PlayerCommand, PlayerPacket};

/// First byte of a command frame.
pub const FRAME_COMMAND: u8 = 0x43;
/// Length of a command frame.
pub const COMMAND_FRAME_LEN: usize = 1 + PLAYER_PACKET_LEN;

/// Why a command was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum Refusal {
    /// The session sent more than its rate allows.
    #[error("rate limit exceeded")]
    RateLimited,
    /// Not a command frame, or the packet failed validation.
    #[error("malformed command")]
    Malformed,
    /// The session has no avatar yet.
    #[error("no avatar: send spawn first")]
    NotJoined,
    /// The command names an entity the session does not own and was not granted.
    #[error("not an entity of this player")]
    Authority,
    /// The position is outside the world.
    #[error("position outside the world bounds")]
    Bounds,
    /// Faster than `v_max` (velocity, or distance since the last accepted position).
    #[error("faster than v_max")]
    Speed,
    /// The avatar is no longer owned by this zone (it migrated).
    #[error("the entity is not owned by this zone")]
    NotHere,
    /// CMD_INSTANCE_ASSET: the zone does not know the asset.
    #[error("unknown asset")]
    UnknownAsset,
    /// CMD_INSTANCE_ASSET: the position is beyond the placement radius of the avatar.
    #[error("beyond the placement radius")]
    TooFar,
    /// CMD_INSTANCE_ASSET: the position lies in another zone's range.
    #[error("position in another zone's range")]
    NotInZone,
    /// CMD_INSTANCE_ASSET: no free slot in the zone.
    #[error("no free slot")]
    NoCapacity,
    /// CMD_INSTANCE_ASSET: too many placements wait for the journal to commit.
    #[error("too many placements wait for the journal")]
    AckBacklog,
    /// CMD_INSTANCE_ASSET: the player may not place assets here (its join token carries no
    /// `place` claim: it holds no `placer`, `uploader` or `owner` relation on the zone's map).
    #[error("the player may not place assets in this zone")]
    PlaceForbidden,
}

/// Number of refusal reasons.
pub const REFUSAL_COUNT: usize = 13;

impl Refusal {
    /// Every reason, in index order.
    pub const ALL: [Refusal; REFUSAL_COUNT] = [
        Refusal::RateLimited,
        Refusal::Malformed,
        Refusal::NotJoined,
        Refusal::Authority,
        Refusal::Bounds,
        Refusal::Speed,
        Refusal::NotHere,
        Refusal::UnknownAsset,
        Refusal::TooFar,
        Refusal::NotInZone,
        Refusal::NoCapacity,
        Refusal::AckBacklog,
        Refusal::PlaceForbidden,
    ];

    /// Index in [`Refusal::ALL`] and in count arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The stable name used in metrics labels, stats lines and error reports.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::RateLimited => "rate",
            Refusal::Malformed => "malformed",
            Refusal::NotJoined => "not_joined",
            Refusal::Authority => "authority",
            Refusal::Bounds => "bounds",
            Refusal::Speed => "speed",
            Refusal::NotHere => "not_here",
            Refusal::UnknownAsset => "unknown_asset",
            Refusal::TooFar => "too_far",
            Refusal::NotInZone => "not_in_zone",
            Refusal::NoCapacity => "no_capacity",
            Refusal::AckBacklog => "ack_backlog",
            Refusal::PlaceForbidden => "place_forbidden",
        }
    }
}

/// What entities a session may act on (the zone's avatars and grants).
pub trait Authority {
    /// The session's avatar, if it has one.
    fn avatar_of(&self, session: u64) -> Option<u32>;
    /// Whether `session` may act on entity `global_id` (its avatar or a granted entity).
    fn may_act(&self, session: u64, global_id: u32) -> bool;
}

/// Settings of the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateConfig {
    /// Top speed, micrometres per tick.
    pub v_max_um: i64,
    /// The world.
    pub bounds: WorldBounds,
    /// Commands a second a session may send on average.
    pub rate_per_s: u32,
    /// Commands a session may send at once.
    pub burst: u32,
    /// Least time between two error reports to one session, milliseconds.
    pub report_every_ms: u64,
    /// Most ticks of motion a position upsert may cover since the last accepted one.
    pub max_gap_ticks: u64,
}

impl GateConfig {
    /// 60 commands/s, burst 120, a report a second at most, gaps of a quarter second; `v_max`
    /// and bounds of the zone.
    pub fn new(zone: &ZoneConfig) -> Self {
        Self {
            v_max_um: zone.v_max_um,
            bounds: zone.bounds,
            rate_per_s: 60,
            burst: 120,
            report_every_ms: 1000,
            max_gap_ticks: u64::from(zone.tick_hz / 4).max(1),
        }
    }
}

/// An error report for one session: refusals since its last report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorReport {
    /// The session.
    pub session: u64,
    /// Refused commands per reason ([`Refusal::index`]).
    pub counts: [u64; REFUSAL_COUNT],
}

impl ErrorReport {
    /// The reasons with a count, and the counts.
    pub fn reasons(&self) -> impl Iterator<Item = (Refusal, u64)> + '_ {
        Refusal::ALL
            .iter()
            .map(|&r| (r, self.counts[r.index()]))
            .filter(|&(_, n)| n > 0)
    }

    /// The `commands_refused` control message carrying this report.
    pub fn to_control(&self) -> crate::session_control::ControlMessage {
        crate::session_control::ControlMessage::CommandsRefused {
            counts: self
                .reasons()
                .map(|(r, n)| (r.name().to_owned(), n))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct SessionGate {
    /// Thousandths of a command.
    tokens: u64,
    refilled_ms: u64,
    /// Last accepted position and the tick it was accepted at.
    last: Option<(Vec3, u64)>,
    pending: [u64; REFUSAL_COUNT],
    any_pending: bool,
    last_report_ms: Option<u64>,
}

/// The gate of one zone: per-session rate and history, totals per reason.
#[derive(Debug, Clone)]
pub struct CommandGate {
    cfg: GateConfig,
    /// Keyed by the zone's own session numbers (not chosen by clients), so the fast
    /// non-keyed Fx hash is safe here: about one multiplication per lookup.
    sessions: FxHashMap<u64, SessionGate>,
    refused: [u64; REFUSAL_COUNT],
    accepted: u64,
}

impl CommandGate {
    /// A gate with no sessions.
    pub fn new(cfg: GateConfig) -> Self {
        Self {
            cfg,
            sessions: FxHashMap::default(),
            refused: [0; REFUSAL_COUNT],
            accepted: 0,
        }
    }

    /// The settings.
    pub fn config(&self) -> &GateConfig {
        &self.cfg
    }

    /// Refused commands per reason since the start ([`Refusal::index`]).
    pub fn refused(&self) -> [u64; REFUSAL_COUNT] {
        self.refused
    }

    /// Accepted commands since the start.
    pub fn accepted(&self) -> u64 {
        self.accepted
    }

    /// A session opened at `now_ms`: its bucket starts full.
    pub fn open(&mut self, session: u64, now_ms: u64) {
        self.sessions.insert(
            session,
            SessionGate {
                tokens: u64::from(self.cfg.burst) * 1000,
                refilled_ms: now_ms,
                last: None,
                pending: [0; REFUSAL_COUNT],
                any_pending: false,
                last_report_ms: None,
            },
        );
    }

    /// A session closed (its pending counts are dropped with it).
    pub fn close(&mut self, session: u64) {
        self.sessions.remove(&session);
    }

    /// The session's avatar is at `position` at `tick` (spawned, or placed by the zone): the
    /// next position upsert is measured from there.
    pub fn place(&mut self, session: u64, position: Vec3, tick: u64) {
        if let Some(s) = self.sessions.get_mut(&session) {
            s.last = Some((position, tick));
        }
    }

    /// Counts a refusal decided outside the gate (e.g. [`Refusal::NotHere`]).
    pub fn refuse(&mut self, session: u64, why: Refusal) {
        self.refused[why.index()] += 1;
        if let Some(s) = self.sessions.get_mut(&session) {
            s.pending[why.index()] += 1;
            s.any_pending = true;
        }
    }

    /// Checks `frame` from `session` at `now_ms` during zone tick `tick`: the packet to apply,
    /// or why not (already counted).
    pub fn check(
        &mut self,
        session: u64,
        frame: &[u8],
        now_ms: u64,
        tick: u64,
        authority: &dyn Authority,
    ) -> Result<PlayerPacket, Refusal> {
        let r = self.judge(session, frame, now_ms, tick, authority);
        match r {
            Ok(_) => self.accepted += 1,
            Err(why) => self.refuse(session, why),
        }
        r
    }

    fn judge(
        &mut self,
        session: u64,
        frame: &[u8],
        now_ms: u64,
        tick: u64,
        authority: &dyn Authority,
    ) -> Result<PlayerPacket, Refusal> {
        let cfg = self.cfg;
        let s = self.sessions.get_mut(&session).ok_or(Refusal::NotJoined)?;
        // 1. Rate: refill for the time passed, then take one command.
        let elapsed = now_ms.saturating_sub(s.refilled_ms);
        s.refilled_ms = s.refilled_ms.max(now_ms);
        let cap = u64::from(cfg.burst) * 1000;
        s.tokens = s
            .tokens
            .saturating_add(elapsed.saturating_mul(u64::from(cfg.rate_per_s)))
            .min(cap);
        if s.tokens < 1000 {
            return Err(Refusal::RateLimited);
        }
        s.tokens -= 1000;
        // 2. Shape.
        if frame.len() != COMMAND_FRAME_LEN || frame[0] != FRAME_COMMAND {
            return Err(Refusal::Malformed);
        }
        let p = PlayerPacket::decode(&frame[1..]).map_err(|_| Refusal::Malformed)?;
        // 3, 4. Authority.
        if authority.avatar_of(session).is_none() {
            return Err(Refusal::NotJoined);
        }
        if !authority.may_act(session, p.global_id) {
            return Err(Refusal::Authority);
        }
        if let PlayerCommand::Nudge { target } = p.command
            && !authority.may_act(session, target)
        {
            return Err(Refusal::Authority);
        }
        // 5. Bounds.
        if !cfg.bounds.contains(&p.position) {
            return Err(Refusal::Bounds);
        }
        // 6. Speed: the row scale maps v_max to 32767 on each axis.
        let q2: i64 = p
            .velocity
            .iter()
            .map(|&q| i64::from(q) * i64::from(q))
            .sum();
        if q2 > 32767 * 32767 {
            return Err(Refusal::Speed);
        }
        // The distance check follows the avatar; an entity the player holds is checked by
        // the zone against that entity's own position.
        if p.command == PlayerCommand::PositionUpsert
            && authority.avatar_of(session) == Some(p.global_id)
        {
            if let Some((from, at)) = s.last {
                let ticks = tick
                    .saturating_sub(at)
                    .saturating_add(1)
                    .min(cfg.max_gap_ticks) as f64;
                let reach = cfg.v_max_um as f64 * ticks;
                let d2: f64 = (0..3)
                    .map(|k| (p.position[k] - from[k]).to_num::<f64>().powi(2))
                    .sum();
                if d2 > reach * reach {
                    return Err(Refusal::Speed);
                }
            }
            s.last = Some((p.position, tick));
        }
        Ok(p)
    }

    /// Calls `report` for every session with refusals since its last report whose last report
    /// is at least `report_every_ms` old (or that never had one), and resets its counts.
    pub fn poll_reports(&mut self, now_ms: u64, mut report: impl FnMut(&ErrorReport)) {
        let every = self.cfg.report_every_ms;
        for (&session, s) in self.sessions.iter_mut() {
            if !s.any_pending
                || s.last_report_ms
                    .is_some_and(|t| now_ms.saturating_sub(t) < every)
            {
                continue;
            }
            report(&ErrorReport {
                session,
                counts: s.pending,
            });
            s.pending = [0; REFUSAL_COUNT];
            s.any_pending = false;
            s.last_report_ms = Some(now_ms);
        }
    }
}

/// `packet` as a command frame.
pub fn command_frame(packet: &PlayerPacket) -> [u8; COMMAND_FRAME_LEN] {
    let mut out = [0u8; COMMAND_FRAME_LEN];
    out[0] = FRAME_COMMAND;
    let mut body = [0u8; PLAYER_PACKET_LEN];
    packet.encode(&mut body);
    out[1..].copy_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coords::{metres, micros};
    use crate::zones::ZoneLayout;

    /// Session 1 owns entity 10 and was granted 11; session 2 owns 20; session 3 has none.
    struct Table;

    impl Authority for Table {
        fn avatar_of(&self, session: u64) -> Option<u32> {
            match session {
                1 => Some(10),
                2 => Some(20),
                _ => None,
            }
        }
        fn may_act(&self, session: u64, gid: u32) -> bool {
            matches!((session, gid), (1, 10) | (1, 11) | (2, 20))
        }
    }

    fn gate() -> CommandGate {
        let cfg = ZoneConfig::new(0, ZoneLayout::new(1).unwrap(), WorldBounds::demo());
        let mut g = CommandGate::new(GateConfig::new(&cfg));
        for s in 1..=3 {
            g.open(s, 0);
            g.place(s, [metres(0); 3], 0);
        }
        g
    }

    fn upsert(gid: u32, x_m: i64, v: [i16; 3]) -> [u8; COMMAND_FRAME_LEN] {
        command_frame(&PlayerPacket {
            global_id: gid,
            position: [metres(x_m), metres(0), metres(0)],
            velocity: v,
            acceleration: [0; 3],
            hlc: 0,
            command: PlayerCommand::PositionUpsert,
        })
    }

    #[test]
    fn the_frame_is_a_marker_and_the_packet() {
        let f = upsert(10, 0, [0; 3]);
        assert_eq!(f.len(), 101);
        assert_eq!(f[0], 0x43, "kind 'C' @0");
        assert_eq!(&f[1..5], &10u32.to_le_bytes(), "the packet's gid @1");
        assert_eq!(f[1 + 44], 0, "opcode @45 of the frame");
        assert_eq!(f[1 + 45], 1, "packet version @46 of the frame");
    }

    #[test]
    fn own_moves_pass_and_each_hostile_command_gets_its_reason() {
        let mut g = gate();
        let p = g.check(1, &upsert(10, 0, [100, 0, 0]), 0, 1, &Table);
        assert_eq!(p.map(|p| p.global_id), Ok(10), "own avatar");
        assert!(
            g.check(1, &upsert(11, 0, [0; 3]), 1, 1, &Table).is_ok(),
            "granted entity"
        );
        let cases: [(u64, Vec<u8>, Refusal); 7] = [
            (1, upsert(20, 0, [0; 3]).to_vec(), Refusal::Authority),
            (3, upsert(10, 0, [0; 3]).to_vec(), Refusal::NotJoined),
            (1, vec![0x43; 50], Refusal::Malformed),
            (1, b"\x01garbage".to_vec(), Refusal::Malformed),
            (1, upsert(10, 0, [32767, 32767, 0]).to_vec(), Refusal::Speed),
            (1, upsert(10, 14, [0; 3]).to_vec(), Refusal::Speed),
            (1, upsert(10, 16, [0; 3]).to_vec(), Refusal::Bounds),
        ];
        for (session, frame, want) in &cases {
            assert_eq!(
                g.check(*session, frame, 2, 1, &Table),
                Err(*want),
                "session {session}: {want:?}"
            );
        }
        let mut nudge = upsert(10, 0, [0; 3]);
        nudge[1 + 44] = crate::player_command::CMD_NUDGE;
        nudge[1 + 48..1 + 52].copy_from_slice(&20u32.to_le_bytes());
        assert_eq!(
            g.check(1, &nudge, 3, 1, &Table),
            Err(Refusal::Authority),
            "nudging another player's avatar"
        );
        let r = g.refused();
        assert_eq!(r[Refusal::Authority.index()], 2);
        assert_eq!(r[Refusal::Speed.index()], 2);
        assert_eq!(r[Refusal::Malformed.index()], 2);
        assert_eq!(r[Refusal::NotJoined.index()], 1);
        assert_eq!(r[Refusal::Bounds.index()], 1);
        assert_eq!(g.accepted(), 2);
    }

    #[test]
    fn a_walk_at_v_max_passes_and_a_jump_does_not() {
        let mut g = gate();
        // v_max is 0.5 m per tick at 20 Hz: 1 m every 2 ticks is at the limit.
        for (i, tick) in (2..=20u64).step_by(2).enumerate() {
            let f = upsert(10, i as i64 + 1, [32767, 0, 0]);
            assert!(
                g.check(1, &f, tick * 50, tick, &Table).is_ok(),
                "step {i} at tick {tick}"
            );
        }
        let jump = upsert(10, 13, [0; 3]);
        assert_eq!(g.check(1, &jump, 1100, 22, &Table), Err(Refusal::Speed));
        // Idle for 200 ticks: still at most 5 ticks (2.5 m) of motion in one upsert.
        let far = upsert(10, 13, [0; 3]);
        assert_eq!(g.check(1, &far, 11_000, 220, &Table), Err(Refusal::Speed));
        let near = upsert(10, 12, [0; 3]);
        assert!(g.check(1, &near, 11_001, 220, &Table).is_ok());
        assert_eq!(
            micros(g.config().v_max_um),
            micros(500_000),
            "the zone's v_max is the default"
        );
    }

    #[test]
    fn the_distance_check_follows_the_avatar_not_other_entities() {
        let mut g = gate();
        // Entity 11 (granted, or held) is far away: the zone checks it against its own
        // position, so the gate neither refuses it nor moves the avatar's reference.
        let other = upsert(11, 12, [0; 3]);
        assert!(g.check(1, &other, 50, 1, &Table).is_ok());
        let jump = upsert(10, 12, [0; 3]);
        assert_eq!(
            g.check(1, &jump, 100, 2, &Table),
            Err(Refusal::Speed),
            "the avatar is still measured from where it was"
        );
        assert!(g.check(1, &upsert(10, 1, [0; 3]), 150, 3, &Table).is_ok());
    }

    #[test]
    fn a_flood_is_rate_limited_and_reported_once_a_second() {
        let mut g = gate();
        let f = upsert(10, 0, [0; 3]);
        // 10,000 commands within one second from session 1.
        let mut ok = 0;
        for i in 0..10_000u64 {
            if g.check(1, &f, i / 10, 1, &Table).is_ok() {
                ok += 1;
            }
        }
        // The burst plus what a second refills (60), give or take the last millisecond.
        assert!((120..=181).contains(&ok), "{ok} accepted");
        let limited = g.refused()[Refusal::RateLimited.index()];
        assert_eq!(limited, 10_000 - ok);
        // Session 2 is untouched by session 1's flood.
        assert!(g.check(2, &upsert(20, 0, [0; 3]), 999, 1, &Table).is_ok());
        let mut reports = Vec::new();
        g.poll_reports(999, |r| reports.push(*r));
        assert_eq!(reports.len(), 1, "one report, for the flooding session");
        assert_eq!(reports[0].session, 1);
        assert_eq!(reports[0].counts[Refusal::RateLimited.index()], limited);
        // More refusals within the second wait for the next report.
        for i in 0..500u64 {
            let _ = g.check(1, &f, 1000 + i / 100, 1, &Table);
        }
        g.poll_reports(1500, |r| reports.push(*r));
        assert_eq!(reports.len(), 1, "at most one report a second");
        g.poll_reports(1999, |r| reports.push(*r));
        assert_eq!(reports.len(), 2);
        let since: u64 = reports[1].counts.iter().sum();
        assert!(since > 0 && since <= 500, "{since} since the last report");
        let msg = reports[1].to_control().encode();
        let text = String::from_utf8(msg).unwrap();
        assert!(
            text.starts_with(r#"{"counts":{"rate":"#)
                && text.contains(r#""event":"commands_refused""#),
            "{text}"
        );
        g.poll_reports(5000, |r| reports.push(*r));
        assert_eq!(reports.len(), 2, "nothing new, nothing sent");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_are_refused_without_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..140)
        ) {
            let mut g = gate();
            let _ = g.check(1, &bytes, 0, 1, &Table);
        }
    }
}
