//! Forwarding to the API server the way kubectl's `UpgradeAwareHandler` over client-go's
//! transport does (kubectl-proxy.md §2.6): the request head is built from the filter's header list
//! (hop-by-hop headers dropped, `Te: trailers` kept, `X-Forwarded-For` appended, kubectl's
//! `User-Agent` default, `Accept-Encoding: gzip` added and the reply then decompressed), sent on
//! a pooled HTTP/1.1 connection (TLS from the kubeconfig), and transport failures are reported
//! with Go's error texts.
//!
//! It never routes (the server decides from the filter's header) and never sees credentials other
//! than as opaque headers the filter set.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::errors::{go_dial_error, go_lookup_error, go_tls_error};
use crate::host::HeaderList;
use crate::kubeconfig::Cluster;
use crate::server::body::ProxyBody;

/// The `User-Agent` sent when the client sent none: kubectl's form
/// (`kubectl/<version> (<os>/<arch>) kubernetes/<commit>`) with kproxy's version and `kproxy` as
/// the commit, so apiserver audit logs group it with kubectl clients.
pub fn default_user_agent() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    format!(
        "kubectl/v{} ({}/{arch}) kubernetes/kproxy",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS
    )
}

/// Go's `ReverseProxy` hop-by-hop list (plus `Proxy-Connection`).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes the hop-by-hop headers and those named in `Connection` (Go `removeHopByHopHeaders`).
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// True when the client asked for trailers (`Te` containing the token `trailers`).
fn wants_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
}

/// Appends `ip` to `X-Forwarded-For` (`prior, ip`), as one header.
pub(crate) fn append_forwarded_for(headers: &mut HeaderMap, ip: IpAddr) {
    let prior: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let value = if prior.is_empty() {
        ip.to_string()
    } else {
        format!("{}, {ip}", prior.join(", "))
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert("x-forwarded-for", value);
    }
}

/// True for Go's `httpstream.IsUpgradeRequest`: any `Connection` value containing `upgrade`.
pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|v| {
        v.as_bytes()
            .windows(7)
            .any(|w| w.eq_ignore_ascii_case(b"upgrade"))
    })
}

/// The method, path and headers of the filter's header list (pseudo-headers and `host` dropped).
pub(crate) fn split_head(list: HeaderList) -> (Method, String, HeaderMap) {
    let mut method = Method::GET;
    let mut path = String::from("/");
    let mut headers = HeaderMap::with_capacity(list.len());
    for (name, value) in list {
        match name.as_slice() {
            b":method" => method = Method::from_bytes(&value).unwrap_or(Method::GET),
            b":path" => path = String::from_utf8_lossy(&value).into_owned(),
            n if n.starts_with(b":") || n == b"host" => {}
            _ => {
                if let (Ok(n), Ok(v)) = (
                    HeaderName::from_bytes(&name),
                    HeaderValue::from_bytes(&value),
                ) {
                    headers.append(n, v);
                }
            }
        }
    }
    (method, path, headers)
}

/// The upstream URI `scheme://host:port<path>` for the filter's `:path`.
pub(crate) fn upstream_uri(cluster: &Cluster, path: &str) -> Result<Uri, String> {
    let mut parts = cluster.server.clone().into_parts();
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    parts.path_and_query = Some(
        path.parse()
            .map_err(|e| format!("invalid upstream path {path:?}: {e}"))?,
    );
    Uri::from_parts(parts).map_err(|e| e.to_string())
}

/// Options of an ordinary forwarded request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ForwardOptions {
    /// The client's IP for `X-Forwarded-For` (`None` on a unix socket).
    pub(crate) client_ip: Option<IpAddr>,
    /// `--disable-compression`.
    pub(crate) disable_compression: bool,
}

/// Rewrites an ordinary request's headers for the API server; returns true when
/// `Accept-Encoding: gzip` was added (the reply must then be decompressed).
pub(crate) fn prepare_headers(
    method: &Method,
    headers: &mut HeaderMap,
    host: &str,
    opts: ForwardOptions,
) -> bool {
    let trailers = wants_trailers(headers);
    remove_hop_by_hop(headers);
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if let Some(ip) = opts.client_ip {
        append_forwarded_for(headers, ip);
    }
    if !headers.contains_key(header::USER_AGENT)
        && let Ok(ua) = HeaderValue::from_str(&default_user_agent())
    {
        headers.insert(header::USER_AGENT, ua);
    }
    if let Ok(host) = HeaderValue::from_str(host) {
        headers.insert(header::HOST, host);
    }
    let add_gzip = !opts.disable_compression
        && *method != Method::HEAD
        && !headers.contains_key(header::ACCEPT_ENCODING)
        && !headers.contains_key(header::RANGE);
    if add_gzip {
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
    }
    add_gzip
}

