//! The apiserver proxy transport's response rewriting (apimachinery `pkg/util/proxy/transport.go`),
//! for direct service-proxy mode: CORS header removal, `Location` rewriting and link rewriting in
//! `text/html` bodies (identity, gzip, deflate).
//!
//! SKELETON: the API is fixed by /tmp/kp/direct.md; the implementation is being written.

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

/// The content coding of a body the filter rewrites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyEncoding {
    /// No content coding.
    Identity,
    /// `gzip`.
    Gzip,
    /// `deflate` (zlib-wrapped, as Go's `flate` reader... see implementation notes).
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
    let _ = name;
    false
}

/// apimachinery `rewriteURL` for a `Location` value; returns the input when unchanged.
pub fn rewrite_location(ctx: &RewriteContext, location: &str) -> String {
    let _ = ctx;
    location.to_owned()
}

/// Which bodies are rewritten: `text/html` with no, `gzip` or `deflate` coding; `None` = untouched.
pub fn html_body_encoding(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
) -> Option<BodyEncoding> {
    let _ = (content_type, content_encoding);
    None
}

/// apimachinery `rewriteHTML` over a whole body in the given coding.
pub fn rewrite_html_body(
    ctx: &RewriteContext,
    enc: BodyEncoding,
    body: &[u8],
) -> Result<Vec<u8>, RewriteError> {
    let _ = (ctx, enc);
    Ok(body.to_vec())
}
