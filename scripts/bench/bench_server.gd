extends Node
## Transport benchmark, server side: listens with the peer under test and echoes every message
## back to its sender in the mode it names; answers a stat request with its own CPU ticks.
## Prints `BENCH_SERVER_READY port=P cert_hash=H` when listening; quits when the client that said
## bye disconnects (at most 3 s after the bye), or fails after --timeout seconds.
##
## User arguments: --transport fabric-wt|fabric-websocket|enet|websocket --bind ADDR --port P
## [--fps N] [--phase-us P] [--timeout S]

const Common := preload("res://scripts/bench/bench_common.gd")

var _deadline_msec := 0
var _grid := Vector2i.ZERO  # main-loop pacing, see Common.setup_pacing
var _echoed := 0
var _bye := false


func _ready() -> void:
	var args := Common.parse_args()
	_grid = Common.setup_pacing(args)
	_deadline_msec = Time.get_ticks_msec() + int(args.get("timeout", "120")) * 1000
	var transport: String = args.get("transport", "")
	var peer := Common.make_server(
		transport, args.get("bind", "127.0.0.1"), int(args.get("port", "0"))
	)
	if peer == null:
		get_tree().quit(1)
		return
	var mp := multiplayer as SceneMultiplayer
	mp.multiplayer_peer = peer
	mp.peer_packet.connect(_on_packet)
	mp.peer_disconnected.connect(_on_peer_disconnected)
	var hash := ""
	if peer is FabricMMOGTransportPeer:
		hash = peer.get_cert_hash()
	print("BENCH_SERVER_READY port=%s cert_hash=%s" % [args.get("port", "0"), hash])


func _process(_delta: float) -> void:
	_frame()
	Common.end_frame(_grid)


func _frame() -> void:
	if Time.get_ticks_msec() > _deadline_msec:
		if _bye:
			_quit(0)
			return
		printerr("BENCH_ERROR server timed out")
		_quit(1)


func _on_packet(from: int, data: PackedByteArray) -> void:
	if data.size() < 2:
		return
	var mp := multiplayer as SceneMultiplayer
	match data[0]:
		Common.KIND_ECHO:
			var mode := (
				MultiplayerPeer.TRANSFER_MODE_RELIABLE
				if data[1] & 0x80
				else MultiplayerPeer.TRANSFER_MODE_UNRELIABLE
			)
			mp.send_bytes(data, from, mode, 0)
			_echoed += 1
		Common.KIND_STAT:
			var reply := data.duplicate()
			reply.resize(Common.MESSAGE_SIZE)
			reply.encode_s64(16, Common.cpu_ticks())
			mp.send_bytes(reply, from, MultiplayerPeer.TRANSFER_MODE_RELIABLE, 0)
		Common.KIND_BYE:
			print("BENCH_SERVER_DONE echoed=%d" % _echoed)
			# The client closes first; leave at the latest 3 s later.
			_deadline_msec = mini(_deadline_msec, Time.get_ticks_msec() + 3000)
			_bye = true


func _on_peer_disconnected(_id: int) -> void:
	if _bye:
		_quit(0)


func _quit(code: int) -> void:
	if multiplayer.multiplayer_peer != null:
		multiplayer.multiplayer_peer.close()
		multiplayer.multiplayer_peer = null
	get_tree().quit(code)
