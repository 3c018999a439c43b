//! Asset delivery for Multiplayer Fabric: files are cut into content-defined chunks (FastCDC),
//! each compressed with zstd and addressed by the BLAKE3 of its uncompressed bytes; a versioned,
//! validated [`Index`] lists them. A [`ChunkStore`] keeps chunks and indexes ([`DiskStore`] on a
//! local disk), [`router`] serves them over HTTP with immutable cache headers, ETags and byte
//! ranges, and [`fetch`] rebuilds a file from an index URL, reusing verified chunks from a local
//! cache and downloading the rest in parallel with retries.
//!
//! The format is described field by field in `docs/assets.md`.
#![warn(missing_docs)]

mod bake;
mod error;
mod fetch;
mod http;
mod index;
pub mod sample;
mod serve;
mod store;

pub use bake::{BakeReport, bake};
pub use error::{BakeError, FetchError, IndexError, StoreError};
pub use fetch::{FetchOptions, FetchReport, Progress, fetch};
pub use http::{HttpClient, Response};
pub use index::{
    ChunkEntry, ChunkParams, ENTRY_LEN, HEADER_LEN, Index, MAX_CHUNKS, MAX_FILE_SIZE,
    MAX_INDEX_BYTES, TRAILER_LEN, VERSION, compressed_bound,
};
pub use serve::{immutable_response, router};
pub use store::{ChunkStore, DiskStore};

use std::fmt;

/// A BLAKE3 hash: a chunk's address, or a whole file's hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId(pub [u8; 32]);

impl ChunkId {
    /// The BLAKE3 of `data`.
    pub fn of(data: &[u8]) -> ChunkId {
        ChunkId(*blake3::hash(data).as_bytes())
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// Parses 64 hex characters; `None` for anything else.
    pub fn from_hex(s: &str) -> Option<ChunkId> {
        if s.len() != 64 {
            return None;
        }
        blake3::Hash::from_hex(s)
            .ok()
            .map(|h| ChunkId(*h.as_bytes()))
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({})", &self.to_hex()[..16])
    }
}
