//! Observers of the original scheme: the baseline the replication benchmark measures ours
//! against in the same run (issue 11). An observer joins a zone like a player (hello with a
//! join token, welcome ack) but spawns no avatar; it asks for the original fabric's
//! replication (`original_scheme`: every entity of the zone as a 100-byte row, every tick) and
//! counts what arrives after the ramp: bytes, row batch datagrams, rows, distinct entities.
//! Every datagram is decoded and checked (a row batch of valid rows), so what is counted is
//! what a client of the original would have had to read. The zone must allow it
//! (`--original-scheme-sessions`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use fabric_core::entity_row::{EntityRow, ROW_BATCH_KIND, ROW_LEN, RowBatchHeader};
use fabric_core::session_control::ControlMessage;
use fabric_net::{Client, ClientEvent};
use serde::{Deserialize, Serialize};
use tokio::time::{Instant, MissedTickBehavior, interval, sleep_until};

use crate::target::Target;

/// What one observer measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OriginalStats {
    /// The zone observed.
    pub zone: u8,
    /// Seconds measured (from the end of the ramp to the end of the run).
    pub seconds: f64,
    /// Datagram payload bytes received per second.
    pub bytes_per_s: f64,
    /// Row batch datagrams per second.
    pub datagrams_per_s: f64,
    /// Rows per second.
    pub rows_per_s: f64,
    /// Distinct entities seen in a second, mean over the whole seconds measured (the zone's
    /// entities; over the whole run more ids pass through as they migrate).
    pub entities: u64,
    /// Datagrams that were not a valid row batch.
    pub bad: u64,
    /// Why the observer stopped early, if it did.
    pub error: Option<String>,
}

impl OriginalStats {
    /// Updates per entity per second (rows per second over the entities seen in a second).
    pub fn per_entity_hz(&self) -> f64 {
        if self.entities == 0 {
            0.0
        } else {
            self.rows_per_s / self.entities as f64
        }
    }
}

/// Observes zone `zone` of `target`: joins, asks for the original scheme, and counts from
/// `measure_from` to `deadline`.
pub async fn observe(
    index: u32,
    zone: u8,
    target: Arc<Target>,
    measure_from: Instant,
    deadline: Instant,
) -> OriginalStats {
    let mut stats = OriginalStats {
        zone,
        ..OriginalStats::default()
    };
    if let Err(e) = observe_inner(index, zone, &target, measure_from, deadline, &mut stats).await {
        stats.error = Some(e);
    }
    stats
}

async fn observe_inner(
    index: u32,
    zone: u8,
    target: &Target,
    measure_from: Instant,
    deadline: Instant,
    stats: &mut OriginalStats,
) -> Result<(), String> {
    let token = target.token(zone).await.map_err(|e| e.to_string())?;
    let cfg = target.client_config(zone).map_err(|e| e.to_string())?;
    let mut client = Client::connect(cfg);
    let hello = ControlMessage::Hello {
        id: format!("original-{index}"),
        token,
    }
    .encode();
    let ask = ControlMessage::OriginalScheme.encode();
    let mut resend = interval(Duration::from_millis(250));
    resend.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (mut connected, mut welcomed, mut serving) = (false, false, false);
    // Ids seen in the current second, and (sum of sizes, seconds) of the seconds closed.
    let mut seen: HashSet<u32> = HashSet::new();
    let mut per_second = (0u64, 0u64);
    let mut second_ends: Option<Instant> = None;
    let (mut bytes, mut datagrams, mut rows) = (0u64, 0u64, 0u64);
    let mut started: Option<Instant> = None;
    loop {
        let ev = tokio::select! {
            ev = client.next_event() => ev,
            _ = resend.tick() => {
                if connected && !welcomed {
                    client.send_datagram(&hello).map_err(|e| e.to_string())?;
                } else if welcomed && !serving {
                    client.send_message(ask.clone()).map_err(|e| e.to_string())?;
                }
                continue;
            }
            _ = sleep_until(deadline) => break,
        };
        let bytes_in = match ev {
            Some(ClientEvent::Connected { .. }) => {
                connected = true;
                client.send_datagram(&hello).map_err(|e| e.to_string())?;
                continue;
            }
            Some(ClientEvent::Datagram(b)) => b.to_vec(),
            Some(ClientEvent::Message(b)) => b,
            Some(other) => return Err(format!("session ended: {other:?}")),
            None => return Err("session ended".into()),
        };
        if bytes_in.first() == Some(&ROW_BATCH_KIND) {
            let now = Instant::now();
            if now < measure_from {
                continue;
            }
            started.get_or_insert(now);
            let ends = second_ends.get_or_insert(now + Duration::from_secs(1));
            if now >= *ends {
                per_second.0 += seen.len() as u64;
                per_second.1 += 1;
                seen.clear();
                *ends += Duration::from_secs(1);
            }
            bytes += bytes_in.len() as u64;
            datagrams += 1;
            match RowBatchHeader::decode(&bytes_in) {
                Ok((_, body)) => {
                    for r in body.chunks(ROW_LEN) {
                        match EntityRow::decode(r) {
                            Ok(row) => {
                                rows += 1;
                                seen.insert(row.global_id);
                            }
                            Err(_) => stats.bad += 1,
                        }
                    }
                }
                Err(_) => stats.bad += 1,
            }
            continue;
        }
        match ControlMessage::decode(&bytes_in) {
            Ok(ControlMessage::Welcome { session, .. }) if !welcomed => {
                welcomed = true;
                client
                    .send_datagram(&ControlMessage::WelcomeAck { session }.encode())
                    .map_err(|e| e.to_string())?;
                client
                    .send_message(ask.clone())
                    .map_err(|e| e.to_string())?;
            }
            Ok(ControlMessage::Reply { id, result }) if id == "original_scheme" => match result {
                Ok(_) => serving = true,
                Err(e) => return Err(format!("original scheme refused: {e}")),
            },
            Ok(ControlMessage::Error { code, message }) => {
                return Err(format!("zone error {code}: {message}"));
            }
            _ => {}
        }
    }
    client.close("load generator: observer done");
    let secs = started.map_or(0.0, |s| (Instant::now() - s).as_secs_f64());
    stats.seconds = secs;
    if secs > 0.0 {
        stats.bytes_per_s = bytes as f64 / secs;
        stats.datagrams_per_s = datagrams as f64 / secs;
        stats.rows_per_s = rows as f64 / secs;
    }
    stats.entities = match per_second {
        (_, 0) => seen.len() as u64,
        (sum, n) => sum / n,
    };
    if !serving {
        return Err("the zone never confirmed the original scheme".into());
    }
    Ok(())
}
