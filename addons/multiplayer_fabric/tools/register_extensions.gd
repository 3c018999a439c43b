extends SceneTree
## Registers the project's GDExtensions before its first headless import.
##
## Godot 4.6 can abort (exit 134) at the end of the first `godot --headless --import` of a project
## whose `.godot/extension_list.cfg` does not list its extensions yet: the editor discovers them
## during that import and crashes afterwards (godotengine/godot#111048, #123511). With the list
## written first, the extensions load at start-up like in any later run, and the import exits 0.
##
## Run it once in a fresh checkout, before the first import (any OS, only Godot needed):
##
##     godot --headless --path . \
##         --script res://addons/multiplayer_fabric/tools/register_extensions.gd
##     godot --headless --path . --import
##
## It adds every `*.gdextension` file of the project (folders starting with `.` and folders holding
## a `.gdignore` are skipped, as the editor does) to `res://.godot/extension_list.cfg`, keeps the
## entries already there, prints one `registered res://...` line per extension and quits with 0,
## or with 1 when the list cannot be written or no extension is found.

const LIST_PATH := "res://.godot/extension_list.cfg"


func _initialize() -> void:
	quit(_register())


func _register() -> int:
	var known := _read_list()
	var found: PackedStringArray = []
	_find_extensions("res://", found)
	if found.is_empty():
		printerr("register_extensions: no .gdextension file in this project")
		return 1
	for path in found:
		if not known.has(path):
			known.append(path)
	var dir_error := DirAccess.make_dir_recursive_absolute(LIST_PATH.get_base_dir())
	if dir_error != OK:
		printerr(
			(
				"register_extensions: cannot create %s (%s)"
				% [LIST_PATH.get_base_dir(), error_string(dir_error)]
			)
		)
		return 1
	var file := FileAccess.open(LIST_PATH, FileAccess.WRITE)
	if file == null:
		printerr(
			(
				"register_extensions: cannot write %s (%s)"
				% [LIST_PATH, error_string(FileAccess.get_open_error())]
			)
		)
		return 1
	for path in known:
		file.store_line(path)
	file.close()
	for path in found:
		print("registered %s" % path)
	return 0


func _read_list() -> PackedStringArray:
	var known: PackedStringArray = []
	if not FileAccess.file_exists(LIST_PATH):
		return known
	for line in FileAccess.get_file_as_string(LIST_PATH).split("\n", false):
		var path := line.strip_edges()
		if not path.is_empty() and not known.has(path):
			known.append(path)
	return known


func _find_extensions(dir: String, found: PackedStringArray) -> void:
	if FileAccess.file_exists(dir.path_join(".gdignore")):
		return
	for file in DirAccess.get_files_at(dir):
		if file.get_extension() == "gdextension":
			found.append(dir.path_join(file))
	for sub in DirAccess.get_directories_at(dir):
		if not sub.begins_with("."):
			_find_extensions(dir.path_join(sub), found)
