//! Topic fan-out for the WebSocket endpoint: connections subscribe to `zone:<id>` topics and
//! [`Hub::publish`] hands a serialised message to every subscriber's bounded queue.
//!
//! A full queue drops that message for that subscriber (counted and logged) rather than
//! blocking the publisher: a slow client must never stall heartbeats.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};

/// Messages queued per connection before new ones are dropped.
pub const QUEUE_DEPTH: usize = 64;

/// A serialised push message.
pub type Message = Arc<str>;

/// Topic registry.
#[derive(Debug)]
pub struct Hub {
    topics: Mutex<HashMap<String, HashMap<u64, mpsc::Sender<Message>>>>,
    next_conn: AtomicU64,
    dropped: AtomicU64,
    /// Open sessions (between [`Hub::connect`] and [`Hub::disconnect`]).
    sessions: watch::Sender<usize>,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            topics: Mutex::default(),
            next_conn: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            sessions: watch::Sender::new(0),
        }
    }
}

impl Hub {
    /// A fresh connection id and the receiving end of its queue.
    pub fn connect(&self) -> (u64, mpsc::Sender<Message>, mpsc::Receiver<Message>) {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        self.sessions.send_modify(|n| *n += 1);
        (self.next_conn.fetch_add(1, Ordering::Relaxed), tx, rx)
    }

    /// Subscribes connection `conn` to `topic`; false if it already was.
    pub fn subscribe(&self, conn: u64, topic: &str, tx: &mpsc::Sender<Message>) -> bool {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        topics
            .entry(topic.to_owned())
            .or_default()
            .insert(conn, tx.clone())
            .is_none()
    }

    /// Unsubscribes; false if it was not subscribed.
    pub fn unsubscribe(&self, conn: u64, topic: &str) -> bool {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        let Some(subs) = topics.get_mut(topic) else {
            return false;
        };
        let removed = subs.remove(&conn).is_some();
        if subs.is_empty() {
            topics.remove(topic);
        }
        removed
    }

    /// Drops every subscription of a closed connection.
    pub fn disconnect(&self, conn: u64) {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        topics.retain(|_, subs| {
            subs.remove(&conn);
            !subs.is_empty()
        });
        drop(topics);
        self.sessions.send_modify(|n| *n = n.saturating_sub(1));
    }

    /// Resolves once every connected session has disconnected (used at shutdown, so sessions
    /// get to send their Close frame before the process exits).
    pub async fn all_disconnected(&self) {
        let _ = self.sessions.subscribe().wait_for(|n| *n == 0).await;
    }

    /// Queues `message` for every subscriber of `topic`; returns how many got it.
    pub fn publish(&self, topic: &str, message: Message) -> usize {
        let topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        let Some(subs) = topics.get(topic) else {
            return 0;
        };
        let mut delivered = 0;
        for (conn, tx) in subs {
            match tx.try_send(message.clone()) {
                Ok(()) => delivered += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(conn, topic, "subscriber queue full, message dropped");
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        delivered
    }

    /// Number of subscribers of `topic`.
    pub fn subscribers(&self, topic: &str) -> usize {
        let topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        topics.get(topic).map_or(0, HashMap::len)
    }

    /// Topics that have at least one subscriber, sorted.
    pub fn topics(&self) -> Vec<String> {
        let topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<String> = topics.keys().cloned().collect();
        out.sort();
        out
    }

    /// Messages dropped so far because a queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_reaches_only_subscribers_and_full_queues_drop() {
        let hub = Hub::default();
        let (a, atx, mut arx) = hub.connect();
        let (b, btx, mut brx) = hub.connect();
        assert!(hub.subscribe(a, "zone:1", &atx), "first subscribe");
        assert!(!hub.subscribe(a, "zone:1", &atx), "duplicate subscribe");
        hub.subscribe(b, "zone:2", &btx);
        assert_eq!(hub.publish("zone:1", "m1".into()), 1, "one subscriber");
        assert_eq!(arx.try_recv().unwrap().as_ref(), "m1");
        assert!(brx.try_recv().is_err(), "b not subscribed to zone:1");
        for _ in 0..QUEUE_DEPTH + 3 {
            hub.publish("zone:2", "x".into());
        }
        assert_eq!(hub.dropped(), 3, "three over the queue depth were dropped");
        hub.disconnect(b);
        assert_eq!(hub.subscribers("zone:2"), 0, "disconnect clears topics");
        assert!(hub.unsubscribe(a, "zone:1"));
        assert_eq!(hub.publish("zone:1", "m2".into()), 0, "nobody left");
    }
}
