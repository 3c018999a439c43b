//! The registry's signing keys: the current Ed25519 key, which signs join tokens and link
//! credentials, and the keys it replaced, which still verify until their stated retirement
//! (overlapping validity, so a rotation breaks no token or zone link in flight).
//!
//! # Stored form
//!
//! One key per line, never in the database ([`KeySource`]): in `--join-key-file`, by default
//! `<db>.join-keys` beside a SQLite database (both created readable by their owner only, and
//! refused when others can read them), in the environment variable `--join-key-env` names (then
//! read once at start, written nowhere), or, for `--db :memory:`, in memory only. PostgreSQL
//! replicas must be given the keys (`--join-key-file` with the same file on every replica, or
//! `--join-key-env`): a replica that made up its own would sign tokens the others refuse.
//! Earlier versions kept the ring in the database (meta `join_signing_key`); the first start
//! with a key file moves it there and deletes it from the database, so the keys (and every
//! token signed with them) stay valid:
//!
//! ```text
//! <seed, base64url>                       the current key
//! <seed, base64url> retires_at=<unix s>   a previous key, accepted until then
//! ```
//!
//! A single line (what earlier versions stored) is a ring with no previous key. Rotation
//! ([`Keyring::rotate`]) makes a new current key and keeps the old one for an overlap; every
//! replica re-reads the stored ring every `--join-key-refresh-ms` ([`refresh_loop`]), so
//! rotating is an operator command (`fabric-backend --rotate-join-key`) run against the same
//! key file (given, or the one beside the SQLite database), with no restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::{SigningKey, VerifyingKey};
use fabric_auth::keys::{key_id, signing_key_from_b64, signing_key_to_b64};
use fabric_auth::{JoinTokenIssuer, JoinTokenVerifier, LinkCredentialIssuer};

use crate::config::Config;
use crate::server::ServeError;
use crate::state::AppState;
use crate::store::Store;

/// Meta key under which earlier versions stored the ring in the database (moved out at start).
pub const KEY_META: &str = "join_signing_key";

/// Suffix of the default key file beside a SQLite database: `<db>.join-keys`.
pub const DEFAULT_KEY_FILE_SUFFIX: &str = ".join-keys";

/// Where the signing keys live ([`key_source`]); never the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `--join-key-env VAR`: read once at start, written nowhere.
    Env(String),
    /// `--join-key-file`, or `<db>.join-keys` beside a SQLite database: readable by its owner
    /// only, created when missing.
    File(PathBuf),
    /// `--db :memory:` without a key option: made at start, gone with the process (as is
    /// everything else such a backend holds).
    Memory,
}

/// Default `--join-key-overlap-s`: how long a replaced key keeps verifying.
pub const DEFAULT_OVERLAP_S: u64 = 24 * 3600;

/// A previous key and the Unix second from which it no longer verifies.
#[derive(Clone)]
pub struct Retiring {
    /// The key.
    pub key: SigningKey,
    /// Unix seconds; the key verifies strictly before this.
    pub retires_at: u64,
}

/// The current signing key and the previous keys still inside their overlap.
#[derive(Clone)]
pub struct Keyring {
    /// Signs everything issued now.
    pub current: SigningKey,
    /// Verify only, until their `retires_at`; newest first.
    pub previous: Vec<Retiring>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let previous: Vec<_> = self
            .previous
            .iter()
            .map(|r| (key_id(&r.key.verifying_key()), r.retires_at))
            .collect();
        f.debug_struct("Keyring")
            .field("current", &key_id(&self.current.verifying_key()))
            .field("previous", &previous)
            .finish()
    }
}

impl Keyring {
    /// A ring holding only `current`.
    pub fn new(current: SigningKey) -> Self {
        Self {
            current,
            previous: Vec::new(),
        }
    }

