//! A real S3-compatible server for tests: moto's standalone `moto_server` (S3 only), installed
//! by `scripts/setup-s3.sh` on first use, started on a free port of 127.0.0.1 (port 0: the
//! server picks it and prints it), and killed with its process group when dropped or when the
//! thread that started it ends.
//!
//! moto keeps everything in memory and accepts any credentials (it does not check request
//! signatures); each test makes its own bucket.

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::channel;
use std::time::Duration;

use anyhow::{Context, bail};

/// How long the server may take to print its address (a Python start on a busy machine).
const START_DEADLINE: Duration = Duration::from_secs(60);

/// The server executable, installing it on first use (once per process).
pub fn server_bin() -> anyhow::Result<PathBuf> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        let script = crate::paths::repo_root().join("scripts/setup-s3.sh");
        let out = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("running {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!("{} failed ({})", script.display(), out.status));
        }
        Ok(PathBuf::from(
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        ))
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

/// A running S3-compatible server on 127.0.0.1.
pub struct S3Server {
    child: Child,
    /// `http://127.0.0.1:PORT`, the endpoint to give an S3 client.
    pub endpoint: String,
}

impl S3Server {
    /// Installs (if needed) and starts a server, returning once it listens.
    pub fn start() -> anyhow::Result<S3Server> {
        S3Server::start_with(&server_bin()?)
    }

    fn start_with(bin: &Path) -> anyhow::Result<S3Server> {
        let mut cmd = Command::new(bin);
        cmd.args(["-H", "127.0.0.1", "-p", "0"])
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; the closure allocates nothing.
        unsafe {
            cmd.pre_exec(|| {
                // Killed with the thread that started it, even if the test process dies.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        // Werkzeug prints `Running on http://127.0.0.1:PORT` on stderr (stdout on some
        // versions): read both until it does, then keep draining them so the server never
        // blocks on a full pipe.
        let (tx, rx) = channel();
        let pipes: [Box<dyn std::io::Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("piped")),
            Box::new(child.stderr.take().expect("piped")),
        ];
        for pipe in pipes {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let Some(at) = line.find("Running on http://") {
                        let url = line[at + "Running on ".len()..].trim().to_owned();
                        let _ = tx.send(url);
                    }
                }
            });
        }
        let mut server = S3Server {
            child,
            endpoint: String::new(),
        };
        match rx.recv_timeout(START_DEADLINE) {
            Ok(url) => server.endpoint = url.trim_end_matches('/').to_owned(),
            Err(_) => bail!(
                "{} did not print its address within {START_DEADLINE:?}",
                bin.display()
            ),
        }
        Ok(server)
    }

    /// Makes a bucket (an unsigned `PUT /<bucket>`: moto does not check signatures).
    pub fn create_bucket(&self, bucket: &str) -> anyhow::Result<()> {
        let (status, body) = self.plain("PUT", &format!("/{bucket}"))?;
        if status != 200 {
            bail!("create bucket {bucket}: HTTP {status} {body}");
        }
        Ok(())
    }

    /// The keys of a bucket that start with `prefix` (ListObjectsV2, up to 1000), read
    /// straight from the server: what is really stored, whatever a client believes.
    pub fn keys(&self, bucket: &str, prefix: &str) -> anyhow::Result<Vec<String>> {
        let (status, body) = self.plain(
            "GET",
            &format!("/{bucket}?list-type=2&max-keys=1000&prefix={prefix}"),
        )?;
        if status != 200 {
            bail!("list {bucket}/{prefix}: HTTP {status} {body}");
        }
        Ok(body
            .split("<Key>")
            .skip(1)
            .filter_map(|s| s.split_once("</Key>").map(|(k, _)| k.to_owned()))
            .collect())
    }

    /// One plain HTTP/1.1 request with an empty body; (status, body as text).
    fn plain(&self, method: &str, path: &str) -> anyhow::Result<(u16, String)> {
        use std::io::{Read as _, Write as _};
        let host = self.endpoint.trim_start_matches("http://");
        let mut s =
            std::net::TcpStream::connect(host).with_context(|| format!("connect {host}"))?;
        s.set_read_timeout(Some(START_DEADLINE))?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        let mut raw = String::new();
        s.read_to_string(&mut raw)?;
        let status = raw
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .with_context(|| format!("bad response: {raw:.80}"))?;
        let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        Ok((status, body.to_owned()))
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: signals the process group this server leads (it was started with its own).
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}
