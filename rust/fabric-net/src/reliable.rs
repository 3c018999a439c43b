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

    /// Serves `data` and records the largest read buffer it was offered.
    struct Recording<'a> {
        data: &'a [u8],
        largest: usize,
    }

    impl AsyncRead for Recording<'_> {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            self.largest = self.largest.max(buf.remaining());
            let n = self.data.len().min(buf.remaining());
            buf.put_slice(&self.data[..n]);
            self.data = &self.data[n..];
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn an_announced_length_allocates_only_what_arrives() {
        // Found by `cargo fuzz run reliable_stream` (its allocator refuses anything over 1 MiB;
        // fuzz/seeds/reliable_stream/crash-alloc-announced-length): the buffer was
        // `vec![0; len]` from the 4-byte length, 16 MiB before a single byte arrived.
        let mut r = Recording {
            data: &[0x00, 0x00, 0x00, 0x01, b'a', b'b'],
            largest: 0,
        };
        let got = read_message(&mut r).await;
        assert!(
            matches!(&got, Err(StreamError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof),
            "a message cut short is an error: {got:?}"
        );
        assert!(
            r.largest <= 64 * 1024,
            "a 16 MiB announcement made a {}-byte buffer with 2 bytes received",
            r.largest
        );
        let mut msg = 3u32.to_le_bytes().to_vec();
        msg.extend_from_slice(b"xyz");
        let mut r = Recording {
            data: &msg,
            largest: 0,
        };
        assert_eq!(read_message(&mut r).await.unwrap(), Some(b"xyz".to_vec()));
    }
}
