//! Go's `net/url`, `path` and `net` string helpers that `kubectl proxy`'s behaviour depends on:
//! path escaping and unescaping (`encodePath` mode), `EscapedPath`, `path.Clean`, the mux's
//! `cleanPath`, `net.SplitHostPort`, and the escaping `http.Redirect` applies.
//!
//! Pure byte and string functions only; no policy and no knowledge of the plugin configuration.

/// Go `url.shouldEscape(c, encodePath)`.
fn should_escape_path(c: u8) -> bool {
    if c.is_ascii_alphanumeric() {
        return false;
    }
    match c {
        b'-' | b'_' | b'.' | b'~' => false,
        b'$' | b'&' | b'+' | b',' | b'/' | b':' | b';' | b'=' | b'?' | b'@' => c == b'?',
        _ => true,
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Go `url.unescape(s, encodePath)`: `%XX` decoded; `None` on a malformed escape such as `%zz`.
pub(crate) fn unescape_path(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_value)?;
            let lo = bytes.get(i + 2).copied().and_then(hex_value)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Go `url.PathUnescape` as used by the mux (`pathUnescape`): the original on error.
pub(crate) fn path_unescape_or_original(s: &str) -> Vec<u8> {
    unescape_path(s).unwrap_or_else(|| s.as_bytes().to_vec())
}

/// Bytes as Go's `regexp` reads a string: each invalid UTF-8 byte is one U+FFFD (Rust's
/// `from_utf8_lossy` turns a truncated sequence such as `E0 A0` into a single one).
pub(crate) fn go_lossy(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        out.extend(chunk.invalid().iter().map(|_| char::REPLACEMENT_CHARACTER));
    }
    out
}

/// Go `url.escape(s, encodePath)` over raw bytes (upper-case hex).
pub(crate) fn escape_path(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if should_escape_path(b) {
            out.push('%');
            out.push(char::from(UPPER_HEX[usize::from(b >> 4)]));
            out.push(char::from(UPPER_HEX[usize::from(b & 15)]));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// Go `url.validEncoded(s, encodePath)`: may `s` be used verbatim as an escaped path?
pub(crate) fn valid_encoded_path(s: &str) -> bool {
    s.bytes().all(|b| match b {
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b':'
        | b'@' | b'[' | b']' | b'%' => true,
        _ => !should_escape_path(b),
    })
}

/// Go `URL.EscapedPath()` for a URL parsed from the raw path `raw` (decoded: `decoded`).
///
/// `url.setPath` keeps `RawPath` only when it differs from `escape(Path)`; `EscapedPath` returns it
/// when it is a valid encoding, else re-escapes `Path`.
pub(crate) fn escaped_path(raw: &str, decoded: &[u8]) -> String {
    if valid_encoded_path(raw) {
        raw.to_owned()
    } else {
        escape_path(decoded)
    }
}

/// Whether Go keeps a `RawPath` for this raw path (it differs from the canonical escaping).
pub(crate) fn has_raw_path(raw: &str, decoded: &[u8]) -> bool {
    escape_path(decoded) != raw
}

/// Go `path.Clean` on a byte string (used on rooted paths only).
pub(crate) fn path_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".to_owned();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            _ => parts.push(seg),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// Go `net/http.cleanPath`: `path.Clean` that keeps a trailing slash and roots the path.
pub(crate) fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return "/".to_owned();
    }
    let p = if p.starts_with('/') {
        p.to_owned()
    } else {
        format!("/{p}")
    };
    let mut np = path_clean(&p);
    if p.ends_with('/') && np != "/" {
        np.push('/');
    }
    np
}

/// The host part of a `Host` value the way kubectl's `extractHost` sees it, plus whether it was a
/// bracketed IPv6 literal with a port (`[::1]:8001` gives `("::1", true)`).
///
/// Go `net.SplitHostPort`; on error the whole value is the host.
pub(crate) fn split_host_port(hostport: &str) -> Option<(&str, bool)> {
    let i = hostport.rfind(':')?;
    let (host, j, k, bracketed) = if hostport.starts_with('[') {
        let end = hostport.find(']')?;
        if end + 1 != i {
            return None;
        }
        (&hostport[1..end], 1, end + 1, true)
    } else {
        let host = &hostport[..i];
        if host.contains(':') {
            return None;
        }
        (host, 0, 0, false)
    };
    if hostport[j..].contains('[') || hostport[k..].contains(']') {
        return None;
    }
    Some((host, bracketed))
}

/// Go `url.parseAuthority` (go1.23) accepts `authority`: userinfo of the allowed characters
/// with valid escapes, and a host as `parseHost` wants it (a `]` for `[`, a numeric port,
/// `%` escapes only for non-ASCII bytes or `%25`, no characters a host cannot have).
pub(crate) fn valid_authority(authority: &str) -> bool {
    let host = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let chars = userinfo
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._:~!$&'()*+,;=%@".contains(&b));
            if !chars || unescape_path(userinfo).is_none() {
                return false;
            }
            host
        }
        None => authority,
    };
    let valid_port = |p: &str| {
        p.is_empty()
            || p.strip_prefix(':')
                .is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()))
    };
    if host.starts_with('[') {
        let Some(i) = host.rfind(']') else {
            return false;
        };
        if !valid_port(&host[i + 1..]) {
            return false;
        }
        if let Some(zone) = host[..i].find("%25") {
            return host_unescapes(&host[..zone], false)
                && host_unescapes(&host[zone..i], true)
                && host_unescapes(&host[i..], false);
        }
    } else if let Some(i) = host.rfind(':')
        && !valid_port(&host[i..])
    {
        return false;
    }
    host_unescapes(host, false)
}

