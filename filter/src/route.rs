//! Go's `http.ServeMux` (go1.22+ rules, as in kubectl v1.32 built with go1.23) over kubectl's two
//! handlers, plus what happens inside them before the filter: `url.ParseRequestURI` (400),
//! path clean-up and subtree redirects (301), longest prefix, 404, `stripLeaveSlash` for the API
//! prefix, `http.StripPrefix` for static files, and the upstream path the reverse proxy writes.
//!
//! Knows prefixes and paths only: no filter, no credentials, no host.

use std::borrow::Cow;

use crate::config::Config;
use crate::gourl;

/// Where the mux sends a request, before the accept/reject filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `OPTIONS *`: Go's server answers `200` with an empty body.
    Options,
    /// A non-`OPTIONS` `*` request: the mux answers `400` with an empty body.
    AsteriskBadRequest,
    /// The request target is not a valid request URI (`%zz`, control characters): `400`.
    BadRequest,
    /// Clean-up or subtree redirect: `301` to `location` (already escaped, query included).
    Redirect {
        /// The `Location` value.
        location: String,
    },
    /// No handler: `404 page not found`.
    NotFound,
    /// The API handler.
    Api(ApiRoute),
    /// The static-file handler: `path` is the escaped path below the prefix, starting with `/`,
    /// with the query (if any) kept.
    Static {
        /// The `:path` for the host's file server.
        path: String,
    },
}

/// An API request after `stripLeaveSlash`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiRoute {
    /// The decoded, stripped path the filter checks (`req.URL.Path`; lossy UTF-8).
    pub filter_path: String,
    /// The `:path` for the API server: server path + escaped path + query.
    pub upstream_path: String,
    /// The authority of an absolute-form (or CONNECT authority-form) target, which replaces
    /// `Host` for the filter as in Go's server.
    pub target_authority: Option<String>,
    /// The stripped path as the API server sees it, escaped, without the server path or query.
    pub api_path: String,
    /// The stripped path, decoded (raw bytes).
    pub decoded_path: Vec<u8>,
    /// The raw query: `None` without `?`.
    pub query: Option<String>,
}

/// A request target split like Go's `url.ParseRequestURI`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target<'a> {
    /// The authority of an absolute-form target (`GET http://evil.com/...`), which overrides Host.
    pub authority: Option<&'a str>,
    /// The raw (escaped) path.
    pub path: &'a str,
    /// The raw query: `None` without `?`, `Some("")` for a lone `?`.
    pub query: Option<&'a str>,
}

// === impl Target ===

impl<'a> Target<'a> {
    /// Splits a `:path` value; `None` when Go would reject it with `400 Bad Request`.
    pub fn parse(raw: &'a str) -> Option<Self> {
        if raw.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return None;
        }
        let (authority, rest) = if raw.starts_with('/') {
            (None, raw)
        } else {
            let (scheme, after) = raw.split_once("://")?;
            if scheme.is_empty()
                || !scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                || !scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
            {
                return None;
            }
            let end = after.find(['/', '?']).unwrap_or(after.len());
            let authority = &after[..end];
            if !gourl::valid_authority(authority) {
                return None;
            }
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            (Some(host), &after[end..])
        };
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        Some(Self {
            authority,
            path,
            query,
        })
    }
}

fn with_query(path: &str, query: Option<&str>, keep_empty: bool) -> String {
    match query {
        Some(q) if keep_empty || !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_owned(),
    }
}

/// The mux patterns: kubectl registers the API prefix and, with `--www`, the static prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Handler {
    Api,
    Static,
}

struct Mux<'c> {
    patterns: Vec<(Handler, &'c str, Vec<Vec<u8>>)>,
}

impl<'c> Mux<'c> {
    fn new(config: &'c Config) -> Self {
        let mut patterns = vec![(Handler::Api, config.api_prefix.as_str())];
        if let Some(p) = &config.static_prefix {
            patterns.push((Handler::Static, p.as_str()));
        }
        let patterns = patterns
            .into_iter()
            .map(|(h, p)| {
                let segs = p
                    .trim_matches('/')
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(gourl::path_unescape_or_original)
                    .collect();
                (h, p, segs)
            })
            .collect();
        Self { patterns }
    }

    /// The routing tree's match: the pattern with the most literal segments that prefixes `path`
    /// (segments compared unescaped) and leaves a non-empty rest for its trailing wildcard.
    fn find(&self, path: &str) -> Option<(Handler, &'c str, usize)> {
        self.patterns
            .iter()
            .filter(|(_, _, segs)| prefix_matches(segs, path))
            .max_by_key(|(_, _, segs)| segs.len())
            .map(|(h, p, segs)| (*h, *p, segs.len()))
    }

    /// `exactMatch`: a trailing-wildcard pattern matches exactly when the path ends in `/` and
    /// has one more `/` than the pattern has literal segments.
    fn exact(&self, path: &str) -> bool {
        self.find(path).is_some_and(|(_, _, n)| {
            path.ends_with('/') && n + 1 == path.bytes().filter(|b| *b == b'/').count()
        })
    }
}

