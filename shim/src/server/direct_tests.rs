//! Direct service-proxy mode end to end: `serve` with the kproxy filter in direct mode, a fake
//! API server answering the filter's Service lookups (through the registered `kube_apiserver`
//! callout cluster), plain and TLS service backends reached through `--connect-to`; and a
//! response-headers pause with a minimal hand-written filter (`testdata/paused_head_guest.rs`).

use std::convert::Infallible;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use super::tests::{cluster, exchange};
use crate::cli::{ConnectTo, FilterSource, Listen, ServiceProxy, Settings};
use crate::credentials::Credentials;
use crate::services::tests::{echo, server_tls, start_backend};
use crate::test_support::TempDir;

const SERVICE: &str = r#"{"kind":"Service","apiVersion":"v1","metadata":{"name":"NAME","namespace":"ns"},"spec":{"type":"ClusterIP","clusterIP":"10.0.0.1","selector":{"app":"web"},"ports":[{"name":"http","port":80,"targetPort":8080},{"name":"https","port":443,"targetPort":8443}]}}"#;

/// The fake API server: Service lookups for `web` and `dead` in `ns` (their `Authorization`
/// logged), `/html` an HTML page with a length, everything else echoed.
async fn apiserver(
    req: Request<Incoming>,
    lookups: Arc<Mutex<Vec<String>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    if let Some(name) = path.strip_prefix("/api/v1/namespaces/ns/services/") {
        let auth = req
            .headers()
            .get("authorization")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        lookups
            .lock()
            .expect("lookup log")
            .push(format!("{name} {auth}"));
        let resp = if name == "web" || name == "dead" {
            Response::builder()
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(SERVICE.replace("NAME", name))))
        } else {
            Response::builder()
                .status(404)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(b"{\"kind\":\"Status\"}")))
        };
        return Ok(resp.unwrap_or_default());
    }
    if path == "/html" {
        let resp = Response::builder()
            .header("content-type", "text/html")
            .header("content-length", "11")
            .body(Full::new(Bytes::from_static(b"hello world")));
        return Ok(resp.unwrap_or_default());
    }
    echo(req).await
}

