//! A backend served in this test process, around a store the test holds (to seed it directly
//! or to make it misbehave), on its own thread with a single-threaded runtime: one async
//! worker, so anything that blocks that worker stalls the whole server, as it would stall a
//! worker of the production runtime.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use fabric_backend::clock::SystemClock;
use fabric_backend::store::Store;
use fabric_backend::{Bound, Config};
use tokio::sync::oneshot;

/// A running in-process backend; stopped (gracefully) on drop.
pub struct InProcess {
    /// `127.0.0.1:<port>`.
    pub addr: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl InProcess {
    /// Serves `store` with `config` (its `listen` is replaced by a free loopback port).
    pub fn start(store: Arc<dyn Store>, mut config: Config) -> InProcess {
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let bound = Bound::bind_with(&config, store, Arc::new(SystemClock))
                    .await
                    .expect("bind");
                addr_tx.send(bound.local_addr()).expect("report address");
                bound
                    .serve(async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .expect("serve");
            });
        });
        let addr = addr_rx.recv().expect("server started").to_string();
        InProcess {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
