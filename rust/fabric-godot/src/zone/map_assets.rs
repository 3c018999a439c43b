//! The assets a registered zone lets players place: its map's list on the backend, each asset
//! placeable once the zone fetched and verified its manifest.
//!
//! A zone that registers with a backend (`--backend`, an API key, `--map`) and was not given
//! `--assets any` or a fixed list learns its map's assets from `GET /maps/{map}/assets` (read in
//! the background once the zone is registered, and again after every re-registration, which
//! also covers pushes missed while the backend was away) and from each `asset_baked` push on
//! the zone's topic ([`fabric_net::registry::RegistryEvent::AssetBaked`]). Each asset's id is
//! its file hash's first 8 bytes ([`fabric_assets::asset_id_of_hex`]).
//!
//! An asset learned that way is **not placeable yet**: the zone first fetches its manifest, the
//! `FAIX` index its `baked_url` names ([`fabric_assets::fetch_index`]: at most
//! `MAX_INDEX_BYTES` read, structure, limits and checksum checked before anything sized by it
//! is allocated; no chunk is fetched), and checks that it describes the file the backend
//! listed (same BLAKE3 hash, same size). Only then is the id added to the placeable set
//! (`unknown_asset` before). A manifest that cannot be fetched (after
//! [`CHECK_ATTEMPTS`] tries with a doubling back-off) or fails verification leaves the asset
//! unplaceable and is reported once, as a line naming the asset and what is wrong; a fetch
//! failure is tried again at the next list read or push of that asset, a verification
//! failure is not (the same hash gives the same index). At most [`MAX_CHECKS_AT_ONCE`] checks
//! run at once. Ids are only ever added: a new version of an asset gets a new id, and
//! instances of the old one stay valid.
//!
//! Requests run on the addon's background runtime; the zone takes their answers once a frame
//! ([`MapAssets::poll`]), never blocking the tick.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use fabric_assets::{CertHash, FetchError, FetchOptions};
use fabric_core::asset_placement::AssetFilter;
use fabric_net::http::Endpoint;
use tokio::sync::Semaphore;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::{JoinHandle, JoinSet};

/// Each try of the list request must finish within this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest list response accepted (about 2,500 assets).
const MAX_LIST_BYTES: usize = 1 << 20;
/// Tries of a manifest fetch before the asset is reported unplaceable for now.
pub(crate) const CHECK_ATTEMPTS: u32 = 5;
/// Wait before the second try of a manifest fetch; doubles each time.
const CHECK_BACKOFF: Duration = Duration::from_millis(200);
/// A manifest check (every try) must finish within this long.
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);
/// Manifest checks running at once.
pub(crate) const MAX_CHECKS_AT_ONCE: usize = 4;

/// An asset of the map, as the backend lists or announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    /// The id players place it by.
    pub(crate) id: u64,
    /// Its name within the map.
    pub(crate) name: String,
    /// BLAKE3 of the file, hex.
    pub(crate) hash: String,
    /// The file's size, bytes.
    pub(crate) size: u64,
    /// Where its manifest is (a path on the backend, or a URL).
    pub(crate) baked_url: String,
}

/// Why an asset's manifest does not make it placeable.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ManifestError {
    /// `baked_url` is neither a path on the backend nor a URL.
    #[error("its baked_url {0:?} is not an index location")]
    Location(String),
    /// The manifest could not be fetched, or was refused by the index decoder.
    #[error("{0}")]
    Fetch(#[from] FetchError),
    /// No answer within [`CHECK_TIMEOUT`].
    #[error("no manifest within {0:?}")]
    TimedOut(Duration),
    /// The manifest describes another file than the one the backend listed.
    #[error("the manifest is of file {index}, the backend lists {listed}")]
    HashMismatch {
        /// The hash the backend listed.
        listed: String,
        /// The whole-file hash in the manifest.
        index: String,
    },
    /// The manifest's file size is not the listed one.
    #[error("the manifest describes {index} bytes, the backend lists {listed}")]
    SizeMismatch {
        /// The size the backend listed.
        listed: u64,
        /// The size in the manifest.
        index: u64,
    },
}

