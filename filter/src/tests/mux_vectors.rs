//! §4.3 mux clean-up, prefixes and paths, and §4.4 static-file routing rows.

use super::vectors::{DEFAULTS, Expect, check, reply};
use crate::Config;

/// §4.3 mux clean-up, prefixes, paths.
#[test]
fn mux_prefixes_and_paths() {
    use Expect::*;
    let d = DEFAULTS;
    let h = "localhost";
    check(
        "double slash (49)",
        d,
        "GET",
        "/api//v1/pods",
        h,
        Moved("/api/v1/pods"),
    );
    check(
        "dot, query kept (50)",
        d,
        "GET",
        "/api/./v1/pods?x=1",
        h,
        Moved("/api/v1/pods?x=1"),
    );
    let p = "/api/v1/../../etc/passwd";
    check("dot-dot (51)", d, "GET", p, h, Moved("/etc/passwd"));
    check(
        "leading // (52)",
        d,
        "GET",
        "//api//v1",
        h,
        Moved("/api/v1"),
    );
    check(
        "POST no body (53)",
        d,
        "POST",
        "/api//v1/pods",
        h,
        Moved("/api/v1/pods"),
    );
    check(
        "HEAD no body",
        d,
        "HEAD",
        "/api//v1/pods",
        h,
        Moved("/api/v1/pods"),
    );
    let p = "/api//v1/namespaces/x/pods/y/exec";
    let cleaned = "/api/v1/namespaces/x/pods/y/exec";
    check(
        "clean-up before filter (54)",
        d,
        "GET",
        p,
        "evil.com",
        Moved(cleaned),
    );
    let p = "/api/v1/%2e%2e/secrets";
    check("escaped dots verbatim (55)", d, "GET", p, h, Up(p));
    let p = "/api/v1/namespaces/default/services/web/proxy/a%2Fb?q=%2F&r=a+b";
    check("target byte for byte (56)", d, "GET", p, h, Up(p));
    let p = "/api/v1/pods?a=%zz&b=;c";
    check("query verbatim (57)", d, "GET", p, h, Up(p));
    let p = "/api/v1/namespaces/default/services/web/proxy/%zz";
    check("bad escape (58)", d, "GET", p, h, BadRequest);
    let p = "/api/v1/namespaces/default/services/web/proxy/a b";
    check("raw space (58)", d, "GET", p, h, BadRequest);
    check("root (59)", d, "GET", "/", h, Up("/"));
    check(
        "OPTIONS * (60)",
        d,
        "OPTIONS",
        "*",
        h,
        Reply(reply(200, &[], "")),
    );
    check("GET * (§2.1)", d, "GET", "*", h, Reply(reply(400, &[], "")));
    check(
        "lone ? kept (§2.6)",
        d,
        "GET",
        "/api/v1/pods?",
        h,
        Up("/api/v1/pods?"),
    );
    check(
        "fragment in query kept",
        d,
        "GET",
        "/a?b#frag",
        h,
        Up("/a?b#frag"),
    );
    check(
        "redirect drops a lone ?",
        d,
        "GET",
        "/a//b?",
        h,
        Moved("/a/b"),
    );
    let p = "/api//v1/a%2Fb";
    check(
        "Go re-escapes % on clean-up",
        d,
        "GET",
        p,
        h,
        Moved("/api/v1/a%252Fb"),
    );
    let p = "/api/v1/a\"b";
    check(
        "invalid raw path re-escaped",
        d,
        "GET",
        p,
        h,
        Up("/api/v1/a%22b"),
    );
    let p = "/api/v1/a!b(c)";
    check("valid raw path kept", d, "GET", p, h, Up(p));

    let custom = r#"{"credentials": {"token": "TOK"}, "api_prefix": "/custom/"}"#;
    check(
        "subtree redirect (61)",
        custom,
        "GET",
        "/custom",
        h,
        Moved("/custom/"),
    );
    check("prefix root (62)", custom, "GET", "/custom/", h, Up("/"));
    check(
        "prefix stripped (63)",
        custom,
        "GET",
        "/custom/api/v1/pods",
        h,
        Up("/api/v1/pods"),
    );
    check(
        "outside prefix (64)",
        custom,
        "GET",
        "/api/v1/pods",
        h,
        NotFound,
    );
    check(
        "outside prefix /metrics (64)",
        custom,
        "GET",
        "/metrics",
        h,
        NotFound,
    );
    let p = "/custom/api/v1/namespaces/a/pods/b/exec";
    check(
        "filter on stripped path (65)",
        custom,
        "GET",
        p,
        h,
        Forbidden,
    );
    let p = "/custom/%2Fapi%2Fv1";
    check(
        "encoding lost after strip (66)",
        custom,
        "GET",
        p,
        h,
        Up("/api/v1"),
    );
    let p = "/custom/a%2Fb?x=%2F";
    check("re-encoded Go-style", custom, "GET", p, h, Up("/a/b?x=%2F"));
    let p = "/custom/a!b";
    check("re-encoding escapes !", custom, "GET", p, h, Up("/a%21b"));
    let p = "/cust%6Fm/api/v1/pods";
    check(
        "mux segments are unescaped",
        custom,
        "GET",
        p,
        h,
        Up("/api/v1/pods"),
    );
    check(
        "subtree redirect keeps query",
        custom,
        "GET",
        "/custom?a=1",
        h,
        Moved("/custom/?a=1"),
    );

    let api = r#"{"credentials": {"token": "TOK"}, "api_prefix": "/api/"}"#;
    check(
        "/api prefix not stripped (67)",
        api,
        "GET",
        "/api/v1/pods",
        h,
        Up("/api/v1/pods"),
    );
    check("/api prefix 404 (68)", api, "GET", "/metrics", h, NotFound);
    check(
        "/api subtree redirect (69)",
        api,
        "GET",
        "/api",
        h,
        Moved("/api/"),
    );
    let k8s = r#"{"credentials": {"token": "TOK"}, "api_prefix": "/k8s-api"}"#;
    check(
        "trailing slash added (70)",
        k8s,
        "GET",
        "/k8s-api/v1/pods",
        h,
        Up("/v1/pods"),
    );
    let gw = r#"{"credentials": {"token": "TOK"}, "api_prefix": "/api-gw/"}"#;
    let p = "/api-gw/api/v1/pods";
    check("/api-gw not stripped (71)", gw, "GET", p, h, Up(p));

    let base = r#"{"credentials": {"token": "TOK"}, "server_path": "/base/path"}"#;
    check(
        "no server path (73)",
        d,
        "GET",
        "/api/v1/pods",
        h,
        Up("/api/v1/pods"),
    );
    let up = "/base/path/api/v1/pods";
    check(
        "server path joined (74)",
        base,
        "GET",
        "/api/v1/pods",
        h,
        Up(up),
    );
    check(
        "server path root (74)",
        base,
        "GET",
        "/",
        h,
        Up("/base/path/"),
    );
    let both = r#"{"credentials": {"token": "TOK"}, "server_path": "/base/path/",
                   "api_prefix": "/custom/"}"#;
    check(
        "server path and prefix (75)",
        both,
        "GET",
        "/custom/api/v1/pods",
        h,
        Up(up),
    );
    check(
        "server path, empty rest",
        both,
        "GET",
        "/custom/",
        h,
        Up("/base/path/"),
    );
}

