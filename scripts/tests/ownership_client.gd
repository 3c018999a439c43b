extends Node
## A player the test drives in lock step (tests/e2e/tests/ownership_godot.rs and
## room_ladder.rs): a FabricWorld joins a zone, then runs the commands the test writes and prints
## one line per command and per ownership event, through the node's own API and signals only
## (except `forge_grant`, a test-only hook).
##
## Commands: the test writes file `<seq>` (0, 1, 2, ...) into the `--commands` folder, complete
## (written aside and renamed); each holds `TARGET COMMAND [ARGS]`, TARGET `*` (everyone) or a
## player index. Each frame the player runs the files from its next seq on, in order:
##
## - `request E` / `release E`: `request_ownership(E)` / `release_ownership(E)`;
## - `sample E`: prints what it believes now (`OC_SAMPLE`);
## - `move E X,Y,Z`: `send_command("position_upsert", {entity = E, position = ...})`: the zone
##   takes it from E's holder and refuses it (`authority`) from anyone else, a forged update;
## - `forge_grant E H`: the `ownership` event only a zone may send, E granted to avatar H
##   (`FabricWorldTestHooks`, in the test build only);
## - `measure_start` / `measure_end`: a measured window (`OC_MEASURE` at its end);
## - `quit`: leaves, prints `OC_DONE` once `disconnected` follows, exits 0.
##
## Lines (T: microseconds of the system clock, shared by every process on the machine):
##
## - `OC_READY index=I avatar=A` once the avatar exists and the join baseline arrived;
## - `OC_DID seq=S cmd=C err=N` per command run (N: the Error it returned, 0 = OK);
## - `OC_EVENT kind=granted|denied|released|revoked id=E holder=H reason=R mine=0|1 t_us=T`
##   per ownership signal (H: the holder it names, -1 the zone; mine: `is_held_by_me(E)` after
##   it, what this player now believes);
## - `OC_SAMPLE seq=S id=E mine=0|1 holder=H t_us=T`: `is_held_by_me(E)` and `get_holder(E)`;
## - `OC_REFUSED reason=count ...` per `command_refused` report;
## - `OC_MEASURE seq=S secs=.. bytes=.. packets=.. entities=N max_in_20_ticks=M moving=K
##   mean_hz=F`: over the window, replication bytes and packets received (`get_stats()`), and
##   per entity the `entity_updated` signals (one per replication packet carrying a newer state
##   of it): the most of one entity within any 20 zone ticks (one second), the mean rate of the
##   K entities updated more than 10 times a second (in zone ticks), and the most signals of one
##   entity over the window's wall-clock seconds (`max_wall_hz`);
## - `OC_FAIL why=..` and exit 1 on a timeout, a lost session or a bad command.
##
## User arguments (after `--`): --url URL --cert-hash HASH --commands DIR [--index I]
## [--spawn X,Y,Z] [--fps N] [--timeout-sec S]

const ExampleArgs := preload("res://examples/fabric_world/example_args.gd")
const HOOKS_CLASS := &"FabricWorldTestHooks"

var index := 0
var timeout_sec := 300.0
var commands_dir := ""
var _start_msec := 0
var _next_seq := 0
var _avatar := -1
var _baseline := false
var _ready_printed := false
var _leaving := false
var _measuring := false
var _measure_usec := 0
var _measure_bytes := 0
var _measure_packets := 0
## Entity id -> zone ticks of its updates in the measured window.
var _update_ticks := {}

@onready var world: FabricWorld = $World


func _ready() -> void:
	_start_msec = Time.get_ticks_msec()
	var args := ExampleArgs.parse(OS.get_cmdline_user_args())
	ExampleArgs.take_connection(world, args)
	commands_dir = args.get("commands", "")
	index = int(args.get("index", index))
	timeout_sec = float(args.get("timeout-sec", timeout_sec))
	Engine.max_fps = int(args.get("fps", "30"))
	if commands_dir.is_empty():
		_fail("no --commands folder")
		return
	world.avatar_spawned.connect(_on_avatar_spawned)
	world.baseline_done.connect(_on_baseline_done)
	world.ownership_granted.connect(
		func(id: int, holder: int) -> void: _event("granted", id, holder, "")
	)
	world.ownership_denied.connect(
		func(id: int, reason: String, holder: int) -> void: _event("denied", id, holder, reason)
	)
	world.ownership_released.connect(
		func(id: int, reason: String) -> void: _event("released", id, -1, reason)
	)
	world.ownership_revoked.connect(
		func(id: int, reason: String) -> void: _event("revoked", id, -1, reason)
	)
	world.command_refused.connect(_on_command_refused)
	world.entity_updated.connect(_on_entity_updated)
	world.disconnected.connect(_on_disconnected)
	var err := world.connect_to_fabric()
	if err != OK:
		_fail("connect_to_fabric: %s" % error_string(err))


func _process(_delta: float) -> void:
	if _leaving:
		return
	if Time.get_ticks_msec() - _start_msec > int(timeout_sec * 1000.0):
		_fail("timed out")
		return
	if not _ready_printed:
		return
	while not _leaving:
		var path := "%s/%d" % [commands_dir, _next_seq]
		if not FileAccess.file_exists(path):
			return
		var line := FileAccess.get_file_as_string(path).strip_edges()
		_run(_next_seq, line)
		_next_seq += 1


