//! The session open path under stress: many WebTransport sessions opened over real loopback, in
//! parallel, each one exchanging a reliable message with an echo server and closing. Every open
//! must succeed; a failure prints its reason (this is the test that found the `261`
//! (`H3_FRAME_UNEXPECTED`) close, see `docs/session-protocol.md`).
//!
//! The suite runs a size CI affords. The full run is a command (its figures are in
//! `docs/benchmarks.md`):
//!
//! ```sh
//! FABRIC_OPEN_STRESS=10000 FABRIC_OPEN_STRESS_LOAD=2 \
//!   cargo test --release -p fabric-net --test open_stress -- --nocapture
//! ```
//!
//! `FABRIC_OPEN_STRESS` is the number of opens (default 300), `FABRIC_OPEN_STRESS_PARALLEL`
//! how many run at once (default 16), `FABRIC_OPEN_STRESS_LOAD` the number of busy threads
//! that load the CPUs meanwhile (default 1).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Path, spawn_echo, start_server, url};
use fabric_net::{Client, ClientConfig, ClientEvent};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Opens one session, exchanges one reliable message, closes. `Err` says what went wrong.
async fn open_once(cfg: ClientConfig, n: usize) -> Result<(), String> {
    let mut c = Client::connect(cfg);
    let deadline = Duration::from_secs(20);
    let step = |what: &'static str| move |_| format!("{what}: no event within 20 s");
    match tokio::time::timeout(deadline, c.next_event())
        .await
        .map_err(step("open"))?
    {
        Some(ClientEvent::Connected { .. }) => {}
        Some(ClientEvent::Failed(e)) => return Err(format!("open failed: {e}")),
        other => return Err(format!("open: unexpected {other:?}")),
    }
    let msg = format!("open {n}").into_bytes();
    c.send_message(msg.clone())
        .map_err(|e| format!("send: {e}"))?;
    loop {
        match tokio::time::timeout(deadline, c.next_event())
            .await
            .map_err(step("echo"))?
        {
            Some(ClientEvent::Message(m)) if m.ends_with(&msg) => break,
            Some(ClientEvent::Message(_) | ClientEvent::Datagram(_)) => {}
            other => return Err(format!("echo: unexpected {other:?}")),
        }
    }
    c.close("done");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_parallel_session_opens_all_succeed() {
    let total = env_or("FABRIC_OPEN_STRESS", 300);
    let parallel = env_or("FABRIC_OPEN_STRESS_PARALLEL", 16).max(1);
    let load = env_or("FABRIC_OPEN_STRESS_LOAD", 1);
    let server = start_server();
    let cfg = ClientConfig::new(url(&server, Path::WebTransport), server.cert_hash());
    let _echo = spawn_echo(server);

    // Busy threads compete with the runtime for the CPUs, as other builds do on CI.
    let stop = Arc::new(AtomicBool::new(false));
    let burners: Vec<_> = (0..load)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            })
        })
        .collect();

    let started = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut tasks = Vec::with_capacity(total);
    for n in 0..total {
        let permit = sem.clone().acquire_owned().await.expect("semaphore open");
        let cfg = cfg.clone();
        tasks.push(tokio::spawn(async move {
            let r = open_once(cfg, n).await;
            drop(permit);
            r
        }));
    }
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    for t in tasks {
        if let Err(why) = t.await.expect("open task did not panic") {
            *failures.entry(why).or_default() += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for b in burners {
        b.join().expect("burner thread");
    }
    let failed: usize = failures.values().sum();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "open stress: {total} opens, {parallel} at once, {load} busy threads: {failed} failures \
         in {secs:.1} s ({:.0} opens/s), {} handshakes retried after an HTTP/3 race",
        total as f64 / secs,
        fabric_net::client::handshake_retries()
    );
    for (why, n) in &failures {
        println!("  {n} x {why}");
    }
    assert_eq!(failed, 0, "every session open succeeds: {failures:#?}");
}
