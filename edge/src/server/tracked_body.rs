//! A response body that keeps its request counted as in flight on its
//! connection until hyper has sent it (or dropped it).

use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::{Body, Frame, SizeHint};

use super::connections::RequestGuard;

/// `inner`, holding the request's place on its connection.
#[derive(Debug)]
pub struct TrackedBody<B> {
    inner: B,
    _in_flight: RequestGuard,
}

impl<B> TrackedBody<B> {
    /// Wraps `inner` for the request `in_flight`.
    pub fn new(inner: B, in_flight: RequestGuard) -> Self {
        Self {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl<B: Body + Unpin> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
