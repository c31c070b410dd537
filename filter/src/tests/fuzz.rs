//! Property tests (the "fuzz targets", on stable with `proptest`): the routing decision against an
//! independent model of what kubectl would check, the service-id parser against apimachinery's
//! `SplitSchemeNamePort`, and the plugin-configuration parser on arbitrary input.
//!
//! The model in `model` re-derives kubectl's view of a request (decoded stripped path, raw method,
//! host) from the Go sources' rules without calling the filter's internals; regexes go straight
//! to `regex-lite`. Case counts: `PROPTEST_CASES` (default [`DEFAULT_CASES`]); failures are not
//! persisted to disk, add a found case as a table row instead.

mod arb;
mod config_props;
mod model;

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

use crate::decision::{
    Decision, Forward, HeaderOp, RequestHead, UPSTREAM_HEADER, Upstream, decide,
};
use crate::service::{parse_proxy_path, split_scheme_name_port};

use arb::Spec;
use model::{View, Why};

/// Cases per property without `PROPTEST_CASES`; all properties run in well under 20 s (debug).
const DEFAULT_CASES: u32 = 512;

/// The runner configuration: `PROPTEST_CASES` or `default`, no regression files.
fn runner(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Applies header operations the way a host does (names compared case-insensitively).
fn apply(headers: &[(String, String)], ops: &[HeaderOp]) -> Vec<(String, String)> {
    let mut out = headers.to_vec();
    for op in ops {
        match op {
            HeaderOp::Remove(n) => out.retain(|(k, _)| !k.eq_ignore_ascii_case(n)),
            HeaderOp::Add(n, v) => out.push((n.clone(), v.clone())),
            HeaderOp::Replace(n, v) => {
                out.retain(|(k, _)| !k.eq_ignore_ascii_case(n));
                out.push((n.clone(), v.clone()));
            }
        }
    }
    out
}

fn op_name(op: &HeaderOp) -> &str {
    match op {
        HeaderOp::Remove(n) | HeaderOp::Add(n, _) | HeaderOp::Replace(n, _) => n,
    }
}

/// Checks one decision against the model; `Err` carries the violated property.
fn check_decision(spec: &Spec, head: &RequestHead, decision: &Decision) -> Result<(), String> {
    let Decision::Forward(fwd) = decision else {
        return Ok(());
    };
    // The routing header: exactly one value, the chosen upstream, whatever the client sent.
    let after = apply(&head.headers, &fwd.header_ops);
    let routing: Vec<&str> = after
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(UPSTREAM_HEADER))
        .map(|(_, v)| v.as_str())
        .collect();
    if routing != [fwd.upstream.as_str()] {
        return Err(format!("{UPSTREAM_HEADER} after the ops: {routing:?}"));
    }
    let view = match model::kubectl_view(spec, head) {
        Ok(view) => view,
        Err(Why::Unknown) => return Ok(()),
        Err(Why::Rejects(why)) => return Err(format!("forwarded, but kubectl answers {why}")),
    };
    match fwd.upstream {
        Upstream::Static => check_static(spec, &view, fwd),
        Upstream::ApiServer => check_api(spec, head, &view, fwd),
        Upstream::ServiceHttp | Upstream::ServiceHttps => {
            Err("a service route without direct mode".to_owned())
        }
    }
}

fn check_static(spec: &Spec, view: &View, fwd: &Forward) -> Result<(), String> {
    if let Some(op) = fwd
        .header_ops
        .iter()
        .find(|op| op_name(op) != UPSTREAM_HEADER)
    {
        return Err(format!("static route with a header op {op:?}"));
    }
    let prefix = spec
        .static_prefix()
        .ok_or("static route without a static prefix")?;
    let below = view
        .decoded
        .strip_prefix(prefix.as_bytes())
        .ok_or("static route for a path outside the static prefix")?;
    let (path, query) = model::split_query(&fwd.path);
    if query != view.query.as_deref() {
        return Err(format!("static query {query:?}, request {:?}", view.query));
    }
    let decoded = model::unescape(path).ok_or("static :path is not a valid escaped path")?;
    if decoded != [b"/", below].concat() {
        return Err("static :path does not decode to the path below the prefix".into());
    }
    Ok(())
}

fn check_api(spec: &Spec, head: &RequestHead, view: &View, fwd: &Forward) -> Result<(), String> {
    let stripped = view
        .stripped
        .as_ref()
        .map_err(|why| format!("forwarded, but {why}"))?;
    if !spec.disable_filter() {
        let path = model::go_string(stripped);
        let host = model::filter_host(&view.host);
        if model::any_match(&spec.reject_paths(), &path) {
            return Err(format!("path {path:?} matches a reject-path"));
        }
        if model::any_match(&spec.reject_methods(), &head.method) {
            return Err(format!("method {:?} matches a reject-method", head.method));
        }
        if !model::any_match(&spec.accept_paths(), &path) {
            return Err(format!("path {path:?} matches no accept-path"));
        }
        if !model::any_match(&spec.accept_hosts(), &host) {
            return Err(format!("host {host:?} matches no accept-host"));
        }
    }
    // What is forwarded is what was filtered: server path + stripped path, query verbatim.
    let (path, query) = model::split_query(&fwd.path);
    if query != view.query.as_deref() {
        return Err(format!(
            "upstream query {query:?}, request {:?}",
            view.query
        ));
    }
    let decoded = model::unescape(path).ok_or("upstream :path is not a valid escaped path")?;
    let server = model::unescape(&spec.server_path()).ok_or("server path")?;
    if decoded != model::single_joining_slash(&server, stripped) {
        return Err(format!(
            "upstream {path:?} is not server path + {:?}",
            model::go_string(stripped)
        ));
    }
    // The mux's clean-up: dot and empty segments reach the API server only when they were
    // escaped and the prefix was stripped (Go re-escapes the decoded path), or for CONNECT.
    if head.method != "CONNECT"
        && model::has_dot_segments(path)
        && !(spec.strips() && view.raw_path.contains('%'))
    {
        return Err(format!("upstream {path:?} has dot or empty segments"));
    }
    Ok(())
}

