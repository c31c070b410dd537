//! The service transport against real local servers: plain and TLS hyper backends (the TLS one
//! with a certificate for another name and an unknown CA, recording SNI), `--connect-to`
//! mapping, Go-style failure texts and the apiserver's Status body.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use super::*;
use crate::test_support::Pki;

/// Echoes the request head: `METHOD URI` then `name: value` lines, sorted.
pub(crate) async fn echo(
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut lines: Vec<String> = req
        .headers()
        .iter()
        .map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(v.as_bytes())))
        .collect();
    lines.sort();
    let text = format!("{} {}\n{}\n", req.method(), req.uri(), lines.join("\n"));
    Ok(Response::new(Full::new(Bytes::from(text))))
}

/// The TLS configuration of a test backend: a `localhost` certificate from a private CA.
pub(crate) fn server_tls() -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let pki = Pki::new();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = CertificateDer::from_pem_slice(pki.server_cert_pem.as_bytes()).expect("cert");
    let key = PrivateKeyDer::from_pem_slice(pki.server_key_pem.as_bytes()).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server config");
    Arc::new(config)
}

/// The SNI each TLS connection presented (`None` = no SNI).
pub(crate) type SniLog = Arc<Mutex<Vec<Option<String>>>>;

/// Starts a backend on its own thread: plain HTTP, or TLS with `tls`. Upgrade requests to a
/// path ending in `/ws` get a 101 and an echo of the first 4 bytes.
pub(crate) fn start_backend(tls: Option<Arc<rustls::ServerConfig>>) -> (SocketAddr, SniLog) {
    let sni: SniLog = Arc::default();
    let log = sni.clone();
    let addr = crate::test_support::spawn_server(move |stream| {
        let (tls, log) = (tls.clone(), log.clone());
        async move {
            let service = service_fn(backend);
            let builder = hyper::server::conn::http1::Builder::new();
            match tls {
                None => {
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                }
                Some(config) => {
                    let Ok(stream) = tokio_rustls::TlsAcceptor::from(config).accept(stream).await
                    else {
                        return;
                    };
                    let name = stream.get_ref().1.server_name().map(str::to_owned);
                    log.lock().expect("sni log").push(name);
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                }
            }
        }
    });
    (addr, sni)
}

async fn backend(
    mut req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path().ends_with("/ws") {
        return Ok(crate::test_support::upgrade_echo(&mut req));
    }
    echo(req).await
}

fn connect(list: &[String]) -> Vec<ConnectTo> {
    list.iter()
        .map(|s| ConnectTo::parse(s).expect("connect-to"))
        .collect()
}

