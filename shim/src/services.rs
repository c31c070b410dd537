//! Direct service-proxy transport (direct.md "Host behaviour"): requests the filter routed with
//! `x-kproxy-upstream: service-http` / `service-https` go to the `:authority` it set
//! (`{name}.{ns}.svc.{domain}:{port}`), mapped by `--connect-to` or resolved by the system
//! resolver; `https` without certificate verification (SNI = the host name unless it is an IP);
//! HTTP/1.1 on a pooled client; failures answered as the apiserver's service proxy does (503
//! `metav1.Status`, `error trying to reach service: <Go error>`).
//!
//! It never routes, never adds credentials, and trusts only the filter's header.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use crate::cli::{ConnectTo, bracketed};
use crate::server::body::ProxyBody;
use crate::upstream::{DialError, Stream, dial_tcp, tls_handshake};

/// The two routing values the filter uses for services.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// `service-http`.
    Http,
    /// `service-https`.
    Https,
}

impl Scheme {
    /// The scheme for an `x-kproxy-upstream` value, `None` for anything else.
    pub(crate) fn from_route(route: &[u8]) -> Option<Self> {
        match route {
            b"service-http" => Some(Self::Http),
            b"service-https" => Some(Self::Https),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }
}

/// A service authority split into host (without IPv6 brackets) and port (the scheme's default
/// when absent). `None` when it is not a valid `host[:port]`.
pub(crate) fn split_authority(authority: &str, scheme: Scheme) -> Option<(String, u16)> {
    let parsed: http::uri::Authority = authority.parse().ok()?;
    if parsed.as_str().contains('@') {
        return None;
    }
    let host = parsed.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    Some((
        host.to_owned(),
        parsed.port_u16().unwrap_or(scheme.default_port()),
    ))
}

/// The connection target of a service authority: `--connect-to`, else the authority itself.
pub(crate) fn target(connect_to: &[ConnectTo], host: &str, port: u16) -> (String, u16) {
    ConnectTo::target(connect_to, host, port)
}

/// The TLS client configuration for `service-https`: no certificate verification (the
/// apiserver's `InsecureSkipVerify` for services), HTTP/1.1 only.
fn insecure_tls() -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12]);
    let mut config = match builder {
        Ok(b) => b
            .dangerous()
            .with_custom_certificate_verifier(crate::kubeconfig::insecure_verifier())
            .with_no_client_auth(),
        // The ring provider supports both versions; this arm is not reached in practice.
        Err(_) => rustls::ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(crate::kubeconfig::insecure_verifier())
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Dials a service: `--connect-to` mapping, system resolver (IPv4 first), TCP with a 30 s
/// timeout and keep-alive, then TLS for `https` (SNI = `host` unless it is an IP address).
pub(crate) async fn dial(
    connect_to: &[ConnectTo],
    tls: &Arc<rustls::ClientConfig>,
    scheme: Scheme,
    host: &str,
    port: u16,
    keepalive: Option<Duration>,
) -> Result<Stream, DialError> {
    let (to_host, to_port) = target(connect_to, host, port);
    let tcp = dial_tcp(&to_host, to_port, keepalive).await?;
    if scheme == Scheme::Http {
        return Ok(Stream::Plain(tcp));
    }
    // SNI is the service's host name; an IP address sends none (rustls omits SNI for IPs).
    let name = match host.parse::<IpAddr>() {
        Ok(ip) => rustls_pki_types::ServerName::IpAddress(ip.into()),
        Err(_) => rustls_pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| DialError(format!("tls: invalid server name {host:?}: {e}")))?,
    };
    tls_handshake(tls, name, tcp).await
}

// === impl Connector ===

/// The pooled client's connector: the URI's scheme and authority name the service.
#[derive(Clone, Debug)]
pub(crate) struct Connector {
    connect_to: Arc<[ConnectTo]>,
    tls: Arc<rustls::ClientConfig>,
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = DialError;
    type Future = Pin<Box<dyn Future<Output = Result<TokioIo<Stream>, DialError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), DialError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let scheme = if uri.scheme_str() == Some("https") {
                Scheme::Https
            } else {
                Scheme::Http
            };
            let authority = uri.authority().map(|a| a.as_str().to_owned());
            let (host, port) = authority
                .as_deref()
                .and_then(|a| split_authority(a, scheme))
                .ok_or_else(|| DialError(format!("invalid service address {uri}")))?;
            dial(
                &this.connect_to,
                &this.tls,
                scheme,
                &host,
                port,
                Some(Duration::from_secs(30)),
            )
            .await
            .map(TokioIo::new)
        })
    }
}

// === impl Services ===

/// The services' pooled HTTP/1.1 client (one per worker; a pool per scheme and authority).
#[derive(Clone, Debug)]
pub(crate) struct Services {
    client: Client<Connector, ProxyBody>,
    connect_to: Arc<[ConnectTo]>,
    tls: Arc<rustls::ClientConfig>,
}

impl Services {
    /// A client honouring `connect_to`.
    pub(crate) fn new(connect_to: &[ConnectTo]) -> Self {
        let connect_to: Arc<[ConnectTo]> = connect_to.into();
        let tls = insecure_tls();
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(crate::upstream::POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(crate::upstream::POOL_MAX_IDLE_PER_HOST)
            .http1_title_case_headers(true)
            .set_host(false)
            .build(Connector {
                connect_to: connect_to.clone(),
                tls: tls.clone(),
            });
        Self {
            client,
            connect_to,
            tls,
        }
    }

    /// The absolute URI of a service request (`scheme://authority` + `path`).
    pub(crate) fn uri(scheme: Scheme, host: &str, port: u16, path: &str) -> Result<Uri, String> {
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        format!("{}://{}:{port}{path}", scheme.as_str(), bracketed(host))
            .parse()
            .map_err(|e| format!("invalid service request path {path:?}: {e}"))
    }

    /// Sends `req` (absolute URI, `Host` already set); a failure comes back as Go's error text.
    pub(crate) async fn send(&self, req: Request<ProxyBody>) -> Result<Response<Incoming>, String> {
        self.client
            .request(req)
            .await
            .map_err(|e| crate::upstream::go_client_error(&e))
    }

    /// A fresh (unpooled) connection for an upgrade.
    pub(crate) async fn dial(
        &self,
        scheme: Scheme,
        host: &str,
        port: u16,
        keepalive: Option<Duration>,
    ) -> Result<Stream, DialError> {
        dial(&self.connect_to, &self.tls, scheme, host, port, keepalive).await
    }
}

/// Go `encoding/json` string escaping (HTML-safe: `<`, `>`, `&` as `\u003c`…, U+2028/2029).
pub(crate) fn go_json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A `metav1.Status` failure as the apiserver writes it (`application/json`, trailing `\n`).
pub(crate) fn status_reply(code: StatusCode, reason: &str, message: &str) -> Response<ProxyBody> {
    let body = format!(
        "{{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{{}},\"status\":\"Failure\",\"message\":{},\"reason\":{},\"code\":{}}}\n",
        go_json_string(message),
        go_json_string(reason),
        code.as_u16()
    );
    let mut resp = Response::new(ProxyBody::full(body));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The apiserver's answer to a failed service round trip: 503 `error trying to reach service:
/// <err>`.
pub(crate) fn unreachable(text: &str) -> Response<ProxyBody> {
    tracing::error!("Error while proxying request to service: {text}");
    status_reply(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailable",
        &format!("error trying to reach service: {text}"),
    )
}

#[cfg(test)]
pub(crate) mod tests;
