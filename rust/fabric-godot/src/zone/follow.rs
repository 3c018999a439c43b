//! Following an avatar across zones: the zone that hands a player's avatar over tells the
//! player where it went, and the zone that received it lets the player take it back.
//!
//! - When an avatar played by a session of this zone completes its hand-off to zone K
//!   ([`super::runtime::ZoneEvent::MigratedOut`]), the session is sent `avatar_moved` (reliable)
//!   with K's client address and certificate hashes from the zone directory
//!   (`--zone-directory-file`, [`fabric_core::zone_directory`]; null when K is not listed) and
//!   a follow ticket ([`fabric_auth::follow_ticket`]) signed with the fabric key
//!   (`--fabric-key-file`; empty without one). The session no longer plays it here: closing
//!   the session later does not despawn it.
//! - A `claim` with that ticket on a session of zone K binds the session to the avatar, without
//!   spawning one, once the ticket checks out (signature, zone, avatar, expiry, the session's
//!   account, not used before) and K holds the avatar; the answer is `avatar`, as for `spawn`.
//!   A session not admitted yet (no `hello`: the player holds no join token of zone K, whose
//!   tokens name one shard) is admitted by the ticket itself, as the account it names, and
//!   welcomed; so a player needs no token of the zone its avatar walked into.
//!   When the claim comes while the avatar is still arriving (the hand-off committed, the
//!   arrival tick not reached), it is held and bound right after the tick that makes the avatar
//!   this zone's, before that tick's replication ([`FabricZone::bind_pending_claims`]), so the
//!   player's first packet from here is of that very tick.
//!   A refusal is an error reply with id `claim` whose text starts with a stable code
//!   (`ticket_*`, `avatar_not_here`, `avatar_taken`, `claim_conflict`, `ticket_unsupported`).
//!
//! Tickets are signed with the fabric key under static membership (version 1); under registry
//! membership, once the registry granted the zone its link credential, with the zone's link key,
//! carrying that credential (version 2, checked against the registry's key:
//! [`LinkedTickets`]). Until then (or with neither) `avatar_moved` has an empty ticket and
//! claims are refused (`ticket_unsupported`).

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fabric_auth::follow_ticket::{
    DEFAULT_TTL_S, FollowTicket, FollowTicketSigner, FollowTicketVerifier, ReplayGuard,
};
use fabric_core::admission::Action;
use fabric_core::session_control::ControlMessage;
use fabric_core::slots::SlotState;
use fabric_core::zone_directory::ZoneDirectory;
use godot::prelude::*;

use super::FabricZone;
use super::config::ZoneSettings;

/// How often the directory file is looked at, at most.
const DIRECTORY_POLL: Duration = Duration::from_millis(250);
/// Most unexpired tickets a zone remembers as used.
const MAX_TICKETS: usize = 65_536;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How long a claim waits for its avatar to arrive.
const PENDING_FOR: Duration = Duration::from_secs(2);

/// A registry-membership zone's follow-ticket keys: it signs with its link key and carries
/// its link credential; it checks others' against the registry key that signs credentials.
#[derive(Debug)]
pub(crate) struct LinkedTickets {
    signer: FollowTicketSigner,
    verifier: FollowTicketVerifier,
}

impl LinkedTickets {
    /// Keys of zone `zone` of `fabric`, from the registry's grant.
    pub(crate) fn new(
        fabric: &str,
        zone: u8,
        link_key: ed25519_dalek::SigningKey,
        credential: Vec<u8>,
        credentials: fabric_auth::LinkCredentialVerifier,
    ) -> Self {
        Self {
            signer: FollowTicketSigner::linked(fabric, link_key, credential),
            verifier: FollowTicketVerifier::linked(fabric, zone, credentials),
        }
    }
}

/// Where a zone's [`LinkedTickets`] appear once the registry granted its credential (replaced
/// when the grant is renewed after a key rotation).
pub(crate) type LinkedSlot = Arc<RwLock<Option<Arc<LinkedTickets>>>>;

