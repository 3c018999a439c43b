//! [`S3Store`]: the [`ChunkStore`] on S3-compatible object storage (AWS S3, MinIO, Ceph RGW,
//! Garage, moto, ...), addressed path-style (`<endpoint>/<bucket>/<key>`), which every
//! S3-compatible server accepts whatever its DNS set-up.
//!
//! Keys: `chunks/<64 hex>.zst` (one zstd frame per chunk) and `index/<name>`, the same
//! content-addressed layout as [`crate::DiskStore`]. A chunk is verified before it is uploaded,
//! an index decoded; an object PUT is atomic on S3, so a reader never sees a partial object.
//!
//! Requests are signed with AWS Signature V4 by `rusty-s3` (sans-IO: it only builds presigned
//! URLs) and sent by `ureq`, a blocking HTTP/1.1 client with rustls: the [`ChunkStore`] trait is
//! synchronous (callers run it on blocking threads), so no async runtime is needed here.

use std::time::Duration;

use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use crate::store::{valid_name, verify_chunk};
use crate::{ChunkId, ChunkStore, Index, StoreError};

/// How long a signed request stays valid (it is sent at once).
const SIGNED_FOR: Duration = Duration::from_secs(300);

/// Largest object read back (a chunk's frame or an index is far smaller).
const MAX_OBJECT: u64 = crate::MAX_INDEX_BYTES + 1024;

/// Where an S3-compatible bucket is and how to sign for it.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// The service endpoint, `http://host:port` or `https://host` (no bucket in it).
    pub endpoint: String,
    /// The bucket name.
    pub bucket: String,
    /// The signing region (`us-east-1` for most S3-compatible servers).
    pub region: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
    /// Each request must finish within this long.
    pub timeout: Duration,
}

impl S3Config {
    /// `endpoint` and `bucket` with credentials from the environment: `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` and `AWS_REGION` (default `us-east-1`).
    pub fn from_env(endpoint: &str, bucket: &str) -> Result<S3Config, StoreError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let missing = |name: &str| StoreError::S3(format!("{name} is not set in the environment"));
        Ok(S3Config {
            endpoint: endpoint.to_owned(),
            bucket: bucket.to_owned(),
            region: var("AWS_REGION").unwrap_or_else(|| "us-east-1".to_owned()),
            access_key: var("AWS_ACCESS_KEY_ID").ok_or_else(|| missing("AWS_ACCESS_KEY_ID"))?,
            secret_key: var("AWS_SECRET_ACCESS_KEY")
                .ok_or_else(|| missing("AWS_SECRET_ACCESS_KEY"))?,
            timeout: Duration::from_secs(30),
        })
    }
}

/// A content-addressed store in an S3-compatible bucket.
pub struct S3Store {
    bucket: Bucket,
    credentials: Credentials,
    agent: ureq::Agent,
    label: String,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label)
    }
}

impl S3Store {
    /// Connects to the bucket and checks it exists and the credentials are accepted (a `HEAD`
    /// of the bucket), so a misconfigured store fails at start-up, not on the first upload.
    pub fn open(config: &S3Config) -> Result<S3Store, StoreError> {
        let store = S3Store::new(config)?;
        let url = store
            .bucket
            .head_bucket(Some(&store.credentials))
            .sign(SIGNED_FOR);
        match store.send("HEAD", url.as_str(), None)? {
            (200, _) => Ok(store),
            (404, _) => Err(StoreError::S3(format!(
                "{}: no such bucket (create it first)",
                store.label
            ))),
            (403, _) | (401, _) => Err(StoreError::S3(format!(
                "{}: access denied (check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
                store.label
            ))),
            (status, _) => Err(StoreError::S3(format!("{}: HTTP {status}", store.label))),
        }
    }

    /// Creates the bucket (for set-up scripts and tests); an existing one owned by the same
    /// credentials is not an error.
    pub fn create_bucket(config: &S3Config) -> Result<(), StoreError> {
        let store = S3Store::new(config)?;
        let url = store
            .bucket
            .create_bucket(&store.credentials)
            .sign(SIGNED_FOR);
        match store.send("PUT", url.as_str(), Some(&[]))? {
            (200, _) | (409, _) => Ok(()),
            (status, body) => Err(StoreError::S3(format!(
                "{}: create bucket: HTTP {status} {}",
                store.label,
                String::from_utf8_lossy(&body)
            ))),
        }
    }

