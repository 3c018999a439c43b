//! PostgreSQL implementation of [`Store`] (`--db postgres://…`), for several backends sharing
//! one networked database. The SQL is the subset CockroachDB also accepts (no LISTEN/NOTIFY,
//! no advisory locks, `ON CONFLICT` upserts); every unit of work is retried when the server
//! reports a serialization failure (SQLSTATE 40001), which CockroachDB does routinely.
//!
//! The [`Store`] trait is synchronous; this store owns a small tokio runtime that drives the
//! connections of a `deadpool-postgres` pool, and each call blocks its (non-async) caller on
//! that runtime. Handlers call it from tokio's blocking pool, so no async worker ever waits.
//!
//! Schema versions live in `schema_version` (one row per applied migration), see
//! [`MIGRATIONS`].

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use fabric_auth::{ObjectRef, Subject, Tuple};
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Row};
use uuid::Uuid;

use super::{HeartbeatUpdate, MemberRecord, Store};
use crate::error::StoreError;
use crate::model::{ShardRecord, SharedFile};

/// Versioned migrations, applied in order, each once, each in its own transaction.
pub const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE IF NOT EXISTS accounts (
         id TEXT PRIMARY KEY,
         key_hash TEXT NOT NULL UNIQUE,
         created_at_ms BIGINT NOT NULL);
     CREATE TABLE IF NOT EXISTS shards (
         id TEXT PRIMARY KEY,
         owner TEXT NOT NULL,
         address TEXT NOT NULL,
         port BIGINT NOT NULL,
         map TEXT NOT NULL,
         name TEXT NOT NULL,
         cert_hash TEXT NOT NULL,
         max_users BIGINT NOT NULL,
         current_users BIGINT NOT NULL,
         public BOOLEAN NOT NULL,
         asset_index_url TEXT,
         secret_hash TEXT NOT NULL UNIQUE,
         created_at_ms BIGINT NOT NULL,
         last_put_at_ms BIGINT NOT NULL,
         next_cert_hash TEXT);
     CREATE INDEX IF NOT EXISTS shards_last_put ON shards (last_put_at_ms);
     CREATE TABLE IF NOT EXISTS tuples (
         object TEXT NOT NULL,
         relation TEXT NOT NULL,
         subject TEXT NOT NULL,
         subject_object TEXT,
         PRIMARY KEY (object, relation, subject));
     CREATE INDEX IF NOT EXISTS tuples_subject_object ON tuples (subject_object);
     CREATE TABLE IF NOT EXISTS fabric_members (
         shard_id TEXT PRIMARY KEY,
         fabric TEXT NOT NULL,
         zone BIGINT NOT NULL,
         zones BIGINT NOT NULL,
         link_address TEXT NOT NULL,
         link_cert_hash TEXT NOT NULL,
         link_next_cert_hash TEXT,
         UNIQUE (fabric, zone));",
    ),
    (
        2,
        "CREATE TABLE IF NOT EXISTS shared_files (
         map TEXT NOT NULL,
         name TEXT NOT NULL,
         hash TEXT NOT NULL,
         size BIGINT NOT NULL,
         chunks BIGINT NOT NULL,
         uploader TEXT NOT NULL,
         baked_at_ms BIGINT NOT NULL,
         baked_url TEXT NOT NULL,
         PRIMARY KEY (map, name));",
    ),
];

/// Attempts per unit of work when the server reports a serialization failure.
const MAX_ATTEMPTS: u32 = 50;
/// Connections in the pool.
const POOL_SIZE: usize = 16;
/// How long a call waits for a free connection.
const POOL_WAIT: Duration = Duration::from_secs(10);

const SHARD_COLUMNS: &str = "id, owner, address, port, map, name, cert_hash, max_users, \
    current_users, public, asset_index_url, secret_hash, created_at_ms, last_put_at_ms, \
    next_cert_hash";

