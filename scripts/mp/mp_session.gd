extends Node
## One high-level multiplayer session over FabricMMOGTransportPeer: the server, or one client.
##
## Nothing here knows about the transport beyond creating it: the session assigns the peer to
## `multiplayer.multiplayer_peer` and then uses Godot's SceneMultiplayer unchanged:
## `@rpc` calls (reliable and unreliable, client -> server, server -> client, server broadcast,
## and client -> client through the server relay), a MultiplayerSpawner (`Spawner`) that spawns
## one `mp_player.tscn` per connected peer under `Players`, and each player's
## MultiplayerSynchronizer replicating `counter` and `label` from the server.
##
## The server runs `rounds` rounds. In each, it waits for `expected_clients` peers to be connected
## at once and registered, broadcasts the roster, waits for every client's report (sent when the
## client's own checks passed), broadcasts `finish`, and waits until every one of them has
## disconnected. Clients close on `finish` and, while rounds remain, reconnect after
## `reconnect_delay` seconds (reusing the same peer object when `reuse_peer`, else a new one).
##
## Machine-readable lines start with `MP_`; the launcher (`mp_test.gd`) turns `finished` into
## the exit code.

## The session ended: `ok` is true when all of its checks passed; `reason` says why not.
signal finished(ok: bool, reason: String)
## A client closed its connection at the end of round `round_no`.
signal round_closed(round_no: int)

const PLAYER_SCENE := "res://scenes/mp/mp_player.tscn"
const Player := preload("res://scripts/mp/mp_player.gd")
## Resend an unanswered unreliable ping this often.
const UPING_RESEND_MSEC := 100
## Client: connection attempts that may fail (handshake timeout) before the session fails.
const CONNECT_RETRIES := 3
## How many replicated changes of each player's counter a client must observe.
const SYNC_CHANGES_WANTED := 3
## Mixed into the unreliable reply so that an echo of the request cannot pass.
const UNRELIABLE_SALT := 0x2545F491
## The server sends sync packets of at most this many bytes. A precaution: SceneMultiplayer's
## default (1350) can exceed the datagram payload of a QUIC path before its MTU is discovered
## (about 1150 bytes on a 1200-byte path), and FabricMMOGTransportPeer refuses unreliable
## packets larger than the path takes (with an error, never silently). With 64 players and the
## default, no packet was refused on loopback; a game with many synchronized nodes should still
## stay under the smallest datagram size.
const MAX_SYNC_PACKET := 1100

## "server" or "client".
var role := "client"
## Client: `https://host:port/wt`.
var url := ""
## The peer's `transport`: "auto", "webtransport" or "websocket". A client forced onto one
## checks that it connected over it.
var transport := "auto"
## Client: the server certificate hash to pin.
var cert_hash := ""
## Client: the name it registers with.
var player_name := "c"
## Server: UDP port (0 = any free port) and bind address.
var port := 0
var bind_address := "127.0.0.1"
## Server: clients connected at once in each round.
var expected_clients := 1
## Rounds of connect -> exchange -> disconnect (-> reconnect).
var rounds := 1
## Print every observation (clients) instead of one summary line per round.
var verbose := true
## Client: seconds between its disconnect and its reconnect.
var reconnect_delay := 1.0
## Client: look at the replicated state every this many milliseconds (a swarm of sessions in
## one process checks less often).
var check_every_msec := 20
## Client: extra seconds before each connect, so that the sessions of a swarm do not all send
## their handshakes in the same millisecond (as real players do not).
var stagger := 0.0
## Client: reconnect with the same peer object (close() then create_client() again).
var reuse_peer := true
## Seconds a round may take before the session gives up.
var timeout_sec := 30.0
## Client: greet every other client (true), or only those whose id XOR ours is a multiple of
## 8 (about one in eight, the same pairs on both sides), to keep a 64-peer swarm light.
var greet_all := true
## Server: seconds between two synchronizations of a player (its MultiplayerSynchronizer's
## replication_interval).
var sync_interval := 0.05

