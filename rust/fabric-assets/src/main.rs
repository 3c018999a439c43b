//! `fabric-assets`: bake a file into a chunk store, serve a store over HTTP, fetch a file by its
//! index URL (with a progress bar).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use fabric_assets::{
    ChunkParams, ChunkStore, DiskStore, FetchOptions, S3Config, S3Store, bake, fetch, router,
};

/// Where the chunks are: a directory, or an S3-compatible bucket (credentials from
/// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, region `AWS_REGION`).
#[derive(Args)]
#[group(required = true, multiple = true)]
struct StoreArgs {
    /// The store directory.
    #[arg(long, conflicts_with = "s3")]
    store: Option<PathBuf>,
    /// An S3-compatible endpoint (`https://host` or `http://host:port`, path-style), with
    /// --bucket.
    #[arg(long, requires = "bucket")]
    s3: Option<String>,
    /// The bucket of --s3 (it must exist).
    #[arg(long, requires = "s3")]
    bucket: Option<String>,
}

impl StoreArgs {
    /// Opens the store and names it for messages.
    fn open(&self) -> anyhow::Result<(Arc<dyn ChunkStore>, String)> {
        match (&self.store, &self.s3, &self.bucket) {
            (Some(dir), _, _) => Ok((Arc::new(DiskStore::open(dir)?), dir.display().to_string())),
            (None, Some(endpoint), Some(bucket)) => {
                let s3 = S3Store::open(&S3Config::from_env(endpoint, bucket)?)?;
                let label = s3.label().to_owned();
                Ok((Arc::new(s3), label))
            }
            _ => anyhow::bail!("give --store DIR or --s3 URL --bucket BUCKET"),
        }
    }
}

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
        #[command(flatten)]
        store: StoreArgs,
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
        #[command(flatten)]
        store: StoreArgs,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8787")]
        listen: String,
    },
    /// Fetch a file by its index URL, reusing chunks from a local cache.
    Fetch {
        /// The index URL, e.g. http://127.0.0.1:8787/index/<name>, or https://… with
        /// --cert-hash.
        url: String,
        /// SHA-256 of the server's certificate (base64 or hex, comma-separated) for an
        /// https:// URL: the backend prints it at start-up.
        #[arg(long, default_value = "")]
        cert_hash: String,
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
            let (store, _) = store.open()?;
            let file = std::fs::File::open(&input)
                .with_context(|| format!("opening {}", input.display()))?;
            let params = ChunkParams {
                min: min_kib << 10,
                avg: avg_kib << 10,
                max: max_kib << 10,
            };
            let r = bake(std::io::BufReader::new(file), params, &*store)?;
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
            let (store, label) = store.open()?;
            let listener = tokio::net::TcpListener::bind(&listen).await?;
            eprintln!("serving {label} on http://{}", listener.local_addr()?);
            axum::serve(listener, router(store)).await?;
        }
        Command::Fetch {
            url,
            output,
            cache,
            concurrency,
            cert_hash,
        } => {
            let cert_pins = if cert_hash.is_empty() {
                Vec::new()
            } else {
                fabric_net::cert::CertHash::parse_list(&cert_hash)?
            };
            let cache = Arc::new(DiskStore::open(cache)?);
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            )?);
            let b = bar.clone();
            let options = FetchOptions {
                concurrency,
                cert_pins,
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
