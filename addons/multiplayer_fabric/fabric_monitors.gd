@icon("res://addons/multiplayer_fabric/icons/FabricMonitors.svg")
class_name FabricMonitors
extends Node
## Shows a FabricMMOGTransportPeer's traffic in Godot's Debugger > Monitors tab (custom
## `Performance` monitors), since Godot's own network profiler does not see custom peers.
## Add it to the tree and give it the peer; it registers its monitors when it enters the tree
## and removes them when it leaves:
##
## [codeblock]
## var monitors := FabricMonitors.new()
## monitors.peer = peer                    # a FabricMMOGTransportPeer
## add_child(monitors)                     # "Fabric/rtt_msec", "Fabric/packets_sent", ...
## [/codeblock]
## Monitors are named [code]<prefix><stat>[/code] for each key of
## [method FabricMMOGTransportPeer.get_stats] that is a number; a monitor whose peer is gone
## reads 0.

## The numeric statistics shown, in this order.
const STATS: Array[String] = [
	"rtt_msec",
	"peers",
	"packets_sent",
	"packets_received",
	"bytes_sent",
	"bytes_received",
	"stale_dropped",
	"send_errors",
]

## Prefix of the monitor names (the part before the slash becomes the group in the editor).
@export var prefix := "Fabric/"
## The peer to watch.
var peer: FabricMMOGTransportPeer

var _registered: Array[StringName] = []


func _enter_tree() -> void:
	for stat in STATS:
		var id := StringName(prefix + stat)
		if Performance.has_custom_monitor(id):
			push_warning(
				"FabricMonitors: a monitor named %s exists already; set another prefix" % id
			)
			continue
		Performance.add_custom_monitor(id, _read.bind(stat))
		_registered.append(id)


func _exit_tree() -> void:
	for id in _registered:
		if Performance.has_custom_monitor(id):
			Performance.remove_custom_monitor(id)
	_registered.clear()


## The names of the monitors this node registered.
func monitor_names() -> Array[StringName]:
	return _registered.duplicate()


func _read(stat: String) -> float:
	if peer == null:
		return 0.0
	return float(peer.get_stats().get(stat, 0))
