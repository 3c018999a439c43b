extends FabricTestCase
## FabricZone in the scene tree: defaults, start on a free port, ticking.


func test_defaults_match_the_design() -> void:
	var zone := FabricZone.new()
	check_eq(zone.port, 7443, "default port")
	check_eq(zone.tick_hz, 20, "default tick rate")
	check_eq(zone.tick, 0, "not ticking yet")
	zone.free()


func test_starts_and_ticks_at_its_rate() -> void:
	var zone := FabricZone.new()
	zone.port = 0
	zone.bind_address = "127.0.0.1"
	zone.zone_id = 3
	runner.add_child(zone)
	check(zone.get_bound_port() > 0, "listening on a free port")
	check_eq(zone.cert_hash.length(), 44, "certificate hash published")
	var start := Time.get_ticks_msec()
	var ticked := await wait_until(func(): return zone.tick >= 10, 5.0)
	var elapsed := Time.get_ticks_msec() - start
	check(ticked, "10 ticks happened")
	# 10 ticks at 20 Hz take about 500 ms of process time; a wide band keeps this from flaking.
	check(elapsed >= 350, "ticks are paced by tick_hz, not by frames (took %d ms)" % elapsed)
	zone.queue_free()
