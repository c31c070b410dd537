//! Fake in-cluster services for direct service-proxy mode: HTTP/1.1 servers on `127.0.0.1:0`,
//! plain or TLS (a self-signed certificate for `fake-service.invalid`: a proxy must not verify
//! it), that record every request (and, for TLS, the SNI the client sent) and answer it.
//!
//! Routes (the backend path, after the proxy removed `/api/v1/namespaces/{ns}/services/{id}/proxy`):
//! - `Connection: …upgrade…` plus `Upgrade: X`: `101`, then every byte is echoed back;
//! - `/html/identity`, `/html/gzip` (gzip only when the request's `Accept-Encoding` names gzip,
//!   like a real server), `/html/gzip-always`, `/html/deflate` (raw DEFLATE, RFC 1951, which is
//!   what Go's `compress/flate` reads), `/html/other-encoding` (`Content-Encoding: x-other`, the
//!   page bytes unencoded): [`html_page`] as `text/html; charset=utf-8`;
//! - `/redirect?location=L[&status=N]`: status `N` (default 302) with `Location` = `L`
//!   percent-decoded once; `/redirect/same-host/REST`: `Location: http://<Host>/REST`;
//! - `/cors`: the echo plus the four `Access-Control-Allow-*` headers and two other
//!   `Access-Control-*` headers;
//! - `/status/NNN`: status NNN, `text/plain` body `backend says NNN\n`;
//! - anything else: the echo document of `replies::echo` as `application/json`.
//!
//! Every response carries `X-Fake-Service: <label>` (which server answered). It must not know
//! about proxies; it is the upstream a direct-mode proxy talks to.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result, bail};
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::apiserver::{RespBody, bytes_response};
use crate::replies::{self, Recorded};

/// How a fake service port is served.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Serve {
    /// Plain HTTP/1.1.
    #[default]
    Plain,
    /// HTTPS (HTTP/1.1 only) with a self-signed certificate.
    Tls,
    /// A loopback port nobody listens on (connections are refused).
    Refused,
}

/// One request a fake service received.
#[derive(Clone, Debug)]
pub struct ServiceSeen {
    /// The label of the server that received it.
    pub server: String,
    /// Whether it arrived over TLS.
    pub tls: bool,
    /// The SNI host name the client sent (TLS only).
    pub sni: Option<String>,
    /// The request.
    pub request: Recorded,
}

/// A set of fake services sharing one runtime; stops when dropped.
pub struct FakeServices {
    runtime: Option<tokio::runtime::Runtime>,
    servers: Vec<(String, Serve, SocketAddr)>,
    log: Arc<Mutex<Vec<ServiceSeen>>>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

struct Shared {
    label: String,
    log: Arc<Mutex<Vec<ServiceSeen>>>,
}

// === impl FakeServices ===

impl FakeServices {
    /// An empty set (no servers yet).
    pub fn new() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fake-services")
            .enable_all()
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
            servers: Vec::new(),
            log: Arc::new(Mutex::new(Vec::new())),
            tls: None,
        })
    }

    /// Starts a server labelled `label` (unique in the set) and returns its port.
    pub fn add(&mut self, label: &str, serve: Serve) -> Result<u16> {
        if self.port(label).is_some() {
            bail!("fake service {label} declared twice");
        }
        let Some(runtime) = &self.runtime else {
            bail!("fake services stopped");
        };
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let acceptor = match serve {
            Serve::Refused => {
                drop(listener);
                self.servers.push((label.to_owned(), serve, addr));
                return Ok(addr.port());
            }
            Serve::Plain => None,
            Serve::Tls => {
                if self.tls.is_none() {
                    self.tls = Some(self_signed_config()?);
                }
                self.tls.clone().map(tokio_rustls::TlsAcceptor::from)
            }
        };
        let shared = Arc::new(Shared {
            label: label.to_owned(),
            log: self.log.clone(),
        });
        runtime.spawn(accept_loop(listener, acceptor, shared));
        self.servers.push((label.to_owned(), serve, addr));
        Ok(addr.port())
    }

    /// Adds `label` as another name of the server on `port` (a Service port reachable as
    /// `{name}-{port name}` and `{name}-{port number}`).
    pub fn alias(&mut self, label: &str, port: u16) -> Result<()> {
        if self.port(label).is_some() {
            bail!("fake service {label} declared twice");
        }
        let Some((_, serve, addr)) = self.servers.iter().find(|(_, _, a)| a.port() == port) else {
            bail!("no fake service on port {port}");
        };
        let entry = (label.to_owned(), *serve, *addr);
        self.servers.push(entry);
        Ok(())
    }

    /// The port of server `label`.
    pub fn port(&self, label: &str) -> Option<u16> {
        self.servers
            .iter()
            .find(|(l, _, _)| l == label)
            .map(|(_, _, a)| a.port())
    }

    /// Every server: label, kind and address.
    pub fn servers(&self) -> &[(String, Serve, SocketAddr)] {
        &self.servers
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<ServiceSeen> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The requests carrying `x-kproxy-case: <case>` (the runner tags each case with it).
    pub fn requests_for_case(&self, case: &str) -> Vec<ServiceSeen> {
        self.requests()
            .into_iter()
            .filter(|s| s.request.header("x-kproxy-case") == Some(case))
            .collect()
    }
}

