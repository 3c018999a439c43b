extends MeshInstance3D
## A crate as a player sees it: `FabricWorld` sets these properties from the replication
## manifest (`crate_manifest.gd`) when their values arrive.

const COLOURS := [Color(0.8, 0.5, 0.2), Color(0.3, 0.6, 0.9), Color(0.4, 0.8, 0.3)]

## Replicated reliably on change: picks the crate's colour.
var material_index := 0:
	set = _set_material_index
## Replicated in the snapshot only: chosen when the crate was placed.
var label_id := 0
## Replicated at high rate, unreliably.
var spin := 0


func _set_material_index(value: int) -> void:
	material_index = value
	var m := StandardMaterial3D.new()
	m.albedo_color = COLOURS[value % COLOURS.size()]
	material_override = m
