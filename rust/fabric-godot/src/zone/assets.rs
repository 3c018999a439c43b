//! CMD_INSTANCE_ASSET in the zone, and "acknowledged means durable".
//!
//! Glue between the command path ([`super::players`]), the core's placement rules
//! ([`fabric_core::asset_placement`]) and pending-ack table ([`fabric_core::durable_acks`]):
//!
//! - a CMD_INSTANCE_ASSET that passed the command gate is checked against the zone's
//!   [`PlacementRules`] (`--assets`, `--place-radius`), relative to the sender's avatar, and
//!   against the sender's permission ([`Placer`]: the `place` claim of its join token, kept by
//!   admission; any admitted player of a zone without tokens); then
//!   a free slot is taken at the packet's position with the instance payload
//!   ([`asset_payload`]), a stationary entity that replicates like any other and is journaled
//!   as a spawn (the runtime journals every spawn);
//! - the acknowledgement (`placed {request, entity, asset}`, reliable) waits in the pending
//!   table, keyed by the zone's last tick `t` when the spawn was made; once a frame, those
//!   whose `t + 1` is durable (`ZoneRuntime::durable_tick`) are sent. A zone without a journal
//!   sends them in the same frame: there an acknowledgement means applied, not durable;
//! - a refusal is counted with the gate's refusals (`commands_refused` reports,
//!   `fabric_zone_commands_refused_total`) and, when the command carried a request number,
//!   answered with `place_refused {request, reason}`; a full pending table refuses the command
//!   (`ack_backlog`), never blocks the tick.
//!
//! Nothing here runs inside the tick.

use std::collections::VecDeque;

use fabric_core::admission::Action;
use fabric_core::asset_placement::{PlacementRules, Placer, asset_payload};
use fabric_core::command_gate::Refusal;
use fabric_core::coords::{Vec3, ZERO3};
use fabric_core::durable_acks::{PendingAck, PendingAcks};
use fabric_core::player_command::PlayerPacket;
use fabric_core::session_control::ControlMessage;

use super::players::Players;
use super::runtime::ZoneRuntime;

/// Most `place_refused` answers waiting for the next frame (more are only counted).
const REFUSALS_QUEUED: usize = 256;

/// The zone's placement rules and the answers it owes.
#[derive(Debug)]
pub(crate) struct Placements {
    rules: PlacementRules,
    pending: PendingAcks,
    refusals: VecDeque<(u64, u32, Refusal)>,
    placed: u64,
}

impl Default for Placements {
    fn default() -> Self {
        Self {
            rules: PlacementRules::default(),
            pending: PendingAcks::default(),
            refusals: VecDeque::with_capacity(REFUSALS_QUEUED),
            placed: 0,
        }
    }
}

impl Placements {
    /// Uses `rules` from now on.
    pub(crate) fn set_rules(&mut self, rules: PlacementRules) {
        self.rules = rules;
    }

    /// Accepts `assets` from now on (the radius stays): the map's list ([`super::map_assets`]).
    pub(crate) fn set_assets(&mut self, assets: fabric_core::asset_placement::AssetFilter) {
        self.rules.assets = assets;
    }

    /// Forgets the answers owed to a closed session.
    pub(crate) fn drop_session(&mut self, session: u64) {
        self.pending.drop_session(session);
        self.refusals.retain(|r| r.0 != session);
    }

    /// ` placed=N placements_pending=N` for the stats line.
    pub(crate) fn stats_fields(&self) -> String {
        format!(
            " placed={} placements_pending={}",
            self.placed,
            self.pending.len()
        )
    }
}

