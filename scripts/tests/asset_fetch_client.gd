extends Node
## The headless fetcher of tests/e2e/tests/asset_fetch_https.rs: one FabricAssetFetcher fetches
## one asset from a backend (over https:// with its certificate pinned by `--cert-hash`) and
## prints machine-readable lines:
##
## - `AF_PROGRESS done=D total=T` on each `progress`;
## - `AF_DONE path=P` and exit 0 on `finished`; `AF_FAIL reason=..` and exit 1 on `failed`, on a
##   refused start or on a timeout.
##
## User arguments (after `--`): --backend URL --index PATH_OR_HASH --cache-dir DIR
## [--cert-hash HASH] [--timeout-sec S]

const ExampleArgs := preload("res://examples/fabric_world/example_args.gd")
var backend := ""
var index := ""
var cache_dir := ""
var timeout_sec := 30.0
var _start_msec := 0
var _done := false

@onready var fetcher: FabricAssetFetcher = $Fetcher


func _ready() -> void:
	_start_msec = Time.get_ticks_msec()
	_parse_args()
	fetcher.progress.connect(_on_progress)
	fetcher.finished.connect(_on_finished)
	fetcher.failed.connect(_fail)
	var err := fetcher.fetch(backend, index, cache_dir)
	if err != OK:
		_fail("fetch: %s" % error_string(err))


func _process(_delta: float) -> void:
	if not _done and Time.get_ticks_msec() - _start_msec > timeout_sec * 1000.0:
		_fail("timeout")


func _on_progress(done: int, total: int) -> void:
	print("AF_PROGRESS done=%d total=%d" % [done, total])


func _on_finished(path: String) -> void:
	_done = true
	print("AF_DONE path=%s" % path)
	get_tree().quit(0)


func _fail(reason: String) -> void:
	if _done:
		return
	_done = true
	print("AF_FAIL reason=%s" % reason.replace(" ", "_"))
	get_tree().quit(1)


func _parse_args() -> void:
	var args := ExampleArgs.parse(OS.get_cmdline_user_args())
	for key in args:
		var value: String = args[key]
		match key:
			"backend":
				backend = value
			"index":
				index = value
			"cache-dir":
				cache_dir = value
			"cert-hash":
				fetcher.backend_cert_hash = value
			"timeout-sec":
				timeout_sec = float(value)
			_:
				push_warning("unknown argument --%s" % key)