#[test]
fn api_prefix_without_leading_slash_is_rejected_vector_72() {
    // kubectl registers `api/` as a host pattern and 404s everything; the plugin configuration
    // refuses such a prefix instead.
    let err = Config::parse(br#"{"api_prefix": "api"}"#).expect_err("invalid");
    assert_eq!(err.to_string(), "api_prefix: \"api\" must start with '/'");
}

/// §4.4 static files, routing-level rows.
#[test]
fn static_files() {
    use Expect::*;
    let www = r#"{"credentials": {"token": "TOK"}, "static_prefix": "/static/"}"#;
    let h = "localhost";
    check(
        "file (76)",
        www,
        "GET",
        "/static/x.txt",
        h,
        Static("/x.txt"),
    );
    check(
        "subtree redirect (77)",
        www,
        "GET",
        "/static",
        h,
        Moved("/static/"),
    );
    check(
        "directory root (78)",
        www,
        "GET",
        "/static/",
        h,
        Static("/"),
    );
    check(
        "clean-up redirect (83)",
        www,
        "GET",
        "/static/../etc/passwd",
        h,
        Moved("/etc/passwd"),
    );
    let p = "/static/%2e%2e/etc/passwd";
    check(
        "escaped dots to the host (84)",
        www,
        "GET",
        p,
        h,
        Static("/%2e%2e/etc/passwd"),
    );
    check(
        "never filtered (85)",
        www,
        "GET",
        "/static/x.txt",
        "evil.com",
        Static("/x.txt"),
    );
    check(
        "any method (86)",
        www,
        "DELETE",
        "/static/x.txt",
        h,
        Static("/x.txt"),
    );
    check(
        "%2F is not a separator (89)",
        www,
        "GET",
        "/static%2Fx.txt",
        h,
        Up("/static%2Fx.txt"),
    );
    check(
        "prefix is a segment (89)",
        www,
        "GET",
        "/staticx",
        h,
        Up("/staticx"),
    );
    let p = "/static/sub%2Fa.txt";
    check(
        "escaped file name (§2.2)",
        www,
        "GET",
        p,
        h,
        Static("/sub%2Fa.txt"),
    );
    check(
        "query kept",
        www,
        "GET",
        "/static/sub?x=1",
        h,
        Static("/sub?x=1"),
    );
    check(
        "RawPath must lose the prefix",
        www,
        "GET",
        "/st%61tic/x.txt",
        h,
        NotFound,
    );
    let d = DEFAULTS;
    let p = "/static/index.html";
    check("no static handler (91)", d, "GET", p, h, Up(p));
    let custom = r#"{"static_prefix": "/www", "api_prefix": "/k/"}"#;
    check(
        "custom static prefix",
        custom,
        "GET",
        "/www/a",
        h,
        Static("/a"),
    );
    check(
        "outside both prefixes",
        custom,
        "GET",
        "/other",
        h,
        NotFound,
    );
    check(
        "CONNECT authority-form (§2.2)",
        DEFAULTS,
        "CONNECT",
        "",
        h,
        Moved("/"),
    );
}
