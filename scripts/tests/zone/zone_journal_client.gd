extends Node
## The crash test's stand-in for clients (tests/e2e/tests/zone_journal.rs): while the zone
## under it runs, each tick it spawns one stationary entity through the API and sets its
## payload, and despawns at once every entity whose id is 3 mod 4, until the zone owns `CAP`
## entities. The zone's settings come from its command line.

const CAP := 600

var last_tick := -1
var spawned := 0

@onready var zone: FabricZone = $Zone


func _process(_delta: float) -> void:
	if not zone.is_running() or zone.tick == last_tick:
		return
	last_tick = zone.tick
	if zone.get_owned_ids().size() >= CAP:
		return
	var k := spawned
	spawned += 1
	# Stationary: its position never changes, so the journal must give it back bit for bit.
	var at := Vector3(float(k & 63) * 0.25 - 8.0, float((k >> 6) & 63) * 0.25 - 8.0, 1.5)
	var id := zone.spawn(at, Vector3.ZERO, PackedInt64Array([k]))
	if id < 0:
		return
	if id % 4 == 3:
		zone.despawn(id)
		return
	zone.set_payload(id, PackedInt64Array([k, zone.tick, 7]))