async fn get(services: &Services, uri: Uri, host: &str) -> Result<(u16, String), String> {
    let mut req = Request::new(ProxyBody::Empty);
    *req.uri_mut() = uri;
    req.headers_mut()
        .insert(header::HOST, HeaderValue::from_str(host).expect("host"));
    let resp = services.send(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

const WEB: &str = "web.ns.svc.cluster.local";

#[tokio::test]
async fn plain_service_is_reached_through_connect_to_with_its_authority_as_host() {
    let (addr, _) = start_backend(None);
    let services = Services::new(&connect(&[format!("{WEB}:80:127.0.0.1:{}", addr.port())]));
    let uri = Services::uri(Scheme::Http, WEB, 80, "/a/b?x=1").expect("uri");
    assert_eq!(uri.to_string(), format!("http://{WEB}:80/a/b?x=1"));
    let (status, body) = get(&services, uri, &format!("{WEB}:80"))
        .await
        .expect("reached");
    assert_eq!(status, 200);
    assert!(body.starts_with("GET /a/b?x=1\n"), "{body}");
    assert!(body.contains(&format!("host: {WEB}:80\n")), "{body}");
    // The connection is pooled: a second request works on it too.
    let uri = Services::uri(Scheme::Http, WEB, 80, "/again").expect("uri");
    let (_, body) = get(&services, uri, "h").await.expect("reached");
    assert!(body.starts_with("GET /again\n"), "{body}");
}

#[tokio::test]
async fn https_service_skips_verification_and_sends_the_host_name_as_sni() {
    let (addr, sni) = start_backend(Some(server_tls()));
    let services = Services::new(&connect(&[format!("{WEB}:443:127.0.0.1:{}", addr.port())]));
    let uri = Services::uri(Scheme::Https, WEB, 443, "/secure").expect("uri");
    let (status, body) = get(&services, uri, &format!("{WEB}:443"))
        .await
        .expect("TLS without verification");
    assert_eq!(status, 200);
    assert!(body.starts_with("GET /secure\n"), "{body}");
    assert_eq!(*sni.lock().expect("sni"), [Some(WEB.to_owned())]);

    // An IP address authority sends no SNI.
    let uri = Services::uri(Scheme::Https, "127.0.0.1", addr.port(), "/ip").expect("uri");
    let (status, _) = get(&services, uri, "127.0.0.1").await.expect("by IP");
    assert_eq!(status, 200);
    assert_eq!(sni.lock().expect("sni").last(), Some(&None));
}

#[tokio::test]
async fn failures_read_like_go() {
    let services = Services::new(&connect(&[
        "dead.ns.svc.cluster.local:80:127.0.0.1:1".to_owned()
    ]));
    let uri = Services::uri(Scheme::Http, "dead.ns.svc.cluster.local", 80, "/").expect("uri");
    assert_eq!(
        get(&services, uri, "dead").await,
        Err("dial tcp 127.0.0.1:1: connect: connection refused".to_owned())
    );
    let uri = Services::uri(Scheme::Http, "no-such-host.invalid", 80, "/").expect("uri");
    assert_eq!(
        get(&services, uri, "x").await,
        Err("dial tcp: lookup no-such-host.invalid: no such host".to_owned())
    );
    // A plain server spoken to with TLS.
    let (addr, _) = start_backend(None);
    let uri = Services::uri(Scheme::Https, "127.0.0.1", addr.port(), "/").expect("uri");
    assert_eq!(
        get(&services, uri, "x").await,
        Err("tls: first record does not look like a TLS handshake".to_owned())
    );
}

#[tokio::test]
async fn unreachable_service_is_the_apiservers_503_status() {
    let resp = unreachable("dial tcp 127.0.0.1:1: connect: connection refused");
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(
        String::from_utf8_lossy(&body),
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"error trying to reach service: dial tcp 127.0.0.1:1: connect: connection refused\",\"reason\":\"ServiceUnavailable\",\"code\":503}\n"
    );
}

#[test]
fn json_strings_are_escaped_like_go() {
    assert_eq!(go_json_string("plain"), "\"plain\"");
    assert_eq!(
        go_json_string("a\"b\\c\n\t\u{1}<x>&\u{2028}é"),
        "\"a\\\"b\\\\c\\n\\t\\u0001\\u003cx\\u003e\\u0026\\u2028é\""
    );
}

#[test]
fn authorities_split_with_scheme_default_ports() {
    type Case<'a> = (&'a str, Scheme, Option<(&'a str, u16)>);
    let cases: &[Case<'_>] = &[
        (
            "web.ns.svc.cluster.local:8080",
            Scheme::Http,
            Some(("web.ns.svc.cluster.local", 8080)),
        ),
        ("web.ns.svc", Scheme::Http, Some(("web.ns.svc", 80))),
        ("web.ns.svc", Scheme::Https, Some(("web.ns.svc", 443))),
        ("[::1]:9", Scheme::Http, Some(("::1", 9))),
        ("user@host:1", Scheme::Http, None),
        ("", Scheme::Http, None),
        ("a b:1", Scheme::Http, None),
    ];
    for (authority, scheme, want) in cases {
        let got = split_authority(authority, *scheme);
        assert_eq!(
            got.as_ref().map(|(h, p)| (h.as_str(), *p)),
            *want,
            "{authority:?}"
        );
    }
    assert_eq!(
        Services::uri(Scheme::Http, "::1", 9, "x")
            .expect("uri")
            .to_string(),
        "http://[::1]:9/x"
    );
    assert_eq!(Scheme::from_route(b"service-https"), Some(Scheme::Https));
    assert_eq!(Scheme::from_route(b"apiserver"), None);
}
