//! The one pure entry point, `decide(&Config, &RequestHead) -> Decision`: route like kubectl's
//! mux, filter, add credentials, and say what the host must do (forward with header operations,
//! or answer locally with kubectl's byte-exact replies).
//!
//! No host calls here: `plugin.rs` reads the request, calls this, and applies the result.

use crate::auth::{self, Credentials};
use crate::config::{Config, ServiceProxy};
use crate::direct::{self, Plan, ServiceLookup};
use crate::policy::{self, Verdict};
use crate::route::{self, Route};

/// The routing header of the filter/host contract.
pub const UPSTREAM_HEADER: &str = "x-kproxy-upstream";

/// What the filter sees of a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestHead {
    /// `:method`, case kept.
    pub method: String,
    /// `:path`, raw, with the query.
    pub path: String,
    /// `:authority` (HTTP/1 `Host`).
    pub authority: String,
    /// The other request headers, names in lower case, in order.
    pub headers: Vec<(String, String)>,
}

/// Where a forwarded request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upstream {
    /// The API server.
    ApiServer,
    /// The host's static file server.
    Static,
    /// A Service over plain HTTP (direct mode): the host connects to `:authority`.
    ServiceHttp,
    /// A Service over TLS without verification (direct mode).
    ServiceHttps,
}

/// A request-header change, applied in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderOp {
    /// Remove every value of the header.
    Remove(String),
    /// Add one more value.
    Add(String, String),
    /// Replace all values with this one.
    Replace(String, String),
}

/// Continue to an upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forward {
    /// Which upstream (also written to `x-kproxy-upstream` by `header_ops`).
    pub upstream: Upstream,
    /// The new `:path`.
    pub path: String,
    /// Header changes, including the routing header.
    pub header_ops: Vec<HeaderOp>,
}

/// A response the filter sends itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalReply {
    /// The HTTP status.
    pub status: u32,
    /// Response headers (lower-case names).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

/// The filter's decision for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Continue upstream with these changes.
    Forward(Forward),
    /// Answer locally.
    Respond(LocalReply),
    /// Direct mode: look the Service up first, then [`ServiceLookup::finish`] decides.
    Lookup(Box<ServiceLookup>),
}

/// What happened, for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Forwarded to the API server (filter passed or disabled).
    Accepted,
    /// Forwarded to the static file server (never filtered).
    Static,
    /// Rejected by the filter (403).
    Rejected(Verdict),
    /// A mux redirect (301).
    Redirected,
    /// No handler (404).
    NotFound,
    /// An invalid request target (400).
    BadRequest,
    /// `OPTIONS *` (200).
    Options,
    /// Rejected by the opt-in cross-site protection (403).
    CrossSite,
    /// Accepted, then handled by direct mode (a lookup follows, or a 400/404/405 Status).
    Service,
}

/// A decision plus what the plugin reports about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluation {
    /// What the host must do.
    pub decision: Decision,
    /// What happened, for metrics.
    pub outcome: Outcome,
    /// kubectl's `-v=3` line (`Filter accepting GET /api/v1/pods localhost`), when enabled.
    pub log: Option<String>,
}

/// The counters the filter defines (ARCHITECTURE.md, "Metrics and logs").
pub const COUNTERS: [&str; 13] = [
    "kproxy.requests.accepted",
    "kproxy.requests.rejected.path",
    "kproxy.requests.rejected.method",
    "kproxy.requests.rejected.host",
    "kproxy.requests.redirected",
    "kproxy.requests.not_found",
    "kproxy.requests.bad_request",
    "kproxy.routed.apiserver",
    "kproxy.routed.static",
    "kproxy.routed.service",
    "kproxy.service.lookups",
    "kproxy.service.cache_hits",
    "kproxy.requests.rejected.cross_site",
];

