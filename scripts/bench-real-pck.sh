#!/usr/bin/env bash
# Issue 13's delivery benchmark on two real exports of this repository's Godot project: exports
# a resource pack of godot-project/ (version 1), adds one line of code to a script, exports again
# (version 2), and runs fabric-assets' delivery_bench on the pair. Godot comes from
# `cargo xtask setup` (GODOT overrides it). A pack needs no export templates.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
godot="${GODOT:-$HOME/.cache/multiplayer-fabric/bin/godot}"
[ -x "$godot" ] || { echo "no Godot at $godot: run cargo xtask setup" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# A real copy: the project's addons/ and scripts/ are links to the repository's folders.
cp -rL "$root/godot-project" "$work/project"
cat > "$work/project/export_presets.cfg" <<'PRESET'
[preset.0]

name="Linux"
platform="Linux"
runnable=true
advanced_options=false
dedicated_server=false
custom_features=""
export_filter="all_resources"
include_filter=""
exclude_filter=""
export_path=""
patches=PackedStringArray()
encryption_include_filters=""
encryption_exclude_filters=""
seed=0
encrypt_pck=false
encrypt_directory=false
script_export_mode=2

[preset.0.options]

custom_template/debug=""
custom_template/release=""
debug/export_console_wrapper=1
binary_format/embed_pck=false
binary_format/architecture="x86_64"
PRESET
export_pack() {
  "$godot" --headless --path "$work/project" --export-pack "Linux" "$1" >"$work/export.log" 2>&1 \
    || { cat "$work/export.log" >&2; exit 1; }
}
echo "importing and exporting version 1 ..." >&2
"$godot" --headless --path "$work/project" --import >"$work/import.log" 2>&1 \
  || { cat "$work/import.log" >&2; exit 1; }
export_pack "$work/v1.pck"
# The small change: one constant more in one script (a comment would not reach the pack:
# scripts are exported as tokens).
echo 'const EXPORT_BENCH_VERSION := 2' >>"$work/project/scripts/cycle1.gd"
echo "exporting version 2 ..." >&2
export_pack "$work/v2.pck"
cd "$root"
cargo run --release -p fabric-assets --example delivery_bench -- "$work/v1.pck" --v2 "$work/v2.pck"
