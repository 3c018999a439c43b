extends Node
## Shows placed assets in a FabricWorld: for each visible asset instance (an entity whose
## `get_entity_asset` is not -1) it finds the asset in the map's list on the backend
## (`GET /maps/{map}/assets`, matched by the low 24 bits of each asset's id), fetches the file
## with a `FabricAssetFetcher` (every chunk and the whole file verified; chunks cached in
## `cache_dir`) and instantiates the `.glb` (`GLTFDocument`) as a child of the entity's node,
## so it stands at the instance's position. One fetch per asset, however many instances.
##
## Two assets of the map whose ids share the low 24 bits cannot be told apart: neither is
## instantiated and `asset_failed` says `asset_collision` (docs/assets.md, "Asset ids").

## The asset of instance `entity` is shown: `node` (the generated glTF scene) is a new child
## of the entity's node; `asset_name` is its name in the map and `asset_id` its whole id.
signal asset_instanced(entity: int, node: Node3D, asset_name: String, asset_id: int)
## Nothing is shown for instance `entity`: `reason` says why (`unknown_asset`,
## `asset_collision`, the list request failing, the fetch failing, a bad glTF file).
signal asset_failed(entity: int, reason: String)
## Bytes of asset `asset_name` fetched so far (`done`) out of its size (`total`).
signal fetch_progress(asset_name: String, done: int, total: int)

## The FabricWorld whose entities are watched (set before this node enters the tree).
@export var world: FabricWorld
## The backend, `http://host:port`.
@export var backend_url := ""
## The map whose assets these are.
@export var map_name := ""
## An account's API key (the list needs an account).
@export var api_key := ""
## Where fetched chunks and files are kept.
@export var cache_dir := "user://fabric_assets"

## Low 24 bits of an asset id -> the list entries (Dictionaries) with those bits.
var _by_bits := {}
var _list_loaded := false
var _list_request: HTTPRequest
## Entities waiting for the list.
var _waiting_for_list: Array[int] = []
## Asset hash -> the fetched file's path.
var _files := {}
## Asset hash -> entity ids waiting for its fetch.
var _fetching := {}
## Entity id -> its node (the parent of what is instantiated).
var _nodes := {}
## Visible asset bits for which the list was read again (once each).
var _relisted := {}


## Uses `assets` (the `assets` array of `GET /maps/{map}/assets`) as the map's list from now
## on, and shows the instances that were waiting for it.
func set_asset_list(assets: Array) -> void:
	_by_bits.clear()
	for entry: Variant in assets:
		if not entry is Dictionary:
			continue
		var bits := FabricAssetFetcher.visible_asset_bits(str(entry.get("hash", "")))
		if bits >= 0:
			_by_bits.get_or_add(bits, []).append(entry)
	_list_loaded = true
	var waiting := _waiting_for_list
	_waiting_for_list = []
	for id in waiting:
		_resolve(id)


## The list entry (a Dictionary) of the asset whose id's low 24 bits are `bits`, or why there
## is none: `"unknown_asset"`, or `"asset_collision: a.glb, b.glb"` when several share them.
func find_asset(bits: int) -> Variant:
	var entries: Array = _by_bits.get(bits, [])
	if entries.is_empty():
		return "unknown_asset"
	if entries.size() > 1:
		var names := PackedStringArray(
			entries.map(func(e: Dictionary) -> String: return str(e["name"]))
		)
		return "asset_collision: %s" % ", ".join(names)
	return entries[0]


func _ready() -> void:
	world.entity_entered.connect(_on_entity_entered)
	world.entity_exited.connect(_on_entity_exited)


func _on_entity_entered(id: int, node: Node) -> void:
	if world.get_entity_asset(id) < 0:
		return
	_nodes[id] = node
	if _list_loaded:
		_resolve(id)
	else:
		_waiting_for_list.append(id)
		_request_list()


