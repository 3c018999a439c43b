//! Smoke tests of the real TUN link: a UDP echo sees exactly the losses the seeded model
//! predicts, delay shows in the round trip, and TCP gets through packet-level loss.
//!
//! They need root (namespaces, `/dev/net/tun`); without it they print why and pass as skipped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fabric_linksim::netns::{CLIENT_ADDR, SERVER_ADDR};
use fabric_linksim::{Fate, Link, LinkConfig, LinkSim, available, in_netns};

fn skip() -> bool {
    if let Err(e) = available() {
        eprintln!("SKIPPED: {e} (these tests need root, /dev/net/tun and iproute2)");
        return true;
    }
    false
}

fn tag(name: &str) -> String {
    format!("fbl{}{name}", std::process::id() % 100_000)
}

fn delivered(f: Fate) -> bool {
    !matches!(f, Fate::Dropped | Fate::QueueFull)
}

/// Starts a UDP echo on the server side; returns its address and a stop flag.
fn udp_echo(sim: &LinkSim) -> (SocketAddr, Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let sock = in_netns(sim.server_ns(), || UdpSocket::bind((SERVER_ADDR, 0)))
        .expect("enter server namespace")
        .expect("bind echo socket");
    let addr = sock.local_addr().expect("echo address");
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let h = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut echoed = 0;
        while !s2.load(Ordering::Relaxed) {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                sock.send_to(&buf[..n], from).expect("echo send");
                echoed += 1;
            }
        }
        echoed
    });
    (addr, stop, h)
}

#[test]
fn udp_echo_loses_exactly_what_the_seed_says() {
    if skip() {
        return;
    }
    const N: u32 = 2000;
    const SEED: u64 = 0xFAB_2026;
    let cfg = LinkConfig {
        delay: Duration::from_millis(1),
        loss: 0.1,
        ..Default::default()
    };
    let mut sim = LinkSim::start(&tag("u"), cfg.clone(), cfg.clone(), SEED).expect("start link");
    let (echo, stop, h) = udp_echo(&sim);
    let client = in_netns(sim.client_ns(), || UdpSocket::bind((CLIENT_ADDR, 0)))
        .expect("enter client namespace")
        .expect("bind client");
    client
        .set_read_timeout(Some(Duration::from_millis(5)))
        .expect("timeout");
    let mut got = vec![false; N as usize];
    let mut buf = [0u8; 64];
    let mut drain = |got: &mut Vec<bool>| {
        while let Ok(n) = client.recv(&mut buf) {
            assert_eq!(n, 4, "echo of a 4-byte datagram");
            let i = u32::from_le_bytes(buf[..4].try_into().expect("4 bytes"));
            assert!(
                !got[i as usize],
                "datagram {i} echoed twice without duplication"
            );
            got[i as usize] = true;
        }
    };
    client.connect(echo).expect("connect");
    // Paced so neither the TUN queue nor a socket buffer drops anything on its own.
    for i in 0..N {
        client.send(&i.to_le_bytes()).expect("send");
        if i % 20 == 19 {
            drain(&mut got);
        }
    }
    let deadline = Instant::now() + Duration::from_millis(300);
    while Instant::now() < deadline {
        drain(&mut got);
    }
    stop.store(true, Ordering::Relaxed);
    let echoed = h.join().expect("echo thread");
    let stats = sim.stop();
    assert_eq!(
        stats.to_server.link.received,
        u64::from(N),
        "every datagram reached the conditioner (no other IPv4 traffic, no kernel drops)"
    );
    assert_eq!(
        stats.to_server.write_errors + stats.to_client.write_errors,
        0,
        "no write errors"
    );

    // Replay the run's decisions on plain links.
    let (up_seed, down_seed) = LinkSim::direction_seeds(SEED);
    let mut up = Link::new(cfg.clone(), up_seed).expect("up");
    let mut down = Link::new(cfg, down_seed).expect("down");
    let mut expected = vec![false; N as usize];
    let mut reached_server = 0;
    for i in 0..N {
        if delivered(up.push(Duration::ZERO, i)) {
            reached_server += 1;
            expected[i as usize] = delivered(down.push(Duration::ZERO, i));
        }
    }
    assert_eq!(
        echoed, reached_server,
        "the echo server saw what the model let through"
    );
    assert_eq!(got, expected, "exactly the predicted datagrams came back");
    let lost = expected.iter().filter(|&&e| !e).count() as f64 / f64::from(N);
    // Two 10 % links: 1 - 0.9^2 = 19 % round-trip loss.
    assert!(
        (0.16..0.22).contains(&lost),
        "round-trip loss {lost} not near 0.19"
    );
    eprintln!("udp echo: {N} sent, round-trip loss {:.2} %", lost * 100.0);
}

#[test]
fn delay_shows_in_the_round_trip() {
    if skip() {
        return;
    }
    let cfg = LinkConfig {
        delay: Duration::from_millis(25),
        ..Default::default()
    };
    let sim = LinkSim::start(&tag("d"), cfg.clone(), cfg, 1).expect("start link");
    let (echo, stop, h) = udp_echo(&sim);
    let client = in_netns(sim.client_ns(), || UdpSocket::bind((CLIENT_ADDR, 0)))
        .expect("enter client namespace")
        .expect("bind client");
    client
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let mut rtts = Vec::new();
    for i in 0u32..5 {
        let t = Instant::now();
        client.send_to(&i.to_le_bytes(), echo).expect("send");
        let mut buf = [0u8; 8];
        client.recv(&mut buf).expect("echo within 1 s");
        rtts.push(t.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    h.join().expect("echo thread");
    for r in &rtts {
        assert!(
            *r >= Duration::from_millis(50) && *r < Duration::from_millis(150),
            "round trip {r:?} with 2 x 25 ms delay"
        );
    }
}

#[test]
fn tcp_gets_through_packet_loss() {
    if skip() {
        return;
    }
    let cfg = LinkConfig {
        delay: Duration::from_millis(2),
        loss: 0.05,
        ..Default::default()
    };
    let mut sim = LinkSim::start(&tag("t"), cfg.clone(), cfg, 9).expect("start link");
    let listener = in_netns(sim.server_ns(), || TcpListener::bind((SERVER_ADDR, 0)))
        .expect("enter server namespace")
        .expect("listen");
    let addr = listener.local_addr().expect("addr");
    const BYTES: usize = 300_000;
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut all = Vec::new();
        s.read_to_end(&mut all).expect("read");
        all
    });
    let mut stream = in_netns(sim.client_ns(), move || TcpStream::connect(addr))
        .expect("enter client namespace")
        .expect("connect");
    let data: Vec<u8> = (0..BYTES).map(|i| (i % 251) as u8).collect();
    stream.write_all(&data).expect("write");
    drop(stream);
    let got = server.join().expect("server thread");
    assert_eq!(got, data, "TCP delivered every byte in order despite loss");
    let s = sim.stop();
    assert!(
        s.to_server.link.dropped > 0,
        "some TCP segments were dropped: {s:?}"
    );
}