    /// Parses the stored form (see the module docs).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut current = None;
        let mut previous = Vec::new();
        for (n, line) in text.lines().map(str::trim).enumerate() {
            if line.is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            let seed = words.next().unwrap_or("");
            let key = signing_key_from_b64(seed).map_err(|e| format!("line {}: {e}", n + 1))?;
            let retires_at = match words.next() {
                None => None,
                Some(w) => Some(
                    w.strip_prefix("retires_at=")
                        .and_then(|t| t.parse::<u64>().ok())
                        .ok_or_else(|| format!("line {}: expected retires_at=<unix s>", n + 1))?,
                ),
            };
            if words.next().is_some() {
                return Err(format!("line {}: unexpected text after the key", n + 1));
            }
            match (retires_at, current.is_none()) {
                (None, true) => current = Some(key),
                (None, false) => {
                    return Err(format!(
                        "line {}: only the first key may lack retires_at",
                        n + 1
                    ));
                }
                (Some(_), true) => {
                    return Err("the first key is the current one: no retires_at".into());
                }
                (Some(retires_at), false) => previous.push(Retiring { key, retires_at }),
            }
        }
        let current = current.ok_or("no key")?;
        Ok(Self { current, previous })
    }

    /// The stored form.
    pub fn to_text(&self) -> String {
        let mut text = signing_key_to_b64(&self.current);
        text.push('\n');
        for r in &self.previous {
            text.push_str(&format!(
                "{} retires_at={}\n",
                signing_key_to_b64(&r.key),
                r.retires_at
            ));
        }
        text
    }

    /// Replaces the current key with `next`; the old current key verifies for `overlap_s` more
    /// seconds, and keys already retired at `now_s` are dropped.
    pub fn rotate(&self, next: SigningKey, now_s: u64, overlap_s: u64) -> Self {
        let mut previous = vec![Retiring {
            key: self.current.clone(),
            retires_at: now_s.saturating_add(overlap_s),
        }];
        previous.extend(
            self.previous
                .iter()
                .filter(|r| r.retires_at > now_s)
                .cloned(),
        );
        Self {
            current: next,
            previous,
        }
    }

    /// Public keys that verify at `now_s`, the current one first, each with its retirement
    /// (`None` for the current key).
    pub fn valid_at(&self, now_s: u64) -> Vec<(VerifyingKey, Option<u64>)> {
        std::iter::once((self.current.verifying_key(), None))
            .chain(
                self.previous
                    .iter()
                    .filter(|r| r.retires_at > now_s)
                    .map(|r| (r.key.verifying_key(), Some(r.retires_at))),
            )
            .collect()
    }
}

/// What handlers sign and verify with: one ring, read as a whole.
pub struct SigningKeys {
    /// The ring.
    pub ring: Keyring,
    /// Join tokens, signed by the current key.
    pub issuer: JoinTokenIssuer,
    /// Link credentials, signed by the current key (another signed format).
    pub link_issuer: LinkCredentialIssuer,
    /// The stored text this was parsed from (a refresh replaces the keys only when it changes).
    stored: String,
}

impl SigningKeys {
    /// Issuers for `ring`'s current key.
    pub fn new(ring: Keyring, token_ttl_s: u64) -> Self {
        Self {
            issuer: JoinTokenIssuer::new(ring.current.clone(), token_ttl_s),
            link_issuer: LinkCredentialIssuer::new(
                ring.current.clone(),
                crate::routes::LINK_CREDENTIAL_TTL_S,
            ),
            stored: ring.to_text(),
            ring,
        }
    }

    /// A verifier of join tokens trusting every key valid at `now_s`.
    pub fn verifier(&self, now_s: u64) -> JoinTokenVerifier {
        JoinTokenVerifier::new(self.ring.valid_at(now_s).into_iter().map(|(k, _)| k))
            .with_max_lifetime_s(self.issuer.ttl_s().max(1))
    }
}

fn generate() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

/// Where `config` keeps the signing keys. PostgreSQL without `--join-key-file` or
/// `--join-key-env` is an error: replicas must share one ring, and it is not kept in the
/// database.
pub fn key_source(config: &Config) -> Result<KeySource, ServeError> {
    Ok(match (&config.join_key_env, &config.join_key_file) {
        (Some(var), _) => KeySource::Env(var.clone()),
        (None, Some(path)) => KeySource::File(path.clone()),
        (None, None) if config.db == ":memory:" => KeySource::Memory,
        (None, None) if crate::store::postgres::PgStore::is_url(&config.db) => {
            return Err(ServeError::Key(
                "with a PostgreSQL --db, give the signing keys: --join-key-file FILE (the same \
                 file on every replica; created readable by its owner only when missing, and \
                 keys an earlier version kept in the database are moved into it) or \
                 --join-key-env VAR"
                    .into(),
            ));
        }
        (None, None) => KeySource::File(default_key_file(&config.db)),
    })
}

/// The key file beside the SQLite database `db`: `<db>.join-keys`.
pub fn default_key_file(db: &str) -> PathBuf {
    PathBuf::from(format!("{db}{DEFAULT_KEY_FILE_SUFFIX}"))
}

