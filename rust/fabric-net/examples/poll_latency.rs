//! Where a round trip's time goes when the owner polls like a Godot main loop.
//!
//! ```sh
//! cargo run --release -p fabric-net --example poll_latency -- --transport wt
//! cargo run --release -p fabric-net --example poll_latency -- --transport wt --phase-us 300
//! ```
//!
//! Two processes (this binary runs itself again as the server: the benchmark's two Godot
//! processes each have their own runtime too) exchange 64-byte echoes, 500 a second, first as
//! datagrams, then as reliable messages, over one of:
//!
//! - `udp`: a non-blocking `std::net::UdpSocket` read and written by the frame loop itself, as
//!   ENet does inside Godot (no other thread involved);
//! - `udp-threads`: the same socket served by two plain threads (a blocking receiver and a
//!   sender) that hand datagrams to and from the frame loop through `std::sync::mpsc`;
//! - `udp-tokio`: the same, served by two tasks on the fabric-net runtime through tokio
//!   unbounded channels, as fabric-net hands over its events;
//! - `wt`: fabric-net WebTransport (`Server` / `Client`: QUIC datagrams, reliable streams);
//! - `ws`: fabric-net's WebSocket fallback (`wss://`, pinned by the certificate hash).
//!
//! Both processes run a frame loop paced like Godot's `Engine.max_fps` (`--fps`, default
//! 1000): drain every waiting event (`try_next_event` / `recv_from`), echo or record, send
//! what is due, sleep until the next frame. With `--phase-us P` both loops instead wake on a
//! fixed grid of the shared clock, the server P µs after the client, so the phase between them
//! stays where it is put (Godot's pacing lets it drift and re-lock). `--workers N` gives each
//! process a runtime of N workers instead of fabric-net's shared one (2).
//!
//! Each message carries the client's send time and frame start and the server's drain time
//! and frame start (wall clock, which both processes share), so a round trip splits into
//! client send -> server drain and server drain -> client drain, and the client sees the phase
//! between the two loops. It is a measurement tool, not a test.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fabric_net::{
    CertHash, Client, ClientConfig, ClientEvent, Server, ServerConfig, ServerEvent, ServerIdentity,
};

/// Message size; the first byte says reliable (1) or not (0), then: sequence at 4, client send
/// time at 8, client frame start at 16, server drain time at 24, server frame start at 32.
const SIZE: usize = 64;

struct Args {
    role: String,
    transport: String,
    fps: u32,
    phase_us: Option<u64>,
    workers: Option<usize>,
    messages: u32,
    rate: u32,
}

