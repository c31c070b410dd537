//! In-crate end-to-end test: `serve` on 127.0.0.1:0 with the kproxy filter in front of a tiny
//! plain-HTTP upstream (hyper), spoken to with raw HTTP/1.1 bytes.

use std::convert::Infallible;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::cli::{FilterSource, Listen, Settings, StaticFiles};
use crate::credentials::Credentials;
use crate::kubeconfig::Cluster;
use crate::test_support::TempDir;

/// The fake API server: echoes the request head; `/gzip` answers gzip; `/ws` upgrades and echoes.
async fn upstream(mut req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let h = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    if req.uri().path().ends_with("/ws") {
        return Ok(crate::test_support::upgrade_echo(&mut req));
    }
    if req.uri().path() == "/gzip" {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let _ = enc.write_all(b"hello gzip");
        let body = enc.finish().unwrap_or_default();
        let resp = Response::builder()
            .header("content-encoding", "gzip")
            .body(Full::new(Bytes::from(body)));
        return Ok(resp.unwrap_or_default());
    }
    let text = format!(
        "{} {} host={} xff={} ae={} auth={}",
        req.method(),
        req.uri(),
        h("host"),
        h("x-forwarded-for"),
        h("accept-encoding"),
        h("authorization"),
    );
    Ok(Response::new(Full::new(Bytes::from(text))))
}

fn start_upstream() -> SocketAddr {
    crate::test_support::spawn_server(|stream| async move {
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service_fn(upstream))
            .with_upgrades()
            .await;
    })
}

pub(super) fn cluster(addr: SocketAddr) -> Cluster {
    Cluster {
        server: format!("http://{addr}").parse().expect("uri"),
        server_path: String::new(),
        host_header: addr.to_string(),
        tls: None,
        tls_server_name: rustls_pki_types::ServerName::try_from("localhost")
            .expect("name")
            .to_owned(),
    }
}

/// Starts the shim; returns its address.
fn start_shim(upstream: SocketAddr, www: PathBuf) -> SocketAddr {
    let filter = match std::env::var_os("KPROXY_FILTER_WASM").filter(|p| !p.is_empty()) {
        Some(path) => FilterSource::Path(path.into()),
        None => FilterSource::Embedded,
    };
    let settings = Settings {
        listen: Listen::Tcp {
            address: "127.0.0.1".to_owned(),
            port: 0,
        },
        www: Some(StaticFiles {
            dir: www,
            prefix: "/static/".to_owned(),
        }),
        filter,
        plugin_config: r#"{"static_prefix": "/static/"}"#.to_owned(),
        keepalive: None,
        disable_compression: false,
        verbosity: 0,
        cluster: Arc::new(cluster(upstream)),
        credentials: Arc::new(Credentials::none()),
        workers: 2,
        metrics_address: None,
        service_proxy: crate::cli::ServiceProxy::ApiServer,
        cluster_domain: "cluster.local".to_owned(),
        service_cache_ttl: Duration::from_secs(10),
        connect_to: Vec::new(),
        cross_site_protection: false,
    };
    let bound = super::bind(&settings).expect("bind");
    let addr = bound.local_addr().expect("tcp");
    std::thread::spawn(move || super::serve(settings, bound));
    addr
}

/// Sends raw bytes, reads until the server closes (requests carry `Connection: close`).
pub(super) fn exchange(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    s.write_all(request.as_bytes()).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[track_caller]
fn check(addr: SocketAddr, request: &str, want: &[&str], not: &[&str]) {
    let got = exchange(addr, request);
    for w in want {
        assert!(
            got.contains(w),
            "missing {w:?} in response to {request:?}:\n{got}"
        );
    }
    for n in not {
        assert!(
            !got.contains(n),
            "unexpected {n:?} in response to {request:?}:\n{got}"
        );
    }
}

#[test]
fn shim_forwards_filters_serves_and_upgrades() {
    let up = start_upstream();
    let www = TempDir::new();
    www.write("x.txt", "hello world");
    let shim = start_shim(up, www.path().to_path_buf());
    let get = |path: &str, host: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
    };

    // forwarded: Host rewritten, XFF appended, gzip requested
    let want_echo = format!("GET /api/v1/pods?watch=1 host={up} xff=127.0.0.1 ae=gzip auth=-");
    check(
        shim,
        &get("/api/v1/pods?watch=1", "localhost:8001"),
        &["HTTP/1.1 200 OK\r\n", &want_echo],
        &[],
    );
    // the filter rejects a foreign Host
    check(
        shim,
        &get("/api/v1/pods", "evil.com"),
        &["HTTP/1.1 403 Forbidden\r\n"],
        &["GET /api"],
    );
    // a client cannot choose the upstream
    let spoof = "GET /api HTTP/1.1\r\nHost: localhost\r\nX-Kproxy-Upstream: static\r\nConnection: close\r\n\r\n";
    check(shim, spoof, &["200 OK", "GET /api host="], &[]);
    // gzip added by the proxy is decoded
    check(
        shim,
        &get("/gzip", "localhost"),
        &["200 OK", "hello gzip"],
        &["Content-Encoding"],
    );
    // static files
    check(
        shim,
        &get("/static/x.txt", "localhost"),
        &[
            "200 OK",
            "Content-Type: text/plain; charset=utf-8",
            "hello world",
        ],
        &[],
    );
    // Go's own 400
    check(
        shim,
        "GET /api HTTP/1.1\r\nConnection: close\r\n\r\n",
        &["HTTP/1.1 400 Bad Request: missing required Host header\r\n"],
        &[],
    );

    // upgrade: 101 relayed, then bytes both ways
    crate::test_support::assert_tunnel_echo(shim, "/api/v1/namespaces/ns/services/web/proxy/ws");
}
