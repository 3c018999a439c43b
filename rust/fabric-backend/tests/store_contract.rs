//! The `Store` contract, run against both stores: SQLite (in memory) and PostgreSQL (a real
//! server this test starts, installed by `scripts/setup-postgres.sh` when missing). Plus what
//! only the networked store has: versioned migrations that several replicas may race to apply,
//! and retries when the server reports serialization failures (SQLSTATE 40001).

mod common;

use std::sync::Arc;

use fabric_auth::Tuple;
use fabric_backend::StoreError;
use fabric_backend::model::{ShardRecord, SharedFile};
use fabric_backend::store::Removal;
use fabric_backend::store::postgres::{MIGRATIONS, PgStore};
use fabric_backend::store::sqlite::SqliteStore;
use fabric_backend::store::{HeartbeatUpdate, MemberRecord, ShardCursor, ShardPage, Store};
use uuid::Uuid;

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

fn member(shard: u128, zone: u8) -> MemberRecord {
    MemberRecord {
        shard_id: Uuid::from_u128(shard),
        fabric: "world".into(),
        zone,
        zones: 3,
        link_address: format!("127.0.0.1:{}", 7500 + u16::from(zone)),
        link_cert_hash: "l".into(),
        link_next_cert_hash: None,
    }
}

/// Everything a handler relies on, in one pass over a fresh store.
fn contract(s: &dyn Store) {
    // Accounts: unique id and unique key hash.
    s.create_account("ann", "k-ann", 1).unwrap();
    s.create_account("bob", "k-bob", 1).unwrap();
    assert!(
        matches!(
            s.create_account("ann", "k-other", 2),
            Err(StoreError::Conflict)
        ),
        "taken id"
    );
    assert_eq!(
        s.account_by_key_hash("k-bob").unwrap().as_deref(),
        Some("bob")
    );
    assert_eq!(s.account_by_key_hash("nope").unwrap(), None);

    // Shards with their initial tuples, listing by freshness and visibility.
    let owner = Tuple::parse(&format!("zone:{}", Uuid::from_u128(1)), "owner", "user:ann").unwrap();
    s.insert_shard(&shard(1, "ann", true, 1000), std::slice::from_ref(&owner))
        .unwrap();
    s.insert_shard(&shard(2, "ann", false, 1000), &[]).unwrap();
    s.insert_shard(&shard(3, "bob", true, 500), &[]).unwrap();
    assert!(
        s.insert_shard(&shard(3, "bob", true, 500), &[]).is_err(),
        "a duplicate id is refused"
    );
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
        "oldest first"
    );
    // Pages: keyset by (registration time, id), a map filter, a limit.
    let page = |after: Option<(u64, u128)>, map: Option<&str>, limit| ShardPage {
        after: after.map(|(t, id)| ShardCursor {
            created_at_ms: t,
            id: Uuid::from_u128(id),
        }),
        map: map.map(str::to_owned),
        limit,
    };
    let listed = |p: ShardPage| ids(s.list_shards(0, Some("ann"), &p).unwrap());
    assert_eq!(listed(page(None, None, 2)), vec![3, 1], "first page");
    assert_eq!(
        listed(page(Some((1000, 1)), None, 2)),
        vec![2],
        "same time, later id"
    );
    assert_eq!(listed(page(Some((500, 3)), None, 1)), vec![1], "later time");
    assert_eq!(
        listed(page(Some((1000, 2)), None, 5)),
        Vec::<u128>::new(),
        "past the end"
    );
    assert_eq!(
        listed(page(None, Some("plaza"), 5)),
        vec![3, 1, 2],
        "this map"
    );
    assert_eq!(
        listed(page(None, Some("elsewhere"), 5)),
        Vec::<u128>::new(),
        "other map"
    );
    assert_eq!(
        s.shard(Uuid::from_u128(2)).unwrap(),
        Some(shard(2, "ann", false, 1000))
    );
    assert_eq!(
        s.shard_by_secret_hash("h3").unwrap(),
        Some(Uuid::from_u128(3))
    );
    assert_eq!(s.shard_by_secret_hash("h9").unwrap(), None);

    // Heartbeats set what they carry and keep what they do not.
    let hb = HeartbeatUpdate {
        current_users: 5,
        asset_index_url: Some("http://a/idx".into()),
        cert_hash: Some("rotated".into()),
        next_cert_hash: Some("following".into()),
    };
    let after = s.heartbeat(Uuid::from_u128(3), &hb, 2000).unwrap().unwrap();
    assert_eq!((after.current_users, after.last_put_at_ms), (5, 2000));
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
            after.next_cert_hash.as_deref(),
            after.current_users
        ),
        (Some("http://a/idx"), "rotated", Some("following"), 6)
    );
    assert!(s.heartbeat(Uuid::from_u128(9), &keep, 1).unwrap().is_none());

    // Tuples.
    let g = Tuple::parse("group:g", "member", "user:bob").unwrap();
    let z = Tuple::parse(
        &format!("zone:{}", Uuid::from_u128(1)),
        "joiner",
        "group:g#member",
    )
    .unwrap();
    assert!(s.add_tuple(&g).unwrap(), "new tuple");
    assert!(!s.add_tuple(&g).unwrap(), "already present");
    assert!(s.add_tuple(&z).unwrap());
    assert_eq!(
        s.subjects(&g.object, "member").unwrap(),
        vec![g.subject.clone()]
    );
    assert_eq!(s.referencing(&g.object).unwrap(), vec![z.object.clone()]);
    assert_eq!(
        s.tuples_on(&z.object).unwrap(),
        vec![z.clone(), owner.clone()],
        "by relation"
    );
    let claim = |who: &str| Tuple::parse("group:c", "owner", &format!("user:{who}")).unwrap();
    assert!(
        s.claim_owner(&claim("ann")).unwrap(),
        "an unowned group is claimed"
    );
    assert!(
        !s.claim_owner(&claim("bob")).unwrap(),
        "an owned group is not"
    );
    assert_eq!(
        s.subjects(&claim("ann").object, "owner").unwrap(),
        vec![claim("ann").subject]
    );
    assert_eq!(s.remove_tuple(&g).unwrap(), Removal::Removed);
    assert_eq!(s.remove_tuple(&g).unwrap(), Removal::Absent, "already gone");
    // The last owner stays; with a second owner either can go, then the other is the last.
    assert_eq!(s.remove_tuple(&claim("ann")).unwrap(), Removal::LastOwner);
    assert!(s.add_tuple(&claim("bob")).unwrap());
    assert_eq!(s.remove_tuple(&claim("ann")).unwrap(), Removal::Removed);
    assert_eq!(s.remove_tuple(&claim("bob")).unwrap(), Removal::LastOwner);
    assert_eq!(
        s.subjects(&claim("bob").object, "owner").unwrap(),
        vec![claim("bob").subject]
    );

    // Fabric membership: one entry per zone, a re-registration replaces it.
    s.put_member(&member(1, 0)).unwrap();
    s.put_member(&member(3, 1)).unwrap();
    s.put_member(&member(2, 1)).unwrap();
    let listed = s.fabric_members("world", 0).unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|(m, o, _)| (m.shard_id.as_u128(), m.zone, o.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, 0, "ann"), (2, 1, "ann")],
        "zone 1 replaced by shard 2"
    );

    // Metadata.
    assert_eq!(s.meta("k").unwrap(), None);
    s.set_meta("k", "v1").unwrap();
    s.set_meta("k", "v2").unwrap();
    assert_eq!(s.meta("k").unwrap().as_deref(), Some("v2"));
    assert_eq!(
        s.meta_or_insert("k", "v3").unwrap(),
        "v2",
        "an existing value wins"
    );
    assert_eq!(
        s.meta_or_insert("k2", "w").unwrap(),
        "w",
        "a missing one is stored"
    );

    // Eviction removes stale shards, their tuples (on and through the zone) and memberships.
    assert_eq!(
        s.evict_stale(1500).unwrap(),
        vec![Uuid::from_u128(1), Uuid::from_u128(2)]
    );
    assert!(s.shard(Uuid::from_u128(1)).unwrap().is_none());
    assert!(
        s.tuples_on(&owner.object).unwrap().is_empty(),
        "tuples gone"
    );
    assert!(
        s.fabric_members("world", 0).unwrap().is_empty(),
        "members gone"
    );
    assert!(s.delete_shard(Uuid::from_u128(3)).unwrap());
    assert!(
        !s.delete_shard(Uuid::from_u128(3)).unwrap(),
        "already deleted"
    );
    assert!(
        s.list_shards(0, Some("bob"), &ShardPage::all())
            .unwrap()
            .is_empty()
    );

    // Shared files: one current version per (map, name), listed by name, maps apart.
    let file = |map: &str, name: &str, hash: &str, size: u64| SharedFile {
        map: map.into(),
        name: name.into(),
        hash: hash.into(),
        asset_id: fabric_assets::asset_id_of_hex(hash).unwrap_or(0),
        size,
        chunks: size / 10,
        uploader: "ann".into(),
        baked_at_ms: 5_000_000_000_000,
        baked_url: format!("/assets/index/{hash}"),
    };
    assert!(s.shared_files("plaza").unwrap().is_empty());
    s.put_shared_file(&file("plaza", "tree", "h1", 100))
        .unwrap();
    s.put_shared_file(&file("plaza", "rock", "h2", 3 << 40))
        .unwrap();
    s.put_shared_file(&file("dock", "tree", "h3", 7)).unwrap();
    s.put_shared_file(&file("plaza", "tree", "h4", 120))
        .unwrap();
    assert_eq!(
        s.shared_files("plaza").unwrap(),
        vec![
            file("plaza", "rock", "h2", 3 << 40),
            file("plaza", "tree", "h4", 120)
        ],
        "the newer tree replaced the older; sizes beyond 32 bits survive"
    );
    assert_eq!(
        s.shared_files("dock").unwrap(),
        vec![file("dock", "tree", "h3", 7)]
    );

    // Room saves: versions count up per room, the latest comes back parsed.
    assert_eq!(s.room_state("hall").unwrap(), None);
    assert_eq!(
        s.put_room_state("hall", r#"{"format":1,"entities":[]}"#, "ann", 10)
            .unwrap(),
        1
    );
    assert_eq!(
        s.put_room_state("hall", r#"{"format":1,"entities":[{"id":1}]}"#, "bob", 20)
            .unwrap(),
        2
    );
    assert_eq!(
        s.put_room_state("yard", r#"{"format":1,"entities":[]}"#, "ann", 30)
            .unwrap(),
        1
    );
    let hall = s.room_state("hall").unwrap().expect("saved");
    assert_eq!(
        (hall.version, hall.saved_by.as_str(), hall.saved_at_ms),
        (2, "bob", 20)
    );
    assert_eq!(hall.state["entities"][0]["id"], 1);

    // The push log other replicas read.
    s.append_push("a", "zone:1", "m1", 1_000).unwrap();
    s.append_push("b", "zone:1", "m2", 2_000).unwrap();
    s.append_push("b", "zone:2", "m3", 2_000).unwrap();
    s.append_push("b", "map:plaza", "m4", 3_000).unwrap();
    s.append_push("b", "zone:1", "m5", 500).unwrap();
    let seen = |since, topics: &[&str]| -> Vec<(String, String, u64)> {
        let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
        s.pushes_since(since, "a", &topics, 100)
            .unwrap()
            .into_iter()
            .map(|p| (p.topic, p.message, p.at_ms))
            .collect()
    };
    assert_eq!(
        seen(1_000, &["zone:1"]),
        vec![
            ("zone:1".into(), "m2".into(), 2_000),
            ("map:plaza".into(), "m4".into(), 3_000)
        ],
        "others' pushes on asked topics and map topics, from the time asked, by id"
    );
    assert_eq!(seen(2_500, &[]).len(), 1, "map topics come without asking");
    let ids: Vec<i64> = s
        .pushes_since(0, "nobody", &["zone:1".to_owned()], 2)
        .unwrap()
        .iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(ids.len(), 2, "limit applies");
    assert!(ids[0] < ids[1], "ordered by id");
    assert_eq!(s.prune_pushes(2_000).unwrap(), 2, "m1 and m5 are older");
    assert_eq!(seen(0, &["zone:1", "zone:2"]).len(), 3);
}

#[test]
fn sqlite_store_keeps_the_contract() {
    contract(&SqliteStore::open(":memory:").unwrap());
}

#[test]
fn postgres_store_keeps_the_contract() {
    let url = common::pg::shared().fresh_database();
    contract(&PgStore::connect(&url).unwrap());
}

#[test]
fn postgres_migrations_are_versioned_and_survive_racing_replicas() {
    let pg = common::pg::shared();
    let url = pg.fresh_database();
    let db = url.rsplit('/').next().unwrap().to_owned();
    // Four replicas start at once against an empty database.
    let stores: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PgStore::connect(&url))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap().expect("every replica opens the store"))
        .collect();
    let latest = MIGRATIONS.last().unwrap().0;
    assert_eq!(stores[0].schema_version().unwrap(), latest);
    assert_eq!(
        pg.psql(&db, "SELECT count(*) FROM schema_version"),
        MIGRATIONS.len().to_string(),
        "each migration recorded once"
    );
    stores[1].create_account("ann", "k", 1).unwrap();
    drop(stores);
    // Reopening applies nothing again and keeps the data.
    let again = PgStore::connect(&url).unwrap();
    assert_eq!(
        again.account_by_key_hash("k").unwrap().as_deref(),
        Some("ann")
    );
    assert_eq!(
        pg.psql(&db, "SELECT count(*) FROM schema_version"),
        MIGRATIONS.len().to_string()
    );
}

#[test]
fn postgres_store_retries_serialization_failures() {
    let pg = common::pg::shared();
    let url = pg.fresh_database();
    let db = url.rsplit('/').next().unwrap().to_owned();
    // CockroachDB runs every transaction SERIALIZABLE and answers conflicts with 40001; make
    // this PostgreSQL database behave the same.
    pg.psql(
        &db,
        &format!("ALTER DATABASE {db} SET default_transaction_isolation = 'serializable'"),
    );
    let store = Arc::new(PgStore::connect(&url).unwrap());
    for i in 0..4 {
        store
            .insert_shard(&shard(i, "ann", true, 1000), &[])
            .unwrap();
    }
    // Eight writers replace the same fabric zones over and over: read-then-write transactions
    // that conflict under SERIALIZABLE.
    let writers: Vec<_> = (0..8u128)
        .map(|w| {
            let store = store.clone();
            std::thread::spawn(move || {
                for round in 0..25u128 {
                    store
                        .put_member(&member((w + round) % 4, (round % 2) as u8))
                        .expect("a serialization failure is retried, not returned");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let members = store.fabric_members("world", 0).unwrap();
    assert!(
        !members.is_empty() && members.len() <= 2,
        "at most one member per zone: {members:?}"
    );
}