/// True for errors worth retrying: serialization failures (40001) and deadlocks (40P01).
fn retryable(e: &StoreError) -> bool {
    match e {
        StoreError::Postgres(e) => matches!(
            e.code(),
            Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
        ),
        _ => false,
    }
}

/// Runs `$body` (an expression using the connection or transaction named `$c`, with `.await?`)
/// and retries it while it fails with a retryable error. `tx` wraps it in a transaction.
macro_rules! retrying {
    ($self:ident, tx |$c:ident| $body:expr) => {
        $self.run(async {
            let mut attempt = 1;
            loop {
                let result: Result<_, StoreError> = async {
                    let mut conn = $self.conn().await?;
                    let $c = conn.transaction().await?;
                    let value = $body;
                    $c.commit().await?;
                    Ok(value)
                }
                .await;
                match result {
                    Err(e) if retryable(&e) && attempt < MAX_ATTEMPTS => {
                        backoff(attempt).await;
                        attempt += 1;
                    }
                    other => break other,
                }
            }
        })
    };
    ($self:ident, |$c:ident| $body:expr) => {
        $self.run(async {
            let mut attempt = 1;
            loop {
                let result: Result<_, StoreError> = async {
                    let $c = $self.conn().await?;
                    Ok($body)
                }
                .await;
                match result {
                    Err(e) if retryable(&e) && attempt < MAX_ATTEMPTS => {
                        backoff(attempt).await;
                        attempt += 1;
                    }
                    other => break other,
                }
            }
        })
    };
}

async fn backoff(attempt: u32) {
    // 2, 4, 8 … 64 ms, with jitter so competing writers do not collide again in lockstep.
    let base = 1u64 << attempt.min(6);
    let jitter = rand::random::<u64>() % base.max(1);
    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
}

/// PostgreSQL-backed store.
pub struct PgStore {
    pool: Pool,
    rt: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Never blocks, so the last handle may be dropped anywhere (even on an async worker).
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl PgStore {
    /// True when `db` names a PostgreSQL database (`postgres://` or `postgresql://`).
    pub fn is_url(db: &str) -> bool {
        db.starts_with("postgres://") || db.starts_with("postgresql://")
    }

    /// Connects to `url` and applies pending migrations. Blocks: call it from a thread that
    /// is not an async worker.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| StoreError::Connection(e.to_string()))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fabric-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Connection(format!("runtime: {e}")))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Connection(e.to_string()))?;
        let store = Self { pool, rt: Some(rt) };
        store.migrate()?;
        Ok(store)
    }

    fn run<T>(&self, fut: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        match &self.rt {
            Some(rt) => rt.block_on(fut),
            None => Err(StoreError::Connection("store closed".into())),
        }
    }

