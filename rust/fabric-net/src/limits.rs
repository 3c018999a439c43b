//! The limits of a server as settings a user can set: budgets in bytes, admission caps and the
//! handshake deadline.
//!
//! Each limit's name, unit, default and meaning are written once, in [`server_limits!`]. From
//! that one list this module makes [`ServerLimits`] (the values, held by
//! [`crate::ServerConfig::limits`]) and [`SETTINGS`] (their descriptions), and `fabric-godot`
//! makes the `FabricNetLimits` resource of the peer and the zone (its properties and their
//! class reference, the project settings `multiplayer_fabric/limits/<name>`). The zone's and
//! the gateway's command lines take `--<name with dashes> VALUE` from [`SETTINGS`]. The
//! user-facing list is in `docs/session-protocol.md`, "Limits".

use thiserror::Error;

/// The list of server limits, handed to the macro `$then` as entries
/// `/// doc... name (flag): Unit = default;`. A new limit is added here and nowhere else
/// (besides the code that enforces it).
#[macro_export]
macro_rules! server_limits {
    ($then:ident) => {
        $then! {
            /// Bytes that may wait to be sent, per reliable channel of a WebTransport session
            /// and per WebSocket session. A send beyond it is refused and the session is closed
            /// with the slow-reader close code (5): its peer does not read what it is sent.
            send_budget ("send-budget"): Bytes = 4 << 20;
            /// Bytes of datagrams and reliable messages one session may have waiting for the
            /// application to take them (its fair share of the event queue). Datagrams beyond
            /// it are dropped and counted; reliable streams wait until there is room.
            session_event_budget ("session-event-budget"): Bytes = 4 << 20;
            /// Bytes of reliable messages one session may have partly received, all channels
            /// together. Beyond it the session is closed with the protocol close code (1).
            partial_message_budget ("partial-message-budget"): Bytes = 32 << 20;
            /// Sessions the server holds at once, handshakes in progress included; more are
            /// refused at once.
            max_sessions ("max-sessions"): Count = 4096;
            /// Sessions one IP address may hold at once, handshakes in progress included; more
            /// from that address are refused at once.
            max_sessions_per_address ("max-sessions-per-address"): Count = 128;
            /// TCP connections one IP address may have in TLS or the WebSocket upgrade at once;
            /// more are dropped at accept.
            max_pending_per_address ("max-pending-per-address"): Count = 16;
            /// Longest a handshake may take, in milliseconds: QUIC and HTTP/3 for WebTransport,
            /// TLS and the upgrade for WebSocket. A slower one is dropped.
            handshake_timeout_msec ("handshake-timeout-msec"): Millis = 10_000;
        }
    };
}

/// The Rust type of a limit's value, by its [`Unit`].
#[doc(hidden)]
#[macro_export]
macro_rules! __limit_type {
    (Bytes) => {
        usize
    };
    (Count) => {
        usize
    };
    (Millis) => {
        u64
    };
}

/// What a limit counts; it says how a value is written (`4MiB`, `128`, `10000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Bytes: a whole number, optionally with the suffix `KiB`, `MiB` or `GiB`.
    Bytes,
    /// A number of things (sessions, connections).
    Count,
    /// Milliseconds.
    Millis,
}

impl Unit {
    /// The unit in words, after a value (`"bytes"`, `""`, `"ms"`).
    pub fn suffix(self) -> &'static str {
        match self {
            Unit::Bytes => "bytes",
            Unit::Count => "",
            Unit::Millis => "ms",
        }
    }

    /// How a value of this unit is written, in words (for error messages).
    pub fn expected(self) -> &'static str {
        match self {
            Unit::Bytes => "a size in bytes (a whole number, optionally with KiB, MiB or GiB)",
            Unit::Count => "a whole number",
            Unit::Millis => "a whole number of milliseconds",
        }
    }

    /// Reads a value written in this unit (`None`: not a whole number, or too large).
    pub fn parse(self, text: &str) -> Option<u64> {
        let t = text.trim();
        let (digits, scale) = match self {
            Unit::Bytes => [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
                .into_iter()
                .find_map(|(s, f)| t.strip_suffix(s).map(|d| (d.trim_end(), f)))
                .unwrap_or((t, 1)),
            Unit::Count | Unit::Millis => (t, 1),
        };
        digits.parse::<u64>().ok()?.checked_mul(scale)
    }
}

/// Why a limit's value is not usable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LimitError {
    /// No limit has this name or flag.
    #[error("unknown limit `{0}`")]
    Unknown(String),
    /// The value does not parse in the limit's unit.
    #[error("{name}: `{value}` is not {expected}")]
    Invalid {
        /// The limit.
        name: &'static str,
        /// What was given.
        value: String,
        /// What was expected, in words.
        expected: &'static str,
    },
    /// The value is out of the limit's range (every limit is at least 1; none beyond
    /// `i64::MAX`, the largest a Godot integer holds).
    #[error("{name}: {value} is out of range (1 to {max})", max = i64::MAX)]
    OutOfRange {
        /// The limit.
        name: &'static str,
        /// What was given.
        value: i128,
    },
}

