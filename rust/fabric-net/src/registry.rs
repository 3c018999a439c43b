//! A zone's side of the zone registry: register on boot, heartbeat, re-register after the
//! backend forgot the zone (restart with an empty database, or eviction), deregister on stop.
//!
//! Runs on the background runtime and reports [`RegistryEvent`]s; the zone drains them in its
//! poll. Nothing here is on the tick path. After a certificate rotation the zone hands the new
//! hashes over ([`Registration::set_cert_hash`]): they go out with a heartbeat sent at once.
//!
//! A zone of a fabric registers with [`Registration::start_in_fabric`]: its registration also
//! names its fabric, zone index, zone count, link listener and link key, and the registry
//! answers with a link credential ([`Registration::link_grant`], updated at every
//! registration, available when [`RegistryEvent::Registered`] is reported, and renewed after
//! the registry rotates its signing key: see [`crate::registry_keys`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, info, info_span, warn};

use crate::http::{self, Endpoint, Response};
use crate::registry_keys;

const TIMEOUT: Duration = Duration::from_secs(5);

/// Tries of one re-check before it fails closed (transport errors and 5xx are retried).
pub const RECHECK_ATTEMPTS: u32 = 3;

/// The registry's answer to "may this subject still join?", retrying transient failures.
async fn may_join(backend: &Endpoint, key: &str, body: &Value) -> Result<bool, String> {
    let mut attempt = 1;
    loop {
        let problem =
            match http::request_to(backend, "POST", "/check", Some(key), Some(body), TIMEOUT).await
            {
                Ok(r) if r.status == 200 => match r.body["allowed"].as_bool() {
                    Some(allowed) => return Ok(allowed),
                    None => return Err(describe("re-check", &r)),
                },
                // A refusal (the operator lost admin, the zone is gone) will not change on retry.
                Ok(r) if r.status < 500 => return Err(describe("re-check", &r)),
                Ok(r) => describe("re-check", &r),
                Err(e) => format!("re-check failed: {e}"),
            };
        if attempt >= RECHECK_ATTEMPTS {
            return Err(problem);
        }
        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
        attempt += 1;
    }
}

/// What the zone tells the registry about itself.
#[derive(Debug, Clone)]
pub struct RegistrationConfig {
    /// The backend: `http://host:port`, or `https://host:port` with its certificate pinned.
    pub backend: Endpoint,
    /// Join-token public keys (base64url) pinned from configuration: when not empty, the zone
    /// trusts only these, whatever `GET /keys/join` answers (a key the backend stopped
    /// publishing is reported as a problem, and still trusted until the configuration changes).
    pub pinned_join_keys: Vec<String>,
    /// The operator account's API key (registers the shard).
    pub api_key: String,
    /// Address clients should connect to; `None` lets the backend use the zone's own IP.
    pub address: Option<String>,
    /// WebTransport UDP port.
    pub port: u16,
    /// Map name.
    pub map: String,
    /// Display name.
    pub name: String,
    /// Certificate hash clients pin (base64).
    pub cert_hash: String,
    /// Hash of the certificate the zone installs at its next rotation (clients pin both).
    pub next_cert_hash: Option<String>,
    /// Most players.
    pub max_users: u32,
    /// Listed to everyone.
    pub public: bool,
    /// Time between heartbeats (the backend lists zones heard from in the last 30 s).
    pub heartbeat: Duration,
}

/// A zone's membership in a fabric, sent with its registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FabricMembership {
    /// Fabric name.
    pub name: String,
    /// This zone's index.
    pub zone: u8,
    /// Zones in the fabric.
    pub zones: u8,
    /// Host of the link listener (`None`: the registration's address).
    pub link_address: Option<String>,
    /// Link listener UDP port.
    pub link_port: u16,
    /// Link listener certificate hash (base64).
    pub link_cert_hash: String,
    /// Its next certificate hash.
    pub link_next_cert_hash: Option<String>,
    /// The zone's link public key (Ed25519, base64url).
    pub link_public_key: String,
}

