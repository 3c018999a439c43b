extends Node
## Runs every in-engine test: the Rust tests registered in the extension (FabricTestRunner) and
## the GDScript suites in res://scripts/tests/suites/. Prints one line per test, then
## "N passed, N failed" on a line of its own, and quits with 0 only when at least one test ran
## and none failed. `-- --filter TEXT` runs only the tests whose name contains TEXT.

const SUITES_DIR := "res://scripts/tests/suites"

var _passed := 0
var _failed := 0
var _filter := ""


func _ready() -> void:
	var args := OS.get_cmdline_user_args()
	var at := args.find("--filter")
	if at >= 0 and at + 1 < args.size():
		_filter = args[at + 1]
	print(
		(
			"Multiplayer Fabric in-engine tests (Godot %s, %s precision)"
			% [Engine.get_version_info().string, "double" if OS.has_feature("double") else "single"]
		)
	)
	_run_rust_tests()
	await _run_gdscript_suites()
	print("%d passed, %d failed" % [_passed, _failed])
	if _passed + _failed == 0:
		printerr("no test ran: that counts as a failure")
	get_tree().quit(0 if _failed == 0 and _passed > 0 else 1)


func _record(name: String, failure: String) -> void:
	if failure.is_empty():
		_passed += 1
		print("PASS %s" % name)
	else:
		_failed += 1
		print("FAIL %s: %s" % [name, failure])


func _run_rust_tests() -> void:
	if not ClassDB.class_exists(&"FabricTestRunner"):
		_record(
			"rust::extension_loaded",
			(
				"FabricTestRunner is missing: the native library did not load, or was built"
				+ " without fabric-godot's feature `itest` (`cargo xtask setup` builds it with)"
			)
		)
		return
	var runner: Object = ClassDB.instantiate(&"FabricTestRunner")
	for test_name in runner.list_rust_tests():
		if _filter.is_empty() or _filter in test_name:
			_record("rust::" + test_name, runner.run_rust_test(test_name))


func _run_gdscript_suites() -> void:
	var files := DirAccess.get_files_at(SUITES_DIR)
	files.sort()
	for file in files:
		if not file.ends_with(".gd"):
			continue
		var script: GDScript = load(SUITES_DIR.path_join(file))
		for method in script.get_script_method_list():
			var method_name: String = method["name"]
			if not method_name.begins_with("test_"):
				continue
			var full := "%s::%s" % [file.get_basename(), method_name]
			if not _filter.is_empty() and not (_filter in full):
				continue
			var suite: FabricTestCase = script.new()
			suite.runner = self
			await suite.call(method_name)
			_record(full, "; ".join(suite.failures))
