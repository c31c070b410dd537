//! Direct service-proxy mode beyond the scenario table (`scenarios/direct.toml`): the lookup
//! cache's expiry, the shape of the Service lookup (credentials, impersonation, server path),
//! lookup failures (401/403 verbatim and not cached, 5xx and an unreachable API server → 503),
//! on the shim and on Envoy; and self-tests of the harness pieces the table relies on (the fake
//! services' routes, `{port:…}` substitution, decoded-body checks).
//!
//! Expected values follow kubectl-proxy.md §3 and /tmp/kp/direct.md, never our own output.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::time::Duration;

use crate::apiserver::{FakeApiServer, FakeOptions};
use crate::backend::{self, Backend, Running};
use crate::kubeconfig::{self, TempDir, Variant};
use crate::rawhttp::{self, RawResponse};
use crate::replies::Recorded;
use crate::runner::{self, Observation, Vars};
use crate::scenario::{Expect, ServiceDecl};
use crate::services::{self, FakeServices, Serve};

/// A fake API server with Services, their fake backends, and a running backend in direct mode.
struct Rig {
    fake: FakeApiServer,
    services: FakeServices,
    running: Running,
    _dir: TempDir,
}

/// The Service `ns/{name}`: one unnamed port 80 (targetPort 8080) with a selector.
fn service(name: &str, port: u16) -> serde_json::Value {
    let decl: ServiceDecl = toml::from_str(&format!(
        "namespace = \"ns\"\nname = \"{name}\"\nclusterIP = \"10.96.1.1\"\n\
         selector = {{ app = \"{name}\" }}\nports = [{{ port = {port}, targetPort = 8080 }}]\n"
    ))
    .expect("service declaration parses");
    decl.to_json()
}

/// Starts everything for `backend` (`None` when it is unavailable locally), with Services
/// `ns/{name}` (port 80, plain fake backend) for every name, `--service-proxy=direct`, their
/// `--connect-to` entries and `extra` flags.
fn rig(backend: Backend, variant: Variant, names: &[&str], extra: &[&str]) -> Option<Rig> {
    backend::require(backend)?;
    let fake = FakeApiServer::start(FakeOptions {
        tls: variant.tls(),
        anonymous: !variant.tls(),
        ..FakeOptions::default()
    })
    .expect("fake API server");
    let mut services = FakeServices::new().expect("fake services");
    let mut flags = vec!["--service-proxy=direct".to_owned()];
    for name in names {
        fake.set_service("ns", name, service(name, 80));
        let port = services.add(name, Serve::Plain).expect("fake service");
        flags.push(format!(
            "--connect-to={name}.ns.svc.cluster.local:80:127.0.0.1:{port}"
        ));
    }
    flags.extend(extra.iter().map(|s| (*s).to_owned()));
    let dir = TempDir::new(backend.name()).expect("temp dir");
    let kc = kubeconfig::write(&dir, &fake, variant).expect("kubeconfig");
    let running = backend
        .spawn(&flags, &kc, &fake, &dir)
        .unwrap_or_else(|e| panic!("{} did not start: {e:#}", backend.name()));
    Some(Rig {
        fake,
        services,
        running,
        _dir: dir,
    })
}

impl Rig {
    /// `GET path` with `Host: 127.0.0.1`, and how many Service lookups it caused.
    fn get(&self, path: &str) -> (RawResponse, usize) {
        let before = self.fake.service_gets().len();
        let req = rawhttp::build_request(
            "GET",
            path,
            "HTTP/1.1",
            &[
                ("Host".to_owned(), "127.0.0.1".to_owned()),
                ("Connection".to_owned(), "close".to_owned()),
            ],
            b"",
        );
        let resp = rawhttp::send(self.running.addr(), &req, false)
            .unwrap_or_else(|e| panic!("GET {path}: {e:#}\n{}", self.running.logs()));
        (resp, self.fake.service_gets().len() - before)
    }

