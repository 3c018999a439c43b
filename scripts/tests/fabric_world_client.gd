extends Node
## The headless player of tests/e2e/tests/fabric_world.rs: a FabricWorld joins a zone, plays
## for a while, walks its avatar to another point, then leaves. It prints machine-readable
## lines the test checks against the zone's own /state:
##
## - `FW_CONNECTED zone=Z`, `FW_AVATAR id=A zone=Z`;
## - after each new replication packet: `FW_VIEW tick=T own=A visible=N nodes=C signals=S
##   nodes_ok=0|1 ids=I1,I2,...` (C: children named Entity_<id>; S: entered minus exited by
##   signal; nodes_ok: every visible id has its node as a child of the FabricWorld) and
##   `FW_POS tick=T id=I x=.. y=.. z=..` for up to 8 entities whose newest state is of tick T;
## - `FW_WALK x=.. y=.. z=..` when the walk starts, `FW_EXITED id=I tick=T` per exit,
##   `FW_REFUSED reason=count ...` per refusal report, `FW_ARRIVED tick=T`,
##   `FW_STATS visible=.. bytes_per_second=.. updates_per_second=.. avatar_zone=..`,
##   `FW_SMOOTH frames=.. max_speed=.. backwards=..` (the avatar node's frame-to-frame motion
##   during the walk),
##   `FW_DISCONNECTED reason=..` (after `leave()`), then `FW_DONE` and exit 0.
##   `FW_FAIL why=..` and exit 1 on a timeout or a lost session.
##
## User arguments (after `--`): --url URL --cert-hash HASH [--token TOKEN] [--spawn X,Y,Z]
## [--walk-to X,Y,Z] [--play-sec S] [--timeout-sec S]

const ExampleArgs := preload("res://examples/fabric_world/example_args.gd")
const MAX_POS_LINES := 8

var play_sec := 3.0
var timeout_sec := 60.0
var walk_to := Vector3(6, 0, 0)
var _start_msec := 0
var _avatar_msec := -1
var _walk_msec := -1
var _arrived_msec := -1
var _last_tick := -1
var _entered := {}
var _leaving := false
## The avatar node's motion during the walk: frames seen, frames it moved in without a new
## packet (only interpolation moves it then), fastest speed (m/s), frames it moved backwards
## (the walk goes towards +x), the ticks the walk took.
var _walk_frames := 0
var _walk_moves := 0
var _walk_first_tick := -1
var _walk_ticks := 0
var _walk_max_speed := 0.0
var _walk_backwards := 0
var _walk_prev := Vector3.INF
var _walk_prev_usec := 0
var _walk_last := Vector3.INF

@onready var world: FabricWorld = $World


func _ready() -> void:
	_start_msec = Time.get_ticks_msec()
	_parse_args()
	world.connected.connect(func(zone: int) -> void: print("FW_CONNECTED zone=%d" % zone))
	world.avatar_spawned.connect(_on_avatar)
	world.entity_entered.connect(_on_entered)
	world.entity_exited.connect(_on_exited)
	world.command_refused.connect(_on_refused)
	world.disconnected.connect(_on_disconnected)
	var err := world.connect_to_fabric()
	if err != OK:
		_fail("connect_to_fabric: %s" % error_string(err))


func _on_avatar(id: int, zone: int) -> void:
	_avatar_msec = Time.get_ticks_msec()
	print("FW_AVATAR id=%d zone=%d" % [id, zone])


func _on_entered(id: int, node: Node) -> void:
	if node.get_parent() != world or node.name != "Entity_%d" % id:
		_fail("entity %d entered with node %s under %s" % [id, node.name, node.get_parent()])
	_entered[id] = true


func _on_exited(id: int) -> void:
	_entered.erase(id)
	print("FW_EXITED id=%d tick=%d" % [id, world.get_last_tick()])


func _on_refused(counts: Dictionary) -> void:
	var parts := PackedStringArray()
	for reason: String in counts:
		parts.append("%s=%d" % [reason, counts[reason]])
	print("FW_REFUSED %s" % " ".join(parts))


func _on_disconnected(reason: String) -> void:
	print("FW_DISCONNECTED reason=%s" % reason.replace(" ", "_"))
	if not _leaving:
		_fail("the session ended before the test did")
		return
	print("FW_DONE")
	get_tree().quit(0)


