//! A fake Kubernetes API server on `127.0.0.1:0` (hyper + tokio-rustls, or plain HTTP) that
//! records every request and, by default, echoes it back as JSON so a test can compare what
//! reached "upstream" through each backend.
//!
//! Special routes (everything else is echoed, never a 404):
//! - `/api`, `/api/v1`, `/version`: discovery documents;
//! - `/api/v1/configmaps`, `/api/v1/namespaces/{ns}/configmaps`: a `ConfigMapList`;
//! - `?watch=true` or `/watch-test`: `events` (default 3) watch events, `interval_ms` (default
//!   700) apart, each flushed as its own chunk;
//! - `/gzip-test` with a client `Accept-Encoding: gzip`: the echo, gzip-compressed;
//! - `Connection: …upgrade…` plus `Upgrade: X`: `101` then every byte is echoed back;
//! - `?fake-status=NNN`: status NNN with body `nope`; `/redirect-test`, `/cors-test`;
//! - `GET [/base/path]/api/v1/namespaces/{ns}/services/{name}`: the Service registered with
//!   [`FakeApiServer::set_service`], else the apiserver's `404` `services "{name}" not found`
//!   Status (direct service-proxy mode looks Services up here).
//!
//! It must not know about backends; it is the upstream every backend talks to.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Result;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::replies::{self, Recorded};
use crate::tls::Pki;

/// How the fake authenticates and serves.
#[derive(Clone, Debug)]
pub struct FakeOptions {
    /// Serve HTTPS with a private CA (else plain HTTP).
    pub tls: bool,
    /// The bearer token accepted.
    pub token: String,
    /// A `(user, password)` accepted with Basic authentication.
    pub basic: Option<(String, String)>,
    /// Answer without checking credentials (the `http://` server: kubectl sends none).
    pub anonymous: bool,
}

impl Default for FakeOptions {
    fn default() -> Self {
        Self {
            tls: true,
            token: "TOK".to_owned(),
            basic: Some(("alice".to_owned(), "s3cret".to_owned())),
            anonymous: false,
        }
    }
}

/// A running fake API server; stops when dropped.
pub struct FakeApiServer {
    addr: SocketAddr,
    options: FakeOptions,
    pki: Option<Pki>,
    log: Arc<Mutex<Vec<Recorded>>>,
    token_override: Arc<Mutex<Option<String>>>,
    services: Services,
    runtime: Option<tokio::runtime::Runtime>,
}

/// The Service registry: `(namespace, name)` → the Service object, or a fixed reply.
type Services = Arc<Mutex<BTreeMap<(String, String), ServiceEntry>>>;

#[derive(Clone, Debug)]
enum ServiceEntry {
    Object(serde_json::Value),
    Reply(u16, Vec<u8>),
}

struct Shared {
    options: FakeOptions,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Recorded>>>,
    token_override: Arc<Mutex<Option<String>>>,
    services: Services,
}

/// The fakes' response body (also used by `services`).
pub(crate) type RespBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

// === impl FakeApiServer ===

