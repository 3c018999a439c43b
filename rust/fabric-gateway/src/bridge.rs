//! One client session's bridge to its own upstream zone session, which follows the client's
//! avatar from zone to zone ([`crate::follow`]).

use std::time::Duration;

use fabric_core::session_control::ControlMessage;
use fabric_net::budget::Charge;
use fabric_net::server::{ServerSender, close_code};
use fabric_net::{CertHash, Client, ClientConfig, ClientEvent};
use std::net::SocketAddr;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::GatewayConfig;
use crate::follow::{Follow, Moved, Step};

/// Traffic from the client, on its way to the zone.
#[derive(Debug)]
pub enum Inbound {
    /// A datagram.
    Datagram(bytes::Bytes),
    /// A reliable message.
    Message(Vec<u8>),
}

/// Bridges `session` until either side ends, following its avatar from zone to zone.
pub async fn run(
    session: u64,
    client: ServerSender,
    mut inbound: UnboundedReceiver<(Inbound, Charge)>,
    cfg: GatewayConfig,
) {
    let span = info_span!("bridge", session, zone = %cfg.zone);
    async move {
        let fail = |code: &str, why: String| {
            warn!("{why}");
            let err = ControlMessage::Error {
                code: code.into(),
                message: why.clone(),
            };
            let _ = client.send_datagram(session, &err.encode());
            let _ = client.send_message(session, err.encode());
            // Give the error a moment to leave before the close frame overtakes it.
            let client = client.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                client.close_session(session, close_code::UPSTREAM, &why);
            });
        };
        let unavailable = |why: String| fail("zone_unavailable", why);
        let pins = match cfg.zone_pin.current() {
            Ok(p) => p,
            Err(e) => return unavailable(format!("zone at {} unavailable: {e}", cfg.zone)),
        };
        let Some(mut ccfg) = ClientConfig::pinning(format!("https://{}/wt", cfg.zone), &pins)
        else {
            return unavailable(format!(
                "zone at {} unavailable: no certificate hash",
                cfg.zone
            ));
        };
        ccfg.connect_timeout = cfg.zone_connect_timeout;
        let mut up = Client::connect(ccfg);
        let mut zone_addr = cfg.zone;
        // Held until the zone session opens, each item still counted in the session's budget.
        let mut pending: Vec<(Inbound, Charge)> = Vec::new();
        let mut connected = false;
        // The client's join token (from its `hello`), for the sessions that follow its avatar.
        let mut token: Option<String> = None;
        let mut follow: Option<Follow> = None;
        // Standby sessions to the other zones, opened once the client said hello.
        let mut standby: Vec<Follow> = Vec::new();
        let mut standby_opened = false;
        let mut said_hello = false;
        let mut zone_id: Option<u32> = None;
        let mut standby_poll = tokio::time::Instant::now();
        loop {
            let follow_timer = follow.as_ref().map(Follow::next_send);
            if !standby_opened && cfg.follow && cfg.standby && said_hello {
                standby_opened = true;
                standby = open_standby(&cfg, zone_addr, token.as_ref());
            }
            tokio::select! {
                item = inbound.recv() => {
                    let Some(item) = item else {
                        debug!("client left: closing the zone session");
                        up.close("client left");
                        for f in follow.iter().chain(&standby) {
                            f.up.close("client left");
                        }
                        return;
                    };
                    if let Inbound::Datagram(d) = &item.0 {
                        said_hello |= note_hello(d, &mut token);
                    }
                    if connected {
                        forward_up(&up, item.0, &client, session);
                    } else {
                        pending.push(item);
                    }
                }
                ev = up.next_event() => match ev {
                    Some(ClientEvent::Connected { .. }) => {
                        info!("zone session open");
                        connected = true;
                        for (item, _charge) in pending.drain(..) {
                            forward_up(&up, item, &client, session);
                        }
                    }
                    Some(ClientEvent::Datagram(d)) => {
                        if zone_id.is_none() && ControlMessage::is_control(&d)
                            && let Ok(ControlMessage::Welcome { zone_id: z, .. }) = ControlMessage::decode(&d)
                        {
                            zone_id = Some(z);
                        }
                        if let Err(e) = client.send_datagram(session, &d) {
                            debug!("zone datagram not delivered to the client: {e}");
                        }
                    }
                    Some(ClientEvent::Message(m)) => {
                        let moved = if cfg.follow { Moved::parse(&m) } else { None };
                        match moved {
                            Some(moved) if follow.is_none() => {
                                info!(avatar = moved.id, to = moved.zone, "following the avatar");
                                let ready = standby
                                    .iter()
                                    .position(|f| f.zone == Some(moved.zone));
                                if let Some(i) = ready {
                                    let mut f = standby.swap_remove(i);
                                    let step = f.begin(moved);
                                    follow = Some(f);
                                    match finish(step, &mut follow, &mut up, &mut zone_addr, &client, session) {
                                        Ok(sw) => switched(sw, &mut standby, &mut zone_id, &cfg, &token),
                                        Err(why) => return fail("follow_failed", why),
                                    }
                                    continue;
                                }
                                match Follow::start(
                                    moved,
                                    &cfg.zones.current(),
                                    token.clone(),
                                    cfg.zone_connect_timeout,
                                ) {
                                    Ok(f) => follow = Some(f),
                                    Err(e) => {
                                        // The gateway cannot follow: the client may.
                                        warn!("cannot follow the avatar: {e}");
                                        let _ = client.send_message(session, m);
                                    }
                                }
                            }
                            _ => {
                                let _ = client.send_message(session, m);
                            }
                        }
                    }
                    Some(ClientEvent::Failed(e)) => {
                        return unavailable(format!("zone at {zone_addr} unavailable: {e}"));
                    }
                    Some(ClientEvent::Closed { reason, .. }) => {
                        return unavailable(format!("zone at {zone_addr} ended the session: {reason}"));
                    }
                    None => return,
                },
                ev = next_follow_event(&mut follow) => {
                    let step = follow.as_mut().map_or(Step::Wait, |f| f.on_event(ev));
                    match finish(step, &mut follow, &mut up, &mut zone_addr, &client, session) {
                        Ok(sw) => switched(sw, &mut standby, &mut zone_id, &cfg, &token),
                        Err(why) => return fail("follow_failed", why),
                    }
                }
                () = tokio::time::sleep_until(standby_poll), if !standby.is_empty() => {
                    poll_standby(&mut standby);
                    // Often while one still opens, rarely once all are idle.
                    let every = if standby.iter().all(Follow::is_welcomed) {
                        STANDBY_IDLE_POLL
                    } else {
                        STANDBY_POLL
                    };
                    standby_poll = tokio::time::Instant::now() + every;
                }
                () = sleep_until(follow_timer) => {
                    let step = follow.as_mut().map_or(Step::Wait, Follow::on_timer);
                    match finish(step, &mut follow, &mut up, &mut zone_addr, &client, session) {
                        Ok(sw) => switched(sw, &mut standby, &mut zone_id, &cfg, &token),
                        Err(why) => return fail("follow_failed", why),
                    }
                }
            }
        }
    }
    .instrument(span)
    .await
}

