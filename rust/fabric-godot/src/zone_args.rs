//! User arguments of a zone process (after `--` on Godot's command line), applied over the
//! node's exported properties:
//!
//! `--zone-id N`, `--port P`, `--bind ADDR`, `--tick-hz HZ`, `--cert-hash-file PATH`,
//! `--backend http://HOST:PORT`, `--backend-api-key KEY` (better: the environment variable
//! `FABRIC_BACKEND_API_KEY`, which other users cannot read from the process list),
//! `--public-address HOST`, `--map NAME`, `--name NAME`, `--heartbeat-sec S`, `--require-token`,
//! `--no-websocket` (WebTransport only), `--cert-rotation-sec S` (0 = never).

use std::path::PathBuf;

use godot::classes::Os;
use godot::prelude::*;

use crate::zone::FabricZone;

/// Reads Godot's user arguments into `zone`; a malformed value is reported and ignored.
pub fn apply(zone: &mut FabricZone) {
    let args: Vec<String> = Os::singleton()
        .get_cmdline_user_args()
        .as_slice()
        .iter()
        .map(|s| s.to_string())
        .collect();
    apply_args(zone, &args);
}

fn apply_args(zone: &mut FabricZone, args: &[String]) {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) => (k, Some(v.to_owned())),
            None => (a.as_str(), None),
        };
        if key == "--require-token" {
            zone.require_token = true;
            continue;
        }
        if key == "--no-websocket" {
            zone.websocket_fallback = false;
            continue;
        }
        let mut value = || inline.clone().or_else(|| it.next().cloned());
        match key {
            "--zone-id" => parse_into(&mut zone.zone_id, value(), key),
            "--port" => parse_into(&mut zone.port, value(), key),
            "--tick-hz" => parse_into(&mut zone.tick_hz, value(), key),
            "--heartbeat-sec" => parse_into(&mut zone.heartbeat_sec, value(), key),
            "--cert-rotation-sec" => parse_into(&mut zone.cert_rotation_sec, value(), key),
            "--bind" => set_text(&mut zone.bind_address, value()),
            "--backend" => set_text(&mut zone.backend_url, value()),
            "--public-address" => set_text(&mut zone.public_address, value()),
            "--map" => set_text(&mut zone.map_name, value()),
            "--name" => set_text(&mut zone.zone_name, value()),
            "--backend-api-key" => zone.api_key = value().unwrap_or_default(),
            "--cert-hash-file" => zone.hash_file = value().map(PathBuf::from),
            _ => {}
        }
    }
}

fn set_text(slot: &mut GString, value: Option<String>) {
    if let Some(v) = value {
        *slot = GString::from(&v);
    }
}

fn parse_into<T: std::str::FromStr>(slot: &mut T, value: Option<String>, key: &str) {
    match value.as_deref().map(str::parse) {
        Some(Ok(v)) => *slot = v,
        _ => godot_error!("FabricZone: {key} needs a number, got {value:?}"),
    }
}
