extends Node
## Godot's own high-level multiplayer over FabricMMOGTransportPeer: a server, a client, or a
## swarm of clients in one process, chosen by user arguments (after `--`):
##
##   --role server --port P [--bind 127.0.0.1] --clients N [--rounds R] [--timeout S]
##                 [--sync-interval SECONDS]
##   --role client --url https://127.0.0.1:P/wt --cert-hash H --name c1 [--timeout S]
##   --role swarm  --url ... --cert-hash H --name s0 --count K --rounds R [--reconnect-delay S]
##
## Every role also takes `--transport auto|webtransport|websocket` (default `auto`), the peer's
## `transport` property: a server listens on both transports with `auto`; a client with
## `websocket` connects to `wss://host:port/ws`, derived from the `https://` URL and pinned by
## the same hash. A client forced onto one transport fails its session when it connected over
## another, and logs the transport it used (`transport=`) and its states (`states=`).
##
## The server and a client use the tree's default SceneMultiplayer (`multiplayer`). A swarm runs
## K clients, each in its own SceneMultiplayer (`get_tree().set_multiplayer(mp, path)`) on its
## own subtree `Peer<i>/MpTest/Session`, so the node paths relative to each multiplayer root are
## the same as on the server (`MpTest/Session`). See `mp_session.gd` for what each one checks.
##
## `--timeout` is per round. Exits 0 only when every session's own checks passed; otherwise
## prints `MP_FAIL ...` and exits 1 (timeouts included).

const SESSION := preload("res://scenes/mp/mp_session.tscn")
const Session := preload("res://scripts/mp/mp_session.gd")

var _args := {
	"role": "client",
	"port": "0",
	"bind": "127.0.0.1",
	"clients": "1",
	"rounds": "1",
	"url": "",
	"cert-hash": "",
	"name": "c1",
	"count": "1",
	"timeout": "30",
	"reconnect-delay": "1.0",
	"sync-interval": "0.05",
	"transport": "auto",
}
var _sessions := []
var _open := 0
var _failed := []
var _closed_rounds := {}  # round -> sessions that closed it (swarm)
var _quitting := false


func _ready() -> void:
	if not _parse_args():
		_quit(1)
		return
	# A 60 Hz tick, like a typical game server; the tests share two cores among many processes.
	Engine.max_fps = 60
	var role: String = _args["role"]
	match role:
		"server", "client":
			var s := _new_session(role, "server" if role == "server" else _args["name"])
			s.name = "Session"
			add_child(s)
		"swarm":
			var count := int(_args["count"])
			for i in count:
				var holder := Node.new()
				holder.name = "Peer%d" % i
				add_child(holder)
				get_tree().set_multiplayer(SceneMultiplayer.new(), holder.get_path())
				var inner := Node.new()
				inner.name = "MpTest"
				holder.add_child(inner)
				var s := _new_session("client", "%s-%d" % [_args["name"], i])
				s.verbose = false
				s.greet_all = false
				s.stagger = i * 0.05
				s.check_every_msec = 100
				# Half the sessions reuse their peer object across rounds, half make a new one.
				s.reuse_peer = i % 2 == 0
				s.name = "Session"
				s.round_closed.connect(_on_round_closed)
				inner.add_child(s)
			print("MP_SWARM_STARTED sessions=%d" % count)
		_:
			printerr("MP_FAIL unknown --role %s (server, client or swarm)" % role)
			_quit(1)


func _new_session(role: String, session_name: String) -> Session:
	var s := SESSION.instantiate() as Session
	s.role = role
	s.player_name = session_name
	s.url = _args["url"]
	s.transport = _args["transport"]
	s.cert_hash = _args["cert-hash"]
	s.port = int(_args["port"])
	s.bind_address = _args["bind"]
	s.expected_clients = int(_args["clients"])
	s.rounds = int(_args["rounds"])
	s.timeout_sec = float(_args["timeout"])
	s.reconnect_delay = float(_args["reconnect-delay"])
	s.sync_interval = float(_args["sync-interval"])
	s.finished.connect(_on_session_finished.bind(session_name))
	_sessions.append(s)
	_open += 1
	return s


func _on_round_closed(round_no: int) -> void:
	var n: int = _closed_rounds.get(round_no, 0) + 1
	_closed_rounds[round_no] = n
	if n != _sessions.size() or round_no >= int(_args["rounds"]):
		# After the last round the process quits: no timer may still be pending then (a
		# coroutine awaiting one at exit leaks its objects).
		return
	# Every session of this process has closed the round: let frees run, then count objects.
	await get_tree().create_timer(0.3).timeout
	print(
		(
			"MP_SWARM_IDLE round=%d objects=%d nodes=%d static_mem=%d"
			% [
				round_no,
				Performance.get_monitor(Performance.OBJECT_COUNT),
				Performance.get_monitor(Performance.OBJECT_NODE_COUNT),
				OS.get_static_memory_usage()
			]
		)
	)


func _on_session_finished(ok: bool, reason: String, session_name: String) -> void:
	_open -= 1
	if not ok:
		_failed.append("%s: %s" % [session_name, reason])
		# One failed session fails the process; do not wait for the others.
		_quit(1)
		return
	if _open == 0:
		print("MP_PROCESS_OK role=%s sessions=%d" % [_args["role"], _sessions.size()])
		_quit(0)


func _quit(code: int) -> void:
	if _quitting:
		return
	_quitting = true
	if code != 0:
		printerr("MP_FAIL process: %s" % "; ".join(_failed))
	# Give the closing sessions a moment to send their close frames.
	await get_tree().create_timer(0.2).timeout
	get_tree().quit(code)


func _parse_args() -> bool:
	var ok := true
	var args := OS.get_cmdline_user_args()
	var i := 0
	while i < args.size():
		var key: String = args[i]
		var value := ""
		if "=" in key:
			value = key.get_slice("=", 1)
			key = key.get_slice("=", 0)
		elif i + 1 < args.size():
			i += 1
			value = args[i]
		key = key.trim_prefix("--")
		if not _args.has(key):
			_failed.append("unknown argument --%s" % key)
			ok = false
		_args[key] = value
		i += 1
	return ok
