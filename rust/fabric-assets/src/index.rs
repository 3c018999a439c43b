//! The asset index: which chunks, in which order, make a file, and the file's own hash and size.
//!
//! Binary, little-endian, version 1 (every field is described in `docs/assets.md`):
//!
//! ```text
//! 0   4   magic "FAIX"
//! 4   2   version (1)
//! 6   2   reserved (0)
//! 8   4   min chunk size     12  4  avg chunk size     16  4  max chunk size
//! 20  8   file size
//! 28  32  BLAKE3 of the whole file
//! 60  4   chunk count N
//! 64  40*N entries: BLAKE3 of the uncompressed chunk (32), size (4), compressed size (4)
//! end 32  BLAKE3 of every byte before it
//! ```
//!
//! [`Index::decode`] checks every claimed size and count against the limits and against the bytes
//! actually present before it allocates anything that depends on them.

use crate::{ChunkId, IndexError};

/// The four magic bytes at the start of every index.
pub const MAGIC: [u8; 4] = *b"FAIX";
/// The index format version this build writes and reads.
pub const VERSION: u16 = 1;
/// Bytes before the first entry.
pub const HEADER_LEN: usize = 64;
/// Bytes per chunk entry.
pub const ENTRY_LEN: usize = 40;
/// Bytes of the trailing checksum.
pub const TRAILER_LEN: usize = 32;
/// The largest file an index may describe (64 GiB).
pub const MAX_FILE_SIZE: u64 = 64 << 30;
/// The most chunks an index may list.
pub const MAX_CHUNKS: u32 = 1 << 20;
/// The largest index in bytes (what a fetcher accepts from a server).
pub const MAX_INDEX_BYTES: u64 =
    (HEADER_LEN + TRAILER_LEN) as u64 + MAX_CHUNKS as u64 * ENTRY_LEN as u64;
/// The smallest minimum chunk size an index may declare.
pub const MIN_CHUNK_FLOOR: u32 = 64;
/// The largest maximum chunk size an index may declare (16 MiB).
pub const MAX_CHUNK_CEILING: u32 = 16 << 20;

/// Content-defined chunking parameters, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkParams {
    /// No chunk (but the last) is smaller.
    pub min: u32,
    /// The size the chunker aims for.
    pub avg: u32,
    /// No chunk is larger.
    pub max: u32,
}

impl ChunkParams {
    /// 16 / 64 / 256 KiB, the casync and desync defaults: a ~50 MB export gives ~800 chunks
    /// (a 32 KB index), and a small edit re-sends about one average chunk.
    pub const DEFAULT: ChunkParams = ChunkParams {
        min: 16 << 10,
        avg: 64 << 10,
        max: 256 << 10,
    };

    fn validate(self) -> Result<(), IndexError> {
        let ChunkParams { min, avg, max } = self;
        if min < MIN_CHUNK_FLOOR || max > MAX_CHUNK_CEILING || min > avg || avg > max {
            return Err(IndexError::BadChunkParams { min, avg, max });
        }
        Ok(())
    }
}

impl Default for ChunkParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// One chunk of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkEntry {
    /// BLAKE3 of the uncompressed bytes; the chunk's address in a store.
    pub id: ChunkId,
    /// Where the chunk starts in the file.
    pub offset: u64,
    /// Uncompressed size.
    pub size: u32,
    /// Size of the zstd frame a store holds.
    pub compressed_size: u32,
}

/// A decoded, validated index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// The chunking parameters the file was baked with.
    pub params: ChunkParams,
    /// Size of the whole file.
    pub file_size: u64,
    /// BLAKE3 of the whole file.
    pub file_hash: ChunkId,
    /// The chunks in file order.
    pub chunks: Vec<ChunkEntry>,
}

