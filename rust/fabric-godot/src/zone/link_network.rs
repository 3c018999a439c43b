//! [`ZoneNetwork`] over `fabric-link`'s [`ZoneLinks`]: a zone process's authenticated
//! WebTransport links to the neighbouring zone processes of its fabric (`--link network`).
//!
//! Membership (who listens where) comes one of two ways:
//! - **static**: every zone holds the fabric key (`--fabric-key-file`) and signs its own link
//!   credential; the members are given inline (`--members "0/3@127.0.0.1:9000#hash 1/3@..."`)
//!   and/or in a file (`--members-file PATH`, entries separated by whitespace, re-read whenever
//!   it changes). A zone's certificate is made at start, so each zone prints its own entry
//!   (`FABRIC_ZONE_LINK_READY zone_id=k member=k/n@host:port#hash`) and whoever starts the
//!   fabric collects them into the file;
//! - **registry** (`--backend URL` with an API key): the zone registers its link listener as a
//!   member of the fabric (`Registration::start_in_fabric`), installs the link credential the
//!   registry grants, and follows `GET /fabrics/{fabric}/members`. With the grant it also
//!   makes the zone's follow-ticket keys ([`super::follow::LinkedTickets`]): tickets signed by
//!   its link key carrying its credential, checked with the registry's keys. After the registry
//!   rotates its signing key the registration renews the grant (a credential signed by the new
//!   key, the new key trusted): it is installed again, and links already up stay up.
//!
//! Everything here runs from the tick's `drain` and never blocks: a changed members file is
//! noticed by its size and modification time, checked at most four times a second.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use fabric_core::config::ZoneConfig;
use fabric_core::zones::ZoneId;
use fabric_link::links::load_fabric_key;
use fabric_link::membership::MemberError;
use fabric_link::{Delivery, LinkConfig, LinkError, LinkEvent, Member, ZoneLinks};
use fabric_net::ServerIdentity;
use fabric_net::registry::{LinkGrant, Registration, RegistrationConfig};
use thiserror::Error;

use super::config::ZoneSettings;
use super::network::{LinkInfo, NetEvent, SendRefused, ZoneNetwork};

/// How often a members file is looked at, and the registry's member list fetched.
const MEMBERS_POLL: Duration = Duration::from_millis(250);

/// Settings of network links (command line: `--fabric-key-file`, `--members`,
/// `--members-file`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkSettings {
    /// The fabric key (static membership): base64url Ed25519 seed on the first line.
    pub fabric_key_file: Option<PathBuf>,
    /// Members given inline (`zone/zones@host:port#hash[,hash]`).
    pub members: Vec<String>,
    /// A file of members, re-read when it changes.
    pub members_file: Option<PathBuf>,
    /// Where clients reach each zone (`zone@host:port#hash ...`, re-read when it changes):
    /// `avatar_moved` names the new zone's address from it ([`super::follow`]).
    pub zone_directory_file: Option<PathBuf>,
}

/// Why network links could not start.
#[derive(Debug, Error)]
pub enum LinkNetError {
    /// Neither a fabric key nor a registry to get credentials from.
    #[error(
        "--link network needs --fabric-key-file (static members) or --backend with an API key (registry members)"
    )]
    NoCredentials,
    /// The link bind address does not parse.
    #[error("bad link bind address `{0}`")]
    Bind(String),
    /// A member entry is malformed.
    #[error(transparent)]
    Member(#[from] MemberError),
    /// The key file, certificate or listener failed.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// The certificate could not be made.
    #[error("link certificate: {0}")]
    Identity(String),
    /// The backend URL or its pinned certificate hash is not usable.
    #[error(transparent)]
    Backend(#[from] super::config::ConfigError),
}

/// Where the members come from after start.
enum Membership {
    Static {
        inline: Vec<Member>,
        file: Option<PathBuf>,
        seen: Option<(SystemTime, u64)>,
        next_check: Instant,
    },
    Registry {
        registration: Box<Registration>,
        /// The registration's grants (the first, then renewals after key rotations).
        grants: tokio::sync::watch::Receiver<Option<LinkGrant>>,
        backend: fabric_net::http::Endpoint,
        api_key: String,
        /// The grant in force (renewed after a key rotation).
        installed: Option<Box<LinkGrant>>,
        /// Signs this zone's follow tickets once the credential is granted.
        link_key: Box<ed25519_dalek::SigningKey>,
    },
}

/// This zone's links to its neighbours in other processes.
pub struct LinkNetwork {
    links: ZoneLinks,
    membership: Membership,
    tickets: super::follow::LinkedSlot,
}

impl std::fmt::Debug for LinkNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkNetwork")
            .field("member", &self.links.member())
            .finish_non_exhaustive()
    }
}