/// The link credential the registry granted at the last registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkGrant {
    /// The credential, base64url.
    pub credential: String,
    /// The registry's key that signed it, base64url.
    pub issuer_key: String,
    /// When it expires, Unix seconds.
    pub expires_at: u64,
    /// The keys (base64url) that verify neighbours' credentials: the zone's join keys (pinned,
    /// or what the registry lists: the current key and replaced ones until they retire) and
    /// `issuer_key`. Changes when the registry rotates its key.
    pub trusted_keys: Vec<String>,
}

/// Something that happened between the zone and the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryEvent {
    /// Registered (again): the shard id and the backend's join-token public keys (base64url).
    Registered {
        /// The shard id (a UUID) that join tokens name.
        shard_id: String,
        /// Ed25519 public keys that sign join tokens.
        join_keys: Vec<String>,
    },
    /// A heartbeat was accepted.
    HeartbeatOk,
    /// The registry's key list changed (a rotation, or a replaced key retired): trust these
    /// join-token keys from now on (never reported when the keys are pinned).
    JoinKeysChanged {
        /// Ed25519 public keys that verify join tokens now, the current one first.
        join_keys: Vec<String>,
    },
    /// The registry now lists these certificate hashes for the zone (after a rotation).
    CertHashPublished {
        /// The hash (base64).
        cert_hash: String,
        /// The announced next hash (base64), if any.
        next_cert_hash: Option<String>,
    },
    /// The registry pushed `relationship_changed` for this zone: permissions may have changed,
    /// so cached join decisions must be re-derived ([`Registration::recheck`]).
    RelationshipChanged {
        /// The object whose tuples changed (e.g. `group:guild`).
        object: String,
    },
    /// A re-check found that `subject` may no longer join this zone.
    JoinRevoked {
        /// The account.
        subject: String,
    },
    /// The registry pushed `asset_baked` for this zone: an asset of `map` was uploaded and
    /// baked, and is placeable by `asset_id` (its file hash's first 8 bytes).
    AssetBaked {
        /// The map the asset belongs to.
        map: String,
        /// Its id (`fabric_assets::asset_id_of_hex` of its hash).
        asset_id: u64,
        /// Its name within the map.
        name: String,
        /// BLAKE3 of the file, 64 lowercase or uppercase hex digits (the index's name).
        hash: String,
        /// The file's size in bytes.
        size: u64,
        /// Where its index (manifest) is: a path on the backend, `/assets/index/<hash>`.
        baked_url: String,
    },
    /// The zone's topic subscription is open (again): pushes from now on reach the zone.
    Subscribed {
        /// The topic, `zone:<shard id>`.
        topic: String,
    },
    /// Something failed; the loop retries by itself.
    Problem(String),
}

/// A running registration.
pub struct Registration {
    events: UnboundedReceiver<RegistryEvent>,
    users: Arc<AtomicU32>,
    hash: Arc<HashState>,
    task: JoinHandle<()>,
    shard: Arc<std::sync::Mutex<Option<(String, String)>>>,
    backend: Endpoint,
    api_key: String,
    tx: UnboundedSender<RegistryEvent>,
    grant: Arc<watch::Sender<Option<LinkGrant>>>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Registration({})", self.backend.base())
    }
}

impl Registration {
    /// Starts registering in the background.
    pub fn start(cfg: RegistrationConfig) -> Self {
        Self::start_with(cfg, None)
    }

    /// Starts registering in the background as a member of a fabric.
    pub fn start_in_fabric(cfg: RegistrationConfig, fabric: FabricMembership) -> Self {
        Self::start_with(cfg, Some(fabric))
    }

    /// The link credential of the last registration or renewal (with
    /// [`Self::start_in_fabric`]).
    pub fn link_grant(&self) -> Option<LinkGrant> {
        self.grant.borrow().clone()
    }

    /// Every link grant from now on: the current one, then each renewal or change of trusted
    /// keys (`fabric_link::ZoneLinks::follow_grants` installs them).
    pub fn link_grants(&self) -> watch::Receiver<Option<LinkGrant>> {
        self.grant.subscribe()
    }

