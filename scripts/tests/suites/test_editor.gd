extends FabricTestCase
## Editor integration of the addon: its project settings (registered with type, hint and default,
## removed on disable when still at their default, read at run time), its class icons, and the
## missing-library message. Runs the same functions the editor plugin calls (fabric_settings.gd);
## the plugin itself needs the editor, which the test runner is not.

const SETTINGS := preload("res://addons/multiplayer_fabric/fabric_settings.gd")
const PLUGIN := preload("res://addons/multiplayer_fabric/plugin.gd")
const GDEXTENSION := "res://addons/multiplayer_fabric/multiplayer_fabric.gdextension"
const ADDON_DIR := "res://addons/multiplayer_fabric/"


func test_settings_are_registered_with_their_hints_and_removed_at_default() -> void:
	for s in SETTINGS.all():
		check(not ProjectSettings.has_setting(s.name), "%s not set before the plugin" % s.name)
	SETTINGS.register()
	var listed := {}
	for p in ProjectSettings.get_property_list():
		listed[p.name] = p
	for s in SETTINGS.all():
		check_eq(ProjectSettings.get_setting(s.name), s.default, "%s defaults" % s.name)
		check_eq(ProjectSettings.property_get_revert(s.name), s.default, "%s reverts" % s.name)
		check(listed.has(s.name), "%s in the property list" % s.name)
		if listed.has(s.name):
			var p: Dictionary = listed[s.name]
			check_eq(p.type, s.type, "%s type" % s.name)
			check_eq(p.hint, s.hint, "%s hint" % s.name)
			check_eq(p.hint_string, s.hint_string, "%s hint string" % s.name)
			var basic: bool = p.usage & PROPERTY_USAGE_EDITOR_BASIC_SETTING != 0
			check_eq(basic, s.basic, "%s shown without Advanced Settings" % s.name)
	var url_hint: Dictionary = listed.get(SETTINGS.REGISTRY_URL, {})
	check_eq(url_hint.get("hint_string"), "http://host:port", "the URL's placeholder")
	var link: Dictionary = listed.get("multiplayer_fabric/zone/link_mode", {})
	check_eq(link.get("hint"), PROPERTY_HINT_ENUM, "link_mode is a choice")
	check_eq(link.get("hint_string"), "none,memory,network", "link_mode's choices")

	# A value the user changed survives a second enable and the disable.
	ProjectSettings.set_setting(SETTINGS.REGISTRY_URL, "http://fabric.example:9000")
	SETTINGS.register()
	check_eq(
		ProjectSettings.get_setting(SETTINGS.REGISTRY_URL),
		"http://fabric.example:9000",
		"enabling again keeps the user's value"
	)
	check_eq(SETTINGS.unregister(), 1, "one setting kept on disable")
	check(ProjectSettings.has_setting(SETTINGS.REGISTRY_URL), "the changed URL is kept")
	for s in SETTINGS.all():
		if s.name != SETTINGS.REGISTRY_URL:
			check(not ProjectSettings.has_setting(s.name), "%s removed on disable" % s.name)
	ProjectSettings.set_setting(SETTINGS.REGISTRY_URL, null)
	check_eq(SETTINGS.unregister(), 0, "nothing left")


func test_zone_setting_defaults_are_the_zones_own() -> void:
	# With no setting in the project, a new FabricZone holds its built-in defaults: the table
	# must give the same values, or registering the settings would change every zone.
	var zone := FabricZone.new()
	var checked := 0
	for s in SETTINGS.SETTINGS:
		if not s.name.begins_with("multiplayer_fabric/zone/"):
			continue
		var setting: String = s.name.get_file()
		var property := "zone_id" if setting == "zone_index" else setting
		check(property in zone, "FabricZone has `%s`" % property)
		check_eq(zone.get(property), s.default, "FabricZone's default %s" % property)
		checked += 1
	check_eq(checked, 21, "every zone setting FabricZone reads is listed")
	zone.free()


