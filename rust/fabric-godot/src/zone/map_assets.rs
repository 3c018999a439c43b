//! The assets a registered zone lets players place: its map's list on the backend.
//!
//! A zone that registers with a backend (`--backend`, an API key, `--map`) and was not given
//! `--assets any` or a fixed list takes the placeable asset ids from `GET /maps/{map}/assets`
//! (each asset's id is its file hash's first 8 bytes, [`fabric_assets::asset_id_of_hex`]):
//! read in the background once the zone is registered (and again after every re-registration,
//! which also covers pushes missed while the backend was away), and extended by each
//! `asset_baked` push on the zone's topic ([`fabric_net::registry::RegistryEvent::AssetBaked`]),
//! so an asset uploaded while the zone runs is placeable as soon as the push arrives. Until the
//! first list arrives nothing is placeable (`unknown_asset`). Ids are only ever added: a new
//! version of an asset gets a new id, and instances of the old one stay valid.
//!
//! The request runs on the addon's background runtime; the zone takes its answer once a frame
//! ([`MapAssets::poll`]), never blocking the tick.

use std::collections::BTreeSet;
use std::time::Duration;

use fabric_core::asset_placement::AssetFilter;
use fabric_net::http::Endpoint;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;

/// Each try of the list request must finish within this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest list response accepted (about 2,500 assets).
const MAX_LIST_BYTES: usize = 1 << 20;

/// A zone's view of its map's assets on the backend.
pub(crate) struct MapAssets {
    backend: Endpoint,
    api_key: String,
    map: String,
    ids: BTreeSet<u64>,
    changed: bool,
    tx: UnboundedSender<Result<Vec<u64>, String>>,
    rx: UnboundedReceiver<Result<Vec<u64>, String>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MapAssets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MapAssets({} ids of {})", self.ids.len(), self.map)
    }
}

impl MapAssets {
    /// Follows map `map` on `backend`, asking with the operator `api_key`. Nothing is asked
    /// until [`MapAssets::refresh`].
    pub(crate) fn new(backend: Endpoint, api_key: String, map: String) -> Self {
        let (tx, rx) = unbounded_channel();
        Self {
            backend,
            api_key,
            map,
            ids: BTreeSet::new(),
            changed: true,
            tx,
            rx,
            task: None,
        }
    }

    /// Reads the map's list again in the background (a read still running is dropped).
    pub(crate) fn refresh(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        let (backend, key, tx) = (self.backend.clone(), self.api_key.clone(), self.tx.clone());
        let path = format!("/maps/{}/assets", self.map);
        self.task = Some(fabric_net::runtime::handle().spawn(async move {
            let _ = tx.send(read_list(&backend, &key, &path).await);
        }));
    }

    /// An `asset_baked` push for `map`: the asset is placeable from now on.
    pub(crate) fn baked(&mut self, map: &str, asset_id: u64) {
        if map == self.map && asset_id != 0 && self.ids.insert(asset_id) {
            self.changed = true;
        }
    }

    /// Takes the answers that arrived; returns the failures to report.
    pub(crate) fn poll(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        while let Ok(answer) = self.rx.try_recv() {
            match answer {
                Ok(ids) => {
                    for id in ids.into_iter().filter(|&id| id != 0) {
                        self.changed |= self.ids.insert(id);
                    }
                }
                Err(e) => problems.push(e),
            }
        }
        problems
    }

    /// The filter to place by, when it changed since the last call.
    pub(crate) fn take_changed(&mut self) -> Option<AssetFilter> {
        std::mem::take(&mut self.changed)
            .then(|| AssetFilter::only(self.ids.iter().copied().collect()))
    }

    /// Asset ids known.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// The map followed.
    pub(crate) fn map(&self) -> &str {
        &self.map
    }
}

impl Drop for MapAssets {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// `GET path`, retried with a doubling back-off (the backend may be restarting); the ids of
/// the listed assets.
async fn read_list(backend: &Endpoint, api_key: &str, path: &str) -> Result<Vec<u64>, String> {
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
            Ok(r) if r.status == 200 => return Ok(ids_of(&r.body)),
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

/// The asset ids of a `GET /maps/{map}/assets` body (from each entry's `hash`, which is exact;
/// entries without one are skipped).
fn ids_of(body: &serde_json::Value) -> Vec<u64> {
    body["assets"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|a| a["hash"].as_str())
                .filter_map(fabric_assets::asset_id_of_hex)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_the_hashes_and_only_grow() {
        let h = "0123456789abcdeffedcba98765432100123456789abcdeffedcba9876543210";
        let body = serde_json::json!({"assets": [
            {"name": "a.glb", "hash": h},
            {"name": "broken", "hash": "zz"},
            {"name": "none"},
        ]});
        assert_eq!(ids_of(&body), vec![0x0123_4567_89ab_cdef]);
        assert!(ids_of(&serde_json::json!({"error": {}})).is_empty());

        let backend = Endpoint::new("http://127.0.0.1:9", &[]).unwrap();
        let mut m = MapAssets::new(backend, "k".into(), "plaza".into());
        assert_eq!(
            m.take_changed(),
            Some(AssetFilter::Only(vec![])),
            "nothing placeable before the list"
        );
        assert_eq!(m.take_changed(), None);
        m.baked("other-map", 5);
        assert_eq!(m.take_changed(), None, "another map's asset");
        m.baked("plaza", 5);
        m.baked("plaza", 0);
        assert_eq!(m.take_changed(), Some(AssetFilter::Only(vec![5])));
        m.tx.send(Ok(vec![7, 5])).unwrap();
        m.tx.send(Err("down".into())).unwrap();
        assert_eq!(m.poll(), vec!["down".to_owned()]);
        assert_eq!(m.take_changed(), Some(AssetFilter::Only(vec![5, 7])));
        assert_eq!(m.len(), 2);
    }
}
