extends Node
## A chat lobby over FabricMMOGTransportPeer: the smallest game that uses the addon's peer with
## Godot's own RPCs. One process is the server, every other one a player.
##
##     # the server (prints LOBBY_SERVER_READY port=4433 cert_hash=...):
##     godot --headless --path . res://examples/lobby/lobby.tscn -- --server 4433
##     # a player, pinning the server's certificate hash:
##     godot --headless --path . res://examples/lobby/lobby.tscn -- \
##         --join https://127.0.0.1:4433/wt --cert-hash HASH --name alice
##
## A player joins with its name, says one line, and leaves when it hears its own line back from
## the server (the server relays every line to everyone). With `--players N` the server quits
## after N players have left. Any process quits with 1 after `--timeout` seconds (default 30).

var _name := ""
var _players_to_serve := 0
var _left := 0
var _names := {}  # peer id -> name, on the server


func _ready() -> void:
	var args := _parse_args(OS.get_cmdline_user_args())
	get_tree().create_timer(float(args.get("timeout", "30"))).timeout.connect(_give_up)
	var peer := FabricMMOGTransportPeer.new()
	if args.has("server"):
		_players_to_serve = int(args.get("players", "0"))
		var err := peer.create_server(int(args["server"]), "*")
		if err != OK:
			_fail("cannot listen: %s" % error_string(err))
			return
		multiplayer.multiplayer_peer = peer
		multiplayer.peer_disconnected.connect(_on_player_left)
		print(
			(
				"LOBBY_SERVER_READY port=%d cert_hash=%s"
				% [peer.get_bound_port(), peer.get_cert_hash()]
			)
		)
	else:
		_name = args.get("name", "player")
		peer.connection_error.connect(_fail)
		var err := peer.create_client(args.get("join", ""), args.get("cert-hash", ""))
		if err != OK:
			_fail("cannot connect: %s" % error_string(err))
			return
		multiplayer.multiplayer_peer = peer
		multiplayer.connected_to_server.connect(_on_connected)


## Player side: once connected, introduce ourselves and say one line.
func _on_connected() -> void:
	print("LOBBY_CONNECTED %s id=%d" % [_name, multiplayer.get_unique_id()])
	join.rpc_id(1, _name)
	say.rpc_id(1, "hello from %s" % _name)


## Server side: a player tells its name.
@rpc("any_peer", "reliable")
func join(player_name: String) -> void:
	_names[multiplayer.get_remote_sender_id()] = player_name
	print("LOBBY_JOINED %s (%d online)" % [player_name, _names.size()])


## Server side: a player says a line; relay it to everyone with the speaker's name.
@rpc("any_peer", "reliable")
func say(text: String) -> void:
	var speaker: String = _names.get(multiplayer.get_remote_sender_id(), "?")
	said.rpc(speaker, text)


## Player side: a line relayed by the server. Leave once our own line came back.
@rpc("authority", "reliable")
func said(speaker: String, text: String) -> void:
	print("LOBBY_HEARD %s: %s" % [speaker, text])
	if speaker == _name:
		_finish(0)


func _on_player_left(id: int) -> void:
	_left += 1
	print("LOBBY_LEFT %s" % _names.get(id, str(id)))
	_names.erase(id)
	if _players_to_serve > 0 and _left >= _players_to_serve:
		_finish(0)


func _give_up() -> void:
	_fail("timed out")


func _fail(reason: String) -> void:
	printerr("LOBBY_FAILED %s" % reason)
	_finish(1)


## Ends the game. Called from signal and RPC handlers, which run inside the peer's poll(), so
## the peer is closed and released afterwards (deferred), not while it is still being polled.
func _finish(code: int) -> void:
	_close_and_quit.call_deferred(code)


func _close_and_quit(code: int) -> void:
	if multiplayer.multiplayer_peer:
		multiplayer.multiplayer_peer.close()
		multiplayer.multiplayer_peer = null
	get_tree().quit(code)


## `--key value` pairs after `--`, as a dictionary.
func _parse_args(args: PackedStringArray) -> Dictionary:
	var parsed := {}
	for i in range(0, args.size() - 1, 2):
		parsed[args[i].trim_prefix("--")] = args[i + 1]
	return parsed
