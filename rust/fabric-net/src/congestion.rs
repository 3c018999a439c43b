//! Congestion control of WebTransport sessions.
//!
//! QUIC controls the congestion of everything it sends, datagrams included. With quinn's
//! default, CUBIC, every loss halves the window whether the network is congested or the packet
//! was simply lost (Wi-Fi, mobile): at game rates (hundreds of small packets a second) on a link
//! with 2 % random loss and 100 ms RTT the window keeps collapsing to its minimum and datagrams
//! queue behind it. Measured with `fabric-bench` (docs/benchmarks.md): unreliable RTT p99
//! 152-212 ms with CUBIC against 103-110 ms with BBR, ENet's 102-105 ms; reliable p99 216 ms
//! with BBR against 400 ms with CUBIC. BBR paces by the measured bandwidth and RTT instead of
//! reacting to each loss, so it is the default. quinn marks its BBR as experimental: CUBIC stays
//! one setting away (`congestion_control = "cubic"` on the Godot peer).

use std::sync::Arc;

use wtransport::quinn::TransportConfig;
use wtransport::quinn::congestion::{BbrConfig, CubicConfig};

/// Which congestion controller a WebTransport session uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CongestionControl {
    /// BBR: paces by measured bandwidth and RTT; random loss does not shrink the window.
    #[default]
    Bbr,
    /// CUBIC (quinn's default): loss-based.
    Cubic,
}

impl CongestionControl {
    /// Every controller, by name.
    pub const ALL: [Self; 2] = [Self::Bbr, Self::Cubic];

    /// The controller named `name` (`"bbr"` or `"cubic"`, any case).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Its name: `"bbr"` or `"cubic"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bbr => "bbr",
            Self::Cubic => "cubic",
        }
    }

    /// Sets this controller on a QUIC transport configuration.
    pub(crate) fn apply(self, transport: &mut TransportConfig) {
        match self {
            Self::Bbr => transport.congestion_controller_factory(Arc::new(BbrConfig::default())),
            Self::Cubic => {
                transport.congestion_controller_factory(Arc::new(CubicConfig::default()))
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bbr_is_the_default() {
        assert_eq!(CongestionControl::default(), CongestionControl::Bbr);
        for c in CongestionControl::ALL {
            assert_eq!(CongestionControl::parse(c.name()), Some(c));
        }
        assert_eq!(
            CongestionControl::parse(" CUBIC "),
            Some(CongestionControl::Cubic)
        );
        assert_eq!(CongestionControl::parse("reno"), None);
        assert_eq!(CongestionControl::parse(""), None);
    }
}
