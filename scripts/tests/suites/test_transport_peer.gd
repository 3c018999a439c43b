extends FabricTestCase
## FabricMMOGTransportPeer as GDScript sees it: API shape, errors, signals, a real loopback
## session over each transport (WebTransport and the WebSocket fallback), and the fallback itself.


func test_constants_and_defaults() -> void:
	var peer := FabricMMOGTransportPeer.new()
	check(peer is MultiplayerPeer, "is a MultiplayerPeer")
	check_eq(peer.state, FabricMMOGTransportPeer.STATE_IDLE, "starts idle")
	check_eq(
		peer.get_connection_status(), MultiplayerPeer.CONNECTION_DISCONNECTED, "starts disconnected"
	)
	check_eq(FabricMMOGTransportPeer.STATE_FAILED, 4, "STATE_FAILED")
	check_eq(peer.get_unique_id(), 0, "no id before connecting")
	check_eq(peer.transport, "auto", "tries WebTransport, then WebSocket")
	check_eq(peer.allow_insecure_websocket, false, "ws:// on loopback only by default")
	check_eq(peer.primary_timeout_msec, 3000, "default fallback delay")
	check_eq(peer.connect_timeout_msec, 5000, "default connect timeout")
	check_eq(peer.get_active_transport(), "", "no transport while idle")
	check_eq(peer.events_per_poll, 4096, "events handled per poll")
	check_eq(peer.join_timeout_msec, 10000, "join deadline")


## Collects the errors Godot reports while it is added with OS.add_logger().
class ErrorSink:
	extends Logger
	var lock := Mutex.new()
	var errors: Array[String] = []

	func _log_error(
		_function: String,
		_file: String,
		_line: int,
		code: String,
		rationale: String,
		_editor_notify: bool,
		_error_type: int,
		_script_backtraces: Array[ScriptBacktrace]
	) -> void:
		lock.lock()
		errors.append("%s %s" % [code, rationale])
		lock.unlock()


func test_connect_timeout_must_be_positive() -> void:
	var peer := FabricMMOGTransportPeer.new()
	peer.connect_timeout_msec = 250
	check_eq(peer.connect_timeout_msec, 250, "a positive timeout is taken")
	var sink := ErrorSink.new()
	OS.add_logger(sink)
	for bad in [0, -1]:
		peer.connect_timeout_msec = bad
		check_eq(peer.connect_timeout_msec, 250, "%d is refused, the old value kept" % bad)
	OS.remove_logger(sink)
	check_eq(sink.errors.size(), 2, "one error per refused value: %s" % [sink.errors])
	for i in mini(sink.errors.size(), 2):
		var expected := (
			"connect_timeout_msec must be a positive number of milliseconds, got %d; keeping 250 ms"
			% [0, -1][i]
		)
		check(expected in sink.errors[i], "the error says why: %s" % sink.errors[i])


func test_congestion_control_is_chosen_by_name() -> void:
	var peer := FabricMMOGTransportPeer.new()
	check_eq(peer.congestion_control, "bbr", "BBR by default")
	peer.congestion_control = "reno"
	check_eq(
		peer.create_client(
			"https://127.0.0.1:9/wt", "q0ANGmCZtlwHx6kn3pd3T6g0iE3KeTTqYy9x0c0O2tY="
		),
		ERR_INVALID_PARAMETER,
		"unknown controller"
	)
	check(peer.last_error.contains("congestion_control"), "last_error says why: " + peer.last_error)
	check_eq(peer.create_server(0, "127.0.0.1"), ERR_INVALID_PARAMETER, "servers refuse it too")
	# CUBIC on both sides still makes a session.
	var server := FabricMMOGTransportPeer.new()
	server.congestion_control = "cubic"
	check_eq(server.create_server(0, "127.0.0.1"), OK, "cubic server")
	var client := FabricMMOGTransportPeer.new()
	client.congestion_control = "cubic"
	client.transport = "webtransport"
	var url := "https://127.0.0.1:%d/wt" % server.get_bound_port()
	check_eq(client.create_client(url, server.get_cert_hash()), OK, "cubic client")
	var joined := await wait_until(
		func():
			server.poll()
			client.poll()
			return client.get_connection_status() == MultiplayerPeer.CONNECTION_CONNECTED,
		5.0
	)
	check(joined, "a CUBIC session joins")
	client.close()
	server.close()


