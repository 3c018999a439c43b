//! CMD_INSTANCE_ASSET in the zone: whether a player may place an asset instance, and the
//! payload that names the asset.
//!
//! Sans-IO: the zone glue (`fabric-godot`, `zone/assets.rs`) gives the packet, the avatar's
//! position and the zone's configuration, and gets a decision. The checks, after the command
//! gate ([`crate::command_gate`]) accepted the packet, in order:
//!
//! 0. **permission** ([`Refusal::PlaceForbidden`]): the player may place at all ([`Placer`]:
//!    the `place` claim of its join token, or any player of a zone without tokens). Checked
//!    first, so a player without it learns nothing about which assets the zone knows;
//! 1. **asset** ([`Refusal::UnknownAsset`]): the asset id is one the zone knows
//!    ([`AssetFilter`]: any non-zero id, or a fixed list, e.g. the map's assets);
//! 2. **zone** ([`Refusal::NotInZone`]): the position's Hilbert code falls in this zone's range
//!    (an instance is owned by the zone it stands in, like any entity);
//! 3. **radius** ([`Refusal::TooFar`]): the position is within
//!    [`PlacementRules::radius_um`] of the avatar (10 m by default).
//!
//! An instance's payload (`docs/protocol.md`, "Payload conventions"):
//!
//! | word | value |
//! |---|---|
//! | 0 | class word `5 << 24 \| (asset id & 0xFFFFFF)`: what clients receive |
//! | 1 | asset id, high 32 bits |
//! | 2 | asset id, low 32 bits |
//! | 3 | the global id of the avatar that placed it |
//! | 4..14 | zero |

use crate::command_gate::Refusal;
use crate::config::ZoneConfig;
use crate::coords::Vec3;
use crate::entity_row::PAYLOAD_WORDS;

/// The class of an asset instance (`payload[0] >> 24`).
pub const ASSET_CLASS: u32 = 5;
/// Default placement radius around the avatar: 10 m, in micrometres.
pub const DEFAULT_RADIUS_UM: i64 = 10_000_000;

/// Which asset ids a zone accepts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AssetFilter {
    /// Any non-zero id (a zone without an asset registry: tests, demos).
    #[default]
    Any,
    /// Only these ids (sorted, no duplicates).
    Only(Vec<u64>),
}

impl AssetFilter {
    /// A filter accepting exactly `ids`.
    pub fn only(mut ids: Vec<u64>) -> Self {
        ids.sort_unstable();
        ids.dedup();
        Self::Only(ids)
    }

    /// Whether `asset_id` is accepted (0 never is).
    pub fn knows(&self, asset_id: u64) -> bool {
        asset_id != 0
            && match self {
                Self::Any => true,
                Self::Only(ids) => ids.binary_search(&asset_id).is_ok(),
            }
    }
}

/// Whether the player sending a CMD_INSTANCE_ASSET may place assets at all (decided on
/// admission: `fabric_core::admission::Admission::may_place`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placer {
    /// May place (the token's `place` claim, or a zone without tokens).
    Allowed,
    /// May not: refused with [`Refusal::PlaceForbidden`].
    Forbidden,
}

impl Placer {
    /// `Allowed` when `may` is true.
    pub fn from_permission(may: bool) -> Self {
        if may { Self::Allowed } else { Self::Forbidden }
    }
}

/// What a zone lets players place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementRules {
    /// Largest distance from the avatar, micrometres.
    pub radius_um: i64,
    /// The assets the zone knows.
    pub assets: AssetFilter,
}

impl Default for PlacementRules {
    /// Any asset, within 10 m.
    fn default() -> Self {
        Self {
            radius_um: DEFAULT_RADIUS_UM,
            assets: AssetFilter::Any,
        }
    }
}

impl PlacementRules {
    /// Whether a player (`placer`) whose avatar is at `avatar_at` may place `asset_id` at `at`
    /// in the zone configured as `cfg`: `Ok`, or the reason (the caller counts it).
    pub fn check(
        &self,
        placer: Placer,
        asset_id: u64,
        at: &Vec3,
        avatar_at: &Vec3,
        cfg: &ZoneConfig,
    ) -> Result<(), Refusal> {
        if placer == Placer::Forbidden {
            return Err(Refusal::PlaceForbidden);
        }
        if !self.assets.knows(asset_id) {
            return Err(Refusal::UnknownAsset);
        }
        if !cfg.bounds.contains(at)
            || cfg
                .layout
                .zone_of(crate::hilbert::encode_position(&cfg.bounds, at))
                != cfg.zone_id
        {
            return Err(Refusal::NotInZone);
        }
        let d2: f64 = (0..3)
            .map(|k| (at[k] - avatar_at[k]).to_num::<f64>().powi(2))
            .sum();
        let r = self.radius_um as f64;
        if d2 > r * r {
            return Err(Refusal::TooFar);
        }
        Ok(())
    }
}

/// The payload of an instance of `asset_id` placed by avatar `placed_by`.
pub fn asset_payload(asset_id: u64, placed_by: u32) -> [u32; PAYLOAD_WORDS] {
    let mut p = [0u32; PAYLOAD_WORDS];
    p[0] = ASSET_CLASS << 24 | (asset_id as u32 & 0x00FF_FFFF);
    p[1] = (asset_id >> 32) as u32;
    p[2] = asset_id as u32;
    p[3] = placed_by;
    p
}

