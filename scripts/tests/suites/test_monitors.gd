extends FabricTestCase
## FabricMonitors: the peer's statistics as Performance custom monitors (Debugger > Monitors).


func test_monitors_show_the_peers_traffic_and_go_away_with_the_node() -> void:
	var server := FabricMMOGTransportPeer.new()
	check_eq(server.create_server(0, "127.0.0.1"), OK, "create_server")
	var client := FabricMMOGTransportPeer.new()
	client.transport = "webtransport"
	var url := "https://127.0.0.1:%d/wt" % server.get_bound_port()
	check_eq(client.create_client(url, server.get_cert_hash()), OK, "create_client")
	var joined := await wait_until(
		func():
			server.poll()
			client.poll()
			return client.get_connection_status() == MultiplayerPeer.CONNECTION_CONNECTED,
		5.0
	)
	check(joined, "client joined")

	var monitors := FabricMonitors.new()
	monitors.peer = client
	monitors.prefix = "FabricTest/"
	runner.add_child(monitors)
	check_eq(monitors.monitor_names().size(), FabricMonitors.STATS.size(), "one monitor per stat")
	check(Performance.has_custom_monitor(&"FabricTest/packets_sent"), "packets_sent registered")

	client.set_transfer_mode(MultiplayerPeer.TRANSFER_MODE_RELIABLE)
	client.set_target_peer(1)
	for i in 4:
		check_eq(client.put_packet(PackedByteArray([1, 2, 3, 4, 5])), OK, "put_packet")
	check_eq(Performance.get_custom_monitor(&"FabricTest/packets_sent"), 4.0, "4 packets sent")
	check_eq(Performance.get_custom_monitor(&"FabricTest/bytes_sent"), 20.0, "20 bytes sent")
	check_eq(Performance.get_custom_monitor(&"FabricTest/peers"), 1.0, "joined to the server")
	var measured := await wait_until(
		func():
			server.poll()
			client.poll()
			return Performance.get_custom_monitor(&"FabricTest/rtt_msec") > 0.0,
		5.0
	)
	check(measured, "rtt_msec monitor shows the QUIC round-trip time")

	# A second node with the same prefix does not steal the names.
	var twin := FabricMonitors.new()
	twin.peer = client
	twin.prefix = "FabricTest/"
	runner.add_child(twin)
	check_eq(twin.monitor_names().size(), 0, "names already taken are left alone")
	twin.queue_free()

	runner.remove_child(monitors)
	check(not Performance.has_custom_monitor(&"FabricTest/packets_sent"), "removed with the node")
	monitors.free()
	client.close()
	server.close()