impl ManifestError {
    /// Whether a later try may succeed (the network or the backend failed), rather than the
    /// manifest being wrong.
    fn transient(&self) -> bool {
        matches!(
            self,
            ManifestError::Fetch(FetchError::Http { .. }) | ManifestError::TimedOut(_)
        )
    }
}

enum Answer {
    List(Result<Vec<Listed>, String>),
    Checked(Listed, Result<(), ManifestError>),
}

/// A zone's view of its map's assets on the backend.
pub(crate) struct MapAssets {
    backend: Endpoint,
    pins: Vec<CertHash>,
    api_key: String,
    map: String,
    /// Verified: players may place these.
    ids: BTreeSet<u64>,
    /// Manifest checks under way.
    checking: BTreeSet<u64>,
    /// Manifests that failed verification (not tried again).
    bad: BTreeSet<u64>,
    changed: bool,
    tx: UnboundedSender<Answer>,
    rx: UnboundedReceiver<Answer>,
    list_task: Option<JoinHandle<()>>,
    checks: JoinSet<()>,
    limit: Arc<Semaphore>,
}

impl std::fmt::Debug for MapAssets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MapAssets({} placeable, {} checking of {})",
            self.ids.len(),
            self.checking.len(),
            self.map
        )
    }
}

impl MapAssets {
    /// Follows map `map` on `backend` (whose certificate hashes are `pins` for `https://`),
    /// asking with the operator `api_key`. Nothing is asked until [`MapAssets::refresh`].
    pub(crate) fn new(
        backend: Endpoint,
        pins: Vec<CertHash>,
        api_key: String,
        map: String,
    ) -> Self {
        let (tx, rx) = unbounded_channel();
        Self {
            backend,
            pins,
            api_key,
            map,
            ids: BTreeSet::new(),
            checking: BTreeSet::new(),
            bad: BTreeSet::new(),
            changed: true,
            tx,
            rx,
            list_task: None,
            checks: JoinSet::new(),
            limit: Arc::new(Semaphore::new(MAX_CHECKS_AT_ONCE)),
        }
    }

    /// Reads the map's list again in the background (a read still running is dropped).
    pub(crate) fn refresh(&mut self) {
        if let Some(t) = self.list_task.take() {
            t.abort();
        }
        let (backend, key, tx) = (self.backend.clone(), self.api_key.clone(), self.tx.clone());
        let path = format!("/maps/{}/assets", self.map);
        self.list_task = Some(fabric_net::runtime::handle().spawn(async move {
            let _ = tx.send(Answer::List(read_list(&backend, &key, &path).await));
        }));
    }

    /// An `asset_baked` push for `map`: the asset's manifest is checked, then it is placeable.
    pub(crate) fn baked(&mut self, map: &str, asset: Listed) {
        if map == self.map {
            self.check(asset);
        }
    }

    /// Starts the manifest check of `asset` unless it is placeable, being checked, or known bad.
    fn check(&mut self, asset: Listed) {
        let id = asset.id;
        if id == 0 || self.ids.contains(&id) || self.bad.contains(&id) {
            return;
        }
        if !self.checking.insert(id) {
            return;
        }
        let (base, pins) = (self.backend.base().to_owned(), self.pins.clone());
        let (tx, limit) = (self.tx.clone(), self.limit.clone());
        self.checks.spawn_on(
            async move {
                let Ok(_permit) = limit.acquire_owned().await else {
                    return;
                };
                let verdict = tokio::time::timeout(CHECK_TIMEOUT, verify(&base, pins, &asset))
                    .await
                    .unwrap_or(Err(ManifestError::TimedOut(CHECK_TIMEOUT)));
                let _ = tx.send(Answer::Checked(asset, verdict));
            },
            &fabric_net::runtime::handle(),
        );
    }

