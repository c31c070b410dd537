//! [`ProxyBody`]: the one body type of the proxy, for client responses and upstream requests.
//!
//! Empty, a full buffer, or frames pushed by a pump task through a bounded channel (the pump runs
//! the filter's body callbacks). It is `Send`, so the upstream client can take it. It must not
//! run filter code itself.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::mpsc;

/// The error a body yields (an aborted upstream or client stream).
pub(crate) type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// What a pump sends: a frame, or the error that aborts the stream.
pub(crate) type FrameResult = Result<Frame<Bytes>, BodyError>;

/// A request or response body.
#[derive(Debug)]
pub(crate) enum ProxyBody {
    /// No body.
    Empty,
    /// A complete body (taken on first poll).
    Full(Option<Bytes>),
    /// Frames from a pump task; ends when the sender is dropped.
    Channel(mpsc::Receiver<FrameResult>),
}

impl ProxyBody {
    /// A complete body.
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        if bytes.is_empty() {
            Self::Empty
        } else {
            Self::Full(Some(bytes))
        }
    }

    /// A channel body and its sender (capacity: a few frames, so a slow reader applies back-pressure).
    pub(crate) fn channel() -> (mpsc::Sender<FrameResult>, Self) {
        let (tx, rx) = mpsc::channel(4);
        (tx, Self::Channel(rx))
    }
}

impl http_body::Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<FrameResult>> {
        match &mut *self {
            Self::Empty => Poll::Ready(None),
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Channel(rx) => rx.poll_recv(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Empty | Self::Full(None) => true,
            Self::Full(Some(_)) | Self::Channel(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty | Self::Full(None) => SizeHint::with_exact(0),
            Self::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Self::Channel(_) => SizeHint::default(),
        }
    }
}
