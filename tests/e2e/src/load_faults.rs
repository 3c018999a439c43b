//! The faults a load scenario applies through the load generator: the reconnect storm, a
//! conditioned link for every player, and the players' comparison of what they see with the
//! zones' `/state` (`fabric-load --storm-at`, `--link-delay-ms`/`--link-loss`, `--state`).

use crate::fabric::Fabric;

/// Faults of a scenario; the default is none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Seconds from the players' start to the reconnect storm.
    pub storm_at_s: Option<f64>,
    /// One-way delay of every player's link, each way, milliseconds (WebTransport only).
    pub link_delay_ms: Option<u64>,
    /// Share of packets every player's link drops, each way.
    pub link_loss: f64,
    /// Players compare their view with the zones' `/state`.
    pub compare_state: bool,
}

impl Faults {
    /// The load generator's arguments for these faults against `fabric`.
    pub fn args(&self, fabric: &Fabric) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(s) = self.storm_at_s {
            a.extend(["--storm-at".to_owned(), s.to_string()]);
        }
        if let Some(ms) = self.link_delay_ms {
            a.extend(["--link-delay-ms".to_owned(), ms.to_string()]);
            a.extend(["--link-loss".to_owned(), self.link_loss.to_string()]);
        }
        if self.compare_state {
            for z in &fabric.zones {
                a.extend(["--state".to_owned(), z.metrics.to_string()]);
            }
        }
        a
    }
}
