//! §4.1 host filter and §4.2 path and method filter rows.

use super::vectors::{DEFAULTS, EXEC, Expect, check};
use crate::Config;

/// §4.1 host filter.
#[test]
fn host_filter() {
    use Expect::*;
    let d = DEFAULTS;
    let pods = "/api/v1/pods";
    check(
        "127.0.0.1 accepted (1)",
        d,
        "GET",
        pods,
        "127.0.0.1",
        Up(pods),
    );
    check(
        "localhost accepted (2)",
        d,
        "GET",
        pods,
        "localhost",
        Up(pods),
    );
    check(
        "port stripped (3)",
        d,
        "GET",
        pods,
        "localhost:8001",
        Up(pods),
    );
    check(
        "bracketed ::1 without port (4)",
        d,
        "GET",
        pods,
        "[::1]",
        Up(pods),
    );
    check(
        "deviation a: [::1]:8001 (5)",
        d,
        "GET",
        pods,
        "[::1]:8001",
        Up(pods),
    );
    check("bare ::1 (6)", d, "GET", pods, "::1", Forbidden);
    check("evil.com (7)", d, "GET", pods, "evil.com", Forbidden);
    check(
        "suffix host (8)",
        d,
        "GET",
        pods,
        "localhost.evil.com",
        Forbidden,
    );
    check(
        "dots are escaped (9)",
        d,
        "GET",
        pods,
        "127a0b0c1",
        Forbidden,
    );
    check(
        "case-sensitive (10)",
        d,
        "GET",
        pods,
        "LOCALHOST",
        Forbidden,
    );
    check("empty host (11)", d, "GET", pods, "", Forbidden);
    check("HTTP/1.0 without Host (13)", d, "GET", pods, "", Forbidden);
    check("port only (14)", d, "GET", pods, ":8001", Forbidden);
    check(
        "bad port ignored (15)",
        d,
        "GET",
        pods,
        "localhost:abc",
        Up(pods),
    );
    check(
        "trailing dot (§2.4)",
        d,
        "GET",
        pods,
        "127.0.0.1.",
        Forbidden,
    );
    let absolute = "http://evil.com/api/v1/pods";
    check(
        "absolute form overrides Host (16)",
        d,
        "GET",
        absolute,
        "127.0.0.1",
        Forbidden,
    );
    let any = r#"{"credentials": {"token": "TOK"}, "accept_hosts": [".*"]}"#;
    check(
        "accept-hosts=.* (18)",
        any,
        "GET",
        pods,
        "evil.com",
        Up(pods),
    );
    let example = r#"{"accept_hosts": ["^example\\.com$"]}"#;
    check(
        "port removed (19)",
        example,
        "GET",
        pods,
        "example.com:9999",
        Up(pods),
    );
    check(
        "default replaced (20)",
        example,
        "GET",
        pods,
        "localhost",
        Forbidden,
    );
    let none = r#"{"accept_hosts": []}"#;
    check(
        "empty accept-hosts (21)",
        none,
        "GET",
        pods,
        "localhost",
        Forbidden,
    );
    let off = r#"{"disable_filter": true}"#;
    check(
        "filter disabled: host (22)",
        off,
        "GET",
        pods,
        "evil.com",
        Up(pods),
    );
    let exec = "/api/v1/namespaces/d/pods/b/exec";
    check(
        "filter disabled: exec (22)",
        off,
        "GET",
        exec,
        "evil.com",
        Up(exec),
    );
}

