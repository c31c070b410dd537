//! Go 1.26 `net/url` as `rewriteURL` uses it, over bytes: `url.Parse` (with its errors), the
//! `URL` fields, `URL.String()` (with `EscapedPath`/`EscapedFragment`), and `path.Join`/`Clean`.
//!
//! Hosts follow Go 1.26's strict colons for `http`/`https` (`urlstrictcolons=1`; other schemes take
//! the last colon as the port) and `netip.ParseAddr` for bracketed literals (IPv6 only).

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Path,
    Host,
    Zone,
    UserPassword,
    Fragment,
}

/// Go `shouldEscape(c, mode)`.
fn should_escape(c: u8, mode: Mode) -> bool {
    if c.is_ascii_alphanumeric() {
        return false;
    }
    if matches!(mode, Mode::Host | Mode::Zone) && b"!$&'()*+,;=:[]<>\"".contains(&c) {
        return false;
    }
    match c {
        b'-' | b'_' | b'.' | b'~' => false,
        b'$' | b'&' | b'+' | b',' | b'/' | b':' | b';' | b'=' | b'?' | b'@' => match mode {
            Mode::Path => c == b'?',
            Mode::UserPassword => matches!(c, b'@' | b'/' | b'?' | b':'),
            Mode::Fragment => false,
            Mode::Host | Mode::Zone => true,
        },
        b'!' | b'(' | b')' | b'*' => mode != Mode::Fragment,
        _ => true,
    }
}

fn unhex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Go `unescape(s, mode)`; `None` on error.
fn unescape(s: &[u8], mode: Mode) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c == b'%' {
            let hi = unhex(*s.get(i + 1)?)?;
            let lo = unhex(*s.get(i + 2)?)?;
            let v = hi << 4 | lo;
            let pct25 = v == 0x25;
            if mode == Mode::Host && hi < 8 && !pct25 {
                return None;
            }
            if mode == Mode::Zone && !pct25 && v != b' ' && should_escape(v, Mode::Host) {
                return None;
            }
            out.push(v);
            i += 3;
        } else {
            if matches!(mode, Mode::Host | Mode::Zone) && c < 0x80 && should_escape(c, mode) {
                return None;
            }
            out.push(c);
            i += 1;
        }
    }
    Some(out)
}

/// Go `escape(s, mode)`.
fn escape(s: &[u8], mode: Mode, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &c in s {
        if should_escape(c, mode) {
            out.extend_from_slice(&[b'%', HEX[usize::from(c >> 4)], HEX[usize::from(c & 15)]]);
        } else {
            out.push(c);
        }
    }
}

fn escaped(s: &[u8], mode: Mode) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    escape(s, mode, &mut out);
    out
}

/// Go `validEncoded(s, mode)`.
fn valid_encoded(s: &[u8], mode: Mode) -> bool {
    s.iter()
        .all(|&c| b"!$&'()*+,;=:@[]%".contains(&c) || !should_escape(c, mode))
}

/// Go `validOptionalPort`.
fn valid_optional_port(p: &[u8]) -> bool {
    match p.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

/// A parsed URL: Go's `url.URL` fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct GoUrl {
    scheme: Vec<u8>,
    opaque: Vec<u8>,
    /// Username and optional password, decoded.
    user: Option<(Vec<u8>, Option<Vec<u8>>)>,
    host: Vec<u8>,
    path: Vec<u8>,
    raw_path: Vec<u8>,
    omit_host: bool,
    force_query: bool,
    raw_query: Vec<u8>,
    fragment: Vec<u8>,
    raw_fragment: Vec<u8>,
}

/// Go `url.Parse`; `None` when Go returns an error.
pub(crate) fn parse(raw: &[u8]) -> Option<GoUrl> {
    let (u, frag) = match raw.iter().position(|&b| b == b'#') {
        Some(i) => (&raw[..i], &raw[i + 1..]),
        None => (raw, &raw[raw.len()..]),
    };
    let mut url = parse_no_fragment(u)?;
    if !frag.is_empty() {
        url.fragment = unescape(frag, Mode::Fragment)?;
        if escaped(&url.fragment, Mode::Fragment) != frag {
            url.raw_fragment = frag.to_vec();
        }
    }
    Some(url)
}

