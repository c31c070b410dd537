//! Direct service-proxy mode (`service_proxy: "direct"`): what the apiserver's service proxy
//! does, done in the filter. A service proxy URL on the API-server route is checked (method,
//! `dryRun`, id), the Service is looked up (the plugin makes the call), then the request is
//! redirected (`…/proxy` without sub-path) or sent to `{name}.{ns}.svc.{domain}:{port}` with the
//! backend path, `X-Forwarded-Uri`, and without credentials.
//!
//! Also the opt-in cross-site protection for forwarded requests. Pure: no host calls, no clock.

use crate::config::Config;
use crate::decision::{Decision, Forward, HeaderOp, LocalReply, RequestHead, Upstream};
use crate::gourl;
use crate::lookup::{LookupAnswer, PortError, choose_port};
use crate::rewrite::RewriteContext;
use crate::route::ApiRoute;
use crate::service::split_scheme_name_port;
use crate::status::{Details, Reason, go_quote, status_body};

/// The methods the apiserver's proxy subresources connect (`ConnectMethods`).
pub const CONNECT_METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// A service proxy URL waiting for its Service lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceLookup {
    /// The namespace.
    pub namespace: String,
    /// The id as in the URL (`https:web:443`).
    pub id: String,
    /// `""`, `http` or `https`.
    pub scheme: String,
    /// The Service name.
    pub name: String,
    /// The port part of the id (name, number or empty).
    pub port: String,
    /// `/api/v1/namespaces/{ns}/services/{id}/proxy`, escaped as in the request.
    pub path_prepend: String,
    /// The backend path, escaped; `None` when the URL has no sub-path.
    pub backend_path: Option<String>,
    /// The raw query (empty when none).
    pub query: String,
    /// The request method.
    pub method: String,
    /// The client's `Host`.
    pub request_host: String,
    /// Request headers to remove before forwarding (credentials, impersonation, front proxy).
    pub remove_headers: Vec<String>,
}

/// What direct mode makes of an API-server request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Not a service proxy URL: forward to the API server as usual.
    ApiServer,
    /// Answer now (405, 400).
    Respond(LocalReply),
    /// Look the Service up, then [`ServiceLookup::finish`].
    Lookup(Box<ServiceLookup>),
}

/// The outcome of a finished lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// Forward to the service, or answer.
    pub decision: Decision,
    /// For a forward: what the response rewriting needs.
    pub rewrite: Option<RewriteContext>,
}

