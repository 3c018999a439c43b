//! `fabric-assets`: bake a file into a chunk store, serve a store over HTTP, fetch a file by its
//! index URL (with a progress bar).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use fabric_assets::{ChunkParams, DiskStore, FetchOptions, bake, fetch, router};

#[derive(Parser)]
#[command(
    name = "fabric-assets",
    about = "Content-defined chunked asset delivery"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Chunk, compress and store a file; prints the index name.
    Bake {
        /// The file to bake.
        input: PathBuf,
        /// The store directory.
        #[arg(long)]
        store: PathBuf,
        /// Minimum chunk size in KiB.
        #[arg(long, default_value_t = 16)]
        min_kib: u32,
        /// Average chunk size in KiB.
        #[arg(long, default_value_t = 64)]
        avg_kib: u32,
        /// Maximum chunk size in KiB.
        #[arg(long, default_value_t = 256)]
        max_kib: u32,
    },
    /// Serve a store: GET /index/{name} and GET /chunks/{hex}.
    Serve {
        /// The store directory.
        #[arg(long)]
        store: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8787")]
        listen: String,
    },
    /// Fetch a file by its index URL, reusing chunks from a local cache.
    Fetch {
        /// The index URL, e.g. http://127.0.0.1:8787/index/<name>.
        url: String,
        /// Where to write the file.
        #[arg(long, short)]
        output: PathBuf,
        /// The local chunk cache directory.
        #[arg(long)]
        cache: PathBuf,
        /// Parallel downloads.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Bake {
            input,
            store,
            min_kib,
            avg_kib,
            max_kib,
        } => {
            let store = DiskStore::open(store)?;
            let file = std::fs::File::open(&input)
                .with_context(|| format!("opening {}", input.display()))?;
            let params = ChunkParams {
                min: min_kib << 10,
                avg: avg_kib << 10,
                max: max_kib << 10,
            };
            let r = bake(std::io::BufReader::new(file), params, &store)?;
            eprintln!(
                "{} bytes, {} chunks ({} new, {} already stored), {} bytes compressed",
                r.index.file_size,
                r.index.chunks.len(),
                r.new_chunks,
                r.reused_chunks,
                r.index.compressed_size()
            );
            println!("{}", r.name);
        }
        Command::Serve { store, listen } => {
            let store = Arc::new(DiskStore::open(store)?);
            let listener = tokio::net::TcpListener::bind(&listen).await?;
            eprintln!(
                "serving {} on http://{}",
                store.root().display(),
                listener.local_addr()?
            );
            axum::serve(listener, router(store)).await?;
        }
        Command::Fetch {
            url,
            output,
            cache,
            concurrency,
        } => {
            let cache = Arc::new(DiskStore::open(cache)?);
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            )?);
            let b = bar.clone();
            let options = FetchOptions {
                concurrency,
                ..FetchOptions::default()
            };
            let r = fetch(&url, cache, &output, &options, move |p| {
                b.set_length(p.total);
                b.set_position(p.done);
            })
            .await;
            bar.finish();
            let r = r?;
            eprintln!(
                "{}: {} bytes; {} chunks from cache, {} downloaded, {} bytes transferred",
                output.display(),
                r.index.file_size,
                r.reused_chunks,
                r.fetched_chunks,
                r.bytes_downloaded
            );
        }
    }
    Ok(())
}
