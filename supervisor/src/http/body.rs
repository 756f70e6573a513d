//! The response body of every front-door answer: bytes held whole, or a
//! stream fed chunk by chunk through a bounded channel (large static files),
//! so memory per connection stays bounded whatever the size. A body may
//! carry the connection's [`InFlight`] mark, which keeps the connection
//! counted busy until the last byte is handed to the socket.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::sync::mpsc;

use super::conn::InFlight;

/// A response body.
pub struct Body {
    inner: Inner,
    in_flight: Option<InFlight>,
}

enum Inner {
    Full(Option<Bytes>),
    Stream {
        chunks: mpsc::Receiver<std::io::Result<Bytes>>,
        len: u64,
    },
}

impl Body {
    /// A body of these bytes.
    pub fn full(bytes: impl Into<Bytes>) -> Body {
        let bytes = bytes.into();
        Body {
            inner: Inner::Full((!bytes.is_empty()).then_some(bytes)),
            in_flight: None,
        }
    }

    /// No body.
    pub fn empty() -> Body {
        Body::full(Bytes::new())
    }

    /// A body of exactly `len` bytes arriving on `chunks`; an error ends the
    /// response early (the client sees a short body and a closed connection).
    pub fn stream(chunks: mpsc::Receiver<std::io::Result<Bytes>>, len: u64) -> Body {
        Body {
            inner: Inner::Stream { chunks, len },
            in_flight: None,
        }
    }

    /// Marks the connection busy until this body is done.
    pub fn hold(mut self, in_flight: InFlight) -> Body {
        self.in_flight = Some(in_flight);
        self
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Body {
        Body::full(b)
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        let polled = match &mut this.inner {
            Inner::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Inner::Stream { chunks, .. } => match chunks.poll_recv(cx) {
                Poll::Ready(Some(chunk)) => Poll::Ready(Some(chunk.map(Frame::data))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        };
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            // Done: the connection is no longer busy with this response.
            this.in_flight = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.inner, Inner::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Inner::Stream { len, .. } => SizeHint::with_exact(*len),
        }
    }
}