impl Drop for FakeServices {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A rustls server configuration with a fresh self-signed certificate for
/// `fake-service.invalid`, offering only HTTP/1.1.
fn self_signed_config() -> Result<Arc<rustls::ServerConfig>> {
    let ck = rcgen::generate_simple_self_signed(vec!["fake-service.invalid".to_owned()])
        .context("generating the fake service certificate")?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(ck.cert.der().to_vec())], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
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
            let http = hyper::server::conn::http1::Builder::new();
            match acceptor {
                Some(acceptor) => {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let sni = tls.get_ref().1.server_name().map(str::to_owned);
                    let svc = hyper::service::service_fn(move |req| {
                        handle(req, shared.clone(), Some(sni.clone()))
                    });
                    let _ = http
                        .serve_connection(TokioIo::new(tls), svc)
                        .with_upgrades()
                        .await;
                }
                None => {
                    let svc =
                        hyper::service::service_fn(move |req| handle(req, shared.clone(), None));
                    let _ = http
                        .serve_connection(TokioIo::new(tcp), svc)
                        .with_upgrades()
                        .await;
                }
            }
        });
    }
}

/// `tls`: `None` for plain HTTP, else the SNI (if any).
async fn handle(
    mut req: Request<Incoming>,
    shared: Arc<Shared>,
    tls: Option<Option<String>>,
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
        log.push(ServiceSeen {
            server: shared.label.clone(),
            tls: tls.is_some(),
            sni: tls.clone().flatten(),
            request: rec.clone(),
        });
    }
    let mut resp = route(&rec, on_upgrade);
    if let Ok(v) = HeaderValue::from_str(&shared.label) {
        resp.headers_mut().insert("x-fake-service", v);
    }
    Ok(resp)
}

fn route(rec: &Recorded, on_upgrade: hyper::upgrade::OnUpgrade) -> Response<RespBody> {
    let connection_upgrade = rec
        .header_values("connection")
        .iter()
        .any(|v| v.to_ascii_lowercase().contains("upgrade"));
    if let (true, Some(proto)) = (connection_upgrade, rec.header("upgrade")) {
        return upgrade_echo(proto, on_upgrade);
    }
    let path = rec.path();
    let query = rec.query().unwrap_or("");
    let q = |k: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(n, _)| *n == k)
            .map(|(_, v)| percent_decode(v))
    };
    let host = rec.header("host").unwrap_or("");
    let gzip_ok = rec
        .header_values("accept-encoding")
        .iter()
        .any(|v| v.contains("gzip"));
    match path {
        "/html/identity" => return html(html_page(host).into_bytes(), None),
        "/html/gzip" if gzip_ok => return html(gzip(&html_page(host)), Some("gzip")),
        "/html/gzip" => return html(html_page(host).into_bytes(), None),
        "/html/gzip-always" => return html(gzip(&html_page(host)), Some("gzip")),
        "/html/deflate" => return html(deflate(&html_page(host)), Some("deflate")),
        "/html/other-encoding" => return html(html_page(host).into_bytes(), Some("x-other")),
        "/redirect" => {
            let status = q("status")
                .and_then(|s| s.parse::<u16>().ok())
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::FOUND);
            return redirect(status, &q("location").unwrap_or_default());
        }
        "/cors" => {
            let mut resp = bytes_response(StatusCode::OK, "application/json", replies::echo(rec));
            for (k, v) in [
                ("access-control-allow-origin", "*"),
                ("access-control-allow-methods", "GET, POST"),
                ("access-control-allow-headers", "Authorization"),
                ("access-control-allow-credentials", "true"),
                ("access-control-expose-headers", "X-Kept"),
                ("access-control-max-age", "600"),
            ] {
                resp.headers_mut().insert(k, HeaderValue::from_static(v));
            }
            return resp;
        }
        _ => {}
    }
    if let Some(rest) = path.strip_prefix("/redirect/same-host/") {
        return redirect(StatusCode::FOUND, &format!("http://{host}/{rest}"));
    }
    if let Some(code) = path
        .strip_prefix("/status/")
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
    {
        let body = format!("backend says {}\n", code.as_u16()).into_bytes();
        return bytes_response(code, "text/plain", body);
    }
    bytes_response(StatusCode::OK, "application/json", replies::echo(rec))
}

