//! Fabric membership: where each zone of a fabric listens for links, and which zones link.
//!
//! A [`Member`] is one zone's entry: its index, the fabric's zone count, the URL of its link
//! listener and the certificate hashes to pin (current, then next). Members come from a static
//! list (tests, the command line: [`Member::parse`]) or from the registry backend
//! ([`Member::from_registry_json`], the `members` of `GET /fabrics/{fabric}/members`).
//!
//! Two zones link when the range of one overlaps the AOI band of the other, or when their spaces
//! touch (a shared face, edge or corner: [`fabric_core::adjacency`]), so an entity stepping out
//! of a zone always steps into a linked one ([`fabric_core::aoi::neighbours`], taken both ways so
//! that both ends agree), and the **lower
//! index dials** the higher one: exactly one session per pair without a tie-break, and the zone
//! that dials is the one that keeps the reconnect backoff. A listener refuses a session from a
//! zone that should not dial it.

use fabric_core::aoi::neighbours;
use fabric_core::zones::{MAX_ZONES, ZoneId, ZoneLayout, ZoneMask};
use fabric_net::CertHash;

/// Path of the link listener.
pub const LINK_PATH: &str = "/link";

/// One zone of a fabric, as the registry (or a static list) lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Zone index.
    pub zone: ZoneId,
    /// Zones in the fabric (members listing another count are ignored).
    pub zones: u8,
    /// `https://host:port/link` of its link listener.
    pub url: String,
    /// Certificate hashes to pin (current first, then the next one).
    pub cert_hashes: Vec<CertHash>,
}

/// Why a member entry is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemberError {
    /// Not `zone/zones@host:port#hash[,hash]`.
    #[error("member {0:?} is not zone/zones@host:port#hash[,hash]")]
    Syntax(String),
    /// Zone or zone count out of range.
    #[error("member zone {zone} of {zones} is out of range (1..=32 zones)")]
    Range {
        /// Zone.
        zone: u32,
        /// Count.
        zones: u32,
    },
    /// A certificate hash does not parse.
    #[error("member certificate hash: {0}")]
    Hash(String),
}

impl Member {
    /// Parses `zone/zones@host:port#hash[,hash]` (hashes base64 or hex, as `fabric-net` pins).
    pub fn parse(text: &str) -> Result<Member, MemberError> {
        let syntax = || MemberError::Syntax(text.to_owned());
        let (ids, rest) = text.trim().split_once('@').ok_or_else(syntax)?;
        let (addr, hashes) = rest.split_once('#').ok_or_else(syntax)?;
        let (zone, zones) = ids.split_once('/').ok_or_else(syntax)?;
        let zone: u32 = zone.parse().map_err(|_| syntax())?;
        let zones: u32 = zones.parse().map_err(|_| syntax())?;
        if addr.is_empty() || addr.contains('/') {
            return Err(syntax());
        }
        let cert_hashes =
            CertHash::parse_list(hashes).map_err(|e| MemberError::Hash(e.to_string()))?;
        Self::checked(
            zone,
            zones,
            format!("https://{addr}{LINK_PATH}"),
            cert_hashes,
        )
    }

    fn checked(
        zone: u32,
        zones: u32,
        url: String,
        cert_hashes: Vec<CertHash>,
    ) -> Result<Member, MemberError> {
        if zones == 0 || zones as usize > MAX_ZONES || zone >= zones {
            return Err(MemberError::Range { zone, zones });
        }
        if cert_hashes.is_empty() {
            return Err(MemberError::Hash("no certificate hash".into()));
        }
        Ok(Member {
            zone: zone as ZoneId,
            zones: zones as u8,
            url,
            cert_hashes,
        })
    }

