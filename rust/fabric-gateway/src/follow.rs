//! Following a client's avatar to the zone it was handed to.
//!
//! When the upstream zone says `avatar_moved` (`docs/session-protocol.md`, "Following the
//! avatar"), the bridge starts a [`Follow`]: a second upstream session to the new zone, found
//! in the gateway's zone list or else at the address the message names. On it the gateway says
//! `hello` (with the client's join token, resent every 250 ms until the `welcome`), acknowledges
//! the welcome and sends `claim` with the ticket (again every 20 ms while the zone answers
//! `avatar_not_here`). The zone's `avatar` answer completes it: the bridge then switches the
//! client's traffic to the new session. Datagrams the new zone sends before that (its first
//! replication packets) are held, at most [`MAX_HELD`], and delivered right after the switch.
//!
//! So that a crossing costs only the claim's round trip, the bridge keeps a **standby**
//! session to each other zone of its list ([`Follow::standby`]: connected, `hello` said,
//! welcome acknowledged, nothing claimed), opened once the client said `hello`; the session a
//! switch leaves becomes the standby for that zone (the way back).

use std::net::SocketAddr;
use std::time::Duration;

use fabric_core::session_control::ControlMessage;
use fabric_core::zone_directory::ZoneDirectory;
use fabric_net::{CertHash, Client, ClientConfig, ClientEvent};
use tokio::time::Instant;

/// Datagrams of the new zone held until the switch.
pub const MAX_HELD: usize = 16;
/// Claims sent while the new zone does not hold the avatar yet.
const MAX_CLAIMS: u32 = 100;
const HELLO_EVERY: Duration = Duration::from_millis(250);
const CLAIM_EVERY: Duration = Duration::from_millis(20);

/// Where the avatar went, from `avatar_moved`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// Avatar id.
    pub id: u32,
    /// The zone that holds it.
    pub zone: u32,
    /// The address the old zone named.
    pub address: Option<String>,
    /// The hashes the old zone named.
    pub cert_hash: Option<String>,
    /// The ticket.
    pub ticket: String,
}

impl Moved {
    /// The `avatar_moved` in `bytes`, if that is what they are.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        if !ControlMessage::is_control(bytes) {
            return None;
        }
        match ControlMessage::decode(bytes) {
            Ok(ControlMessage::AvatarMoved {
                id,
                zone,
                address,
                cert_hash,
                ticket,
            }) => Some(Self {
                id,
                zone,
                address,
                cert_hash,
                ticket,
            }),
            _ => None,
        }
    }

    /// The new zone's address and pins: the gateway's own list first, else the message's.
    pub fn target(&self, zones: &ZoneDirectory) -> Result<(SocketAddr, Vec<CertHash>), String> {
        let (addr, hashes) = match zones.get(self.zone) {
            Some(e) => (e.address.as_str(), e.cert_hashes.as_str()),
            None => match (&self.address, &self.cert_hash) {
                (Some(a), Some(h)) => (a.as_str(), h.as_str()),
                _ => {
                    return Err(format!(
                        "zone {} is not in the gateway's zone list",
                        self.zone
                    ));
                }
            },
        };
        let addr: SocketAddr = addr
            .parse()
            .map_err(|_| format!("zone {} address `{addr}` is not IP:PORT", self.zone))?;
        let pins = CertHash::parse_list(hashes)
            .map_err(|e| format!("zone {} certificate hashes: {e}", self.zone))?;
        Ok((addr, pins))
    }
}

/// What a [`Follow`] wants after an event.
#[derive(Debug)]
pub enum Step {
    /// Nothing yet.
    Wait,
    /// The avatar is the client's in the new zone: switch.
    Done,
    /// Following failed: why.
    Failed(String),
}

/// A session to another zone: a standby, or the one the avatar is being followed to.
pub struct Follow {
    /// The session to the zone.
    pub up: Client,
    /// Its address.
    pub addr: SocketAddr,
    /// The zone, when known.
    pub zone: Option<u32>,
    /// Where the avatar went (`None`: a standby).
    pub moved: Option<Moved>,
    token: Option<String>,
    welcomed: bool,
    claims: u32,
    next_send: Instant,
    /// Datagrams of the new zone held until the switch.
    pub held: Vec<bytes::Bytes>,
}

