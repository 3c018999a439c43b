//! The addon's editor plugin in a real headless editor, on a fresh project each run (the addon
//! copied in as a user would): enabling it registers the fabric's project settings with their
//! hints, disabling it removes those still at their default and keeps what the user changed (on
//! disk too), and without the library for this platform it says so and what to do.
//!
//! A second, test-only plugin (`addons/fabric_probe/`) is enabled after ours: once the editor is
//! up it prints what ProjectSettings holds, disables our plugin through `EditorInterface` as the
//! Project Settings > Plugins tab does, prints again and quits the editor. It also saves the
//! project while the plugin is enabled: settings at their default must not clutter `project.godot`.
//!
//! A third probe opens the help page of `FabricZone` as F1 / Search Help does and prints what
//! the page shows: the descriptions written as doc comments in the Rust code must be there (gdext
//! `register-docs`), not the empty entries `--doctool` writes for extension classes.

use std::time::Duration;

use fabric_harness::engine;
use fabric_harness::process::Proc;
use fabric_harness::user_project::UserProject;

const PROBE_CFG: &str = "[plugin]\n\nname=\"Fabric probe\"\ndescription=\"test only\"\n\
author=\"tests\"\nversion=\"1\"\nscript=\"probe.gd\"\n";

const PROBE_GD: &str = r#"@tool
extends EditorPlugin

const URL := "multiplayer_fabric/registry/url"


func _enter_tree() -> void:
	_probe.call_deferred()


func _probe() -> void:
	await get_tree().process_frame
	var hint := "missing"
	for p in ProjectSettings.get_property_list():
		if p.name == "multiplayer_fabric/zone/link_mode":
			hint = "%d:%s" % [p.hint, p.hint_string]
	print("PROBE enabled url=%s port=%s link_hint=%s revert=%s" % [
		ProjectSettings.get_setting(URL, "<none>"),
		ProjectSettings.get_setting("multiplayer_fabric/zone/port", "<none>"),
		hint, ProjectSettings.property_get_revert(URL)])
	ProjectSettings.save()
	var saved := FileAccess.get_file_as_string("res://project.godot")
	print("PROBE saved defaults_in_file=%d" % int(saved.contains("[multiplayer_fabric]")))
	ProjectSettings.set_setting("multiplayer_fabric/zone/port", 9443)
	EditorInterface.set_plugin_enabled("multiplayer_fabric", false)
	print("PROBE disabled url=%s port=%s tick_hz=%s" % [
		ProjectSettings.get_setting(URL, "<none>"),
		ProjectSettings.get_setting("multiplayer_fabric/zone/port", "<none>"),
		ProjectSettings.get_setting("multiplayer_fabric/zone/tick_hz", "<none>")])
	get_tree().quit()
"#;

const HELP_PROBE_GD: &str = r#"@tool
extends EditorPlugin


func _enter_tree() -> void:
	_probe.call_deferred()


func _probe() -> void:
	await get_tree().process_frame
	var script_editor := EditorInterface.get_script_editor()
	script_editor.goto_help("class_name:FabricZone")
	# The page is filled over a few frames (its text is built deferred).
	var text := ""
	for i in 120:
		await get_tree().process_frame
		text = _help_text(script_editor)
		if text.contains("Methods") and text.contains("get_durable_tick"):
			break
	for line in text.split("\n"):
		if not line.strip_edges().is_empty():
			print("HELP ", line.strip_edges())
	print("HELP_END chars=%d" % text.length())
	get_tree().quit()


## The text of the open help page: the script editor's EditorHelp tab and its rich text.
func _help_text(root: Node) -> String:
	for help in root.find_children("*", "EditorHelp", true, false):
		if help is Control and help.visible:
			for label in help.find_children("*", "RichTextLabel", true, false):
				var text: String = label.get_parsed_text()
				if not text.is_empty():
					return text
	return ""
"#;

/// A fresh project with our plugin and the probe enabled. With the library, it is registered and
/// imported first as the install docs say (the first import would abort otherwise:
/// godotengine/godot#111048); the import runs the editor's plugins, so the probe is added after it.
fn project_with_plugins(name: &str, with_library: bool) -> (UserProject, engine::Engine) {
    project_with_probe(name, with_library, PROBE_GD)
}

/// A fresh project with our plugin and a probe plugin running `probe` enabled.
fn project_with_probe(
    name: &str,
    with_library: bool,
    probe: &str,
) -> (UserProject, engine::Engine) {
    let eng = engine::prepare(false).expect("engine ready");
    let project = UserProject::new(name).expect("fresh project");
    if with_library {
        project.register_extensions(&eng).expect("register tool");
        let (out, log) = project.import(&eng).expect("import");
        assert!(out.success(), "the import exits 0: {out:?}\n{log}");
    } else {
        let bin = project.dir().join("addons/multiplayer_fabric/bin");
        std::fs::remove_dir_all(&bin).expect("remove bin/");
    }
    let godot = std::fs::read_to_string(project.dir().join("project.godot")).expect("read");
    project
        .write(
            "project.godot",
            &format!(
                "{godot}\n[editor_plugins]\n\nenabled=PackedStringArray(\
                 \"res://addons/multiplayer_fabric/plugin.cfg\", \
                 \"res://addons/fabric_probe/plugin.cfg\")\n"
            ),
        )
        .expect("enable the plugins");
    project
        .write("addons/fabric_probe/plugin.cfg", PROBE_CFG)
        .expect("probe cfg");
    project
        .write("addons/fabric_probe/probe.gd", probe)
        .expect("probe script");
    (project, eng)
}