/// How often standby sessions are looked at while one of them still opens.
const STANDBY_POLL: Duration = Duration::from_millis(20);
/// How often idle standby sessions are looked at (what they received is drained; one that
/// ended is dropped).
const STANDBY_IDLE_POLL: Duration = Duration::from_secs(1);

/// Opens a standby session to every zone of the list but the one at `current`.
fn open_standby(cfg: &GatewayConfig, current: SocketAddr, token: Option<&String>) -> Vec<Follow> {
    let zones = cfg.zones.current();
    (0..fabric_core::zones::MAX_ZONES as u32)
        .filter_map(|k| zones.get(k))
        .filter_map(|e| {
            let addr: SocketAddr = e.address.parse().ok()?;
            let pins = CertHash::parse_list(&e.cert_hashes).ok()?;
            (addr != current).then(|| {
                Follow::standby(
                    e.zone,
                    addr,
                    &pins,
                    token.cloned(),
                    cfg.zone_connect_timeout,
                )
                .ok()
            })?
        })
        .collect()
}

/// Handles what the standby sessions received and resends their `hello`s; drops the ones
/// that ended.
fn poll_standby(standby: &mut Vec<Follow>) {
    let now = tokio::time::Instant::now();
    standby.retain_mut(|f| {
        while let Some(ev) = f.up.try_next_event() {
            if let Step::Failed(why) = f.on_event(Some(ev)) {
                debug!(zone = ?f.zone, "standby session dropped: {why}");
                return false;
            }
        }
        if f.next_send() <= now && matches!(f.on_timer(), Step::Failed(_)) {
            return false;
        }
        true
    });
}