    fn start_with(cfg: RegistrationConfig, fabric: Option<FabricMembership>) -> Self {
        let (tx, events) = unbounded_channel();
        let users = Arc::new(AtomicU32::new(0));
        let hash = Arc::new(HashState {
            current: std::sync::Mutex::new((cfg.cert_hash.clone(), cfg.next_cert_hash.clone())),
            unpublished: std::sync::atomic::AtomicBool::new(false),
            wake: Notify::new(),
        });
        let shard = Arc::new(std::sync::Mutex::new(None));
        let backend = cfg.backend.clone();
        let api_key = cfg.api_key.clone();
        let span = info_span!("registry", backend = %cfg.backend.base());
        let grant = Arc::new(watch::Sender::new(None));
        let member = Member {
            fabric,
            grant: grant.clone(),
        };
        let task = crate::current_or_shared().spawn(
            run(
                cfg,
                member,
                tx.clone(),
                users.clone(),
                hash.clone(),
                shard.clone(),
            )
            .instrument(span),
        );
        Self {
            events,
            users,
            hash,
            task,
            shard,
            backend,
            api_key,
            tx,
            grant,
        }
    }

    /// The next event, if one is waiting (never blocks).
    pub fn try_next_event(&mut self) -> Option<RegistryEvent> {
        self.events.try_recv().ok()
    }

    /// Waits for the next event.
    pub async fn next_event(&mut self) -> Option<RegistryEvent> {
        self.events.recv().await
    }

    /// The player count sent with the next heartbeat.
    pub fn set_current_users(&self, n: u32) {
        self.users.store(n, Ordering::Relaxed);
    }

    /// The zone's certificate changed: publish `cert_hash` and `next_cert_hash` (base64) with
    /// a heartbeat sent now (and with every later registration).
    /// [`RegistryEvent::CertHashPublished`] follows once the registry lists them; a failed
    /// heartbeat keeps them pending for the next one.
    pub fn set_cert_hash(&self, cert_hash: &str, next_cert_hash: Option<&str>) {
        *self.hash.current.lock().expect("hash lock") =
            (cert_hash.to_owned(), next_cert_hash.map(str::to_owned));
        self.hash.unpublished.store(true, Ordering::SeqCst);
        self.hash.wake.notify_one();
    }

    /// Re-checks in the background whether each of `subjects` may still join this zone (the
    /// operator asks `POST /check` with `subject`); each one that may not is reported as
    /// [`RegistryEvent::JoinRevoked`]. Off the tick loop: the zone only drains the outcome.
    ///
    /// Fails closed: a check that cannot be answered (the registry unreachable or failing
    /// after [`RECHECK_ATTEMPTS`] tries, or refusing the operator) revokes the subject too,
    /// with a [`RegistryEvent::Problem`] saying why. A player who may still join reconnects
    /// with a new token once the registry answers again.
    pub fn recheck(&self, subjects: Vec<String>) {
        let Some((id, _)) = self.shard.lock().expect("shard lock").clone() else {
            return;
        };
        let (backend, key, tx) = (self.backend.clone(), self.api_key.clone(), self.tx.clone());
        crate::current_or_shared().spawn(async move {
            for subject in subjects {
                let body = json!({"permission": "join", "object": format!("zone:{id}"), "subject": subject});
                match may_join(&backend, &key, &body).await {
                    Ok(true) => {}
                    Ok(false) => {
                        let _ = tx.send(RegistryEvent::JoinRevoked { subject });
                    }
                    Err(problem) => {
                        let _ = tx.send(RegistryEvent::Problem(format!(
                            "re-check of {subject} failed, revoking (fail closed): {problem}"
                        )));
                        let _ = tx.send(RegistryEvent::JoinRevoked { subject });
                    }
                }
            }
        });
    }

    /// Stops heartbeating and removes the shard from the registry (waits at most 2 s).
    pub fn stop(self) {
        self.task.abort();
        let shard = self.shard.lock().expect("shard lock").take();
        if let Some((id, secret)) = shard {
            let backend = self.backend.clone();
            let _ = crate::runtime_handle().block_on(async move {
                tokio::time::timeout(
                    Duration::from_secs(2),
                    http::request_to(
                        &backend,
                        "DELETE",
                        &format!("/shards/{id}"),
                        Some(&secret),
                        None,
                        TIMEOUT,
                    ),
                )
                .await
            });
        }
    }
}

