//! A TCP stream wrapper that never raises `SIGPIPE`.
//!
//! Writing to a TCP connection the peer already closed raises `SIGPIPE`, which kills the process
//! unless it is ignored. Rust binaries ignore it at start-up, but this crate also runs inside a
//! Godot process (a GDExtension), which does not. `std`'s `send` passes `MSG_NOSIGNAL`, but
//! vectored writes (`writev`, which TLS and WebSocket writers prefer) do not. This wrapper
//! hides vectored writing, so every write goes through `send` with `MSG_NOSIGNAL`, without
//! touching the process-wide signal disposition.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A stream whose writes never use `writev` (see the module docs).
#[derive(Debug)]
pub(crate) struct NoSigPipe<S>(pub S);

impl<S: AsyncRead + Unpin> AsyncRead for NoSigPipe<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for NoSigPipe<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    // `poll_write_vectored` keeps its default (the first non-empty buffer via `poll_write`)
    // and `is_write_vectored` its default `false`.
}
