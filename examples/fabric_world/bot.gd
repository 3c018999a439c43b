extends Node
## A headless bot player (`cargo xtask demo` starts some): joins the fabric with a FabricWorld,
## walks its avatar around a loop of waypoints with `move_avatar_to` (across zone borders), and
## once a second prints what it sees:
##
##     FABRIC_BOT name=bot0 visible=41 zones_seen=0,1,2 bytes_per_second=3120
##         updates_per_second=20.0 avatar=812 avatar_zone=1 crossings=2
##
##     godot --headless --path . res://examples/fabric_world/bot.tscn -- \
##         --url https://127.0.0.1:4433/wt --cert-hash HASH --spawn X,Y,Z \
##         --waypoints "X,Y,Z;X,Y,Z;..." [--name bot0] [--quit-after SECONDS]
##
## `zones_seen` lists every zone that owned an entity this bot saw (since it joined);
## `crossings` counts the changes of its avatar's zone.

const ExampleArgs := preload("example_args.gd")

var _name := "bot"
var _waypoints: Array[Vector3] = []
var _next_waypoint := 0
var _quit_after := 0.0
var _elapsed := 0.0
var _next_print := 1.0
var _zones_seen := {}
var _crossings := 0
var _last_zone := -1

@onready var world: FabricWorld = $World


func _ready() -> void:
	var args := ExampleArgs.parse(OS.get_cmdline_user_args())
	_name = args.get("name", "bot")
	_quit_after = float(args.get("quit-after", "0"))
	if args.has("spawn"):
		world.spawn_at = ExampleArgs.vec3(args["spawn"])
	for w in String(args.get("waypoints", "")).split(";", false):
		_waypoints.append(ExampleArgs.vec3(w))
	world.zone_url = args.get("url", "https://127.0.0.1:4433/wt")
	world.cert_hash = args.get("cert-hash", "")
	world.join_token = args.get("token", "")
	world.avatar_spawned.connect(_on_avatar_spawned)
	world.disconnected.connect(
		func(reason: String) -> void: print("FABRIC_BOT name=%s disconnected: %s" % [_name, reason])
	)
	world.connect_to_fabric()


func _on_avatar_spawned(id: int, zone: int) -> void:
	print("FABRIC_BOT name=%s avatar %d spawned in zone %d" % [_name, id, zone])
	_last_zone = zone
	_walk_on()


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
		var s := world.get_stats()
		var zones: Array = _zones_seen.keys()
		zones.sort()
		print(
			(
				(
					"FABRIC_BOT name=%s visible=%d zones_seen=%s bytes_per_second=%.0f"
					+ " updates_per_second=%.1f avatar=%d avatar_zone=%d crossings=%d"
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
				]
			)
		)
	if _quit_after > 0.0 and _elapsed >= _quit_after:
		world.leave()
		get_tree().quit(0)
