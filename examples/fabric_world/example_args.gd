extends RefCounted
## Command-line helpers shared by the example scenes (`fabric_world`, `bot`, `visual`).


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
