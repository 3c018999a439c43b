extends Node
## A headless bot player (`cargo xtask demo` starts some): joins the fabric with a FabricWorld,
## walks its avatar around a loop of waypoints with `move_avatar_to` (across zone borders), and
## once a second prints what it sees:
##
##     FABRIC_BOT name=bot0 visible=41 zones_seen=0,1,2 bytes_per_second=3120
##         updates_per_second=20.0 avatar=812 avatar_zone=1 crossings=2 session_zone=1
##         zone_changes=2 own_updates=240 own_gap=1 own_gap_tick=5123 near_hz=19.5
##         entity_updates_per_second=812
##
##     godot --headless --path . res://examples/fabric_world/bot.tscn -- \
##         --url https://127.0.0.1:4433/wt --cert-hash HASH --spawn X,Y,Z \
##         --waypoints "X,Y,Z;X,Y,Z;..." [--name bot0] [--quit-after SECONDS]
##
## `zones_seen` lists every zone that owned an entity this bot saw (since it joined);
## `crossings` counts the changes of its avatar's zone; `zone_changes` the `zone_changed`
## signals (the session followed the avatar: through the gateway, or by itself on a direct
## connection), each also printed as `FABRIC_BOT name=bot0 zone_changed zone=1 tick=5120`.
## `own_updates` counts the updates of its own avatar (`entity_updated`), `own_gap` is the
## longest run of zone ticks between two of them since the avatar first moved, ending at tick
## `own_gap_tick`. With `--log-own-ticks`, each second also prints the zone ticks of the
## updates of its own avatar received in that second (`FABRIC_BOT_OWN name=bot0 ticks=5120,5121`).
## `near_hz` is how often a second each of the 32 entities nearest its avatar (picked at each
## status line, its own avatar left out) was updated until the next one, on average;
## `entity_updates_per_second` counts every entity record it received.
## `--fps N` caps its frame rate (a light bot: `--fps 30`); `--walk-speed M` sets the walk's
## metres per second (4 by default).

const ExampleArgs := preload("example_args.gd")
## How many of the nearest entities `near_hz` follows.
const NEAR := 32

var _name := "bot"
var _waypoints: Array[Vector3] = []
var _next_waypoint := 0
var _quit_after := 0.0
var _elapsed := 0.0
var _next_print := 1.0
var _zones_seen := {}
var _crossings := 0
var _last_zone := -1
var _zone_changes := 0
var _own_updates := 0
var _own_last_tick := -1
var _own_gap := 0
var _own_gap_tick := -1
var _log_own_ticks := false
var _own_ticks: PackedInt64Array = []
## The nearest entities picked at the last status line, each with its updates since.
var _near := {}
var _near_since := 0.0
var _near_hz := 0.0

@onready var world: FabricWorld = $World


func _ready() -> void:
	var args := ExampleArgs.parse(OS.get_cmdline_user_args())
	_name = args.get("name", "bot")
	_quit_after = float(args.get("quit-after", "0"))
	_log_own_ticks = args.has("log-own-ticks")
	if args.has("walk-speed"):
		world.walk_speed = float(args["walk-speed"])
	if args.has("fps"):
		Engine.max_fps = int(args["fps"])
	for w in String(args.get("waypoints", "")).split(";", false):
		_waypoints.append(ExampleArgs.vec3(w))
	ExampleArgs.take_connection(world, args, "https://127.0.0.1:4433/wt")
	world.avatar_spawned.connect(_on_avatar_spawned)
	world.zone_changed.connect(_on_zone_changed)
	world.entity_updated.connect(_on_entity_updated)
	world.disconnected.connect(
		func(reason: String) -> void: print("FABRIC_BOT name=%s disconnected: %s" % [_name, reason])
	)
	world.connect_to_fabric()


func _on_avatar_spawned(id: int, zone: int) -> void:
	print("FABRIC_BOT name=%s avatar %d spawned in zone %d" % [_name, id, zone])
	_last_zone = zone
	_walk_on()