/// Prepares an upstream response head: hop-by-hop headers dropped; when the proxy added gzip and
/// the reply is gzip, `Content-Encoding`/`Content-Length` dropped and true returned (decode it).
pub(crate) fn prepare_response_headers(headers: &mut HeaderMap, added_gzip: bool) -> bool {
    remove_hop_by_hop(headers);
    let gzip = added_gzip
        && headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    if gzip {
        headers.remove(header::CONTENT_ENCODING);
        headers.remove(header::CONTENT_LENGTH);
    }
    gzip
}

// === impl GzipDecoder ===

/// A streaming gzip decoder (multi-member, like Go's `gzip.Reader`).
pub(crate) struct GzipDecoder(flate2::write::MultiGzDecoder<Vec<u8>>);

impl std::fmt::Debug for GzipDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GzipDecoder")
    }
}

impl GzipDecoder {
    /// A fresh decoder.
    pub(crate) fn new() -> Self {
        Self(flate2::write::MultiGzDecoder::new(Vec::new()))
    }

    /// Feeds compressed bytes; returns what could be decompressed so far.
    pub(crate) fn push(&mut self, data: &[u8]) -> io::Result<Bytes> {
        use std::io::Write as _;
        self.0.write_all(data)?;
        self.0.flush()?;
        Ok(Bytes::from(std::mem::take(self.0.get_mut())))
    }

    /// Ends the stream; returns the remaining output.
    pub(crate) fn finish(&mut self) -> io::Result<Bytes> {
        self.0.try_finish()?;
        Ok(Bytes::from(std::mem::take(self.0.get_mut())))
    }
}

// === impl Stream ===

/// A connection to the API server, plain or TLS.
#[derive(Debug)]
pub(crate) enum Stream {
    /// `http://`.
    Plain(TcpStream),
    /// `https://`.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

/// A failed dial or TLS handshake, carrying Go's error text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DialError(pub String);

/// Dials the API server: TCP (IPv4 addresses first, Go's primary family for `localhost`), TCP
/// keep-alive as given (`None` = off), then TLS when the cluster has a TLS configuration.
pub(crate) async fn dial(
    cluster: &Cluster,
    keepalive: Option<Duration>,
) -> Result<Stream, DialError> {
    let host = cluster.server.host().unwrap_or("localhost");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let https = cluster.server.scheme_str() == Some("https");
    let port = cluster
        .server
        .port_u16()
        .unwrap_or(if https { 443 } else { 80 });
    let tcp = dial_tcp(bare, port, keepalive).await?;
    let Some(tls) = &cluster.tls else {
        return Ok(Stream::Plain(tcp));
    };
    tls_handshake(tls, cluster.tls_server_name.clone(), tcp).await
}

/// Go's `net.Dialer` as client-go configures it: resolve `host` (a bare name or IP, no
/// brackets), try IPv4 addresses first (Go's primary family for `localhost`), 30 s connect
/// timeout per address, no delay, TCP keep-alive as given (`None` = off). Errors carry Go's text.
pub(crate) async fn dial_tcp(
    host: &str,
    port: u16,
    keepalive: Option<Duration>,
) -> Result<TcpStream, DialError> {
    let mut addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| DialError(go_lookup_error(host)))?
            .collect(),
    };
    addrs.sort_by_key(|a| !a.is_ipv4());
    let mut first_error = None;
    let mut tcp = None;
    for addr in &addrs {
        match tokio::time::timeout(Duration::from_secs(30), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                tcp = Some(stream);
                break;
            }
            Ok(Err(e)) => {
                first_error.get_or_insert_with(|| go_dial_error(&addr.to_string(), &e));
            }
            Err(_) => {
                first_error.get_or_insert_with(|| format!("dial tcp {addr}: i/o timeout"));
            }
        }
    }
    let Some(tcp) = tcp else {
        return Err(DialError(
            first_error.unwrap_or_else(|| go_lookup_error(host)),
        ));
    };
    let _ = tcp.set_nodelay(true);
    let sock = socket2::SockRef::from(&tcp);
    let _ = match keepalive {
        Some(period) => sock.set_tcp_keepalive(
            &socket2::TcpKeepalive::new()
                .with_time(period)
                .with_interval(period),
        ),
        None => sock.set_keepalive(false),
    };
    Ok(tcp)
}