impl FakeApiServer {
    /// Starts the server on its own runtime thread.
    pub fn start(options: FakeOptions) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fake-apiserver")
            .enable_all()
            .build()?;
        let pki = if options.tls {
            Some(Pki::generate("kproxy test CA")?)
        } else {
            None
        };
        let acceptor = match &pki {
            Some(pki) => Some(tokio_rustls::TlsAcceptor::from(pki.server_config()?)),
            None => None,
        };
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let token_override = Arc::new(Mutex::new(None));
        let services = Services::default();
        let shared = Arc::new(Shared {
            options: options.clone(),
            addr,
            log: log.clone(),
            token_override: token_override.clone(),
            services: services.clone(),
        });
        runtime.spawn(accept_loop(listener, acceptor, shared));
        Ok(Self {
            addr,
            options,
            pki,
            log,
            token_override,
            services,
            runtime: Some(runtime),
        })
    }

    /// Registers (or replaces) the Service `namespace/name`: `GET
    /// /api/v1/namespaces/{namespace}/services/{name}` answers `service` as JSON from now on.
    pub fn set_service(&self, namespace: &str, name: &str, service: serde_json::Value) {
        if let Ok(mut s) = self.services.lock() {
            s.insert(
                (namespace.to_owned(), name.to_owned()),
                ServiceEntry::Object(service),
            );
        }
    }

    /// Makes `GET …/namespaces/{namespace}/services/{name}` answer `status` with `body`
    /// (`application/json`) instead of a Service: lookup failures for tests.
    pub fn set_service_reply(&self, namespace: &str, name: &str, status: u16, body: &[u8]) {
        if let Ok(mut s) = self.services.lock() {
            s.insert(
                (namespace.to_owned(), name.to_owned()),
                ServiceEntry::Reply(status, body.to_vec()),
            );
        }
    }

    /// Removes the Service `namespace/name` (later GETs answer 404).
    pub fn remove_service(&self, namespace: &str, name: &str) {
        if let Ok(mut s) = self.services.lock() {
            s.remove(&(namespace.to_owned(), name.to_owned()));
        }
    }

    /// The Service GETs (`[/base/path]/api/v1/namespaces/{ns}/services/{name}`) received so far,
    /// as `(namespace, name)`, in order.
    pub fn service_gets(&self) -> Vec<(String, String)> {
        self.requests()
            .iter()
            .filter(|r| r.method == "GET")
            .filter_map(|r| service_get_path(r.path()))
            .map(|(ns, name)| (ns.to_owned(), name.to_owned()))
            .collect()
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port` as a client's `Host` header names it.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// `https://127.0.0.1:PORT` (or `http://…` in plain mode).
    pub fn url(&self) -> String {
        let scheme = if self.pki.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The CA certificate (PEM) when serving TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.pki.as_ref().map(|p| p.ca_pem.as_str())
    }

    /// The options it runs with.
    pub fn options(&self) -> &FakeOptions {
        &self.options
    }

    /// From now on, accepts only the bearer `token` (instead of `options().token`): a credential
    /// rotation on the server side.
    pub fn set_token(&self, token: &str) {
        if let Ok(mut t) = self.token_override.lock() {
            *t = Some(token.to_owned());
        }
    }

    /// Every request seen so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The requests carrying `x-kproxy-case: <case>` (the runner tags each case with it).
    pub fn requests_for_case(&self, case: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.header("x-kproxy-case") == Some(case))
            .collect()
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(req, shared.clone()));
            let http = hyper::server::conn::http1::Builder::new();
            match acceptor {
                Some(acceptor) => {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        let _ = http
                            .serve_connection(TokioIo::new(tls), svc)
                            .with_upgrades()
                            .await;
                    }
                }
                None => {
                    let _ = http
                        .serve_connection(TokioIo::new(tcp), svc)
                        .with_upgrades()
                        .await;
                }
            }
        });
    }
}