var peer: FabricMMOGTransportPeer
var round_no := 1
var _done := false
var _start_msec := 0
var _round_start_msec := 0

# Server state (reset each round where noted).
var _state := "collect"  # collect -> roster_sent -> closing
var _names := {}  # peer id -> registered name (current connections)
var _reports := {}  # peer id -> report, this round
var _closing_ids := {}  # peer ids of the round being closed
var _connected_log := {}  # every id ever connected
var _disconnected_log := {}  # every id ever disconnected

# Client state (reset each round by _client_reset).
var _my_id := 0
var _states := []  # connection_state_changed of this connect, in order
var _used_transport := ""  # the peer's active transport once connected
var _saw_server := false
var _connected_to_server := false
var _peers_seen := {}
var _nonce := 0
var _reliable_value := -1
var _uping_seq := 0
var _uping_sent_msec := -100000
var _unreliable_value := -1
var _roster := {}
var _greets := {}
var _sync := {}  # player node name -> {"last": int, "changes": int, "first": int}
var _reported := false
var _finished_round := false
var _last_check_msec := 0
var _retries_left := CONNECT_RETRIES

@onready var players: Node = $Players
@onready var spawner: MultiplayerSpawner = $Spawner


func _ready() -> void:
	_start_msec = Time.get_ticks_msec()
	_round_start_msec = _start_msec
	var mp := multiplayer as SceneMultiplayer
	mp.max_sync_packet_size = MAX_SYNC_PACKET
	mp.peer_connected.connect(_on_peer_connected)
	mp.peer_disconnected.connect(_on_peer_disconnected)
	if role == "server":
		_start_server()
	else:
		mp.connected_to_server.connect(_on_connected_to_server)
		mp.connection_failed.connect(_on_connection_failed)
		mp.server_disconnected.connect(_on_server_disconnected)
		if stagger > 0.0:
			await get_tree().create_timer(stagger).timeout
		_connect()


func _process(_delta: float) -> void:
	if _done:
		return
	if Time.get_ticks_msec() - _round_start_msec > timeout_sec * 1000.0:
		_fail(
			(
				"timed out after %.0f s in round %d waiting for: %s"
				% [timeout_sec, round_no, _missing()]
			)
		)
		return
	if role == "server":
		for p in players.get_children():
			(p as Player).counter += 1
	else:
		_client_process()


# --- Server ---------------------------------------------------------------------------------


func _start_server() -> void:
	peer = FabricMMOGTransportPeer.new()
	peer.transport = transport
	var err := peer.create_server(port, bind_address)
	if err != OK:
		_fail(
			(
				"create_server(%d, %s) failed: %s %s"
				% [port, bind_address, error_string(err), peer.last_error]
			)
		)
		return
	multiplayer.multiplayer_peer = peer
	print(
		(
			"MP_READY port=%d cert_hash=%s clients=%d rounds=%d transport=%s"
			% [peer.get_bound_port(), peer.get_cert_hash(), expected_clients, rounds, transport]
		)
	)


func _server_peer_connected(id: int) -> void:
	_connected_log[id] = true
	print("MP_SERVER_PEER_CONNECTED id=%d round=%d t=%.2f" % [id, round_no, _secs()])
	var p := (load(PLAYER_SCENE) as PackedScene).instantiate()
	p.name = str(id)
	(p.get_node("Sync") as MultiplayerSynchronizer).replication_interval = sync_interval
	players.add_child(p, true)


func _server_peer_disconnected(id: int) -> void:
	_disconnected_log[id] = true
	_names.erase(id)
	print("MP_SERVER_PEER_DISCONNECTED id=%d round=%d" % [id, round_no])
	var p := players.get_node_or_null(str(id))
	if p:
		p.queue_free()
	if _state == "closing":
		_closing_ids.erase(id)
		if _closing_ids.is_empty():
			_end_round()
	elif _state == "roster_sent":
		# Every client must stay until `finish`: leaving earlier breaks "all at once".
		_fail("peer %d disconnected in round %d before the round ended" % [id, round_no])
	else:
		_maybe_send_roster()


