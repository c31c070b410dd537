//! The runner's comparison itself: each row is an expectation (as written in a scenario file), an
//! observation, and the failures it must report — so a passing scenario means something.

use std::time::Duration;

use crate::backend::Backend;
use crate::rawhttp::RawResponse;
use crate::replies::Recorded;
use crate::runner::{Observation, Vars, check};
use crate::scenario::Expect;

fn obs(
    status: u16,
    body: &str,
    headers: &[(&str, &str)],
    upstream: Option<Recorded>,
) -> Observation {
    Observation {
        response: Some(RawResponse {
            status,
            reason: String::new(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            body: body.as_bytes().to_vec(),
            arrivals: vec![(Duration::from_millis(5), body.len())],
        }),
        upstream: upstream.into_iter().collect(),
        ..Observation::default()
    }
}

fn up(target: &str, headers: &[(&str, &str)]) -> Recorded {
    Recorded {
        method: "GET".into(),
        target: target.into(),
        version: "HTTP/1.1".into(),
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
        body: vec![],
    }
}

/// `want` lists substrings, one per expected failure message, in order.
#[track_caller]
fn check_row(backend: Backend, expect_toml: &str, o: &Observation, want: &[&str]) {
    let expect: Expect = toml::from_str(expect_toml).expect("expectation parses");
    let vars = Vars {
        api: "127.0.0.1:6443".into(),
        token: "TOK".into(),
    };
    let got = check(backend, &vars, &expect, o);
    assert_eq!(got.len(), want.len(), "failures {got:#?}, want {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(g.contains(w), "failure {g:?} should mention {w:?}");
    }
}

#[test]
fn expectations_compare_only_what_is_named() {
    let forbidden = obs(
        403,
        "Forbidden\n",
        &[("Content-Type", "text/plain; charset=utf-8")],
        None,
    );
    let forwarded = obs(
        200,
        "{}",
        &[("Date", "x")],
        Some(up(
            "/api/v1/pods",
            &[
                ("host", "127.0.0.1:6443"),
                ("authorization", "Bearer TOK"),
                ("x-g", "a"),
                ("x-g", "b"),
            ],
        )),
    );
    let k = Backend::Kubectl;
    check_row(k, "status = 403\nbody = \"Forbidden\\n\"", &forbidden, &[]);
    check_row(k, "status = 200", &forbidden, &["status 403"]);
    check_row(k, "body = \"Forbidden\"", &forbidden, &["body"]);
    check_row(k, "body_contains = \"Forb\"", &forbidden, &[]);
    check_row(
        k,
        "headers = { content-type = \"SOME\", x-no = \"ABSENT\" }",
        &forbidden,
        &[],
    );
    check_row(
        k,
        "headers = { content-type = \"ABSENT\" }",
        &forbidden,
        &["want ABSENT"],
    );
    check_row(
        k,
        "headers = { CONTENT-TYPE = \"text/plain\" }",
        &forbidden,
        &["CONTENT-TYPE"],
    );
    check_row(k, "upstream = \"none\"", &forbidden, &[]);
    check_row(k, "upstream = \"none\"", &forwarded, &["want nothing"]);
    check_row(
        k,
        "upstream.target = \"/api/v1/pods\"",
        &forbidden,
        &["nothing reached upstream"],
    );
    check_row(
        k,
        "upstream.target = \"/api/v1/pods\"\nupstream.headers = { host = \"{API}\", authorization = \"Bearer {TOKEN}\", x-g = [\"a\", \"b\"] }",
        &forwarded,
        &[],
    );
    check_row(
        k,
        "upstream.headers = { x-g = [\"b\", \"a\"] }",
        &forwarded,
        &["x-g"],
    );
    check_row(
        k,
        "upstream.target = \"/api/v1/pods?x\"",
        &forwarded,
        &["upstream target"],
    );
    check_row(
        k,
        "upstream.method = \"POST\"",
        &forwarded,
        &["upstream method"],
    );
    check_row(k, "min_spread_ms = 100", &forwarded, &["arrived within"]);
    // Rule 16: for Envoy only, headers its connection manager adds are not compared.
    check_row(k, "headers = { date = \"ABSENT\" }", &forwarded, &["date"]);
    check_row(
        Backend::Envoy,
        "headers = { date = \"ABSENT\" }",
        &forwarded,
        &[],
    );
    check_row(
        Backend::Envoy,
        "headers = { content-type = \"SOME\" }",
        &forwarded,
        &["content-type"],
    );
}
