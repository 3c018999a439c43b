extends Node
## Transport benchmark, client side. Connects with the peer under test, then runs three phases
## over SceneMultiplayer.send_bytes (the path RPCs take), each bracketed by a stat exchange that
## reads both processes' CPU ticks from /proc/self/stat:
##
## - `unreliable`: --messages echoes sent unreliably at --rate per second; RTT of each echo.
## - `reliable`: the same, reliable.
## - `throughput`: --burst reliable echoes (default --messages) as fast as a window of --window
##   in flight allows; its CPU ticks give the CPU per message.
##
## Each phase prints one `BENCH_RESULT {json}` line with every round trip in microseconds
## (`rtt_us`; the driver computes the percentiles); `BENCH_DONE` at the end, then quits 0.
## Connection errors or --timeout seconds without finishing quit 1.
##
## User arguments: --transport T --host ADDR --port P [--cert-hash H] [--messages N] [--rate R]
##                 [--burst N] [--window W] [--drain S] [--fps N] [--phase-us P] [--timeout S]

const Common := preload("res://scripts/bench/bench_common.gd")
const PHASES := [
	{"name": "unreliable", "reliable": false, "paced": true},
	{"name": "reliable", "reliable": true, "paced": true},
	{"name": "throughput", "reliable": true, "paced": false},
]

var _messages := 2000
var _burst := 2000
var _count := 2000  # messages in the current phase
var _rate := 500.0
var _window := 64
var _drain_usec := 2000000
var _deadline_msec := 0
var _grid := Vector2i.ZERO  # main-loop pacing, see Common.setup_pacing
var _transport := ""

var _connected := false
var _phase := -1
var _step := ""  # "stat_before", "run", "stat_after"
var _stat_waiting := false
var _srv_ticks0 := 0
var _cli_ticks0 := 0
var _t0 := 0
var _t_last_send := 0
var _t_last_recv := 0
var _sent := 0
var _recv := 0
var _dups := 0
var _seen := PackedByteArray()
var _rtts := PackedInt64Array()  # round trip of each echo, microseconds
var _msg := PackedByteArray()


func _ready() -> void:
	var args := Common.parse_args()
	_grid = Common.setup_pacing(args)
	_messages = int(args.get("messages", "2000"))
	_burst = int(args.get("burst", str(_messages)))
	_rate = float(args.get("rate", "500"))
	_window = int(args.get("window", "64"))
	_drain_usec = int(float(args.get("drain", "2")) * 1e6)
	_deadline_msec = Time.get_ticks_msec() + int(args.get("timeout", "120")) * 1000
	_transport = args.get("transport", "")
	_msg.resize(Common.MESSAGE_SIZE)
	var peer := Common.make_client(
		_transport,
		args.get("host", "127.0.0.1"),
		int(args.get("port", "0")),
		args.get("cert-hash", "")
	)
	if peer == null:
		get_tree().quit(1)
		return
	var mp := multiplayer as SceneMultiplayer
	mp.multiplayer_peer = peer
	mp.peer_packet.connect(_on_packet)
	mp.connected_to_server.connect(func(): _connected = true)
	mp.connection_failed.connect(func(): _fail("connection failed"))
	mp.server_disconnected.connect(func(): _fail("server disconnected"))


func _process(_delta: float) -> void:
	_frame()
	Common.end_frame(_grid)


func _frame() -> void:
	if Time.get_ticks_msec() > _deadline_msec:
		_fail(
			"timed out in phase %d step %s (sent %d, received %d)" % [_phase, _step, _sent, _recv]
		)
		return
	if not _connected:
		return
	if _phase < 0:
		_start_phase(0)
	if _step == "run":
		_run_step()


func _start_phase(i: int) -> void:
	_phase = i
	_count = _messages if PHASES[i].paced else _burst
	_sent = 0
	_recv = 0
	_dups = 0
	_seen = PackedByteArray()
	_seen.resize(_count)
	_rtts = PackedInt64Array()
	_step = "stat_before"
	_send_stat()


