@icon("res://addons/multiplayer_fabric/icons/FabricRegistry.svg")
class_name FabricRegistry
extends Node
## Client side of the Multiplayer Fabric zone registry (the `fabric-backend` service): list the
## live zones, and get a join token for one. Add it to the scene tree (it uses HTTPRequest),
## then `await` its methods:
##
## [codeblock]
## var registry := FabricRegistry.new()
## registry.backend_url = "http://127.0.0.1:8080"
## registry.api_key = my_api_key            # the player's own account key, never a server secret
## add_child(registry)
## var zones := await registry.list_zones()
## var token := await registry.issue_join_token(zones[0].id)
## peer.create_client(registry.zone_url(zones[0]), registry.zone_pins(zones[0]))
## [/codeblock]
## A backend that serves HTTPS (`fabric-backend --tls-self-signed DIR`) is reached with
## `backend_url = "https://host:port"` and [member cert_hash] set to the hash its start-up line
## prints: the certificate is pinned by that hash, as zones pin it (no certificate authority).
## Zones replace their certificate every few days with one they announced a period before;
## [method zone_pins] pins both, so a zone listed now stays reachable across its next rotation.
## Failures return an empty result and emit [signal request_failed] with the backend's error code.

## A request failed: what was asked, the HTTP status (0 = no answer), the backend's stable error
## code and its message.
signal request_failed(what: String, status: int, code: String, message: String)

const _SETTINGS := preload("fabric_settings.gd")
## Zones asked for per request by [method list_zones] (the backend's largest page).
const PAGE_SIZE := 1000
## Pages [method list_zones] follows at most (100,000 zones).
const MAX_PAGES := 100

## The backend, `http://host:port`. Empty: the project setting
## `multiplayer_fabric/registry/url` (default `http://127.0.0.1:8080`), see [method effective_url].
@export var backend_url := ""
## The player's account API key (`fak_...`), sent as a bearer credential.
@export var api_key := ""
## The backend's certificate hash (base64 SHA-256 from its start-up line, several
## comma-separated while it replaces its certificate): required for an `https://` backend,
## whose certificate must then be a pinned one; empty for `http://`.
@export var cert_hash := ""
## Seconds before a request gives up.
@export var timeout_sec := 5.0


## Zones heard from in the last 30 s: an Array of Dictionaries with `id`, `name`, `map`,
## `address`, `port`, `cert_hash`, `current_users`, `max_users`, ..., oldest registration first.
## [param map] keeps only that map's zones. The backend answers in pages of at most
## [constant PAGE_SIZE]; this follows them all (up to [constant MAX_PAGES]) and returns what it
## listed so far when a page fails (see [signal request_failed]).
func list_zones(map := "") -> Array:
	var zones := []
	var after := ""
	for _page in MAX_PAGES:
		var path := "/shards?limit=%d" % PAGE_SIZE
		if not map.is_empty():
			path += "&map=" + map.uri_encode()
		if not after.is_empty():
			path += "&after=" + after.uri_encode()
		var r := await _request("list zones", HTTPClient.METHOD_GET, path, null)
		if r.status != 200:
			break
		zones.append_array(r.body.get("shards", []))
		var next = r.body.get("next")
		if typeof(next) != TYPE_STRING or String(next).is_empty():
			break
		after = next
	return zones


## A short-lived join token for `zone_id`, or "" when refused (see [signal request_failed]).
func issue_join_token(zone_id: String) -> String:
	var r := await _request(
		"issue a join token", HTTPClient.METHOD_POST, "/tokens/join", {"zone_id": zone_id}
	)
	if r.status != 200:
		return ""
	return String(r.body.get("token", ""))


## Creates an account and returns its API key (shown once), or "" when refused.
func create_account(account_name: String) -> String:
	var r := await _request(
		"create an account", HTTPClient.METHOD_POST, "/accounts", {"name": account_name}
	)
	if r.status != 201:
		return ""
	return String(r.body.get("api_key", ""))


