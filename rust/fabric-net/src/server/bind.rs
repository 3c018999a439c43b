//! Binding a server's sockets: the UDP endpoint of WebTransport (with its QUIC settings) and
//! the TCP listener of the WebSocket fallback, on one port number.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use wtransport::Endpoint;

use super::{ServerConfig, WtEndpoint};
use crate::NetError;
use crate::cert::ServerIdentity;
use crate::congestion::CongestionControl;
use crate::error::Cause;
use crate::lanes;

/// Binds what `cfg` asks for: the WebTransport endpoint, the TCP listener, and the port
/// number they share.
pub(super) fn bind_sockets(
    cfg: &ServerConfig,
) -> Result<(Option<WtEndpoint>, Option<std::net::TcpListener>, u16), NetError> {
    // With port 0 and both transports, the TCP port must match the UDP one: retry when
    // the number the UDP socket got is taken on TCP.
    let tries = if cfg.bind.port() == 0 && cfg.webtransport && cfg.websocket {
        20
    } else {
        1
    };
    let mut bound = None;
    for attempt in 1..=tries {
        let endpoint = if cfg.webtransport {
            Some(bind_webtransport(cfg)?)
        } else {
            None
        };
        let port = match &endpoint {
            Some(e) => e
                .local_addr()
                .map_err(|e| NetError::bind(format_args!("UDP {}", cfg.bind), e))?
                .port(),
            None => cfg.bind.port(),
        };
        if !cfg.websocket {
            bound = Some((endpoint, None, port));
            break;
        }
        let tcp_addr = SocketAddr::new(cfg.bind.ip(), port);
        match std::net::TcpListener::bind(tcp_addr) {
            Ok(l) => {
                let port = l.local_addr().map(|a| a.port()).unwrap_or(port);
                bound = Some((endpoint, Some(l), port));
                break;
            }
            Err(e) if attempt == tries => {
                return Err(NetError::bind(format_args!("TCP {tcp_addr}"), e));
            }
            Err(_) => continue,
        }
    }
    Ok(bound.expect("bound or returned an error"))
}

/// The WebTransport server configuration: socket (a bound one, or an address when only the
/// certificate is being replaced), identity, timeouts, stream limits.
pub(super) fn wt_config(
    bind: Result<std::net::UdpSocket, SocketAddr>,
    identity: &ServerIdentity,
    keep_alive: Duration,
    idle_timeout: Duration,
    congestion: CongestionControl,
) -> Result<wtransport::ServerConfig, NetError> {
    let builder = wtransport::ServerConfig::builder();
    let builder = match bind {
        Ok(socket) => builder.with_bind_socket(socket),
        Err(addr) => builder.with_bind_address(addr),
    };
    let mut wt_cfg = builder
        .with_identity(identity.identity.clone_identity())
        .keep_alive_interval(Some(keep_alive))
        .max_idle_timeout(Some(idle_timeout))
        .map_err(|e| NetError::IdleTimeout(Cause::new(e)))?
        .build();
    // One stream per reliable channel: room for all 256 of them.
    let transport = &mut wt_cfg.quic_config_mut().transport;
    if let Some(t) = Arc::get_mut(transport) {
        t.max_concurrent_uni_streams(wtransport::quinn::VarInt::from_u32(lanes::MAX_UNI_STREAMS));
        congestion.apply(t);
    }
    Ok(wt_cfg)
}

fn bind_webtransport(cfg: &ServerConfig) -> Result<WtEndpoint, NetError> {
    let bind_err = |e: std::io::Error| NetError::bind(format_args!("UDP {}", cfg.bind), e);
    let socket = crate::udp::bind(cfg.bind, crate::udp::SERVER_RECV_BUFFER).map_err(bind_err)?;
    let wt_cfg = wt_config(
        Ok(socket),
        &cfg.identity,
        cfg.keep_alive,
        cfg.idle_timeout,
        cfg.congestion,
    )?;
    Endpoint::server(wt_cfg).map_err(bind_err)
}