func test_malformed_hash_is_refused() -> void:
	var peer := FabricMMOGTransportPeer.new()
	check_eq(
		peer.create_client("https://127.0.0.1:9/wt", "nope"), ERR_INVALID_PARAMETER, "bad hash"
	)
	check(
		peer.last_error.contains("invalid certificate hash"),
		"last_error says why: " + peer.last_error
	)


func test_loopback_session_over_webtransport() -> void:
	await _loopback_session("webtransport", FabricMMOGTransportPeer.STATE_TRYING_PRIMARY)


func test_loopback_session_over_websocket() -> void:
	await _loopback_session("websocket", FabricMMOGTransportPeer.STATE_TRYING_FALLBACK)


func _loopback_session(transport: String, first_state: int) -> void:
	var server := FabricMMOGTransportPeer.new()
	check_eq(server.create_server(0, "127.0.0.1"), OK, "create_server")
	check_eq(server.get_cert_hash().length(), 44, "base64 SHA-256 hash")
	var client := FabricMMOGTransportPeer.new()
	client.transport = transport
	var seen := {
		"server_peer": 0,
		"client_peer": 0,
		"states": [],
		"pong": "",
		"server_gone": 0,
		"client_gone": 0
	}
	server.peer_disconnected.connect(func(id): seen.server_gone = id)
	client.peer_disconnected.connect(func(id): seen.client_gone = id)
	server.peer_connected.connect(func(id): seen.server_peer = id)
	client.peer_connected.connect(func(id): seen.client_peer = id)
	client.connection_state_changed.connect(func(s): seen.states.append(s))
	client.control_received.connect(
		func(text, _from):
			if "pong" in text:
				seen.pong = text
	)
	var url := "https://127.0.0.1:%d/wt" % server.get_bound_port()
	check_eq(client.create_client(url, server.get_cert_hash()), OK, "create_client")
	var joined := await wait_until(
		func():
			server.poll()
			client.poll()
			return seen.client_peer == 1 and seen.server_peer != 0,
		5.0
	)
	check(joined, "%s: peer_connected fired on both sides" % transport)
	check_eq(client.get_active_transport(), transport, "active transport")
	check_eq(seen.server_peer, client.get_unique_id(), "server saw the client's id")
	check_eq(
		seen.states,
		[first_state, FabricMMOGTransportPeer.STATE_CONNECTED],
		"%s: state sequence" % transport
	)
	var ponged := await wait_until(
		func():
			client.send_control('{"action":"ping","id":"gd-1","v":1}', 1)
			server.poll()
			client.poll()
			return seen.pong != "",
		5.0
	)
	check(ponged, "%s: server answered the ping" % transport)
	check_eq(
		JSON.parse_string(seen.pong), {"id": "gd-1", "ok": true, "result": "pong"}, "pong body"
	)
	var client_id := client.get_unique_id()
	client.close()
	check_eq(client.state, FabricMMOGTransportPeer.STATE_IDLE, "close() returns to idle")
	var gone := await wait_until(
		func():
			server.poll()
			return seen.server_gone != 0,
		5.0
	)
	check(gone, "%s: server saw peer_disconnected" % transport)
	check_eq(seen.server_gone, client_id, "the client's id left")
	server.close()