func _process(_delta: float) -> void:
	var now := Time.get_ticks_msec()
	if now - _start_msec > timeout_sec * 1000.0:
		_fail("timeout")
		return
	var tick := world.get_last_tick()
	var new_packet := tick != _last_tick
	if new_packet and tick >= 0:
		_last_tick = tick
		_report(tick)
	if _avatar_msec < 0 or _leaving:
		return
	if _walk_msec < 0 and now - _avatar_msec > play_sec * 1000.0:
		_walk_msec = now
		print("FW_WALK x=%.3f y=%.3f z=%.3f" % [walk_to.x, walk_to.y, walk_to.z])
		world.move_avatar_to(walk_to)
	var own := world.get_own_avatar_id()
	if _walk_msec >= 0 and _arrived_msec < 0:
		_watch_walk(world.get_entity_node(own) as Node3D, new_packet)
		if world.get_entity_position(own).distance_to(walk_to) < 0.01:
			_arrived_msec = now
			print("FW_ARRIVED tick=%d" % tick)
	if _arrived_msec >= 0 and now - _arrived_msec > 1500:
		var s := world.get_stats()
		print(
			(
				"FW_STATS visible=%d bytes_per_second=%.1f updates_per_second=%.1f avatar_zone=%d"
				% [s.visible, s.bytes_per_second, s.updates_per_second, s.avatar_zone]
			)
		)
		print(
			(
				"FW_SMOOTH frames=%d moves=%d ticks=%d max_speed=%.3f backwards=%d"
				% [_walk_frames, _walk_moves, _walk_ticks, _walk_max_speed, _walk_backwards]
			)
		)
		_leaving = true
		world.leave()


## How the avatar's node moves from frame to frame while it walks (interpolated between ticks).
## Speeds are measured over at least 20 ms of real time (a frame's own delta is too short and
## too coarse for that).
func _watch_walk(node: Node3D, new_packet: bool) -> void:
	if node == null:
		return
	var p := node.position
	var now := Time.get_ticks_usec()
	if _walk_first_tick < 0:
		_walk_first_tick = world.get_last_tick()
	_walk_ticks = world.get_last_tick() - _walk_first_tick
	if _walk_prev != Vector3.INF:
		_walk_frames += 1
		if p != _walk_last and not new_packet:
			_walk_moves += 1
		if p.x < _walk_prev.x - 1e-4:
			_walk_backwards += 1
		var secs := float(now - _walk_prev_usec) / 1e6
		if secs >= 0.02:
			_walk_max_speed = maxf(_walk_max_speed, p.distance_to(_walk_prev) / secs)
	_walk_last = p
	if _walk_prev != Vector3.INF and float(now - _walk_prev_usec) < 2e4:
		return
	_walk_prev = p
	_walk_prev_usec = now


func _report(tick: int) -> void:
	var ids := world.get_visible_entity_ids()
	var names := PackedStringArray()
	var nodes_ok := 1
	for id in ids:
		names.append(str(id))
		var node := world.get_entity_node(id)
		if node == null or node.get_parent() != world:
			nodes_ok = 0
	var children := 0
	for child in world.get_children():
		if String(child.name).begins_with("Entity_"):
			children += 1
	print(
		(
			"FW_VIEW tick=%d own=%d visible=%d nodes=%d signals=%d nodes_ok=%d ids=%s"
			% [
				tick,
				world.get_own_avatar_id(),
				ids.size(),
				children,
				_entered.size(),
				nodes_ok,
				",".join(names),
			]
		)
	)
	var shown := 0
	for id in ids:
		if shown >= MAX_POS_LINES:
			break
		if world.get_entity_tick(id) != tick:
			continue
		shown += 1
		var p := world.get_entity_position(id)
		print("FW_POS tick=%d id=%d x=%.4f y=%.4f z=%.4f" % [tick, id, p.x, p.y, p.z])


func _fail(why: String) -> void:
	print("FW_FAIL why=%s" % why.replace(" ", "_"))
	get_tree().quit(1)


func _parse_args() -> void:
	var args := ExampleArgs.parse(OS.get_cmdline_user_args())
	ExampleArgs.take_connection(world, args)
	for key in args:
		var value: String = args[key]
		match key:
			"walk-to":
				walk_to = ExampleArgs.vec3(value)
			"play-sec":
				play_sec = float(value)
			"timeout-sec":
				timeout_sec = float(value)
			_:
				push_warning("unknown argument --%s" % key)