/// Bytes as a string of the same length (each byte one `char`), so `/`-based path operations
/// keep arbitrary bytes; [`from_bytes_str`] reverses it.
fn bytes_str(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

fn from_bytes_str(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}

/// A name the filter may put into the lookup path and a DNS name: lower-case letters, digits,
/// `-` and `.`, not `.` or `..`, at most 253 bytes.
fn is_object_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

fn status_reply(reason: Reason, message: &str, details: Option<&Details>) -> LocalReply {
    LocalReply {
        status: reason.code(),
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        body: status_body(reason, message, details),
    }
}

/// Go `url.ParseQuery` → `Query()["dryRun"]` is non-empty: a pair (split on `&`, none with `;`)
/// whose key unescapes to `dryRun` and whose value unescapes.
pub fn has_dry_run(query: &str) -> bool {
    query.split('&').any(|pair| {
        if pair.is_empty() || pair.contains(';') {
            return false;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        query_unescape(key).as_deref() == Some(b"dryRun".as_slice())
            && query_unescape(value).is_some()
    })
}

fn query_unescape(s: &str) -> Option<Vec<u8>> {
    gourl::unescape_path(&s.replace('+', " "))
}

/// Recognises `/api/v1/namespaces/{ns}/services/{id}/proxy[/…]` in a decoded path split as
/// `RequestInfo` does (`strings.Split(strings.Trim(path, "/"), "/")`); returns the parts.
fn service_parts(decoded: &str) -> Option<Vec<&str>> {
    let parts: Vec<&str> = decoded.trim_matches('/').split('/').collect();
    let head = parts.get(..7)?;
    (head[0] == "api"
        && head[1] == "v1"
        && head[2] == "namespaces"
        && head[4] == "services"
        && head[6] == "proxy")
        .then_some(parts)
}

/// The escaped prefix of `escaped` that decodes to `/{decoded_prefix}`, cut at a `/`; else the
/// decoded prefix re-escaped.
fn escaped_prefix(escaped: &str, decoded_prefix: &str) -> String {
    let cuts = escaped
        .char_indices()
        .filter(|(_, c)| *c == '/')
        .map(|(i, _)| i)
        .chain([escaped.len()]);
    for cut in cuts {
        let candidate = &escaped[..cut];
        if let Some(d) = gourl::unescape_path(candidate)
            && bytes_str(&d).trim_start_matches('/') == decoded_prefix
        {
            return candidate.to_owned();
        }
    }
    format!("/{}", gourl::escape_path(&from_bytes_str(decoded_prefix)))
}

/// The backend path of `getRequestOptions` + `JoinPreservingTrailingSlash`: `None` when there is
/// no sub-path (`…/proxy`), else the cleaned, escaped path (trailing `/` kept).
fn backend_path(parts: &[&str], ends_with_slash: bool) -> Option<String> {
    let mut p = parts.join("/");
    if !p.is_empty() && !p.starts_with('/') {
        p.insert(0, '/');
    }
    if ends_with_slash && !p.ends_with('/') {
        p.push('/');
    }
    if p.is_empty() {
        return None;
    }
    let mut joined = gourl::path_clean(&p);
    if p.ends_with('/') && !joined.ends_with('/') {
        joined.push('/');
    }
    Some(gourl::escape_path(&from_bytes_str(&joined)))
}

/// Direct mode's first step for a request the filter accepted for the API server.
pub fn plan(head: &RequestHead, api: &ApiRoute, request_host: &str) -> Plan {
    let decoded = bytes_str(&api.decoded_path);
    let Some(parts) = service_parts(&decoded) else {
        return Plan::ApiServer;
    };
    if !CONNECT_METHODS.contains(&head.method.as_str()) {
        return Plan::Respond(status_reply(
            Reason::MethodNotAllowed,
            "the server does not allow this method on the requested resource",
            Some(&Details::default()),
        ));
    }
    let query = api.query.clone().unwrap_or_default();
    if has_dry_run(&query) {
        return Plan::Respond(status_reply(
            Reason::BadRequest,
            "dryRun is not supported",
            None,
        ));
    }
    let lossy = |s: &str| gourl::go_lossy(&from_bytes_str(s));
    let namespace = lossy(parts[3]);
    let id = lossy(parts[5]);
    let Some((scheme, name, port)) = split_scheme_name_port(&id) else {
        return Plan::Respond(status_reply(
            Reason::BadRequest,
            &format!("invalid service request {}", go_quote(&id)),
            None,
        ));
    };
    let (scheme, name, port) = (scheme.to_owned(), name.to_owned(), port.to_owned());
    if !is_object_name(&name) || !is_object_name(&namespace) {
        // No such Service can exist; never put such a name into an API-server path.
        return Plan::Respond(status_reply(
            Reason::NotFound,
            &format!("services {} not found", go_quote(&name)),
            Some(&Details {
                name: Some(name),
                kind: Some("services".to_owned()),
            }),
        ));
    }
    let path_prepend = escaped_prefix(&api.api_path, &parts[..7].join("/"));
    let remove_headers = removed_headers(&head.headers);
    Plan::Lookup(Box::new(ServiceLookup {
        namespace,
        id,
        scheme,
        name,
        port,
        path_prepend,
        backend_path: backend_path(&parts[7..], decoded.ends_with('/')),
        query,
        method: head.method.clone(),
        request_host: request_host.to_owned(),
        remove_headers,
    }))
}

/// The distinct request header names the apiserver would not pass to a backend.
fn removed_headers(headers: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (name, _) in headers {
        let n = name.to_ascii_lowercase();
        let drop = n == "authorization"
            || n.starts_with("impersonate-")
            || n == "x-remote-user"
            || n == "x-remote-group"
            || n.starts_with("x-remote-extra-");
        if drop && !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

impl ServiceLookup {
    /// The shared-data cache key of this Service.
    pub fn cache_key(&self) -> String {
        crate::lookup::cache_key(&self.namespace, &self.name)
    }

    /// Applies the lookup's answer: a local reply, the `…/proxy` redirect, or the forward.
    pub fn finish(&self, config: &Config, answer: &LookupAnswer) -> Resolved {
        let respond = |reply: LocalReply| Resolved {
            decision: Decision::Respond(reply),
            rewrite: None,
        };
        let svc = match answer {
            LookupAnswer::Service(svc) => svc,
            LookupAnswer::Refused { status, body } => {
                return respond(LocalReply {
                    status: *status,
                    headers: vec![("content-type".to_owned(), "application/json".to_owned())],
                    body: body.clone(),
                });
            }
            LookupAnswer::Failed(reason) => {
                return respond(status_reply(
                    Reason::ServiceUnavailable,
                    &format!("error trying to reach service: service lookup failed: {reason}"),
                    None,
                ));
            }
        };
        let port = match choose_port(svc, &self.port) {
            Ok(p) => p,
            Err(PortError::NoServicePort(n)) => {
                return respond(status_reply(
                    Reason::ServiceUnavailable,
                    &format!(
                        "no service port {n} found for service {}",
                        go_quote(&self.name)
                    ),
                    None,
                ));
            }
            Err(PortError::NoEndpoints) => {
                return respond(status_reply(
                    Reason::ServiceUnavailable,
                    &format!("no endpoints available for service {}", go_quote(&self.id)),
                    None,
                ));
            }
            Err(PortError::NoEndpointsObject) => {
                return respond(status_reply(
                    Reason::NotFound,
                    &format!("endpoints {} not found", go_quote(&self.name)),
                    Some(&Details {
                        name: Some(self.name.clone()),
                        kind: Some("endpoints".to_owned()),
                    }),
                ));
            }
        };
        let with_query = |p: &str| {
            if self.query.is_empty() {
                p.to_owned()
            } else {
                format!("{p}?{}", self.query)
            }
        };
        let backend = match &self.backend_path {
            None if self.method == "GET" || self.method == "HEAD" => {
                let location = with_query(&format!("{}/", self.path_prepend));
                return respond(LocalReply::moved_permanently(&self.method, &location));
            }
            // The apiserver sends an empty location path as `/` (A2), X-Forwarded-Uri included.
            None => "/",
            Some(p) => p.as_str(),
        };
        let mut forwarded_uri = gourl::path_clean(&format!("{}/{backend}", self.path_prepend));
        if backend.ends_with('/') && !forwarded_uri.ends_with('/') {
            forwarded_uri.push('/');
        }
        let upstream = if self.scheme == "https" {
            Upstream::ServiceHttps
        } else {
            Upstream::ServiceHttp
        };
        let authority = format!(
            "{}.{}.svc.{}:{port}",
            self.name, self.namespace, config.cluster_domain
        );
        let mut header_ops = crate::decision::routing_ops(upstream);
        header_ops.extend(self.remove_headers.iter().cloned().map(HeaderOp::Remove));
        header_ops.push(HeaderOp::Replace(
            "x-forwarded-uri".to_owned(),
            forwarded_uri,
        ));
        header_ops.push(HeaderOp::Replace(
            ":authority".to_owned(),
            authority.clone(),
        ));
        let path = with_query(if backend.is_empty() { "/" } else { backend });
        Resolved {
            decision: Decision::Forward(Forward {
                upstream,
                path,
                header_ops,
            }),
            rewrite: Some(RewriteContext {
                path_prepend: self.path_prepend.clone(),
                backend_host: authority,
                request_host: self.request_host.clone(),
            }),
        }
    }
}

/// Opt-in cross-site protection: whether a browser request must be refused (`Sec-Fetch-Site`
/// `cross-site`/`same-site`, or an `Origin` that is `null` or not the request's Host).
pub fn is_cross_site(headers: &[(String, String)], authority: &str) -> bool {
    let first = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    if let Some(site) = first("sec-fetch-site")
        && (site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site"))
    {
        return true;
    }
    let Some(origin) = first("origin") else {
        return false;
    };
    let Some((scheme, rest)) = origin.split_once("://") else {
        return true; // `null` and anything unparsable
    };
    let scheme = scheme.to_ascii_lowercase();
    let origin_host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let normalise = |hostport: &str| {
        let h = hostport.to_ascii_lowercase();
        let default = match scheme.as_str() {
            "http" | "ws" => Some(":80"),
            "https" | "wss" => Some(":443"),
            _ => None,
        };
        match default {
            Some(port) if h.ends_with(port) && !h.ends_with("]") => {
                h[..h.len() - port.len()].to_owned()
            }
            _ => h,
        }
    };
    origin_host.is_empty() || normalise(origin_host) != normalise(authority)
}

#[cfg(test)]
mod tests;
