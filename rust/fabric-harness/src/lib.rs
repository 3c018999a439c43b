//! The harness behind `cargo xtask` and the end-to-end tests.
//!
//! - [`paths`]: where the repository, the Godot project, the addon and the cache are.
//! - [`engine`]: find or install Godot (through `scripts/setup-godot.sh`), build and install the
//!   extension into the addon, import the project.
//! - [`process`]: run Godot and server processes with role-prefixed output, fatal-pattern
//!   detection (`SCRIPT ERROR`, `Can't open dynamic library`, ...), timeouts, and process-group
//!   teardown so nothing is left behind.
//! - [`s3`]: a real S3-compatible server (moto, installed by `scripts/setup-s3.sh`) for the
//!   asset-store tests.
//! - [`cross`]: the extension cross-compiled for Windows x86_64 and Linux arm64 (through
//!   `scripts/setup-cross.sh`) and checked for its entry symbol.
//! - [`package`]: the release zip of the addon (`cargo xtask package`), and one with the debug
//!   library for the install tests.
//! - [`user_project`]: a fresh project folder with the packaged addon unzipped in, as a game
//!   developer has it, and the documented first-import steps.
#![warn(missing_docs)]

pub mod cross;
pub mod engine;
pub mod package;
pub mod paths;
pub mod process;
pub mod s3;
pub mod user_project;
