//! Embedded SQLite implementation of [`Store`]: one connection behind a mutex (SQLite
//! serialises writers anyway; every statement here takes microseconds), WAL mode with
//! `synchronous=NORMAL` for files, prepared-statement cache, schema version in `meta`
//! (version 2 added `shards.next_cert_hash`, version 3 the `fabric_members` table; older
//! databases are upgraded on open).

use std::path::Path;
use std::sync::Mutex;

use fabric_auth::{ObjectRef, Subject, Tuple};
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use super::{HeartbeatUpdate, MemberRecord, PushRecord, Removal, ShardPage, Store};
use crate::error::StoreError;
use crate::model::{RoomState, ShardRecord, SharedFile};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS shards (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    address TEXT NOT NULL,
    port INTEGER NOT NULL,
    map TEXT NOT NULL,
    name TEXT NOT NULL,
    cert_hash TEXT NOT NULL,
    max_users INTEGER NOT NULL,
    current_users INTEGER NOT NULL,
    public INTEGER NOT NULL,
    asset_index_url TEXT,
    secret_hash TEXT NOT NULL UNIQUE,
    created_at_ms INTEGER NOT NULL,
    last_put_at_ms INTEGER NOT NULL,
    next_cert_hash TEXT
);
CREATE INDEX IF NOT EXISTS shards_last_put ON shards(last_put_at_ms);
CREATE INDEX IF NOT EXISTS shards_listing ON shards(created_at_ms, id);
CREATE TABLE IF NOT EXISTS tuples (
    object TEXT NOT NULL,
    relation TEXT NOT NULL,
    subject TEXT NOT NULL,
    subject_object TEXT,
    PRIMARY KEY (object, relation, subject)
);
CREATE INDEX IF NOT EXISTS tuples_subject_object ON tuples(subject_object);
CREATE TABLE IF NOT EXISTS fabric_members (
    shard_id TEXT PRIMARY KEY,
    fabric TEXT NOT NULL,
    zone INTEGER NOT NULL,
    zones INTEGER NOT NULL,
    link_address TEXT NOT NULL,
    link_cert_hash TEXT NOT NULL,
    link_next_cert_hash TEXT,
    UNIQUE (fabric, zone)
);
CREATE TABLE IF NOT EXISTS shared_files (
    map TEXT NOT NULL,
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    size INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    uploader TEXT NOT NULL,
    baked_at_ms INTEGER NOT NULL,
    baked_url TEXT NOT NULL,
    PRIMARY KEY (map, name)
);
CREATE TABLE IF NOT EXISTS room_states (
    room TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    state TEXT NOT NULL,
    saved_by TEXT NOT NULL,
    saved_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS push_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL,
    topic TEXT NOT NULL,
    message TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS push_log_at ON push_log (at_ms);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '1');
";

const SHARD_COLUMNS: &str = "id, owner, address, port, map, name, cert_hash, max_users, \
    current_users, public, asset_index_url, secret_hash, created_at_ms, last_put_at_ms, \
    next_cert_hash";

/// Brings a database made by an older version up to the current schema.
fn upgrade(conn: &Connection) -> Result<(), StoreError> {
    let has_next: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('shards') WHERE name = 'next_cert_hash'")?
        .exists([])?;
    if !has_next {
        conn.execute_batch("ALTER TABLE shards ADD COLUMN next_cert_hash TEXT")?;
    }
    conn.execute(
        "UPDATE meta SET value = '4' WHERE key = 'schema_version'",
        [],
    )?;
    Ok(())
}

#[cfg(unix)]
fn restrict_to_owner(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| StoreError::Corrupt(format!("cannot restrict {path:?} to its owner: {e}")))
}

#[cfg(not(unix))]
fn restrict_to_owner(_path: &Path) -> Result<(), StoreError> {
    Ok(())
}

/// SQLite-backed store.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`; `:memory:` gives a private in-memory
    /// database that vanishes with the process.
    pub fn open(path: &str) -> Result<Self, StoreError> {
        let conn = if path == ":memory:" {
            Connection::open_in_memory()?
        } else {
            if let Some(parent) = Path::new(path).parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent)
                    .map_err(|e| StoreError::Corrupt(format!("cannot create {parent:?}: {e}")))?;
            }
            let existed = Path::new(path).exists();
            let conn = Connection::open(path)?;
            if !existed {
                // The database holds API-key and shard-secret hashes (the signing seed lives
                // in its own file, `keyring`): readable by its owner only. SQLite gives the
                // -wal and -shm files the same mode.
                restrict_to_owner(Path::new(path))?;
            }
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn
        };
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        upgrade(&conn)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn)
    }
}

