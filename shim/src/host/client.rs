//! The HTTP client behind `proxy_http_call`: one request to a cluster's base URL.
//!
//! Failures are shaped like Envoy's: a connect failure is a 503 response, a timeout a 504
//! response (both ordinary responses to the guest); a reset after the response started or an
//! oversized response is [`CallOutcome::Reset`]. This module knows nothing of wasm.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::HeaderList;
use super::state::{CallResponse, PendingCall};

/// The largest callout response body accepted (larger ⇒ reset, as Envoy's buffer limit).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// What a callout produced.
#[derive(Debug)]
pub(crate) enum CallOutcome {
    /// A response (including Envoy-shaped 503/504).
    Response(CallResponse),
    /// The call was reset: `(0, 0, 0)` and status (11, "reset").
    Reset,
}

fn synthetic(status: u16, body: &str) -> CallOutcome {
    CallOutcome::Response(CallResponse {
        headers: vec![
            (b":status".to_vec(), status.to_string().into_bytes()),
            (
                b"content-length".to_vec(),
                body.len().to_string().into_bytes(),
            ),
            (b"content-type".to_vec(), b"text/plain".to_vec()),
        ],
        body: body.as_bytes().to_vec(),
        trailers: Vec::new(),
    })
}

/// A connect failure, as Envoy answers it.
fn connect_failure() -> CallOutcome {
    synthetic(
        503,
        "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
    )
}

/// `proxy_http_call`s started and not yet answered, timed out or dropped (process-wide).
static IN_FLIGHT: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// The number of `proxy_http_call`s in flight in this process, all VMs together.
pub fn in_flight() -> i64 {
    IN_FLIGHT.load(std::sync::atomic::Ordering::Relaxed)
}

/// Counts one call in [`IN_FLIGHT`] for as long as it lives (a dropped task counts down too).
struct InFlight;

impl InFlight {
    fn start() -> Self {
        IN_FLIGHT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Performs `call`; never panics, never fails (failures become outcomes).
pub(crate) async fn perform(call: PendingCall) -> CallOutcome {
    let _in_flight = InFlight::start();
    let timeout = call.timeout;
    let fut = send(call);
    match timeout {
        Some(t) => tokio::time::timeout(t, fut)
            .await
            .unwrap_or_else(|_| synthetic(504, "upstream request timeout")),
        None => fut.await,
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

async fn send(call: PendingCall) -> CallOutcome {
    let Ok(base) = call.target.base_url.parse::<http::Uri>() else {
        return connect_failure();
    };
    let tls = base.scheme_str() == Some("https");
    let Some(host) = base.host().map(|h| h.trim_matches(['[', ']']).to_owned()) else {
        return connect_failure();
    };
    let port = base.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let Ok(tcp) = TcpStream::connect((host.as_str(), port)).await else {
        return connect_failure();
    };
    let stream = if tls {
        let Some(config) = call.target.tls.clone() else {
            return connect_failure();
        };
        let name = match &call.target.server_name {
            Some(name) => name.clone(),
            None => match rustls_pki_types::ServerName::try_from(host.clone()) {
                Ok(name) => name,
                Err(_) => return connect_failure(),
            },
        };
        match tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
        {
            Ok(s) => Stream::Tls(Box::new(s)),
            Err(_) => return connect_failure(),
        }
    } else {
        Stream::Plain(tcp)
    };
    let Some(request) = build_request(&base, &call.headers, call.body) else {
        return connect_failure();
    };
    match stream {
        Stream::Plain(s) => exchange(TokioIo::new(s), request).await,
        Stream::Tls(s) => exchange(TokioIo::new(*s), request).await,
    }
}

fn build_request(
    base: &http::Uri,
    headers: &HeaderList,
    body: Vec<u8>,
) -> Option<http::Request<Full<Bytes>>> {
    let get = |name: &[u8]| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    };
    let method = http::Method::from_bytes(get(b":method")?).ok()?;
    let base_path = base.path().trim_end_matches('/');
    let path = std::str::from_utf8(get(b":path")?).ok()?;
    let uri: http::Uri = format!("{base_path}{path}").parse().ok()?;
    let mut builder = http::Request::builder().method(method).uri(uri);
    builder = builder.header(http::header::HOST, get(b":authority")?);
    for (k, v) in headers.iter().filter(|(k, _)| !k.starts_with(b":")) {
        if k == b"host" {
            continue;
        }
        builder = builder.header(k.as_slice(), v.as_slice());
    }
    if !body.is_empty() && get(b"content-length").is_none() {
        builder = builder.header(http::header::CONTENT_LENGTH, body.len());
    }
    builder.body(Full::new(Bytes::from(body))).ok()
}

async fn exchange<I>(io: I, request: http::Request<Full<Bytes>>) -> CallOutcome
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(io).await else {
        return connect_failure();
    };
    tokio::task::spawn_local(async move {
        let _ = conn.await;
    });
    let Ok(response) = sender.send_request(request).await else {
        return synthetic(
            503,
            "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
        );
    };
    let (parts, body) = response.into_parts();
    let Ok(collected) = Limited::new(body, MAX_BODY).collect().await else {
        return CallOutcome::Reset;
    };
    let mut headers: HeaderList = vec![(
        b":status".to_vec(),
        parts.status.as_str().as_bytes().to_vec(),
    )];
    headers.extend(
        parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().as_bytes().to_vec(), v.as_bytes().to_vec())),
    );
    let trailers = collected
        .trailers()
        .map(|t| {
            t.iter()
                .map(|(k, v)| (k.as_str().as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect()
        })
        .unwrap_or_default();
    CallOutcome::Response(CallResponse {
        headers,
        body: collected.to_bytes().to_vec(),
        trailers,
    })
}
