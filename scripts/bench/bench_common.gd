extends RefCounted
## Shared parts of the transport benchmark (scenes/bench/): argument parsing, the peers under
## test, the message layout and this process's CPU time from /proc/self/stat.
##
## A message is MESSAGE_SIZE bytes: kind (u8), phase (u8), pad (u16), sequence (u32),
## client send time in microseconds (u64), then zero padding.

## The transports, by the names the driver passes with --transport: FabricMMOGTransportPeer over
## WebTransport (`fabric-wt`) and over its WebSocket fallback (`fabric-websocket`: wss://, pinned
## by the server's certificate hash, the path a client takes when UDP is blocked), then Godot's
## own ENetMultiplayerPeer and WebSocketMultiplayerPeer (plain ws://).
const TRANSPORTS := ["fabric-wt", "fabric-websocket", "enet", "websocket"]

## The `transport` property of FabricMMOGTransportPeer for each of our transports.
const FABRIC_TRANSPORTS := {"fabric-wt": "webtransport", "fabric-websocket": "websocket"}

const MESSAGE_SIZE := 64
const KIND_ECHO := 1
const KIND_STAT := 2
const KIND_BYE := 3


## Parses `--key value` user arguments (after `--`) into a dictionary of strings.
static func parse_args() -> Dictionary:
	var out := {}
	var args := OS.get_cmdline_user_args()
	var i := 0
	while i < args.size():
		var a: String = args[i]
		if a.begins_with("--") and i + 1 < args.size():
			out[a.substr(2)] = args[i + 1]
			i += 2
		else:
			i += 1
	return out


## Utime + stime of this process in clock ticks (fields 14 and 15 of /proc/self/stat).
static func cpu_ticks() -> int:
	var f := FileAccess.open("/proc/self/stat", FileAccess.READ)
	if f == null:
		return -1
	var line := f.get_line()
	# The command name (field 2) may hold spaces: split after its closing parenthesis.
	var rest := line.substr(line.rfind(")") + 2).split(" ")
	# rest[0] is field 3 (state), so utime (14) is rest[11] and stime (15) is rest[12].
	return int(rest[11]) + int(rest[12])


## A server peer for `transport` listening on `bind`:`port`; null with an error printed.
static func make_server(transport: String, bind: String, port: int) -> MultiplayerPeer:
	if FABRIC_TRANSPORTS.has(transport):
		var p := _fabric_peer(transport)
		if p.create_server(port, bind) != OK:
			printerr("BENCH_ERROR %s create_server: %s" % [transport, p.last_error])
			return null
		return p
	match transport:
		"enet":
			var p := ENetMultiplayerPeer.new()
			p.set_bind_ip(bind)
			var err := p.create_server(port, 8)
			if err != OK:
				printerr("BENCH_ERROR enet create_server: ", error_string(err))
				return null
			return p
		"websocket":
			var p := WebSocketMultiplayerPeer.new()
			var err := p.create_server(port, bind)
			if err != OK:
				printerr("BENCH_ERROR websocket create_server: ", error_string(err))
				return null
			return p
	printerr("BENCH_ERROR unknown transport ", transport)
	return null


## A client peer for `transport` connecting to `host`:`port`; null with an error printed.
## Our peers take the WebTransport URL either way: with `transport = "websocket"` the peer derives
## wss://host:port/ws from it and pins the same hash, as a game's client does.
static func make_client(transport: String, host: String, port: int, cert_hash: String) -> MultiplayerPeer:
	if FABRIC_TRANSPORTS.has(transport):
		var p := _fabric_peer(transport)
		p.connection_error.connect(func(reason): printerr("BENCH_ERROR %s: %s" % [transport, reason]))
		if p.create_client("https://%s:%d/wt" % [host, port], cert_hash) != OK:
			printerr("BENCH_ERROR %s create_client: %s" % [transport, p.last_error])
			return null
		return p
	match transport:
		"enet":
			var p := ENetMultiplayerPeer.new()
			var err := p.create_client(host, port)
			if err != OK:
				printerr("BENCH_ERROR enet create_client: ", error_string(err))
				return null
			return p
		"websocket":
			var p := WebSocketMultiplayerPeer.new()
			var err := p.create_client("ws://%s:%d" % [host, port])
			if err != OK:
				printerr("BENCH_ERROR websocket create_client: ", error_string(err))
				return null
			return p
	printerr("BENCH_ERROR unknown transport ", transport)
	return null


## A FabricMMOGTransportPeer forced to the transport that `name` (a FABRIC_TRANSPORTS key) stands
## for, so neither side races or falls back during the run.
static func _fabric_peer(name: String) -> FabricMMOGTransportPeer:
	var p := FabricMMOGTransportPeer.new()
	p.transport = FABRIC_TRANSPORTS[name]
	return p