func test_a_zone_reads_a_registered_setting() -> void:
	SETTINGS.register()
	ProjectSettings.set_setting("multiplayer_fabric/zone/tick_hz", 30)
	var zone := FabricZone.new()
	check_eq(zone.tick_hz, 30, "FabricZone takes tick_hz from the project setting")
	zone.free()
	ProjectSettings.set_setting("multiplayer_fabric/zone/tick_hz", 20)
	check_eq(SETTINGS.unregister(), 0, "all back at their defaults and removed")


func test_a_peer_takes_its_defaults_from_the_transport_settings() -> void:
	var plain := FabricMMOGTransportPeer.new()
	check_eq(plain.transport, SETTINGS.value("multiplayer_fabric/transport/mode"), "mode default")
	check_eq(
		plain.connect_timeout_msec,
		SETTINGS.value("multiplayer_fabric/transport/connect_timeout_msec"),
		"timeout default"
	)
	ProjectSettings.set_setting("multiplayer_fabric/transport/mode", "websocket")
	ProjectSettings.set_setting("multiplayer_fabric/transport/connect_timeout_msec", 2000)
	var configured := FabricMMOGTransportPeer.new()
	check_eq(configured.transport, "websocket", "a new peer takes the mode setting")
	check_eq(configured.connect_timeout_msec, 2000, "and the timeout setting")
	check_eq(plain.transport, "auto", "a peer made before keeps its own")
	ProjectSettings.set_setting("multiplayer_fabric/transport/mode", null)
	ProjectSettings.set_setting("multiplayer_fabric/transport/connect_timeout_msec", null)


func test_limits_are_settings_the_peer_and_the_zone_read() -> void:
	var limits: Array[Dictionary] = []
	for s in SETTINGS.all():
		if s.name.begins_with("multiplayer_fabric/limits/"):
			limits.append(s)
	check_eq(limits.size(), 7, "every server limit is a project setting")
	var plain := FabricNetLimits.new()
	for s in limits:
		var property: String = s.name.get_file()
		check(property in plain, "FabricNetLimits has `%s`" % property)
		check_eq(plain.get(property), s.default, "FabricNetLimits' default %s" % property)
		check_eq(s.hint, PROPERTY_HINT_RANGE, "%s is a range" % property)
	check_eq(plain.max_sessions_per_address, 128, "the documented default")
	check_eq(plain.check(), "", "the defaults are usable")
	SETTINGS.register()
	ProjectSettings.set_setting("multiplayer_fabric/limits/max_sessions_per_address", 3)
	ProjectSettings.set_setting("multiplayer_fabric/limits/send_budget", 65536)
	var peer := FabricMMOGTransportPeer.new()
	check_eq(peer.limits.max_sessions_per_address, 3, "a new peer takes the project's cap")
	check_eq(peer.limits.send_budget, 65536, "and its budget")
	check_eq(plain.max_sessions_per_address, 128, "a resource made before keeps its own")
	var zone := FabricZone.new()
	check_eq(zone.limits, null, "a zone without limits of its own reads the project's at start")
	zone.free()
	peer.limits.max_sessions = 0
	check(peer.limits.check().contains("max_sessions"), "a zero cap is refused, named")
	check_eq(peer.create_server(0, "127.0.0.1"), ERR_INVALID_PARAMETER, "create_server refuses it")
	ProjectSettings.set_setting("multiplayer_fabric/limits/max_sessions_per_address", 128)
	ProjectSettings.set_setting("multiplayer_fabric/limits/send_budget", 4194304)
	check_eq(SETTINGS.unregister(), 0, "all back at their defaults and removed")


