//! A response body that keeps its request counted as in flight on its
//! connection until hyper has sent it (or dropped it), and records the
//! exchange ([`Exchange`]) then: bytes sent and whether all of them were.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Buf;
use hyper::body::{Body, Frame, SizeHint};

use super::connections::RequestGuard;
use super::exchange::Exchange;

/// `inner`, holding the request's place on its connection.
#[derive(Debug)]
pub struct TrackedBody<B> {
    inner: B,
    _in_flight: RequestGuard,
    exchange: Option<Exchange>,
    sent: u64,
    ended: bool,
}

impl<B: Body> TrackedBody<B> {
    /// Wraps `inner` for the request `in_flight`, recording `exchange`
    /// when done.
    pub fn new(inner: B, in_flight: RequestGuard, exchange: Exchange) -> Self {
        Self {
            // An empty body (HEAD, 304) is complete before it starts.
            ended: inner.is_end_stream(),
            inner,
            _in_flight: in_flight,
            exchange: Some(exchange),
            sent: 0,
        }
    }
}

impl<B: Body + Unpin> Body for TrackedBody<B>
where
    B::Data: Buf,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.sent += data.remaining() as u64;
                }
                // hyper stops polling a body whose length it knows once
                // that much was sent: the end is seen here, not as `None`.
                self.ended = self.inner.is_end_stream();
            }
            Poll::Ready(None) => self.ended = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for TrackedBody<B> {
    fn drop(&mut self) {
        if let Some(exchange) = self.exchange.take() {
            exchange.finish(self.sent, self.ended);
        }
    }
}
