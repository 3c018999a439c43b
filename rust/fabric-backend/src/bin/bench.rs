//! `fabric-backend-bench`: load generator for the zone backend. For each `--db` (given once or
//! more; `:memory:` SQLite by default) and each `--replicas` count, starts that many backends
//! in-process on 127.0.0.1 sharing the database, registers shards, then drives `GET /shards`
//! (the first page, and pages anywhere in the listing) and `PUT /shards/{id}` heartbeats from concurrent keep-alive connections spread over the
//! replicas for a fixed time each, and prints one Markdown table of throughput and latency
//! percentiles for every configuration. The shards are deleted again after each configuration,
//! so a database can be reused.
//!
//! ```text
//! cargo run --release -p fabric-backend --bin fabric-backend-bench -- --clients 32 --seconds 5 \
//!     --db /tmp/bench.sqlite3 --db postgres://postgres@127.0.0.1:55432/bench --replicas 1 --replicas 2
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use fabric_backend::client::Client;
use fabric_backend::model::{Heartbeat, RegisterShard, ShardQuery};
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
    /// Databases to measure, one after the other (repeat the option).
    #[arg(long, default_values_t = vec![":memory:".to_owned()])]
    db: Vec<String>,
    /// Backend replicas sharing the database (repeat the option to measure several counts;
    /// more than 1 needs a database several processes can share: PostgreSQL or a file).
    #[arg(long, default_values_t = vec![1usize])]
    replicas: Vec<usize>,
}

/// A label for a database URL or path (no credentials).
fn db_label(db: &str) -> String {
    if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        "PostgreSQL".to_owned()
    } else if db == ":memory:" {
        "SQLite `:memory:`".to_owned()
    } else {
        "SQLite file (WAL)".to_owned()
    }
}

#[derive(Clone, Copy)]
enum Scenario {
    /// `GET /shards`: the first page (the default 100).
    List,
    /// `GET /shards?after=…`: a page of 100 anywhere in the listing (cursors cycled).
    DeepPage,
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
    addrs: &[String],
    scenario: Scenario,
    clients: usize,
    seconds: u64,
    shards: Arc<Vec<(Uuid, String)>>,
    cursors: Arc<Vec<String>>,
) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..clients {
        let client = Client::new(addrs[w % addrs.len()].clone());
        let shards = shards.clone();
        let cursors = cursors.clone();
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
                    Scenario::DeepPage => {
                        let after = &cursors[i % cursors.len().max(1)];
                        i += clients;
                        client
                            .raw(
                                Method::GET,
                                &format!("/shards?limit=100&after={after}"),
                                None,
                                None,
                                vec![],
                            )
                            .await
                            .map(|r| r.status.is_success())
                    }
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
            Scenario::List => format!("GET /shards (first page of {})", shards.len().min(100)),
            Scenario::DeepPage => format!(
                "GET /shards?after= (any of {} pages of 100)",
                cursors.len() + 1
            ),
            Scenario::Heartbeat => "PUT /shards/{id} heartbeat".to_owned(),
        },
        requests: lat_us.len(),
        errors,
        elapsed,
        lat_us,
    }
}

/// Starts `replicas` backends on `db`, registers `shards`, measures both scenarios, deletes the
/// shards and stops the backends; returns the table rows.
async fn measure(args: &Args, db: &str, replicas: usize) -> anyhow::Result<Vec<String>> {
    let mut config = Config::new("127.0.0.1:0".parse()?, db.to_owned()).without_rate_limits();
    // Scale is what is measured: one account registers every shard.
    config.max_shards_per_account = u64::MAX;
    // Registering 10,000 shards can take longer than the default 30 s of freshness: keep every
    // shard listed for the whole run, so each listing covers all of them.
    config.stale_after_ms = 3_600_000;
    // PostgreSQL replicas are given their signing keys (they are never kept in the database):
    // one key file for all of them, as an operator would share it.
    let key_file = fabric_backend::store::postgres::PgStore::is_url(db).then(|| {
        std::env::temp_dir().join(format!(
            "fabric-backend-bench-{}.join-keys",
            Uuid::new_v4().simple()
        ))
    });
    config.join_key_file = key_file.clone();
    let mut addrs = Vec::new();
    let mut stops = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..replicas {
        let bound = Bound::bind(&config).await.context("start backend")?;
        addrs.push(bound.local_addr().to_string());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop_tx);
        servers.push(tokio::spawn(bound.serve(async {
            let _ = stop_rx.await;
        })));
    }

    let setup = Client::new(addrs[0].clone());
    let name = format!("bench-{}", Uuid::new_v4().simple());
    let key = setup.create_account(&name).await?.api_key;
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
        if (i + 1) % 1000 == 0 {
            eprintln!(
                "  {}: registered {} of {} shards",
                db_label(db),
                i + 1,
                args.shards
            );
        }
    }
    let shards = Arc::new(shards);
    // Every page's cursor, by walking the listing once (also checks it is complete).
    let mut cursors = Vec::new();
    let mut query = ShardQuery {
        limit: Some(100),
        ..ShardQuery::default()
    };
    let mut listed = 0;
    loop {
        let page = setup.list_page(None, &query).await?;
        listed += page.shards.len();
        match page.next {
            Some(next) => {
                cursors.push(next.clone());
                query.after = Some(next);
            }
            None => break,
        }
    }
    anyhow::ensure!(
        listed == shards.len(),
        "walking the pages listed {listed} of {} shards",
        shards.len()
    );
    let cursors = Arc::new(cursors);
    let mut rows = Vec::new();
    for scenario in [Scenario::List, Scenario::DeepPage, Scenario::Heartbeat] {
        let o = run(
            &addrs,
            scenario,
            args.clients,
            args.seconds,
            shards.clone(),
            cursors.clone(),
        )
        .await;
        rows.push(format!(
            "| {} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
            o.name,
            db_label(db),
            replicas,
            args.clients,
            args.shards,
            o.requests as f64 / o.elapsed.as_secs_f64(),
            percentile(&o.lat_us, 0.50),
            percentile(&o.lat_us, 0.99),
            percentile(&o.lat_us, 1.0),
            o.errors,
        ));
    }
    for (id, _) in shards.iter() {
        setup.delete(*id, &key).await?;
    }
    for stop in stops {
        let _ = stop.send(());
    }
    for server in servers {
        server.await??;
    }
    if let Some(file) = key_file {
        let _ = std::fs::remove_file(file);
    }
    Ok(rows)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.clients > 0 && args.shards > 0,
        "clients and shards must be > 0"
    );
    println!(
        "fabric-backend-bench: {} clients, {} s per scenario, {} shards, {} CPUs",
        args.clients,
        args.seconds,
        args.shards,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut rows = Vec::new();
    for db in &args.db {
        for &replicas in &args.replicas {
            if replicas == 0 || (replicas > 1 && db == ":memory:") {
                eprintln!(
                    "skipping {replicas} replicas on {}: cannot be shared",
                    db_label(db)
                );
                continue;
            }
            eprintln!("measuring {} with {replicas} replica(s)...", db_label(db));
            rows.extend(measure(&args, db, replicas).await?);
        }
    }
    println!();
    println!(
        "| scenario | db | replicas | clients | shards | req/s | p50 ms | p99 ms | max ms | errors |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!("{row}");
    }
    Ok(())
}
