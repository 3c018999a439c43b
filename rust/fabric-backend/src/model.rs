//! The registry's data: stored records and the JSON shapes of requests and responses.
//! Field names here are the wire names documented in docs/backend.md and openapi.json.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;

/// Default `max_users` when registration leaves it out (the original registry's value).
pub const DEFAULT_MAX_USERS: u32 = 32;
/// Largest `max_users` accepted.
pub const MAX_MAX_USERS: u32 = 100_000;
/// Longest `map`, `name`, `cert_hash` and `address`.
pub const MAX_TEXT_LEN: usize = 256;
/// Longest `asset_index_url`.
pub const MAX_URL_LEN: usize = 2048;

/// One registered zone server, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRecord {
    /// Shard id (UUID v4, chosen by the backend).
    pub id: Uuid,
    /// Account that registered the shard.
    pub owner: String,
    /// Address clients connect to.
    pub address: String,
    /// UDP/TCP port clients connect to.
    pub port: u16,
    /// Map the zone serves.
    pub map: String,
    /// Display name.
    pub name: String,
    /// Base64 SHA-256 of the zone's certificate, pinned by clients.
    pub cert_hash: String,
    /// Hash of the certificate the zone installs at its next rotation (clients pin both).
    pub next_cert_hash: Option<String>,
    /// Capacity.
    pub max_users: u32,
    /// Users connected at the last heartbeat.
    pub current_users: u32,
    /// Listed to everyone (true) or only to the owner (false).
    pub public: bool,
    /// Current asset (desync) index URL, pushed in `zone_updated`.
    pub asset_index_url: Option<String>,
    /// SHA-256 (hex) of the shard secret that authenticates heartbeats.
    pub secret_hash: String,
    /// Registration time, Unix ms.
    pub created_at_ms: u64,
    /// Last registration or heartbeat, Unix ms.
    pub last_put_at_ms: u64,
}

/// `POST /shards` body.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterShard {
    /// Address clients connect to; defaults to the caller's IP.
    #[serde(default)]
    pub address: Option<String>,
    /// Port clients connect to (1..=65535).
    pub port: u32,
    /// Map name.
    pub map: String,
    /// Display name.
    pub name: String,
    /// Certificate hash pinned by clients.
    pub cert_hash: String,
    /// Hash of the certificate the zone installs at its next rotation.
    #[serde(default)]
    pub next_cert_hash: Option<String>,
    /// Capacity, default [`DEFAULT_MAX_USERS`].
    #[serde(default)]
    pub max_users: Option<u32>,
    /// Listed to everyone, default true. A public zone also gets `zone:<id>#joiner@user:*`.
    #[serde(default)]
    pub public: Option<bool>,
    /// Initial asset index URL.
    #[serde(default)]
    pub asset_index_url: Option<String>,
    /// Membership in a fabric of zones that link to each other (zone links); absent for a
    /// stand-alone zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fabric: Option<FabricJoin>,
}

/// The `fabric` part of `POST /shards`: which zone of which fabric this shard is, and where
/// its link listener is.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FabricJoin {
    /// Fabric name (1..=64 bytes). The first account to register a member owns the name while
    /// any member of it is live.
    pub name: String,
    /// This zone's index, `0..zones`.
    pub zone: u8,
    /// Zones in the fabric (1..=32).
    pub zones: u8,
    /// Link listener address (`host`, default: the shard's `address`).
    #[serde(default)]
    pub link_address: Option<String>,
    /// Link listener UDP port (1..=65535).
    pub link_port: u32,
    /// Certificate hash of the link listener (neighbours pin it).
    pub link_cert_hash: String,
    /// Hash of the link listener's next certificate.
    #[serde(default)]
    pub link_next_cert_hash: Option<String>,
    /// The zone's link public key (Ed25519, base64url): the credential binds it.
    pub link_public_key: String,
}

/// `POST /shards/{id}/link` body: a member asks for a credential signed by the current key
/// (after a key rotation), for the same fabric membership and link key it registered with.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LinkRenewal {
    /// Fabric name, as registered.
    pub fabric: String,
    /// Zone index, as registered.
    pub zone: u8,
    /// The zone's link public key (Ed25519, base64url).
    pub link_public_key: String,
}

/// The link credential granted at registration (with `fabric`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct LinkGrant {
    /// The credential (base64url): "zone k of fabric F holds this link key".
    pub credential: String,
    /// The registry's public key (base64url) that signed it; zones verify neighbours' credentials
    /// with it, offline.
    pub issuer_key: String,
    /// Unix seconds the credential expires (register again before).
    pub expires_at: u64,
}