/// CMD_INSTANCE_ASSET `asset` (request `request`) of `session` (whose permission is
/// `placer`), packet `p`, already through the gate: placed (its answer pending; returns the
/// new entity) or refused (counted, answered when asked).
#[allow(clippy::too_many_arguments)]
pub(crate) fn place(
    rt: &mut ZoneRuntime,
    players: &mut Players,
    session: u64,
    placer: Placer,
    p: &PlayerPacket,
    asset: u64,
    request: u32,
) -> Option<u32> {
    let avatar_at = players
        .avatar_of(session)
        .and_then(|id| rt.owned_slot(id))
        .and_then(|slot| rt.zone().entity(slot))
        .map(|e| e.position);
    let placed = match avatar_at {
        Some(at) => players
            .placements
            .try_place(rt, session, placer, &at, p, asset, request),
        None => Err(Refusal::NotHere),
    };
    match placed {
        Ok(entity) => Some(entity),
        Err(why) => {
            players.refuse(session, why);
            let q = &mut players.placements.refusals;
            if request != 0 && q.len() < REFUSALS_QUEUED {
                q.push_back((session, request, why));
            }
            None
        }
    }
}

impl Placements {
    /// Checks the rules (the avatar at `avatar_at`), takes a slot, owes the answer.
    #[allow(clippy::too_many_arguments)]
    fn try_place(
        &mut self,
        rt: &mut ZoneRuntime,
        session: u64,
        placer: Placer,
        avatar_at: &Vec3,
        p: &PlayerPacket,
        asset: u64,
        request: u32,
    ) -> Result<u32, Refusal> {
        self.rules
            .check(placer, asset, &p.position, avatar_at, rt.zone().config())?;
        if request != 0 && self.pending.len() >= self.pending.capacity() {
            return Err(Refusal::AckBacklog);
        }
        let entity = rt
            .spawn(p.position, ZERO3, asset_payload(asset, p.global_id))
            .map_err(|_| Refusal::NoCapacity)?;
        self.placed += 1;
        if request != 0 {
            let ack = PendingAck {
                session,
                request,
                entity,
                asset,
                tick: rt.last_tick_number(),
            };
            self.pending.push(ack).map_err(|_| Refusal::AckBacklog)?;
        }
        Ok(entity)
    }
}

