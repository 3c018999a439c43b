//! Replicated properties on the entity nodes: `FabricWorld.replication_manifest` names, per
//! class and payload word, the node property a value sets ([`set_on_node`]); the values
//! themselves come from the session's store (`props` messages, stale ones dropped).

use godot::prelude::*;

use crate::manifest::FabricReplicationManifest;

/// Sets the property the manifest names for `word` of `class` on `node` to `value` (an `int`).
/// Nothing without a manifest, or when it names no property for that word.
pub fn set_on_node(
    manifest: Option<&Gd<FabricReplicationManifest>>,
    node: &mut Gd<Node>,
    class: u8,
    word: u8,
    value: u32,
) {
    let Some(name) = manifest.and_then(|m| m.bind().property_name(class, word)) else {
        return;
    };
    node.set(&name, &i64::from(value).to_variant());
}
