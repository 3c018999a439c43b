//! Memory bounds, measured with a counting global allocator (per thread, so parallel tests do
//! not disturb each other): a bake streams (live heap stays far below the file size), and a
//! decoder or a fetch refuses huge claimed sizes without allocating for them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Read;
use std::sync::Arc;

use fabric_assets::{
    ChunkParams, DiskStore, FetchError, FetchOptions, Index, IndexError, bake, fetch,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    static BIGGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(delta: isize, size: usize) {
    let _ = LIVE.try_with(|l| {
        let v = l.get() + delta;
        l.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
    let _ = BIGGEST.try_with(|b| b.set(b.get().max(size)));
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize, layout.size());
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as isize), 0);
        // SAFETY: ptr came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as isize - layout.size() as isize, new_size);
        // SAFETY: same contract as GlobalAlloc::realloc.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns (its result, peak live heap growth, largest single allocation) on this thread.
fn measure<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    let base = LIVE.with(|l| l.get());
    PEAK.with(|p| p.set(base));
    BIGGEST.with(|b| b.set(0));
    let r = f();
    let peak = PEAK.with(|p| p.get()) - base;
    (r, peak.max(0) as usize, BIGGEST.with(|b| b.get()))
}

/// An endless-looking input produced on the fly: `left` pseudo-random bytes, never in memory whole.
struct Generated {
    left: u64,
    x: u64,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for b in &mut buf[..n] {
            self.x ^= self.x << 13;
            self.x ^= self.x >> 7;
            self.x ^= self.x << 17;
            *b = (self.x >> 24) as u8;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[test]
fn a_bake_streams_the_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = DiskStore::open(dir.path()).expect("store");
    let size = 24u64 << 20;
    let (r, peak, biggest) = measure(|| {
        bake(
            Generated { left: size, x: 99 },
            ChunkParams::DEFAULT,
            &store,
        )
    });
    let r = r.expect("bake");
    assert_eq!(r.index.file_size, size, "whole input baked");
    assert!(
        peak > 64 << 10,
        "the counter sees the chunk buffers (peak {peak})"
    );
    assert!(
        peak < 8 << 20,
        "bake of a 24 MiB input peaked at {peak} live heap bytes"
    );
    assert!(
        biggest < 4 << 20,
        "largest single allocation {biggest} bytes"
    );
}

#[test]
fn decoding_a_huge_claim_allocates_nothing() {
    let mut header = vec![0u8; 96];
    header[..4].copy_from_slice(b"FAIX");
    header[4] = 1;
    header[8..12].copy_from_slice(&64u32.to_le_bytes());
    header[12..16].copy_from_slice(&64u32.to_le_bytes());
    header[16..20].copy_from_slice(&(16u32 << 20).to_le_bytes());
    header[20..28].copy_from_slice(&(64u64 << 30).to_le_bytes());
    header[60..64].copy_from_slice(&(1u32 << 20).to_le_bytes());
    let (r, peak, biggest) = measure(|| Index::decode(&header));
    assert!(
        matches!(r, Err(IndexError::Truncated { .. })),
        "a million claimed chunks in 96 bytes: {r:?}"
    );
    assert_eq!(
        (peak, biggest),
        (0, 0),
        "nothing allocated for the claimed entries"
    );
}

#[test]
fn a_fetch_refuses_a_huge_declared_index_without_reading_it() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = Arc::new(DiskStore::open(dir.path().join("cache")).expect("cache"));
    let out = dir.path().join("out.bin");
    let (err, _, biggest) = measure(|| {
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.expect("accept");
                let mut req = [0u8; 1024];
                let _ = s.read(&mut req).await;
                let head = "HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\nFAIX";
                let _ = s.write_all(head.as_bytes()).await;
            });
            fetch(
                &format!("http://{addr}/index/x"),
                cache,
                &out,
                &FetchOptions::default(),
                |_| {},
            )
            .await
        })
    });
    assert!(
        matches!(err, Err(FetchError::TooLarge { .. })),
        "expected TooLarge, got {err:?}"
    );
    assert!(
        biggest < 1 << 20,
        "largest allocation {biggest} bytes for a 100 GB claim"
    );
    assert!(!out.exists(), "no output");
}