/// A checked claim of an avatar still arriving.
#[derive(Debug, Clone, Copy)]
struct Pending {
    session: u64,
    id: u32,
    from: u8,
    reliable: bool,
    since: Instant,
}

/// A zone's side of following avatars.
#[derive(Debug)]
pub(crate) struct Follow {
    signer: Option<FollowTicketSigner>,
    verifier: Option<FollowTicketVerifier>,
    linked: Option<LinkedSlot>,
    guard: ReplayGuard,
    directory_file: Option<PathBuf>,
    directory: ZoneDirectory,
    seen: Option<(SystemTime, u64)>,
    next_check: Instant,
    pending: Vec<Pending>,
    /// `avatar_moved` sent.
    pub(crate) moved: u64,
    /// Claims that bound a session.
    pub(crate) claimed: u64,
    /// Claims refused.
    pub(crate) refused: u64,
}

impl Default for Follow {
    fn default() -> Self {
        Self {
            signer: None,
            verifier: None,
            linked: None,
            guard: ReplayGuard::new(MAX_TICKETS),
            directory_file: None,
            directory: ZoneDirectory::default(),
            seen: None,
            next_check: Instant::now(),
            pending: Vec::new(),
            moved: 0,
            claimed: 0,
            refused: 0,
        }
    }
}

impl Follow {
    /// Follow settings of a zone configured as `s`: the fabric key signs and checks tickets,
    /// else the keys that appear in `linked` (registry membership).
    pub(crate) fn new(s: &ZoneSettings, linked: Option<LinkedSlot>) -> Result<Self, String> {
        let mut f = Self {
            directory_file: s.link_net.zone_directory_file.clone(),
            linked,
            ..Self::default()
        };
        if let Some(path) = &s.link_net.fabric_key_file {
            let key = fabric_link::links::load_fabric_key(path).map_err(|e| e.to_string())?;
            let signer = FollowTicketSigner::new(&s.fabric, key);
            f.verifier = Some(signer.verifier(s.zone_index as u8));
            f.signer = Some(signer);
        }
        f.refresh_directory();
        Ok(f)
    }

    /// The registry-granted keys in force, if any.
    fn linked(&self) -> Option<Arc<LinkedTickets>> {
        self.linked.as_ref()?.read().ok()?.clone()
    }

    /// The ticket signer: the fabric key's, else the registry-granted one (`linked`).
    fn signer<'a>(
        &'a self,
        linked: &'a Option<Arc<LinkedTickets>>,
    ) -> Option<&'a FollowTicketSigner> {
        self.signer
            .as_ref()
            .or_else(|| Some(&linked.as_ref()?.signer))
    }

    /// The ticket verifier, as [`Follow::signer`].
    fn verifier<'a>(
        &'a self,
        linked: &'a Option<Arc<LinkedTickets>>,
    ) -> Option<&'a FollowTicketVerifier> {
        self.verifier
            .as_ref()
            .or_else(|| Some(&linked.as_ref()?.verifier))
    }

    /// ` follow_moved=N follow_claimed=N follow_refused=N` for the stats line.
    pub(crate) fn stats_fields(&self) -> String {
        format!(
            " follow_moved={} follow_claimed={} follow_refused={}",
            self.moved, self.claimed, self.refused
        )
    }

    /// Reads the directory file again when it changed (at most four times a second).
    fn refresh_directory(&mut self) {
        let Some(path) = &self.directory_file else {
            return;
        };
        if Instant::now() < self.next_check {
            return;
        }
        self.next_check = Instant::now() + DIRECTORY_POLL;
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        let stamp = (meta.modified().unwrap_or(UNIX_EPOCH), meta.len());
        if self.seen == Some(stamp) {
            return;
        }
        match std::fs::read_to_string(path).map(|t| ZoneDirectory::parse(&t)) {
            Ok(Ok(d)) => {
                self.directory = d;
                self.seen = Some(stamp);
            }
            Ok(Err(e)) => godot_warn!("zone directory {}: {e}", path.display()),
            Err(e) => godot_warn!("zone directory {}: {e}", path.display()),
        }
    }
}

