//! The real `kproxy_filter.wasm` in direct service-proxy mode, through the shim's socket-free
//! [`Harness`]: Service lookups go over `proxy_http_call` to a tiny fake API server (a plain TCP
//! listener in a thread, the only socket here), are cached in shared data, and decide the route;
//! service responses are rewritten; cross-site protection rejects browser requests.
//!
//! The module is `$KPROXY_FILTER_WASM` when set, else the filter embedded in the shim.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use shim::host::testing::{Harness, Outcome, TestRequest, TestResponse};
use shim::host::{Action, ClusterTarget, PluginOptions};

fn wasm() -> Vec<u8> {
    match std::env::var_os("KPROXY_FILTER_WASM").filter(|p| !p.is_empty()) {
        Some(p) => std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.to_string_lossy())),
        None => shim::DEFAULT_FILTER.to_vec(),
    }
}

/// One request the fake API server received: the request line and lower-cased headers.
#[derive(Clone, Debug)]
struct Seen {
    line: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A fake API server answering `GET <path>` from a table (`404` with an empty body otherwise).
struct FakeApi {
    base_url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeApi {
    fn start(answers: &[(&str, u16, &str)]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let answers: HashMap<String, (u16, String)> = answers
            .iter()
            .map(|(p, s, b)| ((*p).to_owned(), (*s, (*b).to_owned())))
            .collect();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&buf).into_owned();
                let mut lines = text.split("\r\n");
                let line = lines.next().unwrap_or_default().to_owned();
                let headers = lines
                    .take_while(|l| !l.is_empty())
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    .collect();
                let path = line.split(' ').nth(1).unwrap_or_default().to_owned();
                log.lock().expect("lock").push(Seen { line, headers });
                let (status, body) = answers.get(&path).cloned().unwrap_or((404, String::new()));
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes());
            }
        });
        Self { base_url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

fn harness(config: &str, cluster_url: &str) -> Harness {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut clusters = HashMap::new();
    clusters.insert(
        "kube_apiserver".to_owned(),
        ClusterTarget::new(cluster_url.to_owned()),
    );
    let options = PluginOptions {
        name: "harness".to_owned(),
        root_id: "harness-root".to_owned(),
        vm_id: format!("filter-direct-{}-{n}", std::process::id()),
        configuration: config.as_bytes().to_vec(),
        clusters,
        ..PluginOptions::default()
    };
    Harness::with_options(&wasm(), options).expect("the filter starts")
}

const WEB: &str = r#"{"kind":"Service","apiVersion":"v1","metadata":{"name":"web","namespace":"ns"},"spec":{"type":"ClusterIP","clusterIP":"10.0.0.7","selector":{"app":"web"},"ports":[{"name":"http","port":80,"targetPort":8080}]}}"#;
const NOT_FOUND: &str = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"services \"missing\" not found","reason":"NotFound","details":{"name":"missing","kind":"services"},"code":404}"#;
const DIRECT: &str = r#"{"service_proxy": "direct", "credentials": {"token": "TOK"}, "impersonate": {"user": "jane"}}"#;

/// `GET path` with `Host: localhost:8001` and no other header.
fn get(h: &mut Harness, path: &str) -> Outcome {
    h.request("GET", path, "localhost:8001", &[])
}

fn metric(out: &Outcome, name: &str) -> i64 {
    out.metric(name).unwrap_or(0)
}

fn reply_text(out: &Outcome) -> (u16, String, Vec<(String, String)>) {
    let reply = out
        .local_reply()
        .unwrap_or_else(|| panic!("expected a local reply: {:?}", out.action));
    (
        reply.status,
        String::from_utf8_lossy(&reply.body).into_owned(),
        reply
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect(),
    )
}