/// Runs the editor until the probe quits it; returns its output. `strict`: fail on any fatal
/// line (script errors, a library that does not load).
fn run_editor(project: &UserProject, eng: &engine::Engine, strict: bool) -> String {
    let cmd = project.command(eng, &["--editor", "--quit-after", "3000"]);
    let mut p = Proc::spawn("editor", cmd, strict).expect("spawn the editor");
    let out = p.wait(Duration::from_secs(180));
    let log = p.output();
    assert!(!out.timed_out, "the editor quits: {out:?}\n{log}");
    if strict {
        assert!(out.success(), "the editor exits 0: {out:?}\n{log}");
    }
    log
}

fn probe_line<'a>(log: &'a str, stage: &str) -> &'a str {
    let prefix = format!("PROBE {stage} ");
    log.lines()
        .find_map(|l| l.trim().strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("the probe printed no `{stage}` line\n{log}"))
}

#[test]
fn enabling_registers_the_settings_and_disabling_removes_those_at_default() {
    let (project, eng) = project_with_plugins("editor-plugin", true);
    let log = run_editor(&project, &eng, true);
    assert!(
        log.contains("Multiplayer Fabric: FabricMMOGTransportPeer and FabricZone are available."),
        "the plugin found the library\n{log}"
    );
    assert_eq!(
        probe_line(&log, "enabled"),
        // PROPERTY_HINT_ENUM is 2.
        "url=http://127.0.0.1:8080 port=7443 link_hint=2:none,memory,network \
         revert=http://127.0.0.1:8080",
        "settings registered with their defaults, hints and revert values\n{log}"
    );
    assert_eq!(
        probe_line(&log, "saved"),
        "defaults_in_file=0",
        "saving the project while enabled writes no setting at its default to project.godot\n{log}"
    );
    assert_eq!(
        probe_line(&log, "disabled"),
        "url=<none> port=9443 tick_hz=<none>",
        "disabling removed the settings at their default and kept the changed port\n{log}"
    );
    let saved = std::fs::read_to_string(project.dir().join("project.godot")).expect("read");
    assert!(
        saved.contains("[multiplayer_fabric]") && saved.contains("zone/port=9443"),
        "the changed setting is saved in project.godot\n{saved}"
    );
    assert!(
        !saved.contains("registry/url") && !saved.contains("zone/tick_hz"),
        "no default value is left in project.godot\n{saved}"
    );
}

#[test]
fn without_the_library_the_plugin_says_what_to_do() {
    let (project, eng) = project_with_plugins("editor-no-library", false);
    let log = run_editor(&project, &eng, false);
    let arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        other => other,
    };
    let expected = format!(
        "Multiplayer Fabric: the native library did not load on this platform (linux {arch}), \
         so FabricMMOGTransportPeer and FabricZone are missing. The addon lists libraries for: "
    );
    assert!(
        log.contains(&expected),
        "the plugin names the platform and the libraries the addon lists\n{log}"
    );
    let listed = log
        .lines()
        .find_map(|l| l.split_once(expected.as_str()).map(|(_, rest)| rest))
        .unwrap_or_default();
    assert!(
        listed.contains("linux.x86_64"),
        "the message lists the addon's libraries\n{log}"
    );
    assert!(
        log.contains("Build the one for this platform with `cargo xtask build`"),
        "and says how to get the library\n{log}"
    );
    assert!(
        probe_line(&log, "enabled").starts_with("url=http://127.0.0.1:8080 "),
        "the settings are registered all the same\n{log}"
    );
}

#[test]
fn the_help_page_of_a_class_shows_its_doc_comments() {
    let (project, eng) = project_with_probe("editor-help", true, HELP_PROBE_GD);
    let log = run_editor(&project, &eng, true);
    let page: Vec<&str> = log
        .lines()
        .filter_map(|l| l.trim().strip_prefix("HELP "))
        .collect();
    let has = |text: &str| page.iter().any(|l| l.contains(text));
    assert!(
        has("A zone server: runs one zone of a fabric and admits client sessions."),
        "the class's description (its Rust doc comment) is on the page\n{log}"
    );
    assert!(
        has("The latest tick whose spawns, despawns and payload updates are committed"),
        "a method's description is on the page\n{log}"
    );
    assert!(
        page.iter()
            .any(|l| l.starts_with("Class:") && l.ends_with("FabricZone"))
            && has("Inherits:"),
        "the page is the class page of FabricZone\n{log}"
    );
}