func _on_entity_exited(id: int) -> void:
	_nodes.erase(id)


func _request_list() -> void:
	if _list_request != null:
		return
	_list_request = HTTPRequest.new()
	add_child(_list_request)
	_list_request.request_completed.connect(_on_list)
	var url := "%s/maps/%s/assets" % [backend_url.trim_suffix("/"), map_name.uri_encode()]
	var err := _list_request.request(url, ["Authorization: Bearer %s" % api_key])
	if err != OK:
		_list_failed("list request: %s" % error_string(err))


func _on_list(result: int, code: int, _headers: PackedStringArray, body: PackedByteArray) -> void:
	_list_request.queue_free()
	_list_request = null
	if result != HTTPRequest.RESULT_SUCCESS or code != 200:
		_list_failed("asset list: result %d, HTTP %d" % [result, code])
		return
	var parsed: Variant = JSON.parse_string(body.get_string_from_utf8())
	if not parsed is Dictionary or not parsed.get("assets") is Array:
		_list_failed("asset list: not a list")
		return
	set_asset_list(parsed["assets"])


func _list_failed(reason: String) -> void:
	var waiting := _waiting_for_list
	_waiting_for_list = []
	for id in waiting:
		asset_failed.emit(id, reason)


func _resolve(id: int) -> void:
	if not _nodes.has(id):
		return
	var bits := world.get_entity_asset(id)
	var found: Variant = find_asset(bits)
	if found is String and found == "unknown_asset" and not _relisted.has(bits):
		# Uploaded after the list was read: read it again, once per unknown value.
		_relisted[bits] = true
		_list_loaded = false
		_waiting_for_list.append(id)
		_request_list()
		return
	if found is String:
		asset_failed.emit(id, found)
		return
	var entry: Dictionary = found
	var file_hash := str(entry["hash"])
	if _files.has(file_hash):
		_instantiate(id, entry, _files[file_hash])
	elif _fetching.has(file_hash):
		_fetching[file_hash].append(id)
	else:
		_fetching[file_hash] = [id]
		_fetch(entry)


func _fetch(entry: Dictionary) -> void:
	var file_hash := str(entry["hash"])
	var asset_name := str(entry["name"])
	var fetcher := FabricAssetFetcher.new()
	add_child(fetcher)
	fetcher.progress.connect(
		func(done: int, total: int) -> void: fetch_progress.emit(asset_name, done, total)
	)
	fetcher.finished.connect(
		func(path: String) -> void:
			fetcher.queue_free()
			_files[file_hash] = path
			for id: int in _fetching.get(file_hash, []):
				_instantiate(id, entry, path)
			_fetching.erase(file_hash)
	)
	fetcher.failed.connect(
		func(reason: String) -> void:
			fetcher.queue_free()
			for id: int in _fetching.get(file_hash, []):
				asset_failed.emit(id, "fetching %s: %s" % [asset_name, reason])
			_fetching.erase(file_hash)
	)
	var err := fetcher.fetch(backend_url, str(entry["baked_url"]), cache_dir)
	if err != OK:
		fetcher.failed.emit("fetch: %s" % error_string(err))


func _instantiate(id: int, entry: Dictionary, path: String) -> void:
	var node: Node = _nodes.get(id)
	if node == null or not is_instance_valid(node):
		return
	var doc := GLTFDocument.new()
	var state := GLTFState.new()
	var err := doc.append_from_file(path, state)
	if err != OK:
		asset_failed.emit(id, "%s is not a glTF file: %s" % [entry["name"], error_string(err)])
		return
	var scene := doc.generate_scene(state) as Node3D
	if scene == null:
		asset_failed.emit(id, "%s: no scene in the glTF file" % entry["name"])
		return
	node.add_child(scene)
	var asset_id := FabricAssetFetcher.asset_id_of_hash(str(entry["hash"]))
	asset_instanced.emit(id, scene, str(entry["name"]), asset_id)
