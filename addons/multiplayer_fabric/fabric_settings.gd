@tool
extends RefCounted
## The project settings of Multiplayer Fabric (Project > Project Settings > Multiplayer Fabric):
## their names, types, hints and defaults, and the two steps the editor plugin runs with them.
## [method register] adds each setting that is missing with its default and gives every one its
## type, hint and default (the revert arrow); [method unregister] removes those still at their
## default, so disabling the plugin leaves a project as it was unless the user changed something.
## Nothing here needs the editor: the classes read the settings at run time with
## [method value], which falls back to the default when the setting is absent.

## The fabric zone registry (`fabric-backend`) that FabricRegistry talks to when its
## backend_url is empty.
const REGISTRY_URL := "multiplayer_fabric/registry/url"

## Every setting: name, Variant type, hint, hint string, default, and whether it shows without
## "Advanced Settings". The `transport/` ones are the defaults of a new FabricMMOGTransportPeer's
## `transport` and `connect_timeout_msec`. The `zone/` ones are read by FabricZone when it is
## created (see rust/fabric-godot/src/zone/config.rs); their defaults are the zone's own. The
## `limits/` ones (budgets and caps of the peer's and the zone's servers) are not listed here:
## the extension describes them ([method all]), so their list is written once, in Rust.
const SETTINGS: Array[Dictionary] = [
	{
		"name": REGISTRY_URL,
		"type": TYPE_STRING,
		"hint": PROPERTY_HINT_PLACEHOLDER_TEXT,
		"hint_string": "http://host:port",
		"default": "http://127.0.0.1:8080",
		"basic": true,
	},
	{
		"name": "multiplayer_fabric/transport/mode",
		"type": TYPE_STRING,
		"hint": PROPERTY_HINT_ENUM,
		"hint_string": "auto,webtransport,websocket",
		"default": "auto",
		"basic": true,
	},
	{
		"name": "multiplayer_fabric/transport/connect_timeout_msec",
		"type": TYPE_INT,
		"hint": PROPERTY_HINT_RANGE,
		"hint_string": "1,60000,1,or_greater,suffix:ms",
		"default": 5000,
		"basic": true,
	},
	{
		"name": "multiplayer_fabric/zone/zone_index",
		"type": TYPE_INT,
		"hint": PROPERTY_HINT_RANGE,
		"hint_string": "0,65535",
		"default": 0,
		"basic": true,
	},
	{
		"name": "multiplayer_fabric/zone/zone_count",
		"type": TYPE_INT,
		"hint": PROPERTY_HINT_RANGE,
		"hint_string": "0,65536",
		"default": 0,
		"basic": true,
	},
	{
		"name": "multiplayer_fabric/zone/fabric_name",
		"type": TYPE_STRING,
		"hint": PROPERTY_HINT_NONE,
		"hint_string": "",
		"default": "default",
		"basic": true,
	},
	{
		"name": "multiplayer_fabric/zone/world_half_extent",
		"type": TYPE_FLOAT,
		"hint": PROPERTY_HINT_RANGE,
		"hint_string": "0.1,100000,0.1,or_greater,suffix:m",
		"default": 15.0,
		"basic": true,
	},
	{
		"name": "multiplayer_fabric/zone/capacity",
		"type": TYPE_INT,
		"hint": PROPERTY_HINT_RANGE,
		"hint_string": "1,65535",
		"default": 1800,
		"basic": false,
	},
	{
		"name": "multiplayer_fabric/zone/headroom",
		"type": TYPE_INT,
		"hint": PROPERTY_HINT_RANGE,
		"hint_string": "0,65535",
		"default": 400,
		"basic": false,
	},
	{
		"name": "multiplayer_fabric/zone/hysteresis_ticks",
		"type": TYPE_INT,
		"hint": PROPERTY_HINT_RANGE,
		"hint_string": "0,100000,1,or_greater",
		"default": 0,
		"basic": false,
	},
	{
		"name": "multiplayer_fabric/zone/interest_radius",
		"type": TYPE_FLOAT,
		"hint": PROPERTY_HINT_RANGE,
		"hint_string": "0.1,10000,0.1,or_greater,suffix:m",
		"default": 5.0,
		"basic": false,
	},
	{
		"name": "multiplayer_fabric/zone/link_mode",
		"type": TYPE_STRING,
		"hint": PROPERTY_HINT_ENUM,
		"hint_string": "none,memory,network",
		"default": "none",
		"basic": true,
	},
	{
		"name": "multiplayer_fabric/zone/link_port",
		"type": TYPE_INT,
		"hint": PROPERTY_HINT_RANGE,
		"hint_string": "0,65535",
		"default": 0,
		"basic": false,
	},
	{
		"name": "multiplayer_fabric/zone/data_dir",
		"type": TYPE_STRING,
		"hint": PROPERTY_HINT_GLOBAL_DIR,
		"hint_string": "",
		"default": "",
		"basic": false,
	},
	{
		"name": "multiplayer_fabric/zone/population",
		"type": TYPE_STRING,
		"hint": PROPERTY_HINT_ENUM,
		"hint_string": "none,wanderers",
		"default": "none",
		"basic": false,
	},
	{
		"name": "multiplayer_fabric/zone/entities",
		"type": TYPE_INT,
		"hint": PROPERTY_HINT_RANGE,
		"hint_string": "0,1000000",
		"default": 1000,
		"basic": false,
	},
	{
		"name": "multiplayer_fabric/zone/seed",
		"type": TYPE_INT,
		"hint": PROPERTY_HINT_NONE,
		"hint_string": "",
		"default": 1,
		"basic": false,
	},
	{
		"name": "multiplayer_fabric/zone/tick_hz",
		"type": TYPE_INT,
		"hint": PROPERTY_HINT_RANGE,
		"hint_string": "1,1000,1,suffix:Hz",
		"default": 20,
		"basic": true,
	},
	{
		"name": "multiplayer_fabric/zone/max_catch_up",
		"type": TYPE_INT,
		"hint": PROPERTY_HINT_RANGE,
		"hint_string": "0,1000",
		"default": 5,
		"basic": false,
	},
	{
		"name": "multiplayer_fabric/zone/event_budget",
		"type": TYPE_INT,
		"hint": PROPERTY_HINT_RANGE,
		"hint_string": "1,1000000",
		"default": 4096,
		"basic": false,
	},
	{
		"name": "multiplayer_fabric/zone/join_timeout_msec",
		"type": TYPE_INT,
		"hint": PROPERTY_HINT_RANGE,
		"hint_string": "1,600000,1,or_greater,suffix:ms",
		"default": 10000,
		"basic": false,
	},
	{
		"name": "multiplayer_fabric/zone/metrics_address",
		"type": TYPE_STRING,
		"hint": PROPERTY_HINT_PLACEHOLDER_TEXT,
		"hint_string": "127.0.0.1:9100",
		"default": "",
		"basic": false,
	},
	{
		"name": "multiplayer_fabric/zone/port",
		"type": TYPE_INT,
		"hint": PROPERTY_HINT_RANGE,
		"hint_string": "0,65535",
		"default": 7443,
		"basic": true,
	},
	{
		"name": "multiplayer_fabric/zone/bind_address",
		"type": TYPE_STRING,
		"hint": PROPERTY_HINT_NONE,
		"hint_string": "",
		"default": "*",
		"basic": true,
	},
]