impl FabricZone {
    /// Avatar `id` completed its hand-off to zone `to`: its player hears `avatar_moved`.
    pub(super) fn on_avatar_moved_out(&mut self, id: u32, to: u32) {
        let Some(session) = self.players.release_moved(id) else {
            return;
        };
        self.follow.refresh_directory();
        let account = self.admission.subject(session).unwrap_or("").to_owned();
        let linked = self.follow.linked();
        let ticket = self.follow.signer(&linked).map(|s| {
            s.sign(&FollowTicket {
                from: self.zone_id as u8,
                to: to as u8,
                avatar: id,
                account,
                exp: unix_now() + DEFAULT_TTL_S,
                nonce: rand::random(),
                place: self.admission.may_place(session),
            })
        });
        let ticket = match ticket {
            Some(Ok(t)) => t,
            Some(Err(e)) => {
                godot_warn!("FabricZone {}: no follow ticket: {e}", self.zone_id);
                String::new()
            }
            None => String::new(),
        };
        let entry = self.follow.directory.get(to);
        let msg = ControlMessage::AvatarMoved {
            id,
            zone: to,
            address: entry.map(|e| e.address.clone()),
            cert_hash: entry.map(|e| e.cert_hashes.clone()),
            ticket,
        };
        if let Some(server) = &self.server {
            let _ = server.sender().send_message(session, msg.encode());
        }
        self.follow.moved += 1;
        godot_print!(
            "FabricZone {}: session {session}'s avatar {id} moved to zone {to}",
            self.zone_id
        );
    }

    /// A `claim` of avatar `id` with `ticket` from `session`.
    pub(super) fn on_claim(
        &mut self,
        session: u64,
        id: u32,
        ticket: &str,
        reliable: bool,
        now_ms: u64,
        actions: &mut Vec<Action>,
    ) {
        match self.claim(session, id, ticket, reliable, now_ms, actions) {
            Ok(None) => {} // answered once the avatar arrived
            Ok(Some(zone)) => {
                actions.push(Action::Send {
                    session,
                    bytes: ControlMessage::Avatar { id, zone }.encode(),
                    reliable,
                });
            }
            Err(why) => {
                self.follow.refused += 1;
                godot_print!(
                    "FabricZone {}: claim of avatar {id} by session {session} refused: {why}",
                    self.zone_id
                );
                actions.push(Action::Send {
                    session,
                    bytes: ControlMessage::Reply {
                        id: "claim".into(),
                        result: Err(why),
                    }
                    .encode(),
                    reliable,
                });
            }
        }
    }