/// Go `unescape(s, encodeHost)` (or `encodeZone`) succeeds.
fn host_unescapes(s: &str, zone: bool) -> bool {
    let host_byte = |c: u8| c.is_ascii_alphanumeric() || b"!$&'()*+,;=:[]<>\"-_.~".contains(&c);
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let (Some(hi), Some(lo)) = (
                b.get(i + 1).copied().and_then(hex_value),
                b.get(i + 2).copied().and_then(hex_value),
            ) else {
                return false;
            };
            let pct25 = hi == 2 && lo == 5;
            let v = hi << 4 | lo;
            if (!zone && hi < 8 && !pct25) || (zone && !pct25 && v != b' ' && !host_byte(v)) {
                return false;
            }
            i += 3;
        } else {
            if b[i] < 0x80 && !host_byte(b[i]) {
                return false;
            }
            i += 1;
        }
    }
    true
}

/// Go `html.EscapeString`-like `htmlEscape` used by `http.Redirect`'s body.
pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&#39;"),
            '"' => out.push_str("&#34;"),
            _ => out.push(c),
        }
    }
    out
}

/// Go `hexEscapeNonASCII`, applied to a redirect's `Location`.
pub(crate) fn hex_escape_non_ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b >= 0x80 {
            out.push('%');
            out.push(char::from(UPPER_HEX[usize::from(b >> 4)]));
            out.push(char::from(UPPER_HEX[usize::from(b & 15)]));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// Go `httputil` `singleJoiningSlash`.
pub(crate) fn single_joining_slash(a: &str, b: &str) -> String {
    match (a.ends_with('/'), b.starts_with('/')) {
        (true, true) => format!("{a}{}", &b[1..]),
        (false, false) => format!("{a}/{b}"),
        _ => format!("{a}{b}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_clean(input: &str, expected: &str) {
        assert_eq!(clean_path(input), expected, "cleanPath({input:?})");
    }

    #[test]
    fn clean_path_like_go() {
        check_clean("", "/");
        check_clean("/", "/");
        check_clean("//api//v1", "/api/v1");
        check_clean("/api//v1/pods", "/api/v1/pods");
        check_clean("/api/./v1/pods", "/api/v1/pods");
        check_clean("/api/v1/../../etc/passwd", "/etc/passwd");
        check_clean("/a/b/", "/a/b/");
        check_clean("/a//b//", "/a/b/");
        check_clean("/..", "/");
        check_clean("/../", "/");
        check_clean("a/b", "/a/b");
    }

    #[track_caller]
    fn check_split(input: &str, expected: Option<(&str, bool)>) {
        assert_eq!(split_host_port(input), expected, "SplitHostPort({input:?})");
    }

    #[test]
    fn split_host_port_like_go() {
        check_split("localhost:8001", Some(("localhost", false)));
        check_split("localhost", None);
        check_split("[::1]:8001", Some(("::1", true)));
        check_split("[::1]", None);
        check_split("::1", None);
        check_split(":8001", Some(("", false)));
        check_split("localhost:abc", Some(("localhost", false)));
        check_split("[::1]x:80", None);
        check_split("a[b:80", None);
        check_split("", None);
    }

    #[test]
    fn escaping_like_go() {
        assert_eq!(unescape_path("/a%2Fb%zz"), None);
        assert_eq!(unescape_path("/a%2"), None);
        assert_eq!(unescape_path("/a%2fb").as_deref(), Some(&b"/a/b"[..]));
        assert_eq!(
            escape_path(b"/a b?c%d\"!*[]"),
            "/a%20b%3Fc%25d%22%21%2A%5B%5D"
        );
        assert_eq!(escape_path(b"/$&+,:;=@-_.~"), "/$&+,:;=@-_.~");
        assert!(valid_encoded_path("/a%2Fb!'()*[]"));
        assert!(!valid_encoded_path("/a\"b"));
        assert_eq!(escaped_path("/a\"b", b"/a\"b"), "/a%22b");
        assert_eq!(escaped_path("/a%2Fb", b"/a/b"), "/a%2Fb");
        assert_eq!(hex_escape_non_ascii("/é"), "/%C3%A9");
        assert_eq!(
            html_escape("<a href='x'>&\""),
            "&lt;a href=&#39;x&#39;&gt;&amp;&#34;"
        );
    }

    #[test]
    fn valid_authority_like_go() {
        for ok in [
            "localhost",
            "localhost:8001",
            "localhost:",
            "",
            ":8001",
            "::1",
            "[::1]",
            "[::1]:80",
            "u:p@localhost",
            "a@b@localhost",
            "[fe80::1%25en0]:80",
            "%C3%A9.example",
        ] {
            assert!(valid_authority(ok), "{ok:?}");
        }
        for bad in [
            "localhost:abc",
            "[::1",
            "[::1]x:80",
            "%6cocalhost",
            "a b",
            "local{host",
            "u/x@h",
            "%zz",
            "[fe80::1%25%00]",
        ] {
            assert!(!valid_authority(bad), "{bad:?}");
        }
    }

    #[test]
    fn single_joining_slash_like_go() {
        assert_eq!(
            single_joining_slash("/base/path/", "/api/v1/pods"),
            "/base/path/api/v1/pods"
        );
        assert_eq!(single_joining_slash("/base/path/", ""), "/base/path/");
        assert_eq!(single_joining_slash("", ""), "/");
        assert_eq!(single_joining_slash("", "/api"), "/api");
        assert_eq!(single_joining_slash("/b", "/api"), "/b/api");
    }
}