    /// The Service lookups the fake API server received (untagged GETs of a Service).
    fn lookups(&self) -> Vec<Recorded> {
        self.fake
            .requests()
            .into_iter()
            .filter(|r| r.header("x-kproxy-case").is_none())
            .filter(|r| crate::apiserver::service_get_path(r.path()).is_some())
            .collect()
    }
}

#[track_caller]
fn assert_status(resp: &RawResponse, status: u16, rig: &Rig, what: &str) {
    assert_eq!(
        resp.status,
        status,
        "{what}: body {:?}\n{}",
        resp.text(),
        rig.running.logs()
    );
}

// --- the lookup cache expires -------------------------------------------------------------------

fn cache_expires(backend: Backend) {
    let Some(rig) = rig(
        backend,
        Variant::Token,
        &["ttl"],
        &["--service-cache-ttl=1s"],
    ) else {
        return;
    };
    let (resp, lookups) = rig.get("/api/v1/namespaces/ns/services/ttl:80/proxy/first");
    assert_status(&resp, 200, &rig, "first request");
    assert_eq!(lookups, 1, "the first request looks the Service up");
    // The Service loses port 80; the cached copy still has it for up to 1 s.
    rig.fake.set_service("ns", "ttl", service("ttl", 81));
    let (resp, lookups) = rig.get("/api/v1/namespaces/ns/services/ttl:80/proxy/second");
    assert_status(&resp, 200, &rig, "second request (cached Service)");
    assert_eq!(lookups, 0, "within the TTL the cache answers");
    std::thread::sleep(Duration::from_millis(1600));
    let (resp, lookups) = rig.get("/api/v1/namespaces/ns/services/ttl:80/proxy/third");
    assert_eq!(lookups, 1, "after the TTL the Service is looked up again");
    assert_status(
        &resp,
        503,
        &rig,
        "third request (fresh Service without port 80)",
    );
    assert_eq!(
        resp.text(),
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\
         \"message\":\"no service port 80 found for service \\\"ttl\\\"\",\
         \"reason\":\"ServiceUnavailable\",\"code\":503}\n"
    );
    let targets: Vec<String> = rig
        .services
        .requests()
        .iter()
        .map(|s| s.request.target.clone())
        .collect();
    assert_eq!(targets, ["/first", "/second"]);
}

#[test]
fn cache_expires_after_ttl_shim() {
    cache_expires(Backend::Shim);
}

#[test]
fn cache_expires_after_ttl_envoy() {
    cache_expires(Backend::Envoy);
}

// --- the lookup request -----------------------------------------------------------------------

fn lookup_carries_credentials_and_impersonation(backend: Backend) {
    let Some(rig) = rig(backend, Variant::Impersonate, &["web"], &[]) else {
        return;
    };
    let (resp, lookups) = rig.get("/api/v1/namespaces/ns/services/web/proxy/x");
    assert_status(&resp, 200, &rig, "request through the Service");
    assert_eq!(lookups, 1);
    let all = rig.lookups();
    let lookup = all.first().expect("one lookup");
    assert_eq!(lookup.method, "GET");
    assert_eq!(lookup.target, "/api/v1/namespaces/ns/services/web");
    assert_eq!(lookup.header("authorization"), Some("Bearer TOK"));
    assert_eq!(lookup.header("accept"), Some("application/json"));
    assert_eq!(lookup.header("impersonate-user"), Some("jane"));
    assert_eq!(lookup.header_values("impersonate-group"), ["g1", "g2"]);
    assert_eq!(lookup.header("impersonate-extra-scopes"), Some("s1"));
    assert!(lookup.body.is_empty(), "a lookup has no body");
    // The Service itself gets none of it.
    let seen = rig.services.requests();
    let svc = &seen.first().expect("the Service was reached").request;
    for h in [
        "authorization",
        "impersonate-user",
        "impersonate-group",
        "impersonate-extra-scopes",
    ] {
        assert_eq!(svc.header(h), None, "{h} reached the Service");
    }
}

#[test]
fn lookup_carries_credentials_and_impersonation_shim() {
    lookup_carries_credentials_and_impersonation(Backend::Shim);
}