func _run(seq: int, line: String) -> void:
	var words := line.split(" ", false)
	if words.size() < 2:
		_fail("bad command %d: %s" % [seq, line])
		return
	if words[0] != "*" and int(words[0]) != index:
		return
	var cmd := words[1]
	var arg := func(i: int) -> String: return words[i + 2] if words.size() > i + 2 else ""
	var err := OK
	match cmd:
		"request":
			err = world.request_ownership(int(arg.call(0)))
		"release":
			err = world.release_ownership(int(arg.call(0)))
		"sample":
			var id := int(arg.call(0))
			print(
				(
					"OC_SAMPLE seq=%d id=%d mine=%d holder=%d t_us=%d"
					% [seq, id, int(world.is_held_by_me(id)), world.get_holder(id), _now_usec()]
				)
			)
		"move":
			var to := ExampleArgs.vec3(arg.call(1))
			err = world.send_command(
				"position_upsert", {"entity": int(arg.call(0)), "position": to}
			)
		"forge_grant":
			if not ClassDB.class_exists(HOOKS_CLASS):
				_fail("%s is missing: the extension was built without feature itest" % HOOKS_CLASS)
				return
			var hooks: Object = ClassDB.instantiate(HOOKS_CLASS)
			err = hooks.call(
				&"send_forged_ownership_grant", world, int(arg.call(0)), int(arg.call(1))
			)
		"measure_start":
			_start_measure()
		"measure_end":
			_end_measure(seq)
		"quit":
			_leaving = true
			print("OC_DID seq=%d cmd=quit err=0" % seq)
			world.leave()
			return
		_:
			_fail("unknown command %d: %s" % [seq, line])
			return
	print("OC_DID seq=%d cmd=%s err=%d" % [seq, cmd, err])


func _on_avatar_spawned(id: int, _zone: int) -> void:
	_avatar = id
	_check_ready()


func _on_baseline_done(_tick: int) -> void:
	_baseline = true
	_check_ready()


func _check_ready() -> void:
	if _ready_printed or _avatar < 0 or not _baseline:
		return
	_ready_printed = true
	print("OC_READY index=%d avatar=%d" % [index, _avatar])


func _event(kind: String, id: int, holder: int, reason: String) -> void:
	var why := reason if not reason.is_empty() else "-"
	print(
		(
			"OC_EVENT kind=%s id=%d holder=%d reason=%s mine=%d t_us=%d"
			% [kind, id, holder, why, int(world.is_held_by_me(id)), _now_usec()]
		)
	)


func _on_command_refused(counts: Dictionary) -> void:
	var text := PackedStringArray()
	for reason in counts:
		text.append("%s=%d" % [reason, counts[reason]])
	print("OC_REFUSED %s" % " ".join(text))


func _on_entity_updated(id: int, _position: Vector3) -> void:
	if not _measuring:
		return
	if not _update_ticks.has(id):
		_update_ticks[id] = PackedInt64Array()
	var ticks: PackedInt64Array = _update_ticks[id]
	ticks.append(world.get_entity_tick(id))
	_update_ticks[id] = ticks


func _start_measure() -> void:
	var stats := world.get_stats()
	_measuring = true
	_measure_usec = Time.get_ticks_usec()
	_measure_bytes = stats["bytes_total"]
	_measure_packets = stats["packets_total"]
	_update_ticks.clear()


func _end_measure(seq: int) -> void:
	if not _measuring:
		_fail("measure_end without measure_start")
		return
	_measuring = false
	var secs := (Time.get_ticks_usec() - _measure_usec) / 1e6
	var stats := world.get_stats()
	var most := 0
	var moving := 0
	var hz_sum := 0.0
	var fastest := 0
	for id in _update_ticks:
		var ticks: PackedInt64Array = _update_ticks[id]
		# Packets applied in one frame report the newest tick for each of their signals; their
		# states were strictly newer one after the other, so the earlier ones are spread back.
		for j in range(ticks.size() - 2, -1, -1):
			ticks[j] = mini(ticks[j], ticks[j + 1] - 1)
		most = maxi(most, _most_in_window(ticks, 20))
		fastest = maxi(fastest, ticks.size())
		var span := ticks[ticks.size() - 1] - ticks[0]
		# n updates span n - 1 intervals of the zone's 20 Hz ticks.
		var hz := (ticks.size() - 1) * 20.0 / span if span > 0 else 0.0
		if hz > 10.0:
			moving += 1
			hz_sum += hz
	print(
		(
			(
				"OC_MEASURE seq=%d secs=%.3f bytes=%d packets=%d entities=%d max_in_20_ticks=%d"
				% [
					seq,
					secs,
					stats["bytes_total"] - _measure_bytes,
					stats["packets_total"] - _measure_packets,
					_update_ticks.size(),
					most,
				]
			)
			+ (
				" moving=%d mean_hz=%.2f max_wall_hz=%.2f"
				% [moving, hz_sum / moving if moving > 0 else 0.0, fastest / secs]
			)
		)
	)


## The most entries of ascending [param ticks] within any [param window] consecutive ticks.
static func _most_in_window(ticks: PackedInt64Array, window: int) -> int:
	var most := 0
	var first := 0
	for last in ticks.size():
		while ticks[last] - ticks[first] >= window:
			first += 1
		most = maxi(most, last - first + 1)
	return most


func _on_disconnected(reason: String) -> void:
	if not _leaving:
		_fail("the session ended: %s" % reason)
		return
	print("OC_DONE")
	get_tree().quit(0)


func _now_usec() -> int:
	return int(Time.get_unix_time_from_system() * 1e6)


func _fail(why: String) -> void:
	_leaving = true
	print("OC_FAIL why=%s" % why.replace(" ", "_"))
	get_tree().quit(1)
