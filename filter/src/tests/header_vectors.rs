//! §4.5 credential rows at the decision level, the `-v=3` log lines, and config errors.

use super::vectors::{config, head, routing};
use crate::decision::{Decision, HeaderOp, decide};
use crate::{Config, ConfigError};

/// §4.5 credentials at the decision level (API routes only).
#[test]
fn credentials_only_for_api_routes() {
    let json = r#"{"static_prefix": "/static/", "credentials": {"token": "TOK"},
                   "impersonate": {"user": "jane", "groups": ["g1", "g2"],
                                   "extra": {"scopes": ["s1"]}}}"#;
    let cfg = config(json);
    let run = |path: &str, headers: &[(&str, &str)]| match decide(
        &cfg,
        &head("GET", path, "localhost", headers),
    ) {
        Decision::Forward(f) => f.header_ops,
        other => panic!("unexpected decision {other:?}"),
    };
    let mut expected = routing("apiserver");
    expected.extend([
        HeaderOp::Replace("impersonate-user".into(), "jane".into()),
        HeaderOp::Add("impersonate-group".into(), "g1".into()),
        HeaderOp::Add("impersonate-group".into(), "g2".into()),
        HeaderOp::Add("impersonate-extra-scopes".into(), "s1".into()),
        HeaderOp::Replace("authorization".into(), "Bearer TOK".into()),
    ]);
    assert_eq!(run("/api/v1/pods", &[]), expected, "95 with token (1)");
    assert_eq!(
        run("/static/x", &[]),
        routing("static"),
        "no credentials for static files"
    );
    let mut mine = routing("apiserver");
    mine.extend_from_slice(&expected[1..5]);
    assert_eq!(
        run("/api/v1/pods", &[("authorization", "Bearer mine")]),
        mine,
        "client Authorization wins (92)"
    );
    let mut mallory = routing("apiserver");
    mallory.push(HeaderOp::Replace(
        "authorization".into(),
        "Bearer TOK".into(),
    ));
    assert_eq!(
        run("/api/v1/pods", &[("impersonate-user", "mallory")]),
        mallory,
        "client Impersonate-User wins (96)"
    );
}

#[test]
fn filter_log_lines_at_verbosity_3() {
    let cfg = config(r#"{"verbosity": 3}"#);
    let eval = |path: &str, host: &str| {
        crate::decision::evaluate(&cfg, &head("GET", path, host, &[]), None).log
    };
    assert_eq!(
        eval("/api/v1/pods", "localhost:8001").as_deref(),
        Some("Filter accepting GET /api/v1/pods localhost")
    );
    assert_eq!(
        eval("/api/v1/pods", "evil.com").as_deref(),
        Some("Filter rejecting GET /api/v1/pods evil.com")
    );
    let quiet = config("{}");
    let e = crate::decision::evaluate(&quiet, &head("GET", "/", "localhost", &[]), None);
    assert_eq!(e.log, None);
}

#[test]
fn config_errors_name_the_field() {
    #[track_caller]
    fn check_err(json: &str, expected: &str) {
        let err: ConfigError = Config::parse(json.as_bytes()).expect_err(json);
        assert_eq!(err.to_string(), expected, "{json}");
    }
    check_err(
        r#"{"disable_filter": "yes"}"#,
        "disable_filter: invalid type: string \"yes\", expected a boolean",
    );
    check_err(
        r#"{"accept_hosts": "^localhost$"}"#,
        "accept_hosts: invalid type: string \"^localhost$\", expected a sequence",
    );
    check_err(
        r#"{"reject_paths": ["ok", "(x"]}"#,
        "reject_paths[1]: regex parse error: found open group without closing ')' (pattern \"(x\")",
    );
}