/// The tick number of now counted in periods of `tick_hz` since the Unix epoch: zones of one
/// fabric in different processes start their tick there, so they agree on tick numbers (the
/// core drops intents whose clock is far ahead of its own) and a restarted zone is not behind.
pub fn epoch_tick(tick_hz: u32) -> u64 {
    epoch_position(tick_hz).0
}

/// The current tick since the Unix epoch (as [`epoch_tick`]) and how far into its period now
/// is, nanoseconds.
pub fn epoch_position(tick_hz: u32) -> (u64, u64) {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let period = 1_000_000_000 / u128::from(tick_hz.max(1));
    ((since / period) as u64, (since % period) as u64)
}

fn parse_members<'a>(entries: impl Iterator<Item = &'a str>) -> Result<Vec<Member>, MemberError> {
    entries
        .flat_map(|e| e.split([' ', '\t', '\n', '\r', ';']))
        .filter(|e| !e.trim().is_empty())
        .map(Member::parse)
        .collect()
}

impl LinkNetwork {
    /// Starts the link listener for the zone `cfg` with the settings `s` (static membership
    /// with a fabric key file, else registry membership with `backend_url`).
    pub fn start(s: &ZoneSettings, cfg: &ZoneConfig) -> Result<Self, LinkNetError> {
        let ls = &s.link_net;
        let bind = crate::bind_addr(&s.bind, i32::from(s.link_port))
            .ok_or_else(|| LinkNetError::Bind(s.bind.clone()))?;
        let registry = !s.backend_url.is_empty() && !s.api_key.is_empty();
        let (link_cfg, membership) = match &ls.fabric_key_file {
            Some(path) => {
                let key = load_fabric_key(path)?;
                let mut c =
                    LinkConfig::with_fabric_key(&s.fabric, cfg.zone_id, cfg.layout, bind, &key)?;
                let inline = parse_members(ls.members.iter().map(String::as_str))?;
                c.members = inline.clone();
                let m = Membership::Static {
                    inline,
                    file: ls.members_file.clone(),
                    seen: None,
                    next_check: Instant::now(),
                };
                (c, Ok(m))
            }
            None if registry => {
                let identity = ServerIdentity::self_signed_local()
                    .map_err(|e| LinkNetError::Identity(e.to_string()))?;
                let link_key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
                let c = LinkConfig::awaiting_credential(
                    &s.fabric,
                    cfg.zone_id,
                    cfg.layout,
                    bind,
                    identity,
                    link_key.clone(),
                );
                (c, Err(link_key))
            }
            None => return Err(LinkNetError::NoCredentials),
        };
        let links = ZoneLinks::start(link_cfg)?;
        let membership = match membership {
            Ok(m) => m,
            Err(link_key) => {
                let backend = s.backend_endpoint()?;
                let mut fabric = links.fabric_membership();
                let address = advertised_host(s, &links);
                fabric.link_address = Some(address.clone());
                let registration = Registration::start_in_fabric(
                    RegistrationConfig {
                        backend: backend.clone(),
                        pinned_join_keys: s.join_keys.clone(),
                        api_key: s.api_key.clone(),
                        address: Some(address),
                        port: links.local_addr().port(),
                        map: s.map_name.clone(),
                        name: format!("fabric {} zone {} links", s.fabric, cfg.zone_id),
                        cert_hash: fabric.link_cert_hash.clone(),
                        next_cert_hash: None,
                        max_users: 1,
                        public: false,
                        heartbeat: Duration::from_secs_f64(s.heartbeat_sec.clamp(0.05, 3600.0)),
                    },
                    fabric,
                );
                Membership::Registry {
                    grants: registration.link_grants(),
                    registration: Box::new(registration),
                    backend,
                    api_key: s.api_key.clone(),
                    installed: None,
                    link_key: Box::new(link_key),
                }
            }
        };
        Ok(Self {
            links,
            membership,
            tickets: Default::default(),
        })
    }

    /// Where this zone's follow-ticket keys appear once the registry granted its credential
    /// (never with static membership: the fabric key signs those tickets).
    pub(crate) fn linked_tickets(&self) -> super::follow::LinkedSlot {
        self.tickets.clone()
    }

    /// This zone's member entry (`zone/zones@host:port#hash`), for a static members list.
    pub fn member_arg(&self) -> String {
        self.links.member().to_arg()
    }

    /// Whether this zone holds a link credential (at once with a fabric key; once the registry
    /// answered in registry mode).
    pub fn has_credential(&self) -> bool {
        match &self.membership {
            Membership::Static { .. } => true,
            Membership::Registry { installed, .. } => installed.is_some(),
        }
    }

