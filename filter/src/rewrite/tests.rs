//! Vectors from apimachinery `transport_test.go`, Go tokenizer behaviour, codings, and properties.

use super::*;
use proptest::prelude::*;

const PREFIX: &str = "/api/v1/namespaces/ns/services/web:80/proxy";

/// The transport_test.go setup with an empty transport scheme and host.
fn node_ctx() -> RewriteContext {
    RewriteContext {
        path_prepend: "/proxy/node/node1:10250".to_owned(),
        backend_host: "mynode.com".to_owned(),
        request_host: "10.0.0.1:8001".to_owned(),
    }
}

fn svc_ctx() -> RewriteContext {
    RewriteContext {
        path_prepend: PREFIX.to_owned(),
        backend_host: "web.ns.svc.cluster.local:80".to_owned(),
        request_host: "localhost:8001".to_owned(),
    }
}

#[track_caller]
fn loc(input: &str, want: &str) {
    assert_eq!(
        rewrite_location(&node_ctx(), input),
        want,
        "Location {input:?}"
    );
}

#[test]
fn location_transport_test_vectors() {
    // "redirect rel"
    loc(
        "/redirected/target/",
        "/proxy/node/node1:10250/redirected/target/",
    );
    // "redirect abs same host"
    loc(
        "http://mynode.com/redirected/target/",
        "/proxy/node/node1:10250/redirected/target/",
    );
    // "redirect abs other host"
    loc(
        "http://example.com/redirected/target/",
        "http://example.com/redirected/target/",
    );
    // "redirect abs use reqHost no host no scheme"
    loc(
        "http://10.0.0.1:8001/redirected/target/",
        "http://10.0.0.1:8001/proxy/node/node1:10250/redirected/target/",
    );
    // "... must be escaped"
    let escaped = "/redirected/target/%00%3Cscript%3Ealert%281%29%3C/script%3E/";
    loc(
        "/redirected/target/%00<script>alert(1)</script>/",
        &format!("/proxy/node/node1:10250{escaped}"),
    );
    loc(
        "http://mynode.com/redirected/target/%00<script>alert(1)</script>/",
        &format!("/proxy/node/node1:10250{escaped}"),
    );
    loc(
        "http://example.com/redirected/target/%00<script>alert(1)</script>/",
        &format!("http://example.com{escaped}"),
    );
    loc(
        "http://10.0.0.1:8001/redirected/target/%00<script>alert(1)</script>/",
        &format!("http://10.0.0.1:8001/proxy/node/node1:10250{escaped}"),
    );
    // "source contains the redirect already"
    loc(
        "http://mynode.com/proxy/node/node1:10250/google.log",
        "/proxy/node/node1:10250/google.log",
    );
    loc("kubelet.log", "kubelet.log");
}

