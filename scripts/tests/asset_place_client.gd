extends Node
## The headless players of tests/e2e/tests/fabric_world_assets.rs: a FabricWorld joins a zone
## and either places an asset (`--place-asset ID --at X,Y,Z`) or watches for an instance of one
## (`--watch-asset ID`). Machine-readable lines:
##
## - `FA_AVATAR id=A`;
## - placing: `FA_SENT request=R` (what `place_asset` returned), then `FA_PLACED request=R
##   entity=E` on `asset_placed`, or `FA_REFUSED request=R reason=..` on `asset_refused`;
## - watching: `FA_SEEN entity=E asset=A x=.. y=.. z=..` once an entity whose
##   `get_entity_asset` is the low 24 bits of ID is visible;
## - `FA_DONE` and exit 0; `FA_FAIL why=..` and exit 1 on a timeout, a refusal or a lost session.
##
## User arguments (after `--`): --url URL --cert-hash HASH [--token TOKEN] [--spawn X,Y,Z]
## [--place-asset ID --at X,Y,Z] [--watch-asset ID] [--timeout-sec S]

const ExampleArgs := preload("res://examples/fabric_world/example_args.gd")
var timeout_sec := 60.0
var place_asset := 0
var watch_asset := 0
var at := Vector3.ZERO
var _start_msec := 0
var _request := -1
var _done := false

@onready var world: FabricWorld = $World


func _ready() -> void:
	_start_msec = Time.get_ticks_msec()
	_parse_args()
	world.avatar_spawned.connect(_on_avatar)
	world.asset_placed.connect(_on_placed)
	world.asset_refused.connect(_on_refused)
	world.disconnected.connect(_on_disconnected)
	var err := world.connect_to_fabric()
	if err != OK:
		_fail("connect_to_fabric: %s" % error_string(err))


func _on_avatar(id: int, _zone: int) -> void:
	print("FA_AVATAR id=%d" % id)
	if place_asset != 0:
		_request = world.place_asset(place_asset, at)
		print("FA_SENT request=%d" % _request)
		if _request < 1:
			_fail("place_asset returned %d" % _request)


func _on_placed(request: int, entity: int) -> void:
	print("FA_PLACED request=%d entity=%d" % [request, entity])
	if request == _request:
		_finish()


func _on_refused(request: int, reason: String) -> void:
	print("FA_REFUSED request=%d reason=%s" % [request, reason])
	_fail("refused")


func _on_disconnected(reason: String) -> void:
	if not _done:
		_fail("disconnected: %s" % reason)


func _process(_delta: float) -> void:
	if _done:
		return
	if Time.get_ticks_msec() - _start_msec > timeout_sec * 1000.0:
		_fail("timeout")
		return
	if watch_asset == 0:
		return
	for id in world.get_visible_entity_ids():
		if world.get_entity_asset(id) == watch_asset & 0xFFFFFF:
			var p := world.get_entity_position(id)
			print(
				(
					"FA_SEEN entity=%d asset=%d x=%.4f y=%.4f z=%.4f"
					% [id, world.get_entity_asset(id), p.x, p.y, p.z]
				)
			)
			_finish()
			return


func _finish() -> void:
	_done = true
	world.leave()
	print("FA_DONE")
	get_tree().quit(0)


func _fail(why: String) -> void:
	_done = true
	print("FA_FAIL why=%s" % why.replace(" ", "_"))
	get_tree().quit(1)


func _parse_args() -> void:
	var args := ExampleArgs.parse(OS.get_cmdline_user_args())
	ExampleArgs.take_connection(world, args)
	for key in args:
		var value: String = args[key]
		match key:
			"place-asset":
				place_asset = int(value)
			"watch-asset":
				watch_asset = int(value)
			"at":
				at = ExampleArgs.vec3(value)
			"timeout-sec":
				timeout_sec = float(value)
			_:
				push_warning("unknown argument --%s" % key)
