extends Node
## The mid-session joiner of tests/e2e/tests/late_joiner.rs: a FabricWorld joins a zone whose
## entities are already moving and held, waits for `baseline_done`, then dumps what it holds
## after each new packet for `--dump-sec` seconds and leaves. Lines:
##
## - `LJ_BASELINE tick=T visible=N own=A` when `baseline_done(T)` fires;
## - after each new packet from then on: `LJ_VIEW tick=T ids=I1,I2,...` (every visible id) and
##   `LJ_E tick=E id=I x=.. y=.. z=.. holder=H` per visible entity (E: the tick of its newest
##   state; metres to 0.1 mm; H the avatar id holding it, -1 for the zone);
## - `LJ_DONE` and exit 0; `LJ_FAIL why=..` and exit 1 on a timeout or a lost session.
##
## User arguments (after `--`): --url URL --cert-hash HASH [--spawn X,Y,Z] [--dump-sec S]
## [--timeout-sec S]

const ExampleArgs := preload("res://examples/fabric_world/example_args.gd")

var dump_sec := 3.0
var timeout_sec := 60.0
var _start_msec := 0
var _baseline_msec := -1
var _last_tick := -1
var _leaving := false

@onready var world: FabricWorld = $World


func _ready() -> void:
	_start_msec = Time.get_ticks_msec()
	_parse_args()
	world.baseline_done.connect(_on_baseline_done)
	world.disconnected.connect(_on_disconnected)
	var err := world.connect_to_fabric()
	if err != OK:
		_fail("connect_to_fabric: %s" % error_string(err))


func _on_baseline_done(tick: int) -> void:
	if _baseline_msec >= 0:
		_fail("a second baseline_done in one zone")
		return
	_baseline_msec = Time.get_ticks_msec()
	var own := world.get_own_avatar_id()
	var n := world.get_visible_entity_ids().size()
	print("LJ_BASELINE tick=%d visible=%d own=%d" % [tick, n, own])
	_dump()


func _process(_delta: float) -> void:
	var now := Time.get_ticks_msec()
	if _leaving:
		return
	if now - _start_msec > int(timeout_sec * 1000.0):
		_fail("timed out")
		return
	if _baseline_msec < 0 or world.get_last_tick() == _last_tick:
		return
	_dump()
	if now - _baseline_msec >= int(dump_sec * 1000.0):
		_leaving = true
		world.leave()


func _dump() -> void:
	_last_tick = world.get_last_tick()
	var ids := world.get_visible_entity_ids()
	var text := PackedStringArray()
	for id in ids:
		text.append(str(id))
	print("LJ_VIEW tick=%d ids=%s" % [_last_tick, ",".join(text)])
	for id in ids:
		var p := world.get_entity_position(id)
		print(
			(
				"LJ_E tick=%d id=%d x=%.4f y=%.4f z=%.4f holder=%d"
				% [world.get_entity_tick(id), id, p.x, p.y, p.z, world.get_holder(id)]
			)
		)


func _on_disconnected(reason: String) -> void:
	if not _leaving:
		_fail("the session ended: %s" % reason)
		return
	print("LJ_DONE")
	get_tree().quit(0)


func _fail(why: String) -> void:
	print("LJ_FAIL why=%s" % why.replace(" ", "_"))
	get_tree().quit(1)


func _parse_args() -> void:
	var args := ExampleArgs.parse(OS.get_cmdline_user_args())
	world.zone_url = args.get("url", "")
	world.cert_hash = args.get("cert-hash", "")
	if args.has("spawn"):
		world.spawn_at = ExampleArgs.vec3(args["spawn"])
	dump_sec = float(args.get("dump-sec", dump_sec))
	timeout_sec = float(args.get("timeout-sec", timeout_sec))