/// After a switch: the replaced session becomes the standby for its zone (the
/// way back), or is closed without standby sessions.
fn switched(
    sw: Switch,
    standby: &mut Vec<Follow>,
    zone_id: &mut Option<u32>,
    cfg: &GatewayConfig,
    token: &Option<String>,
) {
    let Switch::Done(old, addr, now) = sw else {
        return;
    };
    let from = zone_id.replace(now);
    if cfg.standby {
        standby.push(Follow::idle(old, addr, from, token.clone(), true));
    } else {
        old.close("followed the avatar to another zone");
    }
}

/// The next event of the follow in progress (never, without one).
async fn next_follow_event(follow: &mut Option<Follow>) -> Option<ClientEvent> {
    match follow {
        Some(f) => f.up.next_event().await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `at` (forever without one).
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What became of a follow after a step.
enum Switch {
    /// Still under way (or none).
    No,
    /// The avatar's zone now serves the session: the session it replaced, its address, and
    /// the zone that serves now.
    Done(Client, SocketAddr, u32),
}

/// Acts on a follow's step: on [`Step::Done`] the new session replaces `up` (the client hears
/// `zone_changed`, then the held datagrams). Returns why following failed, if it did.
fn finish(
    step: Step,
    follow: &mut Option<Follow>,
    up: &mut Client,
    zone_addr: &mut SocketAddr,
    client: &ServerSender,
    session: u64,
) -> Result<Switch, String> {
    match step {
        Step::Wait => Ok(Switch::No),
        Step::Failed(why) => {
            let Some(f) = follow.take() else {
                return Ok(Switch::No);
            };
            f.up.close("giving up");
            let (id, zone) = f.moved.map_or((0, 0), |m| (m.id, m.zone));
            Err(format!(
                "could not follow avatar {id} to zone {zone} at {}: {why}",
                f.addr
            ))
        }
        Step::Done => {
            let Some(f) = follow.take() else {
                return Ok(Switch::No);
            };
            let Some(moved) = f.moved else {
                return Ok(Switch::No);
            };
            let old = std::mem::replace(up, f.up);
            let old_addr = std::mem::replace(zone_addr, f.addr);
            info!(avatar = moved.id, zone = moved.zone, addr = %f.addr, "now bridged to the avatar's zone");
            let changed = ControlMessage::ZoneChanged {
                id: moved.id,
                zone: moved.zone,
            };
            // As a datagram, so that it comes before the new zone's packets (datagrams of a
            // session arrive in order unless lost), and reliably, in case it is lost.
            let _ = client.send_datagram(session, &changed.encode());
            let _ = client.send_message(session, changed.encode());
            for d in f.held {
                let _ = client.send_datagram(session, &d);
            }
            Ok(Switch::Done(old, old_addr, moved.zone))
        }
    }
}

/// Remembers the join token of a client's `hello`; true when `d` is a `hello`.
fn note_hello(d: &[u8], token: &mut Option<String>) -> bool {
    if !ControlMessage::is_control(d) {
        return false;
    }
    match ControlMessage::decode(d) {
        Ok(ControlMessage::Hello { token: t, .. }) => {
            if t.is_some() {
                *token = t;
            }
            true
        }
        _ => false,
    }
}

/// Forwards one item to the zone. A datagram that cannot go is dropped (datagrams may be
/// lost); a reliable message that cannot go ends the client session with the reason, so it is
/// never lost silently.
fn forward_up(up: &Client, item: Inbound, client: &ServerSender, session: u64) {
    match item {
        Inbound::Datagram(d) => {
            if let Err(e) = up.send_datagram(&d) {
                debug!("datagram not forwarded to the zone: {e}");
            }
        }
        Inbound::Message(m) => {
            if let Err(e) = up.send_message(m) {
                let why = format!("a reliable message could not be forwarded to the zone: {e}");
                warn!("{why}");
                client.close_session(session, close_code::UPSTREAM, &why);
            }
        }
    }
}