    /// Notices a changed members file, or the registry's grant; never blocks.
    fn poll_membership(&mut self) {
        match &mut self.membership {
            Membership::Static {
                inline,
                file: Some(path),
                seen,
                next_check,
            } => {
                let now = Instant::now();
                if now < *next_check {
                    return;
                }
                *next_check = now + MEMBERS_POLL;
                let Ok(meta) = std::fs::metadata(&*path) else {
                    return;
                };
                let stamp = (
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    meta.len(),
                );
                if *seen == Some(stamp) {
                    return;
                }
                match read_members_file(path) {
                    Ok(mut ms) => {
                        *seen = Some(stamp);
                        ms.extend(inline.iter().cloned());
                        tracing::info!(members = ms.len(), "members file read");
                        self.links.set_members(ms);
                    }
                    // Possibly half written: the last good list stays, and it is read again.
                    Err(e) => tracing::warn!("members file {}: {e}", path.display()),
                }
            }
            Membership::Static { file: None, .. } => {}
            Membership::Registry {
                registration,
                grants,
                backend,
                api_key,
                installed,
                link_key,
            } => {
                while registration.try_next_event().is_some() {}
                // Cheap on every tick: the grant is looked at only when it changed.
                if installed.is_some() && !grants.has_changed().unwrap_or(false) {
                    return;
                }
                let Some(grant) = grants.borrow_and_update().clone() else {
                    return;
                };
                let member = self.links.member();
                let fabric = self.links.fabric_membership().name;
                match fabric_link::registry::decode_grant(&fabric, member.zones, &grant) {
                    Ok((credential, verifier)) => {
                        *self.tickets.write().expect("tickets lock") =
                            Some(std::sync::Arc::new(super::follow::LinkedTickets::new(
                                &fabric,
                                member.zone,
                                (**link_key).clone(),
                                credential.clone(),
                                verifier.clone(),
                            )));
                        self.links.set_credential(credential, verifier);
                        if installed.is_none() {
                            self.links.follow_registry(backend, api_key, MEMBERS_POLL);
                        }
                        *installed = Some(Box::new(grant));
                    }
                    Err(e) => tracing::warn!("registry link grant: {e}"),
                }
            }
        }
    }
}

/// The host others dial: the public address when given, else the bound address (loopback when
/// bound to all interfaces).
fn advertised_host(s: &ZoneSettings, links: &ZoneLinks) -> String {
    let ip = links.local_addr().ip();
    if !s.public_address.is_empty() {
        s.public_address.clone()
    } else if ip.is_unspecified() {
        "127.0.0.1".into()
    } else {
        ip.to_string()
    }
}

fn read_members_file(path: &Path) -> Result<Vec<Member>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    parse_members(text.lines()).map_err(|e| e.to_string())
}

impl ZoneNetwork for LinkNetwork {
    fn send(&mut self, to: ZoneId, bytes: &[u8]) -> Result<(), SendRefused> {
        self.links
            .send(to, Delivery::of(bytes), bytes)
            .map_err(|_| SendRefused::NoLink(to))
    }

    fn drain(&mut self, max_events: usize, f: &mut dyn FnMut(NetEvent<'_>)) -> usize {
        self.poll_membership();
        self.links.drain(max_events, |ev| match ev {
            LinkEvent::Packet { from, bytes } => f(NetEvent::Packet { from, bytes }),
            LinkEvent::Linked { zone } => f(NetEvent::Linked { zone }),
            LinkEvent::Unlinked { zone } => f(NetEvent::Unlinked { zone }),
        })
    }

    fn links(&self, out: &mut Vec<LinkInfo>) {
        out.clear();
        out.extend(
            self.links
                .stats()
                .iter()
                .filter(|l| l.up)
                .map(|l| LinkInfo {
                    zone: l.zone,
                    rtt_ms: l.rtt.map_or(0.0, |d| d.as_secs_f64() * 1e3),
                    bytes_out: l.bytes_out,
                    bytes_in: l.bytes_in,
                    refused: l.refused,
                }),
        );
    }

    fn guard(&self) -> fabric_link::LinkCounters {
        self.links.counters()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_lists_split_on_spaces_lines_and_semicolons() {
        let h = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let line =
            format!("0/3@127.0.0.1:9000#{h} 1/3@127.0.0.1:9001#{h};\n2/3@127.0.0.1:9002#{h}");
        let ms = parse_members(std::iter::once(line.as_str())).unwrap();
        assert_eq!(ms.iter().map(|m| m.zone).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(ms[2].url, "https://127.0.0.1:9002/link");
        assert!(parse_members(std::iter::once("0/3@nohash")).is_err());
    }

    #[test]
    fn epoch_ticks_agree_and_advance() {
        let a = epoch_tick(20);
        let b = epoch_tick(20);
        assert!(b >= a && b - a <= 1);
        assert!(a > 20 * 1_700_000_000, "counted from 1970");
        let (_, phase) = epoch_position(20);
        assert!(phase < 50_000_000, "within one 50 ms period: {phase}");
    }
}
