//! The fabric the players load: its zones' client addresses and certificate hashes, the Hilbert
//! layout that says which zone owns a point, and where join tokens come from.

use std::net::SocketAddr;
use std::time::Duration;

use fabric_core::coords::{Micros, WorldBounds};
use fabric_core::hilbert::encode_position;
use fabric_core::zones::ZoneLayout;
use fabric_net::CertHash;
use thiserror::Error;

/// Why a zone cannot be used or a token not obtained.
#[derive(Debug, Error)]
pub enum TargetError {
    /// A `--zone` argument is not `ADDR,CERT_HASH[,SHARD_ID]`.
    #[error("zone `{0}`: expected ADDR,CERT_HASH[,SHARD_ID]")]
    ZoneSyntax(String),
    /// The address is not on loopback: the load generator loads only this machine.
    #[error("zone address {0} is not a loopback address")]
    NotLoopback(SocketAddr),
    /// The zone count makes no Hilbert layout.
    #[error("{0} zones make no layout (1..=32)")]
    Layout(usize),
    /// The world's half-width makes no bounds.
    #[error("world half-width {0} m makes no bounds")]
    Bounds(f64),
    /// A zone has no shard id, so no token can be asked for it.
    #[error("zone {0} has no shard id to ask a join token for")]
    NoShard(u8),
    /// The registry's shard list could not be read.
    #[error("zone {zone}: the registry's shard list: {reason}")]
    Registry {
        /// The zone.
        zone: u8,
        /// Why.
        reason: String,
    },
    /// The gateway's certificate hash file could not be read or holds no hash.
    #[error("the gateway's certificate hash file: {0}")]
    GatewayPin(String),
    /// The gateway's zone cannot be reached on the player's walk.
    #[error("no point of the gateway's zone {0} to start in")]
    GatewayZone(u8),
    /// The backend refused or did not answer.
    #[error("join token for zone {zone}: {reason}")]
    Token {
        /// The zone.
        zone: u8,
        /// Why.
        reason: String,
    },
}

/// One zone's client endpoint.
#[derive(Debug, Clone)]
pub struct ZoneAddr {
    /// Client address (UDP for WebTransport, TCP for the WebSocket fallback: the same number).
    pub addr: SocketAddr,
    /// The zone's certificate hash, pinned.
    pub cert_hash: CertHash,
    /// The zone's shard id in the registry (needed for join tokens).
    pub shard: Option<String>,
}

impl ZoneAddr {
    /// Parses `ADDR,CERT_HASH[,SHARD_ID]`; the address must be on loopback.
    pub fn parse(text: &str) -> Result<Self, TargetError> {
        let bad = || TargetError::ZoneSyntax(text.to_owned());
        let mut parts = text.split(',');
        let addr: SocketAddr = parts.next().and_then(|a| a.parse().ok()).ok_or_else(bad)?;
        let cert_hash = parts
            .next()
            .and_then(|h| CertHash::parse(h).ok())
            .ok_or_else(bad)?;
        let shard = parts.next().map(str::to_owned);
        if parts.next().is_some() {
            return Err(bad());
        }
        if !addr.ip().is_loopback() {
            return Err(TargetError::NotLoopback(addr));
        }
        Ok(Self {
            addr,
            cert_hash,
            shard,
        })
    }
}

/// Which client transport the players use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// WebTransport (QUIC datagrams).
    WebTransport,
    /// The WebSocket fallback (`wss://`, same port over TCP).
    WebSocket,
}

/// Where join tokens come from: the registry backend and the players' account key.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// `http://127.0.0.1:PORT`.
    pub backend: String,
    /// The players' API key.
    pub api_key: String,
}

/// A gateway the players join through instead of joining zones directly: it fronts zone
/// `zone` and follows each avatar to the zone it moves to (`fabric-gateway`).
#[derive(Debug, Clone)]
pub struct Gateway {
    /// Its address (UDP, loopback).
    pub addr: SocketAddr,
    /// The file in which the gateway keeps its certificate hash (its `--cert-hash-file`),
    /// read for every new session: a gateway started again has a new certificate.
    pub cert_hash_file: std::path::PathBuf,
    /// The zone it fronts.
    pub zone: u8,
}

