//! Go's `checkPreconditions` for a regular file served without an `ETag` (RFC 7232 §6 order):
//! `If-Match`, `If-Unmodified-Since`, `If-None-Match`, `If-Modified-Since`, `If-Range`.
//!
//! Pure header logic: it decides, it must not touch the file or build bodies.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::Method;
use http::header::HeaderMap;

/// Go's `condResult`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cond {
    /// The header is absent or unusable.
    None,
    /// The condition holds.
    True,
    /// The condition fails.
    False,
}

/// What the preconditions say before any body is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// `412 Precondition Failed`.
    Failed,
    /// `304 Not Modified`.
    NotModified,
    /// Serve the file; `true` when a `Range` header may be honoured.
    Serve(bool),
}

/// The first value of `name`, as Go's `Header.get` (empty when absent or not text).
fn first<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Go's `textproto.TrimString`.
fn trim(s: &str) -> &str {
    s.trim_matches([' ', '\t', '\n', '\r'])
}

/// Go's `scanETag`: the leading entity tag and the rest, or `None` when malformed.
fn scan_etag(s: &str) -> Option<(&str, &str)> {
    let s = trim(s);
    let start = if s.starts_with("W/") { 2 } else { 0 };
    let bytes = s.as_bytes();
    if bytes.len() < start + 2 || bytes[start] != b'"' {
        return None;
    }
    for (i, &c) in bytes.iter().enumerate().skip(start + 1) {
        match c {
            b'"' => return Some((&s[..=i], &s[i + 1..])),
            0x21 | 0x23..=0x7e | 0x80.. => {}
            _ => return None,
        }
    }
    None
}

/// Walks an entity-tag list: `Some(true)` on `*`, `Some(false)` when the list is well formed
/// without `*`, `None` when it stops at a malformed tag. No tag can match: files have no `ETag`.
fn list_has_star(mut buf: &str) -> Option<bool> {
    loop {
        buf = trim(buf);
        if buf.is_empty() {
            return Some(false);
        }
        if let Some(rest) = buf.strip_prefix(',') {
            buf = rest;
            continue;
        }
        if buf.starts_with('*') {
            return Some(true);
        }
        buf = scan_etag(buf)?.1;
    }
}

fn check_if_match(headers: &HeaderMap) -> Cond {
    let im = first(headers, "if-match");
    if im.is_empty() {
        return Cond::None;
    }
    if list_has_star(im) == Some(true) {
        Cond::True
    } else {
        Cond::False
    }
}

fn check_if_none_match(headers: &HeaderMap) -> Cond {
    let inm = first(headers, "if-none-match");
    if inm.is_empty() {
        return Cond::None;
    }
    if list_has_star(inm) == Some(true) {
        Cond::False
    } else {
        Cond::True
    }
}

/// Seconds-truncated modification time, `None` for Go's zero time.
fn whole_seconds(modified: Option<SystemTime>) -> Option<SystemTime> {
    let secs = modified?.duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

fn date(headers: &HeaderMap, name: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(first(headers, name)).ok()
}

fn check_if_unmodified_since(headers: &HeaderMap, modified: Option<SystemTime>) -> Cond {
    let (Some(m), Some(t)) = (
        whole_seconds(modified),
        date(headers, "if-unmodified-since"),
    ) else {
        return Cond::None;
    };
    if m <= t { Cond::True } else { Cond::False }
}

/// Go's `checkIfModifiedSince` (also used alone for directories).
pub(super) fn modified_since_fails(
    method: &Method,
    headers: &HeaderMap,
    modified: Option<SystemTime>,
) -> bool {
    if method != Method::GET && method != Method::HEAD {
        return false;
    }
    let (Some(m), Some(t)) = (whole_seconds(modified), date(headers, "if-modified-since")) else {
        return false;
    };
    m <= t
}

fn check_if_range(method: &Method, headers: &HeaderMap, modified: Option<SystemTime>) -> Cond {
    if method != Method::GET && method != Method::HEAD {
        return Cond::None;
    }
    let ir = first(headers, "if-range");
    if ir.is_empty() {
        return Cond::None;
    }
    if scan_etag(ir).is_some_and(|(tag, _)| !tag.is_empty()) {
        return Cond::False;
    }
    match (whole_seconds(modified), httpdate::parse_http_date(ir).ok()) {
        (Some(m), Some(t)) if m == t => Cond::True,
        _ => Cond::False,
    }
}

/// Go's `checkPreconditions` for a file with no `ETag`.
pub(super) fn check(method: &Method, headers: &HeaderMap, modified: Option<SystemTime>) -> Verdict {
    let mut ch = check_if_match(headers);
    if ch == Cond::None {
        ch = check_if_unmodified_since(headers, modified);
    }
    if ch == Cond::False {
        return Verdict::Failed;
    }
    match check_if_none_match(headers) {
        Cond::False if method == Method::GET || method == Method::HEAD => {
            return Verdict::NotModified;
        }
        Cond::False => return Verdict::Failed,
        Cond::None if modified_since_fails(method, headers, modified) => {
            return Verdict::NotModified;
        }
        _ => {}
    }
    Verdict::Serve(check_if_range(method, headers, modified) != Cond::False)
}
