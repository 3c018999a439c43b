//! Files holding secrets are private to their owner: the SQLite database (API-key and
//! shard-secret hashes) and the join-key file are created with mode 0600, and a key file others
//! can read is refused at startup. Before the fix the database was created with the default
//! umask (0644 here). The signing seed is never kept in the database: by default it lives in
//! `<db>.join-keys`; a ring an earlier version stored in the database is moved there (same key,
//! so tokens stay valid); PostgreSQL without a key option is refused, naming the options.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};

use common::Backend;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn the_database_and_the_key_file_are_created_private() {
    let dir = std::env::temp_dir().join(format!("fabric-secret-files-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("registry.sqlite3");
    let key = dir.join("join.key");
    let be = Backend::spawn_raw(&[
        "--listen",
        "127.0.0.1:0",
        "--db",
        db.to_str().unwrap(),
        "--join-key-file",
        key.to_str().unwrap(),
    ]);
    common::account(&be.client(), "ann").await;
    assert_eq!(mode(&db), 0o600, "database file mode");
    assert_eq!(mode(&key), 0o600, "key file mode");
    let wal = dir.join("registry.sqlite3-wal");
    if wal.exists() {
        assert_eq!(mode(&wal), 0o600, "write-ahead log mode");
    }
    drop(be);

    // A key file others can read is refused.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fabric-backend"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--db",
            ":memory:",
            "--join-key-file",
        ])
        .arg(&key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success(), "refused to start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chmod 600"), "says why: {err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--join-key-env VAR`: the signing keys come from the environment and are written nowhere
/// (the database keeps no `join_signing_key`); a missing variable stops the start with its
/// name, `--rotate-join-key` refuses and says how to rotate, and the option does not go with
/// `--join-key-file`.
#[tokio::test]
async fn signing_keys_from_an_environment_variable_are_used_and_stored_nowhere() {
    use ed25519_dalek::SigningKey;
    use fabric_auth::keys::{key_id, signing_key_to_b64};

    const VAR: &str = "FABRIC_TEST_JOIN_KEYS";
    let key = SigningKey::from_bytes(&[7; 32]);
    let seed = signing_key_to_b64(&key);
    let dir = std::env::temp_dir().join(format!("fabric-env-key-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("registry.sqlite3");
    let db_arg = db.to_str().unwrap();

    let be = Backend::spawn_raw_env(
        &[
            "--listen",
            "127.0.0.1:0",
            "--db",
            db_arg,
            "--join-key-env",
            VAR,
        ],
        &[(VAR, &seed)],
    );
    let keys = be.client().join_keys().await.expect("GET /keys/join");
    assert_eq!(keys.keys.len(), 1, "one key: {keys:?}");
    assert_eq!(
        keys.keys[0].kid,
        key_id(&key.verifying_key()),
        "the variable's key signs"
    );
    drop(be);
    let stored: Vec<String> = rusqlite::Connection::open(&db)
        .unwrap()
        .prepare("SELECT key FROM meta")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        !stored.iter().any(|k| k == "join_signing_key"),
        "no key in the database: {stored:?}"
    );

    let refused = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_fabric-backend"))
            .args(args)
            .env_remove(VAR)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} refused");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let unset = refused(
        &[
            "--listen",
            "127.0.0.1:0",
            "--db",
            ":memory:",
            "--join-key-env",
            VAR,
        ],
        &[],
    );
    assert!(
        unset.contains(VAR) && unset.contains("not set"),
        "names it: {unset}"
    );
    let rotate = refused(
        &["--db", db_arg, "--join-key-env", VAR, "--rotate-join-key"],
        &[(VAR, &seed)],
    );
    assert!(
        rotate.contains("changing the variable"),
        "says how: {rotate}"
    );
    let both = refused(
        &[
            "--db",
            ":memory:",
            "--join-key-env",
            VAR,
            "--join-key-file",
            "/nonexistent/k",
        ],
        &[(VAR, &seed)],
    );
    assert!(
        both.contains("cannot be used with"),
        "clap names the conflict: {both}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The key ids `GET /keys/join` lists.
async fn kids(be: &Backend) -> Vec<String> {
    be.client()
        .join_keys()
        .await
        .unwrap()
        .keys
        .into_iter()
        .map(|k| k.kid)
        .collect()
}

#[tokio::test]
async fn without_a_key_option_the_seed_lives_in_a_private_file_beside_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("registry.sqlite3");
    let db_arg = db.to_str().unwrap();
    let be = Backend::spawn_raw(&["--listen", "127.0.0.1:0", "--db", db_arg]);
    let kid = kids(&be).await;
    let file = dir.path().join("registry.sqlite3.join-keys");
    let text = std::fs::read_to_string(&file).expect("the default key file exists");
    assert_eq!(mode(&file), 0o600, "the key file is its owner's only");
    let seed = text.lines().next().unwrap().trim();
    let key = fabric_auth::keys::signing_key_from_b64(seed).expect("a seed");
    assert_eq!(
        kid,
        vec![fabric_auth::keys::key_id(&key.verifying_key())],
        "the backend signs with the file's key"
    );
    let store = fabric_backend::server::open_store(db_arg, None).unwrap();
    assert_eq!(
        store.meta(fabric_backend::keyring::KEY_META).unwrap(),
        None,
        "no seed in the database"
    );
    drop(store);
    drop(be);
    // A restart keeps the key.
    let again = Backend::spawn_raw(&["--listen", "127.0.0.1:0", "--db", db_arg]);
    assert_eq!(kids(&again).await, kid, "the same key after a restart");
}

#[tokio::test]
async fn a_seed_an_earlier_version_kept_in_the_database_is_moved_to_the_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("registry.sqlite3");
    let db_arg = db.to_str().unwrap();
    let legacy = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let legacy_text = fabric_auth::keys::signing_key_to_b64(&legacy);
    {
        let store = fabric_backend::server::open_store(db_arg, None).unwrap();
        store
            .set_meta(fabric_backend::keyring::KEY_META, &legacy_text)
            .unwrap();
    }
    let be = Backend::spawn_raw(&["--listen", "127.0.0.1:0", "--db", db_arg]);
    assert_eq!(
        kids(&be).await,
        vec![fabric_auth::keys::key_id(&legacy.verifying_key())],
        "the backend still signs with the key it had: tokens and zones keep working"
    );
    let file = dir.path().join("registry.sqlite3.join-keys");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().trim(),
        legacy_text,
        "the ring moved into the key file"
    );
    assert_eq!(mode(&file), 0o600);
    let store = fabric_backend::server::open_store(db_arg, None).unwrap();
    assert_eq!(
        store.meta(fabric_backend::keyring::KEY_META).unwrap(),
        None,
        "and out of the database"
    );
}

#[test]
fn postgres_without_a_key_option_is_refused_before_connecting() {
    // Port 9 (discard) on loopback: nothing answers, so only the configuration check can give
    // this error; it comes before any connection is tried.
    let out = Command::new(env!("CARGO_BIN_EXE_fabric-backend"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--db",
            "postgres://postgres@127.0.0.1:9/none",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run the backend");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused: {err}");
    assert!(
        err.contains("--join-key-file") && err.contains("--join-key-env"),
        "the error names both ways to give the keys: {err}"
    );
}