/// The fabric under load.
#[derive(Debug)]
pub struct Target {
    /// Zones, by zone index, as they were given; [`Target::zone`] has them as they are now.
    pub zones: Vec<ZoneAddr>,
    /// Zones as they are now: a restarted zone has a new certificate and shard id, learned
    /// from the registry ([`Target::refresh`]).
    current: Vec<std::sync::RwLock<ZoneAddr>>,
    /// The world's half-width, metres (the zones' `--world-bounds`).
    pub half_m: f64,
    /// Where tokens come from; `None` for zones that admit without one.
    pub tokens: Option<Tokens>,
    /// The transport.
    pub transport: Transport,
    /// The zones' newest `/state` readings, when players compare their view with them
    /// ([`crate::desync`]).
    pub truths: Option<std::sync::Arc<crate::desync::Truths>>,
    /// The QUIC endpoints players share (WebTransport); `None`: one endpoint per player, as
    /// a game client has.
    pub endpoints: Option<fabric_net::ClientEndpoints>,
    /// The gateway the players join through; `None`: they join zones directly.
    pub gateway: Option<Gateway>,
    layout: ZoneLayout,
    bounds: WorldBounds,
}

impl Target {
    /// A target of `zones` (by index) in a world of half-width `half_m` metres.
    pub fn new(
        zones: Vec<ZoneAddr>,
        half_m: f64,
        tokens: Option<Tokens>,
        transport: Transport,
    ) -> Result<Self, TargetError> {
        let layout = ZoneLayout::new(zones.len()).map_err(|_| TargetError::Layout(zones.len()))?;
        let h = (half_m * 1e6) as i64;
        let bounds = WorldBounds::new([-h; 3], [h; 3]).map_err(|_| TargetError::Bounds(half_m))?;
        Ok(Self {
            current: zones.iter().cloned().map(std::sync::RwLock::new).collect(),
            zones,
            half_m,
            tokens,
            transport,
            truths: None,
            endpoints: None,
            gateway: None,
            layout,
            bounds,
        })
    }

    /// The zone that owns the point `p` (metres).
    pub fn zone_of(&self, p: [f64; 3]) -> u8 {
        let v = p.map(|m| Micros::from_num(m * 1e6));
        self.layout.zone_of(encode_position(&self.bounds, &v))
    }

    /// Zone `zone` as it is now (see [`Target::refresh`]).
    pub fn zone(&self, zone: u8) -> ZoneAddr {
        self.current[usize::from(zone)]
            .read()
            .expect("zone lock")
            .clone()
    }

    /// Asks the registry for zone `zone` again: the newest registration at its address gives
    /// its certificate hash and shard id (a zone restarted on the same port registers anew,
    /// with a new certificate). `Ok(true)` when something changed; `Ok(false)` without a
    /// backend or when the registry lists nothing new at that address.
    pub async fn refresh(&self, zone: u8) -> Result<bool, TargetError> {
        let Some(t) = &self.tokens else {
            return Ok(false);
        };
        let addr = self.zones[usize::from(zone)].addr;
        let err = |reason: String| TargetError::Registry { zone, reason };
        let mut newest: Option<(u64, ZoneAddr)> = None;
        let mut after: Option<String> = None;
        loop {
            let path = match &after {
                None => "/shards?limit=1000".to_owned(),
                Some(a) => format!("/shards?limit=1000&after={a}"),
            };
            let r = fabric_net::http::request(
                &t.backend,
                "GET",
                &path,
                Some(&t.api_key),
                None,
                Duration::from_secs(10),
            )
            .await
            .map_err(|e| err(e.to_string()))?;
            if r.status != 200 {
                return Err(err(format!("HTTP {} {}", r.status, r.body)));
            }
            for s in r.body["shards"].as_array().into_iter().flatten() {
                let at = s["address"]
                    .as_str()
                    .zip(s["port"].as_u64())
                    .and_then(|(a, p)| format!("{a}:{p}").parse::<SocketAddr>().ok());
                let hash = s["cert_hash"]
                    .as_str()
                    .and_then(|h| CertHash::parse(h).ok());
                let created = s["created_at_ms"].as_u64().unwrap_or(0);
                if let (Some(at), Some(cert_hash)) = (at, hash)
                    && at == addr
                    && newest.as_ref().is_none_or(|(c, _)| created >= *c)
                {
                    let shard = s["id"].as_str().map(str::to_owned);
                    newest = Some((
                        created,
                        ZoneAddr {
                            addr,
                            cert_hash,
                            shard,
                        },
                    ));
                }
            }
            match r.body["next"].as_str() {
                Some(n) => after = Some(n.to_owned()),
                None => break,
            }
        }
        let Some((_, fresh)) = newest else {
            return Ok(false);
        };
        let mut cur = self.current[usize::from(zone)].write().expect("zone lock");
        let changed = cur.cert_hash != fresh.cert_hash || cur.shard != fresh.shard;
        *cur = fresh;
        Ok(changed)
    }