/// Index of `kproxy.routed.service` in [`COUNTERS`] (counted when a lookup ends in a forward).
pub const ROUTED_SERVICE: usize = 9;
/// Index of `kproxy.service.lookups` in [`COUNTERS`] (lookup calls made).
pub const SERVICE_LOOKUPS: usize = 10;
/// Index of `kproxy.service.cache_hits` in [`COUNTERS`].
pub const SERVICE_CACHE_HITS: usize = 11;

// === impl Outcome ===

impl Outcome {
    /// Indexes into [`COUNTERS`] of the counters this outcome increments.
    pub fn counters(self) -> &'static [usize] {
        match self {
            Self::Accepted => &[0, 7],
            Self::Rejected(Verdict::RejectPath | Verdict::RejectNotAcceptedPath) => &[1],
            Self::Rejected(Verdict::RejectMethod) => &[2],
            Self::Rejected(Verdict::RejectHost) => &[3],
            Self::Rejected(Verdict::Accept) | Self::Options => &[],
            Self::Redirected => &[4],
            Self::NotFound => &[5],
            Self::BadRequest => &[6],
            Self::Static => &[8],
            Self::CrossSite => &[12],
            Self::Service => &[0],
        }
    }
}

// === impl Upstream ===

impl Upstream {
    /// The `x-kproxy-upstream` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiServer => "apiserver",
            Self::Static => "static",
            Self::ServiceHttp => "service-http",
            Self::ServiceHttps => "service-https",
        }
    }
}

// === impl LocalReply ===

impl LocalReply {
    pub(crate) fn new(status: u32, headers: &[(&str, &str)], body: &str) -> Self {
        Self {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.to_owned(),
        }
    }

    /// Go `http.Error(w, text, code)`.
    fn http_error(status: u32, text: &str) -> Self {
        Self::new(
            status,
            &[
                ("content-type", "text/plain; charset=utf-8"),
                ("x-content-type-options", "nosniff"),
            ],
            &format!("{text}\n"),
        )
    }

    /// kubectl's filter rejection: `403`, body `Forbidden\n`.
    pub fn forbidden() -> Self {
        Self::http_error(403, "Forbidden")
    }

    /// Go `http.NotFound`: `404`, body `404 page not found\n`.
    pub fn not_found() -> Self {
        Self::http_error(404, "404 page not found")
    }

    /// Go's server on an unparsable request target: `400`, body `400 Bad Request`.
    pub fn bad_request() -> Self {
        Self::new(
            400,
            &[("content-type", "text/plain; charset=utf-8")],
            "400 Bad Request",
        )
    }

    /// Go `http.Redirect(w, r, url, 301)`: an HTML body for GET, a content type for GET and HEAD.
    pub fn moved_permanently(method: &str, location: &str) -> Self {
        let location = crate::gourl::hex_escape_non_ascii(location);
        let mut reply = Self::new(301, &[("location", &location)], "");
        if method == "GET" || method == "HEAD" {
            reply.headers.push((
                "content-type".to_owned(),
                "text/html; charset=utf-8".to_owned(),
            ));
        }
        if method == "GET" {
            reply.body = format!(
                "<a href=\"{}\">Moved Permanently</a>.\n\n",
                crate::gourl::html_escape(&location)
            );
        }
        reply
    }
}

/// Decides with the configured (static) credentials.
pub fn decide(config: &Config, head: &RequestHead) -> Decision {
    let credentials = config
        .credentials
        .as_ref()
        .and_then(|c| c.static_credentials.as_ref());
    evaluate(config, head, credentials).decision
}