/// A TLS client handshake with Go's 10 s `TLSHandshakeTimeout` and Go's error texts.
pub(crate) async fn tls_handshake(
    tls: &Arc<rustls::ClientConfig>,
    name: rustls_pki_types::ServerName<'static>,
    tcp: TcpStream,
) -> Result<Stream, DialError> {
    let handshake = tokio_rustls::TlsConnector::from(tls.clone()).connect(name, tcp);
    match tokio::time::timeout(Duration::from_secs(10), handshake).await {
        Ok(Ok(stream)) => Ok(Stream::Tls(Box::new(stream))),
        Ok(Err(e)) => Err(DialError(go_tls_error(&e))),
        Err(_) => Err(DialError("net/http: TLS handshake timeout".to_owned())),
    }
}

// === impl Connector ===

/// The pooled client's connector: every URI goes to the one API server.
#[derive(Clone, Debug)]
pub(crate) struct Connector {
    cluster: Arc<Cluster>,
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = DialError;
    type Future = Pin<Box<dyn Future<Output = Result<TokioIo<Stream>, DialError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), DialError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let cluster = self.cluster.clone();
        // client-go's transport: 30 s TCP keep-alive on ordinary connections.
        Box::pin(async move {
            dial(&cluster, Some(Duration::from_secs(30)))
                .await
                .map(TokioIo::new)
        })
    }
}

// === impl Upstream ===

/// Idle upstream connections kept per host and worker. client-go keeps 25, which makes kubectl
/// proxy re-handshake TLS for most requests beyond 25 concurrent clients (its request rate at 128
/// connections falls below its rate at 32); 128 per worker keeps busy clients on warm
/// connections, and the idle timeout below closes them once the load is gone.
pub(crate) const POOL_MAX_IDLE_PER_HOST: usize = 128;

/// How long an idle upstream connection is kept. client-go says 90 s; hyper's pool reaps idle
/// connections on a timer of this period, so an idle connection may live up to twice as long:
/// 45 s keeps that worst case at Go's 90 s.
pub(crate) const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(45);

/// The API server and a pooled HTTP/1.1 client to it (one per worker).
#[derive(Clone, Debug)]
pub(crate) struct Upstream {
    client: Client<Connector, ProxyBody>,
}

impl Upstream {
    /// A client for `cluster`.
    pub(crate) fn new(cluster: Arc<Cluster>) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
            .http1_title_case_headers(true)
            .set_host(false)
            .build(Connector { cluster });
        Self { client }
    }

    /// Sends `req` (absolute URI); a failure is returned as Go's error text.
    pub(crate) async fn send(&self, req: Request<ProxyBody>) -> Result<Response<Incoming>, String> {
        self.client
            .request(req)
            .await
            .map_err(|e| go_client_error(&e))
    }
}