/// The largest compressed size accepted for a chunk of `size` bytes (zstd's worst case plus margin).
pub fn compressed_bound(size: u32) -> u32 {
    size.saturating_add(size / 128).saturating_add(1024)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn id_at(b: &[u8], at: usize) -> ChunkId {
    ChunkId(b[at..at + 32].try_into().expect("32 bytes"))
}

impl Index {
    /// Encodes the index (version 1) with its trailing checksum.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.chunks.len() * ENTRY_LEN + TRAILER_LEN);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&self.params.min.to_le_bytes());
        out.extend_from_slice(&self.params.avg.to_le_bytes());
        out.extend_from_slice(&self.params.max.to_le_bytes());
        out.extend_from_slice(&self.file_size.to_le_bytes());
        out.extend_from_slice(&self.file_hash.0);
        out.extend_from_slice(&(self.chunks.len() as u32).to_le_bytes());
        for c in &self.chunks {
            out.extend_from_slice(&c.id.0);
            out.extend_from_slice(&c.size.to_le_bytes());
            out.extend_from_slice(&c.compressed_size.to_le_bytes());
        }
        let sum = blake3::hash(&out);
        out.extend_from_slice(sum.as_bytes());
        out
    }

    /// Decodes and validates an index. Claimed sizes and counts are checked against the limits and
    /// the bytes present before any allocation that depends on them.
    pub fn decode(b: &[u8]) -> Result<Index, IndexError> {
        let have = b.len() as u64;
        if b.len() < HEADER_LEN {
            if b.len() >= 4 && b[..4] != MAGIC {
                return Err(IndexError::BadMagic);
            }
            return Err(IndexError::Truncated {
                needed: HEADER_LEN as u64,
                have,
            });
        }
        if b[..4] != MAGIC {
            return Err(IndexError::BadMagic);
        }
        let version = u16_at(b, 4);
        if version != VERSION || u16_at(b, 6) != 0 {
            return Err(IndexError::UnsupportedVersion(version));
        }
        let params = ChunkParams {
            min: u32_at(b, 8),
            avg: u32_at(b, 12),
            max: u32_at(b, 16),
        };
        params.validate()?;
        let file_size = u64_at(b, 20);
        if file_size > MAX_FILE_SIZE {
            return Err(IndexError::FileTooLarge(file_size));
        }
        let file_hash = id_at(b, 28);
        let count = u32_at(b, 60);
        // Every chunk but the last is at least `min` bytes and none exceeds `max`.
        let most = file_size.div_ceil(u64::from(params.min));
        let least = file_size.div_ceil(u64::from(params.max));
        let c = u64::from(count);
        if count > MAX_CHUNKS || c > most || c < least {
            return Err(IndexError::TooManyChunks {
                count: c,
                file_size,
            });
        }
        let needed = (HEADER_LEN + TRAILER_LEN) as u64 + c * ENTRY_LEN as u64;
        if have < needed {
            return Err(IndexError::Truncated { needed, have });
        }
        if have > needed {
            return Err(IndexError::TrailingBytes {
                extra: have - needed,
            });
        }
        let body = b.len() - TRAILER_LEN;
        if blake3::hash(&b[..body]).as_bytes()[..] != b[body..] {
            return Err(IndexError::ChecksumMismatch);
        }
        let mut chunks = Vec::with_capacity(count as usize);
        let mut offset = 0u64;
        for i in 0..count {
            let at = HEADER_LEN + i as usize * ENTRY_LEN;
            let size = u32_at(b, at + 32);
            let compressed_size = u32_at(b, at + 36);
            if size == 0 || size > params.max {
                return Err(IndexError::BadChunkSize {
                    index: i,
                    size,
                    max: params.max,
                });
            }
            if compressed_size == 0 || compressed_size > compressed_bound(size) {
                return Err(IndexError::BadCompressedSize {
                    index: i,
                    size: compressed_size,
                });
            }
            chunks.push(ChunkEntry {
                id: id_at(b, at),
                offset,
                size,
                compressed_size,
            });
            offset += u64::from(size);
        }
        if offset != file_size {
            return Err(IndexError::SizeMismatch {
                sum: offset,
                file_size,
            });
        }
        Ok(Index {
            params,
            file_size,
            file_hash,
            chunks,
        })
    }

    /// Sum of the compressed chunk sizes: what a cold fetch downloads besides the index.
    pub fn compressed_size(&self) -> u64 {
        self.chunks
            .iter()
            .map(|c| u64::from(c.compressed_size))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Index {
        let a = ChunkEntry {
            id: ChunkId([1; 32]),
            offset: 0,
            size: 20_000,
            compressed_size: 900,
        };
        let b = ChunkEntry {
            id: ChunkId([2; 32]),
            offset: 20_000,
            size: 100,
            compressed_size: 50,
        };
        Index {
            params: ChunkParams::DEFAULT,
            file_size: 20_100,
            file_hash: ChunkId([9; 32]),
            chunks: vec![a, b],
        }
    }

    #[test]
    fn round_trip_and_layout() {
        let idx = sample();
        let bytes = idx.encode();
        assert_eq!(
            bytes.len(),
            HEADER_LEN + 2 * ENTRY_LEN + TRAILER_LEN,
            "encoded length"
        );
        assert_eq!(
            &bytes[..8],
            b"FAIX\x01\x00\x00\x00",
            "magic, version, reserved"
        );
        assert_eq!(
            &bytes[20..28],
            &20_100u64.to_le_bytes(),
            "file size at offset 20"
        );
        assert_eq!(
            &bytes[60..64],
            &2u32.to_le_bytes(),
            "chunk count at offset 60"
        );
        assert_eq!(Index::decode(&bytes), Ok(idx), "decode(encode(x)) == x");
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert!(
                Index::decode(&bytes[..len]).is_err(),
                "prefix of {len} bytes accepted"
            );
        }
    }

    #[test]
    fn bad_fields_are_named() {
        let good = sample().encode();
        let mut v = good.clone();
        v[4] = 2;
        assert_eq!(Index::decode(&v), Err(IndexError::UnsupportedVersion(2)));
        let mut v = good.clone();
        v[60..64].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(
            matches!(Index::decode(&v), Err(IndexError::TooManyChunks { .. })),
            "huge count"
        );
        let mut v = good.clone();
        v[20..28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(Index::decode(&v), Err(IndexError::FileTooLarge(u64::MAX)));
        let mut v = good.clone();
        v[70] ^= 1;
        assert_eq!(
            Index::decode(&v),
            Err(IndexError::ChecksumMismatch),
            "flipped id byte"
        );
        let mut v = good;
        v.push(0);
        assert_eq!(
            Index::decode(&v),
            Err(IndexError::TrailingBytes { extra: 1 })
        );
    }

    #[test]
    fn sizes_must_add_up() {
        let mut idx = sample();
        idx.file_size = 20_101;
        assert_eq!(
            Index::decode(&idx.encode()),
            Err(IndexError::SizeMismatch {
                sum: 20_100,
                file_size: 20_101
            })
        );
        let mut idx = sample();
        idx.chunks[1].compressed_size = 5_000;
        assert!(matches!(
            Index::decode(&idx.encode()),
            Err(IndexError::BadCompressedSize { index: 1, .. })
        ));
    }
}