/// Decides with `credentials` (the configured or rotated ones) and reports the outcome.
pub fn evaluate(
    config: &Config,
    head: &RequestHead,
    credentials: Option<&Credentials>,
) -> Evaluation {
    let respond = |reply: LocalReply, outcome: Outcome| Evaluation {
        decision: Decision::Respond(reply),
        outcome,
        log: None,
    };
    match route::route(config, &head.method, &head.path) {
        Route::Options => respond(LocalReply::new(200, &[], ""), Outcome::Options),
        Route::AsteriskBadRequest => respond(LocalReply::new(400, &[], ""), Outcome::BadRequest),
        Route::BadRequest => respond(LocalReply::bad_request(), Outcome::BadRequest),
        Route::NotFound => respond(LocalReply::not_found(), Outcome::NotFound),
        Route::Redirect { location } => respond(
            LocalReply::moved_permanently(&head.method, &location),
            Outcome::Redirected,
        ),
        Route::Static { path } => Evaluation {
            decision: Decision::Forward(Forward {
                upstream: Upstream::Static,
                path,
                header_ops: routing_ops(Upstream::Static),
            }),
            outcome: Outcome::Static,
            log: None,
        },
        Route::Api(api) => {
            let mut log = None;
            if !config.disable_filter {
                // An absolute-form target's non-empty host overrides Host, as in Go's server
                // (`req.Host = req.URL.Host; if req.Host == "" { req.Host = Host header }`).
                let authority = request_authority(head, &api);
                let host = policy::extract_host(authority);
                let verdict = policy::check(config, &head.method, &api.filter_path, host);
                let word = if verdict.is_accept() {
                    "accepting"
                } else {
                    "rejecting"
                };
                if config.verbosity >= 3 {
                    log = Some(format!(
                        "Filter {word} {} {} {host}",
                        head.method, api.filter_path
                    ));
                }
                if !verdict.is_accept() {
                    return Evaluation {
                        decision: Decision::Respond(LocalReply::forbidden()),
                        outcome: Outcome::Rejected(verdict),
                        log,
                    };
                }
            }
            if config.cross_site_protection
                && direct::is_cross_site(&head.headers, request_authority(head, &api))
            {
                let host = policy::extract_host(request_authority(head, &api));
                return Evaluation {
                    decision: Decision::Respond(LocalReply::forbidden()),
                    outcome: Outcome::CrossSite,
                    log: (config.verbosity >= 3).then(|| {
                        format!(
                            "Filter rejecting {} {} {host} (cross-site)",
                            head.method, api.filter_path
                        )
                    }),
                };
            }
            if config.service_proxy == ServiceProxy::Direct {
                match direct::plan(head, &api, &head.authority) {
                    Plan::ApiServer => {}
                    Plan::Respond(reply) => {
                        return Evaluation {
                            decision: Decision::Respond(reply),
                            outcome: Outcome::Service,
                            log,
                        };
                    }
                    Plan::Lookup(lookup) => {
                        return Evaluation {
                            decision: Decision::Lookup(lookup),
                            outcome: Outcome::Service,
                            log,
                        };
                    }
                }
            }
            let mut header_ops = routing_ops(Upstream::ApiServer);
            header_ops.extend(auth::header_ops(
                &head.headers,
                credentials,
                config.impersonate.as_ref(),
            ));
            Evaluation {
                decision: Decision::Forward(Forward {
                    upstream: Upstream::ApiServer,
                    path: api.upstream_path,
                    header_ops,
                }),
                outcome: Outcome::Accepted,
                log,
            }
        }
    }
}

/// The authority the filter checks: an absolute-form target's host, else `:authority`.
fn request_authority<'a>(head: &'a RequestHead, api: &'a route::ApiRoute) -> &'a str {
    api.target_authority
        .as_deref()
        .filter(|a| !a.is_empty())
        .unwrap_or(&head.authority)
}

/// The routing header: one `Replace`, which drops every value a client sent (the ABI's
/// `replace_header_map_value` replaces all values of a name, in both hosts).
pub(crate) fn routing_ops(upstream: Upstream) -> Vec<HeaderOp> {
    vec![HeaderOp::Replace(
        UPSTREAM_HEADER.to_owned(),
        upstream.as_str().to_owned(),
    )]
}