/// Go's text for a failed round trip: the dial/TLS error, `EOF` for a connection closed before
/// the response, or `net/http: HTTP/1.x transport connection broken: …`.
pub(crate) fn go_client_error(e: &hyper_util::client::legacy::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(dial) = err.downcast_ref::<DialError>() {
            return dial.0.clone();
        }
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() {
                return "EOF".to_owned();
            }
            return format!("net/http: HTTP/1.x transport connection broken: {h}");
        }
        source = err.source();
    }
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in pairs {
            m.append(
                HeaderName::from_bytes(n.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        m
    }

    fn dump(m: &HeaderMap) -> Vec<String> {
        let mut v: Vec<String> = m
            .iter()
            .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("?")))
            .collect();
        v.sort();
        v
    }

    #[track_caller]
    fn check(
        method: &Method,
        input: &[(&str, &str)],
        opts: ForwardOptions,
        want: &[&str],
        want_gzip: bool,
    ) {
        let mut headers = map(input);
        let gzip = prepare_headers(method, &mut headers, "api:6443", opts);
        assert_eq!(dump(&headers), want);
        assert_eq!(gzip, want_gzip);
    }

    const TCP: ForwardOptions = ForwardOptions {
        client_ip: Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
        disable_compression: false,
    };

    #[test]
    fn hop_by_hop_headers_are_dropped_and_te_trailers_kept() {
        let ua = format!("user-agent: {}", default_user_agent());
        check(
            &Method::GET,
            &[
                ("x-forwarded-for", "1.2.3.4"),
                ("forwarded", "for=1.2.3.4"),
                ("connection", "close, X-Drop"),
                ("x-drop", "1"),
                ("proxy-authorization", "Basic x"),
                ("te", "trailers"),
                ("keep-alive", "300"),
                ("accept-encoding", "br"),
            ],
            TCP,
            &[
                "accept-encoding: br",
                "forwarded: for=1.2.3.4",
                "host: api:6443",
                "te: trailers",
                &ua,
                "x-forwarded-for: 1.2.3.4, 127.0.0.1",
            ],
            false,
        );
    }

    #[test]
    fn gzip_is_added_unless_head_range_or_disabled() {
        let ua = format!("user-agent: {}", default_user_agent());
        let unix = ForwardOptions {
            client_ip: None,
            disable_compression: false,
        };
        check(
            &Method::GET,
            &[],
            unix,
            &["accept-encoding: gzip", "host: api:6443", &ua],
            true,
        );
        check(
            &Method::HEAD,
            &[("user-agent", "curl")],
            unix,
            &["host: api:6443", "user-agent: curl"],
            false,
        );
        check(
            &Method::GET,
            &[("range", "bytes=0-1"), ("user-agent", "c")],
            unix,
            &["host: api:6443", "range: bytes=0-1", "user-agent: c"],
            false,
        );
        let off = ForwardOptions {
            client_ip: None,
            disable_compression: true,
        };
        check(
            &Method::GET,
            &[("user-agent", "c")],
            off,
            &["host: api:6443", "user-agent: c"],
            false,
        );
    }

    #[test]
    fn user_agent_has_kubectl_form() {
        let ua = default_user_agent();
        assert!(
            ua.starts_with(&format!("kubectl/v{} (", env!("CARGO_PKG_VERSION"))),
            "{ua}"
        );
        assert!(ua.ends_with(") kubernetes/kproxy"), "{ua}");
    }

    #[test]
    fn connection_upgrade_detection_is_a_substring_match() {
        assert!(is_upgrade(&map(&[("connection", "keep-alive, Upgrade")])));
        assert!(is_upgrade(&map(&[("connection", "x-notupgraded")])));
        assert!(!is_upgrade(&map(&[("upgrade", "websocket")])));
        assert!(!is_upgrade(&map(&[("connection", "close")])));
    }

    #[test]
    fn gzip_reply_is_decoded_and_its_length_dropped() {
        let mut headers = map(&[
            ("content-encoding", "gzip"),
            ("content-length", "31"),
            ("connection", "x-foo"),
            ("x-foo", "1"),
        ]);
        assert!(prepare_response_headers(&mut headers, true));
        assert!(dump(&headers).is_empty());
        let mut passed = map(&[("content-encoding", "gzip")]);
        assert!(!prepare_response_headers(&mut passed, false));
        assert_eq!(dump(&passed), ["content-encoding: gzip"]);

        use std::io::Write as _;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(b"hello world").expect("compress");
        let gz = enc.finish().expect("finish");
        let mut dec = GzipDecoder::new();
        let (a, b) = gz.split_at(7);
        let mut out = dec.push(a).expect("push").to_vec();
        out.extend_from_slice(&dec.push(b).expect("push"));
        out.extend_from_slice(&dec.finish().expect("finish"));
        assert_eq!(out, b"hello world");
    }

    #[test]
    fn split_head_drops_pseudo_headers_and_host() {
        let list: HeaderList = vec![
            (b":method".to_vec(), b"POST".to_vec()),
            (b":path".to_vec(), b"/api?x=1".to_vec()),
            (b":authority".to_vec(), b"localhost".to_vec()),
            (b"host".to_vec(), b"localhost".to_vec()),
            (b"authorization".to_vec(), b"Bearer t".to_vec()),
        ];
        let (method, path, headers) = split_head(list);
        assert_eq!((method, path.as_str()), (Method::POST, "/api?x=1"));
        assert_eq!(dump(&headers), ["authorization: Bearer t"]);
    }
}
