extends Node
## Cycle 1: a headless Godot client opens WebTransport to the gateway through
## FabricMMOGTransportPeer, sends the gateway ping, waits for the pong and for one datagram that
## came from the zone (its welcome), logs both with timings and quits with 0.
## Any TLS or handshake error, an error from the gateway, or 10 s without both ends it with 1.
##
## User arguments (after `--`): --url https://HOST:PORT/wt  --cert-hash HASH  [--timeout SECONDS]
##
## Discovery mode: `--backend http://HOST:PORT --api-key KEY` lists the zones in the registry,
## takes the first one (or `--zone-name NAME`), gets a join token for it and connects straight to
## it with its registered certificate hash (or through `--url`/`--cert-hash` when given, e.g. a
## gateway). `--no-token` and `--forge-token` exist to show that the zone refuses such clients;
## `--hold` keeps the session open after the checks until the server ends it.
## Zones replace their certificate on a schedule with one announced a period before: discovery
## pins both (FabricRegistry.zone_pins). Should neither match any more (two rotations since the
## listing), the client discovers again, up to twice.
## `--transport auto|webtransport|websocket` picks the peer's transport (default auto).

const RESEND_MSEC := 250
const MAX_REDISCOVERIES := 2

var peer := FabricMMOGTransportPeer.new()
var url := "https://127.0.0.1:4433/wt"
var cert_hash := ""
var timeout_sec := 10.0
var backend := ""
var api_key := ""
var zone_name := ""
var token_mode := "issue"
## With --hold: stay connected after the checks passed until the server ends the session
## (printed as SESSION_ENDED, exit 0) or the timeout passes (exit 1).
var hold := false
var _token := ""
var _started := false
var _holding := false
## The pinned hash came from the registry (not --cert-hash): a mismatch means "discover again".
var _hash_from_registry := false
var _rediscoveries := 0

var _start_usec := 0
var _ping_id := ""
var _pong_msec := -1.0
var _zone_msec := -1.0
var _connected_msec := -1.0
var _last_send_msec := -100000.0
var _done := false


func _ready() -> void:
	_parse_args()
	_start_usec = Time.get_ticks_usec()
	_ping_id = "c1-%d" % int(Time.get_unix_time_from_system())
	if not backend.is_empty():
		await _discover()
		if _done:
			return
	peer.connection_error.connect(_on_connection_error)
	peer.control_received.connect(_on_control)
	_connect()


func _connect() -> void:
	_log("connecting to %s (pinned cert hash %s, transport %s)" % [url, cert_hash, peer.transport])
	var err := peer.create_client(url, cert_hash)
	if err != OK:
		_fail("create_client failed: %s %s" % [error_string(err), peer.last_error])
	_started = true


## The zone's certificate changed after discovery: look it up again and reconnect.
func _rediscover(reason: String) -> void:
	_rediscoveries += 1
	_log(
		(
			"CERT_CHANGED since discovery (%s); discovering again (%d/%d)"
			% [reason, _rediscoveries, MAX_REDISCOVERIES]
		)
	)
	_started = false
	peer.close()
	cert_hash = ""
	await _discover()
	if not _done:
		_connect()


func _discover() -> void:
	var registry := FabricRegistry.new()
	registry.backend_url = backend
	registry.api_key = api_key
	registry.request_failed.connect(
		func(what, status, code, message):
			_fail("the registry refused to %s: HTTP %d %s %s" % [what, status, code, message])
	)
	add_child(registry)
	var zones := await registry.list_zones()
	if _done:
		return
	var zone := {}
	for z in zones:
		if zone_name.is_empty() or z.get("name") == zone_name:
			zone = z
			break
	if zone.is_empty():
		_fail(
			(
				"the registry at %s lists no zone%s"
				% [backend, "" if zone_name.is_empty() else " named " + zone_name]
			)
		)
		return
	_log(
		(
			"DISCOVERED zone %s (%s) at %s:%d cert_hash=%s after %.1f ms"
			% [
				zone.id,
				zone.get("name", ""),
				zone.get("address", ""),
				int(zone.get("port", 0)),
				zone.cert_hash,
				_elapsed_msec()
			]
		)
	)
	if token_mode != "none":
		_token = await registry.issue_join_token(zone.id)
		if _done:
			return
		if token_mode == "forge":
			# Same claims, signature bytes changed: what a client forging a token would send.
			var parts := _token.split(".")
			parts[2] = ("B" if parts[2].begins_with("A") else "A") + parts[2].substr(1)
			_token = ".".join(parts)
		_log("join token (%s) for %s: %d bytes" % [token_mode, zone.id, _token.length()])
	if cert_hash.is_empty():
		url = registry.zone_url(zone)
		cert_hash = registry.zone_pins(zone)
		_hash_from_registry = true
	registry.queue_free()


