extends Node3D
## The fabric seen from above: a FabricWorld whose entities are drawn as small boxes coloured by
## the zone that owns them (a legend names the colours), under an orthographic top-down camera
## that shows the whole world. The avatar of this client (white) stands still.
##
##     # `cargo xtask demo --visual` opens it against the demo's fabric; by hand:
##     godot --path . res://examples/fabric_world/visual.tscn -- \
##         --url https://127.0.0.1:4433/wt --cert-hash HASH --spawn X,Y,Z --world-half 15
##
## For tests: `--screenshot PATH` saves what the window shows (the viewport's image, PNG) once
## entities of `--shot-zones N` zones (3 by default) have been drawn for 30 frames and
## `--shot-after SECONDS` (4 by default: the view fills) have passed since the avatar spawned,
## prints `FABRIC_VISUAL_SHOT path=.. entities=.. zones=0:n,1:n,.. legend=x,y,w,h` and quits;
## `--quit-after SECONDS` quits anyway. Run it windowed (under Xvfb with
## `--rendering-method gl_compatibility --rendering-driver opengl3` without a GPU).
## Once a second it prints `FABRIC_VISUAL visible=.. zones=..`.

const ExampleArgs := preload("example_args.gd")

## Colours of zones 0, 1, 2, ... (more zones reuse them).
const ZONE_COLOURS: Array[Color] = [
	Color8(235, 64, 52),
	Color8(52, 199, 89),
	Color8(40, 120, 245),
	Color8(245, 200, 40),
	Color8(200, 70, 220),
	Color8(40, 210, 220),
]
const AVATAR_COLOUR := Color8(255, 255, 255)
const SHOT_AFTER_FRAMES := 30

var _materials: Array[StandardMaterial3D] = []
var _avatar_material: StandardMaterial3D
var _drawn_zone := {}
var _screenshot := ""
var _shot_zones := 3
var _shot_after := 4.0
var _spawned_at := -1.0
var _frames_with_zones := 0
var _quit_after := 0.0
var _elapsed := 0.0
var _next_print := 1.0

@onready var world: FabricWorld = $World
@onready var camera: Camera3D = $Camera
@onready var hud: Label = $Overlay/Hud
@onready var legend: PanelContainer = $Overlay/Legend


func _ready() -> void:
	# After the FabricWorld's own _process (which makes and moves the entities' nodes), so a
	# screenshot never shows a node not coloured yet.
	process_priority = 10
	var args := ExampleArgs.parse(OS.get_cmdline_user_args())
	_screenshot = args.get("screenshot", "")
	_shot_zones = int(args.get("shot-zones", "3"))
	_shot_after = float(args.get("shot-after", "4"))
	_quit_after = float(args.get("quit-after", "0"))
	var half := float(args.get("world-half", "15"))
	camera.projection = Camera3D.PROJECTION_ORTHOGONAL
	camera.size = half * 2.0 + 2.0
	camera.near = 0.05
	camera.far = half * 4.0 + 20.0
	camera.look_at_from_position(Vector3(0, half * 2.0 + 10.0, 0), Vector3.ZERO, Vector3.FORWARD)
	for c in ZONE_COLOURS:
		_materials.append(_flat(c))
	_avatar_material = _flat(AVATAR_COLOUR)
	_build_legend(int(args.get("zones", "3")))
	ExampleArgs.take_connection(world, args, "https://127.0.0.1:4433/wt")
	world.avatar_spawned.connect(func(_id: int, _zone: int) -> void: _spawned_at = _elapsed)
	world.entity_entered.connect(func(id: int, _node: Node) -> void: _colour(id))
	world.entity_exited.connect(func(id: int) -> void: _drawn_zone.erase(id))
	world.disconnected.connect(
		func(reason: String) -> void: print("FABRIC_VISUAL disconnected: %s" % reason)
	)
	world.connect_to_fabric()


