//! [`ZoneFollow`]: a `FabricWorld` connected to a zone directly follows its avatar to the zone
//! it was handed to, without sockets or a clock (time comes in as milliseconds, bytes go out
//! through a [`Link`]).
//!
//! When the zone says `avatar_moved` (`docs/session-protocol.md`, "Following the avatar"), the
//! node opens a second session to the new zone at the address and certificate hashes the message
//! names, and this state machine drives it: `claim` with the ticket as soon as the session
//! opens, without `hello` (resent every [`CLAIM_RETRY_MS`] while unanswered or answered
//! `avatar_not_here`: the hand-off may not have completed there yet). The player's join token
//! names the zone it joined, so the new zone admits the session by the ticket itself
//! (`docs/session-protocol.md`); its `welcome` is acknowledged with `welcome_ack`. The zone's
//! `avatar` answer completes it
//! ([`FollowStep::Done`]): the node then switches its session to the new connection and closes
//! the old one. Replication packets the new zone sends before that are held (at most
//! [`MAX_HELD`]) and handed to the session right after the switch. Any other refusal, an error,
//! or no `avatar` within [`FOLLOW_TIMEOUT_MS`] fails it ([`FollowStep::Failed`]).
//!
//! Through the gateway none of this runs: the gateway follows the avatar itself and says
//! `zone_changed` ([`super::session`]).

use fabric_core::client_view::wire::PACKET_KIND;
use fabric_core::session_control::ControlMessage;

use super::session::Link;

/// Milliseconds between `claim`s until the new zone answers `avatar`.
pub const CLAIM_RETRY_MS: u64 = 50;
/// Milliseconds a follow may take, from `avatar_moved` to `avatar`.
pub const FOLLOW_TIMEOUT_MS: u64 = 5_000;
/// Replication packets of the new zone held until the switch.
pub const MAX_HELD: usize = 16;

/// Why an `avatar_moved` cannot be followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FollowError {
    /// The old zone does not know where the new one is (not in its zone directory).
    #[error("avatar_moved to zone {0} names no address or certificate hash")]
    NoAddress(u32),
    /// The old zone signs no tickets (no fabric key), so the new zone cannot let us claim.
    #[error("avatar_moved to zone {0} carries no follow ticket")]
    NoTicket(u32),
}

/// Where the avatar went, from `avatar_moved`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// The avatar's id.
    pub id: u32,
    /// The zone that holds it now.
    pub zone: u32,
    /// That zone's WebTransport URL (`https://host:port/wt`).
    pub url: String,
    /// Its certificate hashes, comma-separated.
    pub cert_hash: String,
    /// The follow ticket.
    pub ticket: String,
}

impl Moved {
    /// The follow target of an `avatar_moved` message's fields.
    pub fn new(
        id: u32,
        zone: u32,
        address: Option<String>,
        cert_hash: Option<String>,
        ticket: String,
    ) -> Result<Self, FollowError> {
        let (Some(address), Some(cert_hash)) = (address, cert_hash) else {
            return Err(FollowError::NoAddress(zone));
        };
        if address.is_empty() || cert_hash.is_empty() {
            return Err(FollowError::NoAddress(zone));
        }
        if ticket.is_empty() {
            return Err(FollowError::NoTicket(zone));
        }
        Ok(Self {
            id,
            zone,
            url: format!("https://{address}/wt"),
            cert_hash,
            ticket,
        })
    }
}

/// What the follow wants after an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowStep {
    /// Nothing yet.
    Wait,
    /// The new zone bound this connection to the avatar: switch to it.
    Done {
        /// The new zone's id (from its `avatar` answer).
        zone: u32,
        /// The new zone's number for the session.
        session: u64,
    },
    /// Following failed: why, in words.
    Failed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    Claiming,
    Finished,
}

/// The client side of taking an avatar back in the zone it moved to.
#[derive(Debug)]
pub struct ZoneFollow {
    moved: Moved,
    phase: Phase,
    started_ms: u64,
    last_sent_ms: u64,
    session: u64,
    claims: u32,
    held: Vec<Vec<u8>>,
}