fn prefix_matches(segs: &[Vec<u8>], path: &str) -> bool {
    let mut rest = path;
    for seg in segs {
        let Some(after) = rest.strip_prefix('/') else {
            return false;
        };
        let end = after.find('/').unwrap_or(after.len());
        if gourl::path_unescape_or_original(&after[..end]) != *seg {
            return false;
        }
        rest = &after[end..];
    }
    !rest.is_empty()
}

/// Routes a request like kubectl's mux and handlers do, up to (not including) the filter.
pub fn route(config: &Config, method: &str, target: &str) -> Route {
    if target == "*" {
        return if method == "OPTIONS" {
            Route::Options
        } else {
            Route::AsteriskBadRequest
        };
    }
    let target = if method == "CONNECT" && !target.starts_with('/') {
        // Go reads an authority-form CONNECT target as `http://<target>`: empty path.
        Target {
            authority: Some(target),
            path: "",
            query: None,
        }
    } else {
        match Target::parse(target) {
            Some(t) => t,
            None => return Route::BadRequest,
        }
    };
    let Some(decoded) = gourl::unescape_path(target.path) else {
        return Route::BadRequest;
    };
    let escaped = gourl::escaped_path(target.path, &decoded);
    let mux = Mux::new(config);

    let trailing_slash_redirect = |path: &str| {
        if !mux.exact(path) && !path.ends_with('/') && mux.exact(&format!("{path}/")) {
            let decoded = String::from_utf8_lossy(&decoded);
            let location =
                gourl::escape_path(format!("{}/", gourl::clean_path(&decoded)).as_bytes());
            Some(redirect(&location, target.query))
        } else {
            None
        }
    };

    let path = if method == "CONNECT" {
        // CONNECT paths are not cleaned; only the subtree redirect applies.
        if let Some(r) = trailing_slash_redirect(&escaped) {
            return r;
        }
        escaped.clone()
    } else {
        let cleaned = gourl::clean_path(&escaped);
        if let Some(r) = trailing_slash_redirect(&cleaned) {
            return r;
        }
        if cleaned != escaped {
            // Go puts the escaped, cleaned path into `url.URL.Path`, so `%` is escaped again.
            return redirect(&gourl::escape_path(cleaned.as_bytes()), target.query);
        }
        cleaned
    };

    match mux.find(&path) {
        None => Route::NotFound,
        Some((Handler::Api, prefix, _)) => api(config, prefix, &target, &decoded, &escaped),
        Some((Handler::Static, prefix, _)) => static_file(prefix, &target, &decoded),
    }
}

/// `http.Redirect` with a path-absolute URL: cleaned again, trailing slash kept.
fn redirect(escaped_location: &str, query: Option<&str>) -> Route {
    let mut url = gourl::path_clean(escaped_location);
    if escaped_location.ends_with('/') && !url.ends_with('/') {
        url.push('/');
    }
    Route::Redirect {
        location: with_query(&url, query, false),
    }
}

/// `stripLeaveSlash` (only for prefixes not starting with `/api`), then the reverse proxy's
/// `joinURLPath` with the server path.
fn api(config: &Config, prefix: &str, target: &Target<'_>, decoded: &[u8], escaped: &str) -> Route {
    let (path, changed): (Cow<'_, [u8]>, bool) = if prefix.starts_with("/api") {
        (Cow::Borrowed(decoded), false)
    } else {
        let Some(p) = decoded.strip_prefix(prefix.as_bytes()) else {
            return Route::NotFound;
        };
        let p = if !p.is_empty() && !p.starts_with(b"/") {
            [b"/", p].concat()
        } else {
            p.to_vec()
        };
        let changed = p != decoded;
        (Cow::Owned(p), changed)
    };
    // The raw path is not updated by stripLeaveSlash: it survives only while it still decodes
    // to the path; otherwise Go re-escapes the decoded path.
    let escaped_path = if changed {
        gourl::escape_path(&path)
    } else {
        escaped.to_owned()
    };
    let joined = gourl::single_joining_slash(&config.server_path, &escaped_path);
    Route::Api(ApiRoute {
        filter_path: gourl::go_lossy(&path),
        upstream_path: with_query(&joined, target.query, true),
        target_authority: target.authority.map(str::to_owned),
        api_path: escaped_path,
        decoded_path: path.into_owned(),
        query: target.query.map(str::to_owned),
    })
}

/// `http.StripPrefix(prefix, FileServer)`: both `Path` and a kept `RawPath` must lose the prefix.
fn static_file(prefix: &str, target: &Target<'_>, decoded: &[u8]) -> Route {
    let Some(p) = decoded.strip_prefix(prefix.as_bytes()) else {
        return Route::NotFound;
    };
    let below = if gourl::has_raw_path(target.path, decoded) {
        let Some(rp) = target.path.strip_prefix(prefix) else {
            return Route::NotFound;
        };
        if gourl::valid_encoded_path(rp) {
            rp.to_owned()
        } else {
            gourl::escape_path(p)
        }
    } else {
        gourl::escape_path(p)
    };
    Route::Static {
        path: with_query(&format!("/{below}"), target.query, true),
    }
}