impl Follow {
    /// Opens the session to the new zone; `token` is the client's join token.
    pub fn start(
        moved: Moved,
        zones: &ZoneDirectory,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let (addr, pins) = moved.target(zones)?;
        let mut f = Self::standby(moved.zone, addr, &pins, token, timeout)?;
        f.moved = Some(moved);
        Ok(f)
    }

    /// Opens a standby session to zone `zone` at `addr`: `hello` (with `token`) and the
    /// welcome's acknowledgement, no claim until [`Follow::begin`].
    pub fn standby(
        zone: u32,
        addr: SocketAddr,
        pins: &[CertHash],
        token: Option<String>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let mut cfg = ClientConfig::pinning(format!("https://{addr}/wt"), pins)
            .ok_or_else(|| format!("zone {zone} has no certificate hash"))?;
        cfg.connect_timeout = timeout;
        Ok(Self::idle(
            Client::connect(cfg),
            addr,
            Some(zone),
            token,
            false,
        ))
    }

    /// An open session kept as a standby (`welcomed`: its welcome was acknowledged).
    pub fn idle(
        up: Client,
        addr: SocketAddr,
        zone: Option<u32>,
        token: Option<String>,
        welcomed: bool,
    ) -> Self {
        Self {
            up,
            addr,
            zone,
            moved: None,
            token,
            welcomed,
            claims: 0,
            next_send: far_future(),
            held: Vec::new(),
        }
    }

    /// Follows the avatar on this session: claims it now when welcomed, else once welcomed.
    pub fn begin(&mut self, moved: Moved) -> Step {
        self.moved = Some(moved);
        if !self.welcomed {
            return Step::Wait;
        }
        match self.claim() {
            Ok(()) => Step::Wait,
            Err(e) => Step::Failed(e),
        }
    }

    /// True once the zone's welcome was acknowledged.
    pub fn is_welcomed(&self) -> bool {
        self.welcomed
    }

    /// When [`Follow::on_timer`] is due.
    pub fn next_send(&self) -> Instant {
        self.next_send
    }

    fn hello(&mut self) -> Result<(), String> {
        let hello = ControlMessage::Hello {
            id: "gateway-follow".into(),
            token: self.token.clone(),
        };
        self.up
            .send_datagram(&hello.encode())
            .map_err(|e| e.to_string())?;
        self.next_send = Instant::now() + HELLO_EVERY;
        Ok(())
    }

    fn claim(&mut self) -> Result<(), String> {
        let Some(moved) = &self.moved else {
            self.next_send = far_future();
            return Ok(());
        };
        if self.claims == MAX_CLAIMS {
            return Err(format!(
                "zone {} did not take avatar {} after {MAX_CLAIMS} claims",
                moved.zone, moved.id
            ));
        }
        self.claims += 1;
        let claim = ControlMessage::Claim {
            id: moved.id,
            ticket: moved.ticket.clone(),
        };
        self.up
            .send_message(claim.encode())
            .map_err(|e| e.to_string())?;
        // Reliable: sent again only when the zone answers `avatar_not_here`.
        self.next_send = far_future();
        Ok(())
    }

    /// The resend timer fired: a standby's `hello` again before the welcome, else `claim` again.
    pub fn on_timer(&mut self) -> Step {
        let sent = if self.welcomed || self.moved.is_some() {
            self.claim()
        } else {
            self.hello()
        };
        match sent {
            Ok(()) => Step::Wait,
            Err(e) => Step::Failed(e),
        }
    }