## An unshaded material: the colour on screen is exactly `c`, whatever the light.
func _flat(c: Color) -> StandardMaterial3D:
	var m := StandardMaterial3D.new()
	m.shading_mode = BaseMaterial3D.SHADING_MODE_UNSHADED
	m.albedo_color = c
	return m


func _build_legend(zones: int) -> void:
	var rows := VBoxContainer.new()
	legend.add_child(rows)
	for k in zones:
		var row := HBoxContainer.new()
		var swatch := ColorRect.new()
		swatch.color = ZONE_COLOURS[k % ZONE_COLOURS.size()]
		swatch.custom_minimum_size = Vector2(14, 14)
		row.add_child(swatch)
		var name_label := Label.new()
		name_label.text = "zone %d" % k
		row.add_child(name_label)
		rows.add_child(row)
	var own := HBoxContainer.new()
	var swatch := ColorRect.new()
	swatch.color = AVATAR_COLOUR
	swatch.custom_minimum_size = Vector2(14, 14)
	own.add_child(swatch)
	var own_label := Label.new()
	own_label.text = "this client"
	own.add_child(own_label)
	rows.add_child(own)


## Gives every drawn entity the material of the zone that owns it now (entities change zones).
func _recolour() -> Dictionary:
	var per_zone := {}
	for id in world.get_visible_entity_ids():
		var zone := _colour(id)
		per_zone[zone] = per_zone.get(zone, 0) + 1
	return per_zone


## Colours entity `id`'s node for its zone (white for the own avatar); returns the zone.
func _colour(id: int) -> int:
	var zone := world.get_entity_zone(id)
	var own := id == world.get_own_avatar_id()
	var key := -2 if own else zone
	if _drawn_zone.get(id, -3) == key:
		return zone
	var node := world.get_entity_node(id) as MeshInstance3D
	if node == null:
		return zone
	if own:
		node.material_override = _avatar_material
		node.scale = Vector3(1.6, 1.6, 1.6)
	else:
		node.material_override = _materials[zone % _materials.size()]
	_drawn_zone[id] = key
	return zone


func _process(delta: float) -> void:
	_elapsed += delta
	var per_zone := _recolour()
	var s := world.get_stats()
	var zones: Array = per_zone.keys()
	zones.sort()
	var text := ",".join(zones.map(func(z: int) -> String: return "%d:%d" % [z, per_zone[z]]))
	hud.text = (
		"visible %d (zone:count %s)   %.1f KB/s   %.0f updates/s"
		% [
			s.get("visible", 0),
			text,
			s.get("bytes_per_second", 0.0) / 1024.0,
			s.get("updates_per_second", 0.0)
		]
	)
	if _elapsed >= _next_print:
		_next_print += 1.0
		print("FABRIC_VISUAL visible=%d zones=%s" % [s.get("visible", 0), text])
	if _screenshot != "":
		_frames_with_zones = _frames_with_zones + 1 if zones.size() >= _shot_zones else 0
		var settled := _spawned_at >= 0.0 and _elapsed - _spawned_at >= _shot_after
		if _frames_with_zones >= SHOT_AFTER_FRAMES and settled:
			_shoot(s.get("visible", 0), text)
			return
	if _quit_after > 0.0 and _elapsed >= _quit_after:
		world.leave()
		get_tree().quit(0 if _screenshot == "" else 1)


func _shoot(visible: int, zones: String) -> void:
	var image := get_viewport().get_texture().get_image()
	var err := image.save_png(_screenshot)
	var r := legend.get_global_rect()
	print(
		(
			"FABRIC_VISUAL_SHOT path=%s entities=%d zones=%s legend=%d,%d,%d,%d size=%dx%d err=%d"
			% [
				_screenshot,
				visible,
				zones,
				r.position.x,
				r.position.y,
				ceili(r.size.x),
				ceili(r.size.y),
				image.get_width(),
				image.get_height(),
				err,
			]
		)
	)
	_screenshot = ""
	world.leave()
	get_tree().quit(0 if err == OK else 1)
