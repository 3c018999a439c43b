extends FabricTestCase
## FabricZone running the core: the entity API, statistics, and three zones of one fabric in
## this process, linked through the in-memory seam, handing wanderers over without losing or
## duplicating any (counted from each zone's own state).


func _zone(fabric: String, index: int, count: int) -> FabricZone:
	var zone := FabricZone.new()
	zone.use_command_line = false   # the runner's own arguments are not zone settings
	zone.serve_clients = false
	zone.fabric_name = fabric
	zone.zone_id = index
	zone.zone_count = count
	zone.link_mode = "memory" if count > 1 else "none"
	return zone


func test_entity_api_round_trips_in_metres() -> void:
	var zone := _zone("api-%d" % Time.get_ticks_usec(), 0, 1)
	var seen := {"spawned": [], "despawned": []}
	zone.spawned.connect(func(id: int): seen.spawned.append(id))
	zone.despawned.connect(func(id: int): seen.despawned.append(id))
	runner.add_child(zone)
	check(zone.is_running(), "started by entering the tree")
	var id := zone.spawn(Vector3(1.5, -2.25, 3.0), Vector3(2.0, 0.0, 0.0), PackedInt64Array([7, 4294967295]))
	check(id > 0, "a global id")
	check_eq(seen.spawned, [id], "spawned signal with the id")
	check(zone.owns(id), "owned here")
	check(zone.get_entity_position(id).is_equal_approx(Vector3(1.5, -2.25, 3.0)), "position in metres: %s" % zone.get_entity_position(id))
	var payload := zone.get_payload(id)
	check_eq(payload.size(), 14, "14 payload words")
	check_eq([payload[0], payload[1], payload[2]], [7, 4294967295, 0], "payload kept, missing words 0")
	check(zone.set_payload(id, PackedInt64Array([1, 2, 3])), "payload replaced")
	check_eq(zone.get_payload(id)[2], 3, "new payload read back")
	check(not zone.set_payload(id, PackedInt64Array([-1])), "negative words refused")
	zone.run_ticks(20)   # one second at 20 Hz and 2 m/s along x
	var p := zone.get_entity_position(id)
	check(absf(p.x - 3.5) < 1e-4, "moved 2 m in one second: x = %f" % p.x)
	check(zone.set_velocity(id, Vector3.ZERO), "velocity set")
	check(zone.set_acceleration(id, Vector3(0, 0, 0)), "acceleration set")
	zone.run_ticks(5)
	check(zone.get_entity_position(id).is_equal_approx(p), "stopped")
	var ids := zone.get_owned_ids()
	check_eq(ids, PackedInt64Array([id]), "bulk ids")
	check_eq(zone.get_owned_positions().size(), 1, "bulk positions, same order")
	check_eq(zone.get_owned_velocities()[0], Vector3.ZERO, "bulk velocities")
	check(Performance.has_custom_monitor(&"FabricZone0/owned"), "a Performance monitor per figure")
	check_eq(Performance.get_custom_monitor(&"FabricZone0/owned"), 1.0, "the monitor reads the zone")
	check(not zone.despawn(id + 1), "unknown id")
	check(zone.despawn(id), "despawned")
	check_eq(seen.despawned, [id], "despawned signal")
	check_eq(zone.get_owned_ids().size(), 0, "nothing left")
	check_eq(zone.spawn(Vector3(INF, 0, 0), Vector3.ZERO, PackedInt64Array()), -1, "non-finite refused")
	var stats := zone.get_stats()
	for key in ["tick", "owned", "staging", "incoming", "tick_p50_msec", "tick_p99_msec", "tick_max_msec",
			"overruns", "dropped_ticks", "migrations_in_per_sec", "migrations_out_per_sec",
			"handoff_p50_msec", "handoff_p99_msec", "links"]:
		check(stats.has(key), "get_stats() has %s" % key)
	check(stats.tick >= 25, "25 ticks run: %d" % stats.tick)
	check_eq(stats.ticks_measured >= 25, true, "every tick timed")
	check(stats.tick_max_msec > 0.0 and stats.tick_p50_msec <= stats.tick_max_msec, "tick times ordered")
	zone.queue_free()


func test_three_zones_in_one_process_hand_over_without_loss_or_duplicate() -> void:
	var fabric := "fabric-%d" % Time.get_ticks_usec()
	var entities := 600
	var zones: Array[FabricZone] = []
	var migrations := {"in": 0, "out": 0, "linked": 0}
	for i in 3:
		var zone := _zone(fabric, i, 3)
		zone.population = "wanderers"
		zone.entities = entities
		zone.seed = 12
		zone.hysteresis_ticks = 5
		zone.migrated_in.connect(func(_id: int, _from: int): migrations["in"] += 1)
		zone.migrated_out.connect(func(_id: int, _to: int): migrations["out"] += 1)
		zone.neighbour_linked.connect(func(_z: int): migrations["linked"] += 1)
		runner.add_child(zone)
		zones.append(zone)
	var total := 0
	for zone in zones:
		total += zone.get_owned_ids().size()
	check_eq(total, entities, "the three shares make the whole population")
	var failures := 0
	for round in 60:
		for zone in zones:
			zone.run_ticks(5)
		# Each zone's own view: held (owned, staging, arriving) and reserved ids.
		var held := {}
		var reserved := {}
		for zone in zones:
			for id in zone.get_held_ids():
				if held.has(id):
					failures += 1
					check(false, "round %d: entity %d held twice" % [round, id])
				held[id] = true
			for id in zone.get_incoming_ids():
				reserved[id] = true
		for id in range(1, entities + 1):
			if not held.has(id) and not reserved.has(id):
				failures += 1
				check(false, "round %d: entity %d lost" % [round, id])
		if failures > 5:
			break
	check_eq(migrations["linked"], 6, "each zone linked to the two others")
	check(migrations["in"] > 50, "wanderers crossed borders: %d migrations in" % migrations["in"])
	check(migrations["out"] >= migrations["in"], "every arrival was handed out first")
	var stats := zones[0].get_stats()
	check_eq(stats.links.size(), 2, "zone 0 reports two links")
	check(stats.links[0].bytes_out > 0, "bytes counted per link")
	check(zones[0].get_ghost_count() > 0, "neighbours' rows kept")
	for zone in zones:
		zone.queue_free()