/// The HTML page of the `/html/*` routes; `host` is the request's `Host` (a same-host absolute
/// link uses it).
pub fn html_page(host: &str) -> String {
    format!(
        concat!(
            "<!DOCTYPE html>\n",
            "<html><head><title>t</title>",
            "<link rel=\"stylesheet\" href=\"/static/app.css\"><script src=\"js/app.js\"></script>",
            "</head>\n",
            "<body background=\"/bg.png\">\n",
            "<a href=\"/x\">abs</a> <a href=\"x\">rel</a> <A HREF='/y?q=1&amp;r=2'>q</A>\n",
            "<a href=\"http://{host}/same\">same</a> <a href=\"http://example.com/other\">other</a>\n",
            "<img src=\"/img.png\" alt=\"a &lt; b\"><form action=\"/submit\" method=post>",
            "<input type=\"text\" disabled></form>\n",
            "<p style=\"background: url(/css.png)\">css</p><img srcset=\"/a.png 1x\"/>\n",
            "<!-- <a href=\"/comment\"> -->\n",
            "</body></html>\n",
        ),
        host = host
    )
}

fn html(body: Vec<u8>, encoding: Option<&str>) -> Response<RespBody> {
    let mut resp = bytes_response(StatusCode::OK, "text/html; charset=utf-8", body);
    if let Some(enc) = encoding.and_then(|e| HeaderValue::from_str(e).ok()) {
        resp.headers_mut().insert(header::CONTENT_ENCODING, enc);
    }
    resp
}

fn redirect(status: StatusCode, location: &str) -> Response<RespBody> {
    let mut resp = bytes_response(status, "text/plain", b"moved\n".to_vec());
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// gzip (RFC 1952) of `text`.
pub fn gzip(text: &str) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = enc.write_all(text.as_bytes());
    enc.finish().unwrap_or_default()
}

/// Raw DEFLATE (RFC 1951, no zlib header) of `text`: what Go's `compress/flate` reads.
pub fn deflate(text: &str) -> Vec<u8> {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = enc.write_all(text.as_bytes());
    enc.finish().unwrap_or_default()
}

fn upgrade_echo(proto: &str, on_upgrade: hyper::upgrade::OnUpgrade) -> Response<RespBody> {
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let (mut r, mut w) = tokio::io::split(TokioIo::new(upgraded));
            let _ = tokio::io::copy(&mut r, &mut w).await;
        }
    });
    let mut resp = Response::new(
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(proto) {
        resp.headers_mut().insert(header::UPGRADE, v);
    }
    resp
}

/// `%XX` decoded once (invalid escapes kept as they are); `+` stays `+`.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| char::from(c).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn percent_decoding_is_single_and_lenient() {
        for (input, want) in [
            ("/login", "/login"),
            ("/login%3Fnext%3D%252Fhome", "/login?next=%2Fhome"),
            ("%zz%4", "%zz%4"),
            ("a%20b", "a b"),
        ] {
            assert_eq!(percent_decode(input), want, "{input}");
        }
    }
}
