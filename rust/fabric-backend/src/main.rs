//! `fabric-backend`: the zone registry server. See `--help` and docs/backend.md.

use clap::Parser as _;
use fabric_backend::{Bound, Config};
use tracing_subscriber::EnvFilter;

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = Config::parse();
    let bound = Bound::bind(&config).await?;
    let addr = bound.local_addr();
    // The first stdout line is the startup contract (tests and scripts parse it).
    println!(
        "fabric-backend listening on http://{addr} (db: {})",
        config.db
    );
    tracing::info!(%addr, db = %config.db, stale_after_ms = config.stale_after_ms,
        evict_after_ms = config.evict_after_ms, "started");
    bound.serve(shutdown_signal()).await?;
    println!("fabric-backend stopped");
    Ok(())
}
