extends Node
## One process of tests/e2e/tests/host_room.rs: the host of a FabricHostRoom, or a player.
##
## The host places three objects (entities 1, 2, 3: `transient_held`, `placed_room`,
## `placed_saved`, all held by it) and releases entity 2 to the room. Player `--index K`
## places three objects too, at x = 10K, 10K+1, 10K+2, then moves its `placed_saved` one to
## y = 3.5; player 1 requests entity 2 once the room owns it, player 3 requests it once
## player 1 holds it (and is denied). Lines (key=value):
##
## - `HR_READY port=P cert_hash=H` (host), `HR_JOINED name=N player=ID` (players);
## - `HR_SETTLED name=N dump=D` once the room holds `--expect` objects, every player's
##   `placed_saved` object has been moved and entity 2 is held;
## - `HR_DENIED name=N entity=E reason=R`;
## - `HR_HOST_CHANGED name=N player=ID local=true|false unix_ms=T`;
## - `HR_MIGRATED name=N term=T host=ID players=A,B dump=D unix_ms=T` once this process holds
##   the state of a later term, every awaited player back (the new host) or its baseline
##   received (the others);
## - `HR_LEFT name=N` when the host left the room because the file `--leave-file` appeared
##   (the test creates it: a host that quits the room cleanly);
## - `HR_FAIL why=...` and exit 1 on a timeout or a lost room.
##
## User arguments (after `--`): --role host|player [--url URL --cert-hash H] [--name N]
## [--index K] [--expect N] [--timeout S] [--leave-file PATH]

var _args := {
	"role": "player",
	"url": "",
	"cert-hash": "",
	"name": "host",
	"index": "0",
	"expect": "12",
	"timeout": "60",
	"leave-file": "",
}
var _room: FabricHostRoom
var _index := 0
var _placed := false
var _moved := false
var _requested := false
var _settled := false
var _migrated := false
var _left := false
var _start_msec := 0


func _ready() -> void:
	_start_msec = Time.get_ticks_msec()
	# A game's frame rate: four of these share two cores with other work.
	Engine.max_fps = 60
	var args := OS.get_cmdline_user_args()
	var i := 0
	while i + 1 < args.size():
		_args[args[i].trim_prefix("--")] = args[i + 1]
		i += 2
	_index = int(_args["index"])
	_room = FabricHostRoom.new()
	_room.host_timeout_msec = 800
	_room.heartbeat_msec = 100
	add_child(_room)
	_room.joined.connect(_on_joined)
	_room.host_changed.connect(_on_host_changed)
	_room.room_changed.connect(_on_room_changed)
	_room.request_denied.connect(_on_denied)
	_room.room_lost.connect(func(reason: String) -> void: _fail("room lost: " + reason))
	if _args["role"] == "host":
		var err := _room.host_room(0)
		if err != OK:
			_fail("host_room: %s" % error_string(err))
			return
		print("HR_READY port=%d cert_hash=%s" % [_room.get_port(), _room.get_cert_hash()])
		_room.spawn_object("transient_held", Vector3(100, 0, 0))
		_room.spawn_object("placed_room", Vector3(101, 0, 0))
		_room.spawn_object("placed_saved", Vector3(102, 0, 0))
		_room.release_ownership(2)
	else:
		var err := _room.join_room(_args["url"], _args["cert-hash"])
		if err != OK:
			_fail("join_room: %s" % error_string(err))


func _process(_delta: float) -> void:
	if Time.get_ticks_msec() - _start_msec > int(float(_args["timeout"]) * 1000.0):
		_fail("timed out")
		return
	var leave_file: String = _args["leave-file"]
	if not _left and leave_file != "" and FileAccess.file_exists(leave_file):
		_left = true
		_room.leave_room()
		print("HR_LEFT name=%s" % _args["name"])


func _on_joined(player: int) -> void:
	print("HR_JOINED name=%s player=%d" % [_args["name"], player])
	if _placed:
		return  # a rejoin under a new host: nothing to place again
	_placed = true
	var x := _index * 10.0
	_room.spawn_object("transient_held", Vector3(x, 1, 2))
	_room.spawn_object("placed_room", Vector3(x + 1, 1, 2))
	_room.spawn_object("placed_saved", Vector3(x + 2, 1, 2))


func _on_host_changed(player: int, is_local: bool) -> void:
	var ms := int(Time.get_unix_time_from_system() * 1000.0)
	print(
		(
			"HR_HOST_CHANGED name=%s player=%d local=%s unix_ms=%d"
			% [_args["name"], player, is_local, ms]
		)
	)


func _on_denied(entity: int, reason: String) -> void:
	print("HR_DENIED name=%s entity=%d reason=%s" % [_args["name"], entity, reason])


func _on_room_changed() -> void:
	var me := _room.get_player_id()
	var objects := _room.get_objects()
	var all_moved := true
	var held_2 := 0
	for o in objects:
		var pos: Vector3 = o["position"]
		if o["persist"] == "placed_saved" and o["holder"] > 1 and pos.y != 3.5:
			all_moved = false
		if o["holder"] == me and o["persist"] == "placed_saved" and not _moved:
			_moved = true
			_room.move_object(o["entity"], Vector3(pos.x, 3.5, -1.25))
		if o["entity"] == 2:
			held_2 = o["holder"]
	if not _requested and _index == 1 and held_2 == 0:
		_requested = true
		_room.request_ownership(2)
	if not _requested and _index == 3 and held_2 > 1 and held_2 != me:
		_requested = true
		_room.request_ownership(2)
	var done := objects.size() == int(_args["expect"]) and all_moved and held_2 > 1
	if done and not _settled:
		_settled = true
		print("HR_SETTLED name=%s dump=%s" % [_args["name"], _room.get_state_dump()])
	var back := _room.get_awaiting_count() == 0 if _room.is_host() else true
	if _room.get_term() > 1 and back and not _migrated:
		_migrated = true
		var ids := []
		for p in _room.get_players():
			ids.append(str(p))
		print(
			(
				"HR_MIGRATED name=%s term=%d host=%d players=%s dump=%s unix_ms=%d"
				% [
					_args["name"],
					_room.get_term(),
					_room.get_host_player_id(),
					",".join(ids),
					_room.get_state_dump(),
					int(Time.get_unix_time_from_system() * 1000.0)
				]
			)
		)


func _fail(why: String) -> void:
	printerr("HR_FAIL name=%s why=%s" % [_args["name"], why.replace(" ", "_")])
	get_tree().quit(1)