/// One limit described: what [`SETTINGS`] lists.
#[derive(Clone, Copy)]
pub struct LimitSetting {
    /// Its name: the field of [`ServerLimits`], the Godot property and the last part of the
    /// project setting `multiplayer_fabric/limits/<name>`.
    pub name: &'static str,
    /// Its command-line flag, without the leading `--`.
    pub flag: &'static str,
    /// What it counts.
    pub unit: Unit,
    /// Its default.
    pub default: u64,
    /// What it means (the doc lines of the list, joined; see [`Self::doc`]).
    doc: &'static str,
    get: fn(&ServerLimits) -> u64,
    set: fn(&mut ServerLimits, u64),
}

impl std::fmt::Debug for LimitSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitSetting")
            .field("name", &self.name)
            .field("unit", &self.unit)
            .field("default", &self.default)
            .finish_non_exhaustive()
    }
}

impl LimitSetting {
    /// What it means, in the words of the class reference (one paragraph).
    pub fn doc(&self) -> &'static str {
        self.doc.trim()
    }

    /// Its default as the documentation writes it: `4 MiB`, `128`, `10000 ms`.
    pub fn default_text(&self) -> String {
        let d = self.default;
        match self.unit {
            Unit::Bytes if d >= 1 << 20 && d.is_multiple_of(1 << 20) => format!("{} MiB", d >> 20),
            Unit::Bytes if d >= 1 << 10 && d.is_multiple_of(1 << 10) => format!("{} KiB", d >> 10),
            Unit::Bytes => format!("{d} bytes"),
            Unit::Count => d.to_string(),
            Unit::Millis => format!("{d} ms"),
        }
    }

    /// The project setting that holds it.
    pub fn project_setting(&self) -> String {
        format!("multiplayer_fabric/limits/{}", self.name)
    }

    /// Its value in `limits`.
    pub fn get(&self, limits: &ServerLimits) -> u64 {
        (self.get)(limits)
    }

    /// Sets it in `limits` to `value`, checked against its range.
    pub fn set(&self, limits: &mut ServerLimits, value: i128) -> Result<(), LimitError> {
        match u64::try_from(value) {
            Ok(v) if v >= 1 && i64::try_from(v).is_ok() && usize::try_from(v).is_ok() => {
                (self.set)(limits, v);
                Ok(())
            }
            _ => Err(LimitError::OutOfRange {
                name: self.name,
                value,
            }),
        }
    }

    /// Sets it in `limits` from its written form (`4MiB`, `128`, ...).
    pub fn set_text(&self, limits: &mut ServerLimits, text: &str) -> Result<(), LimitError> {
        let v = self.unit.parse(text).ok_or_else(|| LimitError::Invalid {
            name: self.name,
            value: text.to_owned(),
            expected: self.unit.expected(),
        })?;
        self.set(limits, i128::from(v))
    }
}

macro_rules! define_limits {
    ($($(#[doc = $doc:tt])+ $name:ident ($flag:tt): $unit:ident = $default:expr;)+) => {
        /// The values of the server limits (see the module's list for each one's meaning).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct ServerLimits {
            $(
                $(#[doc = $doc])+
                pub $name: $crate::__limit_type!($unit),
            )+
        }

        impl ServerLimits {
            /// Every limit at its default.
            pub const DEFAULT: Self = Self { $($name: $default,)+ };
        }

        impl Default for ServerLimits {
            fn default() -> Self {
                Self::DEFAULT
            }
        }

        /// Every server limit, in the order of the list.
        pub static SETTINGS: &[LimitSetting] = &[
            $(LimitSetting {
                name: stringify!($name),
                flag: $flag,
                unit: Unit::$unit,
                default: $default,
                doc: concat!($($doc),+),
                get: |l| l.$name as u64,
                set: |l, v| l.$name = v as _,
            },)+
        ];
    };
}

server_limits!(define_limits);

impl ServerLimits {
    /// The setting called `name` (its field name, e.g. `send_budget`).
    pub fn setting(name: &str) -> Result<&'static LimitSetting, LimitError> {
        SETTINGS
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| LimitError::Unknown(name.to_owned()))
    }

    /// The setting whose command-line flag is `flag` (with its leading `--`), if any.
    pub fn flag(flag: &str) -> Option<&'static LimitSetting> {
        let bare = flag.strip_prefix("--")?;
        SETTINGS.iter().find(|s| s.flag == bare)
    }

    /// The handshake deadline as a duration.
    pub fn handshake_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.handshake_timeout_msec)
    }
}

