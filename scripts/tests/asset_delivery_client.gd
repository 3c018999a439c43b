extends Node
## The watching player of tests/e2e/tests/asset_delivery.rs: a FabricWorld joins a zone and
## `examples/fabric_world/asset_instancer.gd` shows the asset instances it sees, fetched from
## the backend. Machine-readable lines:
##
## - `AD_AVATAR id=A` once joined;
## - `AD_PROGRESS asset=NAME done=D total=T` as a fetch goes on;
## - `AD_INSTANCED entity=E asset=NAME id=ID node=N mesh=M x=.. y=.. z=..` (the asset's whole
##   id as Godot computes it from its hash, the instantiated scene, its first mesh's name and
##   its global position), or `AD_FAILED entity=E reason=..`;
## - once `--expect N` instances are instantiated or failed: `AD_DONE` and exit 0;
##   `AD_FAIL why=..` and exit 1 on a timeout or a lost session.
##
## User arguments (after `--`): --url URL --cert-hash HASH --backend URL --map MAP
## --api-key KEY --cache-dir DIR [--spawn X,Y,Z] [--expect N] [--timeout-sec S]

const ExampleArgs := preload("res://examples/fabric_world/example_args.gd")
var timeout_sec := 60.0
var expect := 1
var _start_msec := 0
var _outcomes := 0
var _done := false

@onready var world: FabricWorld = $World
@onready var instancer: Node = $Instancer


func _ready() -> void:
	_start_msec = Time.get_ticks_msec()
	_parse_args()
	world.avatar_spawned.connect(func(id: int, _zone: int) -> void: print("AD_AVATAR id=%d" % id))
	world.disconnected.connect(_on_disconnected)
	instancer.fetch_progress.connect(_on_progress)
	instancer.asset_instanced.connect(_on_instanced)
	instancer.asset_failed.connect(_on_failed)
	var err := world.connect_to_fabric()
	if err != OK:
		_fail("connect_to_fabric: %s" % error_string(err))


func _on_progress(asset_name: String, done: int, total: int) -> void:
	print("AD_PROGRESS asset=%s done=%d total=%d" % [asset_name, done, total])


func _on_instanced(entity: int, node: Node3D, asset_name: String, asset_id: int) -> void:
	var meshes := node.find_children("*", "MeshInstance3D", true, false)
	var mesh_name := "none" if meshes.is_empty() else str(meshes[0].name)
	var p := node.global_position
	print(
		(
			"AD_INSTANCED entity=%d asset=%s id=%d node=%s mesh=%s x=%.4f y=%.4f z=%.4f"
			% [entity, asset_name, asset_id, node.name, mesh_name, p.x, p.y, p.z]
		)
	)
	_outcome()


func _on_failed(entity: int, reason: String) -> void:
	print("AD_FAILED entity=%d reason=%s" % [entity, reason.replace(" ", "_")])
	_outcome()


func _outcome() -> void:
	_outcomes += 1
	if _outcomes >= expect and not _done:
		_done = true
		world.leave()
		print("AD_DONE")
		get_tree().quit(0)


func _on_disconnected(reason: String) -> void:
	if not _done:
		_fail("disconnected: %s" % reason)


func _process(_delta: float) -> void:
	if not _done and Time.get_ticks_msec() - _start_msec > timeout_sec * 1000.0:
		_fail("timeout")


func _fail(why: String) -> void:
	_done = true
	print("AD_FAIL why=%s" % why.replace(" ", "_"))
	get_tree().quit(1)


func _parse_args() -> void:
	var args := ExampleArgs.parse(OS.get_cmdline_user_args())
	ExampleArgs.take_connection(world, args)
	for key in args:
		var value: String = args[key]
		match key:
			"backend":
				instancer.backend_url = value
			"map":
				instancer.map_name = value
			"api-key":
				instancer.api_key = value
			"cache-dir":
				instancer.cache_dir = value
			"expect":
				expect = int(value)
			"timeout-sec":
				timeout_sec = float(value)
			_:
				push_warning("unknown argument --%s" % key)