/// Reads the ring from its [`KeySource`], making a one-key ring when there is none yet. A ring
/// an earlier version stored in the database is moved to the key file (or, with keys from the
/// environment, deleted from the database).
pub fn load(config: &Config, store: &dyn Store) -> Result<Keyring, ServeError> {
    let source = key_source(config)?;
    let text = match &source {
        KeySource::Env(var) => {
            let text = read_env(var)?;
            if store.delete_meta(KEY_META)? {
                tracing::warn!(
                    "deleted the signing keys an earlier version kept in the database: the keys \
                     now come from --join-key-env {var}"
                );
            }
            text
        }
        KeySource::File(path) => read_or_create_file(path, store)?,
        KeySource::Memory => Keyring::new(generate()).to_text(),
    };
    Keyring::parse(&text).map_err(|e| match &source {
        KeySource::Env(var) => ServeError::Key(format!("--join-key-env {var}: {e}")),
        KeySource::File(path) => ServeError::Key(format!("{path:?}: {e}")),
        KeySource::Memory => ServeError::Key(e),
    })
}

/// The ring in the environment variable `var`; never generated (a replica that made up its own
/// key would sign tokens no other replica accepts).
fn read_env(var: &str) -> Result<String, ServeError> {
    match std::env::var(var) {
        Ok(text) if !text.trim().is_empty() => Ok(text),
        Ok(_) | Err(std::env::VarError::NotPresent) => Err(ServeError::Key(format!(
            "--join-key-env {var}: the variable is not set or empty (it holds the signing keys: \
             a base64url Ed25519 seed per line, as in --join-key-file)"
        ))),
        Err(std::env::VarError::NotUnicode(_)) => Err(ServeError::Key(format!(
            "--join-key-env {var}: the variable is not UTF-8"
        ))),
    }
}

/// The ring in the key file `path`. A missing file is created (owner-only) with the ring an
/// earlier version kept in the database, or a new one; replicas creating it at once all end up
/// with the first one written (made aside, then linked into place: never half a file).
fn read_or_create_file(path: &Path, store: &dyn Store) -> Result<String, ServeError> {
    let read = |path: &Path| -> Result<Option<String>, ServeError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                crate::secrets::refuse_shared_key_file(path)?;
                Ok(Some(text))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ServeError::Key(format!("{path:?}: {e}"))),
        }
    };
    let legacy = store.meta(KEY_META)?;
    let text = match read(path)? {
        Some(text) => text,
        None => {
            let (text, from) = match &legacy {
                Some(old) => (old.clone(), "the keys the database held"),
                None => (Keyring::new(generate()).to_text(), "a new key"),
            };
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| ServeError::Key(format!("{dir:?}: {e}")))?;
            }
            let mut aside = path.as_os_str().to_owned();
            aside.push(format!(".{}.new", std::process::id()));
            let aside = PathBuf::from(aside);
            let _ = std::fs::remove_file(&aside);
            crate::secrets::write_private(&aside, &text)?;
            let linked = std::fs::hard_link(&aside, path);
            let _ = std::fs::remove_file(&aside);
            match linked {
                Ok(()) => {
                    tracing::info!(file = %path.display(), "signing keys written ({from})");
                    text
                }
                // Another replica linked its file first: use that one.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    read(path)?.ok_or_else(|| ServeError::Key(format!("{path:?} vanished")))?
                }
                Err(e) => return Err(ServeError::Key(format!("{path:?}: {e}"))),
            }
        }
    };
    if legacy.is_some() && store.delete_meta(KEY_META)? {
        tracing::warn!(
            file = %path.display(),
            "moved the signing keys out of the database into the key file"
        );
    }
    Ok(text)
}

/// The outcome of [`rotate`], for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    /// Key id of the new current key.
    pub current_kid: String,
    /// Key id of the replaced key.
    pub previous_kid: String,
    /// Unix seconds from which the replaced key no longer verifies.
    pub previous_retires_at: u64,
}

