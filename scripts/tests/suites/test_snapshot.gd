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
	check_eq(snap.format_version, 2, "format version of this build")
	check_eq(snap.hlc, 0, "no clock yet")
	check_eq(snap.get_entity_count(), 0, "empty")
	check_eq(snap.validate(), "", "an empty snapshot is valid")
	var names := []
	for p in snap.get_property_list():
		if p["usage"] & PROPERTY_USAGE_EDITOR:
			names.append(p["name"])
	for wanted in ["format_version", "ids", "positions", "velocities", "payloads", "tick", "hlc"]:
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


func _zone(fabric: String, index: int, count: int) -> FabricZone:
	var zone := FabricZone.new()
	zone.use_command_line = false
	zone.serve_clients = false
	zone.fabric_name = fabric
	zone.zone_id = index
	zone.zone_count = count
	zone.link_mode = "none"
	return zone


func test_each_zone_reloads_exactly_its_range() -> void:
	var path := _path("zones")
	var whole := _zone("snap-a-%d" % Time.get_ticks_usec(), 0, 1)
	runner.add_child(whole)
	var rng := RandomNumberGenerator.new()
	rng.seed = 7
	for i in 90:
		var p := Vector3(
			rng.randf_range(-14, 14), rng.randf_range(-14, 14), rng.randf_range(-14, 14)
		)
		whole.spawn(p, Vector3(1, 0, -1), PackedInt64Array([i]))
	whole.run_ticks(3)
	check_eq(whole.save_snapshot(path), OK, "the single zone saved its 90 entities")
	var snap := FabricSnapshot.load_from(path)
	check(snap != null and snap.get_entity_count() == 90, "90 entities in the file")
	if snap == null:
		return
	var where := {}
	for i in snap.get_entity_count():
		where[snap.ids[i]] = snap.get_position(i)
	check_eq(whole.get_owned_ids().size(), 90, "the saving zone still holds its entities")
	whole.queue_free()

	# Restart as three zones: each takes its own Hilbert range, no entity twice, none lost.
	var fabric := "snap-b-%d" % Time.get_ticks_usec()
	var seen := {}
	var zones: Array[FabricZone] = []
	for z in 3:
		var zone := _zone(fabric, z, 3)
		runner.add_child(zone)
		zones.append(zone)
		var n := zone.load_snapshot(path)
		check(n > 0, "zone %d reloads some entities (%d)" % [z, n])
		check_eq(zone.get_owned_ids().size(), n, "zone %d owns what it reloaded" % z)
		var positions := zone.get_owned_positions()
		var ids := zone.get_owned_ids()
		for k in ids.size():
			check(not seen.has(ids[k]), "entity %d reloaded once" % ids[k])
			seen[ids[k]] = z
			check(
				positions[k].distance_to(where[ids[k]]) < 1e-5,
				"entity %d at its saved position" % ids[k]
			)
	check_eq(seen.size(), 90, "all 90 entities reloaded across the three zones")

	# A second reload would duplicate: refused, and nothing changes.
	var before := zones[0].get_owned_ids().size()
	check_eq(zones[0].load_snapshot(path), -1, "reloading twice is refused")
	check_eq(zones[0].get_owned_ids().size(), before, "nothing spawned by the refused reload")
	# New spawns do not reuse a reloaded id.
	var fresh := zones[0].spawn(Vector3.ZERO, Vector3.ZERO, PackedInt64Array())
	check(fresh > 0 and not where.has(fresh), "a new spawn gets a new id (%d)" % fresh)
	for zone in zones:
		zone.queue_free()
	DirAccess.remove_absolute(path)


func test_a_zone_without_room_loads_nothing() -> void:
	var path := _path("room")
	var whole := _zone("snap-c-%d" % Time.get_ticks_usec(), 0, 1)
	runner.add_child(whole)
	for i in 20:
		whole.spawn(Vector3(i * 0.5, 0, 0), Vector3.ZERO, PackedInt64Array())
	check_eq(whole.save_snapshot(path), OK, "saved")
	whole.queue_free()
	var small := _zone("snap-d-%d" % Time.get_ticks_usec(), 0, 1)
	small.capacity = 12
	small.headroom = 2
	runner.add_child(small)
	check_eq(small.load_snapshot(path), -1, "20 entities do not fit 10 free slots")
	check_eq(small.get_owned_ids().size(), 0, "and none was spawned")
	check_eq(small.load_snapshot(_path("absent")), -1, "a missing file is refused")
	small.queue_free()
	DirAccess.remove_absolute(path)


