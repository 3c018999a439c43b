//! The storage boundary. Handlers talk to `dyn Store`; [`sqlite::SqliteStore`] is the embedded
//! default, [`postgres::PgStore`] the networked one (PostgreSQL or CockroachDB, `--db
//! postgres://…`). Handlers call the store from tokio's blocking pool
//! ([`crate::blocking::off_worker`]), never from an async worker.
//!
//! Every method is short and synchronous; time is always an argument (`now_ms`, `cutoff_ms`), so
//! the store never reads a clock and staleness is decided by the caller's [`crate::clock::Clock`].

pub mod pg_tls;
pub mod postgres;
pub mod sqlite;

use fabric_auth::{ObjectRef, RebacError, Subject, Tuple, TupleSource};
use uuid::Uuid;

use crate::error::StoreError;
use crate::model::{RoomState, ShardRecord, SharedFile};

/// A position in the shard listing: the last shard of a page (listing order is registration
/// time, then id, which never changes while a shard lives).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardCursor {
    /// The shard's `created_at_ms`.
    pub created_at_ms: u64,
    /// The shard's id.
    pub id: Uuid,
}

/// Which part of the shard listing [`Store::list_shards`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPage {
    /// Only shards after this position (exclusive).
    pub after: Option<ShardCursor>,
    /// Only shards of this map.
    pub map: Option<String>,
    /// At most this many shards.
    pub limit: u32,
}

impl ShardPage {
    /// Every shard (no cursor, no map, no practical limit): for tests and small tools.
    pub fn all() -> Self {
        Self {
            after: None,
            map: None,
            limit: u32::MAX,
        }
    }
}

/// What a heartbeat changes.
#[derive(Debug, Clone)]
pub struct HeartbeatUpdate {
    /// New user count.
    pub current_users: u32,
    /// New asset index URL, or keep the old one.
    pub asset_index_url: Option<String>,
    /// New certificate hash (the zone rotated its certificate), or keep the old one.
    pub cert_hash: Option<String>,
    /// New announced next certificate hash, or keep the old one.
    pub next_cert_hash: Option<String>,
}

/// A shard's membership in a fabric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    /// The shard.
    pub shard_id: Uuid,
    /// Fabric name.
    pub fabric: String,
    /// Zone index.
    pub zone: u8,
    /// Zones in the fabric.
    pub zones: u8,
    /// `host:port` of the link listener.
    pub link_address: String,
    /// Link certificate hash.
    pub link_cert_hash: String,
    /// Next link certificate hash.
    pub link_next_cert_hash: Option<String>,
}

/// A push recorded by one replica for the others (see [`crate::relay`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRecord {
    /// Store-assigned id, unique (not necessarily in commit order).
    pub id: i64,
    /// The replica that caused it.
    pub origin: String,
    /// `zone:<id>`, or `map:<name>` for pushes addressed to a map's zones.
    pub topic: String,
    /// The serialised message (for `map:` topics, the payload the receiver expands).
    pub message: String,
    /// When it was recorded, by the origin's clock.
    pub at_ms: u64,
}

/// What [`Store::remove_tuple`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// The tuple was there and is gone.
    Removed,
    /// There was no such tuple.
    Absent,
    /// The tuple is its object's last `owner`: kept.
    LastOwner,
}