    fn new(config: &S3Config) -> Result<S3Store, StoreError> {
        let endpoint = url::Url::parse(&config.endpoint)
            .map_err(|e| StoreError::S3(format!("endpoint {:?}: {e}", config.endpoint)))?;
        let bucket = Bucket::new(
            endpoint,
            UrlStyle::Path,
            config.bucket.clone(),
            config.region.clone(),
        )
        .map_err(|e| StoreError::S3(format!("bucket {:?}: {e}", config.bucket)))?;
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .build()
            .new_agent();
        Ok(S3Store {
            label: format!("s3 {}", bucket.base_url()),
            bucket,
            credentials: Credentials::new(config.access_key.clone(), config.secret_key.clone()),
            agent,
        })
    }

    /// The label used in errors and logs: `s3 <bucket URL>`.
    pub fn label(&self) -> &str {
        &self.label
    }

    fn chunk_key(id: &ChunkId) -> String {
        format!("chunks/{}.zst", id.to_hex())
    }

    fn index_key(name: &str) -> Result<String, StoreError> {
        if valid_name(name) {
            Ok(format!("index/{name}"))
        } else {
            Err(StoreError::BadName(name.to_owned()))
        }
    }

    /// Sends one signed request; returns the status and the body (empty for `HEAD`).
    fn send(
        &self,
        method: &str,
        url: &str,
        body: Option<&[u8]>,
    ) -> Result<(u16, Vec<u8>), StoreError> {
        let failed = |e: ureq::Error| StoreError::S3(format!("{} {method}: {e}", self.label));
        let response = match (method, body) {
            ("GET", _) => self.agent.get(url).call(),
            ("HEAD", _) => self.agent.head(url).call(),
            ("DELETE", _) => self.agent.delete(url).call(),
            (_, body) => self.agent.put(url).send(body.unwrap_or_default()),
        }
        .map_err(failed)?;
        let status = response.status().as_u16();
        if method == "HEAD" {
            return Ok((status, Vec::new()));
        }
        let body = response
            .into_body()
            .into_with_config()
            .limit(MAX_OBJECT)
            .read_to_vec()
            .map_err(failed)?;
        Ok((status, body))
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let url = self
            .bucket
            .get_object(Some(&self.credentials), key)
            .sign(SIGNED_FOR);
        match self.send("GET", url.as_str(), None)? {
            (200, body) => Ok(Some(body)),
            (404, _) => Ok(None),
            (status, _) => Err(self.status_error("GET", key, status)),
        }
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let url = self
            .bucket
            .put_object(Some(&self.credentials), key)
            .sign(SIGNED_FOR);
        match self.send("PUT", url.as_str(), Some(bytes))? {
            (200, _) => Ok(()),
            (status, _) => Err(self.status_error("PUT", key, status)),
        }
    }

    fn status_error(&self, method: &str, key: &str, status: u16) -> StoreError {
        StoreError::S3(format!("{} {method} {key}: HTTP {status}", self.label))
    }
}

impl ChunkStore for S3Store {
    fn has_chunk(&self, id: &ChunkId) -> bool {
        let url = self
            .bucket
            .head_object(Some(&self.credentials), &Self::chunk_key(id))
            .sign(SIGNED_FOR);
        matches!(self.send("HEAD", url.as_str(), None), Ok((200, _)))
    }

    fn put_chunk(&self, id: &ChunkId, compressed: &[u8], size: u32) -> Result<(), StoreError> {
        verify_chunk(id, compressed, size)?;
        self.put(&Self::chunk_key(id), compressed)
    }

    fn get_chunk(&self, id: &ChunkId) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(&Self::chunk_key(id))
    }

    fn remove_chunk(&self, id: &ChunkId) -> Result<(), StoreError> {
        let key = Self::chunk_key(id);
        let url = self
            .bucket
            .delete_object(Some(&self.credentials), &key)
            .sign(SIGNED_FOR);
        match self.send("DELETE", url.as_str(), None)? {
            (200 | 204 | 404, _) => Ok(()),
            (status, _) => Err(self.status_error("DELETE", &key, status)),
        }
    }

    fn put_index(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let key = Self::index_key(name)?;
        Index::decode(bytes)?;
        self.put(&key, bytes)
    }

    fn get_index(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(&Self::index_key(name)?)
    }
}
