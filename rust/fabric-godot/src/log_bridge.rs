//! Warnings and errors of the network threads, shown in Godot's Output panel.
//!
//! `fabric-net` logs through `tracing` on its tokio threads, where Godot must not be called.
//! This layer keeps WARN and ERROR events in a small queue (at most [`CAPACITY`]; further ones
//! are counted and reported as dropped), and the main thread prints them with Godot's own
//! warning and error functions when a peer or a zone polls ([`drain_to_godot`]). Everything
//! still goes to standard error as well (the `fmt` layer), filtered by `RUST_LOG`.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use godot::prelude::*;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Most events waiting for the main thread.
pub const CAPACITY: usize = 256;

/// One queued event: whether it is an error (else a warning), and its text.
type Entry = (bool, String);

static QUEUE: Mutex<VecDeque<Entry>> = Mutex::new(VecDeque::new());
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// The `tracing` layer that queues WARN and ERROR events for the main thread.
#[derive(Debug, Default, Clone, Copy)]
pub struct GodotBridge;

impl<S: Subscriber> Layer<S> for GodotBridge {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::WARN {
            return;
        }
        let mut text = Text::default();
        event.record(&mut text);
        let line = format!(
            "{}: {}{}",
            event.metadata().target(),
            text.message,
            text.fields
        );
        push(level == Level::ERROR, line);
    }
}

fn push(error: bool, line: String) {
    let mut q = QUEUE.lock().unwrap_or_else(|p| p.into_inner());
    if q.len() >= CAPACITY {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    } else {
        q.push_back((error, line));
    }
}

/// The message and the other fields (` name=value`) of an event.
#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}

/// How many events wait for the main thread.
pub fn queued() -> usize {
    QUEUE.lock().unwrap_or_else(|p| p.into_inner()).len()
}

/// Takes every queued event, oldest first, and hands it to `sink` (`error`, text); a last
/// warning says how many were dropped because the queue was full.
pub fn drain(mut sink: impl FnMut(bool, &str)) {
    let entries: Vec<Entry> = {
        let mut q = QUEUE.lock().unwrap_or_else(|p| p.into_inner());
        if q.is_empty() && DROPPED.load(Ordering::Relaxed) == 0 {
            return;
        }
        q.drain(..).collect()
    };
    for (error, line) in &entries {
        sink(*error, line);
    }
    let dropped = DROPPED.swap(0, Ordering::Relaxed);
    if dropped > 0 {
        sink(
            false,
            &format!(
                "{dropped} more network warnings were dropped (more than {CAPACITY} between two polls)"
            ),
        );
    }
}

/// Prints the queued events with Godot's warning and error functions. Main thread only (it is
/// called from `FabricMMOGTransportPeer.poll()` and `FabricZone`'s frame).
pub fn drain_to_godot() {
    drain(|error, line| {
        if error {
            godot_error!("{line}");
        } else {
            godot_warn!("{line}");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::prelude::*;

    #[test]
    fn warnings_and_errors_of_other_threads_are_queued_for_the_main_thread() {
        let subscriber = tracing_subscriber::registry().with(GodotBridge);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("not shown: below WARN");
            tracing::warn!(session = 7, "refusing a session: {}", "server full");
            tracing::error!("something broke");
        });
        // Another thread's events reach the same queue.
        std::thread::spawn(|| {
            let subscriber = tracing_subscriber::registry().with(GodotBridge);
            tracing::subscriber::with_default(subscriber, || {
                tracing::warn!(target: "fabric_net::server", "from a network thread");
            });
        })
        .join()
        .unwrap();
        let mut got = Vec::new();
        drain(|error, line| got.push((error, line.to_owned())));
        let target = module_path!();
        assert_eq!(
            got,
            [
                (
                    false,
                    format!("{target}: refusing a session: server full session=7")
                ),
                (true, format!("{target}: something broke")),
                (
                    false,
                    "fabric_net::server: from a network thread".to_owned()
                ),
            ]
        );
        let mut again = 0;
        drain(|_, _| again += 1);
        assert_eq!(again, 0, "drained once");

        // A flood beyond the capacity is counted, not kept.
        for i in 0..CAPACITY + 5 {
            push(false, format!("w{i}"));
        }
        let mut lines = Vec::new();
        drain(|_, line| lines.push(line.to_owned()));
        assert_eq!(lines.len(), CAPACITY + 1);
        assert!(
            lines
                .last()
                .unwrap()
                .starts_with("5 more network warnings were dropped")
        );
    }
}