func _process(_delta: float) -> void:
	if _done:
		return
	if _started:
		peer.poll()
	if _done:
		return
	var now := _elapsed_msec()
	if _started and peer.state == FabricMMOGTransportPeer.STATE_CONNECTED:
		if _connected_msec < 0.0:
			_connected_msec = now
			_log("WebTransport session open after %.1f ms" % now)
		if now - _last_send_msec >= RESEND_MSEC:
			_last_send_msec = now
			# Datagrams may be lost: resend until answered.
			if _pong_msec < 0.0:
				peer.send_control(JSON.stringify({"action": "ping", "id": _ping_id, "v": 1}), 1)
			if _zone_msec < 0.0:
				var hello := {"action": "hello", "id": _ping_id, "v": 1}
				if not _token.is_empty():
					hello["token"] = _token
				peer.send_control(JSON.stringify(hello), 1)
	if now > timeout_sec * 1000.0 and _holding:
		_fail("held the session for %.0f s and nobody ended it" % timeout_sec)
		return
	if now > timeout_sec * 1000.0:
		var missing := []
		if not _started:
			missing.append("zone discovery")
		elif _connected_msec < 0.0:
			missing.append("session")
		if _pong_msec < 0.0:
			missing.append("pong")
		if _zone_msec < 0.0:
			missing.append("zone datagram")
		_fail("timed out after %.0f s waiting for: %s" % [timeout_sec, ", ".join(missing)])


func _on_control(text: String, _from: int) -> void:
	var msg = JSON.parse_string(text)
	if typeof(msg) != TYPE_DICTIONARY:
		_log("ignored a control message that is not a JSON object: %s" % text)
		return
	var now := _elapsed_msec()
	if msg.get("result") == "pong" and msg.get("id") == _ping_id and _pong_msec < 0.0:
		_pong_msec = now
		_log("PONG %s after %.1f ms" % [text, now])
	elif msg.get("event") == "welcome" and _zone_msec < 0.0:
		_zone_msec = now
		_log(
			(
				"ZONE_DATAGRAM zone_id=%d tick=%d session=%d after %.1f ms: %s"
				% [
					int(msg.get("zone_id", -1)),
					int(msg.get("tick", -1)),
					int(msg.get("session", -1)),
					now,
					text
				]
			)
		)
		peer.send_control(
			JSON.stringify(
				{"action": "welcome_ack", "session": int(msg.get("session", 0)), "v": 1}
			),
			1
		)
	elif msg.get("event") == "error":
		_fail("the gateway reported %s: %s" % [msg.get("code", "?"), msg.get("message", "")])
		return
	if _pong_msec >= 0.0 and _zone_msec >= 0.0 and not _done and not _holding:
		_log(
			(
				"OK handshake=%.1f ms pong=%.1f ms zone_datagram=%.1f ms"
				% [_connected_msec, _pong_msec, _zone_msec]
			)
		)
		if hold:
			_holding = true
			_log("holding the session until the server ends it")
			return
		_done = true
		peer.close()
		get_tree().quit(0)


func _on_connection_error(reason: String) -> void:
	if (
		_hash_from_registry
		and _connected_msec < 0.0
		and _rediscoveries < MAX_REDISCOVERIES
		and "does not match the pinned hash" in reason
	):
		_rediscover.call_deferred(reason)
		return
	if _holding and not _done:
		_done = true
		_log("SESSION_ENDED: %s" % reason)
		get_tree().quit(0)
		return
	_fail("connection error: %s" % reason)


func _fail(reason: String) -> void:
	if _done:
		return
	_done = true
	printerr("CYCLE1 FAIL: %s" % reason)
	peer.close()
	get_tree().quit(1)


func _elapsed_msec() -> float:
	return (Time.get_ticks_usec() - _start_usec) / 1000.0


func _log(text: String) -> void:
	print("CYCLE1 %s" % text)


func _parse_args() -> void:
	var args := OS.get_cmdline_user_args()
	var i := 0
	while i < args.size():
		var key: String = args[i]
		i += 1
		match key:
			"--no-token":
				token_mode = "none"
				continue
			"--forge-token":
				token_mode = "forge"
				continue
			"--hold":
				hold = true
				continue
		var value := ""
		if "=" in key:
			value = key.get_slice("=", 1)
			key = key.get_slice("=", 0)
		elif i < args.size():
			value = args[i]
			i += 1
		match key:
			"--url":
				url = value
			"--cert-hash":
				cert_hash = value
			"--timeout":
				timeout_sec = float(value)
			"--backend":
				backend = value
			"--api-key":
				api_key = value
			"--zone-name":
				zone_name = value
			"--transport":
				peer.transport = value
			_:
				push_warning("cycle1: unknown argument %s" % key)