func _maybe_send_roster() -> void:
	if _state != "collect" or _names.size() != expected_clients:
		return
	if multiplayer.get_peers().size() != expected_clients:
		return  # A peer of the last round is still closing; all must be connected at once.
	_state = "roster_sent"
	print("MP_ROSTER round=%d peers=%d t=%.2f" % [round_no, _names.size(), _secs()])
	roster.rpc(round_no, _names)


func _end_round() -> void:
	_state = "idle"
	# Let queue_free() run and the closed sessions drain before measuring.
	await get_tree().create_timer(0.3).timeout
	if _done:
		return
	print(
		(
			"MP_ROUND_DONE round=%d t=%.2f objects=%d nodes=%d static_mem=%d players_left=%d peers_left=%d"
			% [
				round_no,
				_secs(),
				Performance.get_monitor(Performance.OBJECT_COUNT),
				Performance.get_monitor(Performance.OBJECT_NODE_COUNT),
				OS.get_static_memory_usage(),
				players.get_child_count(),
				multiplayer.get_peers().size()
			]
		)
	)
	if round_no >= rounds:
		var connected := _connected_log.keys()
		var disconnected := _disconnected_log.keys()
		connected.sort()
		disconnected.sort()
		print(
			(
				"MP_SERVER_OK rounds=%d connected=%s disconnected=%s"
				% [rounds, _ids(connected), _ids(disconnected)]
			)
		)
		_finish(true, "")
		return
	round_no += 1
	_round_start_msec = Time.get_ticks_msec()
	_reports.clear()
	_state = "collect"
	_maybe_send_roster()


@rpc("any_peer", "call_remote", "reliable")
func register(player_label: String, nonce: int) -> void:
	if role != "server":
		return
	var sender := multiplayer.get_remote_sender_id()
	_names[sender] = player_label
	var p := players.get_node_or_null(str(sender)) as Player
	if p:
		p.label = player_label
	print(
		(
			"MP_SERVER_REGISTER id=%d name=%s nonce=%d round=%d"
			% [sender, player_label, nonce, round_no]
		)
	)
	registered.rpc_id(sender, sender, nonce * 3 + 7, expected_clients)
	_maybe_send_roster()


@rpc("any_peer", "call_remote", "unreliable")
func uping(seq: int, value: int) -> void:
	if role != "server":
		return
	var sender := multiplayer.get_remote_sender_id()
	upong.rpc_id(sender, seq, value ^ UNRELIABLE_SALT)


@rpc("any_peer", "call_remote", "reliable")
func report(client_round: int, summary: Dictionary) -> void:
	if role != "server":
		return
	var sender := multiplayer.get_remote_sender_id()
	if client_round != round_no:
		_fail("peer %d reported round %d during round %d" % [sender, client_round, round_no])
		return
	_reports[sender] = summary
	if verbose:
		print("MP_SERVER_REPORT id=%d round=%d %s" % [sender, round_no, JSON.stringify(summary)])
	if _reports.size() == expected_clients and _state == "roster_sent":
		_state = "closing"
		_closing_ids = {}
		for id in _reports:
			_closing_ids[id] = true
		print(
			(
				"MP_ROUND_OK round=%d reports=%d peers=%d t=%.2f"
				% [round_no, _reports.size(), multiplayer.get_peers().size(), _secs()]
			)
		)
		finish.rpc(round_no)


# --- Client ---------------------------------------------------------------------------------


func _connect() -> void:
	_client_reset()
	if peer == null or not reuse_peer:
		peer = FabricMMOGTransportPeer.new()
		peer.connection_state_changed.connect(_on_connection_state_changed)
	peer.transport = transport
	var err := peer.create_client(url, cert_hash)
	if err != OK:
		_fail("create_client failed: %s %s" % [error_string(err), peer.last_error])
		return
	multiplayer.multiplayer_peer = peer
	_log(
		(
			"MP_CLIENT_CONNECTING name=%s round=%d id=%d reuse=%s"
			% [player_name, round_no, peer.get_unique_id(), reuse_peer]
		)
	)