#[test]
fn lookup_then_forward_to_the_service() {
    let api = FakeApi::start(&[("/api/v1/namespaces/ns/services/web", 200, WEB)]);
    let mut h = harness(DIRECT, &api.base_url);
    let out = h.request(
        "GET",
        "/api/v1/namespaces/ns/services/web:80/proxy/a/b?x=1",
        "localhost:8001",
        &[
            ("authorization", "Bearer client"),
            ("impersonate-group", "g"),
            ("x-remote-user", "u"),
        ],
    );
    assert_eq!(out.action, Ok(Action::Continue), "{:?}", out.logs);
    assert_eq!(
        out.request_header("x-kproxy-upstream"),
        Some("service-http")
    );
    assert_eq!(
        out.request_header(":authority"),
        Some("web.ns.svc.cluster.local:80")
    );
    assert_eq!(out.request_header(":path"), Some("/a/b?x=1"));
    assert_eq!(
        out.request_header("x-forwarded-uri"),
        Some("/api/v1/namespaces/ns/services/web:80/proxy/a/b")
    );
    for gone in [
        "authorization",
        "impersonate-group",
        "impersonate-user",
        "x-remote-user",
    ] {
        assert_eq!(out.request_header(gone), None, "{gone}");
    }
    assert_eq!(metric(&out, "kproxy.service.lookups"), 1);
    assert_eq!(metric(&out, "kproxy.routed.service"), 1);
    assert_eq!(metric(&out, "kproxy.routed.apiserver"), 0);
    let seen = api.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].line,
        "GET /api/v1/namespaces/ns/services/web HTTP/1.1"
    );
    assert_eq!(seen[0].header("authorization"), ["Bearer TOK"]);
    assert_eq!(seen[0].header("impersonate-user"), ["jane"]);
    assert_eq!(seen[0].header("accept"), ["application/json"]);

    // The answer is cached: the next request makes no call.
    let out = h.request(
        "PUT",
        "/api/v1/namespaces/ns/services/web:http/proxy",
        "localhost:8001",
        &[],
    );
    assert_eq!(out.action, Ok(Action::Continue));
    assert_eq!(out.request_header(":path"), Some("/"));
    assert_eq!(metric(&out, "kproxy.service.cache_hits"), 1);
    assert_eq!(metric(&out, "kproxy.service.lookups"), 1);
    assert_eq!(api.seen().len(), 1);

    // GET without sub-path: 301 after the (cached) lookup.
    let out = get(&mut h, "/api/v1/namespaces/ns/services/web:80/proxy?a=1");
    let (status, body, headers) = reply_text(&out);
    assert_eq!(status, 301);
    assert!(headers.contains(&(
        "location".to_owned(),
        "/api/v1/namespaces/ns/services/web:80/proxy/?a=1".to_owned()
    )));
    assert!(body.contains("Moved Permanently"));
}

