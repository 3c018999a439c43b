//! Bake: stream a file through FastCDC, compress and store each chunk, and build its [`Index`].

use std::io::Read;

use crate::{BakeError, ChunkEntry, ChunkId, ChunkParams, ChunkStore, Index, MAX_FILE_SIZE};

/// zstd level for chunks: level 3 (zstd's default) compresses a 64 KiB chunk in well under a
/// millisecond; higher levels cost far more bake time for a few percent.
const ZSTD_LEVEL: i32 = 3;

/// What a bake did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BakeReport {
    /// The index, already stored under [`BakeReport::name`].
    pub index: Index,
    /// The name the index is stored under: the hex BLAKE3 of the file (content-addressed, so
    /// the URL never changes meaning and can be cached as immutable).
    pub name: String,
    /// Chunks that were new to the store.
    pub new_chunks: usize,
    /// Chunks the store already had (shared with an earlier version or repeated in the file).
    pub reused_chunks: usize,
}

/// Reads `input` to its end (one chunk in memory at a time), stores every chunk not yet in
/// `store`, stores the index and returns it.
pub fn bake<R: Read>(
    input: R,
    params: ChunkParams,
    store: &dyn ChunkStore,
) -> Result<BakeReport, BakeError> {
    let cdc = fastcdc::v2020::StreamCDC::new(
        input,
        params.min as usize,
        params.avg as usize,
        params.max as usize,
    );
    let mut whole = blake3::Hasher::new();
    let mut chunks = Vec::new();
    let (mut new_chunks, mut reused_chunks) = (0, 0);
    let mut file_size = 0u64;
    for item in cdc {
        let chunk = item.map_err(|e| match e {
            fastcdc::v2020::Error::IoError(io) => BakeError::Io(io),
            other => BakeError::Chunker(other.to_string()),
        })?;
        whole.update(&chunk.data);
        let id = ChunkId::of(&chunk.data);
        let size = chunk.data.len() as u32;
        let compressed = zstd::bulk::compress(&chunk.data, ZSTD_LEVEL).map_err(BakeError::Io)?;
        if store.has_chunk(&id) {
            reused_chunks += 1;
        } else {
            store.put_chunk(&id, &compressed, size)?;
            new_chunks += 1;
        }
        chunks.push(ChunkEntry {
            id,
            offset: file_size,
            size,
            compressed_size: compressed.len() as u32,
        });
        file_size += u64::from(size);
        if file_size > MAX_FILE_SIZE {
            return Err(BakeError::TooLarge);
        }
    }
    let file_hash = ChunkId(*whole.finalize().as_bytes());
    let index = Index {
        params,
        file_size,
        file_hash,
        chunks,
    };
    let name = file_hash.to_hex();
    store.put_index(&name, &index.encode())?;
    tracing::info!(%name, file_size, new_chunks, reused_chunks, "baked");
    Ok(BakeReport {
        index,
        name,
        new_chunks,
        reused_chunks,
    })
}
