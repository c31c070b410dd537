//! kubectl-proxy.md §4 test vectors, one row per behaviour, run through `decide`: shared helpers
//! and the byte-exact local replies; the rows live in `filter_vectors`, `mux_vectors` and
//! `header_vectors`.
//!
//! "Up" = the `:path` the API server would receive; the vector number is in each row's name.

use crate::Config;
use crate::decision::{Decision, Forward, HeaderOp, LocalReply, RequestHead, Upstream, decide};

/// kubectl defaults with the user token `TOK`.
pub(super) const DEFAULTS: &str = r#"{"credentials": {"token": "TOK"}}"#;
pub(super) const EXEC: &str = "/api/v1/namespaces/default/pods/foo/exec";

#[derive(Debug)]
pub(super) enum Expect<'a> {
    /// Forwarded to the API server with this `:path`.
    Up(&'a str),
    /// Forwarded to the static file server with this `:path`.
    Static(&'a str),
    /// 301 with this `Location`.
    Moved(&'a str),
    /// kubectl's 403.
    Forbidden,
    /// Go's 404.
    NotFound,
    /// Go's 400 for a bad request target.
    BadRequest,
    /// Exactly this reply.
    Reply(LocalReply),
}

pub(super) fn config(json: &str) -> Config {
    Config::parse(json.as_bytes()).unwrap_or_else(|e| panic!("config {json}: {e}"))
}

pub(super) fn head(method: &str, path: &str, host: &str, headers: &[(&str, &str)]) -> RequestHead {
    RequestHead {
        method: method.into(),
        path: path.into(),
        authority: host.into(),
        headers: headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

pub(super) fn routing(upstream: &str) -> Vec<HeaderOp> {
    vec![HeaderOp::Replace(
        "x-kproxy-upstream".into(),
        upstream.into(),
    )]
}

#[track_caller]
pub(super) fn check(
    name: &str,
    json: &str,
    method: &str,
    path: &str,
    host: &str,
    expect: Expect<'_>,
) {
    let decision = decide(&config(json), &head(method, path, host, &[]));
    let expected = match expect {
        Expect::Up(up) => {
            let mut header_ops = routing("apiserver");
            if json.contains("TOK") {
                header_ops.push(HeaderOp::Replace(
                    "authorization".into(),
                    "Bearer TOK".into(),
                ));
            }
            Decision::Forward(Forward {
                upstream: Upstream::ApiServer,
                path: up.into(),
                header_ops,
            })
        }
        Expect::Static(p) => Decision::Forward(Forward {
            upstream: Upstream::Static,
            path: p.into(),
            header_ops: routing("static"),
        }),
        Expect::Moved(location) => {
            Decision::Respond(LocalReply::moved_permanently(method, location))
        }
        Expect::Forbidden => Decision::Respond(LocalReply::forbidden()),
        Expect::NotFound => Decision::Respond(LocalReply::not_found()),
        Expect::BadRequest => Decision::Respond(LocalReply::bad_request()),
        Expect::Reply(reply) => Decision::Respond(reply),
    };
    assert_eq!(
        decision, expected,
        "{name}: {method} {path} Host {host:?} with {json}"
    );
}

pub(super) fn reply(status: u32, headers: &[(&str, &str)], body: &str) -> LocalReply {
    LocalReply {
        status,
        headers: headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect(),
        body: body.into(),
    }
}

#[test]
fn local_replies_are_byte_exact() {
    let text = ("content-type", "text/plain; charset=utf-8");
    let nosniff = ("x-content-type-options", "nosniff");
    assert_eq!(
        LocalReply::forbidden(),
        reply(403, &[text, nosniff], "Forbidden\n")
    );
    assert_eq!(
        LocalReply::not_found(),
        reply(404, &[text, nosniff], "404 page not found\n")
    );
    assert_eq!(
        LocalReply::bad_request(),
        reply(400, &[text], "400 Bad Request")
    );
    let html = ("content-type", "text/html; charset=utf-8");
    let loc = ("location", "/api/v1/pods");
    // 49: GET gets the HTML body; HEAD the content type only; 53: POST neither.
    assert_eq!(
        LocalReply::moved_permanently("GET", "/api/v1/pods"),
        reply(
            301,
            &[loc, html],
            "<a href=\"/api/v1/pods\">Moved Permanently</a>.\n\n"
        )
    );
    assert_eq!(
        LocalReply::moved_permanently("HEAD", "/api/v1/pods"),
        reply(301, &[loc, html], "")
    );
    assert_eq!(
        LocalReply::moved_permanently("POST", "/api/v1/pods"),
        reply(301, &[loc], "")
    );
    // The body's href is HTML-escaped, the Location is not.
    assert_eq!(
        LocalReply::moved_permanently("GET", "/a?x=1&y=2").body,
        "<a href=\"/a?x=1&amp;y=2\">Moved Permanently</a>.\n\n"
    );
}