/// The certificate hashes (current, next) to register with, and whether the registry has not
/// seen them yet.
struct HashState {
    current: std::sync::Mutex<(String, Option<String>)>,
    unpublished: std::sync::atomic::AtomicBool,
    wake: Notify,
}

impl HashState {
    fn current(&self) -> (String, Option<String>) {
        self.current.lock().expect("hash lock").clone()
    }
}

/// The fabric part of a registration and where its grant goes.
struct Member {
    fabric: Option<FabricMembership>,
    grant: Arc<watch::Sender<Option<LinkGrant>>>,
}

impl Member {
    /// After an accepted heartbeat: follow the registry's key list (trust changes, and a
    /// credential signed by a key that is no longer current is renewed).
    async fn follow_keys(
        &self,
        cfg: &RegistrationConfig,
        shard: (&str, &str),
        join_keys: &mut Vec<String>,
        tx: &UnboundedSender<RegistryEvent>,
    ) -> Result<(), String> {
        if !cfg.pinned_join_keys.is_empty() && self.fabric.is_none() {
            return Ok(()); // pinned keys: the list cannot change what this zone trusts
        }
        let published = registry_keys::fetch(&cfg.backend).await?;
        if cfg.pinned_join_keys.is_empty() && published.keys != *join_keys {
            info!(
                keys = published.keys.len(),
                "the registry's join keys changed"
            );
            join_keys.clone_from(&published.keys);
            let _ = tx.send(RegistryEvent::JoinKeysChanged {
                join_keys: join_keys.clone(),
            });
            self.grant.send_if_modified(|g| match g {
                Some(g) => {
                    g.trusted_keys = registry_keys::trusted(join_keys, &g.issuer_key);
                    true
                }
                None => false,
            });
        }
        let Some(fabric) = &self.fabric else {
            return Ok(());
        };
        let stale = self
            .grant
            .borrow()
            .as_ref()
            .is_some_and(|g| g.issuer_key != published.current());
        if stale {
            let renewed =
                registry_keys::renew(&cfg.backend, shard.0, shard.1, fabric, join_keys).await?;
            info!(issuer = %renewed.issuer_key, "link credential renewed under the current key");
            self.grant.send_replace(Some(renewed));
        }
        Ok(())
    }
}

