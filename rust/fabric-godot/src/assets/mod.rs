//! `FabricAssetFetcher`: fetches an uploaded asset (its index, then its chunks) off the main
//! thread and reports progress and the result as signals. Thin glue: the fetch is
//! `fabric_assets::fetch`, run by [`job`] on the shared background runtime; this node only
//! starts it and turns its events into signals each frame. Format and behaviour:
//! `docs/assets.md`, "Fetching in Godot".

pub mod job;

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, TryRecvError};

use godot::classes::{INode, Node, ProjectSettings};
use godot::global::Error;
use godot::prelude::*;

use job::JobEvent;

/// Fetches one asset of a map from the backend's chunk store, verified, into a local cache.
///
/// `fetch(backend_url, index, cache_dir)` starts a download in the background; while it runs
/// `progress(done, total)` reports bytes ready, then `finished(path)` gives the verified file's
/// absolute path, or `failed(reason)` says why nothing was produced. Every chunk is checked
/// against its BLAKE3 address and the whole file against the index's hash; chunks already in
/// `cache_dir` are verified and reused. The signals are emitted on the main thread while the
/// node is in the tree. One fetch at a time per node. Details: `docs/assets.md`.
#[derive(GodotClass)]
#[class(base = Node)]
pub struct FabricAssetFetcher {
    base: Base<Node>,
    /// For an `https://` backend: the SHA-256 of its certificate (base64 or hex; several
    /// comma-separated), as the backend prints at start-up (`cert_hash=`). Only that
    /// certificate is accepted; required for `https://`, must be empty for `http://`.
    #[var]
    backend_cert_hash: GString,
    events: Option<Receiver<JobEvent>>,
}

#[godot_api]
impl INode for FabricAssetFetcher {
    fn init(base: Base<Node>) -> Self {
        Self {
            base,
            backend_cert_hash: GString::new(),
            events: None,
        }
    }

    fn process(&mut self, _delta: f64) {
        self.drain();
    }
}

#[godot_api]
impl FabricAssetFetcher {
    /// Bytes of the file ready so far (`done`) out of its size (`total`).
    #[signal]
    fn progress(done: i64, total: i64);
    /// The asset is fetched and verified: `path` is the file (absolute).
    #[signal]
    fn finished(path: GString);
    /// The fetch failed (a corrupt chunk, a bad index, the backend unreachable, ...): `reason`
    /// says why. Nothing was written but verified chunks in the cache.
    #[signal]
    fn failed(reason: GString);

    /// Starts fetching the asset whose index is `index` (the map list's `baked_url` such as
    /// `/assets/index/<hash>`, a full URL, or a bare hash) from the backend at `backend_url`
    /// (`http://host:port`, or `https://host:port` with `backend_cert_hash` set),
    /// caching chunks in `cache_dir` (`user://` paths work) and writing
    /// the file to `cache_dir/files/<hash>`. Returns `OK`, `ERR_BUSY` while a fetch runs, or
    /// `ERR_INVALID_PARAMETER` (with an error printed) for an index or folder it cannot use.
    #[func]
    fn fetch(&mut self, backend_url: GString, index: GString, cache_dir: GString) -> Error {
        if self.events.is_some() {
            return Error::ERR_BUSY;
        }
        let started = (|| {
            if cache_dir.is_empty() {
                return Err(job::JobError::NoCache);
            }
            let url = job::index_url(&backend_url.to_string(), &index.to_string())?;
            let cache = PathBuf::from(
                ProjectSettings::singleton()
                    .globalize_path(&cache_dir)
                    .to_string(),
            );
            let output = job::output_path(&cache, &url)?;
            let pins = job::cert_pins(&self.backend_cert_hash.to_string())?;
            Ok(job::start(url, cache, output, pins))
        })();
        match started {
            Ok(rx) => {
                self.events = Some(rx);
                Error::OK
            }
            Err(e) => {
                godot_error!("FabricAssetFetcher.fetch: {e}");
                Error::ERR_INVALID_PARAMETER
            }
        }
    }

    /// Whether a fetch is running (its last signal not yet emitted).
    #[func]
    fn is_busy(&self) -> bool {
        self.events.is_some()
    }

    /// The 64-bit asset id of the file whose BLAKE3 is `hash` (64 hex characters, as
    /// `GET /maps/{map}/assets` lists it): its first 8 bytes, big-endian, as an `int`
    /// (negative when the top bit is set; `FabricWorld.place_asset` sends it unchanged).
    /// 0 when `hash` is not a hash.
    #[func]
    fn asset_id_of_hash(hash: GString) -> i64 {
        fabric_assets::asset_id_of_hex(&hash.to_string()).unwrap_or(0) as i64
    }

    /// The part of that id players see in an instance (`FabricWorld.get_entity_asset`): its
    /// low 24 bits. -1 when `hash` is not a hash.
    #[func]
    fn visible_asset_bits(hash: GString) -> i64 {
        let mask = (1u64 << fabric_assets::VISIBLE_ASSET_BITS) - 1;
        fabric_assets::asset_id_of_hex(&hash.to_string()).map_or(-1, |id| (id & mask) as i64)
    }

    /// Emits what the running fetch reported since the last frame.
    fn drain(&mut self) {
        let mut ended = false;
        let mut out = Vec::new();
        if let Some(rx) = &self.events {
            loop {
                match rx.try_recv() {
                    Ok(e) => {
                        ended |= !matches!(e, JobEvent::Progress(_));
                        out.push(e);
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        if !ended {
                            out.push(JobEvent::Failed("the fetch task stopped".into()));
                        }
                        ended = true;
                        break;
                    }
                }
            }
        }
        if ended {
            self.events = None;
        }
        for e in out {
            match e {
                JobEvent::Progress(p) => self
                    .signals()
                    .progress()
                    .emit(p.done as i64, p.total as i64),
                JobEvent::Finished(path) => self
                    .signals()
                    .finished()
                    .emit(&GString::from(path.display().to_string().as_str())),
                JobEvent::Failed(reason) => self
                    .signals()
                    .failed()
                    .emit(&GString::from(reason.as_str())),
            }
        }
    }
}