/// The asset an entity's payload names, when it is an asset instance (class 5 with a
/// non-zero id whose low 24 bits match the class word).
pub fn asset_of(payload: &[u32; PAYLOAD_WORDS]) -> Option<u64> {
    if payload[0] >> 24 != ASSET_CLASS {
        return None;
    }
    let id = u64::from(payload[1]) << 32 | u64::from(payload[2]);
    (id != 0 && payload[0] & 0x00FF_FFFF == payload[2] & 0x00FF_FFFF).then_some(id)
}

/// The low 24 bits of the asset id a client sees in an entity's class word, when the class
/// word is an asset instance's.
pub fn asset_of_class_word(class_word: u32) -> Option<u32> {
    (class_word >> 24 == ASSET_CLASS).then_some(class_word & 0x00FF_FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coords::{WorldBounds, metres};
    use crate::zones::ZoneLayout;

    fn zone(id: u8, count: usize) -> ZoneConfig {
        ZoneConfig::new(id, ZoneLayout::new(count).unwrap(), WorldBounds::demo())
    }

    fn at(x: i64, y: i64, z: i64) -> Vec3 {
        [metres(x), metres(y), metres(z)]
    }

    #[test]
    fn the_payload_names_the_asset_and_round_trips() {
        let p = asset_payload(0x1122_3344_5566_7788, 42);
        assert_eq!(p[0], 0x0566_7788, "class 5, low 24 bits of the id");
        assert_eq!(p[1], 0x1122_3344, "high word");
        assert_eq!(p[2], 0x5566_7788, "low word");
        assert_eq!(p[3], 42, "placed by");
        assert!(p[4..].iter().all(|&w| w == 0), "the rest is zero");
        assert_eq!(asset_of(&p), Some(0x1122_3344_5566_7788));
        assert_eq!(asset_of_class_word(p[0]), Some(0x66_7788));
        assert_eq!(asset_of(&[0; PAYLOAD_WORDS]), None, "a plain entity");
        let mut player = [0; PAYLOAD_WORDS];
        player[0] = 1 << 24;
        assert_eq!(asset_of(&player), None, "a player");
        assert_eq!(asset_of_class_word(player[0]), None);
        let mut forged = p;
        forged[2] ^= 1;
        assert_eq!(asset_of(&forged), None, "class word and id disagree");
    }

    #[test]
    fn a_player_without_permission_is_refused_before_anything_else() {
        let one = zone(0, 1);
        let rules = PlacementRules::default();
        let me = at(0, 0, 0);
        let no = Placer::from_permission(false);
        assert_eq!(no, Placer::Forbidden);
        assert_eq!(
            rules.check(no, 7, &at(1, 0, 0), &me, &one),
            Err(Refusal::PlaceForbidden),
            "a placement that would pass every other check"
        );
        assert_eq!(
            rules.check(no, 0, &at(16, 0, 0), &me, &one),
            Err(Refusal::PlaceForbidden),
            "unknown asset, outside the world: the permission is checked first"
        );
        assert_eq!(
            rules.check(Placer::from_permission(true), 7, &at(1, 0, 0), &me, &one),
            Ok(())
        );
        assert_eq!(Refusal::PlaceForbidden.name(), "place_forbidden");
    }

    #[test]
    fn placement_checks_asset_zone_and_radius_in_order() {
        let ok = Placer::Allowed;
        let one = zone(0, 1);
        let rules = PlacementRules::default();
        let me = at(0, 0, 0);
        assert_eq!(
            rules.check(ok, 7, &at(3, 4, 0), &me, &one),
            Ok(()),
            "5 m away"
        );
        assert_eq!(
            rules.check(ok, 7, &at(10, 0, 0), &me, &one),
            Ok(()),
            "exactly on the radius"
        );
        assert_eq!(
            rules.check(ok, 7, &at(8, 7, 0), &me, &one),
            Err(Refusal::TooFar),
            "10.6 m away"
        );
        assert_eq!(
            rules.check(ok, 0, &me, &me, &one),
            Err(Refusal::UnknownAsset),
            "0 is never an asset"
        );
        let listed = PlacementRules {
            assets: AssetFilter::only(vec![9, 3, 9]),
            ..PlacementRules::default()
        };
        assert_eq!(listed.assets, AssetFilter::Only(vec![3, 9]));
        assert_eq!(listed.check(ok, 3, &me, &me, &one), Ok(()));
        assert_eq!(
            listed.check(ok, 4, &me, &me, &one),
            Err(Refusal::UnknownAsset),
            "not on the list"
        );
        // Two zones: find a point of each and place across the border.
        let z0 = zone(0, 2);
        let b = WorldBounds::demo();
        let other = (-14..=14)
            .flat_map(|x| (-14..=14).map(move |y| at(x, y, 0)))
            .find(|p| z0.layout.zone_of(crate::hilbert::encode_position(&b, p)) != 0)
            .expect("zone 1 has a point near the origin");
        assert_eq!(
            rules.check(ok, 7, &other, &other, &z0),
            Err(Refusal::NotInZone),
            "a point in zone 1's range"
        );
        let outside = at(16, 0, 0);
        assert_eq!(
            rules.check(ok, 7, &outside, &outside, &one),
            Err(Refusal::NotInZone),
            "outside the world"
        );
    }
}
