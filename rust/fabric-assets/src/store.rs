//! Chunk stores: the [`ChunkStore`] trait and [`DiskStore`], its local-disk implementation.
//!
//! Layout of a [`DiskStore`] root: `chunks/<first 2 hex>/<64 hex>.zst` (one zstd frame per chunk),
//! `index/<name>` (encoded [`crate::Index`]), `tmp/` (partial writes, renamed into place).
//! Every write is verified first and lands atomically (write to `tmp/`, fsync, rename), so a
//! reader never sees a partial or unverified chunk. [`crate::S3Store`] is the same trait on
//! S3-compatible object storage.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{ChunkId, Index, StoreError};

/// Where chunks and indexes live. Chunks are stored compressed (one zstd frame) under the
/// BLAKE3 of their uncompressed bytes; implementations verify before they accept a chunk.
pub trait ChunkStore: Send + Sync {
    /// Whether the chunk is present.
    fn has_chunk(&self, id: &ChunkId) -> bool;
    /// Verifies that `compressed` decompresses to `size` bytes hashing to `id`, then stores it.
    fn put_chunk(&self, id: &ChunkId, compressed: &[u8], size: u32) -> Result<(), StoreError>;
    /// The stored (compressed) bytes of a chunk, `None` if absent.
    fn get_chunk(&self, id: &ChunkId) -> Result<Option<Vec<u8>>, StoreError>;
    /// Removes a chunk (absent is not an error).
    fn remove_chunk(&self, id: &ChunkId) -> Result<(), StoreError>;
    /// Validates `bytes` as an index and stores it under `name`.
    fn put_index(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError>;
    /// The bytes of an index, `None` if absent.
    fn get_index(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
}

/// Decompresses a stored chunk (never past `size` bytes) and checks its length and hash.
pub fn verify_chunk(id: &ChunkId, compressed: &[u8], size: u32) -> Result<Vec<u8>, StoreError> {
    let data =
        zstd::bulk::decompress(compressed, size as usize).map_err(|_| StoreError::Corrupt(*id))?;
    let actual = ChunkId::of(&data);
    if data.len() != size as usize || actual != *id {
        return Err(StoreError::HashMismatch {
            expected: *id,
            actual,
        });
    }
    Ok(data)
}

/// Index names are single path segments: `[A-Za-z0-9._-]`, not starting with a dot.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// A content-addressed store in a directory on the local disk.
#[derive(Debug)]
pub struct DiskStore {
    root: PathBuf,
    tmp_counter: AtomicU64,
}

impl DiskStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<DiskStore, StoreError> {
        let root = root.into();
        for sub in ["chunks", "index", "tmp"] {
            fs::create_dir_all(root.join(sub))?;
        }
        Ok(DiskStore {
            root,
            tmp_counter: AtomicU64::new(0),
        })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a chunk's file is (whether or not it exists).
    pub fn chunk_path(&self, id: &ChunkId) -> PathBuf {
        let hex = id.to_hex();
        self.root
            .join("chunks")
            .join(&hex[..2])
            .join(format!("{hex}.zst"))
    }

    /// Where an index's file is (whether or not it exists); `None` for a bad name.
    pub fn index_path(&self, name: &str) -> Option<PathBuf> {
        valid_name(name).then(|| self.root.join("index").join(name))
    }

    /// Writes `bytes` to `dest` atomically: a temporary file in `tmp/`, fsync, rename.
    pub fn write_atomic(&self, dest: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{}-{n}.part", std::process::id()));
        let result = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::rename(&tmp, dest)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        Ok(result?)
    }
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl ChunkStore for DiskStore {
    fn has_chunk(&self, id: &ChunkId) -> bool {
        self.chunk_path(id).is_file()
    }

    fn put_chunk(&self, id: &ChunkId, compressed: &[u8], size: u32) -> Result<(), StoreError> {
        verify_chunk(id, compressed, size)?;
        self.write_atomic(&self.chunk_path(id), compressed)
    }

    fn get_chunk(&self, id: &ChunkId) -> Result<Option<Vec<u8>>, StoreError> {
        read_optional(&self.chunk_path(id))
    }

    fn remove_chunk(&self, id: &ChunkId) -> Result<(), StoreError> {
        match fs::remove_file(self.chunk_path(id)) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn put_index(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self
            .index_path(name)
            .ok_or_else(|| StoreError::BadName(name.to_owned()))?;
        Index::decode(bytes)?;
        self.write_atomic(&path, bytes)
    }

    fn get_index(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self
            .index_path(name)
            .ok_or_else(|| StoreError::BadName(name.to_owned()))?;
        read_optional(&path)
    }
}