func test_a_session_that_never_joins_is_closed_with_the_reason() -> void:
	var server := FabricMMOGTransportPeer.new()
	server.join_timeout_msec = 300
	check_eq(server.create_server(0, "127.0.0.1"), OK, "create_server")
	# Godot's own WebSocketPeer opens a session on the fallback path and never sends a join.
	var ws := WebSocketPeer.new()
	check_eq(
		ws.connect_to_url("ws://127.0.0.1:%d/ws" % server.get_bound_port()),
		OK,
		"raw ws:// connects"
	)
	var closed := await wait_until(
		func():
			server.poll()
			ws.poll()
			return ws.get_ready_state() == WebSocketPeer.STATE_CLOSED,
		5.0
	)
	check(closed, "the server closed the session that never joined")
	check_eq(ws.get_close_code(), 4001, "protocol close code 4000 + 1: " + ws.get_close_reason())
	check(
		"no join within 300 ms" in ws.get_close_reason(),
		"the reason says why: " + ws.get_close_reason()
	)
	server.close()


func test_falls_back_to_websocket_when_udp_gets_no_answer() -> void:
	var server := FabricMMOGTransportPeer.new()
	server.transport = "websocket"  # nothing answers on UDP, as behind a UDP-blocking firewall
	check_eq(server.create_server(0, "127.0.0.1"), OK, "WebSocket-only server")
	var client := FabricMMOGTransportPeer.new()
	client.primary_timeout_msec = 300
	var states := []
	client.connection_state_changed.connect(func(s): states.append(s))
	var url := "https://127.0.0.1:%d/wt" % server.get_bound_port()
	check_eq(client.create_client(url, server.get_cert_hash()), OK, "create_client (auto)")
	var joined := await wait_until(
		func():
			server.poll()
			client.poll()
			return client.get_connection_status() == MultiplayerPeer.CONNECTION_CONNECTED,
		10.0
	)
	check(joined, "connected over the fallback: " + client.last_error)
	check_eq(
		states,
		[
			FabricMMOGTransportPeer.STATE_TRYING_PRIMARY,
			FabricMMOGTransportPeer.STATE_TRYING_FALLBACK,
			FabricMMOGTransportPeer.STATE_CONNECTED
		],
		"TRYING_PRIMARY -> TRYING_FALLBACK -> CONNECTED"
	)
	check_eq(client.get_active_transport(), "websocket", "active transport")
	client.close()
	server.close()


func test_a_handler_may_drop_the_last_reference_to_the_peer() -> void:
	# SceneMultiplayer holds the only reference to the server peer; its peer_disconnected
	# handler drops it while the peer's own poll() is emitting the signal. The peer must
	# outlive that call (before the fix, gdext aborted the whole process here).
	var mp := SceneMultiplayer.new()
	var server := FabricMMOGTransportPeer.new()
	check_eq(server.create_server(0, "127.0.0.1"), OK, "create_server")
	var url := "https://127.0.0.1:%d/wt" % server.get_bound_port()
	var hash := server.get_cert_hash()
	var server_ref: WeakRef = weakref(server)
	mp.multiplayer_peer = server
	server = null
	var seen := {"connected": 0, "dropped": 0}
	var on_connected := func(id): seen.connected = id
	var on_disconnected := func(id):
		seen.dropped = id
		mp.multiplayer_peer = null
	mp.peer_connected.connect(on_connected)
	mp.peer_disconnected.connect(on_disconnected)
	var client := FabricMMOGTransportPeer.new()
	check_eq(client.create_client(url, hash), OK, "create_client")
	var joined := await wait_until(
		func():
			mp.poll()
			client.poll()
			return seen.connected != 0,
		5.0
	)
	check(joined, "the server's SceneMultiplayer saw the client")
	client.close()
	var dropped := await wait_until(
		func():
			if mp.multiplayer_peer is FabricMMOGTransportPeer:
				mp.poll()
			return seen.dropped != 0,
		5.0
	)
	check(dropped, "peer_disconnected reached the handler")
	check(not mp.multiplayer_peer is FabricMMOGTransportPeer, "the handler replaced the peer")
	var freed := await wait_until(func(): return server_ref.get_ref() == null, 2.0)
	check(freed, "the dropped peer is freed once the frame is idle, not leaked")
	# The handlers hold mp, mp holds them: break the cycle so nothing leaks at exit.
	mp.peer_connected.disconnect(on_connected)
	mp.peer_disconnected.disconnect(on_disconnected)
