//! The one tokio runtime that carries every endpoint of a process that is not async itself
//! (a Godot process). Its threads never touch Godot objects.

use std::sync::OnceLock;
use tokio::runtime::Runtime;

/// Returns the shared background runtime, starting it on first use (two worker threads named
/// `fabric-net`).
pub fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fabric-net")
            .enable_all()
            .build()
            .expect("the fabric-net runtime starts (threads and timers are available)")
    })
}
