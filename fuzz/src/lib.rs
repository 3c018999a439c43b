//! Shared pieces of the fuzz targets in `fuzz_targets/` (one per network-facing decoder).
//!
//! Every target links this crate, so every target runs under [`CappedAlloc`]: a decoder that
//! allocates from a length it has not received yet (a hostile `u32` length prefix, a chunk
//! size) aborts the run and leaves a crash artifact, even without a sanitizer. The inputs are a
//! few KiB, so no honest allocation comes near the cap.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Largest single allocation a target may make while decoding, in bytes.
pub const MAX_ALLOC: usize = 1 << 20;

/// The system allocator, refusing any single allocation above [`MAX_ALLOC`] (the refusal
/// aborts with "memory allocation of N bytes failed", which libFuzzer reports as a crash).
pub struct CappedAlloc;

// SAFETY: forwards to the system allocator unchanged, or returns null (a refusal), which the
// `GlobalAlloc` contract allows.
unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOC {
            return std::ptr::null_mut();
        }
        // SAFETY: same layout, passed through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOC {
            return std::ptr::null_mut();
        }
        // SAFETY: same layout, passed through.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_ALLOC {
            return std::ptr::null_mut();
        }
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: CappedAlloc = CappedAlloc;

/// Runs a future that never waits (its I/O reads from a byte slice) to completion.
///
/// # Panics
/// When the future returns `Pending`: a reader over a slice is always ready, so that would be
/// a decoder waiting for bytes it already has.
pub fn run_ready<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a decoder over an in-memory slice returned Pending"),
    }
}
