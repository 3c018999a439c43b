class_name FabricTestCase
extends RefCounted
## Base of the GDScript test suites run by res://scenes/tests/test_runner.tscn.
## A suite is a file in res://scripts/tests/suites/ whose methods named test_* are the tests;
## a test may `await`. It fails when a check fails or a script error happens (the wrapper stops
## Godot on "SCRIPT ERROR").

var failures: Array[String] = []
## The runner's node, for tests that need the scene tree (frames, timers, child nodes).
var runner: Node


func check(condition: bool, message: String) -> void:
	if not condition:
		failures.append(message)


func check_eq(actual: Variant, expected: Variant, message: String) -> void:
	if actual != expected:
		failures.append(
			"%s: expected %s, got %s" % [message, var_to_str(expected), var_to_str(actual)]
		)


## Polls `step` (a Callable returning bool) every frame until it returns true or `seconds` pass.
func wait_until(step: Callable, seconds: float) -> bool:
	var deadline := Time.get_ticks_msec() + int(seconds * 1000.0)
	while Time.get_ticks_msec() < deadline:
		if step.call():
			return true
		await runner.get_tree().process_frame
	return false