async fn handle(
    mut req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<RespBody>, Infallible> {
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let rec = Recorded::from_parts(&parts, body);
    if let Ok(mut log) = shared.log.lock() {
        log.push(rec.clone());
    }
    let token = shared.token_override.lock().ok().and_then(|t| t.clone());
    if !authorized(&shared.options, token.as_deref(), &rec) {
        return Ok(bytes_response(
            StatusCode::UNAUTHORIZED,
            "application/json",
            replies::status(401, "Unauthorized", "Unauthorized"),
        ));
    }
    Ok(route(&rec, &shared, on_upgrade))
}

fn authorized(options: &FakeOptions, token: Option<&str>, rec: &Recorded) -> bool {
    if options.anonymous {
        return true;
    }
    let Some(auth) = rec.header("authorization") else {
        return false;
    };
    if let Some(tok) = auth.strip_prefix("Bearer ") {
        return tok == token.unwrap_or(&options.token);
    }
    if let (Some(b64), Some((user, pass))) = (auth.strip_prefix("Basic "), &options.basic) {
        let want = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        return b64 == want;
    }
    false
}

fn route(
    rec: &Recorded,
    shared: &Shared,
    on_upgrade: hyper::upgrade::OnUpgrade,
) -> Response<RespBody> {
    let path = rec.path();
    let query = parse_query(rec.query().unwrap_or(""));
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if let Some(code) = q("fake-status").and_then(|s| s.parse::<u16>().ok())
        && let Ok(status) = StatusCode::from_u16(code)
    {
        return bytes_response(status, "text/plain", b"nope".to_vec());
    }
    let connection_upgrade = rec
        .header_values("connection")
        .iter()
        .any(|v| v.to_ascii_lowercase().contains("upgrade"));
    if let (true, Some(proto)) = (connection_upgrade, rec.header("upgrade")) {
        return upgrade_echo(proto, on_upgrade);
    }
    let is_watch = matches!(q("watch"), Some("true" | "1")) || path == "/watch-test";
    if is_watch {
        let events = q("events").and_then(|s| s.parse().ok()).unwrap_or(3);
        let interval = q("interval_ms").and_then(|s| s.parse().ok()).unwrap_or(700);
        return watch(events, Duration::from_millis(interval));
    }
    let json = |b: Vec<u8>| bytes_response(StatusCode::OK, "application/json", b);
    if let (true, Some((ns, name))) = (rec.method == "GET", service_get_path(path)) {
        let found = shared
            .services
            .lock()
            .ok()
            .and_then(|s| s.get(&(ns.to_owned(), name.to_owned())).cloned());
        return match found {
            Some(ServiceEntry::Object(svc)) => json(serde_json::to_vec(&svc).unwrap_or_default()),
            Some(ServiceEntry::Reply(code, body)) => bytes_response(
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "application/json",
                body,
            ),
            None => bytes_response(
                StatusCode::NOT_FOUND,
                "application/json",
                service_not_found(name),
            ),
        };
    }
    match path {
        "/api" => return json(replies::api_versions(&shared.addr.to_string())),
        "/api/v1" => return json(replies::api_resources()),
        "/version" => return json(replies::version()),
        "/api/v1/configmaps" => return json(replies::configmap_list(None)),
        "/redirect-test" => {
            let mut resp = bytes_response(StatusCode::FOUND, "text/plain", b"moved".to_vec());
            resp.headers_mut().insert(
                header::LOCATION,
                HeaderValue::from_static("/somewhere/else"),
            );
            return resp;
        }
        "/cors-test" => {
            let mut resp = json(replies::echo(rec));
            for (k, v) in [
                ("access-control-allow-origin", "*"),
                ("access-control-allow-methods", "GET, POST"),
                ("access-control-allow-headers", "Authorization"),
                ("access-control-allow-credentials", "true"),
            ] {
                resp.headers_mut().insert(k, HeaderValue::from_static(v));
            }
            return resp;
        }
        _ => {}
    }
    if let Some(ns) = path
        .strip_prefix("/api/v1/namespaces/")
        .and_then(|rest| rest.strip_suffix("/configmaps"))
        .filter(|ns| !ns.contains('/'))
    {
        return json(replies::configmap_list(Some(ns)));
    }
    let gzip_ok = rec
        .header_values("accept-encoding")
        .iter()
        .any(|v| v.contains("gzip"));
    if path == "/gzip-test" && gzip_ok {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let _ = enc.write_all(&replies::echo(rec));
        let mut resp = json(enc.finish().unwrap_or_default());
        resp.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        return resp;
    }
    json(replies::echo(rec))
}

fn upgrade_echo(proto: &str, on_upgrade: hyper::upgrade::OnUpgrade) -> Response<RespBody> {
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let (mut r, mut w) = tokio::io::split(TokioIo::new(upgraded));
            let _ = tokio::io::copy(&mut r, &mut w).await;
        }
    });
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(proto) {
        resp.headers_mut().insert(header::UPGRADE, v);
    }
    resp
}

fn watch(events: usize, interval: Duration) -> Response<RespBody> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        for n in 0..events {
            if n > 0 {
                tokio::time::sleep(interval).await;
            }
            if tx.send(Bytes::from(replies::watch_event(n))).await.is_err() {
                return;
            }
        }
    });
    let mut resp = Response::new(ChannelBody { rx }.boxed());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A whole-body answer with a `Content-Type` (also used by `services`).
pub(crate) fn bytes_response(
    status: StatusCode,
    content_type: &str,
    body: Vec<u8>,
) -> Response<RespBody> {
    let mut resp = Response::new(
        http_body_util::Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

fn empty() -> RespBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

/// The apiserver's `404` for a missing Service, byte for byte (newline-terminated, as the
/// apiserver's JSON encoder writes it).
fn service_not_found(name: &str) -> Vec<u8> {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    format!(
        "{{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{{}},\"status\":\"Failure\",\"message\":{},\"reason\":\"NotFound\",\"details\":{{\"name\":{},\"kind\":\"services\"}},\"code\":404}}\n",
        q(&format!("services \"{name}\" not found")),
        q(name)
    )
    .into_bytes()
}

/// `(ns, name)` when `path` is `[/base/path]/api/v1/namespaces/{ns}/services/{name}` (the
/// kubeconfig server path of `Variant::ServerPath` is allowed in front).
pub fn service_get_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/base/path").unwrap_or(path);
    let rest = rest.strip_prefix("/api/v1/namespaces/")?;
    let mut parts = rest.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(ns), Some("services"), Some(name), None) if !ns.is_empty() && !name.is_empty() => {
            Some((ns, name))
        }
        _ => None,
    }
}

/// `a=1&b` → `[("a","1"), ("b","")]`, without decoding.
fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// A body fed by a channel: each message is one frame, so hyper writes (and flushes) it as its
/// own chunk.
struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

// === impl ChannelBody ===

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|m| m.map(|b| Ok(Frame::data(b))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
