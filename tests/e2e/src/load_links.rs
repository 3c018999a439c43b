//! Conditioned links between the zone processes of a load run (the `zone_links` scenario):
//! every zone advertises its link listener on [`LINK_ADDRESS`] (another loopback address) and
//! listens on 127.0.0.1 on a port of its own; a UDP relay on [`LINK_ADDRESS`] and that port
//! (`fabric_load::relay`, every datagram through `fabric-linksim`'s seeded queue) carries each
//! neighbour's link to it, so every link between two zones crosses one relay, delayed,
//! jittered, lossy and reordered both ways. At a given second the relays cut every link for a
//! few seconds (everything dropped both ways), then let it through again.
//!
//! No root is needed: the relays are user-space sockets on loopback, as the players' lossy
//! links of the `lossy` scenario (the TUN link of `fabric-linksim` needs network namespaces).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use fabric_linksim::LinkConfig;
use fabric_load::relay::{self, RelayCounters, RelayFigures};

use crate::fabric::LinkVia;

/// The address the zones advertise for their links, where the relays listen.
pub const LINK_ADDRESS: &str = "127.0.0.2";

/// How the zone links misbehave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZoneLinks {
    /// One-way delay, each way, milliseconds.
    pub delay_ms: u64,
    /// Extra uniform delay per datagram, milliseconds.
    pub jitter_ms: u64,
    /// Share of datagrams dropped, each way.
    pub loss: f64,
    /// Share of datagrams held back by 10 ms (overtaken by later ones).
    pub reorder: f64,
    /// Seconds from the players' start to the cut.
    pub cut_at_s: f64,
    /// Seconds the links stay cut.
    pub cut_s: f64,
}

/// What the zone links did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkFigures {
    /// Seconds from the players' start to the cut.
    pub cut_from_s: Option<f64>,
    /// To its end.
    pub cut_to_s: Option<f64>,
    /// The relays' counts, all links both ways.
    pub relay: RelayFigures,
}

/// The relays of every zone's link listener, on a runtime of their own.
pub struct LinkRelays {
    rt: tokio::runtime::Runtime,
    plan: ZoneLinks,
    cut: Arc<AtomicBool>,
    counters: Arc<RelayCounters>,
    figures: LinkFigures,
    /// Where the zones advertise their links and on which ports they listen.
    pub via: LinkVia,
}

impl LinkRelays {
    /// Starts a relay for each of `zones` zones on a free port (the zone will listen on it on
    /// 127.0.0.1, its relay listens on [`LINK_ADDRESS`]); the links seeded from `seed`.
    pub fn start(plan: ZoneLinks, zones: u32, seed: u64) -> anyhow::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("zone-link-relay")
            .enable_all()
            .build()
            .context("starting the relays' runtime")?;
        let cfg = LinkConfig {
            delay: Duration::from_millis(plan.delay_ms),
            jitter: Duration::from_millis(plan.jitter_ms),
            loss: plan.loss,
            reorder: plan.reorder,
            ..LinkConfig::default()
        };
        let cut = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(RelayCounters::default());
        let mut ports = Vec::new();
        for k in 0..zones {
            let port = rt.block_on(relay_on_free_port(
                &cfg,
                seed.wrapping_add(u64::from(k)),
                &counters,
                &cut,
            ))?;
            ports.push(port);
        }
        Ok(Self {
            rt,
            plan,
            cut,
            counters,
            figures: LinkFigures::default(),
            via: LinkVia {
                public_address: LINK_ADDRESS.into(),
                ports,
            },
        })
    }

    /// Cuts the links or lets them through again at second `t` of the run.
    pub fn step(&mut self, t: f64, log: &impl Fn(&str)) {
        let f = &mut self.figures;
        if f.cut_from_s.is_none() && t >= self.plan.cut_at_s {
            self.cut.store(true, Ordering::SeqCst);
            f.cut_from_s = Some(t);
            log(&format!("zone links cut at {t:.1} s"));
        } else if f.cut_from_s.is_some()
            && f.cut_to_s.is_none()
            // The planned end, not the cut's sampled start plus its length: a sample a few
            // microseconds late would make the cut a whole sampling second longer.
            && t >= self.plan.cut_at_s + self.plan.cut_s
        {
            self.cut.store(false, Ordering::SeqCst);
            f.cut_to_s = Some(t);
            log(&format!("zone links through again at {t:.1} s"));
        }
    }

    /// What happened so far.
    pub fn figures(&self) -> LinkFigures {
        LinkFigures {
            relay: self.counters.figures(),
            ..self.figures
        }
    }

    /// Stops the relays.
    pub fn stop(self) {
        self.rt.shutdown_timeout(Duration::from_secs(1));
    }
}

/// Starts a relay on [`LINK_ADDRESS`] at a port free on 127.0.0.1 too (a few tries); returns
/// the port.
async fn relay_on_free_port(
    cfg: &LinkConfig,
    seed: u64,
    counters: &Arc<RelayCounters>,
    cut: &Arc<AtomicBool>,
) -> anyhow::Result<u16> {
    let mut last = None;
    for _ in 0..20 {
        let port = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .context("finding a free port")?
            .port();
        let front = SocketAddr::new(LINK_ADDRESS.parse()?, port);
        let zone = SocketAddr::new("127.0.0.1".parse()?, port);
        match relay::start_on(
            front,
            zone,
            cfg.clone(),
            seed,
            counters.clone(),
            cut.clone(),
        )
        .await
        {
            Ok(_) => return Ok(port),
            Err(e) => last = Some(e),
        }
    }
    Err(anyhow::anyhow!(
        "no free port for a zone link relay: {last:?}"
    ))
}