/// Default [`ServerLimits::send_budget`] (and the client's): 4 MiB.
pub const DEFAULT_SEND_BUDGET: usize = ServerLimits::DEFAULT.send_budget;
/// Default [`ServerLimits::session_event_budget`] (and the client's event budget): 4 MiB.
pub const DEFAULT_EVENT_BUDGET: usize = ServerLimits::DEFAULT.session_event_budget;
/// Default [`ServerLimits::partial_message_budget`] (and the client's partial budget): 32 MiB,
/// two largest messages.
pub const DEFAULT_PARTIAL_BUDGET: usize = ServerLimits::DEFAULT.partial_message_budget;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_and_the_defaults_agree() {
        use fabric_core::session_control::close_code;
        let doc = |n: &str| ServerLimits::setting(n).unwrap().doc();
        assert!(
            doc("send_budget").contains(&format!("({})", crate::budget::SLOW_READER)),
            "the documented slow-reader code is the one sent"
        );
        assert!(doc("partial_message_budget").contains(&format!("({})", close_code::PROTOCOL)));
        let d = ServerLimits::default();
        assert_eq!(d.send_budget, 4 << 20);
        assert_eq!(d.partial_message_budget, 32 << 20);
        assert_eq!((d.max_sessions, d.max_sessions_per_address), (4096, 128));
        assert_eq!(d.handshake_timeout(), std::time::Duration::from_secs(10));
        for s in SETTINGS {
            assert_eq!(s.get(&d), s.default, "{}: default in the table", s.name);
            assert!(s.default >= 1, "{}: a usable default", s.name);
            assert_eq!(s.flag, s.name.replace('_', "-"), "{}: flag", s.name);
            assert!(
                s.doc().ends_with('.') && !s.doc().contains("  "),
                "{}: one paragraph",
                s.name
            );
            assert_eq!(ServerLimits::setting(s.name).unwrap().name, s.name);
        }
        assert_eq!(SETTINGS.len(), 7);
    }

    #[test]
    fn the_documentation_lists_every_limit_with_its_default() {
        let page = include_str!("../../../docs/session-protocol.md");
        for s in SETTINGS {
            let row = page
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` ", s.name)))
                .unwrap_or_else(|| panic!("docs/session-protocol.md has a row for {}", s.name));
            assert!(
                row.contains(&format!("| {} |", s.default_text())),
                "{}: the row gives the default {}: {row}",
                s.name,
                s.default_text()
            );
            assert!(
                row.contains(&format!("`--{}`", s.flag)),
                "{}: its flag: {row}",
                s.name
            );
        }
        let d = |n| ServerLimits::setting(n).unwrap().default_text();
        assert_eq!(d("send_budget"), "4 MiB");
        assert_eq!(d("max_sessions"), "4096");
        assert_eq!(d("handshake_timeout_msec"), "10000 ms");
    }

    #[test]
    fn values_are_read_in_their_unit() {
        let mut l = ServerLimits::default();
        let set = |l: &mut ServerLimits, flag: &str, v: &str| {
            ServerLimits::flag(flag)
                .unwrap_or_else(|| panic!("{flag} is a limit"))
                .set_text(l, v)
        };
        set(&mut l, "--send-budget", "64KiB").unwrap();
        set(&mut l, "--session-event-budget", "2 MiB").unwrap();
        set(&mut l, "--partial-message-budget", "1GiB").unwrap();
        set(&mut l, "--max-sessions-per-address", "3").unwrap();
        set(&mut l, "--handshake-timeout-msec", "250").unwrap();
        assert_eq!(l.send_budget, 65_536);
        assert_eq!(l.session_event_budget, 2 << 20);
        assert_eq!(l.partial_message_budget, 1 << 30);
        assert_eq!(l.max_sessions_per_address, 3);
        assert_eq!(l.handshake_timeout_msec, 250);
        assert_eq!(
            set(&mut l, "--max-sessions", "0"),
            Err(LimitError::OutOfRange {
                name: "max_sessions",
                value: 0
            }),
            "zero would refuse everyone"
        );
        assert!(
            matches!(
                set(&mut l, "--max-sessions", "12KiB"),
                Err(LimitError::Invalid {
                    name: "max_sessions",
                    ..
                })
            ),
            "suffixes are for bytes"
        );
        assert!(matches!(
            set(&mut l, "--send-budget", "-1"),
            Err(LimitError::Invalid { .. })
        ));
        assert!(
            matches!(
                set(&mut l, "--send-budget", "99999999999GiB"),
                Err(LimitError::Invalid { .. })
            ),
            "overflow is refused, not wrapped"
        );
        assert_eq!(l.max_sessions, 4096, "a refused value leaves the old one");
        assert!(ServerLimits::flag("--idle").is_none());
        assert!(
            ServerLimits::flag("send-budget").is_none(),
            "flags start with --"
        );
        assert_eq!(
            ServerLimits::setting("nope").unwrap_err(),
            LimitError::Unknown("nope".into())
        );
        let s = ServerLimits::setting("max_sessions").unwrap();
        assert_eq!(
            s.set(&mut l, i128::from(i64::MAX) + 1),
            Err(LimitError::OutOfRange {
                name: "max_sessions",
                value: i128::from(i64::MAX) + 1
            })
        );
        assert_eq!(
            s.project_setting(),
            "multiplayer_fabric/limits/max_sessions"
        );
    }
}