func test_every_class_has_a_16px_svg_icon() -> void:
	var ext := ConfigFile.new()
	check_eq(ext.load(GDEXTENSION), OK, "the .gdextension parses")
	check(ext.has_section("icons"), "the .gdextension has [icons]")
	var icons := {}
	for cls in ext.get_section_keys("icons") if ext.has_section("icons") else []:
		check(ClassDB.class_exists(cls), "[icons] %s is a class of the extension" % cls)
		icons[cls] = String(ext.get_value("icons", cls))
	for cls in ["FabricMMOGTransportPeer", "FabricZone"]:
		check(icons.has(cls), "%s has an icon" % cls)
	var scripted := 0
	for g in ProjectSettings.get_global_class_list():
		if String(g.path).begins_with(ADDON_DIR):
			check(not String(g.icon).is_empty(), "%s has an @icon" % g.class)
			icons[g.class] = String(g.icon)
			scripted += 1
	check(scripted >= 2, "the addon's GDScript classes are listed (%d)" % scripted)
	for cls in icons:
		var path: String = icons[cls]
		check(path.begins_with(ADDON_DIR + "icons/"), "%s's icon is in the addon" % cls)
		check(FileAccess.file_exists(path), "%s: %s exists" % [cls, path])
		var text := FileAccess.get_file_as_string(path)
		check(text.begins_with("<svg") and text.strip_edges().ends_with("</svg>"), "%s: SVG" % path)
		var xml := XMLParser.new()
		check_eq(xml.open_buffer(text.to_utf8_buffer()), OK, "%s: XML" % path)
		while xml.read() == OK:
			pass
		var image := Image.new()
		check_eq(image.load_svg_from_string(text), OK, "%s renders" % path)
		check_eq(image.get_size(), Vector2i(16, 16), "%s is 16x16" % path)
		check(not image.is_invisible(), "%s draws something" % path)


func test_the_registry_takes_its_url_from_the_setting() -> void:
	var registry := FabricRegistry.new()
	check_eq(registry.backend_url, "", "no URL of its own by default")
	check_eq(registry.effective_url(), "http://127.0.0.1:8080", "the default without the setting")
	var server := TCPServer.new()
	check_eq(server.listen(0, "127.0.0.1"), OK, "a local HTTP server")
	var url := "http://127.0.0.1:%d" % server.get_local_port()
	ProjectSettings.set_setting(SETTINGS.REGISTRY_URL, url)
	check_eq(registry.effective_url(), url, "the setting when backend_url is empty")
	runner.add_child(registry)
	var seen := {"request": "", "failed": ""}
	registry.request_failed.connect(
		func(what, status, code, message):
			seen.failed = "%s %d %s %s" % [what, status, code, message]
	)
	_answer_once(server, seen)
	# HTTPRequest's timeout is a Timer: the first frame after the runner's synchronous tests has a
	# delta of seconds and would fire it at once. Let that frame pass first.
	await runner.get_tree().process_frame
	await runner.get_tree().process_frame
	var zones := await registry.list_zones()
	check(await wait_until(func(): return seen.has("done"), 5.0), "the server answered")
	var request_line := String(seen.request).get_slice("\r\n", 0)
	check_eq(request_line, "GET /shards?limit=1000 HTTP/1.1", "asked the server")
	check_eq(zones.size(), 1, "one zone from the server at the setting's URL")
	check_eq(seen.failed, "", "no request failed")
	if zones.size() == 1:
		check_eq(zones[0].get("name"), "zone-from-setting", "the zone it listed")
	registry.backend_url = "http://127.0.0.1:1"
	check_eq(registry.effective_url(), "http://127.0.0.1:1", "its own URL wins over the setting")
	ProjectSettings.set_setting(SETTINGS.REGISTRY_URL, null)
	server.stop()
	registry.queue_free()


