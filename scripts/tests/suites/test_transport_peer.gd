extends FabricTestCase
## FabricMMOGTransportPeer as GDScript sees it: API shape, errors, signals, a real loopback session.


func test_constants_and_defaults() -> void:
	var peer := FabricMMOGTransportPeer.new()
	check(peer is MultiplayerPeer, "is a MultiplayerPeer")
	check_eq(peer.state, FabricMMOGTransportPeer.STATE_IDLE, "starts idle")
	check_eq(peer.get_connection_status(), MultiplayerPeer.CONNECTION_DISCONNECTED, "starts disconnected")
	check_eq(FabricMMOGTransportPeer.STATE_FAILED, 4, "STATE_FAILED")
	check_eq(peer.get_unique_id(), 0, "no id before connecting")


func test_malformed_hash_is_refused() -> void:
	var peer := FabricMMOGTransportPeer.new()
	check_eq(peer.create_client("https://127.0.0.1:9/wt", "nope"), ERR_INVALID_PARAMETER, "bad hash")
	check(peer.last_error.contains("invalid certificate hash"), "last_error says why: " + peer.last_error)


func test_loopback_session_with_signals_and_ping() -> void:
	var server := FabricMMOGTransportPeer.new()
	check_eq(server.create_server(0, "127.0.0.1"), OK, "create_server")
	check_eq(server.get_cert_hash().length(), 44, "base64 SHA-256 hash")
	var client := FabricMMOGTransportPeer.new()
	var seen := {"server_peer": 0, "client_peer": 0, "states": [], "pong": ""}
	server.peer_connected.connect(func(id): seen.server_peer = id)
	client.peer_connected.connect(func(id): seen.client_peer = id)
	client.connection_state_changed.connect(func(s): seen.states.append(s))
	client.control_received.connect(func(text, _from):
		if "pong" in text:
			seen.pong = text)
	var url := "https://127.0.0.1:%d/wt" % server.get_bound_port()
	check_eq(client.create_client(url, server.get_cert_hash()), OK, "create_client")
	var joined := await wait_until(func():
		server.poll()
		client.poll()
		return seen.client_peer == 1 and seen.server_peer != 0, 5.0)
	check(joined, "peer_connected fired on both sides")
	check_eq(seen.server_peer, client.get_unique_id(), "server saw the client's id")
	check_eq(seen.states, [FabricMMOGTransportPeer.STATE_TRYING_PRIMARY, FabricMMOGTransportPeer.STATE_CONNECTED], "state sequence")
	var ponged := await wait_until(func():
		client.send_control('{"action":"ping","id":"gd-1","v":1}', 1)
		server.poll()
		client.poll()
		return seen.pong != "", 5.0)
	check(ponged, "server answered the ping")
	check_eq(JSON.parse_string(seen.pong), {"id": "gd-1", "ok": true, "result": "pong"}, "pong body")
	client.close()
	server.close()
	check_eq(client.state, FabricMMOGTransportPeer.STATE_IDLE, "close() returns to idle")