/// §4.2 path and method filter.
#[test]
fn path_and_method_filter() {
    use Expect::*;
    let d = DEFAULTS;
    let h = "localhost";
    let pods = "/api/v1/namespaces/default/pods";
    let q = "/api/v1/namespaces/default/pods/foo/exec?command=ls";
    check("exec (23)", d, "GET", q, h, Forbidden);
    check(
        "attach (24)",
        d,
        "GET",
        &format!("{pods}/foo/attach"),
        h,
        Forbidden,
    );
    check(
        "POST exec (25)",
        d,
        "POST",
        &format!("{pods}/somepod/exec"),
        h,
        Forbidden,
    );
    check("exec/ (26)", d, "GET", &format!("{EXEC}/"), h, Forbidden);
    check(
        "unanchored execx (27)",
        d,
        "GET",
        &format!("{EXEC}x"),
        h,
        Forbidden,
    );
    let p = format!("{pods}/attachfoo");
    check("attachfoo (28)", d, "GET", &p, h, Up(&p));
    let p = format!("{pods}/execfoo");
    check("execfoo (29)", d, "GET", &p, h, Up(&p));
    let p = format!("{pods}/foo/portforward");
    check("portforward (30)", d, "GET", &p, h, Up(&p));
    let p = "/apis/v1/namespaces/default/pods/foo/exec";
    check("needs /api/ (31)", d, "GET", p, h, Up(p));
    let p = "/API/v1/namespaces/default/pods/foo/exec";
    check("case-sensitive path (32)", d, "GET", p, h, Up(p));
    let p = format!("{pods}/x/EXEC");
    check("case-sensitive exec (33)", d, "GET", &p, h, Up(&p));
    let p = format!("{pods}/foo%2Fexec");
    check("decoded %2F (34)", d, "GET", &p, h, Forbidden);
    let p = format!("{pods}/foo/%65xec");
    check("decoded %65 (35)", d, "GET", &p, h, Forbidden);
    let p = "/api%2Fv1/namespaces/default/pods/x/exec";
    check("decoded prefix (36)", d, "GET", p, h, Forbidden);
    let p = "/api/v1/namespaces/default/pods/foo/exec%3Fa";
    check("decoded %3F (§2.4)", d, "GET", p, h, Forbidden);

    let no_reject = r#"{"reject_paths": []}"#;
    let p = format!("{pods}/somepod/exec");
    check("reject-paths= (37)", no_reject, "POST", &p, h, Up(&p));
    let no_methods = r#"{"reject_methods": []}"#;
    let p = "/api/v1/namespaces/d/pods/b/exec";
    check("reject-methods= (38)", no_methods, "GET", p, h, Forbidden);
    let writes = r#"{"reject_methods": ["POST", "PUT", "PATCH"]}"#;
    check(
        "POST rejected (39)",
        writes,
        "POST",
        "/api/v1/pods",
        h,
        Forbidden,
    );
    check(
        "GET passes (40)",
        writes,
        "GET",
        "/api/v1/pods",
        h,
        Up("/api/v1/pods"),
    );
    check(
        "unanchored XPOSTX (41)",
        writes,
        "XPOSTX",
        "/api/v1/pods",
        h,
        Forbidden,
    );
    check(
        "lower-case post (42)",
        writes,
        "post",
        "/api/v1/pods",
        h,
        Up("/api/v1/pods"),
    );
    let get = r#"{"reject_methods": ["GET"]}"#;
    check("reject GET (43)", get, "GET", "/api/v1/pods", h, Forbidden);
    let anchored = r#"{"reject_methods": ["^(POST|PUT)$"]}"#;
    check(
        "anchored (44)",
        anchored,
        "XPOSTX",
        "/api/v1/pods",
        h,
        Up("/api/v1/pods"),
    );
    check(
        "any method (45)",
        DEFAULTS,
        "FOO",
        "/api/v1/pods",
        h,
        Up("/api/v1/pods"),
    );
    let ns = r#"{"accept_paths": ["^/api/v1/namespaces/default/.*"]}"#;
    let p = "/api/v1/namespaces/kube-system/pods";
    check("accept-paths (46)", ns, "GET", p, h, Forbidden);
    check("accept-paths root (47)", ns, "GET", "/", h, Forbidden);
    let p = "/api/v1/namespaces/default/pods";
    check("accept-paths match", ns, "GET", p, h, Up(p));
    let none = r#"{"accept_paths": []}"#;
    check(
        "empty accept-paths",
        none,
        "GET",
        "/api/v1/pods",
        h,
        Forbidden,
    );
}

#[test]
fn bad_accept_paths_regex_is_a_config_error_vector_48() {
    let err = Config::parse(br#"{"accept_paths": ["(bad"]}"#).expect_err("invalid");
    assert_eq!(
        err.to_string(),
        "accept_paths[0]: regex parse error: found open group without closing ')' (pattern \"(bad\")"
    );
}
