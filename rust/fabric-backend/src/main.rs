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

/// `--create-account NAME`: create the account in `--db`, print its API key once, exit.
async fn create_account(config: &Config, name: String) -> anyhow::Result<()> {
    anyhow::ensure!(
        config.db != ":memory:",
        "--create-account needs the registry's --db: an in-memory database would forget the account"
    );
    let config = config.clone();
    let created = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let store = fabric_backend::server::open_store(&config.db, config.db_root_cert.as_deref())?;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis();
        fabric_backend::routes::create_account(&*store, &name, u64::try_from(now_ms)?)
            .map_err(|e| anyhow::anyhow!("account {name} not created: {}", e.message))
    })
    .await??;
    println!(
        "account {} created; its API key (shown once): {}",
        created.account_id, created.api_key
    );
    Ok(())
}

/// `--rotate-join-key`: rotate the stored signing keys, say what changed, exit.
async fn rotate(config: &Config) -> anyhow::Result<()> {
    let config = config.clone();
    let rotated = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let store = fabric_backend::server::open_store(&config.db, config.db_root_cert.as_deref())?;
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        Ok(fabric_backend::keyring::rotate(
            &config,
            &*store,
            now_s,
            config.join_key_overlap_s,
        )?)
    })
    .await??;
    println!(
        "rotated the join signing key: current kid {}, previous kid {} accepted until {} (unix s)",
        rotated.current_kid, rotated.previous_kid, rotated.previous_retires_at
    );
    Ok(())
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
    if config.rotate_join_key {
        return rotate(&config).await;
    }
    if let Some(name) = config.create_account.clone() {
        return create_account(&config, name).await;
    }
    let bound = Bound::bind(&config).await?;
    let addr = bound.local_addr();
    // The first stdout line is the startup contract (tests and scripts parse it).
    let pin = bound
        .cert_hash()
        .map(|h| format!(" cert_hash={h}"))
        .unwrap_or_default();
    println!(
        "fabric-backend listening on {}://{addr} (db: {}){pin}",
        bound.scheme(),
        config.db
    );
    tracing::info!(%addr, db = %config.db, stale_after_ms = config.stale_after_ms,
        evict_after_ms = config.evict_after_ms, "started");
    bound.serve(shutdown_signal()).await?;
    println!("fabric-backend stopped");
    Ok(())
}
