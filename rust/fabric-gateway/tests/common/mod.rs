//! Helpers shared by the gateway's tests: event waits with a deadline, pings.
#![allow(dead_code)]

use std::time::Duration;

use fabric_core::session_control::ControlMessage;
use fabric_net::{Client, ClientEvent};

pub async fn next(client: &mut Client) -> ClientEvent {
    tokio::time::timeout(Duration::from_secs(10), client.next_event())
        .await
        .expect("client event within 10 s")
        .expect("client event stream open")
}

/// Pings the gateway (datagrams may be lost: up to 50 tries, 100 ms apart); the pong's bytes.
pub async fn ping(client: &mut Client, id: &str) -> Option<bytes::Bytes> {
    let ping = ControlMessage::Ping { id: id.into() }.encode();
    for _ in 0..50 {
        client.send_datagram(&ping).unwrap();
        if let Ok(Some(ClientEvent::Datagram(d))) =
            tokio::time::timeout(Duration::from_millis(100), client.next_event()).await
        {
            return Some(d);
        }
    }
    None
}
