extends Node
## The replication manifest test's zone (tests/e2e/tests/manifest.rs): the zone under it gets
## the crate manifest (examples/manifest/crate_manifest.gd) and three crates: `changing` (at
## rest; its properties change on a schedule), `mover` (walks back and forth at 1 m/s) and
## `idle` (at rest). Once the file `--go-file` exists, every `--every-sec` seconds it sets the
## changing crate's material_index to k, label_id to 100 + k and spin to k, for k = 1 ..
## `--changes`. Lines: `MZ_CRATES changing=I mover=I idle=I`, `MZ_SET k=K tick=T`, `MZ_DONE`.

const CrateManifest := preload("res://examples/manifest/crate_manifest.gd")
const ExampleArgs := preload("res://examples/fabric_world/example_args.gd")

var go_file := ""
var changes := 20
var every_sec := 0.2
var _changing := -1
var _mover := -1
var _k := 0
var _next_msec := -1
var _flip_msec := 0
var _dir := -1.0

@onready var zone: FabricZone = $Zone


func _ready() -> void:
	var args := ExampleArgs.parse(OS.get_cmdline_user_args())
	go_file = args.get("go-file", "")
	changes = int(args.get("changes", changes))
	every_sec = float(args.get("every-sec", every_sec))
	zone.replication_manifest = CrateManifest.build()
	_changing = zone.spawn(Vector3(1, 0, 0), Vector3.ZERO, CrateManifest.payload(0, 100, 0))
	_mover = zone.spawn(Vector3(0, 0, 2), Vector3.ZERO, CrateManifest.payload(1, 200, 0))
	var idle := zone.spawn(Vector3(-2, 0, 0), Vector3.ZERO, CrateManifest.payload(2, 300, 0))
	print("MZ_CRATES changing=%d mover=%d idle=%d" % [_changing, _mover, idle])


func _process(_delta: float) -> void:
	var now := Time.get_ticks_msec()
	if now >= _flip_msec:
		_flip_msec = now + 2000
		_dir = -_dir
		zone.set_velocity(_mover, Vector3(_dir, 0, 0))
	if _k >= changes or go_file.is_empty() or not FileAccess.file_exists(go_file):
		return
	if _next_msec < 0:
		_next_msec = now
	if now < _next_msec:
		return
	_next_msec += int(every_sec * 1000.0)
	_k += 1
	zone.set_payload(_changing, CrateManifest.payload(_k, 100 + _k, _k))
	print("MZ_SET k=%d tick=%d" % [_k, zone.tick])
	if _k == changes:
		print("MZ_DONE")
