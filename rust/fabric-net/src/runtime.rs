//! The one tokio runtime that carries every endpoint of a process that is not async itself
//! (a Godot process). Its threads never touch Godot objects.
//!
//! A Godot process unloads the extension library at exit: the runtime must be shut down before
//! that ([`shutdown`]), or its threads would run code that is no longer mapped.

use std::sync::Mutex;
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};

static RT: Mutex<Option<Runtime>> = Mutex::new(None);

/// A handle to the shared background runtime, starting it on first use (two worker threads
/// named `fabric-net`). After [`shutdown`], the next call starts a fresh runtime.
pub fn handle() -> Handle {
    let mut rt = RT.lock().unwrap_or_else(|e| e.into_inner());
    rt.get_or_insert_with(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fabric-net")
            .enable_all()
            .build()
            .expect("the fabric-net runtime starts (threads and timers are available)")
    })
    .handle()
    .clone()
}

/// The handle of the runtime the caller is in, or of the shared background runtime.
pub fn current_or_shared() -> Handle {
    Handle::try_current().unwrap_or_else(|_| handle())
}

/// Stops the shared runtime: its tasks are dropped (closing their sockets) and its threads
/// joined, waiting at most half a second. Call before the process unloads this code.
pub fn shutdown() {
    let rt = RT.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(rt) = rt {
        rt.shutdown_timeout(Duration::from_millis(500));
    }
}
