extends FabricTestCase
## examples/fabric_world/asset_instancer.gd: how an instance's 24 visible bits find their asset
## in the map's list, and what happens when two assets share them (neither is shown). The
## whole path (list, fetch, glTF at the instance): tests/e2e/tests/asset_delivery.rs.

const INSTANCER := preload("res://examples/fabric_world/asset_instancer.gd")
const TAIL := "000000000000000000000000000000000000000000000000"


func _entry(asset_name: String, first16: String) -> Dictionary:
	return {"name": asset_name, "hash": first16 + TAIL, "baked_url": "/assets/index/x"}


func test_visible_bits_find_one_asset_and_a_collision_finds_none() -> void:
	var instancer: Node = INSTANCER.new()
	var tree := _entry("tree.glb", "0000000000abcdef")
	var rock := _entry("rock.glb", "1111111111123456")
	var twin := _entry("twin.glb", "2222222222123456")
	instancer.set_asset_list([tree, _entry("not-a-hash", "xyz"), 7])
	check_eq(instancer.find_asset(0xabcdef), tree, "the low 24 bits of the id find the entry")
	check_eq(instancer.find_asset(0x123456), "unknown_asset", "not in the list")
	instancer.set_asset_list([tree, rock, twin])
	check_eq(
		instancer.find_asset(0x123456),
		"asset_collision: rock.glb, twin.glb",
		"two assets share the visible bits: neither is chosen"
	)
	check_eq(instancer.find_asset(0xabcdef), tree, "the others are still found")
	instancer.free()
