//! The apiserver proxy transport's response rewriting (apimachinery `pkg/util/proxy/transport.go`
//! and `removeCORSHeaders` in `upgradeaware.go`), for direct service-proxy mode: CORS header
//! removal, `Location` rewriting and link rewriting in `text/html` bodies (identity, gzip,
//! deflate).
//!
//! # Fidelity
//!
//! Byte for byte as apimachinery (Go 1.26 `net/url`, golang.org/x/net/html v0.57):
//! * `rewriteURL` ([`rewrite_location`], and every URL attribute): Go `url.Parse` (errors
//!   included), the same-host / relative decisions, `path.Join` with the prefix (trailing slash
//!   kept, `RawPath` dropped as Go drops it), and `URL.String()` (`EscapedPath`, `EscapedFragment`,
//!   host and userinfo escaping, `./` protection).
//! * `rewriteHTML`: Go's tokenizer (tag and attribute name lower-casing, duplicate attributes
//!   dropped, unquoted values, `=` before an attribute name, self-closing detection, raw-text
//!   elements including the script escape states, comments, doctypes, bogus comments); start tags
//!   are re-rendered as `Token.String()` writes them (`<tag key="value">`, `/>`, values escaped
//!   `&amp;` `&#39;` `&lt;` `&gt;` `&#34;` `&#13;`); everything else is copied raw. A tag cut off
//!   by the end of the body is dropped, as Go drops it.
//!
//! # Limits and deliberate differences
//! * Character references in attribute values: numeric ones (with Go's Windows-1252 and U+FFFD
//!   replacements), the 106 legacy names (with or without `;`, which is all Go accepts without
//!   `;`, so references without `;` are exact) and about 70 common `&name;` forms are decoded as Go
//!   decodes them. Any other `&name;` is **kept as written** instead of being decoded (Go decodes
//!   the ~2,100 further HTML5 names, and writes `&amp;name;` for names it does not know): the
//!   browser sees the same reference, but the bytes differ from Go's. A URL attribute holding
//!   such a reference is not rewritten.
//! * A `Location` that Go cannot parse makes apimachinery fail the response (500); here it is
//!   passed on unchanged.
//! * `Content-Type` is compared case-insensitively and `Content-Encoding: identity` is treated
//!   like no coding (apimachinery: exact `text/html`, and `identity` is an unknown coding).
//! * `deflate` is raw DEFLATE as in apimachinery; a zlib-wrapped body (which Go fails on) is
//!   decoded and re-encoded as zlib (see [`codec`]). Decoded bodies are limited to
//!   [`MAX_DECODED_BODY`]. Compressed output bytes differ from Go's compressor (same content).
//! * When the rewritten document equals the decoded one, the original body bytes are returned
//!   (apimachinery always re-compresses).
//! * The caller decides when to call: apimachinery rewrites the body only when the response has no
//!   `Location` header.

mod codec;
mod html;
mod url;

#[cfg(test)]
mod tests;

pub use codec::MAX_DECODED_BODY;

/// What a response rewrite needs to know about the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RewriteContext {
    /// `/api/v1/namespaces/{ns}/services/{id}/proxy` (apimachinery `PathPrepend`).
    pub path_prepend: String,
    /// The `:authority` the request was sent to (`name.ns.svc.domain:port`).
    pub backend_host: String,
    /// The client's `Host` (e.g. `localhost:8001`).
    pub request_host: String,
}

impl RewriteContext {
    fn rewrite_url(&self, u: url::GoUrl) -> Vec<u8> {
        url::rewrite_url(
            u,
            self.backend_host.as_bytes(),
            self.request_host.as_bytes(),
            self.path_prepend.as_bytes(),
        )
    }
}

/// The content coding of a body the filter rewrites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyEncoding {
    /// No content coding.
    Identity,
    /// `gzip`.
    Gzip,
    /// `deflate`: raw DEFLATE as apimachinery reads it with Go's `compress/flate` (zlib-wrapped
    /// bodies are accepted too, see the module docs).
    Deflate,
}

/// A body that could not be rewritten (it is then passed on unchanged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RewriteError(pub String);

impl std::fmt::Display for RewriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RewriteError {}

/// Whether `name` is one of the CORS headers the apiserver removes from backend responses.
pub fn is_cors_header(name: &str) -> bool {
    [
        "access-control-allow-credentials",
        "access-control-allow-headers",
        "access-control-allow-methods",
        "access-control-allow-origin",
    ]
    .iter()
    .any(|h| h.eq_ignore_ascii_case(name))
}

/// apimachinery `rewriteURL` for a `Location` value: the URL re-serialised as Go's
/// `URL.String()`; the input itself when Go's `url.Parse` fails.
pub fn rewrite_location(ctx: &RewriteContext, location: &str) -> String {
    match url::parse(location.as_bytes()) {
        Some(u) => String::from_utf8(ctx.rewrite_url(u))
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        None => location.to_owned(),
    }
}

/// Which bodies are rewritten: `text/html` with no, `gzip` or `deflate` coding; `None` = untouched.
pub fn html_body_encoding(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
) -> Option<BodyEncoding> {
    let media_type = content_type?.split(';').next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case("text/html") {
        return None;
    }
    match content_encoding {
        None | Some("" | "identity") => Some(BodyEncoding::Identity),
        Some("gzip") => Some(BodyEncoding::Gzip),
        Some("deflate") => Some(BodyEncoding::Deflate),
        Some(_) => None,
    }
}

/// apimachinery `rewriteHTML` over a whole body in the given coding.
pub fn rewrite_html_body(
    ctx: &RewriteContext,
    enc: BodyEncoding,
    body: &[u8],
) -> Result<Vec<u8>, RewriteError> {
    let rewrite = |u| ctx.rewrite_url(u);
    let (plain, zlib) = match enc {
        BodyEncoding::Identity => return Ok(html::rewrite_html(body, &rewrite)),
        BodyEncoding::Gzip => (codec::gunzip(body)?, false),
        BodyEncoding::Deflate => codec::inflate_http(body)?,
    };
    let html = html::rewrite_html(&plain, &rewrite);
    if html == plain {
        return Ok(body.to_vec());
    }
    Ok(match enc {
        BodyEncoding::Gzip => codec::gzip(&html),
        _ => codec::deflate(&html, zlib),
    })
}