func _send_stat() -> void:
	_msg.fill(0)
	_msg[0] = Common.KIND_STAT
	_msg[1] = _phase
	_stat_waiting = true
	(multiplayer as SceneMultiplayer).send_bytes(_msg, 1, MultiplayerPeer.TRANSFER_MODE_RELIABLE, 0)


func _send_echo(reliable: bool) -> void:
	_msg.fill(0)
	_msg[0] = Common.KIND_ECHO
	_msg[1] = _phase | (0x80 if reliable else 0)
	_msg.encode_u32(4, _sent)
	var now := Time.get_ticks_usec()
	_msg.encode_u64(8, now)
	_t_last_send = now
	_sent += 1
	var mode := (
		MultiplayerPeer.TRANSFER_MODE_RELIABLE
		if reliable
		else MultiplayerPeer.TRANSFER_MODE_UNRELIABLE
	)
	(multiplayer as SceneMultiplayer).send_bytes(_msg, 1, mode, 0)


func _run_step() -> void:
	var ph: Dictionary = PHASES[_phase]
	var now := Time.get_ticks_usec()
	if ph.paced:
		var due := mini(_count, int((now - _t0) * _rate / 1e6) + 1)
		while _sent < due:
			_send_echo(ph.reliable)
	else:
		while _sent < _count and _sent - _recv < _window:
			_send_echo(ph.reliable)
	var finished := _sent == _count and (_recv == _count or now - _t_last_send > _drain_usec)
	if finished:
		_step = "stat_after"
		_send_stat()


func _on_packet(_from: int, data: PackedByteArray) -> void:
	var now := Time.get_ticks_usec()
	if data.size() < Common.MESSAGE_SIZE:
		return
	if data[0] == Common.KIND_STAT and _stat_waiting:
		_stat_waiting = false
		var srv := data.decode_s64(16)
		if _step == "stat_before":
			_srv_ticks0 = srv
			_cli_ticks0 = Common.cpu_ticks()
			_t0 = Time.get_ticks_usec()
			_t_last_recv = _t0
			_step = "run"
		elif _step == "stat_after":
			_report(srv)
			if _phase + 1 < PHASES.size():
				_start_phase(_phase + 1)
			else:
				_finish()
		return
	if data[0] != Common.KIND_ECHO or (data[1] & 0x7f) != _phase:
		return
	var seq := data.decode_u32(4)
	if seq >= _count:
		return
	if _seen[seq]:
		_dups += 1
		return
	_seen[seq] = 1
	_recv += 1
	_t_last_recv = now
	_rtts.append(now - data.decode_u64(8))


func _report(srv_ticks1: int) -> void:
	var ph: Dictionary = PHASES[_phase]
	var cli_ticks1 := Common.cpu_ticks()
	var busy_sec := maxf((_t_last_recv - _t0) / 1e6, 1e-6)
	var result := {
		"transport": _transport,
		"phase": ph.name,
		"reliable": ph.reliable,
		"messages": _count,
		"received": _recv,
		"duplicates": _dups,
		# Every round trip in arrival order (µs); fabric-bench computes the percentiles.
		"rtt_us": Array(_rtts),
		"seconds": busy_sec,
		"msgs_per_sec": _recv / busy_sec,
		"client_cpu_ticks": cli_ticks1 - _cli_ticks0,
		"server_cpu_ticks": srv_ticks1 - _srv_ticks0,
	}
	print("BENCH_RESULT ", JSON.stringify(result))


func _finish() -> void:
	_msg.fill(0)
	_msg[0] = Common.KIND_BYE
	_msg[1] = 0
	(multiplayer as SceneMultiplayer).send_bytes(_msg, 1, MultiplayerPeer.TRANSFER_MODE_RELIABLE, 0)
	print("BENCH_DONE")
	_step = "done"
	await get_tree().create_timer(0.3).timeout
	multiplayer.multiplayer_peer.close()
	multiplayer.multiplayer_peer = null
	get_tree().quit(0)


func _fail(why: String) -> void:
	if _step == "done":
		return
	_step = "done"
	printerr("BENCH_ERROR client: ", why)
	if multiplayer.multiplayer_peer != null:
		multiplayer.multiplayer_peer.close()
		multiplayer.multiplayer_peer = null
	get_tree().quit(1)