## Every setting: [constant SETTINGS] and the server limits `multiplayer_fabric/limits/<name>`,
## which FabricNetLimits describes (none when the extension is not loaded).
static func all() -> Array[Dictionary]:
	var out: Array[Dictionary] = SETTINGS.duplicate()
	if ClassDB.class_exists(&"FabricNetLimits"):
		var limits: Variant = ClassDB.instantiate(&"FabricNetLimits")
		for s: Dictionary in limits.project_settings():
			out.append(s)
	return out


## The setting's value, or its default when the project does not set it.
static func value(setting: String) -> Variant:
	for s in all():
		if s.name == setting:
			return ProjectSettings.get_setting(setting, s.default)
	return ProjectSettings.get_setting(setting)


## Adds the missing settings with their defaults and gives every setting its type, hint and
## default. Values the project already has are kept.
static func register() -> void:
	for s in all():
		if not ProjectSettings.has_setting(s.name):
			ProjectSettings.set_setting(s.name, s.default)
		ProjectSettings.add_property_info(
			{"name": s.name, "type": s.type, "hint": s.hint, "hint_string": s.hint_string}
		)
		ProjectSettings.set_initial_value(s.name, s.default)
		ProjectSettings.set_as_basic(s.name, s.basic)


## Removes the settings that are still at their default; returns how many stay (changed by the
## user, so kept).
static func unregister() -> int:
	var kept := 0
	for s in all():
		if not ProjectSettings.has_setting(s.name):
			continue
		if ProjectSettings.get_setting(s.name) == s.default:
			ProjectSettings.set_setting(s.name, null)
		else:
			kept += 1
	return kept