/// Rotates the ring in the key file ([`key_source`]) at `now_s`: a new current key, the old one
/// accepted for `overlap_s` more seconds. Running replicas pick it up at their next refresh.
/// Run one rotation at a time (two racing rotations keep only one of the new keys).
pub fn rotate(
    config: &Config,
    store: &dyn Store,
    now_s: u64,
    overlap_s: u64,
) -> Result<Rotated, ServeError> {
    let path = match key_source(config)? {
        KeySource::File(path) => path,
        KeySource::Env(var) => {
            return Err(ServeError::Key(format!(
                "--rotate-join-key acts on the key file; keys from --join-key-env {var} are \
                 rotated by changing the variable (a new seed first, the old one after it with \
                 retires_at=<unix s>) and restarting the replicas"
            )));
        }
        KeySource::Memory => {
            return Err(ServeError::Key(
                "--rotate-join-key needs the running backends' --db (a SQLite file, whose key \
                 file sits beside it) or their --join-key-file: an in-memory database's keys \
                 live only in its process"
                    .into(),
            ));
        }
    };
    let old = load(config, store)?;
    let new = old.rotate(generate(), now_s, overlap_s);
    let text = new.to_text();
    // Written beside the file and renamed over it: a replica never reads half a ring.
    let tmp = path.with_extension("rotating");
    let _ = std::fs::remove_file(&tmp);
    crate::secrets::write_private(&tmp, &text)?;
    std::fs::rename(&tmp, &path)?;
    Ok(Rotated {
        current_kid: key_id(&new.current.verifying_key()),
        previous_kid: key_id(&old.current.verifying_key()),
        previous_retires_at: now_s.saturating_add(overlap_s),
    })
}

/// Re-reads the stored ring every `every` and installs it when it changed (a rotation by the
/// operator command, or by another replica's operator). A ring that cannot be read keeps the
/// last good one (logged).
pub async fn refresh_loop(st: Arc<AppState>, config: Config, every: Duration) {
    let Ok(KeySource::File(path)) = key_source(&config) else {
        // A process's environment does not change, and memory keys are this process's own:
        // nothing to re-read.
        return;
    };
    let mut shutdown = st.shutdown.clone();
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let path2 = path.clone();
        let read = tokio::task::spawn_blocking(move || -> Result<Option<String>, ServeError> {
            Ok(Some(std::fs::read_to_string(&path2)?))
        })
        .await;
        let text = match read {
            Ok(Ok(Some(text))) => text,
            Ok(Ok(None)) => continue,
            Ok(Err(e)) => {
                tracing::warn!("re-reading the signing keys failed: {e}");
                continue;
            }
            Err(_) => continue,
        };
        if text == st.signing().stored {
            continue;
        }
        match Keyring::parse(&text) {
            Ok(ring) => {
                let kid = key_id(&ring.current.verifying_key());
                tracing::info!(%kid, previous = ring.previous.len(), "signing keys changed");
                st.set_signing(SigningKeys::new(ring, config.token_ttl_s));
            }
            Err(e) => tracing::warn!("the stored signing keys do not parse, keeping the last: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    #[test]
    fn a_single_seed_is_a_ring_without_previous_keys() {
        let text = signing_key_to_b64(&key(1));
        let ring = Keyring::parse(&text).expect("old one-line form");
        assert_eq!(ring.current.to_bytes(), key(1).to_bytes());
        assert!(ring.previous.is_empty(), "no previous key");
    }

    #[test]
    fn rotation_keeps_the_old_key_for_the_overlap_only() {
        let ring = Keyring::new(key(1)).rotate(key(2), 1000, 60);
        let text = ring.to_text();
        let back = Keyring::parse(&text).expect("round trip");
        assert_eq!(back.to_text(), text, "stored form round-trips");
        let at = |now| -> Vec<_> {
            back.valid_at(now)
                .into_iter()
                .map(|(k, r)| (k.to_bytes()[0], r))
                .collect()
        };
        let (k1, k2) = (
            key(1).verifying_key().to_bytes()[0],
            key(2).verifying_key().to_bytes()[0],
        );
        assert_eq!(
            at(1059),
            vec![(k2, None), (k1, Some(1060))],
            "inside the overlap"
        );
        assert_eq!(at(1060), vec![(k2, None)], "retired at retires_at");
        // A second rotation after the first overlap drops the retired key from storage.
        let again = back.rotate(key(3), 2000, 60);
        assert_eq!(again.previous.len(), 1, "only key 2 is kept: {again:?}");
    }

    #[test]
    fn bad_rings_are_refused_with_a_reason() {
        let k = signing_key_to_b64(&key(1));
        for (text, why) in [
            ("", "no key"),
            ("!!", "line 1"),
            (&format!("{k} retires_at=5") as &str, "first key"),
            (&format!("{k}\n{k}"), "only the first"),
            (&format!("{k}\n{k} retires=5"), "expected retires_at"),
            (&format!("{k}\n{k} retires_at=5 x"), "unexpected text"),
        ] {
            let e = Keyring::parse(text).expect_err(text);
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }
}
