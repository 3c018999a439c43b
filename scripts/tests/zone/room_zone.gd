extends Node
## The room test's zone (tests/e2e/tests/room_save.rs): the zone under it is configured with a
## room on its command line. Once the room is loaded, a room never saved gets one stationary
## object per persist mode plus a second `placed_saved` one with a longer payload, saved at once
## with `save_room()`; a room that had a save prints what it restored. Every step is a line.

const MODES := ["placed_saved", "placed_room", "transient_held", "placed_saved"]

@onready var zone: FabricZone = $Zone


func _ready() -> void:
	zone.room_loaded.connect(_on_room_loaded)
	zone.room_saved.connect(_on_room_saved)


func _on_room_loaded(ok: bool, version: int, entities: int, error: String) -> void:
	print("ROOM_TEST loaded ok=%s version=%d entities=%d error=%s" % [ok, version, entities, error])
	if not ok:
		return
	if entities > 0:
		for id in zone.get_owned_ids():
			print(
				(
					"ROOM_TEST restored id=%d persist=%s holder=%d"
					% [id, zone.get_persist_mode(id), zone.get_holder(id)]
				)
			)
		return
	for k in MODES.size():
		var at := Vector3(k * 1.5 - 3.0, 2.25, 0.5 + k * 0.001)
		var words := PackedInt64Array([((k + 1) << 24) | 5, k, 4294967295])
		var id := zone.spawn(at, Vector3.ZERO, words)
		zone.set_persist_mode(id, MODES[k])
		print("ROOM_TEST spawned id=%d persist=%s" % [id, MODES[k]])
	print("ROOM_TEST save_room started=%s" % zone.save_room())


func _on_room_saved(ok: bool, version: int, entities: int, error: String) -> void:
	print("ROOM_TEST saved ok=%s version=%d entities=%d error=%s" % [ok, version, entities, error])
