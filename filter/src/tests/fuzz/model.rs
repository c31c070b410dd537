//! The reference model: what kubectl v1.32 (go1.23 `net/http`, `net/url`, `net`, apimachinery)
//! would hand its filter for a request, re-derived from the Go sources without calling the
//! filter's code. Small on purpose; where it cannot judge a request it says [`Why::Unknown`].
//!
//! No decisions are taken here: the properties in `fuzz.rs` compare the filter against it.

use regex_lite::Regex;

use super::arb::Spec;
use crate::decision::RequestHead;

/// Why the model has no view of a request.
#[derive(Debug)]
pub(super) enum Why {
    /// kubectl answers before the filter (400, 301, 404, the `*` replies).
    Rejects(&'static str),
    /// A form the model does not cover.
    Unknown,
}

/// kubectl's view of a request that reaches a handler.
#[derive(Debug)]
pub(super) struct View {
    /// The raw (escaped) path of the target, without the query.
    pub(super) raw_path: String,
    /// `req.URL.Path`, decoded bytes.
    pub(super) decoded: Vec<u8>,
    /// The path after `stripLeaveSlash` (`Err`: kubectl answers 404 in the API handler).
    pub(super) stripped: Result<Vec<u8>, &'static str>,
    /// `req.Host`: the absolute-form target's host, else the `Host` header.
    pub(super) host: String,
    /// `req.URL.RawQuery`, `None` without `?`.
    pub(super) query: Option<String>,
}

/// Absolute-form authorities the generator uses, with Go's `url.ParseRequestURI` verdict: the
/// resulting `URL.Host` (userinfo dropped, host unescaped), or `None` for a 400.
const AUTHORITIES: &[(&str, Option<&str>)] = &[
    ("localhost", Some("localhost")),
    ("localhost:8001", Some("localhost:8001")),
    ("127.0.0.1", Some("127.0.0.1")),
    ("127.0.0.1:8001", Some("127.0.0.1:8001")),
    ("[::1]", Some("[::1]")),
    ("[::1]:8001", Some("[::1]:8001")),
    ("::1", Some("::1")),
    ("evil.com", Some("evil.com")),
    ("evil.com:443", Some("evil.com:443")),
    ("", Some("")),
    (":8001", Some(":8001")),
    ("localhost:abc", None),
    ("[::1]x:80", None),
    ("LOCALHOST", Some("LOCALHOST")),
    ("127.0.0.1.", Some("127.0.0.1.")),
    ("[fe80::1%25en0]:80", Some("[fe80::1%en0]:80")),
    ("localhost:", Some("localhost:")),
    ("u@localhost", Some("localhost")),
    ("evil.com@localhost", Some("localhost")),
    ("localhost@evil.com", Some("evil.com")),
    ("u:p@localhost:8001", Some("localhost:8001")),
    ("[::1", None),
    ("%6cocalhost", None),
];

/// Go `url.getScheme` + the request-URI rules: `Some((scheme, rest))` or `None` (no scheme).
fn scheme(target: &str) -> Option<(&str, &str)> {
    for (i, c) in target.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i > 0 => return Some((&target[..i], &target[i + 1..])),
            _ => return None,
        }
    }
    None
}

/// kubectl's view of `head`, or why there is none.
pub(super) fn kubectl_view(spec: &Spec, head: &RequestHead) -> Result<View, Why> {
    let target = head.path.as_str();
    if target == "*" {
        return Err(Why::Rejects("the `*` replies"));
    }
    if head.method == "CONNECT" && !target.starts_with('/') {
        return Err(Why::Rejects(
            "301 to / (authority-form CONNECT has an empty path)",
        ));
    }
    if target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(Why::Rejects(
            "400 (space or control character in the target)",
        ));
    }
    let (before_query, query) = split_query(target);
    let (authority, raw_path) = if before_query.starts_with('/') {
        (None, before_query)
    } else {
        let (_, rest) = scheme(before_query).ok_or(Why::Rejects("400 (not a request URI)"))?;
        let Some(rest) = rest.strip_prefix("//") else {
            return Err(Why::Unknown);
        };
        let end = rest.find('/').unwrap_or(rest.len());
        let go_host = AUTHORITIES
            .iter()
            .find(|(a, _)| *a == &rest[..end])
            .ok_or(Why::Unknown)?
            .1
            .ok_or(Why::Rejects("400 (invalid authority)"))?;
        (Some(go_host), &rest[end..])
    };
    let decoded = unescape(raw_path).ok_or(Why::Rejects("400 (invalid escape)"))?;
    let stripped = if spec.strips() {
        match decoded.strip_prefix(spec.api_prefix().as_bytes()) {
            None => Err("the API handler's stripLeaveSlash answers 404"),
            Some(p) if !p.is_empty() && !p.starts_with(b"/") => Ok([b"/", p].concat()),
            Some(p) => Ok(p.to_vec()),
        }
    } else {
        Ok(decoded.clone())
    };
    let host = match authority {
        Some(h) if !h.is_empty() => h.to_owned(),
        _ => head.authority.clone(),
    };
    Ok(View {
        raw_path: raw_path.to_owned(),
        decoded,
        stripped,
        host,
        query: query.map(str::to_owned),
    })
}

