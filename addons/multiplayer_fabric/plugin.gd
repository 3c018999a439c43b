@tool
extends EditorPlugin
## Editor side of Multiplayer Fabric. The classes themselves come from the GDExtension
## (multiplayer_fabric.gdextension) and work without enabling this plugin. Enabled, it checks
## that the native library for this platform loaded (and says what to do when it did not), and
## registers the fabric's project settings (Project Settings > Multiplayer Fabric; the list is in
## fabric_settings.gd); disabling it removes the settings still at their default.

const _SETTINGS := preload("fabric_settings.gd")
const _GDEXTENSION := "res://addons/multiplayer_fabric/multiplayer_fabric.gdextension"


func _enter_tree() -> void:
	var problem := library_problem()
	if not problem.is_empty():
		push_error(problem)
	else:
		print("Multiplayer Fabric: FabricMMOGTransportPeer and FabricZone are available.")
	_SETTINGS.register()


func _disable_plugin() -> void:
	_SETTINGS.unregister()
	ProjectSettings.save()


## Why the native library is not usable on this platform, in words a user can act on; empty when
## its classes are registered.
static func library_problem() -> String:
	if ClassDB.class_exists(&"FabricMMOGTransportPeer"):
		return ""
	var platform := (
		"%s %s%s"
		% [
			OS.get_name().to_lower(),
			Engine.get_architecture_name(),
			" (double precision)" if OS.has_feature("double") else "",
		]
	)
	var listed := ConfigFile.new()
	var libraries := PackedStringArray()
	if listed.load(_GDEXTENSION) == OK and listed.has_section("libraries"):
		for key in listed.get_section_keys("libraries"):
			libraries.append(key)
	return (
		"Multiplayer Fabric: the native library did not load on this platform (%s), so" % platform
		+ (
			" FabricMMOGTransportPeer and FabricZone are missing. The addon lists libraries for: %s."
			% (", ".join(libraries) if not libraries.is_empty() else "none")
		)
		+ " Build the one for this platform with `cargo xtask build` (add --double for a"
		+ " double-precision engine) into addons/multiplayer_fabric/bin/, or use a release"
		+ " package that ships it; see the README (Editor)."
	)