impl ZoneFollow {
    /// A follow of `moved` starting at `now_ms`.
    pub fn new(moved: Moved, now_ms: u64) -> Self {
        Self {
            moved,
            phase: Phase::Connecting,
            started_ms: now_ms,
            last_sent_ms: now_ms,
            session: 0,
            claims: 0,
            held: Vec::with_capacity(MAX_HELD),
        }
    }

    /// Where the avatar went.
    pub fn moved(&self) -> &Moved {
        &self.moved
    }

    /// `claim`s sent so far.
    pub fn claims(&self) -> u32 {
        self.claims
    }

    /// The transport session to the new zone opened: `claim`.
    pub fn on_connected(&mut self, now_ms: u64, link: &mut dyn Link) {
        if self.phase == Phase::Connecting {
            self.phase = Phase::Claiming;
            self.send(now_ms, link);
        }
    }

    /// Resends `claim` when due; fails after [`FOLLOW_TIMEOUT_MS`].
    pub fn poll(&mut self, now_ms: u64, link: &mut dyn Link) -> FollowStep {
        if self.phase == Phase::Finished {
            return FollowStep::Wait;
        }
        if now_ms.saturating_sub(self.started_ms) >= FOLLOW_TIMEOUT_MS {
            return self.fail(format!(
                "zone {} did not give avatar {} back within {FOLLOW_TIMEOUT_MS} ms",
                self.moved.zone, self.moved.id
            ));
        }
        if self.phase == Phase::Claiming
            && now_ms.saturating_sub(self.last_sent_ms) >= CLAIM_RETRY_MS
        {
            self.send(now_ms, link);
        }
        FollowStep::Wait
    }

    /// Bytes from the new zone.
    pub fn on_bytes(&mut self, _now_ms: u64, bytes: &[u8], link: &mut dyn Link) -> FollowStep {
        if matches!(self.phase, Phase::Finished | Phase::Connecting) {
            return FollowStep::Wait;
        }
        if bytes.first() == Some(&PACKET_KIND) {
            if self.held.len() < MAX_HELD {
                self.held.push(bytes.to_vec());
            }
            return FollowStep::Wait;
        }
        let Ok(msg) = ControlMessage::decode(bytes) else {
            return FollowStep::Wait;
        };
        match msg {
            ControlMessage::Welcome { session, .. } => {
                link.datagram(&ControlMessage::WelcomeAck { session }.encode());
                self.session = session;
                FollowStep::Wait
            }
            ControlMessage::Avatar { id, zone } if id == self.moved.id => {
                self.phase = Phase::Finished;
                FollowStep::Done {
                    zone,
                    session: self.session,
                }
            }
            // The hand-off is not complete there yet: the next claim goes at its time.
            ControlMessage::Reply { id, result: Err(e) }
                if id == "claim" && e.starts_with("avatar_not_here") =>
            {
                FollowStep::Wait
            }
            ControlMessage::Reply { id, result: Err(e) } if id == "claim" => {
                self.fail(format!("zone {} refused the claim: {e}", self.moved.zone))
            }
            ControlMessage::Error { code, message } => {
                self.fail(format!("zone {}: {code}: {message}", self.moved.zone))
            }
            _ => FollowStep::Wait,
        }
    }

    /// The transport session to the new zone ended (or never opened).
    pub fn on_closed(&mut self, reason: &str) -> FollowStep {
        if self.phase == Phase::Finished {
            return FollowStep::Wait;
        }
        self.fail(format!(
            "the connection to zone {} ended: {reason}",
            self.moved.zone
        ))
    }

    /// The replication packets held until the switch, oldest first.
    pub fn take_held(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.held)
    }

    fn fail(&mut self, why: String) -> FollowStep {
        self.phase = Phase::Finished;
        FollowStep::Failed(why)
    }

    fn send(&mut self, now_ms: u64, link: &mut dyn Link) {
        self.claims += 1;
        let claim = ControlMessage::Claim {
            id: self.moved.id,
            ticket: self.moved.ticket.clone(),
        };
        link.message(&claim.encode());
        self.last_sent_ms = now_ms;
    }
}

#[cfg(test)]
#[path = "follow_tests.rs"]
mod tests;