fn parse_no_fragment(raw: &[u8]) -> Option<GoUrl> {
    if raw.iter().any(|&b| b < b' ' || b == 0x7f) {
        return None;
    }
    let mut url = GoUrl::default();
    if raw == b"*" {
        url.path = b"*".to_vec();
        return Some(url);
    }
    let mut rest = raw;
    for (i, &c) in raw.iter().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
            b':' if i == 0 => return None,
            b':' => {
                url.scheme = raw[..i].to_ascii_lowercase();
                rest = &raw[i + 1..];
                break;
            }
            _ => break,
        }
    }
    if rest.last() == Some(&b'?') && rest.iter().filter(|&&b| b == b'?').count() == 1 {
        url.force_query = true;
        rest = &rest[..rest.len() - 1];
    } else if let Some(q) = rest.iter().position(|&b| b == b'?') {
        url.raw_query = rest[q + 1..].to_vec();
        rest = &rest[..q];
    }
    if !rest.starts_with(b"/") {
        if !url.scheme.is_empty() {
            url.opaque = rest.to_vec();
            return Some(url);
        }
        let segment = rest.split(|&b| b == b'/').next().unwrap_or_default();
        if segment.contains(&b':') {
            return None;
        }
    }
    if (!url.scheme.is_empty() || !rest.starts_with(b"///")) && rest.starts_with(b"//") {
        let authority = &rest[2..];
        let end = authority
            .iter()
            .position(|&b| b == b'/')
            .unwrap_or(authority.len());
        parse_authority(&mut url, &authority[..end])?;
        rest = &authority[end..];
    } else if !url.scheme.is_empty() && rest.starts_with(b"/") {
        url.omit_host = true;
    }
    url.path = unescape(rest, Mode::Path)?;
    if escaped(&url.path, Mode::Path) != rest {
        url.raw_path = rest.to_vec();
    }
    Some(url)
}

fn parse_authority(url: &mut GoUrl, authority: &[u8]) -> Option<()> {
    let at = authority.iter().rposition(|&b| b == b'@');
    let host = at.map_or(authority, |i| &authority[i + 1..]);
    url.host = parse_host(&url.scheme, host)?;
    if let Some(i) = at {
        let userinfo = &authority[..i];
        let allowed = |c: &u8| c.is_ascii_alphanumeric() || b"-._:~!$&'()*+,;=%@".contains(c);
        if !userinfo.iter().all(allowed) {
            return None;
        }
        url.user = Some(match userinfo.iter().position(|&b| b == b':') {
            None => (unescape(userinfo, Mode::UserPassword)?, None),
            Some(c) => (
                unescape(&userinfo[..c], Mode::UserPassword)?,
                Some(unescape(&userinfo[c + 1..], Mode::UserPassword)?),
            ),
        });
    }
    Some(())
}

/// Go `parseHost(scheme, host)`.
fn parse_host(scheme: &[u8], host: &[u8]) -> Option<Vec<u8>> {
    match host.iter().rposition(|&b| b == b'[') {
        Some(i) if i > 0 => return None,
        Some(_) => {
            let close = host.iter().rposition(|&b| b == b']')?;
            let colon_port = &host[close + 1..];
            if !valid_optional_port(colon_port) {
                return None;
            }
            let name = &host[1..close];
            let mut unescaped = match name.windows(3).position(|w| w == b"%25") {
                Some(z) => {
                    let mut h = unescape(&name[..z], Mode::Host)?;
                    h.extend(unescape(&name[z..], Mode::Zone)?);
                    h
                }
                None => unescape(name, Mode::Host)?,
            };
            if !is_ipv6_literal(&unescaped) {
                return None;
            }
            unescaped.insert(0, b'[');
            unescaped.push(b']');
            unescaped.extend_from_slice(colon_port);
            return Some(unescaped);
        }
        None => {}
    }
    if let Some(first) = host.iter().position(|&b| b == b':') {
        let last = host.iter().rposition(|&b| b == b':').unwrap_or(first);
        let strict = scheme == b"http" || scheme == b"https";
        let i = if strict { first } else { last };
        if !valid_optional_port(&host[i..]) {
            return None;
        }
    }
    unescape(host, Mode::Host)
}

