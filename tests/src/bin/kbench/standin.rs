//! A fast TLS stand-in API server: it demands the bearer token and answers three kinds of
//! request, all HTTP/1.1 over TLS (the certificate comes from `tests::tls::Pki`):
//!
//! * `GET` `LIST_PATH` → 200 with a small `PodList` (the request-rate load);
//! * `GET` `LIST_PATH?watch=true` → 200 with an endless chunked stream of watch events;
//! * an `Upgrade` request to `TUNNEL_PATH` → 101, then every byte is echoed back (a
//!   port-forward-style tunnel).
//!
//! Anything without `Authorization: Bearer <token>` gets 401. It records nothing, so it stays
//! out of the measurement's way as far as possible.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// The path of the request-rate load and of the watch.
pub(crate) const LIST_PATH: &str = "/api/v1/namespaces/default/pods";
/// The path of the upgrade tunnel (not filtered by kubectl's default reject-paths).
pub(crate) const TUNNEL_PATH: &str = "/api/v1/namespaces/default/pods/bench/portforward";
/// The bearer token the stand-in demands.
pub(crate) const TOKEN: &str = "kbench-token-6f1d2c";

/// A running stand-in; it lives as long as the runtime it was started on.
pub(crate) struct StandIn {
    /// Where it listens (TLS).
    pub(crate) addr: SocketAddr,
}

/// The `PodList` answered to a list request (about 1 KiB, a typical small list).
fn list_body() -> Bytes {
    let item = r#"{"metadata":{"name":"bench-0","namespace":"default","uid":"6f1d2c7e-0000-4000-8000-000000000000","resourceVersion":"1","labels":{"app":"bench"}},"spec":{"containers":[{"name":"c","image":"registry.k8s.io/pause:3.10"}],"nodeName":"node-1"},"status":{"phase":"Running","podIP":"10.0.0.7"}}"#;
    let items = [item; 3].join(",");
    Bytes::from(format!(
        r#"{{"kind":"PodList","apiVersion":"v1","metadata":{{"resourceVersion":"1"}},"items":[{items}]}}"#
    ))
}

/// 64 KiB of newline-separated watch events, sent again and again.
fn watch_chunk() -> Bytes {
    let event = r#"{"type":"MODIFIED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"bench-0","namespace":"default","resourceVersion":"2"},"status":{"phase":"Running"}}}"#;
    let mut out = String::with_capacity(64 * 1024 + 256);
    while out.len() < 64 * 1024 {
        out.push_str(event);
        out.push('\n');
    }
    Bytes::from(out)
}

/// An endless body: the same chunk forever (until the client goes away).
struct Endless(Bytes);

impl Body for Endless {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(Some(Ok(Frame::data(self.0.clone()))))
    }

    fn is_end_stream(&self) -> bool {
        false
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// Either a full body or the endless watch.
enum Answer {
    Full(Full<Bytes>),
    Endless(Endless),
}

impl Body for Answer {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            Answer::Full(b) => Pin::new(b).poll_frame(cx),
            Answer::Endless(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Answer::Full(b) => b.is_end_stream(),
            Answer::Endless(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Answer::Full(b) => b.size_hint(),
            Answer::Endless(b) => b.size_hint(),
        }
    }
}

struct Content {
    list: Bytes,
    watch: Bytes,
    bearer: String,
}

fn full(status: StatusCode, content_type: &str, body: Bytes) -> Response<Answer> {
    let mut r = Response::new(Answer::Full(Full::new(body)));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}

fn answer(content: &Content, mut req: Request<Incoming>) -> Response<Answer> {
    let authorized = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == content.bearer.as_bytes());
    if !authorized {
        return full(
            StatusCode::UNAUTHORIZED,
            "application/json",
            Bytes::from_static(br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#),
        );
    }
    let path = req.uri().path();
    if req.headers().contains_key(http::header::UPGRADE) && path == TUNNEL_PATH {
        let proto = req
            .headers()
            .get(http::header::UPGRADE)
            .cloned()
            .unwrap_or_else(|| http::HeaderValue::from_static("SPDY/3.1"));
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = on_upgrade.await {
                let io = TokioIo::new(upgraded);
                let (mut rd, mut wr) = tokio::io::split(io);
                let _ = tokio::io::copy(&mut rd, &mut wr).await;
            }
        });
        let mut r = Response::new(Answer::Full(Full::new(Bytes::new())));
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        r.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("Upgrade"),
        );
        r.headers_mut().insert(http::header::UPGRADE, proto);
        return r;
    }
    if path != LIST_PATH {
        return full(
            StatusCode::NOT_FOUND,
            "application/json",
            Bytes::from_static(br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"not found","reason":"NotFound","code":404}"#),
        );
    }
    let watch = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    if watch {
        let mut r = Response::new(Answer::Endless(Endless(content.watch.clone())));
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        return r;
    }
    full(StatusCode::OK, "application/json", content.list.clone())
}

impl StandIn {
    /// Binds `127.0.0.1:0` and serves on the current tokio runtime.
    pub(crate) async fn start(tls: Arc<rustls::ServerConfig>) -> Result<StandIn> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the stand-in")?;
        let addr = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(tls);
        let content = Arc::new(Content {
            list: list_body(),
            watch: watch_chunk(),
            bearer: format!("Bearer {TOKEN}"),
        });
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let content = content.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(move |req| {
                        let r = answer(&content, req);
                        async move { Ok::<_, std::convert::Infallible>(r) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Ok(StandIn { addr })
    }
}