/// One live member of a fabric, as `GET /fabrics/{fabric}/members` lists it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct MemberView {
    /// The shard.
    pub shard_id: Uuid,
    /// Zone index.
    pub zone: u8,
    /// Zones in the fabric.
    pub zones: u8,
    /// `host:port` of its link listener.
    pub link_address: String,
    /// Certificate hash of the link listener.
    pub link_cert_hash: String,
    /// Next certificate hash of the link listener.
    pub link_next_cert_hash: Option<String>,
    /// Last heartbeat.
    pub last_put_at_ms: u64,
}

/// `GET /fabrics/{fabric}/members` response.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct MemberList {
    /// The fabric.
    pub fabric: String,
    /// Live members, by zone.
    pub members: Vec<MemberView>,
}

/// `POST /shards` response.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Registered {
    /// New shard id.
    pub id: Uuid,
    /// Secret for `PUT`/`DELETE /shards/{id}`; shown once, stored only as a hash.
    pub shard_secret: String,
    /// Heartbeats older than this hide the shard from `GET /shards`.
    pub stale_after_ms: u64,
    /// The link credential (registrations with `fabric` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkGrant>,
}

/// `PUT /shards/{id}` body.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// Users connected now.
    pub current_users: u32,
    /// New asset index URL; absent keeps the current one.
    #[serde(default)]
    pub asset_index_url: Option<String>,
    /// The zone's certificate hash after a rotation; absent keeps the current one.
    #[serde(default)]
    pub cert_hash: Option<String>,
    /// The hash of the certificate announced for the next rotation; absent keeps it.
    #[serde(default)]
    pub next_cert_hash: Option<String>,
}

/// A shard as the API shows it (no secret hash).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ShardView {
    /// Shard id.
    pub id: Uuid,
    /// Owning account.
    pub owner: String,
    /// Address.
    pub address: String,
    /// Port.
    pub port: u16,
    /// Map.
    pub map: String,
    /// Display name.
    pub name: String,
    /// Certificate hash.
    pub cert_hash: String,
    /// Hash of the certificate the zone installs next, or null: clients pin both.
    pub next_cert_hash: Option<String>,
    /// Capacity.
    pub max_users: u32,
    /// Users at last heartbeat.
    pub current_users: u32,
    /// Public listing.
    pub public: bool,
    /// Asset index URL, or null.
    pub asset_index_url: Option<String>,
    /// Registration time, Unix ms.
    pub created_at_ms: u64,
    /// Last heartbeat, Unix ms.
    pub last_put_at_ms: u64,
}

impl From<&ShardRecord> for ShardView {
    fn from(r: &ShardRecord) -> Self {
        Self {
            id: r.id,
            owner: r.owner.clone(),
            address: r.address.clone(),
            port: r.port,
            map: r.map.clone(),
            name: r.name.clone(),
            cert_hash: r.cert_hash.clone(),
            next_cert_hash: r.next_cert_hash.clone(),
            max_users: r.max_users,
            current_users: r.current_users,
            public: r.public,
            asset_index_url: r.asset_index_url.clone(),
            created_at_ms: r.created_at_ms,
            last_put_at_ms: r.last_put_at_ms,
        }
    }
}

/// `GET /shards` response.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ShardList {
    /// Fresh shards visible to the caller, oldest registration first: one page.
    pub shards: Vec<ShardView>,
    /// The cursor of the next page (`GET /shards?after=<next>`), `null` on the last page.
    #[serde(default)]
    pub next: Option<String>,
}

/// `GET /shards` query string: one page of the listing.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShardQuery {
    /// Shards per page, 1-1000 (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The previous page's `next`: list what follows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Only shards of this map.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map: Option<String>,
}

/// `POST /accounts` body.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    /// Account id: 1-64 of `[A-Za-z0-9_.-]`.
    pub name: String,
}

/// `POST /accounts` response.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AccountCreated {
    /// Account id (the `sub` of its join tokens, `user:<id>` in tuples).
    pub account_id: String,
    /// API key, shown once; send as `Authorization: Bearer <api_key>`.
    pub api_key: String,
}

/// `POST /tokens/join` body.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JoinTokenRequest {
    /// Zone to join.
    pub zone_id: Uuid,
}

/// `POST /tokens/join` response.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct JoinTokenIssued {
    /// The signed token (`fj1.…`).
    pub token: String,
    /// Expiry, Unix seconds.
    pub expires_at: u64,
    /// Id of the signing key.
    pub kid: String,
    /// Zone the token admits to.
    pub zone_id: Uuid,
}

/// `POST /tokens/join/verify` body.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyTokenRequest {
    /// Token to check.
    pub token: String,
    /// Zone it must admit to.
    pub zone_id: Uuid,
}

/// `POST /tokens/join/verify` response (only on success).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct VerifiedToken {
    /// Always true.
    pub valid: bool,
    /// The verified claims.
    pub claims: fabric_auth::JoinClaims,
}