fn shard_from_row(row: &Row<'_>) -> rusqlite::Result<Result<ShardRecord, StoreError>> {
    let id: String = row.get(0)?;
    let port: i64 = row.get(3)?;
    let record = (|| {
        Ok(ShardRecord {
            id: Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            owner: row.get(1)?,
            address: row.get(2)?,
            port: u16::try_from(port).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            map: row.get(4)?,
            name: row.get(5)?,
            cert_hash: row.get(6)?,
            max_users: row.get(7)?,
            current_users: row.get(8)?,
            public: row.get(9)?,
            asset_index_url: row.get(10)?,
            secret_hash: row.get(11)?,
            created_at_ms: row.get::<_, i64>(12)? as u64,
            last_put_at_ms: row.get::<_, i64>(13)? as u64,
            next_cert_hash: row.get(14)?,
        })
    })();
    Ok(record)
}

fn collect_shards(
    rows: impl Iterator<Item = rusqlite::Result<Result<ShardRecord, StoreError>>>,
) -> Result<Vec<ShardRecord>, StoreError> {
    let mut out = Vec::new();
    for row in rows {
        out.push(row??);
    }
    Ok(out)
}

fn zone_object(id: Uuid) -> String {
    format!("zone:{id}")
}

fn subject_object(subject: &Subject) -> Option<String> {
    match subject {
        Subject::Userset { object, .. } => Some(object.to_string()),
        _ => None,
    }
}

fn insert_tuple(conn: &Connection, tuple: &Tuple) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO tuples (object, relation, subject, subject_object) \
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            tuple.object.to_string(),
            tuple.relation,
            tuple.subject.to_string(),
            subject_object(&tuple.subject)
        ])?;
    Ok(n == 1)
}

fn delete_zone(conn: &Connection, id: Uuid) -> Result<bool, StoreError> {
    let zone = zone_object(id);
    conn.prepare_cached("DELETE FROM fabric_members WHERE shard_id = ?1")?
        .execute(params![id.to_string()])?;
    conn.prepare_cached("DELETE FROM tuples WHERE object = ?1 OR subject_object = ?1")?
        .execute(params![zone])?;
    let n = conn
        .prepare_cached("DELETE FROM shards WHERE id = ?1")?
        .execute(params![id.to_string()])?;
    Ok(n == 1)
}

fn parse_subject(text: String) -> Result<Subject, StoreError> {
    text.parse()
        .map_err(|e: fabric_auth::RebacError| StoreError::Corrupt(e.to_string()))
}

fn parse_object(text: String) -> Result<ObjectRef, StoreError> {
    text.parse()
        .map_err(|e: fabric_auth::RebacError| StoreError::Corrupt(e.to_string()))
}

