//! Direct mode against kubectl-proxy.md §3 and vectors A1–A22 (the parts the filter does).

use super::*;
use crate::decision::{Evaluation, Outcome, evaluate};
use crate::lookup::{ServiceInfo, parse_service};

const WEB: &str = r#"{"spec":{"type":"ClusterIP","clusterIP":"10.0.0.7","selector":{"app":"web"},
    "ports":[{"name":"http","port":80,"targetPort":8080},{"name":"https","port":443,"targetPort":8443}]}}"#;

fn config(extra: &str) -> Config {
    let json =
        format!(r#"{{"service_proxy": "direct", "credentials": {{"token": "TOK"}}{extra}}}"#);
    Config::parse(json.as_bytes()).expect("config")
}

fn head(method: &str, path: &str, headers: &[(&str, &str)]) -> RequestHead {
    RequestHead {
        method: method.into(),
        path: path.into(),
        authority: "localhost:8001".into(),
        headers: headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

fn eval(config: &Config, method: &str, path: &str, headers: &[(&str, &str)]) -> Evaluation {
    let creds = crate::auth::Credentials::Token("TOK".into());
    evaluate(config, &head(method, path, headers), Some(&creds))
}

#[track_caller]
fn lookup(method: &str, path: &str, headers: &[(&str, &str)]) -> Box<ServiceLookup> {
    let e = eval(&config(""), method, path, headers);
    assert_eq!(e.outcome, Outcome::Service, "{method} {path}");
    match e.decision {
        Decision::Lookup(l) => l,
        other => panic!("{method} {path}: expected a lookup, got {other:?}"),
    }
}

fn web() -> LookupAnswer {
    LookupAnswer::Service(parse_service(WEB.as_bytes()).expect("web"))
}

#[track_caller]
fn forward(method: &str, path: &str, headers: &[(&str, &str)]) -> (Forward, RewriteContext) {
    let l = lookup(method, path, headers);
    let r = l.finish(&config(""), &web());
    match r.decision {
        Decision::Forward(f) => (f, r.rewrite.expect("rewrite context")),
        other => panic!("{method} {path}: expected a forward, got {other:?}"),
    }
}

#[track_caller]
fn reply_of(decision: Decision) -> LocalReply {
    match decision {
        Decision::Respond(r) => r,
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn status_json(reply: &LocalReply) -> serde_json::Value {
    assert_eq!(
        reply.headers,
        [("content-type".to_owned(), "application/json".to_owned())]
    );
    assert!(reply.body.ends_with('\n'));
    serde_json::from_str(&reply.body).expect("Status JSON")
}

fn replaced<'a>(f: &'a Forward, name: &str) -> Option<&'a str> {
    f.header_ops.iter().rev().find_map(|op| match op {
        HeaderOp::Replace(n, v) if n == name => Some(v.as_str()),
        _ => None,
    })
}

fn removed(f: &Forward) -> Vec<&str> {
    f.header_ops
        .iter()
        .filter_map(|op| match op {
            HeaderOp::Remove(n) if n != crate::decision::UPSTREAM_HEADER => Some(n.as_str()),
            _ => None,
        })
        .collect()
}

const SVC: &str = "/api/v1/namespaces/ns/services";

/// A1: `…/proxy` without sub-path, GET → 301 to `…/proxy/?a=1` (after the lookup).
#[test]
fn a1_root_redirect() {
    for method in ["GET", "HEAD"] {
        let l = lookup(method, &format!("{SVC}/web:http/proxy?a=1"), &[]);
        assert_eq!(l.backend_path, None);
        let reply = reply_of(l.finish(&config(""), &web()).decision);
        assert_eq!(
            reply,
            LocalReply::moved_permanently(method, &format!("{SVC}/web:http/proxy/?a=1"))
        );
    }
    let l = lookup("GET", &format!("{SVC}/web:80/proxy"), &[]);
    let reply = reply_of(l.finish(&config(""), &web()).decision);
    assert_eq!(reply.status, 301);
    assert_eq!(
        reply.headers[0],
        ("location".to_owned(), format!("{SVC}/web:80/proxy/"))
    );
    assert_eq!(
        reply.body,
        format!("<a href=\"{SVC}/web:80/proxy/\">Moved Permanently</a>.\n\n")
    );
    // The lookup comes first: a Service without a matching port is a 503, not a 301.
    let l = lookup("GET", &format!("{SVC}/web/proxy"), &[]);
    assert_eq!(reply_of(l.finish(&config(""), &web()).decision).status, 503);
}

/// A2: other methods without sub-path go to backend `/`; the backend path being `/`,
/// X-Forwarded-Uri ends in `/` too.
#[test]
fn a2_put_without_sub_path() {
    let (f, _) = forward("PUT", &format!("{SVC}/web:http/proxy"), &[]);
    assert_eq!(f.path, "/");
    assert_eq!(
        replaced(&f, "x-forwarded-uri"),
        Some("/api/v1/namespaces/ns/services/web:http/proxy/")
    );
}

/// A3: numeric port, sub-path, query, X-Forwarded-Uri, no Authorization.
#[test]
fn a3_numeric_port_forward() {
    let (f, ctx) = forward(
        "GET",
        &format!("{SVC}/web:80/proxy/a/b?x=1"),
        &[
            ("authorization", "Bearer client"),
            ("impersonate-user", "bob"),
            ("impersonate-extra-scopes", "s"),
            ("x-remote-user", "u"),
            ("x-remote-group", "g"),
            ("x-remote-extra-foo", "f"),
            ("accept", "*/*"),
        ],
    );
    assert_eq!(f.upstream, Upstream::ServiceHttp);
    assert_eq!(f.path, "/a/b?x=1");
    assert_eq!(
        replaced(&f, "x-kproxy-upstream"),
        Some("service-http"),
        "routing header"
    );
    assert_eq!(
        replaced(&f, ":authority"),
        Some("web.ns.svc.cluster.local:80")
    );
    assert_eq!(
        replaced(&f, "x-forwarded-uri"),
        Some("/api/v1/namespaces/ns/services/web:80/proxy/a/b")
    );
    assert_eq!(
        removed(&f),
        [
            "authorization",
            "impersonate-user",
            "impersonate-extra-scopes",
            "x-remote-user",
            "x-remote-group",
            "x-remote-extra-foo"
        ]
    );
    // Never credentials or impersonation.
    assert!(!f.header_ops.iter().any(|op| matches!(op,
        HeaderOp::Add(n, _) | HeaderOp::Replace(n, _) if n == "authorization" || n.starts_with("impersonate"))));
    assert_eq!(
        ctx,
        RewriteContext {
            path_prepend: "/api/v1/namespaces/ns/services/web:80/proxy".into(),
            backend_host: "web.ns.svc.cluster.local:80".into(),
            request_host: "localhost:8001".into(),
        }
    );
}

/// A4-ish: `https:` selects the TLS upstream; cluster_domain is used.
#[test]
fn https_scheme_and_cluster_domain() {
    let l = lookup("GET", &format!("{SVC}/https:web:443/proxy/"), &[]);
    let cfg = config(r#", "cluster_domain": "corp.example""#);
    let Decision::Forward(f) = l.finish(&cfg, &web()).decision else {
        panic!("forward expected");
    };
    assert_eq!(f.upstream, Upstream::ServiceHttps);
    assert_eq!(replaced(&f, "x-kproxy-upstream"), Some("service-https"));
    assert_eq!(
        replaced(&f, ":authority"),
        Some("web.ns.svc.corp.example:443")
    );
    assert_eq!(f.path, "/");
    assert_eq!(
        replaced(&f, "x-forwarded-uri"),
        Some("/api/v1/namespaces/ns/services/https:web:443/proxy/")
    );
    let (f, _) = forward("GET", &format!("{SVC}/http:web:http/proxy/x"), &[]);
    assert_eq!(f.upstream, Upstream::ServiceHttp);
}

/// A5: a port name is used directly.
#[test]
fn a5_named_port() {
    let (f, _) = forward("GET", &format!("{SVC}/web:https/proxy/"), &[]);
    assert_eq!(
        replaced(&f, ":authority"),
        Some("web.ns.svc.cluster.local:443")
    );
}

/// A6 and the SplitSchemeNamePort table's invalid ids: 400 before any lookup.
#[test]
fn a6_invalid_ids() {
    for id in [
        "HTTP:web:80",
        ":asdf",
        "aoeu:asdf:htns",
        "http::asdf",
        "http::",
        "a:b:c:d",
    ] {
        let e = eval(&config(""), "GET", &format!("{SVC}/{id}/proxy/"), &[]);
        let reply = reply_of(e.decision);
        assert_eq!(reply.status, 400, "{id}");
        assert_eq!(
            reply.body,
            format!(
                "{{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{{}},\"status\":\"Failure\",\"message\":\"invalid service request \\\"{id}\\\"\",\"reason\":\"BadRequest\",\"code\":400}}\n"
            )
        );
        status_json(&reply);
    }
    // The valid rows of the table reach the lookup with the right parts.
    for (id, scheme, name, port) in [
        ("aoeu", "", "aoeu", ""),
        ("aoeu:asdf", "", "aoeu", "asdf"),
        ("aoeu:", "", "aoeu", ""),
        ("http:aoeu:asdf", "http", "aoeu", "asdf"),
        ("https:aoeu:", "https", "aoeu", ""),
        (":aoeu:asdf", "", "aoeu", "asdf"),
    ] {
        let l = lookup("GET", &format!("{SVC}/{id}/proxy/"), &[]);
        assert_eq!(
            (l.scheme.as_str(), l.name.as_str(), l.port.as_str()),
            (scheme, name, port),
            "{id}"
        );
        assert_eq!(l.id, id);
    }
    // `%3A` is `:` in the id; the prefix keeps the escaped form.
    let l = lookup("GET", &format!("{SVC}/web%3A80/proxy/x"), &[]);
    assert_eq!((l.name.as_str(), l.port.as_str()), ("web", "80"));
    assert_eq!(l.path_prepend, format!("{SVC}/web%3A80/proxy"));
}

fn finish_reply(path: &str, answer: &LookupAnswer) -> LocalReply {
    reply_of(
        lookup("GET", path, &[])
            .finish(&config(""), answer)
            .decision,
    )
}

/// A7: a numeric port that is not a service port.
#[test]
fn a7_unknown_numeric_port() {
    let reply = finish_reply(&format!("{SVC}/web:8080/proxy/"), &web());
    assert_eq!(reply.status, 503);
    assert_eq!(
        status_json(&reply)["message"],
        "no service port 8080 found for service \"web\""
    );
    assert_eq!(status_json(&reply)["reason"], "ServiceUnavailable");
}

/// A8: no port given but every port is named.
#[test]
fn a8_all_ports_named() {
    let reply = finish_reply(&format!("{SVC}/web/proxy/"), &web());
    assert_eq!(reply.status, 503);
    assert_eq!(
        reply.body,
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"no endpoints available for service \\\"web\\\"\",\"reason\":\"ServiceUnavailable\",\"code\":503}\n"
    );
    // The whole id is quoted.
    let reply = finish_reply(&format!("{SVC}/https:web:nope/proxy/"), &web());
    assert_eq!(
        status_json(&reply)["message"],
        "no endpoints available for service \"https:web:nope\""
    );
}

/// A9 as "no selector": never forwarded.
#[test]
fn a9_no_selector() {
    let manual = LookupAnswer::Service(ServiceInfo {
        kind: "ClusterIP".into(),
        headless: false,
        has_selector: false,
        ports: vec![crate::lookup::ServicePort {
            name: "http".into(),
            port: 80,
            target_port: Some(8080),
        }],
    });
    let reply = finish_reply(&format!("{SVC}/web:http/proxy/"), &manual);
    assert_eq!(reply.status, 503);
    assert_eq!(
        status_json(&reply)["message"],
        "no endpoints available for service \"web:http\""
    );
}

/// A10: the lookup's 404 (and other 4xx) pass verbatim; failures are 503.
#[test]
fn a10_lookup_errors() {
    let body = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"services \"missing\" not found","reason":"NotFound","details":{"name":"missing","kind":"services"},"code":404}"#;
    for status in [404, 401, 403] {
        let answer = LookupAnswer::Refused {
            status,
            body: body.into(),
        };
        let reply = finish_reply(&format!("{SVC}/missing:80/proxy/"), &answer);
        assert_eq!(reply.status, status);
        assert_eq!(reply.body, body);
        assert_eq!(
            reply.headers,
            [("content-type".to_owned(), "application/json".to_owned())]
        );
    }
    let reply = finish_reply(
        &format!("{SVC}/web/proxy/"),
        &LookupAnswer::Failed("the API server answered 500".into()),
    );
    assert_eq!(reply.status, 503);
    assert_eq!(
        status_json(&reply)["message"],
        "error trying to reach service: service lookup failed: the API server answered 500"
    );
}

/// A11, A12 and §3.4: decoded parts joined, `path.Join` cleaning, trailing slash, re-escaping.
#[test]
fn a11_a12_backend_paths() {
    for (sub, backend, forwarded) in [
        ("/a%2Fb", "/a/b", "/a/b"),
        ("/%2Fa/%2E%2E/b/", "/b/", "/b/"),
        ("/a/%2E%2E/%2E%2E/b%2F", "/b/", "/b/"),
        ("/", "/", "/"),
        ("/x/", "/x/", "/x/"),
        ("/a%2F%2Fb/", "/a/b/", "/a/b/"),
        ("/%2E%2E/%2E%2E/etc", "/etc", "/etc"),
        ("/a%20b%3Fc", "/a%20b%3Fc", "/a%20b%3Fc"),
        ("/caf%C3%A9", "/caf%C3%A9", "/caf%C3%A9"),
        ("/%FF", "/%FF", "/%FF"),
        ("/a;b=c@d:e", "/a;b=c@d:e", "/a;b=c@d:e"),
        ("/x/%2E", "/x", "/x"),
    ] {
        let path = format!("{SVC}/web:80/proxy{sub}?q=%2F");
        let (f, _) = forward("GET", &path, &[]);
        assert_eq!(f.path, format!("{backend}?q=%2F"), "{sub}");
        assert_eq!(
            replaced(&f, "x-forwarded-uri"),
            Some(format!("{SVC}/web:80/proxy{forwarded}").as_str()),
            "{sub}"
        );
    }
    // The mux cleans `//a/../b/` itself (301), so only escaped forms reach the filter unclean;
    // `%2F` in the prefix splits like RequestInfo (here it makes the URL a non-proxy path).
    let e = eval(&config(""), "GET", &format!("{SVC}/web%2Fx/proxy/"), &[]);
    assert!(matches!(e.decision, Decision::Forward(ref f) if f.upstream == Upstream::ApiServer));
    // `%2F` before `proxy` that still yields the grammar is recognised.
    let l = lookup("GET", "/api/v1/namespaces%2Fns/services/web/proxy%2Fa", &[]);
    assert_eq!(l.namespace, "ns");
    assert_eq!(l.backend_path.as_deref(), Some("/a"));
    assert_eq!(l.path_prepend, "/api/v1/namespaces/ns/services/web/proxy");
}

/// A13: any `dryRun` parameter → 400, before the id check.
#[test]
fn a13_dry_run() {
    for q in [
        "dryRun=All",
        "dryRun",
        "dryRun=",
        "a=1&dryRun=x",
        "dry%52un=1",
    ] {
        let e = eval(
            &config(""),
            "POST",
            &format!("{SVC}/HTTP:bad:1/proxy/x?{q}"),
            &[],
        );
        let reply = reply_of(e.decision);
        assert_eq!(reply.status, 400, "{q}");
        assert_eq!(status_json(&reply)["message"], "dryRun is not supported");
    }
    for q in [
        "dryrun=All",
        "xdryRun=1",
        "dryRun;=1",
        "dryRun=%zz",
        "a=dryRun",
    ] {
        assert!(!has_dry_run(q), "{q}");
    }
}

/// A22 and the method list: 405 first of all.
#[test]
fn a22_method_not_allowed() {
    for method in ["TRACE", "CONNECT", "PROPFIND", "get"] {
        let e = eval(
            &config(""),
            method,
            &format!("{SVC}/HTTP:x:1/proxy/?dryRun=1"),
            &[],
        );
        let reply = reply_of(e.decision);
        assert_eq!(reply.status, 405, "{method}");
        assert_eq!(
            reply.body,
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"the server does not allow this method on the requested resource\",\"reason\":\"MethodNotAllowed\",\"details\":{},\"code\":405}\n"
        );
    }
    for method in CONNECT_METHODS {
        lookup(method, &format!("{SVC}/web/proxy/"), &[]);
    }
}

/// Headless Services dial the numeric targetPort; ExternalName is a 404 for endpoints.
#[test]
fn headless_and_external_name() {
    let headless = LookupAnswer::Service(
        parse_service(
            br#"{"spec":{"clusterIP":"None","selector":{"a":"b"},"ports":[{"name":"http","port":80,"targetPort":8080}]}}"#,
        )
        .expect("svc"),
    );
    let Decision::Forward(f) = lookup("GET", &format!("{SVC}/db:80/proxy/"), &[])
        .finish(&config(""), &headless)
        .decision
    else {
        panic!("forward expected");
    };
    assert_eq!(
        replaced(&f, ":authority"),
        Some("db.ns.svc.cluster.local:8080")
    );
    let ext = LookupAnswer::Service(
        parse_service(br#"{"spec":{"type":"ExternalName","externalName":"example.com"}}"#)
            .expect("svc"),
    );
    let reply = finish_reply(&format!("{SVC}/ext/proxy/"), &ext);
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.body,
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"endpoints \\\"ext\\\" not found\",\"reason\":\"NotFound\",\"details\":{\"name\":\"ext\",\"kind\":\"endpoints\"},\"code\":404}\n"
    );
}

/// Names that cannot be Services are answered 404 without a lookup.
#[test]
fn impossible_names_are_not_looked_up() {
    for id in ["%2E%2E", "Web", "a%20b", "we%22b"] {
        let e = eval(&config(""), "GET", &format!("{SVC}/{id}/proxy/"), &[]);
        let reply = reply_of(e.decision);
        assert_eq!(reply.status, 404, "{id}");
        assert_eq!(status_json(&reply)["reason"], "NotFound");
        assert_eq!(status_json(&reply)["details"]["kind"], "services");
    }
    let reply = reply_of(eval(&config(""), "GET", &format!("{SVC}/we%22b/proxy/"), &[]).decision);
    assert_eq!(
        status_json(&reply)["message"],
        "services \"we\\\"b\" not found"
    );
}

/// Pods, nodes, other paths and apiserver mode are untouched.
#[test]
fn only_service_urls_go_direct() {
    for path in [
        "/api/v1/namespaces/ns/pods/p/proxy/",
        "/api/v1/nodes/n/proxy/",
        "/api/v1/namespaces/ns/services/web",
        "/api/v1/namespaces/ns/services/web/proxyx",
        "/apis/apps/v1/namespaces/ns/services/web/proxy/",
        "/api/v2/namespaces/ns/services/web/proxy/",
    ] {
        let e = eval(&config(""), "GET", path, &[]);
        match e.decision {
            Decision::Forward(f) => assert_eq!(f.upstream, Upstream::ApiServer, "{path}"),
            other => panic!("{path}: {other:?}"),
        }
        assert_eq!(e.outcome, Outcome::Accepted);
    }
    let apiserver = Config::parse(br#"{"credentials": {"token": "TOK"}}"#).expect("config");
    let e = eval(&apiserver, "TRACE", &format!("{SVC}/web/proxy/"), &[]);
    assert!(matches!(e.decision, Decision::Forward(ref f) if f.upstream == Upstream::ApiServer));
    // kubectl's filter still runs first (and the api prefix is stripped).
    let cfg = config(r#", "api_prefix": "/k/""#);
    let l = match eval(&cfg, "GET", &format!("/k{SVC}/web/proxy/x"), &[]).decision {
        Decision::Lookup(l) => l,
        other => panic!("{other:?}"),
    };
    assert_eq!(l.path_prepend, format!("{SVC}/web/proxy"));
    let e = eval(
        &config(r#", "reject_paths": ["services"]"#),
        "GET",
        &format!("{SVC}/web/proxy/"),
        &[],
    );
    assert_eq!(reply_of(e.decision), LocalReply::forbidden());
}

/// Websocket upgrades keep the query (the k/k#77142 fix).
#[test]
fn upgrades_keep_the_query() {
    let (f, _) = forward(
        "GET",
        &format!("{SVC}/web:80/proxy/ws?t=1"),
        &[("connection", "Upgrade"), ("upgrade", "websocket")],
    );
    assert_eq!(f.path, "/ws?t=1");
}

#[test]
fn cross_site_rules() {
    let h = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    };
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, bool);
    let cases: &[Case<'_>] = &[
        (&[], "localhost:8001", false),
        (&[("sec-fetch-site", "cross-site")], "localhost:8001", true),
        (&[("sec-fetch-site", "same-site")], "localhost:8001", true),
        (
            &[("sec-fetch-site", "same-origin")],
            "localhost:8001",
            false,
        ),
        (&[("sec-fetch-site", "none")], "localhost:8001", false),
        (&[("origin", "null")], "localhost:8001", true),
        (
            &[("origin", "http://localhost:8001")],
            "localhost:8001",
            false,
        ),
        (
            &[("origin", "http://LOCALHOST:8001")],
            "localhost:8001",
            false,
        ),
        (&[("origin", "http://evil.com")], "localhost:8001", true),
        (
            &[("origin", "http://localhost:8002")],
            "localhost:8001",
            true,
        ),
        (&[("origin", "http://localhost")], "localhost:80", false),
        (&[("origin", "http://localhost:80")], "localhost", false),
        (&[("origin", "https://localhost")], "localhost:443", false),
        (&[("origin", "https://localhost")], "localhost:80", true),
        (&[("origin", "http://[::1]:8001")], "[::1]:8001", false),
        (&[("origin", "garbage")], "localhost:8001", true),
        (
            &[
                ("origin", "http://localhost:8001"),
                ("sec-fetch-site", "cross-site"),
            ],
            "localhost:8001",
            true,
        ),
    ];
    for (headers, authority, want) in cases {
        assert_eq!(
            is_cross_site(&h(headers), authority),
            *want,
            "{headers:?} {authority}"
        );
    }
}

#[test]
fn cross_site_protection_rejects_forwarded_requests_only() {
    let on = Config::parse(
        br#"{"cross_site_protection": true, "static_prefix": "/static/", "verbosity": 3}"#,
    )
    .expect("config");
    let evil = [("origin", "http://evil.com")];
    let e = eval(&on, "GET", "/api/v1/pods", &evil);
    assert_eq!(e.outcome, Outcome::CrossSite);
    assert_eq!(reply_of(e.decision), LocalReply::forbidden());
    assert_eq!(
        e.log.as_deref(),
        Some("Filter rejecting GET /api/v1/pods localhost (cross-site)")
    );
    assert_eq!(e.outcome.counters(), [12]);
    assert_eq!(
        crate::decision::COUNTERS[12],
        "kproxy.requests.rejected.cross_site"
    );
    // Same origin, curl-like and static requests pass.
    let ok = eval(
        &on,
        "GET",
        "/api/v1/pods",
        &[("origin", "http://localhost:8001")],
    );
    assert_eq!(ok.outcome, Outcome::Accepted);
    assert_eq!(
        eval(&on, "GET", "/api/v1/pods", &[]).outcome,
        Outcome::Accepted
    );
    assert_eq!(
        eval(&on, "GET", "/static/x", &evil).outcome,
        Outcome::Static
    );
    // With the filter disabled too; and off by default.
    let off_filter = Config::parse(br#"{"cross_site_protection": true, "disable_filter": true}"#)
        .expect("config");
    assert_eq!(
        eval(&off_filter, "GET", "/api/v1/pods", &evil).outcome,
        Outcome::CrossSite
    );
    let default = Config::default();
    assert_eq!(
        eval(&default, "GET", "/api/v1/pods", &evil).outcome,
        Outcome::Accepted
    );
    // Direct-mode service URLs are protected as well.
    let direct = config(r#", "cross_site_protection": true"#);
    let e = eval(
        &direct,
        "GET",
        &format!("{SVC}/web/proxy/"),
        &[("sec-fetch-site", "cross-site")],
    );
    assert_eq!(e.outcome, Outcome::CrossSite);
}