    /// One entry of the registry's member list:
    /// `{"zone": k, "zones": n, "link_address": "host:port", "link_cert_hash": "...",
    /// "link_next_cert_hash": "..." | null}`.
    pub fn from_registry_json(v: &serde_json::Value) -> Result<Member, MemberError> {
        let syntax = || MemberError::Syntax(v.to_string());
        let zone = v["zone"].as_u64().ok_or_else(syntax)?;
        let zones = v["zones"].as_u64().ok_or_else(syntax)?;
        let addr = v["link_address"].as_str().ok_or_else(syntax)?;
        let mut hashes = vec![v["link_cert_hash"].as_str().ok_or_else(syntax)?];
        if let Some(next) = v["link_next_cert_hash"].as_str() {
            hashes.push(next);
        }
        let cert_hashes = hashes
            .into_iter()
            .map(CertHash::parse)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| MemberError::Hash(e.to_string()))?;
        Self::checked(
            zone.min(u32::MAX as u64) as u32,
            zones.min(u32::MAX as u64) as u32,
            format!("https://{addr}{LINK_PATH}"),
            cert_hashes,
        )
    }

    /// The text [`Member::parse`] reads back.
    pub fn to_arg(&self) -> String {
        let addr = self
            .url
            .trim_start_matches("https://")
            .trim_end_matches(LINK_PATH);
        let hashes: Vec<String> = self.cert_hashes.iter().map(CertHash::to_base64).collect();
        format!("{}/{}@{addr}#{}", self.zone, self.zones, hashes.join(","))
    }
}

/// The zones `zone` links with: those whose range overlaps its band, whose band overlaps its
/// range, or whose space touches its space.
pub fn linked(layout: &ZoneLayout, zone: ZoneId) -> ZoneMask {
    let mut mask = neighbours(layout, zone).0;
    for other in 0..layout.count() as ZoneId {
        if other != zone && neighbours(layout, other).contains(zone) {
            mask |= 1 << other;
        }
    }
    ZoneMask(mask & !(1u32 << zone))
}

/// Whether `zone` dials `peer` (the lower index dials).
pub fn dials(zone: ZoneId, peer: ZoneId) -> bool {
    zone < peer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_members_parse_and_print() {
        let h = CertHash([7; 32]).to_base64();
        let m = Member::parse(&format!("1/3@127.0.0.1:7000#{h}")).unwrap();
        assert_eq!(m.zone, 1);
        assert_eq!(m.zones, 3);
        assert_eq!(m.url, "https://127.0.0.1:7000/link");
        assert_eq!(m.cert_hashes, vec![CertHash([7; 32])]);
        assert_eq!(Member::parse(&m.to_arg()).unwrap(), m, "round trip");
        for bad in ["", "1@x#h", "3/3@a:1#", "0/0@a:1#x", "1/3@a:1/x#h"] {
            assert!(Member::parse(bad).is_err(), "{bad:?} refused");
        }
        let j = serde_json::json!({"zone": 2, "zones": 3, "link_address": "127.0.0.1:9",
            "link_cert_hash": h, "link_next_cert_hash": null});
        let m = Member::from_registry_json(&j).unwrap();
        assert_eq!((m.zone, m.url.as_str()), (2, "https://127.0.0.1:9/link"));
        assert!(Member::from_registry_json(&serde_json::json!({"zone": 5})).is_err());
    }

    #[test]
    fn links_are_symmetric_and_only_between_neighbours() {
        for n in 1..=32usize {
            let layout = ZoneLayout::new(n).unwrap();
            for a in 0..n as ZoneId {
                for b in 0..n as ZoneId {
                    assert_eq!(
                        linked(&layout, a).contains(b),
                        linked(&layout, b).contains(a),
                        "{n} zones: {a}-{b} symmetric"
                    );
                }
                assert!(!linked(&layout, a).contains(a), "no self link");
            }
        }
        let four = ZoneLayout::new(4).unwrap();
        assert!(
            linked(&four, 0).contains(3),
            "4 zones: the curve's first and last quarters touch in space, so they link"
        );
        let eight = ZoneLayout::new(8).unwrap();
        assert_eq!(
            linked(&eight, 0).len(),
            7,
            "8 zones: the octants all meet at the centre"
        );
        let many = ZoneLayout::new(32).unwrap();
        for a in 0..32 {
            let l = linked(&many, a);
            assert!(l.contains(a ^ 1), "32 zones: {a} links its sibling cell");
            assert!(
                l.len() < 31,
                "32 zones: {a} does not link every zone ({l:?})"
            );
        }
        assert_eq!(
            linked(&ZoneLayout::new(3).unwrap(), 0).len(),
            2,
            "3 zones: all pairs"
        );
    }
}
