//! `fabric-backend-bench`: load generator for the zone backend. Starts the backend in-process
//! on 127.0.0.1 (free port, `:memory:` SQLite unless `--db` says otherwise), registers shards,
//! then drives `GET /shards` and `PUT /shards/{id}` heartbeats from concurrent keep-alive
//! connections for a fixed time each and prints throughput and latency percentiles.
//!
//! ```text
//! cargo run --release -p fabric-backend --bin fabric-backend-bench -- --clients 32 --seconds 5
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use fabric_backend::client::Client;
use fabric_backend::model::{Heartbeat, RegisterShard};
use fabric_backend::{Bound, Config};
use hyper::Method;
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(about = "Load generator for fabric-backend")]
struct Args {
    /// Concurrent connections.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Seconds per scenario.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Shards registered (all listed by GET /shards).
    #[arg(long, default_value_t = 100)]
    shards: usize,
    /// Database for the embedded backend.
    #[arg(long, default_value = ":memory:")]
    db: String,
}

#[derive(Clone, Copy)]
enum Scenario {
    List,
    Heartbeat,
}

struct Outcome {
    name: String,
    requests: usize,
    errors: usize,
    elapsed: Duration,
    lat_us: Vec<u32>,
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

async fn run(
    addr: &str,
    scenario: Scenario,
    clients: usize,
    seconds: u64,
    shards: Arc<Vec<(Uuid, String)>>,
) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..clients {
        let client = Client::new(addr.to_owned());
        let shards = shards.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(64 * 1024);
            let mut errors = 0usize;
            let mut i = w;
            let beat = serde_json::to_vec(&Heartbeat {
                current_users: 1,
                asset_index_url: None,
                cert_hash: None,
                next_cert_hash: None,
            })
            .expect("serialise heartbeat");
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let ok = match scenario {
                    Scenario::List => client
                        .raw(Method::GET, "/shards", None, None, vec![])
                        .await
                        .map(|r| r.status.is_success()),
                    Scenario::Heartbeat => {
                        let (id, secret) = &shards[i % shards.len()];
                        i += clients;
                        client
                            .raw(
                                Method::PUT,
                                &format!("/shards/{id}"),
                                Some(secret),
                                Some("application/json"),
                                beat.clone(),
                            )
                            .await
                            .map(|r| r.status.is_success())
                    }
                };
                lat.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                if !matches!(ok, Ok(true)) {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let mut lat_us = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("worker");
        lat_us.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed();
    lat_us.sort_unstable();
    Outcome {
        name: match scenario {
            Scenario::List => format!("GET /shards ({} listed)", shards.len()),
            Scenario::Heartbeat => "PUT /shards/{id} heartbeat".to_owned(),
        },
        requests: lat_us.len(),
        errors,
        elapsed,
        lat_us,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.clients > 0 && args.shards > 0,
        "clients and shards must be > 0"
    );
    // Throughput from one address is what is measured: no rate limits.
    let config = Config::new("127.0.0.1:0".parse()?, args.db.clone()).without_rate_limits();
    let bound = Bound::bind(&config).await.context("start backend")?;
    let addr = bound.local_addr().to_string();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(bound.serve(async {
        let _ = stop_rx.await;
    }));

    let setup = Client::new(addr.clone());
    let key = setup.create_account("bench").await?.api_key;
    let mut shards = Vec::with_capacity(args.shards);
    for i in 0..args.shards {
        let reg = setup
            .register(
                &key,
                &RegisterShard {
                    address: None,
                    port: 7443 + (i % 100) as u32,
                    map: "plaza".into(),
                    name: format!("zone-{i}"),
                    cert_hash: "q0ANGmCZtlwHx6kn3pd3T6g0iE3KeTTqYy9x0c0O2tY=".into(),
                    next_cert_hash: None,
                    max_users: None,
                    public: None,
                    asset_index_url: Some(format!("http://assets.local/zone-{i}.caibx")),
                    fabric: None,
                },
            )
            .await?;
        shards.push((reg.id, reg.shard_secret));
    }
    let shards = Arc::new(shards);

    println!(
        "fabric-backend-bench: backend on {addr} (db {}), {} clients, {} s per scenario, {} shards, {} CPUs",
        args.db,
        args.clients,
        args.seconds,
        args.shards,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("| scenario | requests | errors | req/s | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for scenario in [Scenario::List, Scenario::Heartbeat] {
        let o = run(&addr, scenario, args.clients, args.seconds, shards.clone()).await;
        println!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} |",
            o.name,
            o.requests,
            o.errors,
            o.requests as f64 / o.elapsed.as_secs_f64(),
            percentile(&o.lat_us, 0.50),
            percentile(&o.lat_us, 0.99),
            percentile(&o.lat_us, 1.0),
        );
    }
    let _ = stop_tx.send(());
    server.await??;
    Ok(())
}
