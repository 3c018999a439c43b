//! The slow reader: at a given second a share of the players stop reading their session (no
//! datagram or stream reads, so no acks) and stop sending, while their connection stays up (the
//! transport below keeps answering, as a game whose main thread froze while its network
//! thread runs). The stalled session is held, unread, until the run ends; then what waited for
//! it is counted and how it ended (closed by the zone as a slow reader, closed otherwise, or
//! still open) is recorded ([`StallEnd`]), and [`StallFigures`] sums it up.

use fabric_net::{Client, ClientEvent};
use serde::{Deserialize, Serialize};
use tokio::time::{Instant, sleep_until};

use crate::stats::PlayerStats;

/// Who stalls and when.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StallPlan {
    /// Seconds from the players' start to the stall.
    pub at_s: f64,
    /// Share of the players that stall (0..=1), spread evenly over the indices.
    pub share: f64,
}

impl StallPlan {
    /// Whether player `index` stalls: the players where `index x share` passes a whole number,
    /// so `round(players x share)` of them, evenly spread.
    pub fn stalls(&self, index: u32) -> bool {
        let s = self.share.clamp(0.0, 1.0);
        (f64::from(index + 1) * s).floor() > (f64::from(index) * s).floor()
    }
}

/// How a stalled session ended, read when the run was over.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StallEnd {
    /// Seconds the session was held unread.
    pub stalled_s: f64,
    /// The close code, when the session was closed (the zone's slow-reader close is
    /// [`fabric_net::budget::SLOW_READER`]).
    pub closed_code: Option<u32>,
    /// Why it was closed, when it was.
    pub closed_reason: Option<String>,
    /// Datagrams that waited unread.
    pub datagrams: u64,
    /// Reliable messages that waited unread.
    pub messages: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Holds `client` unread until `deadline`, then counts what waited and how it ended.
pub async fn hold(client: &mut Client, deadline: Instant) -> StallEnd {
    let since = Instant::now();
    sleep_until(deadline).await;
    let mut end = StallEnd {
        stalled_s: since.elapsed().as_secs_f64(),
        ..StallEnd::default()
    };
    while let Some(ev) = client.try_next_event() {
        match ev {
            ClientEvent::Datagram(b) => {
                end.datagrams += 1;
                end.bytes += b.len() as u64;
            }
            ClientEvent::Message(m) => {
                end.messages += 1;
                end.bytes += m.len() as u64;
            }
            ClientEvent::Closed { reason } => {
                end.closed_code = reason.code();
                end.closed_reason = Some(reason.to_string());
            }
            ClientEvent::Failed(e) => end.closed_reason = Some(e.to_string()),
            ClientEvent::Connected { .. } => {}
        }
    }
    end
}

/// The stall over all players.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StallFigures {
    /// Seconds from the start to the stall.
    pub at_s: f64,
    /// Players that stalled with a session open.
    pub stalled: u32,
    /// Of those, sessions the zone closed as slow readers.
    pub closed_slow_reader: u32,
    /// Sessions closed otherwise.
    pub closed_other: u32,
    /// Sessions still open at the end.
    pub open: u32,
    /// Bytes per second that waited unread for a stalled player (what its zone kept sending,
    /// up to the client's event budget): median and largest.
    pub waiting_bytes_per_s_median: f64,
    /// The largest of the same.
    pub waiting_bytes_per_s_max: f64,
    /// A few close reasons.
    pub reasons: Vec<String>,
}

impl StallFigures {
    /// The stall at `at_s` as `players` lived it.
    pub fn new(at_s: f64, players: &[PlayerStats]) -> Self {
        let ends: Vec<&StallEnd> = players.iter().filter_map(|p| p.stall.as_ref()).collect();
        let mut rates: Vec<f64> = ends
            .iter()
            .map(|e| e.bytes as f64 / e.stalled_s.max(1e-3))
            .collect();
        rates.sort_by(f64::total_cmp);
        let slow = fabric_net::budget::SLOW_READER;
        Self {
            at_s,
            stalled: ends.len() as u32,
            closed_slow_reader: ends.iter().filter(|e| e.closed_code == Some(slow)).count() as u32,
            closed_other: ends
                .iter()
                .filter(|e| e.closed_reason.is_some() && e.closed_code != Some(slow))
                .count() as u32,
            open: ends.iter().filter(|e| e.closed_reason.is_none()).count() as u32,
            waiting_bytes_per_s_median: crate::run::percentile(&rates, 0.5),
            waiting_bytes_per_s_max: rates.last().copied().unwrap_or(0.0),
            reasons: ends
                .iter()
                .filter_map(|e| e.closed_reason.clone())
                .take(4)
                .collect(),
        }
    }

    /// One line.
    pub fn text(&self) -> String {
        format!(
            "stall at {:.0} s: {} players stopped reading; closed by the zone as slow readers {}, closed otherwise {}, still open {}; unread bytes/s per stalled player median {:.0}, max {:.0}",
            self.at_s,
            self.stalled,
            self.closed_slow_reader,
            self.closed_other,
            self.open,
            self.waiting_bytes_per_s_median,
            self.waiting_bytes_per_s_max
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_of_the_players_stalls_evenly_spread() {
        let plan = StallPlan {
            at_s: 10.0,
            share: 0.1,
        };
        let who: Vec<u32> = (0..40).filter(|&i| plan.stalls(i)).collect();
        assert_eq!(who, vec![9, 19, 29, 39]);
        let none = StallPlan {
            at_s: 10.0,
            share: 0.0,
        };
        assert!((0..100).all(|i| !none.stalls(i)));
    }

    #[test]
    fn the_figures_tell_slow_reader_closes_from_other_ends() {
        let mut players: Vec<PlayerStats> = (0..4).map(PlayerStats::new).collect();
        players[0].stall = Some(StallEnd {
            stalled_s: 10.0,
            closed_code: Some(fabric_net::budget::SLOW_READER),
            closed_reason: Some("slow reader".into()),
            bytes: 1000,
            ..StallEnd::default()
        });
        players[1].stall = Some(StallEnd {
            stalled_s: 10.0,
            bytes: 3000,
            ..StallEnd::default()
        });
        players[2].stall = Some(StallEnd {
            stalled_s: 10.0,
            closed_reason: Some("timed out".into()),
            ..StallEnd::default()
        });
        let f = StallFigures::new(12.0, &players);
        assert_eq!(
            (f.stalled, f.closed_slow_reader, f.closed_other, f.open),
            (3, 1, 1, 1)
        );
        assert_eq!(f.waiting_bytes_per_s_max, 300.0);
        assert_eq!(f.waiting_bytes_per_s_median, 100.0);
    }
}