fn start_apiserver() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let lookups: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = lookups.clone();
    let addr = crate::test_support::spawn_server(move |stream| {
        let log = log.clone();
        async move {
            let service = service_fn(move |req| apiserver(req, log.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    });
    (addr, lookups)
}

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// Starts the shim; returns its address.
fn start_shim(
    filter: FilterSource,
    plugin_config: &str,
    api: SocketAddr,
    connect_to: Vec<ConnectTo>,
    metrics_address: Option<SocketAddr>,
) -> SocketAddr {
    let settings = Settings {
        listen: Listen::Tcp {
            address: "127.0.0.1".to_owned(),
            port: 0,
        },
        www: None,
        filter,
        plugin_config: plugin_config.to_owned(),
        keepalive: None,
        disable_compression: false,
        verbosity: 0,
        cluster: Arc::new(cluster(api)),
        credentials: Arc::new(Credentials::none()),
        workers: 1,
        metrics_address,
        service_proxy: ServiceProxy::Direct,
        cluster_domain: "cluster.local".to_owned(),
        service_cache_ttl: Duration::from_secs(0),
        connect_to,
        cross_site_protection: false,
    };
    let bound = super::bind(&settings).expect("bind");
    let addr = bound.local_addr().expect("tcp");
    std::thread::spawn(move || super::serve(settings, bound));
    addr
}

#[track_caller]
fn check(got: &str, want: &[&str], not: &[&str]) {
    for w in want {
        assert!(got.contains(w), "missing {w:?} in:\n{got}");
    }
    for n in not {
        assert!(!got.contains(n), "unexpected {n:?} in:\n{got}");
    }
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost:8001\r\n{extra}Connection: close\r\n\r\n")
}

const WEB: &str = "web.ns.svc.cluster.local";

/// The kproxy filter under test: `$KPROXY_FILTER_WASM` when set, else the embedded one.
fn kproxy_filter() -> FilterSource {
    match std::env::var_os("KPROXY_FILTER_WASM").filter(|p| !p.is_empty()) {
        Some(path) => FilterSource::Path(path.into()),
        None => FilterSource::Embedded,
    }
}

#[test]
fn direct_mode_reaches_services_without_credentials() {
    let (api, lookups) = start_apiserver();
    let (plain, _) = start_backend(None);
    let (tls, sni) = start_backend(Some(server_tls()));
    let connect_to = [
        format!("{WEB}:80:127.0.0.1:{}", plain.port()),
        format!("{WEB}:443:127.0.0.1:{}", tls.port()),
        "dead.ns.svc.cluster.local:80:127.0.0.1:1".to_owned(),
    ]
    .iter()
    .map(|s| ConnectTo::parse(s).expect("connect-to"))
    .collect();
    let metrics = free_port();
    let config = r#"{"service_proxy": "direct", "service_cache_ttl_seconds": 0, "credentials": {"token": "s3cret"}}"#;
    let shim = start_shim(kproxy_filter(), config, api, connect_to, Some(metrics));

    // Plain HTTP: Host = the service authority, no client credentials or impersonation.
    let got = exchange(
        shim,
        &get(
            "/api/v1/namespaces/ns/services/web:80/proxy/x/y?q=1",
            "Authorization: Bearer client\r\nImpersonate-User: mallory\r\n",
        ),
    );
    check(
        &got,
        &[
            "HTTP/1.1 200 OK\r\n",
            "GET /x/y?q=1\n",
            &format!("host: {WEB}:80\n"),
            "x-forwarded-for: 127.0.0.1\n",
            "x-forwarded-uri: /api/v1/namespaces/ns/services/web:80/proxy/x/y\n",
            "accept-encoding: gzip\n",
            "user-agent: kubectl/",
        ],
        &["authorization:", "impersonate-user:", "s3cret", "mallory"],
    );
    // The lookup carried the configured credentials to the API server.
    assert_eq!(
        lookups.lock().expect("lookups").first().map(String::as_str),
        Some("web Bearer s3cret")
    );

    // HTTPS: no certificate verification, SNI = the service host name.
    let got = exchange(
        shim,
        &get("/api/v1/namespaces/ns/services/https:web:443/proxy/s", ""),
    );
    check(
        &got,
        &[
            "HTTP/1.1 200 OK\r\n",
            "GET /s\n",
            &format!("host: {WEB}:443\n"),
        ],
        &[],
    );
    assert_eq!(*sni.lock().expect("sni"), [Some(WEB.to_owned())]);

    // Transport failure: the apiserver's 503 Status.
    let got = exchange(
        shim,
        &get("/api/v1/namespaces/ns/services/dead:80/proxy/", ""),
    );
    check(
        &got,
        &[
            "HTTP/1.1 503 Service Unavailable\r\n",
            "Content-Type: application/json\r\n",
            "\r\n\r\n{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"error trying to reach service: dial tcp 127.0.0.1:1: connect: connection refused\",\"reason\":\"ServiceUnavailable\",\"code\":503}\n",
        ],
        &[],
    );

    // Upgrade to a service: 101 relayed, then bytes both ways.
    crate::test_support::assert_tunnel_echo(
        shim,
        "/api/v1/namespaces/ns/services/web:80/proxy/ws?x=1",
    );

    // The introspection gauges and the filter's counters on the metrics endpoint.
    let got = exchange(
        metrics,
        "GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n",
    );
    check(
        &got,
        &[
            "# TYPE kproxy_shim_connections_open gauge\n",
            "# TYPE kproxy_shim_streams_live gauge\n",
            "# TYPE kproxy_shim_tunnels_open gauge\n",
            "# TYPE kproxy_shim_callouts_inflight gauge\n",
            "kproxy_routed_service 4\n",
        ],
        &[],
    );
}

/// Envoy parity: a filter that pauses in the response headers callback with body to come gets
/// no body callback until it calls `proxy_continue_stream` (here from its next tick); then the
/// body callbacks run and the response reaches the client (`testdata/paused_head_guest.rs`).
#[test]
fn response_headers_pause_waits_for_continue_before_body_callbacks() {
    let (api, _) = start_apiserver();
    let dir = TempDir::new();
    let wasm = dir.write(
        "paused_head_guest.wasm",
        include_bytes!("testdata/paused_head_guest.wasm"),
    );
    let shim = start_shim(FilterSource::Path(wasm), "{}", api, Vec::new(), None);
    for _ in 0..2 {
        let got = exchange(shim, &get("/html", ""));
        check(
            &got,
            &[
                "HTTP/1.1 200 OK\r\n",
                "Content-Type: text/html\r\n",
                "Transfer-Encoding: chunked\r\n",
                "\r\nbody after continue\r\n0\r\n\r\n",
            ],
            &["hello world", "before continue", "Content-Length"],
        );
    }
    // Bodiless (HEAD): no pause, the headers callback's changes still apply.
    let got = exchange(
        shim,
        "HEAD /html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    check(&got, &["HTTP/1.1 200 OK\r\n"], &["Content-Length: 11"]);
}

/// An upstream that sends one chunk and then stays silent (an idle watch); `closed` turns true
/// when the proxy drops the response.
fn start_idle_backend() -> (SocketAddr, Arc<std::sync::atomic::AtomicBool>) {
    use futures_util::StreamExt as _;
    use http_body::Frame;
    let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = closed.clone();
    let addr = crate::test_support::spawn_server(move |stream| {
        let flag = flag.clone();
        async move {
            let service = service_fn(move |_req: Request<Incoming>| {
                let flag = flag.clone();
                async move {
                    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
                    tokio::spawn(async move {
                        let _ = tx.send(Bytes::from_static(b"hello")).await;
                        tx.closed().await;
                        flag.store(true, std::sync::atomic::Ordering::SeqCst);
                    });
                    let frames = futures_util::stream::unfold(rx, |mut rx| async move {
                        rx.recv()
                            .await
                            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
                    })
                    .boxed();
                    Ok::<_, Infallible>(Response::new(http_body_util::StreamBody::new(frames)))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    });
    (addr, closed)
}

/// A client that leaves in the middle of an idle streamed response releases the upstream
/// response (and with it the filter stream) at once, not at the next upstream byte.
#[test]
fn client_leaving_an_idle_stream_releases_the_upstream() {
    let (idle, closed) = start_idle_backend();
    let shim = start_shim(kproxy_filter(), "{}", idle, Vec::new(), None);
    let mut s = TcpStream::connect(shim).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    s.write_all(b"GET /api/v1/pods?watch=1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("write");
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("hello") {
        let n = s.read(&mut buf).expect("read");
        assert!(
            n > 0,
            "stream ended early: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(!closed.load(std::sync::atomic::Ordering::SeqCst));
    drop(s);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !closed.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(
            std::time::Instant::now() < deadline,
            "the upstream response was not released after the client left"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
