//! `FabricNetLimits`: a server's budgets in bytes, admission caps and handshake deadline as a
//! Godot resource, held by `FabricMMOGTransportPeer` and `FabricZone` (property `limits`).
//!
//! Its properties, their defaults and their class reference come from the one list of
//! `fabric_net::limits` (`fabric_net::server_limits!`), which the zone's and the gateway's
//! command lines use as well; nothing here names a limit. A new resource starts from the project
//! settings `multiplayer_fabric/limits/<name>` (the editor plugin registers them with the hints
//! [`FabricNetLimits::project_settings`] gives), else the defaults.

use fabric_net::ServerLimits;
use fabric_net::limits::{LimitError, SETTINGS, Unit};
use godot::builtin::VariantType;
use godot::classes::{IResource, ProjectSettings, Resource};
use godot::prelude::*;
use godot::register::info::PropertyHint;

/// The limits the project settings give: each `multiplayer_fabric/limits/<name>` the project
/// sets, over the defaults. A value that is not usable is reported and its default kept.
pub fn project_limits() -> ServerLimits {
    let ps = ProjectSettings::singleton();
    let mut limits = ServerLimits::default();
    for s in SETTINGS {
        let key = s.project_setting();
        if !ps.has_setting(&key) {
            continue;
        }
        let set = match ps.get_setting(&key).try_to::<i64>() {
            Ok(v) => s.set(&mut limits, i128::from(v)).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = set {
            godot_error!(
                "project setting {key}: {e}; the default {} is used",
                s.default
            );
        }
    }
    limits
}

macro_rules! limits_resource {
    ($($(#[doc = $doc:tt])+ $name:ident ($flag:tt): $unit:ident = $default:expr;)+) => {
        /// The limits of a server: budgets in bytes, admission caps and the handshake deadline.
        /// A `FabricMMOGTransportPeer` server and a `FabricZone` hold one in their `limits`
        /// property, read when the server starts (`create_server`, `start`).
        ///
        /// ```gdscript
        /// var peer := FabricMMOGTransportPeer.new()
        /// peer.limits.max_sessions_per_address = 4
        /// peer.limits.send_budget = 1 << 20
        /// peer.create_server(4433)
        /// ```
        ///
        /// A new one takes each value from the project setting `multiplayer_fabric/limits/<name>`
        /// when the project sets it, else the default. Every value must be at least 1:
        /// `create_server` and `start` refuse a server with a value below. A zone's command line
        /// sets them too (`--send-budget 1MiB`, `--max-sessions-per-address 4`, ...), and the
        /// gateway's (docs/session-protocol.md, "Limits", lists them with their defaults).
        #[derive(GodotClass)]
        #[class(base = Resource, tool)]
        pub struct FabricNetLimits {
            base: Base<Resource>,
            $(
                $(#[doc = $doc])+
                #[export]
                $name: i64,
            )+
        }

        #[godot_api]
        impl IResource for FabricNetLimits {
            fn init(base: Base<Resource>) -> Self {
                let mut limits = Self { base, $($name: 0,)+ };
                limits.set_limits(&project_limits());
                limits
            }
        }

        impl FabricNetLimits {
            /// The values as `fabric-net` takes them; an error names the first value out of
            /// range.
            pub fn limits(&self) -> Result<ServerLimits, LimitError> {
                let mut l = ServerLimits::default();
                $(ServerLimits::setting(stringify!($name))?.set(&mut l, i128::from(self.$name))?;)+
                Ok(l)
            }

            /// Sets every property from `l`.
            pub fn set_limits(&mut self, l: &ServerLimits) {
                $(self.$name = i64::try_from(l.$name).unwrap_or(i64::MAX);)+
            }
        }
    };
}

fabric_net::server_limits!(limits_resource);

#[godot_api]
impl FabricNetLimits {
    /// The project settings of the limits, one Dictionary each (`name`, `type`, `hint`,
    /// `hint_string`, `default`, `basic`), as the editor plugin registers them.
    #[func]
    pub fn project_settings() -> Array<VarDictionary> {
        SETTINGS
            .iter()
            .map(|s| {
                let suffix = match s.unit {
                    Unit::Bytes => ",suffix:B",
                    Unit::Count => "",
                    Unit::Millis => ",suffix:ms",
                };
                let mut d = VarDictionary::new();
                d.set("name", s.project_setting());
                d.set("type", VariantType::INT.ord());
                d.set("hint", PropertyHint::RANGE.ord());
                d.set(
                    "hint_string",
                    format!("1,{},1,or_greater{suffix}", s.default * 16),
                );
                d.set("default", i64::try_from(s.default).unwrap_or(i64::MAX));
                d.set("basic", false);
                d
            })
            .collect()
    }

    /// The limits as they would be used, checked: an empty string when every value is usable,
    /// else which one is not and why.
    #[func]
    pub fn check(&self) -> GString {
        match self.limits() {
            Ok(_) => GString::new(),
            Err(e) => GString::from(&e.to_string()),
        }
    }
}

/// The limits `limits` holds, or the project's when it is null.
pub(crate) fn server_limits(
    limits: Option<&Gd<FabricNetLimits>>,
) -> Result<ServerLimits, LimitError> {
    match limits {
        Some(l) => l.bind().limits(),
        None => Ok(project_limits()),
    }
}

/// A new resource holding `l`.
pub(crate) fn resource(l: &ServerLimits) -> Gd<FabricNetLimits> {
    let mut r = FabricNetLimits::new_gd();
    r.bind_mut().set_limits(l);
    r
}
