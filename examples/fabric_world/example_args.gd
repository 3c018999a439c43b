extends RefCounted
## Command-line helpers shared by the example scenes (`fabric_world`, `bot`, `visual`) and
## the test players.

## The arguments [method take_connection] handles.
const CONNECTION_KEYS: Array[String] = ["url", "cert-hash", "token", "spawn"]


## `--key value` pairs after Godot's `--` as a dictionary; a key without a value maps to "".
static func parse(args: PackedStringArray) -> Dictionary:
	var out := {}
	var i := 0
	while i < args.size():
		var key := args[i].trim_prefix("--")
		if i + 1 < args.size() and not args[i + 1].begins_with("--"):
			out[key] = args[i + 1]
			i += 2
		else:
			out[key] = ""
			i += 1
	return out


## "x,y,z" as a Vector3.
static func vec3(text: String) -> Vector3:
	var c := text.split(",")
	return Vector3(float(c[0]), float(c[1]), float(c[2]))


## Sets [param world]'s connection from [code]--url[/code] (else [param default_url], when not
## empty), [code]--cert-hash[/code], [code]--token[/code] and [code]--spawn X,Y,Z[/code], then
## removes those keys from [param args], so the caller only sees its own arguments.
static func take_connection(world: FabricWorld, args: Dictionary, default_url := "") -> void:
	if args.has("url") or not default_url.is_empty():
		world.zone_url = args.get("url", default_url)
	world.cert_hash = args.get("cert-hash", world.cert_hash)
	world.join_token = args.get("token", world.join_token)
	if args.has("spawn"):
		world.spawn_at = vec3(args["spawn"])
	for key in CONNECTION_KEYS:
		args.erase(key)
