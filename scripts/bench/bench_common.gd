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


## Microseconds of the wall clock, which the client and server processes share (also across the
## benchmark's network namespaces), unlike Time.get_ticks_usec.
static func wall_usec() -> int:
	return int(Time.get_unix_time_from_system() * 1e6)


## Sets up the main loop's pacing, the same for every transport. Headless Godot (no window can
## draw) sleeps low_processor_usage_mode_sleep_usec (6.9 ms by default) after every frame, which
## floors every RTT at about one such sleep, so the loop runs at --fps frames per second instead
## (Engine.max_fps: Godot's own pacing, whose phase drifts and is shared by nothing). With
## --phase-us P the loop wakes on a grid of the shared wall clock instead, every 1/fps s at
## offset P µs (the driver gives the client 0 and the server P), which holds the phase between the
## two processes' loops where it is put. Returns the grid (period, offset) in µs, or (0, 0) for
## Godot's pacing; pass it to end_frame.
static func setup_pacing(args: Dictionary) -> Vector2i:
	var fps := maxi(int(args.get("fps", "1000")), 1)
	if not args.has("phase-us"):
		OS.low_processor_usage_mode_sleep_usec = 1000000 / fps
		Engine.max_fps = fps
		return Vector2i.ZERO
	OS.low_processor_usage_mode_sleep_usec = 0
	Engine.max_fps = 0
	return Vector2i(1000000 / fps, int(args["phase-us"]))


## Call last in every _process: with a grid from setup_pacing, sleeps until its next point
## (SceneMultiplayer polls at the start of the next frame, right after).
static func end_frame(grid: Vector2i) -> void:
	if grid.x <= 0:
		return
	var now := wall_usec()
	var next := ((now - grid.y) / grid.x + 1) * grid.x + grid.y
	OS.delay_usec(next - now)


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
static func make_client(
	transport: String, host: String, port: int, cert_hash: String
) -> MultiplayerPeer:
	if FABRIC_TRANSPORTS.has(transport):
		var p := _fabric_peer(transport)
		p.connection_error.connect(
			func(reason): printerr("BENCH_ERROR %s: %s" % [transport, reason])
		)
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
