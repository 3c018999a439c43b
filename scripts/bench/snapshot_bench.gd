extends SceneTree
## FabricSnapshot benchmark: save and load of 10,000 entities (time and file size).
##
## Run headless on the project (see docs/benchmarks.md, "FabricSnapshot"):
##   godot --headless --path godot-project --script res://scripts/bench/snapshot_bench.gd
## User arguments after `--`: [--entities N] [--rounds R].
##
## The entities get random positions within +-10^7 m with random fractional bits (the 64.64
## low words are random, the worst case for compression), small random velocities, zero
## accelerations and a class word in the payload. Each figure is the median of R rounds.
## Baselines in the same run: the same resource written by ResourceSaver alone, compressed and
## not (no validation, checksum, temporary file or rename) and read by ResourceLoader alone.
## Prints one `SNAPSHOT_BENCH {json}` line, then quits 0 (1 when a save or load failed).

var _entities := 10000
var _rounds := 7


func _initialize() -> void:
	var args := OS.get_cmdline_user_args()
	for i in args.size() - 1:
		if args[i] == "--entities":
			_entities = int(args[i + 1])
		elif args[i] == "--rounds":
			_rounds = int(args[i + 1])
	quit(_run())


func _build() -> FabricSnapshot:
	var rng := RandomNumberGenerator.new()
	rng.seed = 12345
	var snap := FabricSnapshot.new()
	snap.fabric_name = "bench"
	snap.zone_count = 3
	snap.tick = 123456
	snap.created_unix_time = int(Time.get_unix_time_from_system())
	var ids := PackedInt64Array()
	var positions := PackedInt64Array()
	var velocities := PackedInt64Array()
	var accelerations := PackedInt64Array()
	var payloads := PackedInt64Array()
	accelerations.resize(_entities * 6)
	payloads.resize(_entities * 14)
	for i in _entities:
		ids.append(i + 1)
		for axis in 3:
			positions.append(rng.randi_range(-10000000, 10000000) * 1000000)
			positions.append((rng.randi() << 32) | rng.randi())
			velocities.append(rng.randi_range(-250000, 250000))
			velocities.append(0)
		payloads[i * 14] = (1 + i % 3) << 24
	snap.ids = ids
	snap.positions = positions
	snap.velocities = velocities
	snap.accelerations = accelerations
	snap.payloads = payloads
	return snap


func _median(samples: Array) -> float:
	samples.sort()
	return samples[samples.size() / 2]


func _run() -> int:
	var snap := _build()
	var dir := OS.get_temp_dir().path_join("fabric-snapshot-bench-%d" % OS.get_process_id())
	DirAccess.make_dir_recursive_absolute(dir)
	var path := dir.path_join("world.res")
	var raw_c := dir.path_join("raw_compressed.res")
	var raw_u := dir.path_join("raw_uncompressed.res")
	var times := {"save_to": [], "load_from": [], "raw_save": [], "raw_load": [], "raw_save_u": []}
	for r in _rounds:
		var t := Time.get_ticks_usec()
		if snap.save_to(path) != OK:
			return 1
		times["save_to"].append((Time.get_ticks_usec() - t) / 1000.0)
		t = Time.get_ticks_usec()
		var back := FabricSnapshot.load_from(path)
		times["load_from"].append((Time.get_ticks_usec() - t) / 1000.0)
		if back == null or back.get_entity_count() != _entities:
			return 1
		t = Time.get_ticks_usec()
		ResourceSaver.save(snap, raw_c, ResourceSaver.FLAG_COMPRESS)
		times["raw_save"].append((Time.get_ticks_usec() - t) / 1000.0)
		t = Time.get_ticks_usec()
		var raw := ResourceLoader.load(raw_c, "", ResourceLoader.CACHE_MODE_IGNORE)
		times["raw_load"].append((Time.get_ticks_usec() - t) / 1000.0)
		if raw == null:
			return 1
		t = Time.get_ticks_usec()
		ResourceSaver.save(snap, raw_u)
		times["raw_save_u"].append((Time.get_ticks_usec() - t) / 1000.0)
	var result := {
		"entities": _entities,
		"rounds": _rounds,
		"precision": "double" if OS.has_feature("double") else "single",
		"save_to_ms": _median(times["save_to"]),
		"load_from_ms": _median(times["load_from"]),
		"resource_saver_compressed_ms": _median(times["raw_save"]),
		"resource_loader_compressed_ms": _median(times["raw_load"]),
		"resource_saver_uncompressed_ms": _median(times["raw_save_u"]),
		"file_bytes": FileAccess.open(path, FileAccess.READ).get_length(),
		"uncompressed_file_bytes": FileAccess.open(raw_u, FileAccess.READ).get_length(),
	}
	for f in [path, raw_c, raw_u]:
		DirAccess.remove_absolute(f)
	DirAccess.remove_absolute(dir)
	print("SNAPSHOT_BENCH " + JSON.stringify(result))
	return 0
