//! Asset delivery for Multiplayer Fabric: files are cut into content-defined chunks (FastCDC),
//! each compressed with zstd and addressed by the BLAKE3 of its uncompressed bytes; a versioned,
//! validated [`Index`] lists them. A [`ChunkStore`] keeps chunks and indexes ([`DiskStore`] on a
//! local disk, [`S3Store`] in an S3-compatible bucket), [`router`] serves them over HTTP with
//! immutable cache headers, ETags and byte ranges, and [`fetch`] rebuilds a file from an index URL, reusing verified chunks from a local
//! cache and downloading the rest in parallel with retries.
//!
//! The format is described field by field in `docs/assets.md`.
#![warn(missing_docs)]

mod bake;
mod error;
mod fetch;
mod http;
mod index;
mod s3;
pub mod sample;
mod serve;
mod store;

pub use bake::{BakeReport, bake};
pub use error::{BakeError, FetchError, IndexError, StoreError};
/// The SHA-256 of a server certificate, pinned for `https://` fetches ([`FetchOptions::cert_pins`]).
pub use fabric_net::cert::CertHash;
pub use fetch::{FetchOptions, FetchReport, Progress, fetch, fetch_index};
pub use http::{HttpClient, Response};
pub use index::{
    ChunkEntry, ChunkParams, ENTRY_LEN, HEADER_LEN, Index, MAX_CHUNKS, MAX_FILE_SIZE,
    MAX_INDEX_BYTES, TRAILER_LEN, VERSION, compressed_bound,
};
pub use s3::{S3Config, S3Store};
pub use serve::{immutable_response, router};
pub use store::{ChunkStore, DiskStore};

use std::fmt;

/// Bits of an asset id a client sees in an asset instance's payload word (the low ones).
pub const VISIBLE_ASSET_BITS: u32 = 24;

/// The asset id ([`ChunkId::asset_id`]) of the file whose BLAKE3 is `hash_hex` (64 hex
/// characters, as the backend lists it); `None` for anything else.
pub fn asset_id_of_hex(hash_hex: &str) -> Option<u64> {
    ChunkId::from_hex(hash_hex).map(|h| h.asset_id())
}

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

    /// The 64-bit asset id of a file whose BLAKE3 is `self`: its first 8 bytes, big-endian.
    /// This is THE definition of an asset id (the backend's `asset_id`, the id
    /// `CMD_INSTANCE_ASSET` carries); clients see its low [`VISIBLE_ASSET_BITS`] bits.
    pub fn asset_id(&self) -> u64 {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(first)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_asset_id_is_the_first_8_bytes_of_the_file_hash_big_endian() {
        let hex = "0123456789abcdeffedcba98765432100123456789abcdeffedcba9876543210";
        assert_eq!(asset_id_of_hex(hex), Some(0x0123_4567_89ab_cdef));
        let id = ChunkId::of(b"a tree");
        assert_eq!(asset_id_of_hex(&id.to_hex()), Some(id.asset_id()));
        assert_eq!(id.asset_id().to_be_bytes(), id.0[..8]);
        for bad in ["", "0123", &hex[1..], &format!("{}g", &hex[1..])] {
            assert_eq!(asset_id_of_hex(bad), None, "{bad:?}");
        }
    }
}
