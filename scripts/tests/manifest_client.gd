extends Node
## A player of the replication manifest test (tests/e2e/tests/manifest.rs): a FabricWorld with
## the crate manifest (examples/manifest/crate_manifest.gd) and the crate scene joins a zone and
## prints:
##
## - `MC_PROP id=I word=W value=V` on every `property_changed`;
## - `MC_BASELINE tick=T` on `baseline_done`;
## - `--run-sec` seconds after the baseline: `MC_RATE id=I updates=N ticks=T` per visible
##   entity (its `entity_updated` signals since the baseline and the zone ticks they span),
##   `MC_NODE id=I material=M label=L` per crate node (the node properties the manifest set),
##   `MC_STATS stale=S bytes=B`, then `MC_DONE` and exit 0;
## - `MC_FAIL why=..` and exit 1 on a timeout or a lost session.
##
## User arguments (after `--`): --url URL --cert-hash HASH [--run-sec S] [--timeout-sec S]

const CrateManifest := preload("res://examples/manifest/crate_manifest.gd")
const ExampleArgs := preload("res://examples/fabric_world/example_args.gd")

var run_sec := 10.0
var timeout_sec := 60.0
var _start_msec := 0
var _baseline_msec := -1
var _updates := {}
var _first_tick := {}
var _leaving := false

@onready var world: FabricWorld = $World


func _ready() -> void:
	_start_msec = Time.get_ticks_msec()
	var args := ExampleArgs.parse(OS.get_cmdline_user_args())
	world.zone_url = args.get("url", "")
	world.cert_hash = args.get("cert-hash", "")
	run_sec = float(args.get("run-sec", run_sec))
	timeout_sec = float(args.get("timeout-sec", timeout_sec))
	world.replication_manifest = CrateManifest.build()
	world.property_changed.connect(_on_property_changed)
	world.baseline_done.connect(_on_baseline_done)
	world.entity_updated.connect(_on_entity_updated)
	world.disconnected.connect(_on_disconnected)
	var err := world.connect_to_fabric()
	if err != OK:
		_fail("connect_to_fabric: %s" % error_string(err))


func _on_property_changed(id: int, word: int, value: int) -> void:
	print("MC_PROP id=%d word=%d value=%d" % [id, word, value])


func _on_baseline_done(tick: int) -> void:
	_baseline_msec = Time.get_ticks_msec()
	print("MC_BASELINE tick=%d" % tick)


func _on_entity_updated(id: int, _position: Vector3) -> void:
	if _baseline_msec < 0:
		return
	_updates[id] = _updates.get(id, 0) + 1
	if not _first_tick.has(id):
		_first_tick[id] = world.get_entity_tick(id)


func _process(_delta: float) -> void:
	if _leaving:
		return
	var now := Time.get_ticks_msec()
	if now - _start_msec > int(timeout_sec * 1000.0):
		_fail("timed out")
		return
	if _baseline_msec < 0 or now - _baseline_msec < int(run_sec * 1000.0):
		return
	for id in world.get_visible_entity_ids():
		var ticks: int = world.get_entity_tick(id) - _first_tick.get(id, world.get_entity_tick(id))
		print("MC_RATE id=%d updates=%d ticks=%d" % [id, _updates.get(id, 0), ticks])
		var node := world.get_entity_node(id)
		if node != null and "material_index" in node:
			print(
				(
					"MC_NODE id=%d material=%d label=%d"
					% [id, node.get("material_index"), node.get("label_id")]
				)
			)
	var stats := world.get_stats()
	print("MC_STATS stale=%d bytes=%d" % [stats["stale_properties"], stats["bytes_total"]])
	_leaving = true
	world.leave()


func _on_disconnected(reason: String) -> void:
	if not _leaving:
		_fail("the session ended: %s" % reason)
		return
	print("MC_DONE")
	get_tree().quit(0)


func _fail(why: String) -> void:
	print("MC_FAIL why=%s" % why.replace(" ", "_"))
	get_tree().quit(1)