    /// Takes the answers that arrived: lists start checks, verified manifests make assets
    /// placeable. Returns the problems to report, each naming the asset and what is wrong.
    pub(crate) fn poll(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        while let Ok(answer) = self.rx.try_recv() {
            match answer {
                Answer::List(Ok(assets)) => assets.into_iter().for_each(|a| self.check(a)),
                Answer::List(Err(e)) => problems.push(e),
                Answer::Checked(asset, verdict) => {
                    self.checking.remove(&asset.id);
                    match verdict {
                        Ok(()) => self.changed |= self.ids.insert(asset.id),
                        Err(e) => {
                            let what = if e.transient() {
                                "could not be fetched (tried again at the next list or push)"
                            } else {
                                self.bad.insert(asset.id);
                                "failed verification"
                            };
                            problems.push(format!(
                                "asset {} (id {}, map {}) is not placeable: its manifest {} {what}: {e}",
                                asset.name, asset.id, self.map, asset.baked_url
                            ));
                        }
                    }
                }
            }
        }
        while self.checks.try_join_next().is_some() {}
        problems
    }

    /// The filter to place by, when it changed since the last call.
    pub(crate) fn take_changed(&mut self) -> Option<AssetFilter> {
        std::mem::take(&mut self.changed)
            .then(|| AssetFilter::only(self.ids.iter().copied().collect()))
    }

    /// Asset ids placeable (manifest verified).
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Manifest checks under way.
    pub(crate) fn checking(&self) -> usize {
        self.checking.len()
    }

    /// Assets whose manifest failed verification.
    pub(crate) fn unplaceable(&self) -> usize {
        self.bad.len()
    }

    /// The map followed.
    pub(crate) fn map(&self) -> &str {
        &self.map
    }
}

impl Drop for MapAssets {
    fn drop(&mut self) {
        if let Some(t) = self.list_task.take() {
            t.abort();
        }
        self.checks.abort_all();
    }
}

/// Fetches `asset`'s manifest from `base` (or where its `baked_url` points) and checks that it
/// describes the listed file.
async fn verify(base: &str, pins: Vec<CertHash>, asset: &Listed) -> Result<(), ManifestError> {
    let url = crate::assets::job::index_url(base, &asset.baked_url)
        .map_err(|_| ManifestError::Location(asset.baked_url.clone()))?;
    let options = FetchOptions {
        attempts: CHECK_ATTEMPTS,
        backoff: CHECK_BACKOFF,
        cert_pins: if url.starts_with("https://") {
            pins
        } else {
            Vec::new()
        },
        ..FetchOptions::default()
    };
    let (index, _) = fabric_assets::fetch_index(&url, &options).await?;
    let index_hash = index.file_hash.to_hex();
    if !index_hash.eq_ignore_ascii_case(&asset.hash) {
        return Err(ManifestError::HashMismatch {
            listed: asset.hash.clone(),
            index: index_hash,
        });
    }
    if index.file_size != asset.size {
        return Err(ManifestError::SizeMismatch {
            listed: asset.size,
            index: index.file_size,
        });
    }
    Ok(())
}

