//! Shared harness: spawns the real `fabric-backend` binary on 127.0.0.1 with a free port,
//! reads the startup line for the address, and gives HTTP and WebSocket helpers.
#![allow(dead_code)]

pub mod inproc;
pub mod pg;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fabric_backend::client::Client;
use fabric_backend::model::{RegisterShard, Registered};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// Upper bound on waiting for an event that should happen (never a timing assertion: only a
/// guard so a broken build fails instead of hanging).
pub const EVENT_DEADLINE: Duration = Duration::from_secs(20);

/// Environment variable choosing the store the suite runs against.
pub const STORE_ENV: &str = "FABRIC_BACKEND_TEST_STORE";

/// The `--db` of a fresh backend: with `FABRIC_BACKEND_TEST_STORE=postgres`, a new database
/// on this test binary's PostgreSQL server (one suite, two stores); otherwise `:memory:` SQLite.
pub fn test_db() -> String {
    match std::env::var(STORE_ENV).as_deref() {
        Ok("postgres") => pg::shared().fresh_database(),
        Ok("sqlite") | Err(_) => ":memory:".to_owned(),
        Ok(other) => panic!("{STORE_ENV}={other}: expected postgres or sqlite"),
    }
}

/// The signing-key file every backend of the PostgreSQL database `db` is given (replicas share
/// their keys, which are never kept in the database), or `None` for SQLite.
pub fn key_file_for(db: &str) -> Option<String> {
    if !fabric_backend::store::postgres::PgStore::is_url(db) {
        return None;
    }
    // One file per database of this test process (ports and database names repeat across
    // runs; a ring left by an earlier run must not be picked up).
    let name: String = db
        .trim_start_matches("postgres://")
        .trim_start_matches("postgresql://")
        .split('?')
        .next()
        .unwrap_or("db")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let file = std::env::temp_dir().join(format!(
        "fabric-backend-tests-{}-{name}.join-keys",
        std::process::id()
    ));
    Some(file.display().to_string())
}

/// `--join-key-file <key_file_for(db)>` when `args` name a PostgreSQL `--db` and no key option.
pub fn key_args(args: &[&str]) -> Vec<String> {
    let given = args
        .iter()
        .any(|a| *a == "--join-key-file" || *a == "--join-key-env");
    // The last `--db` is the one the backend takes.
    let db = args
        .windows(2)
        .rfind(|w| w[0] == "--db")
        .map(|w| w[1].to_owned());
    match db.as_deref().and_then(key_file_for) {
        Some(file) if !given => vec!["--join-key-file".into(), file],
        _ => Vec::new(),
    }
}

/// A running backend process, killed on drop.
pub struct Backend {
    pub child: Child,
    pub addr: String,
    /// With `--tls-*`: the certificate hash the start-up line prints.
    pub cert_hash: Option<String>,
    pub stdout: BufReader<std::process::ChildStdout>,
}

/// Arguments that turn every rate limit off.
pub const NO_RATE_LIMITS: [&str; 6] = [
    "--requests-per-ip-per-s",
    "0",
    "--signups-per-ip-per-min",
    "0",
    "--tokens-per-account-per-min",
    "0",
];

impl Backend {
    /// Starts the binary with `--listen 127.0.0.1:0 --db <the suite's store>`, rate limits off
    /// (the suite makes many accounts from one address; `tests/rate_limits.rs` turns them on)
    /// and `extra` arguments (later arguments override earlier ones).
    pub fn spawn(extra: &[&str]) -> Backend {
        Self::spawn_env(extra, &[])
    }

    /// Starts the binary with exactly `args`.
    pub fn spawn_raw(args: &[&str]) -> Backend {
        Self::spawn_raw_env(args, &[])
    }

    /// As [`Backend::spawn`], with extra environment variables for the child.
    pub fn spawn_env(extra: &[&str], env: &[(&str, &str)]) -> Backend {
        let db = test_db();
        let mut args = vec!["--listen", "127.0.0.1:0", "--db", &db];
        args.extend_from_slice(&NO_RATE_LIMITS);
        args.extend_from_slice(extra);
        Self::spawn_raw_env(&args, env)
    }

    /// Starts the binary with exactly `args` and extra environment variables; a PostgreSQL
    /// `--db` without a key option is given the database's shared key file ([`key_args`]).
    pub fn spawn_raw_env(args: &[&str], env: &[(&str, &str)]) -> Backend {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fabric-backend"))
            .args(args)
            .args(key_args(args))
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn fabric-backend");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read startup line");
        let addr = line
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected startup line {line:?}"))
            .to_owned();
        assert!(addr.starts_with("127.0.0.1:"), "binds loopback: {line}");
        let cert_hash = line.split("cert_hash=").nth(1).map(|h| h.trim().to_owned());
        Backend {
            child,
            addr,
            cert_hash,
            stdout,
        }
    }

    pub fn client(&self) -> Client {
        Client::new(self.addr.clone())
    }

    /// Sends SIGTERM to this child (by its pid) and waits for it to exit.
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid}");
        let exit = self.child.wait().expect("wait for backend");
        let mut rest = String::new();
        for line in (&mut self.stdout).lines() {
            rest.push_str(&line.unwrap_or_default());
            rest.push('\n');
        }
        (exit, rest)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A registration body with sensible values.
pub fn shard_body(name: &str) -> RegisterShard {
    RegisterShard {
        address: None,
        port: 7443,
        map: "plaza".into(),
        name: name.into(),
        cert_hash: "q0ANGmCZtlwHx6kn3pd3T6g0iE3KeTTqYy9x0c0O2tY=".into(),
        next_cert_hash: None,
        max_users: None,
        public: None,
        asset_index_url: None,
        fabric: None,
    }
}

/// Creates an account and returns its API key.
pub async fn account(c: &Client, name: &str) -> String {
    c.create_account(name)
        .await
        .expect("create account")
        .api_key
}

/// Registers a shard as `api_key`.
pub async fn register(c: &Client, api_key: &str, body: &RegisterShard) -> Registered {
    c.register(api_key, body).await.expect("register shard")
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn ws_connect(addr: &str) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("websocket connect");
    ws
}

pub async fn ws_send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .expect("ws send");
}

/// Next JSON text frame (panics after [`EVENT_DEADLINE`]).
pub async fn ws_next(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(EVENT_DEADLINE, ws.next())
            .await
            .expect("no websocket message before the deadline")
            .expect("websocket closed")
            .expect("websocket error");
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON frame"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Subscribes and returns the `subscribed` reply.
pub async fn subscribe(ws: &mut Ws, topic: &str) -> Value {
    subscribe_frame(ws, serde_json::json!({"op": "subscribe", "topic": topic})).await
}

/// Subscribes presenting `credential` (a private zone's topic needs one) and returns the
/// `subscribed` reply.
#[allow(dead_code)] // not every test binary subscribes to a private zone
pub async fn subscribe_as(ws: &mut Ws, topic: &str, credential: &str) -> Value {
    let frame = serde_json::json!({"op": "subscribe", "topic": topic, "credential": credential});
    subscribe_frame(ws, frame).await
}

async fn subscribe_frame(ws: &mut Ws, frame: Value) -> Value {
    ws_send(ws, frame).await;
    let reply = ws_next(ws).await;
    assert_eq!(reply["type"], "subscribed", "subscribe reply: {reply}");
    reply
}