fn parse_args() -> Args {
    let mut a = Args {
        role: "client".into(),
        transport: "wt".into(),
        fps: 1000,
        phase_us: None,
        workers: None,
        messages: 2000,
        rate: 500,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    for kv in v.chunks(2) {
        let val = kv.get(1).cloned().unwrap_or_default();
        match kv[0].as_str() {
            "--role" => a.role = val,
            "--transport" => a.transport = val,
            "--fps" => a.fps = val.parse().expect("--fps N"),
            "--phase-us" => a.phase_us = Some(val.parse().expect("--phase-us N")),
            "--workers" => a.workers = Some(val.parse().expect("--workers N")),
            "--messages" => a.messages = val.parse().expect("--messages N"),
            "--rate" => a.rate = val.parse().expect("--rate N"),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as u64
}

fn put(m: &mut [u8], at: usize, v: u64) {
    m[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn get(m: &[u8], at: usize) -> i64 {
    i64::from_le_bytes(m[at..at + 8].try_into().expect("8 bytes"))
}

/// Godot's frame pacing (`Main::iteration` with `Engine.max_fps`): a fixed-rate deadline,
/// clamped to one frame either side of now; or, with `grid`, wake-ups at that offset (µs) on a
/// fixed grid of the wall clock.
struct Pacer {
    period: Duration,
    target: Instant,
    grid: Option<u64>,
    /// When the current frame began (µs, wall clock).
    frame_start: u64,
}

impl Pacer {
    fn new(fps: u32, grid: Option<u64>) -> Self {
        Self {
            period: Duration::from_micros(1_000_000 / u64::from(fps.max(1))),
            target: Instant::now(),
            grid,
            frame_start: wall_us(),
        }
    }

    fn end_frame(&mut self) {
        if let Some(offset) = self.grid {
            let p = self.period.as_micros() as u64;
            let now = wall_us();
            let next = ((now - offset) / p + 1) * p + offset;
            std::thread::sleep(Duration::from_micros(next - now));
        } else {
            self.target += self.period;
            let now = Instant::now();
            if now < self.target {
                std::thread::sleep(self.target - now);
            }
            let now = Instant::now();
            self.target = self.target.clamp(now - self.period, now + self.period);
        }
        self.frame_start = wall_us();
    }
}

type Bridged = (Vec<u8>, SocketAddr);

/// One transport seen from the frame loop: send, and drain what arrived.
enum Link {
    Udp(UdpSocket, Option<SocketAddr>),
    UdpThreads {
        to_net: std::sync::mpsc::Sender<Bridged>,
        from_net: std::sync::mpsc::Receiver<Bridged>,
        peer: Option<SocketAddr>,
    },
    UdpTokio {
        to_net: tokio::sync::mpsc::UnboundedSender<Bridged>,
        from_net: tokio::sync::mpsc::UnboundedReceiver<Bridged>,
        peer: Option<SocketAddr>,
    },
    Client(Client),
    Server(Server, Option<u64>),
}

impl Link {
    /// Every message waiting now, with whether it came reliably.
    fn drain(&mut self, out: &mut Vec<(Vec<u8>, bool)>) {
        let tag = |m: Vec<u8>| {
            let reliable = m.first() == Some(&1);
            (m, reliable)
        };
        match self {
            Self::Udp(s, peer) => {
                let mut buf = [0u8; 2048];
                while let Ok((n, from)) = s.recv_from(&mut buf) {
                    *peer = Some(from);
                    out.push(tag(buf[..n].to_vec()));
                }
            }
            Self::UdpThreads { from_net, peer, .. } => {
                while let Ok((m, from)) = from_net.try_recv() {
                    *peer = Some(from);
                    out.push(tag(m));
                }
            }
            Self::UdpTokio { from_net, peer, .. } => {
                while let Ok((m, from)) = from_net.try_recv() {
                    *peer = Some(from);
                    out.push(tag(m));
                }
            }
            Self::Client(c) => {
                while let Some(ev) = c.try_next_event() {
                    match ev {
                        ClientEvent::Datagram(d) => out.push((d.to_vec(), false)),
                        ClientEvent::Message(m) => out.push((m, true)),
                        ClientEvent::Failed(e) => panic!("client failed: {e}"),
                        ClientEvent::Closed { reason, .. } => panic!("closed: {reason}"),
                        ClientEvent::Connected { .. } => {}
                    }
                }
            }
            Self::Server(s, session) => {
                while let Some(ev) = s.try_next_event() {
                    match ev {
                        ServerEvent::Opened { session: id, .. } => *session = Some(id),
                        ServerEvent::Datagram { data, .. } => out.push((data.to_vec(), false)),
                        ServerEvent::Message { data, .. } => out.push((data, true)),
                        ServerEvent::Closed { .. } => std::process::exit(0),
                        ServerEvent::CertRotated { .. } => {}
                    }
                }
            }
        }
    }

    fn send(&self, data: &[u8], reliable: bool) {
        let r = match self {
            Self::Udp(s, peer) => s
                .send_to(data, peer.expect("peer known"))
                .map(drop)
                .map_err(|e| e.to_string()),
            Self::UdpThreads { to_net, peer, .. } => to_net
                .send((data.to_vec(), peer.expect("peer known")))
                .map_err(|e| e.to_string()),
            Self::UdpTokio { to_net, peer, .. } => to_net
                .send((data.to_vec(), peer.expect("peer known")))
                .map_err(|e| e.to_string()),
            Self::Client(c) if reliable => c.send_message(data.to_vec()).map_err(|e| e.to_string()),
            Self::Client(c) => c.send_datagram(data).map_err(|e| e.to_string()),
            Self::Server(s, session) => {
                let id = session.expect("session open");
                if reliable {
                    s.sender().send_message(id, data.to_vec())
                } else {
                    s.send_datagram(id, data)
                }
                .map_err(|e| e.to_string())
            }
        };
        if let Err(e) = r {
            eprintln!("send failed: {e}");
        }
    }
}

/// A UDP link of kind `udp`, `udp-threads` or `udp-tokio` on `s`, sending to `peer` first.
fn udp_link(kind: &str, s: UdpSocket, peer: Option<SocketAddr>) -> Link {
    match kind {
        "udp" => {
            s.set_nonblocking(true).expect("non-blocking");
            Link::Udp(s, peer)
        }
        "udp-threads" => {
            let (to_net, rx) = std::sync::mpsc::channel::<Bridged>();
            let (tx, from_net) = std::sync::mpsc::channel();
            let out = s.try_clone().expect("socket clone");
            std::thread::spawn(move || {
                while let Ok((m, to)) = rx.recv() {
                    let _ = out.send_to(&m, to);
                }
            });
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while let Ok((n, from)) = s.recv_from(&mut buf) {
                    if tx.send((buf[..n].to_vec(), from)).is_err() {
                        return;
                    }
                }
            });
            Link::UdpThreads {
                to_net,
                from_net,
                peer,
            }
        }
        "udp-tokio" => {
            let rt = fabric_net::current_or_shared();
            let _enter = rt.enter();
            s.set_nonblocking(true).expect("non-blocking");
            let s = std::sync::Arc::new(tokio::net::UdpSocket::from_std(s).expect("tokio socket"));
            let (to_net, mut rx) = tokio::sync::mpsc::unbounded_channel::<Bridged>();
            let (tx, from_net) = tokio::sync::mpsc::unbounded_channel();
            let out = s.clone();
            rt.spawn(async move {
                while let Some((m, to)) = rx.recv().await {
                    let _ = out.send_to(&m, to).await;
                }
            });
            rt.spawn(async move {
                let mut buf = [0u8; 2048];
                while let Ok((n, from)) = s.recv_from(&mut buf).await {
                    if tx.send((buf[..n].to_vec(), from)).is_err() {
                        return;
                    }
                }
            });
            Link::UdpTokio {
                to_net,
                from_net,
                peer,
            }
        }
        other => panic!("unknown transport {other} (udp, udp-threads, udp-tokio, wt, ws)"),
    }
}

fn server(a: &Args) {
    let bind: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let mut link = if a.transport.starts_with("udp") {
        let s = UdpSocket::bind(bind).expect("bind");
        println!("READY {} -", s.local_addr().expect("addr").port());
        udp_link(&a.transport, s, None)
    } else {
        let mut cfg = ServerConfig::new(bind, ServerIdentity::self_signed_local().expect("cert"));
        cfg.webtransport = a.transport == "wt";
        cfg.websocket = a.transport == "ws";
        let s = Server::start(cfg).expect("server starts");
        let (port, hash) = (s.local_addr().port(), s.cert_hash().to_base64());
        println!("READY {port} {hash}");
        Link::Server(s, None)
    };
    let mut pacer = Pacer::new(a.fps, a.phase_us);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        link.drain(&mut got);
        for (mut m, reliable) in got.drain(..) {
            if m.len() >= SIZE {
                put(&mut m, 24, wall_us());
                put(&mut m, 32, pacer.frame_start);
                link.send(&m, reliable);
            } else if m == b"bye" {
                return;
            }
        }
        pacer.end_frame();
    }
}

fn pct(sorted: &[i64], p: usize) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len()).div_ceil(100).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1e3
}