func _on_zone_changed(zone: int) -> void:
	_zone_changes += 1
	print("FABRIC_BOT name=%s zone_changed zone=%d tick=%d" % [_name, zone, world.get_last_tick()])


func _on_entity_updated(id: int, _position: Vector3) -> void:
	if id != world.get_own_avatar_id():
		if _near.has(id):
			_near[id] += 1
		return
	var tick := world.get_entity_tick(id)
	_own_updates += 1
	if _log_own_ticks:
		_own_ticks.append(tick)
	if _own_last_tick >= 0 and tick - _own_last_tick > _own_gap:
		_own_gap = tick - _own_last_tick
		_own_gap_tick = tick
	_own_last_tick = tick


## The mean update rate of the entities picked by `_pick_near` since then, then a new pick: the
## `NEAR` visible entities nearest the avatar `own`.
func _pick_near(own: int) -> void:
	var seconds := _elapsed - _near_since
	if not _near.is_empty() and seconds > 0.0:
		var total := 0
		for n: int in _near.values():
			total += n
		_near_hz = total / float(_near.size()) / seconds
	_near.clear()
	_near_since = _elapsed
	if own < 0:
		return
	var me := world.get_entity_position(own)
	var ids := Array(world.get_visible_entity_ids()).filter(func(id: int) -> bool: return id != own)
	var far := func(id: int) -> float: return world.get_entity_position(id).distance_squared_to(me)
	ids.sort_custom(func(a: int, b: int) -> bool: return far.call(a) < far.call(b))
	for id: int in ids.slice(0, NEAR):
		_near[id] = 0


## Walks to the next waypoint (the loop starts again after the last).
func _walk_on() -> void:
	if _waypoints.is_empty():
		return
	world.move_avatar_to(_waypoints[_next_waypoint])
	_next_waypoint = (_next_waypoint + 1) % _waypoints.size()


func _process(delta: float) -> void:
	_elapsed += delta
	var own := world.get_own_avatar_id()
	if own >= 0:
		for id in world.get_visible_entity_ids():
			_zones_seen[world.get_entity_zone(id)] = true
		var zone := world.get_entity_zone(own)
		if zone >= 0 and _last_zone >= 0 and zone != _last_zone:
			_crossings += 1
		if zone >= 0:
			_last_zone = zone
		if not _waypoints.is_empty():
			var n := _waypoints.size()
			var target := _waypoints[(_next_waypoint + n - 1) % n]
			if world.get_entity_position(own).distance_to(target) < 0.3:
				_walk_on()
	if _elapsed >= _next_print:
		_next_print += 1.0
		if not _own_ticks.is_empty():
			var ticks := Array(_own_ticks).map(func(t: int) -> String: return str(t))
			print("FABRIC_BOT_OWN name=%s ticks=%s" % [_name, ",".join(ticks)])
			_own_ticks.clear()
		_pick_near(own)
		var s := world.get_stats()
		var zones: Array = _zones_seen.keys()
		zones.sort()
		print(
			(
				(
					"FABRIC_BOT name=%s visible=%d zones_seen=%s bytes_per_second=%.0f"
					+ " updates_per_second=%.1f avatar=%d avatar_zone=%d crossings=%d"
					+ " session_zone=%d zone_changes=%d own_updates=%d own_gap=%d own_gap_tick=%d"
					+ " near_hz=%.1f entity_updates_per_second=%.0f"
				)
				% [
					_name,
					s.get("visible", 0),
					",".join(zones.map(func(z: int) -> String: return str(z))),
					s.get("bytes_per_second", 0.0),
					s.get("updates_per_second", 0.0),
					own,
					_last_zone,
					_crossings,
					s.get("session_zone", -1),
					_zone_changes,
					_own_updates,
					_own_gap,
					_own_gap_tick,
					_near_hz,
					s.get("entity_updates_per_second", 0.0),
				]
			)
		)
	if _quit_after > 0.0 and _elapsed >= _quit_after:
		world.leave()
		get_tree().quit(0)