/// Once a frame: the acknowledgements now durable (all of them without a journal) and the
/// refusals go out on the reliable stream.
pub(crate) fn poll(rt: &ZoneRuntime, pl: &mut Placements, actions: &mut Vec<Action>) {
    let mut send = |a: &PendingAck| {
        actions.push(Action::Send {
            session: a.session,
            bytes: ControlMessage::Placed {
                request: a.request,
                entity: a.entity,
                asset: a.asset,
            }
            .encode(),
            reliable: true,
        })
    };
    if rt.journal().is_some() {
        pl.pending.release(rt.durable_tick(), &mut send);
    } else {
        pl.pending.release_all(&mut send);
    }
    while let Some((session, request, why)) = pl.refusals.pop_front() {
        actions.push(Action::Send {
            session,
            bytes: ControlMessage::PlaceRefused {
                request,
                reason: why.name().to_owned(),
            }
            .encode(),
            reliable: true,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::players::tests::runtime;
    use fabric_core::asset_placement::{AssetFilter, asset_of};
    use fabric_core::coords::Micros;
    use fabric_core::entity_row::PAYLOAD_WORDS;
    use fabric_core::player_command::PlayerCommand;

    fn m(v: f64) -> Micros {
        Micros::from_num(v * 1e6)
    }

    fn packet(gid: u32, at: Vec3, asset: u64, request: u32) -> PlayerPacket {
        PlayerPacket {
            global_id: gid,
            position: at,
            velocity: [0; 3],
            acceleration: [0; 3],
            hlc: 0,
            command: PlayerCommand::InstanceAsset {
                asset_id: asset,
                request,
            },
        }
    }

    fn answers(actions: &[Action]) -> Vec<ControlMessage> {
        actions
            .iter()
            .map(|a| match a {
                Action::Send {
                    bytes, reliable, ..
                } => {
                    assert!(reliable, "answers go on the reliable stream");
                    ControlMessage::decode(bytes).unwrap()
                }
                other => panic!("unexpected action {other:?}"),
            })
            .collect()
    }

    #[test]
    fn without_a_journal_a_placement_is_answered_in_the_same_frame() {
        let mut rt = runtime();
        let mut players = Players::default();
        let me = rt.spawn([m(0.0); 3], ZERO3, [0; PAYLOAD_WORDS]).unwrap();
        players.avatars.insert(1, me);
        players.placements.set_rules(PlacementRules {
            radius_um: 5_000_000,
            assets: AssetFilter::only(vec![77]),
        });
        let at = [m(3.0), m(0.0), m(-1.0)];
        place(
            &mut rt,
            &mut players,
            1,
            Placer::Allowed,
            &packet(me, at, 77, 5),
            77,
            5,
        );
        place(
            &mut rt,
            &mut players,
            1,
            Placer::Allowed,
            &packet(me, at, 78, 6),
            78,
            6,
        );
        let far = [m(6.0), m(0.0), m(0.0)];
        place(
            &mut rt,
            &mut players,
            1,
            Placer::Allowed,
            &packet(me, far, 77, 7),
            77,
            7,
        );
        place(
            &mut rt,
            &mut players,
            1,
            Placer::Allowed,
            &packet(me, far, 77, 0),
            77,
            0,
        );
        let mut actions = Vec::new();
        poll(&rt, &mut players.placements, &mut actions);
        let got = answers(&actions);
        let ControlMessage::Placed {
            request: 5,
            entity,
            asset: 77,
        } = got[0]
        else {
            panic!("first answer {:?}", got[0]);
        };
        assert_eq!(
            got[1..],
            [
                ControlMessage::PlaceRefused {
                    request: 6,
                    reason: "unknown_asset".into()
                },
                ControlMessage::PlaceRefused {
                    request: 7,
                    reason: "too_far".into()
                },
            ],
            "request 0 asks for no answer"
        );
        let e = rt.zone().entity(rt.owned_slot(entity).unwrap()).unwrap();
        assert_eq!(e.position, at, "placed where asked");
        assert_eq!(e.velocity, ZERO3, "at rest");
        assert_eq!(
            asset_of(&e.payload),
            Some(77),
            "the payload names the asset"
        );
        assert_eq!(e.payload[3], me, "and who placed it");
        let refused = players.refused_counts();
        assert_eq!(refused[Refusal::UnknownAsset.index()], 1);
        assert_eq!(refused[Refusal::TooFar.index()], 2);
    }

    #[test]
    fn with_a_journal_the_answer_waits_for_the_commit_and_the_instance_reloads() {
        use crate::zone::journal::ZoneJournal;
        use std::time::{Duration, Instant};
        let dir = std::env::temp_dir().join(format!("zone-assets-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut rt = runtime();
        let (j, loaded) = ZoneJournal::open(&dir, 0).unwrap();
        rt.attach_journal(j, &loaded).unwrap();
        let mut players = Players::default();
        let me = rt.spawn([m(0.0); 3], ZERO3, [0; PAYLOAD_WORDS]).unwrap();
        players.avatars.insert(1, me);
        let at = [m(1.0), m(2.0), m(3.0)];
        let t = rt.last_tick_number();
        place(
            &mut rt,
            &mut players,
            1,
            Placer::Allowed,
            &packet(me, at, 0xABCD, 9),
            0xABCD,
            9,
        );
        let mut actions = Vec::new();
        poll(&rt, &mut players.placements, &mut actions);
        assert!(actions.is_empty(), "not committed: no answer yet");
        rt.run_tick();
        let until = Instant::now() + Duration::from_secs(10);
        while rt.durable_tick() < Some(t + 1) {
            assert!(
                Instant::now() < until,
                "tick {} never became durable",
                t + 1
            );
            std::thread::yield_now();
        }
        poll(&rt, &mut players.placements, &mut actions);
        let got = answers(&actions);
        let [
            ControlMessage::Placed {
                request: 9,
                entity,
                asset: 0xABCD,
            },
        ] = got[..]
        else {
            panic!("answers {got:?}");
        };
        rt.close_journal().unwrap().unwrap();
        let (_j, loaded) = ZoneJournal::open(&dir, 0).unwrap();
        let e = loaded
            .state
            .get(entity)
            .expect("the acknowledged instance is journaled");
        assert_eq!(e.position, at);
        assert_eq!(asset_of(&e.payload), Some(0xABCD));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_full_zone_and_a_full_table_refuse_without_waiting() {
        use crate::zone::config::ZoneSettings;
        let mut rt = crate::zone::players::tests::runtime_with(&ZoneSettings {
            capacity: 3,
            headroom: 0,
            ..ZoneSettings::default()
        });
        let mut players = Players::default();
        players.placements.pending = PendingAcks::with_capacity(1);
        let me = rt.spawn([m(0.0); 3], ZERO3, [0; PAYLOAD_WORDS]).unwrap();
        players.avatars.insert(1, me);
        let at = [m(1.0), m(0.0), m(0.0)];
        let mut go = |rt: &mut ZoneRuntime, asset, request| {
            place(
                rt,
                &mut players,
                1,
                Placer::Allowed,
                &packet(me, at, asset, request),
                asset,
                request,
            )
        };
        assert!(go(&mut rt, 1, 1).is_some(), "the first fits");
        assert_eq!(
            go(&mut rt, 2, 2),
            None,
            "its answer still owed: the table is full"
        );
        assert!(
            go(&mut rt, 3, 0).is_some(),
            "one asking no answer needs no room"
        );
        assert_eq!(go(&mut rt, 4, 0), None, "three slots taken");
        let mut actions = Vec::new();
        poll(&rt, &mut players.placements, &mut actions);
        let got = answers(&actions);
        assert_eq!(
            got[1..],
            [ControlMessage::PlaceRefused {
                request: 2,
                reason: "ack_backlog".into()
            }],
            "{got:?}"
        );
        let refused = players.refused_counts();
        assert_eq!(refused[Refusal::AckBacklog.index()], 1);
        assert_eq!(refused[Refusal::NoCapacity.index()], 1);
    }

    #[test]
    fn a_player_without_the_place_permission_places_nothing() {
        let mut rt = runtime();
        let mut players = Players::default();
        let me = rt.spawn([m(0.0); 3], ZERO3, [0; PAYLOAD_WORDS]).unwrap();
        players.avatars.insert(1, me);
        let entities = rt.zone().slots().used();
        let at = [m(1.0), m(0.0), m(0.0)];
        let no = Placer::Forbidden;
        assert_eq!(
            place(&mut rt, &mut players, 1, no, &packet(me, at, 77, 3), 77, 3),
            None
        );
        assert_eq!(rt.zone().slots().used(), entities, "nothing spawned");
        let mut actions = Vec::new();
        poll(&rt, &mut players.placements, &mut actions);
        assert_eq!(
            answers(&actions),
            [ControlMessage::PlaceRefused {
                request: 3,
                reason: "place_forbidden".into()
            }]
        );
        assert_eq!(players.refused_counts()[Refusal::PlaceForbidden.index()], 1);
        assert_eq!(players.placements.placed, 0);
    }

    #[test]
    fn a_player_without_an_avatar_here_places_nothing() {
        let mut rt = runtime();
        let mut players = Players::default();
        let before = rt.zone().slots().capacity();
        place(
            &mut rt,
            &mut players,
            9,
            Placer::Allowed,
            &packet(1, [m(0.0); 3], 5, 1),
            5,
            1,
        );
        let mut actions = Vec::new();
        poll(&rt, &mut players.placements, &mut actions);
        assert_eq!(
            answers(&actions),
            [ControlMessage::PlaceRefused {
                request: 1,
                reason: "not_here".into()
            }]
        );
        assert_eq!(rt.zone().slots().capacity(), before);
        assert_eq!(players.placements.placed, 0);
    }
}