fn connect(a: &Args, port: &str, hash: &str) -> Link {
    if a.transport.starts_with("udp") {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let to = format!("127.0.0.1:{port}").parse().expect("addr");
        return udp_link(&a.transport, s, Some(to));
    }
    let url = if a.transport == "wt" {
        format!("https://127.0.0.1:{port}/wt")
    } else {
        format!("wss://127.0.0.1:{port}/ws")
    };
    let mut c = Client::connect(ClientConfig::new(url, CertHash::parse(hash).expect("hash")));
    let t0 = Instant::now();
    loop {
        match c.try_next_event() {
            Some(ClientEvent::Connected { .. }) => return Link::Client(c),
            Some(other) => panic!("not connected: {other:?}"),
            None if t0.elapsed() > Duration::from_secs(10) => panic!("connect timeout"),
            None => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

fn client(a: &Args) {
    let exe = std::env::current_exe().expect("own path");
    let mut child = Command::new(exe)
        .args(["--role", "server", "--transport", &a.transport])
        .args(["--fps", &a.fps.to_string()])
        .args(
            a.phase_us
                .iter()
                .flat_map(|p| ["--phase-us".to_owned(), p.to_string()]),
        )
        .args(
            a.workers
                .iter()
                .flat_map(|w| ["--workers".to_owned(), w.to_string()]),
        )
        .stdout(Stdio::piped())
        .spawn()
        .expect("server process starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("READY line");
    let w: Vec<&str> = line.split_whitespace().collect();
    let mut link = connect(a, w[1], w[2]);
    let period = 1_000_000 / i64::from(a.fps.max(1));
    println!(
        "transport {} fps {} phase {} ({} messages per phase at {}/s)",
        a.transport,
        a.fps,
        a.phase_us
            .map_or_else(|| "free".to_owned(), |p| format!("{p} us")),
        a.messages,
        a.rate
    );
    println!(
        "{:<10} {:>5} {:>20} {:>18} {:>18} {:>11} {:>8}",
        "phase",
        "lost",
        "RTT p50/p95/p99 ms",
        "c->s p50/p95 ms",
        "s->c p50/p95 ms",
        "loops <100us",
        "c->s<P"
    );
    // The warm-up opens the reliable channel's stream.
    for phase in ["warm-up", "unreliable", "reliable"] {
        let reliable = phase != "unreliable";
        let n = if phase == "warm-up" { 100 } else { a.messages };
        let (mut rtt, mut up, mut down) = (Vec::new(), Vec::new(), Vec::new());
        let mut near = 0usize;
        let mut pacer = Pacer::new(a.fps, a.phase_us.map(|_| 0));
        let start = Instant::now();
        let mut sent = 0u32;
        let mut got = Vec::new();
        let mut last_send = start;
        loop {
            link.drain(&mut got);
            let now = wall_us() as i64;
            for (m, _) in got.drain(..) {
                if m.len() < SIZE {
                    continue;
                }
                let (t_send, t_srv) = (get(&m, 8), get(&m, 24));
                rtt.push(now - t_send);
                up.push(t_srv - t_send);
                down.push(now - t_srv);
                // Phase of the server's loop against the client's, folded into +-period/2.
                let d = (get(&m, 32) - get(&m, 16)).rem_euclid(period);
                near += usize::from(d.min(period - d) < 100);
            }
            let due = ((start.elapsed().as_secs_f64() * f64::from(a.rate)) as u32 + 1).min(n);
            while sent < due {
                let mut m = [0u8; SIZE];
                m[0] = u8::from(reliable);
                m[4..8].copy_from_slice(&sent.to_le_bytes());
                put(&mut m, 8, wall_us());
                put(&mut m, 16, pacer.frame_start);
                link.send(&m, reliable);
                sent += 1;
                last_send = Instant::now();
            }
            let all = rtt.len() as u32 == n;
            if sent == n && (all || last_send.elapsed() > Duration::from_secs(1)) {
                break;
            }
            pacer.end_frame();
        }
        if phase == "warm-up" {
            continue;
        }
        // With a held phase P, a message drained by the server's first frame after its send
        // reached the server's queue in less than P: this share is P(hand-off latency < P).
        let caught = a.phase_us.map_or_else(
            || "-".to_owned(),
            |p| {
                let first = up.iter().filter(|&&u| u < p as i64 + period / 2).count();
                format!("{:.0}%", 100.0 * first as f64 / up.len().max(1) as f64)
            },
        );
        for v in [&mut rtt, &mut up, &mut down] {
            v.sort_unstable();
        }
        println!(
            "{:<10} {:>4.1}% {:>20} {:>18} {:>18} {:>11} {:>8}",
            phase,
            100.0 * f64::from(n - rtt.len() as u32) / f64::from(n),
            format!(
                "{:.2} / {:.2} / {:.2}",
                pct(&rtt, 50),
                pct(&rtt, 95),
                pct(&rtt, 99)
            ),
            format!("{:.2} / {:.2}", pct(&up, 50), pct(&up, 95)),
            format!("{:.2} / {:.2}", pct(&down, 50), pct(&down, 95)),
            format!("{:.0}%", 100.0 * near as f64 / rtt.len().max(1) as f64),
            caught,
        );
    }
    link.send(b"bye", true);
    std::thread::sleep(Duration::from_millis(100));
    if let Link::Client(c) = &link {
        c.close("done");
    }
    let _ = child.wait();
}

fn main() {
    let a = parse_args();
    // --workers N: a runtime of this process's own with N workers instead of fabric-net's
    // shared one; Server::start and Client::connect use the runtime they are called in.
    let rt = a.workers.map(|n| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()
            .expect("runtime")
    });
    let _guard = rt.as_ref().map(|rt| rt.enter());
    if a.role == "server" {
        server(&a);
    } else {
        client(&a);
    }
}
