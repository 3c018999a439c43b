extends Node3D
## A player in the fabric: a FabricWorld shows the entities near the avatar (blue spheres; the
## avatar is the orange capsule), a camera follows the avatar, a click on the ground walks the
## avatar there, and a label shows what the stream costs (FabricWorld.get_stats()).
##
##     # against `cargo xtask fabric` (its registry on http://127.0.0.1:8080): an account is made,
##     # the zones listed, a join token fetched for one, and the avatar spawned there
##     godot --path . res://examples/fabric_world/fabric_world.tscn -- \
##         --backend http://127.0.0.1:8080
##     # straight to one zone that admits without tokens (FABRIC_ZONE_READY prints both):
##     godot --path . res://examples/fabric_world/fabric_world.tscn -- \
##         --url https://127.0.0.1:7443/wt --cert-hash HASH
##
## Also: `--spawn X,Y,Z` (metres), `--quit-after SECONDS` (for tests), `--headless` works too.
## Once a second it prints `FABRIC_WORLD_EXAMPLE visible=.. bytes_per_second=..
## updates_per_second=.. avatar=.. avatar_zone=..`.

const ExampleArgs := preload("example_args.gd")

var _registry: FabricRegistry
var _zones: Array = []
var _next_zone := 0
var _quit_after := 0.0
var _elapsed := 0.0
var _next_print := 1.0

@onready var world: FabricWorld = $World
@onready var camera: Camera3D = $Camera
@onready var hud: Label = $Hud


func _ready() -> void:
	var args := ExampleArgs.parse(OS.get_cmdline_user_args())
	_quit_after = float(args.get("quit-after", "0"))
	ExampleArgs.take_connection(world, args, "https://127.0.0.1:7443/wt")
	world.avatar_spawned.connect(
		func(id: int, zone: int) -> void: print("avatar %d spawned in zone %d" % [id, zone])
	)
	world.disconnected.connect(_on_disconnected)
	world.command_refused.connect(func(counts: Dictionary) -> void: push_warning(str(counts)))
	if args.has("backend"):
		_registry = FabricRegistry.new()
		_registry.backend_url = args["backend"]
		add_child(_registry)
		_registry.api_key = await _registry.create_account("player-%d" % randi())
		_zones = await _registry.list_zones()
		await _join_next_zone()
	else:
		world.connect_to_fabric()


## Joins the next listed zone with a fresh join token.
func _join_next_zone() -> void:
	if _next_zone >= _zones.size():
		push_error("no zone took the avatar (%d listed)" % _zones.size())
		return
	var zone: Dictionary = _zones[_next_zone]
	_next_zone += 1
	world.zone_url = _registry.zone_url(zone)
	world.cert_hash = _registry.zone_pins(zone)
	world.join_token = await _registry.issue_join_token(zone.id)
	world.connect_to_fabric()


func _on_disconnected(reason: String) -> void:
	print("disconnected: %s" % reason)
	# The spawn point lies in another zone's range: ask the next one.
	if reason.begins_with("avatar_elsewhere") and _registry != null:
		_join_next_zone.call_deferred()


func _process(delta: float) -> void:
	_elapsed += delta
	var own := world.get_own_avatar_id()
	var node := world.get_entity_node(own) as Node3D
	if node != null:
		var target := node.position + Vector3(0, 30, 17)
		camera.position = camera.position.lerp(target, minf(1.0, delta * 3.0))
	var s := world.get_stats()
	if not s.is_empty():
		hud.text = (
			"visible %d   %.1f KB/s   %.0f updates/s   avatar %d in zone %d"
			% [
				s.visible,
				s.bytes_per_second / 1024.0,
				s.updates_per_second,
				s.avatar_id,
				s.avatar_zone,
			]
		)
	if _elapsed >= _next_print:
		_next_print += 1.0
		print(
			(
				(
					"FABRIC_WORLD_EXAMPLE visible=%d bytes_per_second=%.0f updates_per_second=%.1f"
					+ " avatar=%d avatar_zone=%d"
				)
				% [
					s.get("visible", 0),
					s.get("bytes_per_second", 0.0),
					s.get("updates_per_second", 0.0),
					own,
					s.get("avatar_zone", -1),
				]
			)
		)
	if _quit_after > 0.0 and _elapsed >= _quit_after:
		world.leave()
		get_tree().quit(0)


## A click on the ground (y = 0) walks the avatar there.
func _unhandled_input(event: InputEvent) -> void:
	var click := event as InputEventMouseButton
	if click == null or not click.pressed or click.button_index != MOUSE_BUTTON_LEFT:
		return
	var from := camera.project_ray_origin(click.position)
	var dir := camera.project_ray_normal(click.position)
	if absf(dir.y) < 1e-4:
		return
	var at := from + dir * (-from.y / dir.y)
	world.move_avatar_to(at)
