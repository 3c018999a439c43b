@tool
extends EditorPlugin
## Editor side of Multiplayer Fabric. The classes themselves come from the GDExtension
## (multiplayer_fabric.gdextension) and work without enabling this plugin; enabling it only
## checks that the native library loaded and says so in the Output panel.


func _enter_tree() -> void:
	if not ClassDB.class_exists(&"FabricMMOGTransportPeer"):
		push_error(
			(
				"Multiplayer Fabric: the native library did not load. Build it with"
				+ " `cargo xtask build` (see the addon README)."
			)
		)
	else:
		print("Multiplayer Fabric: FabricMMOGTransportPeer and FabricZone are available.")


func _exit_tree() -> void:
	pass
