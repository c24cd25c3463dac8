//! The admin API over TLS: the binary supplies the handshake
//! ([`AdminTls`]), and each connection runs it on first use ([`AdminIo`]),
//! so that it counts against the header deadline like a slow request head
//! and the accept loop never waits on a client.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A decrypted admin connection.
pub trait AdminStream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> AdminStream for T {}

/// A handshake in progress.
pub type Handshake = Pin<Box<dyn Future<Output = io::Result<Box<dyn AdminStream>>> + Send>>;

/// The server side of TLS for the admin listener, with the binary's
/// certificates. Offer only HTTP/1.1 by ALPN: the admin API speaks no other.
pub trait AdminTls: Send + Sync + 'static {
    /// Starts the handshake on an accepted connection.
    fn handshake(&self, stream: TcpStream) -> Handshake;
}

/// One admin connection: plain, or TLS once its handshake ends.
pub(super) enum AdminIo {
    Plain(TcpStream),
    Handshaking(Handshake),
    Tls(Box<dyn AdminStream>),
    Failed,
}

impl AdminIo {
    /// Drives the handshake, if one is running; `Ready(Ok)` once the
    /// stream can carry data.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Self::Handshaking(handshake) = self {
            match handshake.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(stream)) => *self = Self::Tls(stream),
                Poll::Ready(Err(error)) => {
                    *self = Self::Failed;
                    return Poll::Ready(Err(error));
                }
            }
        }
        match self {
            Self::Failed => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "TLS handshake failed",
            ))),
            _ => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncRead for AdminIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Err(error) = std::task::ready!(this.poll_ready(cx)) {
            return Poll::Ready(Err(error));
        }
        match this {
            Self::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Self::Tls(stream) => Pin::new(stream).poll_read(cx, buf),
            Self::Handshaking(_) | Self::Failed => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for AdminIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Err(error) = std::task::ready!(this.poll_ready(cx)) {
            return Poll::Ready(Err(error));
        }
        match this {
            Self::Plain(stream) => Pin::new(stream).poll_write(cx, data),
            Self::Tls(stream) => Pin::new(stream).poll_write(cx, data),
            Self::Handshaking(_) | Self::Failed => Poll::Ready(Ok(0)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Err(error) = std::task::ready!(this.poll_ready(cx)) {
            return Poll::Ready(Err(error));
        }
        match this {
            Self::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Self::Tls(stream) => Pin::new(stream).poll_flush(cx),
            Self::Handshaking(_) | Self::Failed => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this {
            Self::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Self::Tls(stream) => Pin::new(stream).poll_shutdown(cx),
            // Nothing was said yet: nothing to close cleanly.
            Self::Handshaking(_) | Self::Failed => Poll::Ready(Ok(())),
        }
    }
}
