//! Store work runs off the async workers: while one request is stuck in the store (a wide
//! ReBAC check, a slow disk, a PostgreSQL round trip), the server still answers others. Before
//! the fix, store calls ran on the tokio worker, so on a one-worker runtime a stuck store call
//! stalled every request, heartbeats included.

mod common;

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use fabric_auth::{ObjectRef, Subject, Tuple};
use fabric_backend::Config;
use fabric_backend::StoreError;
use fabric_backend::client::Client;
use fabric_backend::model::ShardRecord;
use fabric_backend::store::sqlite::SqliteStore;
use fabric_backend::store::{HeartbeatUpdate, MemberRecord, Removal, ShardPage, Store};
use uuid::Uuid;

use common::EVENT_DEADLINE;
use common::inproc::InProcess;

/// SQLite whose `list_shards` waits for the test's go-ahead (and says when it got there).
struct GatedStore {
    inner: SqliteStore,
    entered: Mutex<Sender<()>>,
    gate: Mutex<Receiver<()>>,
}

impl Store for GatedStore {
    fn create_account(&self, id: &str, key_hash: &str, now_ms: u64) -> Result<(), StoreError> {
        self.inner.create_account(id, key_hash, now_ms)
    }
    fn account_by_key_hash(&self, key_hash: &str) -> Result<Option<String>, StoreError> {
        self.inner.account_by_key_hash(key_hash)
    }
    fn insert_shard(&self, shard: &ShardRecord, tuples: &[Tuple]) -> Result<(), StoreError> {
        self.inner.insert_shard(shard, tuples)
    }
    fn shard(&self, id: Uuid) -> Result<Option<ShardRecord>, StoreError> {
        self.inner.shard(id)
    }
    fn shard_by_secret_hash(&self, h: &str) -> Result<Option<Uuid>, StoreError> {
        self.inner.shard_by_secret_hash(h)
    }
    fn heartbeat(
        &self,
        id: Uuid,
        u: &HeartbeatUpdate,
        now_ms: u64,
    ) -> Result<Option<ShardRecord>, StoreError> {
        self.inner.heartbeat(id, u, now_ms)
    }
    fn delete_shard(&self, id: Uuid) -> Result<bool, StoreError> {
        self.inner.delete_shard(id)
    }
    fn list_shards(
        &self,
        since: u64,
        viewer: Option<&str>,
        page: &ShardPage,
    ) -> Result<Vec<ShardRecord>, StoreError> {
        let _ = self.entered.lock().unwrap().send(());
        // Bounded so a broken build fails instead of hanging.
        let _ = self.gate.lock().unwrap().recv_timeout(EVENT_DEADLINE * 3);
        self.inner.list_shards(since, viewer, page)
    }
    fn put_member(&self, m: &MemberRecord) -> Result<(), StoreError> {
        self.inner.put_member(m)
    }
    fn fabric_members(
        &self,
        fabric: &str,
        since: u64,
    ) -> Result<Vec<(MemberRecord, String, u64)>, StoreError> {
        self.inner.fabric_members(fabric, since)
    }
    fn evict_stale(&self, cutoff_ms: u64) -> Result<Vec<Uuid>, StoreError> {
        self.inner.evict_stale(cutoff_ms)
    }
    fn add_tuple(&self, t: &Tuple) -> Result<bool, StoreError> {
        self.inner.add_tuple(t)
    }
    fn claim_owner(&self, t: &Tuple) -> Result<bool, StoreError> {
        self.inner.claim_owner(t)
    }
    fn remove_tuple(&self, t: &Tuple) -> Result<Removal, StoreError> {
        self.inner.remove_tuple(t)
    }
    fn tuples_on(&self, o: &ObjectRef) -> Result<Vec<Tuple>, StoreError> {
        self.inner.tuples_on(o)
    }
    fn subjects(&self, o: &ObjectRef, r: &str) -> Result<Vec<Subject>, StoreError> {
        self.inner.subjects(o, r)
    }
    fn referencing(&self, o: &ObjectRef) -> Result<Vec<ObjectRef>, StoreError> {
        self.inner.referencing(o)
    }
    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.inner.meta(key)
    }
    fn meta_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        self.inner.meta_or_insert(key, value)
    }
    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.inner.set_meta(key, value)
    }
    fn delete_meta(&self, key: &str) -> Result<bool, StoreError> {
        self.inner.delete_meta(key)
    }
    fn count_owned_shards(&self, owner: &str) -> Result<u64, StoreError> {
        self.inner.count_owned_shards(owner)
    }
    fn put_shared_file(&self, f: &fabric_backend::model::SharedFile) -> Result<(), StoreError> {
        self.inner.put_shared_file(f)
    }
    fn shared_files(
        &self,
        map: &str,
    ) -> Result<Vec<fabric_backend::model::SharedFile>, StoreError> {
        self.inner.shared_files(map)
    }
    fn append_push(
        &self,
        origin: &str,
        topic: &str,
        message: &str,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.inner.append_push(origin, topic, message, now_ms)
    }
    fn pushes_since(
        &self,
        since_ms: u64,
        not_from: &str,
        topics: &[String],
        limit: u32,
    ) -> Result<Vec<fabric_backend::store::PushRecord>, StoreError> {
        self.inner.pushes_since(since_ms, not_from, topics, limit)
    }
    fn prune_pushes(&self, before_ms: u64) -> Result<u64, StoreError> {
        self.inner.prune_pushes(before_ms)
    }
    fn put_room_state(
        &self,
        room: &str,
        state: &str,
        saved_by: &str,
        now_ms: u64,
    ) -> Result<u64, StoreError> {
        self.inner.put_room_state(room, state, saved_by, now_ms)
    }
    fn room_state(
        &self,
        room: &str,
    ) -> Result<Option<fabric_backend::model::RoomState>, StoreError> {
        self.inner.room_state(room)
    }
}

#[tokio::test]
async fn a_request_stuck_in_the_store_does_not_stall_the_others() {
    let (entered_tx, entered_rx) = channel();
    let (release, gate) = channel();
    let store = Arc::new(GatedStore {
        inner: SqliteStore::open(":memory:").unwrap(),
        entered: Mutex::new(entered_tx),
        gate: Mutex::new(gate),
    });
    let server = InProcess::start(
        store,
        Config::new("127.0.0.1:0".parse().unwrap(), ":memory:").without_rate_limits(),
    );
    let addr = server.addr.clone();
    let stuck = tokio::spawn(async move { Client::new(addr).list(None).await });
    tokio::task::spawn_blocking(move || entered_rx.recv_timeout(EVENT_DEADLINE))
        .await
        .unwrap()
        .expect("GET /shards reached the store");

    // The server has one async worker; `GET /shards` is parked inside the store.
    let healthz = tokio::time::timeout(
        Duration::from_secs(5),
        Client::new(server.addr.clone()).raw(Method::GET, "/healthz", None, None, Vec::new()),
    )
    .await;
    let register = tokio::time::timeout(
        Duration::from_secs(5),
        Client::new(server.addr.clone()).create_account("ann"),
    )
    .await;
    release.send(()).unwrap();
    let healthz = healthz.expect("GET /healthz answered while another request was in the store");
    assert_eq!(healthz.unwrap().status, StatusCode::OK);
    assert!(
        register
            .expect("POST /accounts answered while another request was in the store")
            .is_ok(),
        "the account was created"
    );
    let listed = stuck.await.unwrap().expect("the stuck request completes");
    assert!(listed.shards.is_empty());
}
