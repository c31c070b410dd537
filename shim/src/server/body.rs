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
    /// A channel whose first frame was already received ([`ProxyBody::primed`]); `None` when the
    /// pump ended without one.
    Primed(Option<Box<FrameResult>>, mpsc::Receiver<FrameResult>),
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

impl ProxyBody {
    /// Waits for a channel body's first frame, so that hyper writes the response head and the
    /// first bytes of the body with one `writev`, as Go's buffered `ResponseWriter` does (it
    /// holds the head until body bytes come or the handler ends). Other bodies are ready as is.
    pub(crate) async fn primed(self) -> Self {
        match self {
            Self::Channel(mut rx) => {
                let first = rx.recv().await.map(Box::new);
                Self::Primed(first, rx)
            }
            other => other,
        }
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
            Self::Primed(first, rx) => match first.take() {
                Some(frame) => Poll::Ready(Some(*frame)),
                None => rx.poll_recv(cx),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Empty | Self::Full(None) => true,
            Self::Full(Some(_)) | Self::Channel(_) | Self::Primed(..) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty | Self::Full(None) => SizeHint::with_exact(0),
            Self::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Self::Channel(_) | Self::Primed(..) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;

    use super::*;

    async fn collect(body: ProxyBody) -> Vec<u8> {
        body.collect().await.expect("body").to_bytes().to_vec()
    }

    #[tokio::test]
    async fn primed_body_keeps_every_frame_in_order() {
        let (tx, body) = ProxyBody::channel();
        let sender = tokio::spawn(async move {
            for part in ["one ", "two ", "three"] {
                tx.send(Ok(Frame::data(Bytes::from(part))))
                    .await
                    .expect("send");
            }
        });
        let primed = body.primed().await;
        assert!(matches!(primed, ProxyBody::Primed(Some(ref f), _) if f.is_ok()));
        assert_eq!(collect(primed).await, b"one two three");
        sender.await.expect("sender");
    }

    #[tokio::test]
    async fn primed_body_of_a_pump_that_sent_nothing_is_empty() {
        let (tx, body) = ProxyBody::channel();
        drop(tx);
        let primed = body.primed().await;
        assert!(matches!(primed, ProxyBody::Primed(None, _)));
        assert_eq!(collect(primed).await, b"");
    }

    #[tokio::test]
    async fn primed_body_passes_the_pumps_error_on() {
        let (tx, body) = ProxyBody::channel();
        tx.send(Err("upstream reset".into())).await.expect("send");
        let mut primed = body.primed().await;
        let err = primed
            .frame()
            .await
            .expect("a frame")
            .expect_err("the error");
        assert_eq!(err.to_string(), "upstream reset");
    }

    #[tokio::test]
    async fn other_bodies_are_primed_as_they_are() {
        assert!(matches!(ProxyBody::Empty.primed().await, ProxyBody::Empty));
        let full = ProxyBody::full("abc").primed().await;
        assert_eq!(collect(full).await, b"abc");
    }
}