/// Go `netip.ParseAddr(s)` succeeds with an IPv6 address (an IPv4 one is refused in brackets).
fn is_ipv6_literal(s: &[u8]) -> bool {
    match s.iter().find(|&&b| matches!(b, b'.' | b':' | b'%')) {
        Some(b':') => parse_ipv6(s),
        _ => false,
    }
}

/// Go `netip.parseIPv6` succeeds.
fn parse_ipv6(s: &[u8]) -> bool {
    let mut s = match s.iter().position(|&b| b == b'%') {
        Some(z) if z + 1 == s.len() => return false,
        Some(z) => &s[..z],
        None => s,
    };
    let mut ellipsis: Option<usize> = None;
    if let Some(rest) = s.strip_prefix(b"::") {
        ellipsis = Some(0);
        s = rest;
        if s.is_empty() {
            return true;
        }
    }
    let mut i = 0;
    while i < 16 {
        let digits = s.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        if digits == 0 || digits > 4 {
            return false;
        }
        if s.get(digits) == Some(&b'.') {
            if (ellipsis.is_none() && i != 12) || i + 4 > 16 || !valid_ipv4(s) {
                return false;
            }
            s = &[];
            i += 4;
            break;
        }
        i += 2;
        s = &s[digits..];
        let Some((&c, rest)) = s.split_first() else {
            break;
        };
        if c != b':' || rest.is_empty() {
            return false;
        }
        s = rest;
        if s[0] == b':' {
            if ellipsis.is_some() {
                return false;
            }
            ellipsis = Some(i);
            s = &s[1..];
            if s.is_empty() {
                break;
            }
        }
    }
    s.is_empty() && (i < 16) == ellipsis.is_some()
}

/// Go `netip.parseIPv4Fields` succeeds (dotted quad, no leading zeros).
fn valid_ipv4(s: &[u8]) -> bool {
    let mut fields = 0;
    for part in s.split(|&b| b == b'.') {
        fields += 1;
        let ok = !part.is_empty()
            && part.len() <= 3
            && part.iter().all(u8::is_ascii_digit)
            && !(part.len() > 1 && part[0] == b'0')
            && part.iter().fold(0u32, |v, &d| v * 10 + u32::from(d - b'0')) <= 255;
        if !ok {
            return false;
        }
    }
    fields == 4
}

impl GoUrl {
    /// Go `URL.EscapedPath()`.
    fn escaped_path(&self) -> Vec<u8> {
        if !self.raw_path.is_empty()
            && valid_encoded(&self.raw_path, Mode::Path)
            && unescape(&self.raw_path, Mode::Path).as_deref() == Some(&self.path[..])
        {
            return self.raw_path.clone();
        }
        if self.path == b"*" {
            return self.path.clone();
        }
        escaped(&self.path, Mode::Path)
    }

    /// Go `URL.EscapedFragment()`.
    fn escaped_fragment(&self) -> Vec<u8> {
        if !self.raw_fragment.is_empty()
            && valid_encoded(&self.raw_fragment, Mode::Fragment)
            && unescape(&self.raw_fragment, Mode::Fragment).as_deref() == Some(&self.fragment[..])
        {
            return self.raw_fragment.clone();
        }
        escaped(&self.fragment, Mode::Fragment)
    }