func _client_reset() -> void:
	_my_id = 0
	_states = []
	_used_transport = ""
	_saw_server = false
	_connected_to_server = false
	_peers_seen = {}
	_nonce = randi_range(1, 1 << 20)
	_reliable_value = -1
	_uping_seq = 0
	_uping_sent_msec = -100000
	_unreliable_value = -1
	_roster = {}
	_greets = {}
	_sync = {}
	_reported = false
	_finished_round = false


func _on_connected_to_server() -> void:
	_connected_to_server = true
	_my_id = multiplayer.get_unique_id()
	_used_transport = peer.get_active_transport()
	_log(
		(
			"MP_CLIENT_CONNECTED name=%s id=%d round=%d transport=%s states=%s"
			% [player_name, _my_id, round_no, _used_transport, _ids(_states)]
		)
	)
	if transport != "auto" and _used_transport != transport:
		_fail("asked for transport %s, connected over %s" % [transport, _used_transport])
		return
	register.rpc_id(1, player_name, _nonce)


func _on_connection_state_changed(state: int) -> void:
	_states.append(state)


func _on_connection_failed() -> void:
	var reason: String = peer.last_error if peer else "?"
	if _retries_left <= 0:
		_fail("connection failed (no retries left): %s" % reason)
		return
	# A handshake can time out when UDP packets are dropped (a receive buffer overflowing on
	# a loaded machine); a game retries, and so does this client, saying so.
	_retries_left -= 1
	print(
		(
			"MP_CLIENT_RETRY name=%s round=%d reason=%s"
			% [player_name, round_no, reason.replace(" ", "_")]
		)
	)
	await get_tree().create_timer(0.2).timeout
	if not _done:
		_connect()


func _on_server_disconnected() -> void:
	if not _finished_round:
		_fail("the server disconnected in round %d before finish: %s" % [round_no, peer.last_error])


func _client_peer_connected(id: int) -> void:
	if id == 1:
		_saw_server = true
		_log("MP_CLIENT_PEER_CONNECTED id=1 (server)")
		return
	_peers_seen[id] = true
	_log("MP_CLIENT_PEER_CONNECTED id=%d" % id)
	if _greets_with(id):
		# Client to client: SceneMultiplayer routes this through the server relay.
		greet.rpc_id(id, player_name, id ^ multiplayer.get_unique_id())


func _greets_with(id: int) -> bool:
	return greet_all or ((id ^ multiplayer.get_unique_id()) & 7) == 0


@rpc("authority", "call_remote", "reliable")
func registered(your_id: int, value: int, clients: int) -> void:
	if your_id != multiplayer.get_unique_id():
		_fail(
			(
				"the server answered register for id %d, but this peer is %d"
				% [your_id, multiplayer.get_unique_id()]
			)
		)
		return
	if value != _nonce * 3 + 7:
		_fail(
			(
				"reliable round trip: sent nonce %d, expected %d back, got %d"
				% [_nonce, _nonce * 3 + 7, value]
			)
		)
		return
	_reliable_value = value
	_log(
		(
			"MP_CLIENT_RPC mode=reliable sent=%d got=%d expected=%d clients=%d"
			% [_nonce, value, _nonce * 3 + 7, clients]
		)
	)


@rpc("authority", "call_remote", "unreliable")
func upong(seq: int, value: int) -> void:
	if _unreliable_value >= 0:
		return  # Answers to resent pings.
	var sent := _nonce + seq
	if value != (sent ^ UNRELIABLE_SALT):
		_fail(
			(
				"unreliable round trip: sent %d, expected %d back, got %d"
				% [sent, sent ^ UNRELIABLE_SALT, value]
			)
		)
		return
	_unreliable_value = value
	_log(
		(
			"MP_CLIENT_RPC mode=unreliable sent=%d got=%d expected=%d attempts=%d"
			% [sent, value, sent ^ UNRELIABLE_SALT, _uping_seq]
		)
	)