    /// The URL a player of zone `zone` connects to (the gateway's, when players join through
    /// one).
    pub fn url(&self, zone: u8) -> String {
        if let Some(g) = &self.gateway {
            return format!("https://{}/wt", g.addr);
        }
        let addr = self.zones[usize::from(zone)].addr;
        match self.transport {
            Transport::WebTransport => format!("https://{addr}/wt"),
            Transport::WebSocket => format!("wss://{addr}/ws"),
        }
    }

    /// How a player of zone `zone` connects: its URL, the zone's certificate pinned (or the
    /// gateway's, read from its file now), and the shared endpoints when the target has them.
    pub fn client_config(&self, zone: u8) -> Result<fabric_net::ClientConfig, TargetError> {
        let mut cfg = match &self.gateway {
            Some(g) => {
                let text = std::fs::read_to_string(&g.cert_hash_file).map_err(|e| {
                    TargetError::GatewayPin(format!("{}: {e}", g.cert_hash_file.display()))
                })?;
                let pins = CertHash::parse_list(&text)
                    .map_err(|e| TargetError::GatewayPin(e.to_string()))?;
                fabric_net::ClientConfig::pinning(self.url(zone), &pins)
                    .ok_or_else(|| TargetError::GatewayPin("no hash in it".into()))?
            }
            None => fabric_net::ClientConfig::new(self.url(zone), self.zone(zone).cert_hash),
        };
        cfg.endpoints = self.endpoints.clone();
        Ok(cfg)
    }

    /// The zone a player walking `walk` joins: the one that owns its position, or, through a
    /// gateway, the gateway's zone, the walker moved to the first point of its loop in it
    /// ([`Walk::start_in`]).
    pub fn join_zone(&self, walk: &mut crate::path::Walk) -> Result<u8, TargetError> {
        match &self.gateway {
            None => Ok(self.zone_of(walk.position())),
            Some(g) if walk.start_in(|p| self.zone_of(p) == g.zone) => Ok(g.zone),
            Some(g) => Err(TargetError::GatewayZone(g.zone)),
        }
    }

    /// A join token for zone `zone`, or `None` when the target has no backend.
    pub async fn token(&self, zone: u8) -> Result<Option<String>, TargetError> {
        let Some(t) = &self.tokens else {
            return Ok(None);
        };
        let shard = self.zone(zone).shard.ok_or(TargetError::NoShard(zone))?;
        let err = |reason: String| TargetError::Token { zone, reason };
        let body = serde_json::json!({ "zone_id": shard });
        let r = fabric_net::http::request(
            &t.backend,
            "POST",
            "/tokens/join",
            Some(&t.api_key),
            Some(&body),
            Duration::from_secs(10),
        )
        .await
        .map_err(|e| err(e.to_string()))?;
        if r.status != 200 {
            return Err(err(format!("HTTP {} {}", r.status, r.body)));
        }
        r.body["token"]
            .as_str()
            .map(|s| Some(s.to_owned()))
            .ok_or_else(|| err("no token in the answer".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

    #[test]
    fn zone_arguments_parse_and_only_loopback_is_accepted() {
        let z = ZoneAddr::parse(&format!("127.0.0.1:7443,{HASH},abc")).unwrap();
        assert_eq!(z.addr.port(), 7443);
        assert_eq!(z.shard.as_deref(), Some("abc"));
        assert!(
            ZoneAddr::parse(&format!("127.0.0.1:7443,{HASH}"))
                .unwrap()
                .shard
                .is_none()
        );
        assert!(matches!(
            ZoneAddr::parse(&format!("10.0.0.1:7443,{HASH}")),
            Err(TargetError::NotLoopback(_))
        ));
        assert!(matches!(
            ZoneAddr::parse("127.0.0.1:7443"),
            Err(TargetError::ZoneSyntax(_))
        ));
    }

    #[test]
    fn every_zone_owns_part_of_the_world_and_urls_follow_the_transport() {
        let zones: Vec<ZoneAddr> = (0..4)
            .map(|k| ZoneAddr::parse(&format!("127.0.0.1:{},{HASH}", 7000 + k)).unwrap())
            .collect();
        let t = Target::new(zones.clone(), 15.0, None, Transport::WebSocket).unwrap();
        let mut seen = [false; 4];
        for x in (-14..=14).step_by(4) {
            for y in (-14..=14).step_by(4) {
                for z in (-14..=14).step_by(4) {
                    let p = [x, y, z].map(f64::from);
                    seen[usize::from(t.zone_of(p))] = true;
                }
            }
        }
        assert_eq!(seen, [true; 4], "every zone owns part of the walkable cube");
        assert_eq!(t.url(2), "wss://127.0.0.1:7002/ws");
        let t = Target::new(zones, 15.0, None, Transport::WebTransport).unwrap();
        assert_eq!(t.url(0), "https://127.0.0.1:7000/wt");
    }
}