func test_the_registry_pins_an_https_backend_by_hash() -> void:
	var crypto := Crypto.new()
	var key := crypto.generate_rsa(2048)
	var cert := crypto.generate_self_signed_certificate(
		key, "CN=127.0.0.1", "20200101000000", "20400101000000"
	)
	var server := TCPServer.new()
	check_eq(server.listen(0, "127.0.0.1"), OK, "a local HTTPS server")
	var registry := FabricRegistry.new()
	registry.backend_url = "https://127.0.0.1:%d" % server.get_local_port()
	runner.add_child(registry)
	var failed := []
	registry.request_failed.connect(
		func(what, status, code, message): failed.append("%d %s %s" % [status, code, message])
	)
	await runner.get_tree().process_frame
	await runner.get_tree().process_frame

	# Without a pin an https:// backend is refused before any connection.
	check_eq((await registry.list_zones()).size(), 0, "nothing listed without a pin")
	check(failed.size() == 1 and "no certificate hash is pinned" in failed[0], "why: %s" % [failed])

	# Pinned by the certificate's hash: the zone list arrives through TLS.
	registry.cert_hash = _der_hash(cert)
	var seen := {}
	_answer_once(server, seen, TLSOptions.server(key, cert))
	var zones := await registry.list_zones()
	check(await wait_until(func(): return seen.has("done"), 5.0), "the server answered")
	check_eq(
		String(seen.get("request", "")).get_slice("\r\n", 0),
		"GET /shards?limit=1000 HTTP/1.1",
		"asked over TLS"
	)
	check_eq(zones.size(), 1, "one zone through the pinned TLS: %s" % [failed])

	# Another certificate's hash: refused, and the reason names the pin.
	var other := crypto.generate_self_signed_certificate(
		crypto.generate_rsa(2048), "CN=other", "20200101000000", "20400101000000"
	)
	registry.cert_hash = _der_hash(other)
	failed.clear()
	seen = {}
	_answer_once(server, seen, TLSOptions.server(key, cert))
	check_eq((await registry.list_zones()).size(), 0, "nothing listed from an unpinned server")
	check(
		failed.size() == 1 and "does not match the pinned hash" in failed[0],
		"a wrong pin is named: %s" % [failed]
	)
	await wait_until(func(): return seen.has("done"), 5.0)
	server.stop()
	registry.queue_free()


# The base64 SHA-256 of a certificate's DER: what a zone or the backend prints as its pin.
func _der_hash(cert: X509Certificate) -> String:
	var b64 := ""
	for line in cert.save_to_string().split("\n"):
		if not line.begins_with("-----"):
			b64 += line.strip_edges()
	var ctx := HashingContext.new()
	ctx.start(HashingContext.HASH_SHA256)
	ctx.update(Marshalls.base64_to_raw(b64))
	return Marshalls.raw_to_base64(ctx.finish())


func test_the_missing_library_message_says_what_to_do() -> void:
	check_eq(PLUGIN.library_problem(), "", "no problem while the library is loaded")


# Accepts one HTTP request on `server` (over TLS with `tls`), stores it in seen.request and
# answers with one zone.
func _answer_once(server: TCPServer, seen: Dictionary, tls: TLSOptions = null) -> void:
	var tree := runner.get_tree()
	var deadline := Time.get_ticks_msec() + 5000
	while not server.is_connection_available() and Time.get_ticks_msec() < deadline:
		await tree.process_frame
	if not server.is_connection_available():
		seen.done = true
		return
	var conn = server.take_connection()
	if tls != null:
		var secure := StreamPeerTLS.new()
		secure.accept_stream(conn, tls)
		while (
			secure.get_status() == StreamPeerTLS.STATUS_HANDSHAKING
			and Time.get_ticks_msec() < deadline
		):
			secure.poll()
			await tree.process_frame
		if secure.get_status() != StreamPeerTLS.STATUS_CONNECTED:
			seen.done = true  # the client refused the handshake
			return
		conn = secure
	var request := PackedByteArray()
	while Time.get_ticks_msec() < deadline:
		conn.poll()
		if conn is StreamPeerTLS and conn.get_status() != StreamPeerTLS.STATUS_CONNECTED:
			seen.done = true  # the client refused the certificate and hung up
			return
		var available: int = conn.get_available_bytes()
		if available > 0:
			request.append_array(conn.get_data(available)[1])
			if request.get_string_from_utf8().contains("\r\n\r\n"):
				break
		await tree.process_frame
	seen.request = request.get_string_from_utf8()
	var body := JSON.stringify({"shards": [{"id": "z1", "name": "zone-from-setting"}]})
	var reply := (
		(
			"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
			% body.to_utf8_buffer().size()
		)
		+ "Connection: close\r\n\r\n"
		+ body
	)
	conn.put_data(reply.to_utf8_buffer())
	if conn is StreamPeerTLS:
		conn.poll()
		conn.disconnect_from_stream()
	else:
		conn.disconnect_from_host()
	seen.done = true
