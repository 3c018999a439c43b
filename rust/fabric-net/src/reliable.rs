//! Reliable messages on a QUIC stream: each message is a little-endian `u32` length followed by
//! that many bytes. Lengths above [`MAX_MESSAGE_LEN`] end the session (a peer that sends one is
//! broken or hostile); a stream that ends in the middle of a message is reported as closed.
//!
//! A message's buffer grows as its bytes arrive ([`READ_CHUNK`] at a time), never from the
//! announced length alone, and those bytes can be counted against a session's budget of
//! partial-message bytes ([`read_message_within`]).

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::budget::{Budget, Charge};

/// Bytes a reader allocates ahead of their arrival, at most.
pub const READ_CHUNK: usize = 64 * 1024;

/// Largest reliable message, in bytes (16 MiB, like `ENetMultiplayerPeer`).
pub const MAX_MESSAGE_LEN: usize = 16 * 1024 * 1024;

/// Why a reliable stream stopped.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The peer announced a message longer than [`MAX_MESSAGE_LEN`].
    #[error("peer announced a {0}-byte message, the limit is {MAX_MESSAGE_LEN}")]
    TooLong(usize),
    /// The session's partially received messages would hold more than their budget.
    #[error("partially received messages would exceed the session's budget of {0} bytes")]
    PartialBudget(usize),
    /// Reading or writing failed, or the stream ended.
    #[error("stream ended: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one message; `Ok(None)` when the stream ended cleanly between messages.
pub async fn read_message<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Vec<u8>>, StreamError> {
    Ok(read_message_within(r, None).await?.map(|(m, _)| m))
}

/// Reads one message, counting its bytes against `partial` (the session's budget of bytes in
/// messages not complete yet) while they arrive. The message comes with its charge: the bytes
/// go back to `partial` when the caller drops it (once the message is counted elsewhere) or
/// when the read fails.
pub async fn read_message_within<R: AsyncRead + Unpin>(
    r: &mut R,
    partial: Option<&Arc<Budget>>,
) -> Result<Option<(Vec<u8>, Option<Charge>)>, StreamError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_MESSAGE_LEN {
        return Err(StreamError::TooLong(len));
    }
    let mut held = partial.map(Charge::empty);
    let mut buf = Vec::with_capacity(len.min(READ_CHUNK));
    while buf.len() < len {
        let want = (len - buf.len()).min(READ_CHUNK);
        if let Some(h) = held.as_mut()
            && !h.try_grow(want)
        {
            return Err(StreamError::PartialBudget(partial.map_or(0, |p| p.limit())));
        }
        let start = buf.len();
        buf.resize(start + want, 0);
        r.read_exact(&mut buf[start..]).await?;
    }
    Ok(Some((buf, held)))
}

/// Writes one message (the caller checked its length).
pub async fn write_message<W: AsyncWrite + Unpin>(w: &mut W, msg: &[u8]) -> std::io::Result<()> {
    w.write_all(&(msg.len() as u32).to_le_bytes()).await?;
    w.write_all(msg).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_round_trip_and_oversize_is_refused() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        write_message(&mut a, b"hello").await.unwrap();
        write_message(&mut a, b"").await.unwrap();
        drop(a);
        assert_eq!(read_message(&mut b).await.unwrap(), Some(b"hello".to_vec()));
        assert_eq!(read_message(&mut b).await.unwrap(), Some(Vec::new()));
        assert_eq!(read_message(&mut b).await.unwrap(), None, "clean end");

        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&(MAX_MESSAGE_LEN as u32 + 1).to_le_bytes())
            .await
            .unwrap();
        assert!(matches!(
            read_message(&mut b).await,
            Err(StreamError::TooLong(n)) if n == MAX_MESSAGE_LEN + 1
        ));
    }

    #[tokio::test]
    async fn a_large_announcement_allocates_only_what_arrives_and_the_partial_budget_holds() {
        // 16 MiB announced, 10 bytes sent: the reader waits holding one chunk at most.
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        a.write_all(&(MAX_MESSAGE_LEN as u32).to_le_bytes())
            .await
            .unwrap();
        a.write_all(&[1; 10]).await.unwrap();
        let partial = Budget::new(3 * READ_CHUNK);
        let mut read = Box::pin(read_message_within(&mut b, Some(&partial)));
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), read.as_mut())
                .await
                .is_err(),
            "still waiting for the rest"
        );
        assert_eq!(partial.used(), READ_CHUNK, "one chunk held, not 16 MiB");
        drop(read);
        assert_eq!(partial.used(), 0, "a dropped read gives its bytes back");

        // A message larger than the partial budget ends the stream with a typed error.
        let (mut a, mut b) = tokio::io::duplex(1 << 20);
        write_message(&mut a, &vec![2; 4 * READ_CHUNK])
            .await
            .unwrap();
        assert!(matches!(
            read_message_within(&mut b, Some(&partial)).await,
            Err(StreamError::PartialBudget(n)) if n == 3 * READ_CHUNK
        ));
        assert_eq!(partial.used(), 0);
    }
}