    /// Go `URL.String()`.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        if !self.scheme.is_empty() {
            buf.extend_from_slice(&self.scheme);
            buf.push(b':');
        }
        if self.opaque.is_empty() {
            let no_authority = self.host.is_empty() && self.user.is_none();
            let authority = if no_authority {
                !self.scheme.is_empty() && !self.omit_host
            } else {
                true
            };
            if authority {
                if !self.host.is_empty() || !self.path.is_empty() || self.user.is_some() {
                    buf.extend_from_slice(b"//");
                }
                if let Some((name, password)) = &self.user {
                    escape(name, Mode::UserPassword, &mut buf);
                    if let Some(password) = password {
                        buf.push(b':');
                        escape(password, Mode::UserPassword, &mut buf);
                    }
                    buf.push(b'@');
                }
                escape(&self.host, Mode::Host, &mut buf);
            }
            let path = self.escaped_path();
            let mut path = &path[..];
            if self.omit_host && no_authority && path.starts_with(b"//") {
                buf.extend_from_slice(b"%2F");
                path = &path[1..];
            }
            if path.first().is_some_and(|&b| b != b'/') && !self.host.is_empty() {
                buf.push(b'/');
            }
            if buf.is_empty() {
                let segment = path.split(|&b| b == b'/').next().unwrap_or_default();
                if segment.contains(&b':') {
                    buf.extend_from_slice(b"./");
                }
            }
            buf.extend_from_slice(path);
        } else {
            buf.extend_from_slice(&self.opaque);
        }
        if self.force_query || !self.raw_query.is_empty() {
            buf.push(b'?');
            buf.extend_from_slice(&self.raw_query);
        }
        if !self.fragment.is_empty() {
            buf.push(b'#');
            buf.extend_from_slice(&self.escaped_fragment());
        }
        buf
    }
}

/// Go `path.Clean`.
pub(crate) fn path_clean(path: &[u8]) -> Vec<u8> {
    if path.is_empty() {
        return b".".to_vec();
    }
    let rooted = path[0] == b'/';
    let n = path.len();
    let mut out: Vec<u8> = Vec::with_capacity(n);
    let (mut r, mut dotdot) = (0, 0);
    if rooted {
        out.push(b'/');
        (r, dotdot) = (1, 1);
    }
    let at = |i: usize| path.get(i).copied();
    while r < n {
        if path[r] == b'/' || (path[r] == b'.' && matches!(at(r + 1), None | Some(b'/'))) {
            r += 1;
        } else if path[r] == b'.'
            && at(r + 1) == Some(b'.')
            && matches!(at(r + 2), None | Some(b'/'))
        {
            r += 2;
            if out.len() > dotdot {
                let mut w = out.len() - 1;
                while w > dotdot && out[w] != b'/' {
                    w -= 1;
                }
                out.truncate(w);
            } else if !rooted {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(b"..");
                dotdot = out.len();
            }
        } else {
            if (rooted && out.len() != 1) || (!rooted && !out.is_empty()) {
                out.push(b'/');
            }
            while r < n && path[r] != b'/' {
                out.push(path[r]);
                r += 1;
            }
        }
    }
    if out.is_empty() {
        return b".".to_vec();
    }
    out
}

/// Go `path.Join(a, b)`.
fn path_join(a: &[u8], b: &[u8]) -> Vec<u8> {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => Vec::new(),
        (true, false) => path_clean(b),
        (false, true) => path_clean(a),
        (false, false) => path_clean(&[a, b"/", b].concat()),
    }
}

/// apimachinery `Transport.rewriteURL` with an empty transport scheme and host.
pub(crate) fn rewrite_url(
    mut url: GoUrl,
    source_host: &[u8],
    request_host: &[u8],
    path_prepend: &[u8],
) -> Vec<u8> {
    let different_host =
        !url.host.is_empty() && url.host != source_host && url.host != request_host;
    if different_host || !url.path.starts_with(b"/") {
        return url.to_bytes();
    }
    if url.host != request_host {
        url.scheme.clear();
        url.host.clear();
    }
    if url.path.starts_with(path_prepend) {
        return url.to_bytes();
    }
    let trailing = url.path.ends_with(b"/");
    url.path = path_join(path_prepend, &url.path);
    if trailing {
        url.path.push(b'/');
    }
    url.to_bytes()
}