#[test]
fn lookup_carries_credentials_and_impersonation_envoy() {
    lookup_carries_credentials_and_impersonation(Backend::Envoy);
}

fn lookup_uses_server_path(backend: Backend) {
    let Some(rig) = rig(
        backend,
        Variant::ServerPath,
        &["web"],
        &["--append-server-path"],
    ) else {
        return;
    };
    let (resp, _) = rig.get("/api/v1/namespaces/ns/services/web/proxy/p");
    assert_status(&resp, 200, &rig, "request through the Service");
    let targets: Vec<String> = rig.lookups().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, ["/base/path/api/v1/namespaces/ns/services/web"]);
    // The redirect stays in the apiserver's view: no server path, no kubectl prefix.
    let (resp, _) = rig.get("/api/v1/namespaces/ns/services/web/proxy");
    assert_status(&resp, 301, &rig, "no sub-path");
    assert_eq!(
        resp.header("location"),
        Some("/api/v1/namespaces/ns/services/web/proxy/")
    );
}

#[test]
fn lookup_uses_server_path_shim() {
    lookup_uses_server_path(Backend::Shim);
}

#[test]
fn lookup_uses_server_path_envoy() {
    lookup_uses_server_path(Backend::Envoy);
}

// --- lookup failures --------------------------------------------------------------------------

const UNAVAILABLE_PREFIX: &str = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\
     \"status\":\"Failure\",\"message\":\"error trying to reach service: service lookup failed: ";
const UNAVAILABLE_SUFFIX: &str = "\",\"reason\":\"ServiceUnavailable\",\"code\":503}\n";

fn lookup_failures(backend: Backend) {
    let Some(rig) = rig(backend, Variant::Token, &["web", "broken"], &[]) else {
        return;
    };
    // 401 (the API server no longer accepts our token): passed verbatim, not cached.
    rig.fake.set_token("rotated-elsewhere");
    for attempt in 0..2 {
        let (resp, lookups) = rig.get("/api/v1/namespaces/ns/services/web/proxy/");
        assert_status(&resp, 401, &rig, "lookup answered 401");
        assert_eq!(
            resp.text(),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\
             \"message\":\"Unauthorized\",\"reason\":\"Unauthorized\",\"code\":401}",
            "the lookup's 401 body verbatim"
        );
        assert_eq!(
            resp.header("content-type"),
            Some("application/json"),
            "attempt {attempt}"
        );
        assert_eq!(lookups, 1, "a 401 is never cached (attempt {attempt})");
    }
    rig.fake.set_token("TOK");
    let (resp, lookups) = rig.get("/api/v1/namespaces/ns/services/web/proxy/");
    assert_status(&resp, 200, &rig, "after the token works again");
    assert_eq!(lookups, 1);

    // 403: verbatim, not cached.
    let forbidden = b"{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"services \\\"broken\\\" is forbidden\",\"reason\":\"Forbidden\",\"details\":{\"name\":\"broken\",\"kind\":\"services\"},\"code\":403}\n";
    rig.fake.set_service_reply("ns", "broken", 403, forbidden);
    for _ in 0..2 {
        let (resp, lookups) = rig.get("/api/v1/namespaces/ns/services/broken/proxy/");
        assert_status(&resp, 403, &rig, "lookup answered 403");
        assert_eq!(resp.body, forbidden, "the lookup's 403 body verbatim");
        assert_eq!(lookups, 1, "a 403 is never cached");
    }

    // 500: 503 Status, not cached.
    rig.fake
        .set_service_reply("ns", "broken", 500, b"{\"oops\":true}");
    for _ in 0..2 {
        let (resp, lookups) = rig.get("/api/v1/namespaces/ns/services/broken/proxy/");
        assert_status(&resp, 503, &rig, "lookup answered 500");
        let text = resp.text();
        assert!(
            text.starts_with(UNAVAILABLE_PREFIX) && text.ends_with(UNAVAILABLE_SUFFIX),
            "body {text:?}"
        );
        assert_eq!(resp.header("content-type"), Some("application/json"));
        assert_eq!(lookups, 1, "a 5xx is never cached");
    }
    assert!(
        rig.services.requests().iter().all(|s| s.server == "web"),
        "nothing reached the broken Service's backend"
    );
}