## The certificate hashes to pin for a zone from [method list_zones]: its current hash and, when
## it announced one, the hash of the certificate it installs next, comma-separated (what
## [method FabricMMOGTransportPeer.create_client] takes).
func zone_pins(zone: Dictionary) -> String:
	var pins := String(zone.get("cert_hash", ""))
	var next = zone.get("next_cert_hash")
	if next is String and not next.is_empty():
		pins += "," + next
	return pins


## The WebTransport URL of a zone from [method list_zones].
func zone_url(zone: Dictionary) -> String:
	var host := String(zone.get("address", "127.0.0.1"))
	if ":" in host:
		host = "[%s]" % host
	return "https://%s:%d/wt" % [host, int(zone.get("port", 7443))]


## The backend this node talks to: [member backend_url], or when that is empty the project
## setting `multiplayer_fabric/registry/url`, or `http://127.0.0.1:8080` when neither is set.
func effective_url() -> String:
	if not backend_url.is_empty():
		return backend_url
	return String(_SETTINGS.value(_SETTINGS.REGISTRY_URL))


func _request(what: String, method: int, path: String, body) -> Dictionary:
	var url := effective_url()
	if url.begins_with("https://") or not cert_hash.is_empty():
		return await _request_pinned(what, url, method, path, body)
	var http := HTTPRequest.new()
	http.timeout = timeout_sec
	add_child(http)
	var headers := PackedStringArray(["Accept: application/json"])
	if not api_key.is_empty():
		headers.append("Authorization: Bearer " + api_key)
	var data := ""
	if body != null:
		headers.append("Content-Type: application/json")
		data = JSON.stringify(body)
	var err := http.request(url + path, headers, method, data)
	if err != OK:
		http.queue_free()
		request_failed.emit(what, 0, "request_error", error_string(err))
		return {"status": 0, "body": {}}
	var res: Array = await http.request_completed
	http.queue_free()
	var status: int = res[1]
	var parsed = JSON.parse_string((res[3] as PackedByteArray).get_string_from_utf8())
	var reply: Dictionary = parsed if typeof(parsed) == TYPE_DICTIONARY else {}
	if res[0] != HTTPRequest.RESULT_SUCCESS:
		request_failed.emit(what, 0, "unreachable", "no answer from %s (result %d)" % [url, res[0]])
		return {"status": 0, "body": {}}
	if status >= 400:
		var e: Dictionary = reply.get("error", {})
		request_failed.emit(what, status, String(e.get("code", "")), String(e.get("message", "")))
	return {"status": status, "body": reply}


# HTTPRequest cannot pin a certificate by hash: an `https://` backend is asked through the
# extension's FabricRegistryRequest (the zones' pinned TLS), polled once a frame.
func _request_pinned(what: String, url: String, method: int, path: String, body) -> Dictionary:
	var methods := {
		HTTPClient.METHOD_GET: "GET",
		HTTPClient.METHOD_POST: "POST",
		HTTPClient.METHOD_PUT: "PUT",
		HTTPClient.METHOD_DELETE: "DELETE",
	}
	var request := FabricRegistryRequest.new()
	var data := "" if body == null else JSON.stringify(body)
	var refused := request.start(
		url, cert_hash, methods.get(method, "GET"), path, api_key, data, timeout_sec
	)
	if not refused.is_empty():
		request_failed.emit(what, 0, "bad_url", refused)
		return {"status": 0, "body": {}}
	while not request.is_done():
		await get_tree().process_frame
	var status := request.status()
	if status == 0:
		request_failed.emit(what, 0, "unreachable", request.error())
		return {"status": 0, "body": {}}
	var parsed = JSON.parse_string(request.body())
	var reply: Dictionary = parsed if typeof(parsed) == TYPE_DICTIONARY else {}
	if status >= 400:
		var e: Dictionary = reply.get("error", {})
		request_failed.emit(what, status, String(e.get("code", "")), String(e.get("message", "")))
	return {"status": status, "body": reply}
