//! The client connection's byte stream: a `TcpStream` whose writes send
//! sealed cached bodies with `sendfile`, and whose reads and writes stamp
//! the connection's activity for the idle deadlines
//! ([`super::connections`]).
//!
//! hyper hands cleartext HTTP/1 responses to the stream as slices (head, then body).
//! A slice that lies inside a sealed body ([`crate::cache::sealed`]) is
//! sent from its memory file by the kernel, page references instead of a
//! copy; every other slice is written as usual. HTTP/2 frames are built in
//! hyper's own buffers and take the ordinary path.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use std::os::fd::AsRawFd;

use bytes::Bytes;
use nix::sys::sendfile::sendfile;
use nix::sys::socket::{MsgFlags, sendmsg};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use super::connections::Connection;
use crate::cache::sealed;

/// A client connection.
#[derive(Debug)]
pub struct ClientStream {
    inner: TcpStream,
    connection: Arc<Connection>,
    /// Bytes read off the socket before (past a PROXY header), read first.
    read_ahead: Bytes,
    /// Whether slices may be sealed bodies: not under TLS, whose records
    /// are built in its own buffers.
    sendfile: bool,
}

impl ClientStream {
    /// Wraps an accepted connection, tracked as `connection`, whose first
    /// bytes (`read_ahead`) were already read.
    pub fn new(inner: TcpStream, connection: Arc<Connection>, read_ahead: Bytes) -> Self {
        Self {
            inner,
            connection,
            read_ahead,
            sendfile: true,
        }
    }

    /// The stream under TLS: every write is ciphertext, never a cached body.
    pub fn under_tls(mut self) -> Self {
        self.sendfile = false;
        self
    }

    /// Sends `slice` (part of a sealed body) from its file; `None` when it is not one.
    fn try_sendfile(&self, slice: &[u8]) -> Option<io::Result<usize>> {
        let (file, offset) = sealed::find(slice)?;
        let mut offset = i64::try_from(offset).ok()?;
        Some(self.inner.try_io(Interest::WRITABLE, || {
            sendfile(
                &self.inner,
                sealed::descriptor(&file),
                Some(&mut offset),
                slice.len(),
            )
            .map_err(io::Error::from)
        }))
    }
}

impl ClientStream {
    /// Writes `bufs` with `MSG_MORE`: the kernel holds a partial segment
    /// back for the data that follows.
    fn send_more(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.inner.try_io(Interest::WRITABLE, || {
            sendmsg::<()>(
                self.inner.as_raw_fd(),
                bufs,
                &[],
                MsgFlags::from_bits_retain(nix::libc::MSG_MORE) | MsgFlags::MSG_NOSIGNAL,
                None,
            )
            .map_err(io::Error::from)
        })
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.read_ahead.is_empty() {
            let take = self.read_ahead.len().min(buf.remaining());
            let chunk = self.read_ahead.split_to(take);
            buf.put_slice(&chunk);
            self.connection.on_read();
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.connection.on_read();
        }
        result
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = self.write_slices(cx, bufs);
        if let Poll::Ready(Ok(written)) = &result
            && *written > 0
        {
            self.connection.on_write();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl ClientStream {
    fn write_slices(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if !self.sendfile || !sealed::any() {
            return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        }
        let first_sealed = bufs
            .iter()
            .position(|slice| !slice.is_empty() && sealed::find(slice).is_some());
        match first_sealed {
            None => Pin::new(&mut self.inner).poll_write_vectored(cx, bufs),
            // The head first, marked "more to come" so that the kernel puts
            // it in one segment with the start of the body; then, in the
            // same call when the socket takes more, the body from its file.
            Some(index) if index > 0 => {
                let head: usize = bufs[..index].iter().map(|slice| slice.len()).sum();
                let written = loop {
                    ready!(self.inner.poll_write_ready(cx))?;
                    match self.send_more(&bufs[..index]) {
                        Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                        result => break result?,
                    }
                };
                if written < head {
                    return Poll::Ready(Ok(written));
                }
                match self.try_sendfile(&bufs[index]) {
                    Some(Ok(sent)) => Poll::Ready(Ok(written + sent)),
                    _ => Poll::Ready(Ok(written)),
                }
            }
            Some(index) => loop {
                ready!(self.inner.poll_write_ready(cx))?;
                match self.try_sendfile(&bufs[index]) {
                    Some(Err(error)) if error.kind() == io::ErrorKind::WouldBlock => continue,
                    Some(result) => return Poll::Ready(result),
                    // Dropped from the registry meanwhile: cannot happen
                    // while hyper holds the slice, but write it anyway.
                    None => return Pin::new(&mut self.inner).poll_write(cx, &bufs[index]),
                }
            },
        }
    }
}