func test_three_zones_drain_into_zone_0_which_saves_them_all() -> void:
	var path := _path("drain")
	var fabric := "snap-drain-%d" % Time.get_ticks_usec()
	var zones: Array[FabricZone] = []
	for i in 3:
		var zone := _zone(fabric, i, 3)
		zone.link_mode = "memory"
		zone.population = "wanderers"
		zone.entities = 300
		zone.seed = 5
		runner.add_child(zone)
		zones.append(zone)
	var linked := await wait_until(
		func(): return zones.all(func(z: FabricZone): return z.get_stats().links.size() == 2), 10.0
	)
	check(linked, "the three zones linked")
	for zone in zones:
		check(zone.begin_shutdown(path, 30.0, false), "zone %d begins its shutdown" % zone.zone_id)
	var done := await wait_until(
		func(): return zones.all(func(z: FabricZone): return z.get_shutdown_state() == "done"), 25.0
	)
	check(
		done,
		"every zone finished: %s" % [zones.map(func(z: FabricZone): return z.get_shutdown_state())]
	)
	check_eq(zones[1].get_held_ids().size(), 0, "zone 1 drained")
	check_eq(zones[2].get_held_ids().size(), 0, "zone 2 drained")
	check_eq(zones[0].get_held_ids().size(), 300, "zone 0 holds the whole population")
	check_eq(zones[0].get_shutdown_report(), "saved 300 entities to %s" % path, "zone 0's report")
	check_eq(zones[2].get_shutdown_report(), "drained every entity", "zone 2's report")
	var snap := FabricSnapshot.load_from(path)
	check(snap != null, "the snapshot loads")
	if snap != null:
		var ids := {}
		for id in snap.ids:
			ids[id] = true
		check_eq(ids.size(), 300, "300 distinct entities in the snapshot")
		check_eq(snap.zone_count, 3, "zone count recorded")
	for zone in zones:
		zone.queue_free()
	# Restart: each zone reloads its own range, together the whole population.
	var again := 0
	for i in 3:
		var zone := _zone(fabric + "-restart", i, 3)
		runner.add_child(zone)
		again += maxi(zone.load_snapshot(path), 0)
		zone.queue_free()
	check_eq(again, 300, "the restarted zones reload all 300 entities between them")
	DirAccess.remove_absolute(path)


func test_a_drain_that_cannot_finish_still_saves_every_zone() -> void:
	var dir := OS.get_temp_dir().path_join("fabric-snapshot-gd-%d-stuck" % OS.get_process_id())
	DirAccess.make_dir_recursive_absolute(dir)
	var path := dir.path_join("fabric-snapshot.res")
	var fabric := "snap-stuck-%d" % Time.get_ticks_usec()
	var zones: Array[FabricZone] = []
	for i in 3:
		# No links: zone 2's hand-offs to zone 1 never get an answer.
		var zone := _zone(fabric, i, 3)
		zone.population = "wanderers"
		zone.entities = 300
		zone.seed = 5
		runner.add_child(zone)
		zones.append(zone)
		check(zone.begin_shutdown(path, 1.0, false), "zone %d begins its shutdown" % i)
	var ended := await wait_until(
		func(): return zones.all(func(z: FabricZone): return z.get_shutdown_state() == "timed_out"),
		10.0
	)
	check(ended, "every zone timed out: %s" % [zones.map(func(z): return z.get_shutdown_state())])
	for zone in zones:
		check(
			zone.get_shutdown_report().contains("in time: saved the"),
			"zone %d says what it could not move: %s" % [zone.zone_id, zone.get_shutdown_report()]
		)
		zone.queue_free()
	for name in [
		"fabric-snapshot.res", "fabric-snapshot.res.zone-1.res", "fabric-snapshot.res.zone-2.res"
	]:
		check(FileAccess.file_exists(dir.path_join(name)), "%s written" % name)
	# A restart with the same data_dir reloads every file, each zone its own range.
	var total := 0
	for i in 3:
		var zone := _zone(fabric + "-restart", i, 3)
		zone.data_dir = dir
		runner.add_child(zone)
		check(zone.is_running(), "zone %d started from the saved files" % i)
		total += zone.get_owned_ids().size()
		zone.queue_free()
	check_eq(total, 300, "all 300 entities back")
	for name in DirAccess.get_files_at(dir):
		DirAccess.remove_absolute(dir.path_join(name))
	DirAccess.remove_absolute(dir)
