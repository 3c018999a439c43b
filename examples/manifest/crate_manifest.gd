extends RefCounted
## The replication manifest of the crate example: how a game declares which entity properties
## reach the players, and how. Crates are entity class 7 (the top byte of payload word 0); the
## zone keeps their properties in payload words 1..3 (`FabricZone.set_payload`):
##
## - word 1, `material_index`: reliable_on_change (every change reaches every player near it,
##   once, whatever the loss);
## - word 2, `label_id`: snapshot_only (sent when a crate enters a player's view, with the
##   late-join baseline; later changes wait for the next enter);
## - word 3, `spin`: high_rate_unreliable (changes often; a lost value is replaced by the next).
##
## Give the same manifest to the zone (`FabricZone.replication_manifest`) and to every player's
## `FabricWorld.replication_manifest`: on the player's side each value sets the named property on
## the crate's node (`crate.gd`). The same can be made in the inspector: a
## FabricReplicationManifest resource with one FabricReplicationClass per class, each with its
## FabricReplicatedProperty entries.

const CRATE_CLASS := 7
const MATERIAL_WORD := 1
const LABEL_WORD := 2
const SPIN_WORD := 3

const HIGH_RATE_UNRELIABLE := 0
const RELIABLE_ON_CHANGE := 1
const SNAPSHOT_ONLY := 2


static func build() -> FabricReplicationManifest:
	var m := FabricReplicationManifest.new()
	m.declare(CRATE_CLASS, MATERIAL_WORD, &"material_index", RELIABLE_ON_CHANGE)
	m.declare(CRATE_CLASS, LABEL_WORD, &"label_id", SNAPSHOT_ONLY)
	m.declare(CRATE_CLASS, SPIN_WORD, &"spin", HIGH_RATE_UNRELIABLE)
	return m


## Payload words of a crate with these properties (for `FabricZone.spawn` and `set_payload`).
static func payload(material_index: int, label_id: int, spin: int) -> PackedInt64Array:
	return PackedInt64Array([CRATE_CLASS << 24, material_index, label_id, spin])