/// Persistent state of the registry.
pub trait Store: Send + Sync + 'static {
    /// Creates an account; [`StoreError::Conflict`] if the id is taken.
    fn create_account(&self, id: &str, key_hash: &str, now_ms: u64) -> Result<(), StoreError>;
    /// The account id owning an API key hash.
    fn account_by_key_hash(&self, key_hash: &str) -> Result<Option<String>, StoreError>;

    /// Inserts a new shard and, atomically, its initial tuples.
    fn insert_shard(&self, shard: &ShardRecord, tuples: &[Tuple]) -> Result<(), StoreError>;
    /// One shard by id.
    fn shard(&self, id: Uuid) -> Result<Option<ShardRecord>, StoreError>;
    /// The id of the shard whose secret hashes to `secret_hash`.
    fn shard_by_secret_hash(&self, secret_hash: &str) -> Result<Option<Uuid>, StoreError>;
    /// Applies a heartbeat at `now_ms`; `None` when the shard does not exist.
    fn heartbeat(
        &self,
        id: Uuid,
        update: &HeartbeatUpdate,
        now_ms: u64,
    ) -> Result<Option<ShardRecord>, StoreError>;
    /// Deletes a shard and the tuples on `zone:<id>`; false if it did not exist.
    fn delete_shard(&self, id: Uuid) -> Result<bool, StoreError>;
    /// Shards with `last_put_at_ms >= fresh_since_ms` that are public or owned by `viewer`,
    /// oldest registration first (then by id), restricted and bounded by `page`.
    fn list_shards(
        &self,
        fresh_since_ms: u64,
        viewer: Option<&str>,
        page: &ShardPage,
    ) -> Result<Vec<ShardRecord>, StoreError>;
    /// How many shards `owner` has registered (fresh or not).
    fn count_owned_shards(&self, owner: &str) -> Result<u64, StoreError>;
    /// Records `m` as zone `m.zone` of `m.fabric`, replacing an earlier entry for that zone.
    fn put_member(&self, m: &MemberRecord) -> Result<(), StoreError>;
    /// Members of `fabric` whose shard was heard from at or after `fresh_since_ms`, by zone,
    /// each with its shard's owner and last heartbeat.
    fn fabric_members(
        &self,
        fabric: &str,
        fresh_since_ms: u64,
    ) -> Result<Vec<(MemberRecord, String, u64)>, StoreError>;
    /// Deletes shards with `last_put_at_ms < cutoff_ms` (and their tuples and memberships);
    /// returns their ids.
    fn evict_stale(&self, cutoff_ms: u64) -> Result<Vec<Uuid>, StoreError>;

    /// Adds a tuple; false if it was already present.
    fn add_tuple(&self, tuple: &Tuple) -> Result<bool, StoreError>;
    /// Adds `tuple` (an `owner` tuple) only if its object has no `owner` yet, atomically:
    /// of concurrent claims on one object exactly one wins. False if the object was owned.
    fn claim_owner(&self, tuple: &Tuple) -> Result<bool, StoreError>;
    /// Removes a tuple, unless it is its object's last `owner` tuple (an object nobody can
    /// administer any more could never be fixed through the API), atomically: of concurrent
    /// removals of an object's last two owners, one is refused.
    fn remove_tuple(&self, tuple: &Tuple) -> Result<Removal, StoreError>;
    /// All tuples on an object.
    fn tuples_on(&self, object: &ObjectRef) -> Result<Vec<Tuple>, StoreError>;
    /// Subjects of `object#relation`.
    fn subjects(&self, object: &ObjectRef, relation: &str) -> Result<Vec<Subject>, StoreError>;
    /// Objects with a tuple whose subject is a userset on `object`.
    fn referencing(&self, object: &ObjectRef) -> Result<Vec<ObjectRef>, StoreError>;

    /// A metadata value (e.g. the join signing key).
    fn meta(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// The metadata value of `key`, storing `value` first if there is none (atomically: of
    /// replicas racing to initialise a key, all get the same stored value).
    fn meta_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError>;
    /// Sets a metadata value.
    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError>;
    /// Removes a metadata value; true when there was one.
    fn delete_meta(&self, key: &str) -> Result<bool, StoreError>;
    /// Records `f` as the current version of `(f.map, f.name)`, replacing an earlier one.
    fn put_shared_file(&self, f: &SharedFile) -> Result<(), StoreError>;
    /// The assets of `map`, by name.
    fn shared_files(&self, map: &str) -> Result<Vec<SharedFile>, StoreError>;

    /// Stores `state` (a JSON document) as the next version of `room`; returns that version.
    fn put_room_state(
        &self,
        room: &str,
        state: &str,
        saved_by: &str,
        now_ms: u64,
    ) -> Result<u64, StoreError>;
    /// The latest saved state of `room` (its `state` parsed back into JSON).
    fn room_state(&self, room: &str) -> Result<Option<RoomState>, StoreError>;

    /// Records a push for the other replicas sharing this database.
    fn append_push(
        &self,
        origin: &str,
        topic: &str,
        message: &str,
        now_ms: u64,
    ) -> Result<(), StoreError>;
    /// Pushes recorded at or after `since_ms` by replicas other than `not_from` whose topic is
    /// one of `topics` or a `map:` topic, by id, at most `limit`.
    fn pushes_since(
        &self,
        since_ms: u64,
        not_from: &str,
        topics: &[String],
        limit: u32,
    ) -> Result<Vec<PushRecord>, StoreError>;
    /// Deletes pushes recorded before `before_ms`; returns how many.
    fn prune_pushes(&self, before_ms: u64) -> Result<u64, StoreError>;
}

/// A stored room row back into a [`RoomState`] (shared by both stores).
fn room_from_row(
    room: &str,
    version: i64,
    state: &str,
    saved_by: String,
    saved_at_ms: i64,
) -> Result<RoomState, StoreError> {
    Ok(RoomState {
        room: room.to_owned(),
        version: version as u64,
        saved_by,
        saved_at_ms: saved_at_ms as u64,
        state: serde_json::from_str(state)
            .map_err(|e| StoreError::Corrupt(format!("room {room}: stored state: {e}")))?,
    })
}

/// Adapts a [`Store`] to [`TupleSource`] for [`fabric_auth::rebac::check`].
pub struct StoreTuples<'a>(pub &'a dyn Store);

impl TupleSource for StoreTuples<'_> {
    fn subjects(&self, object: &ObjectRef, relation: &str) -> Result<Vec<Subject>, RebacError> {
        self.0
            .subjects(object, relation)
            .map_err(|e| RebacError::Source(e.to_string()))
    }

    fn referencing(&self, object: &ObjectRef) -> Result<Vec<ObjectRef>, RebacError> {
        self.0
            .referencing(object)
            .map_err(|e| RebacError::Source(e.to_string()))
    }
}