/// One public key in `GET /keys/join`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct PublicKeyView {
    /// Key id, as in tokens' `kid`.
    pub kid: String,
    /// Always `Ed25519`.
    pub alg: String,
    /// 32-byte public key, base64url without padding.
    pub public_key: String,
    /// The key that signs now (listed first); the others only verify, until `retires_at`.
    #[serde(default)]
    pub current: bool,
    /// Unix seconds from which a replaced key no longer verifies; `null` for the current key.
    #[serde(default)]
    pub retires_at: Option<u64>,
}

/// `GET /keys/join` response.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct JoinKeys {
    /// Keys that verify now: the current one first, then replaced keys inside their overlap.
    pub keys: Vec<PublicKeyView>,
    /// Lifetime of issued tokens in seconds.
    pub token_ttl_s: u64,
}

/// A relationship tuple on the wire (`POST`/`DELETE /relationships`, `GET` list items).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TupleBody {
    /// `kind:id`, e.g. `zone:<uuid>`, `group:builders`, `map:plaza`.
    pub object: String,
    /// Stored relation, e.g. `joiner`, `member`, `uploader`, `owner`.
    pub relation: String,
    /// `user:<id>`, `user:*` or `kind:id#relation`.
    pub subject: String,
}

/// Response of tuple writes.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct TupleChanged {
    /// False when the write was a no-op (already present / already absent).
    pub changed: bool,
    /// Zone topics that were sent `relationship_changed`.
    pub notified: Vec<String>,
}

/// `GET /relationships?object=…` response.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct TupleList {
    /// Tuples on the object.
    pub tuples: Vec<TupleBody>,
}

/// `POST /check` body.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// Permission, e.g. `join`, `upload`, `admin`, `member`.
    pub permission: String,
    /// Object, `kind:id`.
    pub object: String,
    /// Account to check instead of the caller; the caller must hold `admin` on the object
    /// (a zone's operator re-checking its players after `relationship_changed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// `POST /check` response.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CheckResult {
    /// Whether the caller holds the permission.
    pub allowed: bool,
}

/// Validates a free-text field: non-empty, bounded, no control characters.
pub fn check_text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::invalid_field(field, "must not be empty"));
    }
    if value.len() > max {
        return Err(ApiError::invalid_field(field, "too long"));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(field, "control characters"));
    }
    Ok(())
}

/// Validates an account name.
pub fn check_account_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "name",
            "1-64 characters of A-Z a-z 0-9 _ - .",
        ))
    }
}

/// An uploaded asset of a map, baked into content-defined chunks (`SharedFile` of the design):
/// its index is served at `baked_url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedFile {
    /// The map it belongs to (`map:<map>` in ReBAC).
    pub map: String,
    /// The asset's name within the map (`[A-Za-z0-9._-]`, at most 128 bytes).
    pub name: String,
    /// The file's BLAKE3, hex: also the index's name in the chunk store.
    pub hash: String,
    /// The asset id a game places it by (`FabricWorld.place_asset`): the first 8 bytes of
    /// `hash`, big-endian (`fabric_assets::asset_id_of_hex`; 0 when `hash` is not a BLAKE3).
    pub asset_id: u64,
    /// The file's size in bytes.
    pub size: u64,
    /// Chunks in its index.
    pub chunks: u64,
    /// The account that uploaded this version.
    pub uploader: String,
    /// When this version was baked (Unix milliseconds).
    pub baked_at_ms: u64,
    /// Path of the index on this backend (`/assets/index/<hash>`).
    pub baked_url: String,
}

/// A room's saved state (`POST /rooms/{id}/save`, `GET /rooms/{id}/state`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomState {
    /// The room (`room:<id>` in ReBAC).
    pub room: String,
    /// 1 for the first save, one more for each later save.
    pub version: u64,
    /// The account that saved this version.
    pub saved_by: String,
    /// When (Unix milliseconds).
    pub saved_at_ms: u64,
    /// The zone's save document: a JSON object with `format` (1) and `entities` (an array);
    /// the rest is the zone's (see docs/backend.md, "Room saves").
    pub state: serde_json::Value,
}

/// The answer to a save.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSaved {
    /// The room.
    pub room: String,
    /// The version just stored.
    pub version: u64,
    /// Bytes stored.
    pub bytes: u64,
    /// Entities in the document.
    pub entities: u64,
}

/// `GET /maps/{map}/assets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedFileList {
    /// The map's assets, by name.
    pub assets: Vec<SharedFile>,
}

/// The answer to an upload: the record, and what the bake stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetBaked {
    /// The record now current for `(map, name)`.
    pub asset: SharedFile,
    /// Chunks the store did not have before.
    pub new_chunks: u64,
    /// Chunks it already had (shared with an earlier version or repeated in the file).
    pub reused_chunks: u64,
    /// Zones of the map told about it (`asset_baked` pushes).
    pub notified: usize,
}
