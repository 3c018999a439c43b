//! Typed errors of the asset pipeline: one enum per stage (index decoding, store, fetch).

use crate::ChunkId;

/// Why an index was refused by [`crate::Index::decode`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IndexError {
    /// Fewer bytes than the fixed header or than the entries the header announces.
    #[error("index truncated: need {needed} bytes, have {have}")]
    Truncated {
        /// Bytes the header says the index has.
        needed: u64,
        /// Bytes actually present.
        have: u64,
    },
    /// More bytes than the header and entries account for.
    #[error("index has {extra} trailing bytes")]
    TrailingBytes {
        /// Bytes after the last entry.
        extra: u64,
    },
    /// The first four bytes are not `FAIX`.
    #[error("not a fabric asset index (bad magic)")]
    BadMagic,
    /// A format version this build does not read.
    #[error("unsupported index version {0}")]
    UnsupportedVersion(u16),
    /// The header claims a file larger than [`crate::MAX_FILE_SIZE`].
    #[error("index claims a file of {0} bytes, over the limit")]
    FileTooLarge(u64),
    /// The header claims more chunks than the file size allows or than [`crate::MAX_CHUNKS`].
    #[error("index claims {count} chunks for a file of {file_size} bytes")]
    TooManyChunks {
        /// Claimed chunk count.
        count: u64,
        /// Claimed file size.
        file_size: u64,
    },
    /// The chunking parameters in the header are out of range or out of order.
    #[error("bad chunking parameters min {min} avg {avg} max {max}")]
    BadChunkParams {
        /// Minimum chunk size.
        min: u32,
        /// Average chunk size.
        avg: u32,
        /// Maximum chunk size.
        max: u32,
    },
    /// A chunk entry has size 0 or a size above the maximum chunk size.
    #[error("chunk {index} has size {size}, outside 1..={max}")]
    BadChunkSize {
        /// Position of the chunk in the index.
        index: u32,
        /// Its claimed uncompressed size.
        size: u32,
        /// The index's maximum chunk size.
        max: u32,
    },
    /// A chunk's compressed size is 0 or far above its uncompressed size.
    #[error("chunk {index} has compressed size {size}, outside the allowed range")]
    BadCompressedSize {
        /// Position of the chunk in the index.
        index: u32,
        /// Its claimed compressed size.
        size: u32,
    },
    /// The chunk sizes do not add up to the file size.
    #[error("chunk sizes add up to {sum}, the index says the file has {file_size} bytes")]
    SizeMismatch {
        /// Sum of the chunk sizes.
        sum: u64,
        /// File size in the header.
        file_size: u64,
    },
    /// The trailing checksum over the index bytes does not match.
    #[error("index checksum mismatch")]
    ChecksumMismatch,
}

/// Errors of a [`crate::ChunkStore`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing the disk failed.
    #[error("store i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The compressed bytes did not decompress (or decompressed past the allowed size).
    #[error("chunk {0} does not decompress")]
    Corrupt(ChunkId),
    /// The bytes decompress but hash to a different id or have the wrong length.
    #[error("chunk {expected} failed verification (content hashes to {actual})")]
    HashMismatch {
        /// The id the chunk was stored or requested under.
        expected: ChunkId,
        /// The hash of what was actually there.
        actual: ChunkId,
    },
    /// An index name with characters other than `[A-Za-z0-9._-]`, or empty, or starting with a dot.
    #[error("bad index name {0:?}")]
    BadName(String),
    /// The index bytes do not decode.
    #[error("index does not decode: {0}")]
    Index(#[from] IndexError),
    /// An S3-compatible object store refused or failed a request, or is misconfigured.
    #[error("object store: {0}")]
    S3(String),
}

/// Errors of [`crate::fetch`].
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL is not `http://host[:port]/path` or `https://host[:port]/path`.
    #[error("unsupported URL {0:?}: expected http://host[:port]/path or https://host[:port]/path")]
    BadUrl(String),
    /// The origin cannot be used as given: `https://` without a pinned certificate hash, or a
    /// pin for a plain `http://` origin.
    #[error("{0}")]
    Endpoint(String),
    /// Connecting, sending or receiving failed after every retry.
    #[error("{url}: {reason} (after {attempts} attempts)")]
    Http {
        /// What was being fetched.
        url: String,
        /// The last failure.
        reason: String,
        /// How many times it was tried.
        attempts: u32,
    },
    /// The index was refused.
    #[error("index {url}: {source}")]
    Index {
        /// Where it came from.
        url: String,
        /// Why it was refused.
        source: IndexError,
    },
    /// The server sent more bytes than the index or the limit allows.
    #[error("{url}: body over the limit of {limit} bytes")]
    TooLarge {
        /// What was being fetched.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// A chunk kept failing verification after every retry.
    #[error("chunk {id} failed verification after {attempts} attempts: {reason}")]
    BadChunk {
        /// The chunk.
        id: ChunkId,
        /// How many times it was fetched.
        attempts: u32,
        /// The last failure.
        reason: String,
    },
    /// The assembled file does not hash to the index's file hash.
    #[error("assembled file hashes to {actual}, the index says {expected}")]
    FileHashMismatch {
        /// From the index.
        expected: ChunkId,
        /// Of the assembled bytes.
        actual: ChunkId,
    },
    /// The local cache failed.
    #[error("cache: {0}")]
    Store(#[from] StoreError),
    /// Writing the output failed.
    #[error("output i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Errors of [`crate::bake`].
#[derive(Debug, thiserror::Error)]
pub enum BakeError {
    /// Reading the input failed.
    #[error("reading input: {0}")]
    Io(#[from] std::io::Error),
    /// The chunker failed.
    #[error("chunker: {0}")]
    Chunker(String),
    /// The input is larger than [`crate::MAX_FILE_SIZE`].
    #[error("input over the file size limit")]
    TooLarge,
    /// Storing a chunk or the index failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}