    /// Checks and binds a claim: the zone's id, `None` when it waits for the avatar to
    /// arrive, or why not.
    fn claim(
        &mut self,
        session: u64,
        id: u32,
        ticket: &str,
        reliable: bool,
        now_ms: u64,
        actions: &mut Vec<Action>,
    ) -> Result<Option<u32>, String> {
        let admitted = self.admission.is_admitted(session);
        let Some(rt) = self.runtime.as_ref() else {
            return Err("the zone is not running".into());
        };
        let zone = u32::from(rt.zone().config().zone_id);
        match self.players.avatar_of(session) {
            Some(a) if a == id => return Ok(Some(zone)), // a repeated claim
            Some(a) => {
                return Err(format!(
                    "claim_conflict: this session already plays avatar {a}"
                ));
            }
            None => {}
        }
        if self
            .follow
            .pending
            .iter()
            .any(|p| p.session == session && p.id == id)
        {
            return Ok(None); // a repeated claim, still waiting for the avatar
        }
        let linked = self.follow.linked();
        let Some(verifier) = self.follow.verifier(&linked) else {
            return Err(
                "ticket_unsupported: this zone holds no fabric key or registry credential to check follow tickets".into(),
            );
        };
        let now = unix_now();
        let t = if admitted {
            let account = self.admission.subject(session).unwrap_or("");
            verifier.verify(ticket, id, account, now)
        } else {
            verifier.verify_bearer(ticket, id, now)
        }
        .map_err(|e| format!("{}: {e}", e.code()))?;
        if self.follow.guard.is_used(&t) {
            let e = fabric_auth::follow_ticket::FollowTicketError::Replayed;
            return Err(format!("{}: {e}", e.code()));
        }
        if let Some(other) = self.players.session_of(id) {
            return Err(format!(
                "avatar_taken: avatar {id} is played by session {other}"
            ));
        }
        let owned = rt.owned_slot(id).is_some();
        if !owned && !arriving(rt, id) {
            return Err(format!(
                "avatar_not_here: zone {zone} does not hold avatar {id} (yet)"
            ));
        }
        if self.follow.pending.iter().any(|p| p.id == id) {
            return Err(format!(
                "avatar_taken: avatar {id} is claimed by another session"
            ));
        }
        self.follow
            .guard
            .take(&t, now)
            .map_err(|e| format!("{}: {e}", e.code()))?;
        if !admitted {
            let tick = rt.zone().current_tick();
            self.admission.admit_by_ticket(
                session,
                t.account.clone(),
                t.place,
                now_ms,
                tick,
                actions,
            );
        }
        if !owned {
            self.follow.pending.push(Pending {
                session,
                id,
                from: t.from,
                reliable,
                since: Instant::now(),
            });
            return Ok(None);
        }
        self.bind_claimed(session, id, t.from);
        Ok(Some(zone))
    }

    /// Binds `session` to the owned avatar `id` it claimed.
    fn bind_claimed(&mut self, session: u64, id: u32, from: u8) -> bool {
        let Some(rt) = self.runtime.as_ref() else {
            return false;
        };
        let Some(slot) = rt.owned_slot(id) else {
            return false;
        };
        let at = rt.zone().slots().position(slot);
        let tick = rt.zone().current_tick();
        self.players.bind(session, id, at, tick);
        self.unclaimed.forget(id);
        self.follow.claimed += 1;
        godot_print!(
            "FabricZone {}: session {session} took avatar {id} back (from zone {from})",
            self.zone_id
        );
        self.signals()
            .player_joined()
            .emit(session as i64, i64::from(id));
        true
    }

    /// After the ticks of a frame, before replication: claims whose avatar became this zone's
    /// are bound and answered; those whose avatar did not arrive within 2 s are refused.
    pub(super) fn bind_pending_claims(&mut self) {
        if self.follow.pending.is_empty() {
            return;
        }
        let Some(zone) = self.runtime.as_ref().map(|rt| rt.zone().config().zone_id) else {
            return;
        };
        for p in std::mem::take(&mut self.follow.pending) {
            let answer = if !self.admission.is_admitted(p.session) {
                continue; // the session left
            } else if self.bind_claimed(p.session, p.id, p.from) {
                ControlMessage::Avatar {
                    id: p.id,
                    zone: u32::from(zone),
                }
            } else if p.since.elapsed() < PENDING_FOR {
                self.follow.pending.push(p);
                continue;
            } else {
                self.follow.refused += 1;
                ControlMessage::Reply {
                    id: "claim".into(),
                    result: Err(format!(
                        "avatar_not_here: avatar {} did not arrive in zone {zone}",
                        p.id
                    )),
                }
            };
            if let Some(server) = &self.server {
                let tx = server.sender();
                let bytes = answer.encode();
                let _ = if p.reliable {
                    tx.send_message(p.session, bytes)
                } else {
                    tx.send_datagram(p.session, &bytes)
                };
            }
        }
    }
}

/// True when `id` is reserved or arriving here (committed, before its arrival tick).
fn arriving(rt: &super::runtime::ZoneRuntime, id: u32) -> bool {
    let slots = rt.zone().slots();
    (0..slots.capacity()).any(|i| {
        matches!(slots.state(i), SlotState::Incoming | SlotState::Arriving)
            && slots.global_id(i) == id
    })
}