    async fn conn(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Connection(e.to_string()))
    }

    /// The highest applied migration.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        retrying!(self, |c| {
            let row = c
                .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
                .await?;
            row.get::<_, i64>(0)
        })
    }

    fn migrate(&self) -> Result<(), StoreError> {
        // Replicas racing to create the same catalog entries: PostgreSQL may answer a
        // concurrent `CREATE TABLE IF NOT EXISTS` with a unique violation; the next try sees
        // the table.
        let mut attempt = 1;
        loop {
            match self.migrate_once() {
                Err(StoreError::Postgres(e))
                    if attempt < 5
                        && matches!(e.code(), Some(c) if *c == SqlState::UNIQUE_VIOLATION
                            || *c == SqlState::DUPLICATE_TABLE
                            || *c == SqlState::DUPLICATE_OBJECT) =>
                {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn migrate_once(&self) -> Result<(), StoreError> {
        retrying!(self, |c| {
            c.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_version \
                 (version BIGINT PRIMARY KEY, applied_at_ms BIGINT NOT NULL)",
            )
            .await?
        })?;
        for (version, sql) in MIGRATIONS {
            // Several replicas may start at once: the version row is the claim, and a loser's
            // transaction rolls back (its DDL is IF NOT EXISTS either way).
            retrying!(
                self,
                tx | t | {
                    let claimed = t
                        .execute(
                            "INSERT INTO schema_version (version, applied_at_ms) VALUES ($1, $2) \
                         ON CONFLICT (version) DO NOTHING",
                            &[version, &now_ms()],
                        )
                        .await?;
                    if claimed == 1 {
                        t.batch_execute(sql).await?;
                        tracing::info!(version, "applied PostgreSQL migration");
                    }
                }
            )?;
        }
        Ok(())
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn shard_from_row(row: &Row) -> Result<ShardRecord, StoreError> {
    let id: String = row.try_get(0)?;
    Ok(ShardRecord {
        id: Uuid::parse_str(&id).map_err(corrupt)?,
        owner: row.try_get(1)?,
        address: row.try_get(2)?,
        port: u16::try_from(row.try_get::<_, i64>(3)?).map_err(corrupt)?,
        map: row.try_get(4)?,
        name: row.try_get(5)?,
        cert_hash: row.try_get(6)?,
        max_users: u32::try_from(row.try_get::<_, i64>(7)?).map_err(corrupt)?,
        current_users: u32::try_from(row.try_get::<_, i64>(8)?).map_err(corrupt)?,
        public: row.try_get(9)?,
        asset_index_url: row.try_get(10)?,
        secret_hash: row.try_get(11)?,
        created_at_ms: u64::try_from(row.try_get::<_, i64>(12)?).map_err(corrupt)?,
        last_put_at_ms: u64::try_from(row.try_get::<_, i64>(13)?).map_err(corrupt)?,
        next_cert_hash: row.try_get(14)?,
    })
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn subject_object(subject: &Subject) -> Option<String> {
    match subject {
        Subject::Userset { object, .. } => Some(object.to_string()),
        _ => None,
    }
}

async fn insert_tuple(
    c: &impl deadpool_postgres::GenericClient,
    t: &Tuple,
) -> Result<bool, StoreError> {
    let n = c
        .execute(
            "INSERT INTO tuples (object, relation, subject, subject_object) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            &[
                &t.object.to_string(),
                &t.relation,
                &t.subject.to_string(),
                &subject_object(&t.subject),
            ],
        )
        .await?;
    Ok(n == 1)
}

async fn delete_zone(
    c: &impl deadpool_postgres::GenericClient,
    id: Uuid,
) -> Result<bool, StoreError> {
    let id_text = id.to_string();
    let zone = format!("zone:{id}");
    c.execute(
        "DELETE FROM fabric_members WHERE shard_id = $1",
        &[&id_text],
    )
    .await?;
    c.execute(
        "DELETE FROM tuples WHERE object = $1 OR subject_object = $1",
        &[&zone],
    )
    .await?;
    let n = c
        .execute("DELETE FROM shards WHERE id = $1", &[&id_text])
        .await?;
    Ok(n == 1)
}

fn parse_subject(text: String) -> Result<Subject, StoreError> {
    text.parse()
        .map_err(|e: fabric_auth::RebacError| corrupt(e))
}

impl Store for PgStore {
    fn create_account(&self, id: &str, key_hash: &str, now_ms: u64) -> Result<(), StoreError> {
        let n = retrying!(self, |c| {
            c.execute(
                "INSERT INTO accounts (id, key_hash, created_at_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
                &[&id, &key_hash, &ms(now_ms)],
            )
            .await?
        })?;
        if n == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }

    fn account_by_key_hash(&self, key_hash: &str) -> Result<Option<String>, StoreError> {
        retrying!(self, |c| {
            let st = c
                .prepare_cached("SELECT id FROM accounts WHERE key_hash = $1")
                .await?;
            c.query_opt(&st, &[&key_hash])
                .await?
                .map(|r| r.get::<_, String>(0))
        })
    }

    fn insert_shard(&self, s: &ShardRecord, tuples: &[Tuple]) -> Result<(), StoreError> {
        retrying!(
            self,
            tx | t | {
                t.execute(
                    &format!(
                        "INSERT INTO shards ({SHARD_COLUMNS}) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
                    ),
                    &[
                        &s.id.to_string(),
                        &s.owner,
                        &s.address,
                        &i64::from(s.port),
                        &s.map,
                        &s.name,
                        &s.cert_hash,
                        &i64::from(s.max_users),
                        &i64::from(s.current_users),
                        &s.public,
                        &s.asset_index_url,
                        &s.secret_hash,
                        &ms(s.created_at_ms),
                        &ms(s.last_put_at_ms),
                        &s.next_cert_hash,
                    ],
                )
                .await?;
                for tuple in tuples {
                    insert_tuple(&t, tuple).await?;
                }
            }
        )
    }

    fn shard(&self, id: Uuid) -> Result<Option<ShardRecord>, StoreError> {
        retrying!(self, |c| {
            let st = c
                .prepare_cached(&format!("SELECT {SHARD_COLUMNS} FROM shards WHERE id = $1"))
                .await?;
            c.query_opt(&st, &[&id.to_string()]).await?
        })?
        .map(|r| shard_from_row(&r))
        .transpose()
    }

    fn shard_by_secret_hash(&self, secret_hash: &str) -> Result<Option<Uuid>, StoreError> {
        let id: Option<String> = retrying!(self, |c| {
            let st = c
                .prepare_cached("SELECT id FROM shards WHERE secret_hash = $1")
                .await?;
            c.query_opt(&st, &[&secret_hash]).await?.map(|r| r.get(0))
        })?;
        id.map(|s| Uuid::parse_str(&s).map_err(corrupt)).transpose()
    }

    fn heartbeat(
        &self,
        id: Uuid,
        u: &HeartbeatUpdate,
        now_ms: u64,
    ) -> Result<Option<ShardRecord>, StoreError> {
        retrying!(self, |c| {
            let st = c
                .prepare_cached(&format!(
                    "UPDATE shards SET last_put_at_ms = $2, current_users = $3, \
                     asset_index_url = COALESCE($4, asset_index_url), \
                     cert_hash = COALESCE($5, cert_hash), \
                     next_cert_hash = COALESCE($6, next_cert_hash) WHERE id = $1 \
                     RETURNING {SHARD_COLUMNS}"
                ))
                .await?;
            c.query_opt(
                &st,
                &[
                    &id.to_string(),
                    &ms(now_ms),
                    &i64::from(u.current_users),
                    &u.asset_index_url,
                    &u.cert_hash,
                    &u.next_cert_hash,
                ],
            )
            .await?
        })?
        .map(|r| shard_from_row(&r))
        .transpose()
    }

    fn delete_shard(&self, id: Uuid) -> Result<bool, StoreError> {
        retrying!(self, tx | t | delete_zone(&t, id).await?)
    }

    fn list_shards(
        &self,
        fresh_since_ms: u64,
        viewer: Option<&str>,
    ) -> Result<Vec<ShardRecord>, StoreError> {
        let rows = retrying!(self, |c| {
            let st = c
                .prepare_cached(&format!(
                    "SELECT {SHARD_COLUMNS} FROM shards WHERE last_put_at_ms >= $1 \
                     AND (public OR owner = $2) ORDER BY created_at_ms, id"
                ))
                .await?;
            c.query(&st, &[&ms(fresh_since_ms), &viewer]).await?
        })?;
        rows.iter().map(shard_from_row).collect()
    }

    fn count_owned_shards(&self, owner: &str) -> Result<u64, StoreError> {
        let n = retrying!(self, |c| {
            c.query_one("SELECT count(*) FROM shards WHERE owner = $1", &[&owner])
                .await?
                .get::<_, i64>(0)
        })?;
        Ok(n as u64)
    }

    fn put_member(&self, m: &MemberRecord) -> Result<(), StoreError> {
        retrying!(
            self,
            tx | t | {
                // Replaces an earlier entry for this shard or for this zone of the fabric.
                t.execute(
                    "DELETE FROM fabric_members WHERE shard_id = $1 OR (fabric = $2 AND zone = $3)",
                    &[&m.shard_id.to_string(), &m.fabric, &i64::from(m.zone)],
                )
                .await?;
                t.execute(
                    "INSERT INTO fabric_members (shard_id, fabric, zone, zones, link_address, \
                 link_cert_hash, link_next_cert_hash) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        &m.shard_id.to_string(),
                        &m.fabric,
                        &i64::from(m.zone),
                        &i64::from(m.zones),
                        &m.link_address,
                        &m.link_cert_hash,
                        &m.link_next_cert_hash,
                    ],
                )
                .await?;
            }
        )
    }

    fn fabric_members(
        &self,
        fabric: &str,
        fresh_since_ms: u64,
    ) -> Result<Vec<(MemberRecord, String, u64)>, StoreError> {
        let rows = retrying!(self, |c| {
            c.query(
                "SELECT m.shard_id, m.fabric, m.zone, m.zones, m.link_address, m.link_cert_hash, \
                 m.link_next_cert_hash, s.owner, s.last_put_at_ms \
                 FROM fabric_members m JOIN shards s ON s.id = m.shard_id \
                 WHERE m.fabric = $1 AND s.last_put_at_ms >= $2 ORDER BY m.zone",
                &[&fabric, &ms(fresh_since_ms)],
            )
            .await?
        })?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get(0)?;
                Ok((
                    MemberRecord {
                        shard_id: Uuid::parse_str(&id).map_err(corrupt)?,
                        fabric: r.try_get(1)?,
                        zone: u8::try_from(r.try_get::<_, i64>(2)?).map_err(corrupt)?,
                        zones: u8::try_from(r.try_get::<_, i64>(3)?).map_err(corrupt)?,
                        link_address: r.try_get(4)?,
                        link_cert_hash: r.try_get(5)?,
                        link_next_cert_hash: r.try_get(6)?,
                    },
                    r.try_get(7)?,
                    r.try_get::<_, i64>(8)?.max(0) as u64,
                ))
            })
            .collect()
    }

    fn evict_stale(&self, cutoff_ms: u64) -> Result<Vec<Uuid>, StoreError> {
        retrying!(
            self,
            tx | t | {
                let rows = t
                    .query(
                        "SELECT id FROM shards WHERE last_put_at_ms < $1",
                        &[&ms(cutoff_ms)],
                    )
                    .await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in rows {
                    let id = Uuid::parse_str(&row.try_get::<_, String>(0)?).map_err(corrupt)?;
                    delete_zone(&t, id).await?;
                    out.push(id);
                }
                out
            }
        )
    }

    fn add_tuple(&self, tuple: &Tuple) -> Result<bool, StoreError> {
        retrying!(self, |c| insert_tuple(&c, tuple).await?)
    }

    fn claim_owner(&self, tuple: &Tuple) -> Result<bool, StoreError> {
        // SERIALIZABLE (CockroachDB's only level): of two racing claims one commits and the
        // other fails with 40001, is retried, and then finds the owner.
        retrying!(
            self,
            tx | t | {
                t.batch_execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
                    .await?;
                let owned = t
                    .query_opt(
                        "SELECT 1 FROM tuples WHERE object = $1 AND relation = 'owner' LIMIT 1",
                        &[&tuple.object.to_string()],
                    )
                    .await?
                    .is_some();
                !owned && insert_tuple(&t, tuple).await?
            }
        )
    }

    fn remove_tuple(&self, tuple: &Tuple) -> Result<bool, StoreError> {
        let n = retrying!(self, |c| {
            c.execute(
                "DELETE FROM tuples WHERE object = $1 AND relation = $2 AND subject = $3",
                &[
                    &tuple.object.to_string(),
                    &tuple.relation,
                    &tuple.subject.to_string(),
                ],
            )
            .await?
        })?;
        Ok(n == 1)
    }

    fn tuples_on(&self, object: &ObjectRef) -> Result<Vec<Tuple>, StoreError> {
        let rows = retrying!(self, |c| {
            c.query(
                "SELECT relation, subject FROM tuples WHERE object = $1 \
                 ORDER BY relation, subject",
                &[&object.to_string()],
            )
            .await?
        })?;
        rows.iter()
            .map(|r| {
                Ok(Tuple {
                    object: object.clone(),
                    relation: r.try_get(0)?,
                    subject: parse_subject(r.try_get(1)?)?,
                })
            })
            .collect()
    }

    fn subjects(&self, object: &ObjectRef, relation: &str) -> Result<Vec<Subject>, StoreError> {
        let rows = retrying!(self, |c| {
            let st = c
                .prepare_cached("SELECT subject FROM tuples WHERE object = $1 AND relation = $2")
                .await?;
            c.query(&st, &[&object.to_string(), &relation]).await?
        })?;
        rows.iter().map(|r| parse_subject(r.try_get(0)?)).collect()
    }

    fn referencing(&self, object: &ObjectRef) -> Result<Vec<ObjectRef>, StoreError> {
        let rows = retrying!(self, |c| {
            let st = c
                .prepare_cached("SELECT DISTINCT object FROM tuples WHERE subject_object = $1")
                .await?;
            c.query(&st, &[&object.to_string()]).await?
        })?;
        rows.iter()
            .map(|r| {
                r.try_get::<_, String>(0)?
                    .parse()
                    .map_err(|e: fabric_auth::RebacError| corrupt(e))
            })
            .collect()
    }

    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        retrying!(self, |c| {
            c.query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
                .await?
                .map(|r| r.get::<_, String>(0))
        })
    }

    fn meta_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        retrying!(self, |c| {
            c.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &value],
            )
            .await?;
            c.query_one("SELECT value FROM meta WHERE key = $1", &[&key])
                .await?
                .get::<_, String>(0)
        })
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        retrying!(self, |c| {
            c.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&key, &value],
            )
            .await?;
        })
    }

    fn put_shared_file(&self, f: &SharedFile) -> Result<(), StoreError> {
        let (size, chunks, at) = (f.size as i64, f.chunks as i64, f.baked_at_ms as i64);
        retrying!(self, |c| {
            c.execute(
                "INSERT INTO shared_files \
                 (map, name, hash, size, chunks, uploader, baked_at_ms, baked_url) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (map, name) DO UPDATE SET hash = excluded.hash, \
                 size = excluded.size, chunks = excluded.chunks, uploader = excluded.uploader, \
                 baked_at_ms = excluded.baked_at_ms, baked_url = excluded.baked_url",
                &[
                    &f.map,
                    &f.name,
                    &f.hash,
                    &size,
                    &chunks,
                    &f.uploader,
                    &at,
                    &f.baked_url,
                ],
            )
            .await?;
        })
    }

    fn shared_files(&self, map: &str) -> Result<Vec<SharedFile>, StoreError> {
        let rows = retrying!(self, |c| {
            c.query(
                "SELECT map, name, hash, size, chunks, uploader, baked_at_ms, baked_url \
                 FROM shared_files WHERE map = $1 ORDER BY name",
                &[&map],
            )
            .await?
        })?;
        rows.iter()
            .map(|r| {
                Ok(SharedFile {
                    map: r.try_get(0)?,
                    name: r.try_get(1)?,
                    hash: r.try_get(2)?,
                    size: r.try_get::<_, i64>(3)? as u64,
                    chunks: r.try_get::<_, i64>(4)? as u64,
                    uploader: r.try_get(5)?,
                    baked_at_ms: r.try_get::<_, i64>(6)? as u64,
                    baked_url: r.try_get(7)?,
                })
            })
            .collect()
    }
}