    /// An event of the new upstream session.
    pub fn on_event(&mut self, ev: Option<ClientEvent>) -> Step {
        let bytes = match ev {
            Some(ClientEvent::Connected { .. }) => {
                // Following: `claim` at once, no `hello`. The client's join token names the
                // zone it joined, and a zone that requires tokens (a registry fabric) would
                // refuse it; the follow ticket admits the session instead.
                let sent = if self.moved.is_some() {
                    self.claim()
                } else {
                    self.hello()
                };
                return match sent {
                    Ok(()) => Step::Wait,
                    Err(e) => Step::Failed(e),
                };
            }
            Some(ClientEvent::Datagram(d)) => {
                if !ControlMessage::is_control(&d) {
                    if self.moved.is_some() && self.held.len() < MAX_HELD {
                        self.held.push(d);
                    }
                    return Step::Wait;
                }
                d.to_vec()
            }
            Some(ClientEvent::Message(m)) => m,
            Some(ClientEvent::Failed(e)) => return Step::Failed(e.to_string()),
            Some(ClientEvent::Closed { reason, .. }) => {
                return Step::Failed(format!("the zone ended the session: {reason}"));
            }
            None => return Step::Failed("the session ended".into()),
        };
        match ControlMessage::decode(&bytes) {
            Ok(ControlMessage::Welcome {
                session, zone_id, ..
            }) if !self.welcomed => {
                self.welcomed = true;
                self.zone.get_or_insert(zone_id);
                let ack = ControlMessage::WelcomeAck { session }.encode();
                if let Err(e) = self.up.send_datagram(&ack) {
                    return Step::Failed(e.to_string());
                }
                if self.claims > 0 {
                    return Step::Wait; // claimed on connecting
                }
                match self.claim() {
                    Ok(()) => Step::Wait,
                    Err(e) => Step::Failed(e),
                }
            }
            Ok(ControlMessage::Avatar { id, .. })
                if self.moved.as_ref().is_some_and(|m| m.id == id) =>
            {
                Step::Done
            }
            Ok(ControlMessage::Reply { id, result: Err(e) }) if id == "claim" => {
                if e.starts_with("avatar_not_here") {
                    self.next_send = Instant::now() + CLAIM_EVERY;
                    Step::Wait // the timer claims again
                } else {
                    Step::Failed(format!("claim refused: {e}"))
                }
            }
            Ok(ControlMessage::Error { code, message }) => {
                Step::Failed(format!("{code}: {message}"))
            }
            _ => Step::Wait,
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "WvlzFa10zR3mNQqWvlzFa10zR3mNQqWvlzFa10zR3mM=";

    fn moved(address: Option<&str>) -> Moved {
        Moved {
            id: 5,
            zone: 1,
            address: address.map(String::from),
            cert_hash: address.map(|_| H.to_owned()),
            ticket: "t".into(),
        }
    }

    #[test]
    fn the_gateways_list_wins_over_the_message() {
        let list = ZoneDirectory::parse(&format!("1@127.0.0.1:9001#{H}")).unwrap();
        let (addr, pins) = moved(Some("127.0.0.1:7000")).target(&list).unwrap();
        assert_eq!(addr, "127.0.0.1:9001".parse().unwrap());
        assert_eq!(pins.len(), 1);
        let (addr, _) = moved(Some("127.0.0.1:7000"))
            .target(&ZoneDirectory::default())
            .unwrap();
        assert_eq!(
            addr,
            "127.0.0.1:7000".parse().unwrap(),
            "else the message's"
        );
        let e = moved(None).target(&ZoneDirectory::default()).unwrap_err();
        assert!(e.contains("not in the gateway's zone list"), "{e}");
        let e = moved(Some("zone1:7000"))
            .target(&ZoneDirectory::default())
            .unwrap_err();
        assert!(e.contains("not IP:PORT"), "{e}");
    }

    #[test]
    fn only_avatar_moved_parses() {
        let m = ControlMessage::AvatarMoved {
            id: 5,
            zone: 1,
            address: None,
            cert_hash: None,
            ticket: "t".into(),
        };
        assert_eq!(Moved::parse(&m.encode()), Some(moved(None)));
        assert_eq!(
            Moved::parse(&ControlMessage::Avatar { id: 5, zone: 1 }.encode()),
            None
        );
        assert_eq!(Moved::parse(b"\x43\x01"), None);
    }
}