/// Splits at the first `?`.
pub(super) fn split_query(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    }
}

/// Go `url.unescape(s, encodePath)`.
pub(super) fn unescape(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = char::from(bytes.next()?).to_digit(16)?;
            let lo = char::from(bytes.next()?).to_digit(16)?;
            out.push(u8::try_from(hi * 16 + lo).ok()?);
        } else {
            out.push(b);
        }
    }
    Some(out)
}

/// A Go string as `regexp` reads it: each invalid UTF-8 byte is one U+FFFD.
pub(super) fn go_string(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        out.extend(chunk.invalid().iter().map(|_| '\u{FFFD}'));
    }
    out
}

/// Go `net.SplitHostPort`'s host, `None` on error.
fn split_host_port(hp: &str) -> Option<&str> {
    let i = hp.rfind(':')?;
    let (host, j, k) = if hp.starts_with('[') {
        let end = hp.find(']')?;
        if end + 1 != i {
            return None;
        }
        (&hp[1..end], 1, end + 1)
    } else {
        if hp[..i].contains(':') {
            return None;
        }
        (&hp[..i], 0, 0)
    };
    if hp[j..].contains('[') || hp[k..].contains(']') {
        return None;
    }
    Some(host)
}

/// kubectl's `extractHost`, with kproxy's deviation (a): a bracketed host keeps its brackets.
pub(super) fn filter_host(host: &str) -> String {
    match split_host_port(host) {
        Some(h) if host.starts_with('[') => format!("[{h}]"),
        Some(h) => h.to_owned(),
        None => host.to_owned(),
    }
}

/// Go `regexp.MatchString` over a list: any pattern matches.
pub(super) fn any_match(patterns: &[String], text: &str) -> bool {
    patterns.iter().any(|p| {
        Regex::new(p)
            .unwrap_or_else(|e| panic!("generated regex {p:?}: {e}"))
            .is_match(text)
    })
}

/// Go `httputil` `singleJoiningSlash`, on decoded bytes.
pub(super) fn single_joining_slash(a: &[u8], b: &[u8]) -> Vec<u8> {
    match (a.ends_with(b"/"), b.starts_with(b"/")) {
        (true, true) => [a, &b[1..]].concat(),
        (false, false) => [a, b"/", b].concat(),
        _ => [a, b].concat(),
    }
}

/// Whether an escaped path has `.`/`..` segments or an empty segment before its end.
pub(super) fn has_dot_segments(path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    segments
        .iter()
        .enumerate()
        .any(|(i, s)| *s == "." || *s == ".." || (s.is_empty() && i + 1 != segments.len()))
}

/// apimachinery `SplitSchemeNamePort`, counted rather than split.
pub(super) fn split_scheme_name_port(id: &str) -> Option<(&str, &str, &str)> {
    let (scheme, name, port) = match id.matches(':').count() {
        0 => ("", id, ""),
        1 => {
            let (name, port) = id.split_once(':')?;
            ("", name, port)
        }
        2 => {
            let (scheme, rest) = id.split_once(':')?;
            let (name, port) = rest.split_once(':')?;
            (scheme, name, port)
        }
        _ => return None,
    };
    (!name.is_empty() && ["", "http", "https"].contains(&scheme)).then_some((scheme, name, port))
}
