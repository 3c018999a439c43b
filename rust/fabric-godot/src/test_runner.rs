//! The in-engine test registry: Rust tests that need a live Godot, run by the runner scene.
//!
//! A test is a plain function returning `Result<(), String>`; [`FabricTestRunner`] lists them
//! and runs one at a time, turning a panic into a failure message. The GDScript runner
//! (`res://scripts/tests/test_runner.gd`) prints the results and the `N passed, N failed` line.

use godot::prelude::*;

/// One registered in-engine test.
pub struct RustTest {
    /// Unique name, `area::what_it_shows`.
    pub name: &'static str,
    /// The test; `Err` carries the failure message.
    pub run: fn() -> Result<(), String>,
}

/// Runs the Rust in-engine tests (internal: used by the project's test runner scene).
#[derive(GodotClass)]
#[class(base = RefCounted, init)]
pub struct FabricTestRunner {
    base: Base<RefCounted>,
}

#[godot_api]
impl FabricTestRunner {
    /// Names of all registered Rust tests.
    #[func]
    fn list_rust_tests(&self) -> PackedStringArray {
        crate::itests::all()
            .map(|t| GString::from(t.name))
            .collect()
    }

    /// Runs one test; returns an empty string when it passed, the failure message otherwise.
    #[func]
    fn run_rust_test(&self, name: GString) -> GString {
        let name = name.to_string();
        let Some(test) = crate::itests::all().find(|t| t.name == name) else {
            return GString::from(&format!("no Rust test named `{name}`"));
        };
        match std::panic::catch_unwind(test.run) {
            Ok(Ok(())) => GString::new(),
            Ok(Err(msg)) => GString::from(&msg),
            Err(panic) => {
                let text = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "panicked".to_owned());
                GString::from(&format!("panicked: {text}"))
            }
        }
    }
}