#[test]
fn location_go_url_details() {
    // Relative references are re-serialised, not rewritten.
    loc("login", "login");
    loc("login?next=/x#a b", "login?next=/x#a%20b");
    loc("", "");
    loc("?x=1", "?x=1");
    loc("#top", "#top");
    loc("*", "*");
    loc("mailto:a@b", "mailto:a@b");
    // Absolute paths: path.Join cleans, the trailing slash is kept, query and fragment stay.
    loc("/a/../b", "/proxy/node/node1:10250/b");
    loc("/a/./", "/proxy/node/node1:10250/a/");
    loc("/a?", "/proxy/node/node1:10250/a?");
    loc("/a?x=%zz#f", "/proxy/node/node1:10250/a?x=%zz#f");
    loc("/", "/proxy/node/node1:10250/");
    // Joining drops RawPath (Go only sets Path); a path with the prefix keeps it.
    loc("/a%2Fb", "/proxy/node/node1:10250/a/b");
    loc(
        "/proxy/node/node1:10250/a%2Fb",
        "/proxy/node/node1:10250/a%2Fb",
    );
    loc("/caf%C3%A9", "/proxy/node/node1:10250/caf%C3%A9");
    loc("/café", "/proxy/node/node1:10250/caf%C3%A9");
    // Scheme-relative, upper-case scheme, empty authority, userinfo kept as Go keeps it.
    loc("//mynode.com/x", "/proxy/node/node1:10250/x");
    loc("HTTP://mynode.com/x", "/proxy/node/node1:10250/x");
    loc("http:/x", "/proxy/node/node1:10250/x");
    loc("http:///x", "/proxy/node/node1:10250/x");
    loc(
        "http://u:p%40@mynode.com/x",
        "//u:p%40@/proxy/node/node1:10250/x",
    );
    loc(
        "https://10.0.0.1:8001/x",
        "https://10.0.0.1:8001/proxy/node/node1:10250/x",
    );
    // Other hosts: re-serialised.
    loc("http://EXAMPLE.com/a%2fb", "http://EXAMPLE.com/a%2fb");
    loc("http://[fe80::1%25en0]:8/x", "http://[fe80::1%25en0]:8/x");
    loc("ftp://a:b:21/x", "ftp://a:b:21/x");
    loc("http://example.com/a#b%zz", "http://example.com/a#b%zz");
    // Go url.Parse errors: passed on unchanged.
    for bad in [
        "http://a b/",
        "%zz",
        ":foo",
        "1a:b",
        "http://[::1",
        "http://[1.2.3.4]/",
        "http://[::1]x/",
        "http://a[b]/",
        "http://localhost:80:80/x",
        "http://h:port/",
        "/a\tb",
        "http://%41/",
        "http://a/#%zz",
        "http://u\u{e9}@h/",
    ] {
        loc(bad, bad);
    }
    // Hosts that parse.
    loc("http://[::1]:80/x", "http://[::1]:80/x");
    loc("http://[::ffff:1.2.3.4]/x", "http://[::ffff:1.2.3.4]/x");
    loc("http://h:/x", "http://h:/x");
}

#[test]
fn location_same_host_ipv6_and_request_host() {
    let ctx = RewriteContext {
        path_prepend: PREFIX.to_owned(),
        backend_host: "[::1]:8080".to_owned(),
        request_host: "localhost:8001".to_owned(),
    };
    assert_eq!(
        rewrite_location(&ctx, "http://[::1]:8080/login"),
        format!("{PREFIX}/login")
    );
    assert_eq!(
        rewrite_location(&ctx, "http://localhost:8001/login/"),
        format!("http://localhost:8001{PREFIX}/login/")
    );
    assert_eq!(
        rewrite_location(&ctx, "http://LOCALHOST:8001/login"),
        "http://LOCALHOST:8001/login"
    );
}

#[track_caller]
fn html(input: &str, want: &str) {
    let got = rewrite_html_body(&svc_ctx(), BodyEncoding::Identity, input.as_bytes()).unwrap();
    assert_eq!(String::from_utf8_lossy(&got), want, "HTML {input:?}");
}

