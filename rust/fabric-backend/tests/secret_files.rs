//! Files holding secrets are private to their owner: the SQLite database (API-key and
//! shard-secret hashes, and the signing seed when no key file is given) and the join-key file
//! are created with mode 0600, and a key file others can read is refused at startup. Before
//! the fix the database was created with the default umask (0644 here).

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
