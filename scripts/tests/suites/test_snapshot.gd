extends FabricTestCase
## FabricSnapshot from GDScript: build one from the packed arrays, save, load, read it back.

const UM_PER_M := 1000000


func _path(name: String) -> String:
	return OS.get_temp_dir().path_join("fabric-snapshot-gd-%d-%s.res" % [OS.get_process_id(), name])


## Entity i stands at (10^7 m + i, -2 m, 3 m); positions are (high, low) words per axis,
## whole micrometres in `high`.
func _build(count: int) -> FabricSnapshot:
	var snap := FabricSnapshot.new()
	snap.fabric_name = "gd-fabric"
	snap.zone_count = 2
	snap.tick = 99
	snap.created_unix_time = int(Time.get_unix_time_from_system())
	var ids := PackedInt64Array()
	var positions := PackedInt64Array()
	var motion := PackedInt64Array()
	var payloads := PackedInt64Array()
	for i in count:
		ids.append(100 + i)
		positions.append_array([(10000000 + i) * UM_PER_M, 0, -2 * UM_PER_M, 0, 3 * UM_PER_M, 0])
		motion.append_array([0, 0, 0, 0, 0, 0])
		var payload := PackedInt64Array()
		payload.resize(14)
		payload[0] = 4294967295
		payload[13] = i
		payloads.append_array(payload)
	snap.ids = ids
	snap.positions = positions
	snap.velocities = motion
	snap.accelerations = motion
	snap.payloads = payloads
	return snap


func test_defaults_and_inspector_properties() -> void:
	var snap := FabricSnapshot.new()
	check_eq(snap.format_version, 1, "format version of this build")
	check_eq(snap.get_entity_count(), 0, "empty")
	check_eq(snap.validate(), "", "an empty snapshot is valid")
	var names := []
	for p in snap.get_property_list():
		if p["usage"] & PROPERTY_USAGE_EDITOR:
			names.append(p["name"])
	for wanted in ["format_version", "ids", "positions", "velocities", "payloads", "tick"]:
		check(wanted in names, "%s is shown in the inspector" % wanted)


func test_saves_and_reads_back_from_gdscript() -> void:
	var path := _path("round_trip")
	var snap := _build(10)
	check_eq(snap.validate(), "", "built by hand, valid")
	check_eq(snap.save_to(path), OK, "saved")
	var back := FabricSnapshot.load_from(path)
	check(back != null, "loaded")
	if back == null:
		return
	check_eq(back.get_entity_count(), 10, "10 entities")
	check_eq(back.ids[3], 103, "ids readable")
	check_eq(back.positions[6 * 3], (10000000 + 3) * UM_PER_M, "raw position words readable")
	check_eq(back.payloads[14 * 9 + 13], 9, "payload words readable")
	check_eq(back.payloads[0], 4294967295, "full 32-bit payload word")
	check_eq(back.get_position(3), Vector3(10000003, -2, 3), "get_position in metres")
	check_eq(back.fabric_name, "gd-fabric", "name")
	check_eq(back.tick, 99, "tick")
	DirAccess.remove_absolute(path)


func test_validate_explains_the_problem() -> void:
	var snap := _build(3)
	var ids := snap.ids
	ids[2] = ids[0]
	snap.ids = ids
	check_eq(snap.validate(), "id 100 appears twice (indices 0 and 2)", "duplicate ids")
	snap = _build(3)
	var positions := snap.positions
	positions.resize(17)
	snap.positions = positions
	check(snap.validate().contains("positions"), "short positions: " + snap.validate())