#[test]
fn html_transport_test_vectors() {
    html(
        r#"<pre><a href="kubelet.log">kubelet.log</a><a href="/google.log">google.log</a></pre>"#,
        &format!(
            r#"<pre><a href="kubelet.log">kubelet.log</a><a href="{PREFIX}/google.log">google.log</a></pre>"#
        ),
    );
    html(
        r#"<html><header></header><body><pre><a href="kubelet.log">kubelet.log</a><a href="/google.log">google.log</a></pre></body></html>"#,
        &format!(
            r#"<html><header></header><body><pre><a href="kubelet.log">kubelet.log</a><a href="{PREFIX}/google.log">google.log</a></pre></body></html>"#
        ),
    );
    html(
        r#"<a href="/google.log/">x</a>"#,
        &format!(r#"<a href="{PREFIX}/google.log/">x</a>"#),
    );
    html(
        r#"<pre><img src="kubernetes.jpg"/><img src="/kubernetes_abs.jpg"/></pre>"#,
        &format!(
            r#"<pre><img src="kubernetes.jpg"/><img src="{PREFIX}/kubernetes_abs.jpg"/></pre>"#
        ),
    );
    html(
        r#"<script src="http://google.com/kubernetes.js"/>"#,
        r#"<script src="http://google.com/kubernetes.js"/>"#,
    );
    html(
        r#"<script src="http://web.ns.svc.cluster.local:80/kubernetes.js"/>"#,
        &format!(r#"<script src="{PREFIX}/kubernetes.js"/>"#),
    );
    html(
        &format!(r#"<a href="http://web.ns.svc.cluster.local:80{PREFIX}/google.log">g</a>"#),
        &format!(r#"<a href="{PREFIX}/google.log">g</a>"#),
    );
    html("<html></html>", "<html></html>");
    html(
        r#"<a href="http://localhost:8001/x">"#,
        &format!(r#"<a href="http://localhost:8001{PREFIX}/x">"#),
    );
}

#[test]
fn html_start_tags_are_re_rendered_like_go() {
    html("<DIV CLASS='x'>t</DIV>", r#"<div class="x">t</DIV>"#);
    html(
        "<A HREF=/x Title='a\"b' data-x=1>",
        &format!(r#"<a href="{PREFIX}/x" title="a&#34;b" data-x="1">"#),
    );
    html("<input disabled>", r#"<input disabled="">"#);
    html(
        "<input  disabled\n value = v >",
        r#"<input disabled="" value="v">"#,
    );
    html(
        r#"<a href="/a" HREF="/b" x=1 X=2>"#,
        &format!(r#"<a href="{PREFIX}/a" x="1">"#),
    );
    html("<a =b>", r#"<a =b="">"#);
    html("<br/><br /><br>", "<br/><br/><br>");
    html("<a href=/x/>", &format!(r#"<a href="{PREFIX}/x/">"#));
    html("<p a=/>", r#"<p a="/">"#);
    html("<a b />", r#"<a b=""/>"#);
    html("<a b/c>", r#"<a b="" c="">"#);
    html("<a b='>'>", r#"<a b="&gt;">"#);
    html("<a b=>", r#"<a b="">"#);
    html(
        "<a\u{0}b c\u{0}=\"\u{0}\">",
        "<a\u{fffd}b c\u{fffd}=\"\u{fffd}\">",
    );
    html("<a title=\"a\r\nb\rc\">", "<a title=\"a\nb\nc\">");
    html("<div href=\"/x\">", r#"<div href="/x">"#);
    html(
        r##"<form action="/s"><img src=/i.png longdesc="/d" usemap=#m><object data="/o">"##,
        &format!(
            r##"<form action="{PREFIX}/s"><img src="{PREFIX}/i.png" longdesc="{PREFIX}/d" usemap="#m"><object data="{PREFIX}/o">"##
        ),
    );
    html(
        r#"<video poster="/p" src="/v"><iframe src="/f"></iframe><blockquote cite="/c">"#,
        &format!(
            r#"<video poster="{PREFIX}/p" src="{PREFIX}/v"><iframe src="{PREFIX}/f"></iframe><blockquote cite="{PREFIX}/c">"#
        ),
    );
    // srcset and style are not URL attributes.
    html(
        r#"<img srcset="/a 1x" style="background:url(/b)">"#,
        r#"<img srcset="/a 1x" style="background:url(/b)">"#,
    );
}

#[test]
fn html_attribute_character_references() {
    html(
        r#"<a href="/x?a=1&amp;b=2&c=3">"#,
        &format!(r#"<a href="{PREFIX}/x?a=1&amp;b=2&amp;c=3">"#),
    );
    html(
        "<a title=\"&lt;&#60;&#x3c;&copy&copy;&hellip;&amp=1&ampx&AMP&nbsp;\">",
        "<a title=\"&lt;&lt;&lt;\u{a9}\u{a9}\u{2026}&amp;amp=1&amp;ampx&amp;\u{a0}\">",
    );
    html(
        "<a title=\"&#128;&#0;&#13;&#x110000;&#;&#x;&#65&#X41;&\">",
        "<a title=\"\u{20ac}\u{fffd}&#13;\u{fffd}&amp;#;&amp;#x;AA&amp;\">",
    );
    html("<a title=\"&apos;&quot;\">", "<a title=\"&#39;&#34;\">");
    // Unknown names are kept as written (documented limit), and their URL is not rewritten.
    html(
        "<a title=\"&foo;&Uarr;<\" href=\"/x&zwnj;&unknownname;\">",
        "<a title=\"&foo;&Uarr;&lt;\" href=\"/x\u{200c}&unknownname;\">",
    );
}

#[test]
fn html_raw_text_comments_and_other_tokens_are_copied() {
    html(
        "<script>var s = '<a href=\"/x\">';</script><a href=\"/y\">",
        &format!("<script>var s = '<a href=\"/x\">';</script><a href=\"{PREFIX}/y\">"),
    );
    html(
        "<script><!--<script>\"</script><a href=\"/in\">--></script><a href=\"/out\">",
        &format!(
            "<script><!--<script>\"</script><a href=\"/in\">--></script><a href=\"{PREFIX}/out\">"
        ),
    );
    html(
        "<SCRIPT type=x><a href=\"/in\"></SCRIPT ><a href=\"/out\">",
        &format!("<script type=\"x\"><a href=\"/in\"></SCRIPT ><a href=\"{PREFIX}/out\">"),
    );
    // A self-closing script still starts raw text, as in Go.
    html(
        "<script src=\"/s\"/><a href=\"/in\"></script>",
        &format!("<script src=\"{PREFIX}/s\"/><a href=\"/in\"></script>"),
    );
    for tag in [
        "title", "textarea", "style", "xmp", "iframe", "noembed", "noframes", "noscript",
    ] {
        let doc = format!("<{tag}><a href=\"/x\"></{tag}>");
        html(&doc, &doc);
    }
    html(
        "<plaintext><a href=\"/x\"></plaintext><a href=\"/y\">",
        "<plaintext><a href=\"/x\"></plaintext><a href=\"/y\">",
    );
    for raw in [
        "<!-- <a href=\"/x\"> -->",
        "<!DOCTYPE html>",
        "<!doctype HTML PUBLIC \"x\">",
        "<?xml version=\"1.0\"?>",
        "</>",
        "<!>",
        "<!-->",
        "<!--x--!>",
        "</A b=c>",
        "a < b <1 &amp; > c",
        "<![CDATA[<a href=\"/x\">]]>",
        "<",
        "</",
        "<!",
        "<!-- unterminated <a href=\"/x\">",
        "\u{fffd}\u{0}\r\n",
    ] {
        html(raw, raw);
    }
    html(
        "<!-- c --><a href=\"/x\"><!DOCTYPE x>",
        &format!("<!-- c --><a href=\"{PREFIX}/x\"><!DOCTYPE x>"),
    );
}

#[test]
fn html_truncated_tags_are_dropped_like_go() {
    html("abc<a href=\"/x\"", "abc");
    html("abc<a", "abc");
    html("abc</a", "abc");
    html(
        "abc<a href=\"/x\">de<b c",
        &format!("abc<a href=\"{PREFIX}/x\">de"),
    );
}

#[test]
fn html_invalid_urls_and_bytes_are_left_alone() {
    html("<a href=\"http://a b/\">", "<a href=\"http://a b/\">");
    html("<a href=\"/x&#9;y\">", "<a href=\"/x\ty\">");
    html("<a href=\"%zz\">", "<a href=\"%zz\">");
    let body = b"<a title=\"\xff\xfe\" href=\"/\xe9\">\xff";
    let got = rewrite_html_body(&svc_ctx(), BodyEncoding::Identity, body).unwrap();
    let mut want = b"<a title=\"\xff\xfe\" href=\"".to_vec();
    want.extend_from_slice(PREFIX.as_bytes());
    want.extend_from_slice(b"/%E9\">\xff");
    assert_eq!(got, want);
}

#[test]
fn cors_headers() {
    for h in [
        "Access-Control-Allow-Origin",
        "access-control-allow-credentials",
        "ACCESS-CONTROL-ALLOW-HEADERS",
        "Access-Control-Allow-Methods",
    ] {
        assert!(is_cors_header(h), "{h}");
    }
    for h in [
        "Access-Control-Expose-Headers",
        "Access-Control-Max-Age",
        "access-control-allow-origin2",
        "origin",
        "",
    ] {
        assert!(!is_cors_header(h), "{h}");
    }
}

#[test]
fn which_bodies_are_rewritten() {
    use BodyEncoding::*;
    let cases = [
        (Some("text/html"), None, Some(Identity)),
        (Some("text/html; charset=utf-8"), Some(""), Some(Identity)),
        (Some(" Text/HTML ;x"), Some("identity"), Some(Identity)),
        (Some("text/html"), Some("gzip"), Some(Gzip)),
        (Some("text/html"), Some("deflate"), Some(Deflate)),
        (Some("text/html"), Some("br"), None),
        (Some("text/html"), Some("gzip, br"), None),
        (Some("text/plain"), None, None),
        (Some("text/htmlx"), None, None),
        (Some("application/xhtml+xml"), None, None),
        (None, None, None),
        (Some(""), None, None),
    ];
    for (ct, ce, want) in cases {
        assert_eq!(html_body_encoding(ct, ce), want, "{ct:?} {ce:?}");
    }
}

fn gzip_member(data: &[u8], flags: u8, extra: &[u8], name: &[u8], comment: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, flags, 1, 2, 3, 4, 0, 3];
    if flags & 4 != 0 {
        out.extend_from_slice(&(extra.len() as u16).to_le_bytes());
        out.extend_from_slice(extra);
    }
    if flags & 8 != 0 {
        out.extend_from_slice(name);
        out.push(0);
    }
    if flags & 16 != 0 {
        out.extend_from_slice(comment);
        out.push(0);
    }
    if flags & 2 != 0 {
        let crc = codec::crc32(0, &out) as u16;
        out.extend_from_slice(&crc.to_le_bytes());
    }
    out.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(data, 1));
    out.extend_from_slice(&codec::crc32(0, data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

const DOC: &[u8] = b"<p><a href=\"/x\">x</a><a href=\"y\">y</a></p>";

fn rewritten_doc() -> Vec<u8> {
    rewrite_html_body(&svc_ctx(), BodyEncoding::Identity, DOC).unwrap()
}

#[test]
fn crc32_check_value() {
    assert_eq!(codec::crc32(0, b"123456789"), 0xCBF4_3926);
    assert_eq!(
        codec::crc32(codec::crc32(0, b"1234"), b"56789"),
        0xCBF4_3926
    );
}

#[test]
fn gzip_bodies() {
    let want = rewritten_doc();
    assert_ne!(want, DOC);
    let plain = gzip_member(DOC, 0, b"", b"", b"");
    let all = gzip_member(DOC, 2 | 4 | 8 | 16, b"xy\0z", b"index.html", b"a comment");
    for body in [plain, all, codec::gzip(DOC)] {
        let out = rewrite_html_body(&svc_ctx(), BodyEncoding::Gzip, &body).unwrap();
        assert_eq!(out[..10], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
        assert_eq!(codec::gunzip(&out).unwrap(), want);
    }
    // Concatenated members are one stream (Go's multistream default).
    let mut two = gzip_member(&DOC[..10], 8, b"", b"a", b"");
    two.extend(gzip_member(&DOC[10..], 0, b"", b"", b""));
    let out = rewrite_html_body(&svc_ctx(), BodyEncoding::Gzip, &two).unwrap();
    assert_eq!(codec::gunzip(&out).unwrap(), want);
    // Nothing to change: the original bytes come back.
    let same = gzip_member(b"<p>plain</p>", 8, b"", b"n", b"");
    assert_eq!(
        rewrite_html_body(&svc_ctx(), BodyEncoding::Gzip, &same).unwrap(),
        same
    );
    // apimachinery's TestRewriteResponse bodies.
    for text in ["short body test".to_owned(), "long body test".repeat(4097)] {
        let out = rewrite_html_body(
            &svc_ctx(),
            BodyEncoding::Gzip,
            &codec::gzip(text.as_bytes()),
        );
        assert_eq!(codec::gunzip(&out.unwrap()).unwrap(), text.as_bytes());
    }
}

#[test]
fn corrupt_gzip_is_an_error() {
    let good = gzip_member(DOC, 2 | 8, b"", b"n", b"");
    let mut bad_crc = good.clone();
    let n = bad_crc.len();
    bad_crc[n - 6] ^= 1;
    let mut bad_size = good.clone();
    bad_size[n - 1] ^= 1;
    let mut bad_hcrc = good.clone();
    bad_hcrc[12] ^= 1;
    let mut bad_magic = good.clone();
    bad_magic[1] = 0;
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"junk");
    let mut trailing_zero = good.clone();
    trailing_zero.push(0);
    let long_name = gzip_member(DOC, 8, b"", &[b'n'; 511], b"");
    assert!(codec::gunzip(&long_name).is_ok());
    let too_long_name = gzip_member(DOC, 8, b"", &[b'n'; 512], b"");
    for body in [
        Vec::new(),
        good[..5].to_vec(),
        good[..good.len() - 1].to_vec(),
        good[..20].to_vec(),
        bad_crc,
        bad_size,
        bad_hcrc,
        bad_magic,
        trailing,
        trailing_zero,
        too_long_name,
        b"<a href=\"/x\">".to_vec(),
    ] {
        let r = rewrite_html_body(&svc_ctx(), BodyEncoding::Gzip, &body);
        assert!(r.is_err(), "{body:?} -> {r:?}");
    }
}

#[test]
fn deflate_bodies() {
    let want = rewritten_doc();
    // Raw DEFLATE, as Go's compress/flate, trailing bytes ignored.
    let raw = miniz_oxide::deflate::compress_to_vec(DOC, 6);
    let mut raw_trailing = raw.clone();
    raw_trailing.extend_from_slice(b"\x01\x02\x03\x04");
    for body in [raw, raw_trailing] {
        let out = rewrite_html_body(&svc_ctx(), BodyEncoding::Deflate, &body).unwrap();
        assert_eq!(miniz_oxide::inflate::decompress_to_vec(&out).unwrap(), want);
    }
    // zlib-wrapped: decoded and re-encoded as zlib.
    let zlib = miniz_oxide::deflate::compress_to_vec_zlib(DOC, 6);
    let out = rewrite_html_body(&svc_ctx(), BodyEncoding::Deflate, &zlib).unwrap();
    assert_eq!(
        miniz_oxide::inflate::decompress_to_vec_zlib(&out).unwrap(),
        want
    );
    for text in ["short body test".to_owned(), "long body test".repeat(4097)] {
        let body = miniz_oxide::deflate::compress_to_vec(text.as_bytes(), 9);
        let out = rewrite_html_body(&svc_ctx(), BodyEncoding::Deflate, &body).unwrap();
        assert_eq!(out, body, "unchanged document keeps its bytes");
    }
    // Corrupt or truncated.
    let raw = miniz_oxide::deflate::compress_to_vec(DOC, 6);
    let mut bad_adler = zlib.clone();
    let n = bad_adler.len();
    bad_adler[n - 1] ^= 1;
    for body in [
        Vec::new(),
        raw[..raw.len() / 2].to_vec(),
        vec![0xff; 16],
        bad_adler,
        b"<a href=\"/x\">".to_vec(),
    ] {
        let r = rewrite_html_body(&svc_ctx(), BodyEncoding::Deflate, &body);
        assert!(r.is_err(), "{body:?} -> {r:?}");
    }
}

/// Pieces of documents Go re-renders byte-identically.
fn stable_piece() -> impl Strategy<Value = String> {
    let name = "[a-z][a-z0-9]{0,7}";
    let attr = ("[a-z][a-z-]{0,5}", "[a-zA-Z0-9][a-zA-Z0-9./_=?-]{0,10}");
    prop_oneof![
        "[^<]{0,20}",
        "< [a-z]{0,3}",
        "<[0-9=]{1,3}",
        "&(amp|lt|gt|foo);",
        name.prop_map(|n| format!("</{n}>")),
        "([a-z ][a-z <>]{0,9})?".prop_map(|c| format!("<!--{c}-->")),
        Just("<!DOCTYPE html>".to_owned()),
        Just("<?php x ?>".to_owned()),
        (name, proptest::collection::vec(attr, 0..4), any::<bool>()).prop_map(
            |(n, attrs, closing)| {
                let mut seen = std::collections::HashSet::new();
                let mut tag = format!("<{n}");
                for (k, v) in attrs {
                    if seen.insert(k.clone()) {
                        tag.push_str(&format!(" {k}=\"{v}\""));
                    }
                }
                tag.push_str(if closing { "/>" } else { ">" });
                tag
            }
        ),
    ]
}

proptest! {
    #[test]
    fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        for enc in [BodyEncoding::Identity, BodyEncoding::Gzip, BodyEncoding::Deflate] {
            let _ = rewrite_html_body(&svc_ctx(), enc, &body);
        }
        let _ = rewrite_location(&svc_ctx(), &String::from_utf8_lossy(&body));
    }

    #[test]
    fn html_like_input_never_panics(doc in "(<|>|/|=|\"|'|!|-|&|#|;|[a-zA-Z]| |\n|\r|\u{0})*") {
        let out = rewrite_html_body(&svc_ctx(), BodyEncoding::Identity, doc.as_bytes()).unwrap();
        // Only start tags change (or a dropped truncated tag): text before the first `<` stays.
        let head = doc.split('<').next().unwrap_or_default();
        prop_assert!(out.starts_with(head.as_bytes()));
    }

    #[test]
    fn urls_never_panic(u in "[a-zA-Z0-9:/?#\\[\\]@!$&'()*+,;=%._~ -]{0,40}") {
        let out = rewrite_location(&svc_ctx(), &u);
        // Rewriting is idempotent once the prefix is there.
        prop_assert_eq!(rewrite_location(&svc_ctx(), &out), out.clone());
    }

    #[test]
    fn documents_without_rewritable_tags_round_trip(
        pieces in proptest::collection::vec(stable_piece(), 0..12)
    ) {
        let doc = pieces.concat();
        for enc in [BodyEncoding::Identity, BodyEncoding::Gzip, BodyEncoding::Deflate] {
            let body = match enc {
                BodyEncoding::Identity => doc.as_bytes().to_vec(),
                BodyEncoding::Gzip => codec::gzip(doc.as_bytes()),
                BodyEncoding::Deflate => codec::deflate(doc.as_bytes(), false),
            };
            let out = rewrite_html_body(&svc_ctx(), enc, &body).unwrap();
            prop_assert_eq!(out, body);
        }
    }

    #[test]
    fn gzip_round_trips(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
        prop_assert_eq!(codec::gunzip(&codec::gzip(&data)).unwrap(), data.clone());
        prop_assert_eq!(codec::inflate_http(&codec::deflate(&data, false)).unwrap(), (data.clone(), false));
    }
}
