extends FabricTestCase
## FabricAssetFetcher in the engine: asset ids from a file hash (the backend's `asset_id`), and
## a fetch that cannot reach its backend ends with `failed` and a reason, never `finished`. The
## fetch of a real asset from a real backend: tests/e2e/tests/asset_delivery.rs.

const HASH := "0123456789abcdeffedcba98765432100123456789abcdeffedcba9876543210"
const HIGH := "fedcba98765432100123456789abcdeffedcba98765432100123456789abcdef"


func test_asset_ids_are_the_hashs_first_8_bytes() -> void:
	check_eq(FabricAssetFetcher.asset_id_of_hash(HASH), 0x0123456789abcdef, "asset id")
	check_eq(FabricAssetFetcher.visible_asset_bits(HASH), 0xabcdef, "low 24 bits")
	var high := FabricAssetFetcher.asset_id_of_hash(HIGH)
	check(high < 0, "the top bit set gives a negative int: %d" % high)
	check_eq(high & 0xFFFFFFFF, 0x76543210, "low 32 bits of a negative id")
	check_eq(FabricAssetFetcher.visible_asset_bits(HIGH), 0x543210, "its visible bits")
	check_eq(FabricAssetFetcher.asset_id_of_hash("tree.glb"), 0, "not a hash")
	check_eq(FabricAssetFetcher.visible_asset_bits(HASH.substr(1)), -1, "63 characters")


func test_an_unreachable_backend_fails_with_a_reason() -> void:
	var fetcher := FabricAssetFetcher.new()
	runner.add_child(fetcher)
	var outcome := {}
	fetcher.finished.connect(func(path: String) -> void: outcome["finished"] = path)
	fetcher.failed.connect(func(reason: String) -> void: outcome["failed"] = reason)
	# Port 1 on loopback: nothing listens there.
	var cache := OS.get_temp_dir().path_join("fabric-fetcher-test-%d" % OS.get_process_id())
	check_eq(fetcher.fetch("http://127.0.0.1:1", HASH, cache), OK, "fetch starts")
	check(fetcher.is_busy(), "busy while it runs")
	check_eq(fetcher.fetch("http://127.0.0.1:1", HASH, cache), ERR_BUSY, "one at a time")
	var ended := await wait_until(func() -> bool: return not outcome.is_empty(), 20.0)
	check(ended, "the fetch ended")
	check(not outcome.has("finished"), "nothing finished: %s" % outcome)
	var reason: String = outcome.get("failed", "")
	check("127.0.0.1:1" in reason, "the reason names the backend: %s" % reason)
	check(not fetcher.is_busy(), "not busy once failed")
	fetcher.queue_free()


func test_https_needs_a_pinned_certificate_hash() -> void:
	var cache := OS.get_temp_dir().path_join("fabric-fetcher-tls-%d" % OS.get_process_id())
	var fetcher := FabricAssetFetcher.new()
	runner.add_child(fetcher)
	fetcher.backend_cert_hash = "not a hash"
	check_eq(
		fetcher.fetch("https://127.0.0.1:1", HASH, cache),
		ERR_INVALID_PARAMETER,
		"a malformed pin is refused at once"
	)
	check(not fetcher.is_busy(), "nothing started")
	# No pin for an https:// backend: refused by the fetch with the reason, nothing fetched.
	fetcher.backend_cert_hash = ""
	var outcome := {}
	fetcher.finished.connect(func(path: String) -> void: outcome["finished"] = path)
	fetcher.failed.connect(func(reason: String) -> void: outcome["failed"] = reason)
	check_eq(fetcher.fetch("https://127.0.0.1:1", HASH, cache), OK, "fetch starts")
	var ended := await wait_until(func() -> bool: return not outcome.is_empty(), 20.0)
	check(ended, "the fetch ended")
	check(not outcome.has("finished"), "nothing finished: %s" % outcome)
	var reason: String = outcome.get("failed", "")
	check("no certificate hash is pinned" in reason, "the reason says why: %s" % reason)
	fetcher.queue_free()