#[test]
fn lookup_failures_shim() {
    lookup_failures(Backend::Shim);
}

#[test]
fn lookup_failures_envoy() {
    lookup_failures(Backend::Envoy);
}

fn api_server_unreachable(backend: Backend) {
    let Some(rig) = rig(backend, Variant::ClosedPort, &["web"], &[]) else {
        return;
    };
    let (resp, _) = rig.get("/api/v1/namespaces/ns/services/web/proxy/");
    assert_status(&resp, 503, &rig, "API server down");
    let text = resp.text();
    assert!(
        text.starts_with(UNAVAILABLE_PREFIX) && text.ends_with(UNAVAILABLE_SUFFIX),
        "body {text:?}"
    );
    assert!(rig.services.requests().is_empty());
}

#[test]
fn api_server_unreachable_is_503_shim() {
    api_server_unreachable(Backend::Shim);
}

#[test]
fn api_server_unreachable_is_503_envoy() {
    api_server_unreachable(Backend::Envoy);
}

// --- harness self-tests -------------------------------------------------------------------------

fn fake_get(port: u16, target: &str, headers: &[(&str, &str)]) -> RawResponse {
    let mut h = vec![("Host".to_owned(), "svc.example:80".to_owned())];
    h.extend(
        headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let req = rawhttp::build_request("GET", target, "HTTP/1.1", &h, b"");
    rawhttp::send(([127, 0, 0, 1], port).into(), &req, false).expect("fake service answers")
}

#[test]
fn fake_service_routes() {
    let mut svcs = FakeServices::new().expect("fake services");
    let port = svcs.add("a", Serve::Plain).expect("plain");
    let refused = svcs.add("dead", Serve::Refused).expect("refused");
    svcs.alias("a-80", port).expect("alias");
    assert_eq!(svcs.port("a-80"), Some(port));
    let page = services::html_page("svc.example:80");
    assert!(page.contains("http://svc.example:80/same"));

    let r = fake_get(port, "/html/identity", &[]);
    assert_eq!(
        (r.status, r.header("content-type")),
        (200, Some("text/html; charset=utf-8"))
    );
    assert_eq!(r.text(), page);
    let r = fake_get(port, "/html/gzip", &[]);
    assert_eq!(r.header("content-encoding"), None, "no gzip unless asked");
    let r = fake_get(port, "/html/gzip", &[("Accept-Encoding", "gzip")]);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(runner::decode_body(&r).as_deref(), Ok(page.as_bytes()));
    let r = fake_get(port, "/html/deflate", &[]);
    assert_eq!(r.header("content-encoding"), Some("deflate"));
    // Raw DEFLATE: no zlib header (a zlib stream starts with 0x78).
    assert_ne!(r.body.first(), Some(&0x78));
    let mut raw = Vec::new();
    flate2::read::DeflateDecoder::new(r.body.as_slice())
        .read_to_end(&mut raw)
        .expect("raw deflate");
    assert_eq!(raw, page.as_bytes());

    let r = fake_get(port, "/redirect?location=/dir/%3Fn%3D%252F&status=301", &[]);
    assert_eq!((r.status, r.header("location")), (301, Some("/dir/?n=%2F")));
    let r = fake_get(port, "/redirect/same-host/x/y", &[]);
    assert_eq!(
        (r.status, r.header("location")),
        (302, Some("http://svc.example:80/x/y"))
    );
    let r = fake_get(port, "/cors", &[]);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let r = fake_get(port, "/status/418", &[]);
    assert_eq!((r.status, r.text().as_str()), (418, "backend says 418\n"));
    let r = fake_get(port, "/echo?q=1", &[("X-Kproxy-Case", "c1")]);
    let doc: serde_json::Value = serde_json::from_slice(&r.body).expect("echo JSON");
    assert_eq!(doc["target"], "/echo?q=1");
    assert_eq!(r.header("x-fake-service"), Some("a"));

    let seen = svcs.requests_for_case("c1");
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].server.as_str(), seen[0].tls), ("a", false));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", refused)).is_err(),
        "the refused port refuses"
    );
}