@rpc("authority", "call_remote", "reliable")
func roster(server_round: int, names: Dictionary) -> void:
	if server_round != round_no:
		_fail("roster for round %d during round %d" % [server_round, round_no])
		return
	_roster = names
	var ids := names.keys()
	ids.sort()
	_log("MP_CLIENT_ROSTER round=%d ids=%s" % [server_round, _ids(ids)])
	if not _roster.has(multiplayer.get_unique_id()):
		_fail("the roster %s lacks this peer %d" % [_ids(ids), multiplayer.get_unique_id()])


@rpc("any_peer", "call_remote", "reliable")
func greet(from_name: String, token: int) -> void:
	var sender := multiplayer.get_remote_sender_id()
	var expected := sender ^ multiplayer.get_unique_id()
	if not _greets_with(sender):
		_fail("greeting from %d, which should not greet this peer" % sender)
		return
	if token != expected:
		_fail("greeting from %d (%s): token %d, expected %d" % [sender, from_name, token, expected])
		return
	_greets[sender] = from_name
	_log("MP_CLIENT_GREET from=%d name=%s token=%d" % [sender, from_name, token])


@rpc("authority", "call_remote", "reliable")
func finish(server_round: int) -> void:
	if server_round != round_no or not _reported:
		_fail(
			"finish for round %d in round %d (reported: %s)" % [server_round, round_no, _reported]
		)
		return
	_finished_round = true
	_log("MP_CLIENT_OK name=%s id=%d round=%d" % [player_name, _my_id, round_no])
	peer.close()
	await get_tree().create_timer(0.2).timeout
	round_closed.emit(round_no)
	if _done:
		return
	if round_no >= rounds:
		_finish(true, "")
		return
	await get_tree().create_timer(reconnect_delay + stagger).timeout
	if _done:
		return
	if players.get_child_count() != 0:
		_fail(
			(
				"%d spawned player nodes outlived the disconnect of round %d"
				% [players.get_child_count(), round_no]
			)
		)
		return
	round_no += 1
	_round_start_msec = Time.get_ticks_msec()
	_connect()


func _client_process() -> void:
	if not _connected_to_server or _reported:
		return
	var now := Time.get_ticks_msec()
	if now - _last_check_msec < check_every_msec:
		return
	_last_check_msec = now
	if _unreliable_value < 0 and now - _uping_sent_msec >= UPING_RESEND_MSEC:
		# Unreliable: it may be lost, so resend until answered.
		_uping_sent_msec = now
		_uping_seq += 1
		uping.rpc_id(1, _uping_seq, _nonce + _uping_seq)
	for n in players.get_children():
		var p := n as Player
		var key := String(p.name)
		var s: Dictionary = _sync.get(key, {})
		if s.is_empty():
			_sync[key] = {"first": p.counter, "last": p.counter, "changes": 0, "backwards": 0}
			continue
		if p.counter != s["last"]:
			if p.counter < s["last"]:
				s["backwards"] += 1
			s["changes"] += 1
			s["last"] = p.counter
	if not _reported and _missing().is_empty():
		_reported = true
		var spawned := _player_ids()
		for id in spawned:
			var s: Dictionary = _sync[str(id)]
			_log(
				(
					"MP_CLIENT_SYNC id=%d label=%s first=%d last=%d changes=%d"
					% [
						id,
						(players.get_node(str(id)) as Player).label,
						s["first"],
						s["last"],
						s["changes"]
					]
				)
			)
		_log("MP_CLIENT_SPAWNED ids=%s" % _ids(spawned))
		var summary := {
			"name": player_name,
			"id": _my_id,
			"peers": _peers_seen.size(),
			"greets": _greets.size(),
			"spawned": spawned.size(),
			"synced": _synced_count(),
			"reliable": _reliable_value,
			"unreliable": _unreliable_value,
		}
		if not verbose:
			print(
				(
					(
						"MP_SESSION_ROUND name=%s round=%d id=%d peers=%d greets=%d greets_expected=%d"
						+ " spawned=%d synced=%d reliable=%d unreliable=%d retries=%d reuse=%s"
						+ " transport=%s states=%s"
					)
					% [
						player_name,
						round_no,
						_my_id,
						summary["peers"],
						summary["greets"],
						_expected_greets(),
						summary["spawned"],
						summary["synced"],
						_reliable_value,
						_unreliable_value,
						CONNECT_RETRIES - _retries_left,
						reuse_peer,
						_used_transport,
						_ids(_states)
					]
				)
			)
		report.rpc_id(1, round_no, summary)


