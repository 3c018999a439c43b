//! A real PostgreSQL server for the tests: installed by `scripts/setup-postgres.sh` when missing,
//! initialised into a private temporary data directory, listening on a free port of 127.0.0.1
//! (and a unix socket inside that directory), stopped and removed when dropped or, for the
//! server shared by a test binary, when the test process exits.
//!
//! PostgreSQL refuses to run as root; under root the server runs as `nobody`.
#![allow(dead_code)]

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The unprivileged uid/gid the server runs as when the tests run as root.
const NOBODY: u32 = 65534;

/// A running PostgreSQL server.
pub struct PgServer {
    bin: PathBuf,
    dir: PathBuf,
    /// TCP port on 127.0.0.1.
    pub port: u16,
    guard: Child,
    guard_stdin: Option<ChildStdin>,
}

fn is_root() -> bool {
    // `id -u` keeps the tests free of a libc dependency.
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The directory holding `initdb`, `postgres`, `createdb` and `pg_isready` (installing them
/// on first use).
pub fn pg_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/setup-postgres.sh");
        let out = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/setup-postgres.sh");
        assert!(
            out.status.success(),
            "scripts/setup-postgres.sh failed ({})",
            out.status
        );
        PathBuf::from(String::from_utf8(out.stdout).expect("utf-8 path").trim())
    })
    .clone()
}

/// A command that runs `program` as the server's user.
fn as_server_user(program: &Path, root: bool) -> Command {
    if root {
        let mut c = Command::new("setpriv");
        c.args([
            format!("--reuid={NOBODY}"),
            format!("--regid={NOBODY}"),
            "--clear-groups".into(),
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

impl PgServer {
    /// Initialises a fresh cluster and starts it; returns once it accepts connections.
    pub fn start() -> PgServer {
        Self::start_with(None)
    }

    /// As [`PgServer::start`], serving TLS with the PEM certificate chain and key `tls` and
    /// accepting TCP connections over TLS only (`hostssl` in `pg_hba.conf`), so a client that
    /// does not speak TLS is refused.
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> PgServer {
        Self::start_with(Some((cert_pem, key_pem)))
    }

    fn start_with(tls: Option<(&str, &str)>) -> PgServer {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let bin = pg_bin();
        let root = is_root();
        let dir = std::env::temp_dir().join(format!(
            "fabric-pg-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the data directory's parent");
        if root {
            std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).expect("chown to nobody");
        }
        let data = dir.join("data");
        let out = as_server_user(&bin.join("initdb"), root)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "--locale=C",
                "-E",
                "UTF8",
                "--no-sync",
            ])
            .arg("-D")
            .arg(&data)
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut tls_args = Vec::new();
        if let Some((cert, key)) = tls {
            let private = |path: &Path, text: &str| {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::write(path, text).expect("write a server TLS file");
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
                if root {
                    std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
                }
            };
            private(&dir.join("server.crt"), cert);
            private(&dir.join("server.key"), key);
            private(
                &data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
            );
            for (name, file) in [
                ("ssl_cert_file", "server.crt"),
                ("ssl_key_file", "server.key"),
            ] {
                tls_args.push("-c".to_owned());
                tls_args.push(format!("{name}={}", dir.join(file).display()));
            }
            tls_args.extend(["-c".to_owned(), "ssl=on".to_owned()]);
        }
        let port = free_port();
        // The guard shell stops the server (fast shutdown) and removes its directory when its
        // stdin closes: on drop, or when this test process exits for any reason.
        let mut server = as_server_user(&bin.join("postgres"), root);
        server
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(&dir)
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=400"])
            .args(&tls_args);
        let mut argv: Vec<String> = vec![server.get_program().to_string_lossy().into_owned()];
        argv.extend(server.get_args().map(|a| a.to_string_lossy().into_owned()));
        let mut guard = Command::new("sh")
            .arg("-c")
            .arg(
                r#"dir="$1"; shift; "$@" >"$dir/server.log" 2>&1 & pid=$!
                   read -r _; kill -INT "$pid" 2>/dev/null; wait "$pid"; rm -rf "$dir""#,
            )
            .arg("pg-guard")
            .arg(&dir)
            .args(&argv)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start postgres");
        let guard_stdin = guard.stdin.take();
        let pg = PgServer {
            bin,
            dir,
            port,
            guard,
            guard_stdin,
        };
        pg.wait_ready();
        pg
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return;
            }
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "postgres did not become ready on port {}: {log}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Creates a database and returns its `postgres://` URL.
    pub fn create_database(&self, name: &str) -> String {
        let out = Command::new(self.bin.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg(name)
            .output()
            .expect("run createdb");
        assert!(
            out.status.success(),
            "createdb {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.url(name)
    }

    /// A fresh database with a unique name.
    pub fn fresh_database(&self) -> String {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        self.create_database(&format!("t{}", SEQ.fetch_add(1, Ordering::Relaxed)))
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Runs SQL through `psql` (for tests that inspect or damage the database).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args([
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.guard_stdin.take() {
            let _ = stdin.write_all(b"stop\n");
        }
        let _ = self.guard.wait();
    }
}

/// One server per test binary, started on first use, stopped when the process exits.
pub fn shared() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(PgServer::start)
}