async fn run(
    mut cfg: RegistrationConfig,
    member: Member,
    tx: UnboundedSender<RegistryEvent>,
    users: Arc<AtomicU32>,
    hash: Arc<HashState>,
    shard: Arc<std::sync::Mutex<Option<(String, String)>>>,
) {
    let mut backoff = Duration::from_millis(250);
    let problem = |tx: &UnboundedSender<RegistryEvent>, text: String| {
        warn!("{text}");
        let _ = tx.send(RegistryEvent::Problem(text));
    };
    loop {
        // A registration always carries the current hash.
        hash.unpublished.store(false, Ordering::SeqCst);
        (cfg.cert_hash, cfg.next_cert_hash) = hash.current();
        match register(&cfg, &member).await {
            Ok((id, secret, mut join_keys)) => {
                backoff = Duration::from_millis(250);
                info!(shard = %id, "registered");
                *shard.lock().expect("shard lock") = Some((id.clone(), secret.clone()));
                let _ = tx.send(RegistryEvent::Registered {
                    shard_id: id.clone(),
                    join_keys: join_keys.clone(),
                });
                // Aborted with this task (its guard drops) or when the registry forgets us.
                let watcher = AbortOnDrop(tokio::spawn(
                    crate::registry_watch::watch(
                        cfg.backend.clone(),
                        id.clone(),
                        secret.clone(),
                        tx.clone(),
                    )
                    .in_current_span(),
                ));
                // Heartbeat until the backend forgets us.
                loop {
                    // A rotated certificate cuts the wait short.
                    tokio::select! {
                        () = tokio::time::sleep(cfg.heartbeat) => {}
                        () = hash.wake.notified() => {}
                    }
                    let mut body = json!({"current_users": users.load(Ordering::Relaxed)});
                    let publishing = hash.unpublished.swap(false, Ordering::SeqCst);
                    let (cert_hash, next_cert_hash) = hash.current();
                    if publishing {
                        body["cert_hash"] = json!(cert_hash);
                        body["next_cert_hash"] = json!(next_cert_hash);
                    }
                    match http::request_to(
                        &cfg.backend,
                        "PUT",
                        &format!("/shards/{id}"),
                        Some(&secret),
                        Some(&body),
                        TIMEOUT,
                    )
                    .await
                    {
                        Ok(r) if r.status == 200 => {
                            let _ = tx.send(RegistryEvent::HeartbeatOk);
                            if publishing {
                                info!(%cert_hash, "new certificate hash published");
                                let _ = tx.send(RegistryEvent::CertHashPublished {
                                    cert_hash,
                                    next_cert_hash,
                                });
                            }
                            if let Err(e) = member
                                .follow_keys(&cfg, (&id, &secret), &mut join_keys, &tx)
                                .await
                            {
                                problem(&tx, e);
                            }
                        }
                        Ok(r) if r.status == 404 || r.status == 401 || r.status == 403 => {
                            problem(
                                &tx,
                                format!(
                                    "the registry no longer knows shard {id} ({}); registering again",
                                    r.error_code().unwrap_or("?")
                                ),
                            );
                            drop(watcher);
                            break;
                        }
                        Ok(r) => {
                            hash.unpublished.fetch_or(publishing, Ordering::SeqCst);
                            problem(&tx, describe("heartbeat", &r));
                        }
                        Err(e) => {
                            hash.unpublished.fetch_or(publishing, Ordering::SeqCst);
                            problem(&tx, format!("heartbeat failed: {e}"));
                        }
                    }
                }
            }
            Err(e) => {
                problem(&tx, e);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `<what> refused: HTTP <status> <the backend's message>`.
pub(crate) fn describe(what: &str, r: &Response) -> String {
    format!(
        "{what} refused: HTTP {} {}",
        r.status,
        r.body
            .get("error")
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("")
    )
}

async fn register(
    cfg: &RegistrationConfig,
    member: &Member,
) -> Result<(String, String, Vec<String>), String> {
    let join_keys = if cfg.pinned_join_keys.is_empty() {
        registry_keys::fetch(&cfg.backend).await?.keys
    } else {
        // Pinned from configuration: the backend's answer cannot change what the zone trusts.
        cfg.pinned_join_keys.clone()
    };
    let mut body = json!({
        "port": cfg.port, "map": cfg.map, "name": cfg.name, "cert_hash": cfg.cert_hash,
        "next_cert_hash": cfg.next_cert_hash,
        "max_users": cfg.max_users, "public": cfg.public,
    });
    if let Some(a) = &cfg.address {
        body["address"] = json!(a);
    }
    if let Some(f) = &member.fabric {
        body["fabric"] = json!({
            "name": f.name, "zone": f.zone, "zones": f.zones, "link_address": f.link_address,
            "link_port": f.link_port, "link_cert_hash": f.link_cert_hash,
            "link_next_cert_hash": f.link_next_cert_hash, "link_public_key": f.link_public_key,
        });
    }
    let r = http::request_to(
        &cfg.backend,
        "POST",
        "/shards",
        Some(&cfg.api_key),
        Some(&body),
        TIMEOUT,
    )
    .await
    .map_err(|e| format!("cannot register: {e}"))?;
    if r.status != 201 {
        return Err(describe("registration", &r));
    }
    let id = r.body["id"]
        .as_str()
        .ok_or("registration reply without id")?;
    let secret = r.body["shard_secret"]
        .as_str()
        .ok_or("registration reply without shard_secret")?;
    if member.fabric.is_some() {
        let grant = registry_keys::grant_from(&r.body["link"], &join_keys)
            .ok_or("registration reply without a link credential")?;
        member.grant.send_replace(Some(grant));
    }
    Ok((id.to_owned(), secret.to_owned(), join_keys))
}
