//! Reliable messages on a QUIC stream: each message is a little-endian `u32` length followed by
//! that many bytes. Lengths above [`MAX_MESSAGE_LEN`] end the session (a peer that sends one is
//! broken or hostile); a stream that ends in the middle of a message is reported as closed.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest reliable message, in bytes (16 MiB, like `ENetMultiplayerPeer`).
pub const MAX_MESSAGE_LEN: usize = 16 * 1024 * 1024;

/// Why a reliable stream stopped.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The peer announced a message longer than [`MAX_MESSAGE_LEN`].
    #[error("peer announced a {0}-byte message, the limit is {MAX_MESSAGE_LEN}")]
    TooLong(usize),
    /// Reading or writing failed, or the stream ended.
    #[error("stream ended: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one message; `Ok(None)` when the stream ended cleanly between messages.
pub async fn read_message<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Vec<u8>>, StreamError> {
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
    // Grown as the bytes arrive (read_to_end doubles from at most 64 KiB), never allocated from
    // the announced length: a peer that announces 16 MiB and sends nothing costs nothing.
    let mut buf = Vec::with_capacity(len.min(64 * 1024));
    r.take(len as u64).read_to_end(&mut buf).await?;
    if buf.len() < len {
        return Err(StreamError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(Some(buf))
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
    async fn an_announced_length_allocates_only_what_arrives() {
        // The buffer was `vec![0; len]` from the 4-byte length before any byte arrived. The
        // allocation itself is checked by `cargo fuzz run reliable_stream` (its allocator aborts
        // on anything over 1 MiB; fuzz/seeds/reliable_stream/announce-16mib is this input).
        let mut stream: &[u8] = &[0xff, 0xff, 0xff, 0x00, b'a', b'b'];
        let r = read_message(&mut stream).await;
        assert!(
            matches!(&r, Err(StreamError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof),
            "{r:?}"
        );
    }
}