impl Store for SqliteStore {
    fn create_account(&self, id: &str, key_hash: &str, now_ms: u64) -> Result<(), StoreError> {
        self.with(|c| {
            let n = c
                .prepare_cached(
                    "INSERT OR IGNORE INTO accounts (id, key_hash, created_at_ms) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![id, key_hash, now_ms as i64])?;
            if n == 1 {
                Ok(())
            } else {
                Err(StoreError::Conflict)
            }
        })
    }

    fn account_by_key_hash(&self, key_hash: &str) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            Ok(
                c.prepare_cached("SELECT id FROM accounts WHERE key_hash = ?1")?
                    .query_row(params![key_hash], |r| r.get(0))
                    .optional()?,
            )
        })
    }

    fn insert_shard(&self, s: &ShardRecord, tuples: &[Tuple]) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.prepare_cached(&format!(
                "INSERT INTO shards ({SHARD_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
            ))?
            .execute(params![
                s.id.to_string(),
                s.owner,
                s.address,
                s.port,
                s.map,
                s.name,
                s.cert_hash,
                s.max_users,
                s.current_users,
                s.public,
                s.asset_index_url,
                s.secret_hash,
                s.created_at_ms as i64,
                s.last_put_at_ms as i64,
                s.next_cert_hash
            ])?;
            for t in tuples {
                insert_tuple(&tx, t)?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn shard(&self, id: Uuid) -> Result<Option<ShardRecord>, StoreError> {
        self.with(|c| {
            c.prepare_cached(&format!("SELECT {SHARD_COLUMNS} FROM shards WHERE id = ?1"))?
                .query_row(params![id.to_string()], shard_from_row)
                .optional()?
                .transpose()
        })
    }

    fn shard_by_secret_hash(&self, secret_hash: &str) -> Result<Option<Uuid>, StoreError> {
        self.with(|c| {
            let id: Option<String> = c
                .prepare_cached("SELECT id FROM shards WHERE secret_hash = ?1")?
                .query_row(params![secret_hash], |r| r.get(0))
                .optional()?;
            id.map(|s| Uuid::parse_str(&s).map_err(|e| StoreError::Corrupt(e.to_string())))
                .transpose()
        })
    }

    fn heartbeat(
        &self,
        id: Uuid,
        u: &HeartbeatUpdate,
        now_ms: u64,
    ) -> Result<Option<ShardRecord>, StoreError> {
        self.with(|c| {
            c.prepare_cached(&format!(
                "UPDATE shards SET last_put_at_ms = ?2, current_users = ?3, \
                 asset_index_url = COALESCE(?4, asset_index_url), \
                 cert_hash = COALESCE(?5, cert_hash), \
                 next_cert_hash = COALESCE(?6, next_cert_hash) WHERE id = ?1 \
                 RETURNING {SHARD_COLUMNS}"
            ))?
            .query_row(
                params![
                    id.to_string(),
                    now_ms as i64,
                    u.current_users,
                    u.asset_index_url,
                    u.cert_hash,
                    u.next_cert_hash
                ],
                shard_from_row,
            )
            .optional()?
            .transpose()
        })
    }

    fn delete_shard(&self, id: Uuid) -> Result<bool, StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            let existed = delete_zone(&tx, id)?;
            tx.commit()?;
            Ok(existed)
        })
    }

    fn list_shards(
        &self,
        fresh_since_ms: u64,
        viewer: Option<&str>,
        page: &ShardPage,
    ) -> Result<Vec<ShardRecord>, StoreError> {
        // Before the first page the position is (-1, ''): below every real one. A row-value
        // comparison lets SQLite start the index range at the cursor.
        let after_ms = page.after.map_or(-1, |c| c.created_at_ms as i64);
        let after_id = page.after.map(|c| c.id.to_string()).unwrap_or_default();
        self.with(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {SHARD_COLUMNS} FROM shards WHERE (created_at_ms, id) > (?4, ?5) \
                 AND last_put_at_ms >= ?1 AND (public = 1 OR owner = ?2) \
                 AND (?3 IS NULL OR map = ?3) \
                 ORDER BY created_at_ms, id LIMIT ?6"
            ))?;
            let rows = stmt.query_map(
                params![
                    fresh_since_ms as i64,
                    viewer,
                    page.map,
                    after_ms,
                    after_id,
                    i64::from(page.limit)
                ],
                shard_from_row,
            )?;
            collect_shards(rows)
        })
    }

    fn count_owned_shards(&self, owner: &str) -> Result<u64, StoreError> {
        self.with(|c| {
            let n: i64 = c
                .prepare_cached("SELECT count(*) FROM shards WHERE owner = ?1")?
                .query_row(params![owner], |r| r.get(0))?;
            Ok(n as u64)
        })
    }

    fn put_member(&self, m: &MemberRecord) -> Result<(), StoreError> {
        self.with(|c| {
            c.prepare_cached(
                "INSERT OR REPLACE INTO fabric_members (shard_id, fabric, zone, zones, \
                 link_address, link_cert_hash, link_next_cert_hash) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                m.shard_id.to_string(),
                m.fabric,
                m.zone,
                m.zones,
                m.link_address,
                m.link_cert_hash,
                m.link_next_cert_hash
            ])?;
            Ok(())
        })
    }

    fn fabric_members(
        &self,
        fabric: &str,
        fresh_since_ms: u64,
    ) -> Result<Vec<(MemberRecord, String, u64)>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT m.shard_id, m.fabric, m.zone, m.zones, m.link_address, m.link_cert_hash, \
                 m.link_next_cert_hash, s.owner, s.last_put_at_ms \
                 FROM fabric_members m JOIN shards s ON s.id = m.shard_id \
                 WHERE m.fabric = ?1 AND s.last_put_at_ms >= ?2 ORDER BY m.zone",
            )?;
            let rows = st.query_map(params![fabric, fresh_since_ms as i64], |r| {
                let id: String = r.get(0)?;
                let last: i64 = r.get(8)?;
                Ok((
                    id,
                    MemberRecord {
                        shard_id: Uuid::nil(),
                        fabric: r.get(1)?,
                        zone: r.get(2)?,
                        zones: r.get(3)?,
                        link_address: r.get(4)?,
                        link_cert_hash: r.get(5)?,
                        link_next_cert_hash: r.get(6)?,
                    },
                    r.get::<_, String>(7)?,
                    last.max(0) as u64,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, mut m, owner, last) = row?;
                m.shard_id =
                    Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                out.push((m, owner, last));
            }
            Ok(out)
        })
    }

    fn evict_stale(&self, cutoff_ms: u64) -> Result<Vec<Uuid>, StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            let ids: Vec<String> = tx
                .prepare_cached("SELECT id FROM shards WHERE last_put_at_ms < ?1")?
                .query_map(params![cutoff_ms as i64], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let id = Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                delete_zone(&tx, id)?;
                out.push(id);
            }
            tx.commit()?;
            Ok(out)
        })
    }

    fn add_tuple(&self, tuple: &Tuple) -> Result<bool, StoreError> {
        self.with(|c| insert_tuple(c, tuple))
    }

    fn claim_owner(&self, tuple: &Tuple) -> Result<bool, StoreError> {
        // One connection behind a mutex: the check and the insert cannot interleave.
        self.with(|c| {
            let tx = c.transaction()?;
            let owned = tx
                .prepare_cached("SELECT 1 FROM tuples WHERE object = ?1 AND relation = 'owner'")?
                .exists(params![tuple.object.to_string()])?;
            let won = !owned && insert_tuple(&tx, tuple)?;
            tx.commit()?;
            Ok(won)
        })
    }

    fn remove_tuple(&self, tuple: &Tuple) -> Result<Removal, StoreError> {
        self.with(|c| {
            // One statement, so one write at a time: the count it reads is the one it acts on.
            let n = c
                .prepare_cached(
                    "DELETE FROM tuples WHERE object = ?1 AND relation = ?2 AND subject = ?3 \
                     AND (?2 <> 'owner' OR (SELECT count(*) FROM tuples \
                          WHERE object = ?1 AND relation = 'owner') > 1)",
                )?
                .execute(params![
                    tuple.object.to_string(),
                    tuple.relation,
                    tuple.subject.to_string()
                ])?;
            if n == 1 {
                return Ok(Removal::Removed);
            }
            let present = c
                .prepare_cached(
                    "SELECT 1 FROM tuples WHERE object = ?1 AND relation = ?2 AND subject = ?3",
                )?
                .exists(params![
                    tuple.object.to_string(),
                    tuple.relation,
                    tuple.subject.to_string()
                ])?;
            Ok(if present {
                Removal::LastOwner
            } else {
                Removal::Absent
            })
        })
    }

    fn tuples_on(&self, object: &ObjectRef) -> Result<Vec<Tuple>, StoreError> {
        self.with(|c| {
            let rows: Vec<(String, String)> = c
                .prepare_cached(
                    "SELECT relation, subject FROM tuples WHERE object = ?1 ORDER BY relation, subject",
                )?
                .query_map(params![object.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            rows.into_iter()
                .map(|(relation, subject)| {
                    Ok(Tuple {
                        object: object.clone(),
                        relation,
                        subject: parse_subject(subject)?,
                    })
                })
                .collect()
        })
    }

    fn subjects(&self, object: &ObjectRef, relation: &str) -> Result<Vec<Subject>, StoreError> {
        self.with(|c| {
            let rows: Vec<String> = c
                .prepare_cached("SELECT subject FROM tuples WHERE object = ?1 AND relation = ?2")?
                .query_map(params![object.to_string(), relation], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            rows.into_iter().map(parse_subject).collect()
        })
    }

    fn referencing(&self, object: &ObjectRef) -> Result<Vec<ObjectRef>, StoreError> {
        self.with(|c| {
            let rows: Vec<String> = c
                .prepare_cached("SELECT DISTINCT object FROM tuples WHERE subject_object = ?1")?
                .query_map(params![object.to_string()], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            rows.into_iter().map(parse_object).collect()
        })
    }

    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            Ok(c.prepare_cached("SELECT value FROM meta WHERE key = ?1")?
                .query_row(params![key], |r| r.get(0))
                .optional()?)
        })
    }

    fn meta_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        self.with(|c| {
            c.prepare_cached("INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)")?
                .execute(params![key, value])?;
            Ok(c.prepare_cached("SELECT value FROM meta WHERE key = ?1")?
                .query_row(params![key], |r| r.get(0))?)
        })
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
                .execute(params![key, value])?;
            Ok(())
        })
    }

    fn delete_meta(&self, key: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            Ok(c.prepare_cached("DELETE FROM meta WHERE key = ?1")?
                .execute(params![key])?
                > 0)
        })
    }

    fn put_shared_file(&self, f: &SharedFile) -> Result<(), StoreError> {
        self.with(|c| {
            c.prepare_cached(
                "INSERT OR REPLACE INTO shared_files \
                 (map, name, hash, size, chunks, uploader, baked_at_ms, baked_url) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                f.map,
                f.name,
                f.hash,
                f.size as i64,
                f.chunks as i64,
                f.uploader,
                f.baked_at_ms as i64,
                f.baked_url
            ])?;
            Ok(())
        })
    }

    fn shared_files(&self, map: &str) -> Result<Vec<SharedFile>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT map, name, hash, size, chunks, uploader, baked_at_ms, baked_url \
                 FROM shared_files WHERE map = ?1 ORDER BY name",
            )?;
            let rows = stmt.query_map(params![map], |r| {
                let hash: String = r.get(2)?;
                Ok(SharedFile {
                    map: r.get(0)?,
                    name: r.get(1)?,
                    asset_id: fabric_assets::asset_id_of_hex(&hash).unwrap_or(0),
                    hash,
                    size: r.get::<_, i64>(3)? as u64,
                    chunks: r.get::<_, i64>(4)? as u64,
                    uploader: r.get(5)?,
                    baked_at_ms: r.get::<_, i64>(6)? as u64,
                    baked_url: r.get(7)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn append_push(
        &self,
        origin: &str,
        topic: &str,
        message: &str,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.prepare_cached(
                "INSERT INTO push_log (origin, topic, message, at_ms) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![origin, topic, message, now_ms as i64])?;
            Ok(())
        })
    }

    fn pushes_since(
        &self,
        since_ms: u64,
        not_from: &str,
        topics: &[String],
        limit: u32,
    ) -> Result<Vec<PushRecord>, StoreError> {
        let topics = serde_json::to_string(topics).expect("strings serialise");
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, origin, topic, message, at_ms FROM push_log \
                 WHERE at_ms >= ?1 AND origin <> ?2 \
                 AND (topic IN (SELECT value FROM json_each(?3)) OR topic LIKE 'map:%') \
                 ORDER BY id LIMIT ?4",
            )?;
            let rows = stmt.query_map(
                params![since_ms as i64, not_from, topics, i64::from(limit)],
                |r| {
                    Ok(PushRecord {
                        id: r.get(0)?,
                        origin: r.get(1)?,
                        topic: r.get(2)?,
                        message: r.get(3)?,
                        at_ms: r.get::<_, i64>(4)? as u64,
                    })
                },
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn prune_pushes(&self, before_ms: u64) -> Result<u64, StoreError> {
        self.with(|c| {
            let n = c
                .prepare_cached("DELETE FROM push_log WHERE at_ms < ?1")?
                .execute(params![before_ms as i64])?;
            Ok(n as u64)
        })
    }

    fn put_room_state(
        &self,
        room: &str,
        state: &str,
        saved_by: &str,
        now_ms: u64,
    ) -> Result<u64, StoreError> {
        self.with(|c| {
            let version: i64 = c
                .prepare_cached(
                    "INSERT INTO room_states (room, version, state, saved_by, saved_at_ms) \
                     VALUES (?1, 1, ?2, ?3, ?4) \
                     ON CONFLICT (room) DO UPDATE SET version = version + 1, \
                     state = excluded.state, saved_by = excluded.saved_by, \
                     saved_at_ms = excluded.saved_at_ms \
                     RETURNING version",
                )?
                .query_row(params![room, state, saved_by, now_ms as i64], |r| r.get(0))?;
            Ok(version as u64)
        })
    }

    fn room_state(&self, room: &str) -> Result<Option<RoomState>, StoreError> {
        let row = self.with(|c| {
            Ok(c.prepare_cached(
                "SELECT version, state, saved_by, saved_at_ms FROM room_states WHERE room = ?1",
            )?
            .query_row(params![room], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .optional()?)
        })?;
        row.map(|(version, state, saved_by, at)| {
            super::room_from_row(room, version, &state, saved_by, at)
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: u128, owner: &str, public: bool, t: u64) -> ShardRecord {
        ShardRecord {
            id: Uuid::from_u128(id),
            owner: owner.into(),
            address: "127.0.0.1".into(),
            port: 7443,
            map: "plaza".into(),
            name: format!("z{id}"),
            cert_hash: "abc".into(),
            max_users: 32,
            current_users: 0,
            public,
            asset_index_url: None,
            secret_hash: format!("h{id}"),
            created_at_ms: t,
            last_put_at_ms: t,
            next_cert_hash: None,
        }
    }

    #[test]
    fn listing_filters_by_freshness_and_visibility() {
        let s = SqliteStore::open(":memory:").unwrap();
        s.insert_shard(&shard(1, "ann", true, 1000), &[]).unwrap();
        s.insert_shard(&shard(2, "ann", false, 1000), &[]).unwrap();
        s.insert_shard(&shard(3, "bob", true, 500), &[]).unwrap();
        let ids = |v: Vec<ShardRecord>| v.iter().map(|r| r.id.as_u128()).collect::<Vec<_>>();
        assert_eq!(
            ids(s.list_shards(900, None, &ShardPage::all()).unwrap()),
            vec![1],
            "anonymous"
        );
        assert_eq!(
            ids(s.list_shards(900, Some("ann"), &ShardPage::all()).unwrap()),
            vec![1, 2],
            "owner"
        );
        assert_eq!(
            ids(s.list_shards(0, Some("bob"), &ShardPage::all()).unwrap()),
            vec![3, 1],
            "bob sees public shards, oldest registration first"
        );
        let hb = HeartbeatUpdate {
            current_users: 5,
            asset_index_url: Some("http://a/idx".into()),
            cert_hash: Some("rotated-hash".into()),
            next_cert_hash: Some("following-hash".into()),
        };
        let after = s.heartbeat(Uuid::from_u128(3), &hb, 2000).unwrap().unwrap();
        assert_eq!(
            (after.current_users, after.last_put_at_ms),
            (5, 2000),
            "heartbeat applied"
        );
        let keep = HeartbeatUpdate {
            current_users: 6,
            asset_index_url: None,
            cert_hash: None,
            next_cert_hash: None,
        };
        let after = s
            .heartbeat(Uuid::from_u128(3), &keep, 2001)
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                after.asset_index_url.as_deref(),
                after.cert_hash.as_str(),
                after.next_cert_hash.as_deref()
            ),
            (Some("http://a/idx"), "rotated-hash", Some("following-hash")),
            "url and rotated certificate hashes kept"
        );
        assert!(s.heartbeat(Uuid::from_u128(9), &keep, 1).unwrap().is_none());
    }

    #[test]
    fn a_version_1_database_is_upgraded_and_keeps_its_shards() {
        let dir = std::env::temp_dir().join(format!("fabric-store-v1-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("v1.sqlite3");
        let path = path.to_str().unwrap();
        {
            // The version-1 shards table: no next_cert_hash column.
            let c = Connection::open(path).unwrap();
            c.execute_batch(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 INSERT INTO meta VALUES ('schema_version', '1');
                 CREATE TABLE shards (id TEXT PRIMARY KEY, owner TEXT NOT NULL,
                   address TEXT NOT NULL, port INTEGER NOT NULL, map TEXT NOT NULL,
                   name TEXT NOT NULL, cert_hash TEXT NOT NULL, max_users INTEGER NOT NULL,
                   current_users INTEGER NOT NULL, public INTEGER NOT NULL,
                   asset_index_url TEXT, secret_hash TEXT NOT NULL UNIQUE,
                   created_at_ms INTEGER NOT NULL, last_put_at_ms INTEGER NOT NULL);",
            )
            .unwrap();
            c.execute(
                "INSERT INTO shards VALUES (?1, 'ann', '127.0.0.1', 7443, 'plaza', 'old', 'h1', \
                 32, 0, 1, NULL, 'secret', 1000, 1000)",
                [Uuid::from_u128(7).to_string()],
            )
            .unwrap();
        }
        let s = SqliteStore::open(path).unwrap();
        let old = s.list_shards(0, None, &ShardPage::all()).unwrap();
        assert_eq!(old.len(), 1, "the shard survived the upgrade");
        assert_eq!(
            (old[0].name.as_str(), old[0].next_cert_hash.as_deref()),
            ("old", None)
        );
        let hb = HeartbeatUpdate {
            current_users: 1,
            asset_index_url: None,
            cert_hash: Some("h2".into()),
            next_cert_hash: Some("h3".into()),
        };
        let after = s.heartbeat(Uuid::from_u128(7), &hb, 2000).unwrap().unwrap();
        assert_eq!(
            (after.cert_hash.as_str(), after.next_cert_hash.as_deref()),
            ("h2", Some("h3"))
        );
        let version: String = s
            .with(|c| {
                Ok(c.query_row(
                    "SELECT value FROM meta WHERE key = 'schema_version'",
                    [],
                    |r| r.get(0),
                )?)
            })
            .unwrap();
        assert_eq!(version, "4");
        let m = MemberRecord {
            shard_id: Uuid::from_u128(7),
            fabric: "f".into(),
            zone: 0,
            zones: 2,
            link_address: "127.0.0.1:7500".into(),
            link_cert_hash: "l".into(),
            link_next_cert_hash: None,
        };
        s.put_member(&m).unwrap();
        let listed = s.fabric_members("f", 0).unwrap();
        assert_eq!(
            listed,
            vec![(m, "ann".to_owned(), 2000)],
            "the new table works"
        );
        drop(s);
        // Opening an upgraded database again changes nothing.
        assert_eq!(
            SqliteStore::open(path)
                .unwrap()
                .list_shards(0, None, &ShardPage::all())
                .unwrap()
                .len(),
            1
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn eviction_removes_stale_rows_and_their_tuples() {
        let s = SqliteStore::open(":memory:").unwrap();
        let t = Tuple::parse(&format!("zone:{}", Uuid::from_u128(1)), "owner", "user:ann").unwrap();
        s.insert_shard(&shard(1, "ann", true, 1000), std::slice::from_ref(&t))
            .unwrap();
        s.insert_shard(&shard(2, "ann", true, 3000), &[]).unwrap();
        assert_eq!(s.evict_stale(2000).unwrap(), vec![Uuid::from_u128(1)]);
        assert!(s.shard(Uuid::from_u128(1)).unwrap().is_none(), "row gone");
        assert!(s.shard(Uuid::from_u128(2)).unwrap().is_some(), "fresh kept");
        assert!(s.tuples_on(&t.object).unwrap().is_empty(), "tuples gone");
    }

    #[test]
    fn file_database_survives_reopen() {
        let dir = std::env::temp_dir().join(format!("fabric-backend-{}", Uuid::new_v4()));
        let path = dir.join("reg.sqlite3");
        let path = path.to_str().unwrap();
        {
            let s = SqliteStore::open(path).unwrap();
            s.create_account("ann", "k1", 1).unwrap();
            assert!(matches!(
                s.create_account("ann", "k2", 1),
                Err(StoreError::Conflict)
            ));
        }
        let s = SqliteStore::open(path).unwrap();
        assert_eq!(s.account_by_key_hash("k1").unwrap().as_deref(), Some("ann"));
        drop(s);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