func _expected_greets() -> int:
	var n := 0
	for id in _roster:
		if id != _my_id and _greets_with(id):
			n += 1
	return n


func _player_ids() -> Array:
	var ids := []
	for p in players.get_children():
		ids.append(int(String(p.name)))
	ids.sort()
	return ids


func _synced_count() -> int:
	var n := 0
	for id in _roster:
		var s: Dictionary = _sync.get(str(id), {})
		var p := players.get_node_or_null(str(id)) as Player
		if (
			not s.is_empty()
			and s["changes"] >= SYNC_CHANGES_WANTED
			and s["backwards"] == 0
			and p != null
			and p.label == _roster[id]
		):
			n += 1
	return n


## What this session still waits for, in words (empty when its checks passed).
func _missing() -> String:
	var m := []
	if role == "server":
		m.append(
			(
				"state %s, %d/%d registered, %d/%d reported, %d closing"
				% [
					_state,
					_names.size(),
					expected_clients,
					_reports.size(),
					expected_clients,
					_closing_ids.size()
				]
			)
		)
		return ", ".join(m)
	if _finished_round:
		return ""
	if not _saw_server:
		m.append("peer_connected(1)")
	if not _connected_to_server:
		m.append("connected_to_server")
	if _reliable_value < 0:
		m.append("reliable RPC answer")
	if _unreliable_value < 0:
		m.append("unreliable RPC answer")
	if _roster.is_empty():
		m.append("roster")
		return ", ".join(m)
	var others := 0
	var seen := 0
	for id in _roster:
		if id == _my_id:
			continue
		others += 1
		if _peers_seen.has(id):
			seen += 1
	if seen != others:
		m.append("peer_connected of %d/%d other peers" % [others - seen, others])
	if _greets.size() != _expected_greets():
		m.append(
			"greetings from %d/%d peers" % [_expected_greets() - _greets.size(), _expected_greets()]
		)
	var roster_ids := _roster.keys()
	roster_ids.sort()
	if _player_ids() != roster_ids:
		m.append("spawned players %s (have %s)" % [_ids(roster_ids), _ids(_player_ids())])
	elif _synced_count() != _roster.size():
		var example := ""
		for id in _roster:
			var p := players.get_node_or_null(str(id)) as Player
			example = (
				"player %d: %s label=%s roster=%s"
				% [id, _sync.get(str(id), {}), p.label, _roster[id]]
			)
			break
		m.append(
			(
				"synchronized counter changes and labels on %d/%d players (%s)"
				% [_roster.size() - _synced_count(), _roster.size(), example]
			)
		)
	return ", ".join(m)


# --- Both -----------------------------------------------------------------------------------


func _on_peer_connected(id: int) -> void:
	if role == "server":
		_server_peer_connected(id)
	else:
		_client_peer_connected(id)


func _on_peer_disconnected(id: int) -> void:
	if role == "server":
		_server_peer_disconnected(id)
	else:
		_log("MP_CLIENT_PEER_DISCONNECTED id=%d" % id)


func _fail(reason: String) -> void:
	if _done:
		return
	var who := "server" if role == "server" else "client %s" % player_name
	printerr("MP_FAIL %s: %s" % [who, reason])
	_finish(false, reason)


func _finish(ok: bool, reason: String) -> void:
	if _done:
		return
	_done = true
	if peer:
		peer.close()
	finished.emit(ok, reason)


func _secs() -> float:
	return (Time.get_ticks_msec() - _start_msec) / 1000.0


func _log(text: String) -> void:
	if verbose:
		print(text)


static func _ids(ids: Array) -> String:
	return ",".join(ids.map(func(i): return str(i)))