#[track_caller]
fn check_row(name: &str, spec: &Spec, head: &RequestHead) {
    let decision = decide(&spec.config(), head);
    if let Err(e) = check_decision(spec, head, &decision) {
        panic!("{name}: {e}\n{head:?}\n{}\n{decision:?}", spec.json());
    }
}

/// Rows the properties once found or that pin the model's edge cases.
#[test]
fn decision_model_rows() {
    let default = Spec::default();
    let head = |method: &str, path: &str, host: &str| RequestHead {
        method: method.into(),
        path: path.into(),
        authority: host.into(),
        headers: vec![(UPSTREAM_HEADER.into(), "static".into())],
    };
    check_row("plain", &default, &head("GET", "/api/v1/pods", "localhost"));
    check_row("ipv6_port", &default, &head("GET", "/", "[::1]:8001"));
    check_row(
        "escaped_dots",
        &default,
        &head("GET", "/api/v1/%2e%2e/secrets", "localhost"),
    );
    let custom = Spec {
        api_prefix: Some("/custom".into()),
        static_prefix: Some("/static/".into()),
        server_path: Some("/k8s/c-1".into()),
        ..Spec::default()
    };
    check_row(
        "stripped_escaped_dots",
        &custom,
        &head("GET", "/custom/%2e%2e/x?q", "127.0.0.1"),
    );
    check_row("static", &custom, &head("PUT", "/static/a%2Fb?x", "evil"));
    check_row(
        "absolute_form",
        &default,
        &head("GET", "http://localhost:8001/api?x", "evil.com"),
    );
    // Found by the property: Go falls back to the Host header when the target's host is empty.
    let empty_host = Spec {
        accept_hosts: Some(vec!["^$".into()]),
        ..Spec::default()
    };
    check_row(
        "absolute_form_empty_host",
        &empty_host,
        &head("GET", "http:///?", "localhost"),
    );
    // Found by the property: Go's regexp reads each invalid UTF-8 byte as one U+FFFD.
    let two_chars = Spec {
        reject_paths: Some(vec!["^/..$".into()]),
        ..Spec::default()
    };
    check_row(
        "invalid_utf8_counts_per_byte",
        &two_chars,
        &head("GET", "/%E0%A0", "localhost"),
    );
    // Found by the property: Go's url.ParseRequestURI refuses a non-numeric port (400).
    let no_filter = Spec {
        disable_filter: Some(true),
        ..Spec::default()
    };
    check_row(
        "absolute_form_invalid_port",
        &no_filter,
        &head("GET", "http://localhost:abc/%2e", "localhost"),
    );
}

proptest! {
    #![proptest_config(runner(DEFAULT_CASES))]

    /// `decide` never panics, and a forward never passes what kubectl's filter would reject.
    #[test]
    fn decision_never_forwards_what_kubectl_rejects(
        spec in arb::spec(),
        heads in prop::collection::vec(arb::head(), 1..8),
    ) {
        let config = spec.config();
        for head in &heads {
            let decision = decide(&config, head);
            if let Err(e) = check_decision(&spec, head, &decision) {
                prop_assert!(false, "{}\n{:?}\n{}\n{:?}", e, head, spec.json(), decision);
            }
        }
    }

    /// `split_scheme_name_port` agrees with a reference `SplitSchemeNamePort`.
    #[test]
    fn service_id_split_matches_apimachinery(id in "[:a-zA-Z0-9-]{0,12}|(http|https|HTTP|)(:[a-z0-9-]{0,3}){0,4}") {
        prop_assert_eq!(split_scheme_name_port(&id), model::split_scheme_name_port(&id), "{:?}", id);
    }

    /// `parse_proxy_path` never panics and reads `{id}` with `SplitSchemeNamePort`.
    #[test]
    fn proxy_path_parse(
        kind in prop::sample::select(&["namespaces/ns/services/", "namespaces/ns/pods/", "nodes/"][..]),
        id in "[:a-z0-9-]{0,8}|(http|https|HTTP|)(:[a-z0-9-]{0,3}){0,4}",
        sub in "(/[a-z:%/]{0,6})?",
        junk in "\\PC{0,24}",
    ) {
        // Arbitrary text first: no panic.
        let _ = parse_proxy_path(&junk);
        let path = format!("/api/v1/{kind}{id}/proxy{sub}");
        let parsed = parse_proxy_path(&path);
        match (parsed, model::split_scheme_name_port(&id)) {
            (None, _) => prop_assert!(id.is_empty(), "{path:?} not read as a proxy path"),
            (Some(Ok(t)), Some((scheme, name, port))) => {
                prop_assert_eq!((t.scheme.as_str(), t.name.as_str(), t.port.as_str()), (scheme, name, port));
                let sub = (!sub.is_empty()).then_some(sub);
                prop_assert_eq!(t.sub_path, sub);
            }
            (Some(Err(e)), None) => prop_assert_eq!(e.id, id),
            (other, expected) => prop_assert!(false, "{path:?}: {other:?}, expected {expected:?}"),
        }
    }
}