#[test]
fn lookup_errors_and_caching_rules() {
    let api = FakeApi::start(&[
        ("/api/v1/namespaces/ns/services/missing", 404, NOT_FOUND),
        ("/api/v1/namespaces/ns/services/broken", 500, "oops"),
        ("/api/v1/namespaces/ns/services/web", 200, WEB),
    ]);
    let mut h = harness(DIRECT, &api.base_url);
    for round in 0..2 {
        let out = get(&mut h, "/api/v1/namespaces/ns/services/missing:80/proxy/");
        let (status, body, headers) = reply_text(&out);
        assert_eq!((status, body.as_str()), (404, NOT_FOUND), "round {round}");
        assert!(headers.contains(&("content-type".to_owned(), "application/json".to_owned())));
    }
    assert_eq!(api.seen().len(), 1, "a 404 is cached");
    for _ in 0..2 {
        let out = get(&mut h, "/api/v1/namespaces/ns/services/broken/proxy/");
        let (status, body, _) = reply_text(&out);
        assert_eq!(status, 503);
        assert_eq!(
            body,
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"error trying to reach service: service lookup failed: the API server answered 500\",\"reason\":\"ServiceUnavailable\",\"code\":503}\n"
        );
    }
    assert_eq!(api.seen().len(), 3, "a 5xx is not cached");
    // A7 and A8 from the looked-up Service.
    let out = get(&mut h, "/api/v1/namespaces/ns/services/web:8080/proxy/");
    let (status, body, _) = reply_text(&out);
    assert_eq!(status, 503);
    assert!(
        body.contains(r#"no service port 8080 found for service \"web\""#),
        "{body}"
    );
    let out = get(&mut h, "/api/v1/namespaces/ns/services/web/proxy/");
    let (_, body, _) = reply_text(&out);
    assert!(
        body.contains(r#"no endpoints available for service \"web\""#),
        "{body}"
    );
    // 405, dryRun and bad ids are answered before any lookup.
    let before = api.seen().len();
    for (method, path, status) in [
        ("TRACE", "/api/v1/namespaces/ns/services/web/proxy/", 405),
        (
            "GET",
            "/api/v1/namespaces/ns/services/web/proxy/?dryRun=All",
            400,
        ),
        (
            "GET",
            "/api/v1/namespaces/ns/services/HTTP:web:80/proxy/",
            400,
        ),
    ] {
        let out = h.request(method, path, "localhost:8001", &[]);
        assert_eq!(reply_text(&out).0, status, "{method} {path}");
    }
    assert_eq!(api.seen().len(), before);
}

#[test]
fn ttl_zero_looks_up_every_time_and_pods_stay_on_the_apiserver() {
    let api = FakeApi::start(&[("/api/v1/namespaces/ns/services/web", 200, WEB)]);
    let config = r#"{"service_proxy": "direct", "service_cache_ttl_seconds": 0, "cluster_domain": "corp.example"}"#;
    let mut h = harness(config, &api.base_url);
    for _ in 0..2 {
        let out = get(
            &mut h,
            "/api/v1/namespaces/ns/services/https:web:http/proxy/",
        );
        assert_eq!(
            out.request_header("x-kproxy-upstream"),
            Some("service-https")
        );
        assert_eq!(
            out.request_header(":authority"),
            Some("web.ns.svc.corp.example:80")
        );
        assert_eq!(out.request_header("authorization"), None);
    }
    assert_eq!(api.seen().len(), 2);
    assert!(api.seen()[0].header("authorization").is_empty());
    let out = get(&mut h, "/api/v1/namespaces/ns/pods/p/proxy/");
    assert_eq!(out.request_header("x-kproxy-upstream"), Some("apiserver"));
    assert_eq!(api.seen().len(), 2);
}

#[test]
fn rotated_credentials_are_used_for_lookups() {
    let api = FakeApi::start(&[("/base/api/v1/namespaces/ns/services/web", 200, WEB)]);
    let config = r#"{"service_proxy": "direct", "server_path": "/base",
                     "credentials": {"token": "OLD", "shared_data_key": "kproxy.credentials"}}"#;
    let mut h = harness(config, &api.base_url);
    h.plugin()
        .set_shared_data("kproxy.credentials", br#"{"token": "NEW"}"#);
    let out = get(&mut h, "/api/v1/namespaces/ns/services/web:80/proxy/");
    assert_eq!(out.action, Ok(Action::Continue), "{:?}", out.logs);
    let seen = api.seen();
    assert_eq!(
        seen[0].line,
        "GET /base/api/v1/namespaces/ns/services/web HTTP/1.1"
    );
    assert_eq!(seen[0].header("authorization"), ["Bearer NEW"]);
}

#[test]
fn unreachable_apiserver_is_a_503_status() {
    // A port nothing listens on: the host answers the call with its own 503.
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let mut h = harness(DIRECT, &url);
    let out = get(&mut h, "/api/v1/namespaces/ns/services/web/proxy/");
    let (status, body, _) = reply_text(&out);
    assert_eq!(status, 503);
    assert!(
        body.contains("error trying to reach service: service lookup failed:"),
        "{body}"
    );
    // An unknown cluster fails at dispatch.
    let mut h = harness(
        r#"{"service_proxy": "direct", "apiserver_cluster": "nope"}"#,
        &url,
    );
    let out = get(&mut h, "/api/v1/namespaces/ns/services/web/proxy/");
    let (status, body, _) = reply_text(&out);
    assert_eq!(status, 503);
    assert!(body.contains(r#"cannot call cluster \"nope\""#), "{body}");
    assert_eq!(metric(&out, "kproxy.service.lookups"), 0);
}

/// One response from `web` (found by the lookup) through the filter's response callbacks.
fn service_response(
    h: &mut Harness,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Outcome {
    h.exchange(TestRequest {
        method: "GET".to_owned(),
        path: "/api/v1/namespaces/ns/services/web:80/proxy/".to_owned(),
        authority: "localhost:8001".to_owned(),
        headers: Vec::new(),
        body: None,
        response: Some(TestResponse {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.to_vec(),
        }),
    })
}

fn response_header(out: &Outcome, name: &str) -> Option<String> {
    let resp = out.response.as_ref().expect("a response");
    resp.headers
        .iter()
        .find(|(n, _)| n == name.as_bytes())
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

#[test]
fn service_responses_are_rewritten() {
    let api = FakeApi::start(&[("/api/v1/namespaces/ns/services/web", 200, WEB)]);
    let mut h = harness(DIRECT, &api.base_url);
    let html = b"<html><a href=\"/x\">x</a><a href=\"y\">y</a></html>";
    let length = html.len().to_string();

    // A redirect: CORS headers removed, Location rewritten, and (apimachinery rewrites either
    // the Location or the body, never both) the HTML body and its length untouched.
    let out = service_response(
        &mut h,
        302,
        &[
            ("location", "/login"),
            ("access-control-allow-origin", "*"),
            ("access-control-allow-credentials", "true"),
            ("content-type", "text/html; charset=utf-8"),
            ("content-length", &length),
            ("x-other", "kept"),
        ],
        html,
    );
    let resp = out.response.as_ref().expect("a response");
    assert_eq!(resp.action, Ok(Action::Continue));
    assert_eq!(response_header(&out, "access-control-allow-origin"), None);
    assert_eq!(
        response_header(&out, "access-control-allow-credentials"),
        None
    );
    assert_eq!(response_header(&out, "x-other").as_deref(), Some("kept"));
    assert_eq!(
        response_header(&out, "location").as_deref(),
        Some("/api/v1/namespaces/ns/services/web:80/proxy/login")
    );
    assert_eq!(resp.body, html);
    assert_eq!(
        response_header(&out, "content-length"),
        Some(length.clone())
    );

    // An HTML page: links rewritten; the new body has another length, and the filter cannot
    // set it after the headers went (Envoy: a response-headers pause stops everything), so it
    // removes `content-length` and the body goes out chunked.
    let out = service_response(
        &mut h,
        200,
        &[
            ("content-type", "text/html; charset=utf-8"),
            ("content-length", &length),
        ],
        html,
    );
    let resp = out.response.as_ref().expect("a response");
    assert_eq!(resp.action, Ok(Action::Continue));
    assert_eq!(response_header(&out, "content-length"), None);
    let body = String::from_utf8_lossy(&resp.body);
    assert!(
        body.contains("href=\"/api/v1/namespaces/ns/services/web:80/proxy/x\""),
        "{body}"
    );
    assert!(body.contains("href=\"y\""), "{body}");

    // Not HTML: body and length untouched.
    let out = service_response(
        &mut h,
        200,
        &[
            ("content-type", "application/json"),
            ("content-length", "2"),
        ],
        b"{}",
    );
    let resp = out.response.as_ref().expect("a response");
    assert_eq!(resp.body, b"{}");
    assert_eq!(
        response_header(&out, "content-length").as_deref(),
        Some("2")
    );

    // API-server responses are untouched.
    let out = h.exchange(TestRequest {
        method: "GET".to_owned(),
        path: "/api/v1/pods".to_owned(),
        authority: "localhost:8001".to_owned(),
        headers: Vec::new(),
        body: None,
        response: Some(TestResponse {
            status: 200,
            headers: vec![
                ("access-control-allow-origin".to_owned(), "*".to_owned()),
                ("location".to_owned(), "/login".to_owned()),
            ],
            body: b"{}".to_vec(),
        }),
    });
    let resp = out.response.as_ref().expect("a response");
    assert!(
        resp.headers
            .iter()
            .any(|(n, v)| n == b"access-control-allow-origin" && v == b"*")
    );
    assert!(
        resp.headers
            .iter()
            .any(|(n, v)| n == b"location" && v == b"/login")
    );
}

#[test]
fn cross_site_requests_are_rejected_when_enabled() {
    let api = FakeApi::start(&[("/api/v1/namespaces/ns/services/web", 200, WEB)]);
    let config = r#"{"service_proxy": "direct", "cross_site_protection": true, "verbosity": 3}"#;
    let mut h = harness(config, &api.base_url);
    let out = h.request(
        "GET",
        "/api/v1/namespaces/ns/services/web:80/proxy/",
        "localhost:8001",
        &[("origin", "http://evil.example")],
    );
    let (status, body, _) = reply_text(&out);
    assert_eq!((status, body.as_str()), (403, "Forbidden\n"));
    assert_eq!(metric(&out, "kproxy.requests.rejected.cross_site"), 1);
    assert!(
        out.logs.iter().any(|l| format!("{l:?}").contains(
            "Filter rejecting GET /api/v1/namespaces/ns/services/web:80/proxy/ localhost (cross-site)"
        )),
        "{:?}",
        out.logs
    );
    assert!(api.seen().is_empty());
    let out = h.request(
        "GET",
        "/api/v1/pods",
        "localhost:8001",
        &[
            ("sec-fetch-site", "same-origin"),
            ("origin", "http://localhost:8001"),
        ],
    );
    assert_eq!(out.request_header("x-kproxy-upstream"), Some("apiserver"));
}