#[test]
fn service_declarations_render_services() {
    let decl: ServiceDecl = toml::from_str(
        r#"
namespace = "ns"
name = "web"
clusterIP = "None"
selector = { app = "web" }
ports = [
  { name = "http", port = 80, targetPort = 8080, serve = "plain" },
  { port = 81, targetPort = "metrics" },
  { name = "tls", port = 443, serve = "tls" },
]
"#,
    )
    .expect("parses");
    let labels: Vec<(String, usize)> = decl.labels();
    assert_eq!(
        labels,
        [
            ("web-http".to_owned(), 0),
            ("web-80".to_owned(), 0),
            ("web-tls".to_owned(), 2),
            ("web-443".to_owned(), 2)
        ]
    );
    let json = decl.to_json();
    assert_eq!(json["spec"]["clusterIP"], "None");
    assert_eq!(json["spec"]["selector"]["app"], "web");
    assert_eq!(json["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(json["spec"]["ports"][1]["targetPort"], "metrics");
    assert!(json["spec"]["ports"][1].get("name").is_none());
    assert!(json["spec"]["ports"][2].get("targetPort").is_none());
    let none: ServiceDecl = toml::from_str("namespace = \"ns\"\nname = \"n\"\n").expect("minimal");
    assert!(none.to_json()["spec"].get("selector").is_none());
}

#[test]
fn port_placeholders_are_substituted() {
    let ports: BTreeMap<String, u16> = [("web-http".to_owned(), 4242)].into();
    assert_eq!(
        runner::substitute_ports("--connect-to=a:80:127.0.0.1:{port:web-http}", &ports),
        "--connect-to=a:80:127.0.0.1:4242"
    );
    assert_eq!(
        runner::substitute_ports("{port:other}", &ports),
        "{port:other}",
        "unknown labels stay (and fail the group)"
    );
}

fn html_obs(body: Vec<u8>, headers: &[(&str, &str)], trailing: usize) -> Observation {
    Observation {
        response: Some(RawResponse {
            status: 200,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body,
            ..RawResponse::default()
        }),
        trailing: Some(trailing),
        ..Observation::default()
    }
}

#[test]
fn decoded_body_checks_encoding_and_framing() {
    let expect: Expect = toml::from_str("decoded_body = \"<a>\"").expect("parses");
    let vars = Vars {
        api: "127.0.0.1:6443".into(),
        token: "TOK".into(),
    };
    let check = |o: &Observation| runner::check(Backend::Shim, &vars, &expect, o);
    assert!(check(&html_obs(b"<a>".to_vec(), &[], 0)).is_empty());
    let gz = services::gzip("<a>");
    let n = gz.len().to_string();
    assert!(
        check(&html_obs(
            gz.clone(),
            &[("Content-Encoding", "gzip"), ("Content-Length", &n)],
            0
        ))
        .is_empty()
    );
    assert!(
        check(&html_obs(
            services::deflate("<a>"),
            &[("Content-Encoding", "deflate")],
            0
        ))
        .is_empty()
    );
    // Wrong decoded text, a short Content-Length, chunked plus Content-Length, bad gzip.
    assert_eq!(check(&html_obs(b"<b>".to_vec(), &[], 0)).len(), 1);
    assert_eq!(
        check(&html_obs(b"<a>".to_vec(), &[("Content-Length", "3")], 5)).len(),
        1
    );
    assert_eq!(
        check(&html_obs(
            b"<a>".to_vec(),
            &[("Content-Length", "3"), ("Transfer-Encoding", "chunked")],
            0
        ))
        .len(),
        1
    );
    assert_eq!(
        check(&html_obs(
            b"<a>".to_vec(),
            &[("Content-Encoding", "gzip")],
            0
        ))
        .len(),
        1
    );
}
