//! One worker thread: a current-thread runtime and `LocalSet`, an accept loop on its copy of the
//! listener, and hyper's HTTP/1 server per connection with Go's limits (1 MiB headers, no
//! timeouts, upgrades on). It must not look at requests beyond handing them to `exchange`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::listen::Bound;
use super::{Shared, Worker, exchange};
use crate::errors::{ServeError, errno_text};
use crate::host::{HostError, Plugin};

/// Go's `DefaultMaxHeaderBytes` (1 MiB) plus its 4 KiB slack.
const MAX_HEADER_BYTES: usize = (1 << 20) + 4096;

/// A worker's own copy of the listening socket.
#[derive(Debug)]
pub(crate) enum Listener {
    /// TCP.
    Tcp(std::net::TcpListener),
    /// Unix socket.
    Unix(std::os::unix::net::UnixListener),
}

impl Listener {
    /// A duplicate of `bound`'s socket for one worker.
    pub(crate) fn try_clone(bound: &Bound) -> std::io::Result<Self> {
        Ok(match bound {
            Bound::Tcp(l) => Self::Tcp(l.try_clone()?),
            Bound::Unix(l, _) => Self::Unix(l.try_clone()?),
        })
    }
}

/// The connection facts the request path needs.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ConnInfo {
    /// The client address (`None` on a unix socket).
    pub(crate) peer: Option<SocketAddr>,
    /// The local address.
    pub(crate) local: Option<SocketAddr>,
}

/// Runs one worker until its runtime fails; reports VM start-up on `ready` first.
pub(crate) fn run_worker(
    listener: Listener,
    plugin: Arc<Plugin>,
    shared: Arc<Shared>,
    ready: &std::sync::mpsc::Sender<Result<(), HostError>>,
) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ServeError::Worker(errno_text(&e)))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let worker = match Worker::start(plugin, shared) {
            Ok(worker) => {
                let _ = ready.send(Ok(()));
                worker
            }
            Err(e) => {
                let text = e.to_string();
                let _ = ready.send(Err(e));
                return Err(ServeError::Worker(text));
            }
        };
        accept_loop(listener, worker).await
    })
}

async fn accept_loop(listener: Listener, worker: Rc<Worker>) -> Result<(), ServeError> {
    let fail = |e: std::io::Error| ServeError::Worker(errno_text(&e));
    match listener {
        Listener::Tcp(l) => {
            l.set_nonblocking(true).map_err(fail)?;
            let l = tokio::net::TcpListener::from_std(l).map_err(fail)?;
            loop {
                match l.accept().await {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let info = ConnInfo {
                            peer: Some(peer),
                            local: stream.local_addr().ok(),
                        };
                        let worker = worker.clone();
                        tokio::task::spawn_local(async move {
                            if h2_preface(&stream).await {
                                reject_h2(stream).await;
                            } else {
                                serve_connection(stream, info, worker).await;
                            }
                        });
                    }
                    Err(e) => accept_error(&e).await,
                }
            }
        }
        Listener::Unix(l) => {
            l.set_nonblocking(true).map_err(fail)?;
            let l = tokio::net::UnixListener::from_std(l).map_err(fail)?;
            loop {
                match l.accept().await {
                    Ok((stream, _)) => {
                        tokio::task::spawn_local(serve_connection(
                            stream,
                            ConnInfo::default(),
                            worker.clone(),
                        ));
                    }
                    Err(e) => accept_error(&e).await,
                }
            }
        }
    }
}

/// Go's `Serve` loop: log, back off briefly, keep accepting.
async fn accept_error(e: &std::io::Error) {
    tracing::error!("http: Accept error: {}; retrying in 100ms", errno_text(e));
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// True when the connection starts with the HTTP/2 preface (`PRI * HTTP/2.0`).
async fn h2_preface(stream: &tokio::net::TcpStream) -> bool {
    let mut buf = [0u8; 4];
    matches!(stream.peek(&mut buf).await, Ok(4)) && &buf == b"PRI "
}

/// Go answers the HTTP/2 preface on an HTTP/1-only server with a plain 400.
async fn reject_h2(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt as _;
    let reply = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request";
    let _ = stream.write_all(reply).await;
    let _ = stream.shutdown().await;
}

/// hyper's HTTP/1 server configured like Go's `http.Server` for kubectl proxy.
pub(crate) fn http1_builder() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .title_case_headers(true)
        .max_header_size(MAX_HEADER_BYTES)
        .max_buf_size(MAX_HEADER_BYTES + 64 * 1024)
        .max_headers(512);
    builder
}

async fn serve_connection<S>(stream: S, info: ConnInfo, worker: Rc<Worker>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let _open = crate::gauges::CONNECTIONS_OPEN.hold();
    let service = service_fn(move |req| {
        let worker = worker.clone();
        async move { Ok::<_, Infallible>(exchange::handle(worker, info, req).await) }
    });
    if let Err(e) = http1_builder()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await
    {
        tracing::debug!("connection: {e}");
    }
}