/// `GET path`, retried with a doubling back-off (the backend may be restarting); the listed
/// assets.
async fn read_list(backend: &Endpoint, api_key: &str, path: &str) -> Result<Vec<Listed>, String> {
    let mut wait = Duration::from_millis(200);
    let mut last = String::new();
    for _ in 0..6 {
        match fabric_net::http::request_to_capped(
            backend,
            "GET",
            path,
            Some(api_key),
            None,
            REQUEST_TIMEOUT,
            MAX_LIST_BYTES,
        )
        .await
        {
            Ok(r) if r.status == 200 => return Ok(listed_in(&r.body)),
            Ok(r) if r.status < 500 && r.status != 429 => {
                return Err(format!(
                    "asset list {path}: HTTP {} {}",
                    r.status,
                    r.error_code().unwrap_or_default()
                ));
            }
            Ok(r) => last = format!("HTTP {}", r.status),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
    Err(format!("asset list {path}: {last}"))
}

/// The assets of a `GET /maps/{map}/assets` body (the id from each entry's `hash`, which is
/// exact; entries without a valid hash, a size or a `baked_url` are skipped).
fn listed_in(body: &serde_json::Value) -> Vec<Listed> {
    let Some(list) = body["assets"].as_array() else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|a| {
            let hash = a["hash"].as_str()?;
            Some(Listed {
                id: fabric_assets::asset_id_of_hex(hash)?,
                name: a["name"].as_str().unwrap_or_default().to_owned(),
                hash: hash.to_owned(),
                size: a["size"].as_u64()?,
                baked_url: a["baked_url"].as_str()?.to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "0123456789abcdeffedcba98765432100123456789abcdeffedcba9876543210";

    fn listed(id: u64) -> Listed {
        Listed {
            id,
            name: format!("a{id}.glb"),
            hash: H.into(),
            size: 10,
            baked_url: format!("/assets/index/{H}"),
        }
    }

    #[test]
    fn the_list_names_each_asset_by_its_hash_and_skips_incomplete_entries() {
        let body = serde_json::json!({"assets": [
            {"name": "a.glb", "hash": H, "size": 10, "baked_url": format!("/assets/index/{H}")},
            {"name": "broken", "hash": "zz", "size": 1, "baked_url": "/x"},
            {"name": "no-size", "hash": H, "baked_url": "/x"},
            {"name": "none"},
        ]});
        let got = listed_in(&body);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].id, 0x0123_4567_89ab_cdef);
        assert_eq!(got[0].name, "a.glb");
        assert_eq!(got[0].size, 10);
        assert!(listed_in(&serde_json::json!({"error": {}})).is_empty());
    }

    #[test]
    fn only_verified_manifests_make_assets_placeable_and_a_bad_one_is_reported_once() {
        let backend = Endpoint::new("http://127.0.0.1:9", &[]).unwrap();
        let mut m = MapAssets::new(backend, Vec::new(), "k".into(), "plaza".into());
        assert_eq!(
            m.take_changed(),
            Some(AssetFilter::Only(vec![])),
            "nothing placeable before the list"
        );
        assert_eq!(m.take_changed(), None);
        m.tx.send(Answer::Checked(listed(5), Ok(()))).unwrap();
        m.tx.send(Answer::Checked(
            listed(6),
            Err(ManifestError::SizeMismatch {
                listed: 10,
                index: 11,
            }),
        ))
        .unwrap();
        m.tx.send(Answer::Checked(
            listed(7),
            Err(ManifestError::TimedOut(CHECK_TIMEOUT)),
        ))
        .unwrap();
        m.tx.send(Answer::List(Err("down".into()))).unwrap();
        let problems = m.poll();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].contains("a6.glb")
                && problems[0].contains("failed verification")
                && problems[0].contains("11 bytes"),
            "{}",
            problems[0]
        );
        assert!(
            problems[1].contains("a7.glb") && problems[1].contains("could not be fetched"),
            "{}",
            problems[1]
        );
        assert_eq!(problems[2], "down");
        assert_eq!(
            m.take_changed(),
            Some(AssetFilter::Only(vec![5])),
            "only the verified one"
        );
        assert_eq!((m.len(), m.unplaceable()), (1, 1));
        // Known-good and known-bad assets are not checked again; another map's are ignored.
        m.baked("plaza", listed(5));
        m.baked("plaza", listed(6));
        m.baked("other-map", listed(8));
        m.baked("plaza", listed(0));
        assert_eq!(m.checking(), 0, "nothing to check");
        assert_eq!(m.take_changed(), None);
    }

    #[test]
    fn an_unreachable_backend_leaves_the_asset_unplaceable_with_a_clear_line() {
        // Port 9 (discard) is closed on loopback: every try is refused at once.
        let backend = Endpoint::new("http://127.0.0.1:9", &[]).unwrap();
        let mut m = MapAssets::new(backend, Vec::new(), "k".into(), "plaza".into());
        m.baked("plaza", listed(5));
        m.baked("plaza", listed(5));
        assert_eq!(m.checking(), 1, "one check per asset");
        let until = std::time::Instant::now() + Duration::from_secs(30);
        let problems = loop {
            let p = m.poll();
            if !p.is_empty() {
                break p;
            }
            assert!(std::time::Instant::now() < until, "no answer");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("a5.glb")
                && problems[0].contains("could not be fetched")
                && problems[0].contains(&format!("after {CHECK_ATTEMPTS} attempts")),
            "{}",
            problems[0]
        );
        assert_eq!((m.len(), m.checking(), m.unplaceable()), (0, 0, 0));
        m.baked("plaza", listed(5));
        assert_eq!(m.checking(), 1, "a fetch failure is tried again");
    }
}
