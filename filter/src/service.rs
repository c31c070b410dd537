//! The apiserver's proxy-subresource URL grammar: `SplitSchemeNamePort` (apimachinery
//! `pkg/util/net/port_split.go`) and `/api/v1/namespaces/{ns}/services/{id}/proxy[/{path}]`
//! (also pods and nodes), read from the decoded path the way `RequestInfo` splits it.
//!
//! Parsing only: the filter forwards these requests to the API server unchanged; resolving
//! endpoints is the apiserver's job.

/// A proxy subresource's resource kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyKind {
    /// `…/namespaces/{ns}/services/{id}/proxy`.
    Service,
    /// `…/namespaces/{ns}/pods/{id}/proxy`.
    Pod,
    /// `/api/v1/nodes/{id}/proxy`.
    Node,
}

/// A parsed proxy URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyTarget {
    /// Which resource is proxied to.
    pub kind: ProxyKind,
    /// The namespace (`None` for nodes).
    pub namespace: Option<String>,
    /// `""`, `http` or `https`.
    pub scheme: String,
    /// The resource name.
    pub name: String,
    /// The port (name or number), possibly empty.
    pub port: String,
    /// The sub-path after `proxy`: `None` for `…/proxy`, else starting with `/` (may be `/`).
    pub sub_path: Option<String>,
}

/// An `{id}` that `SplitSchemeNamePort` rejects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidProxyId {
    /// The resource kind.
    pub kind: ProxyKind,
    /// The id as it appeared.
    pub id: String,
}

impl std::fmt::Display for InvalidProxyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            ProxyKind::Service => "service",
            ProxyKind::Pod => "pod",
            ProxyKind::Node => "node",
        };
        write!(f, "invalid {kind} request {:?}", self.id)
    }
}

impl std::error::Error for InvalidProxyId {}

/// apimachinery `SplitSchemeNamePort`: `name`, `name:port` or `scheme:name:port`, with the scheme
/// `""`, `http` or `https` (case-sensitive) and a non-empty name.
pub fn split_scheme_name_port(id: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [name] => ("", *name, ""),
        [name, port] => ("", *name, *port),
        [scheme, name, port] => (*scheme, *name, *port),
        _ => return None,
    };
    if !name.is_empty() && matches!(scheme, "" | "http" | "https") {
        Some((scheme, name, port))
    } else {
        None
    }
}

/// Parses a decoded API path as a proxy subresource; `None` when it is not one.
pub fn parse_proxy_path(path: &str) -> Option<Result<ProxyTarget, InvalidProxyId>> {
    let rest = path.strip_prefix("/api/v1/")?;
    let (kind, namespace, rest) = if let Some(rest) = rest.strip_prefix("nodes/") {
        (ProxyKind::Node, None, rest)
    } else {
        let rest = rest.strip_prefix("namespaces/")?;
        let (ns, rest) = rest.split_once('/')?;
        let (resource, rest) = rest.split_once('/')?;
        let kind = match resource {
            "services" => ProxyKind::Service,
            "pods" => ProxyKind::Pod,
            _ => return None,
        };
        if ns.is_empty() {
            return None;
        }
        (kind, Some(ns.to_owned()), rest)
    };
    let (id, rest) = rest.split_once('/')?;
    let sub_path = match rest.strip_prefix("proxy")? {
        "" => None,
        sub if sub.starts_with('/') => Some(sub.to_owned()),
        _ => return None,
    };
    if id.is_empty() {
        return None;
    }
    Some(match split_scheme_name_port(id) {
        Some((scheme, name, port)) => Ok(ProxyTarget {
            kind,
            namespace,
            scheme: scheme.to_owned(),
            name: name.to_owned(),
            port: port.to_owned(),
            sub_path,
        }),
        None => Err(InvalidProxyId {
            kind,
            id: id.to_owned(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_split(id: &str, expected: Option<(&str, &str, &str)>) {
        assert_eq!(split_scheme_name_port(id), expected, "{id:?}");
    }

    /// The §3.1 `SplitSchemeNamePort` table (apimachinery `port_split_test.go`).
    #[test]
    fn split_scheme_name_port_table() {
        check_split("aoeu", Some(("", "aoeu", "")));
        check_split("aoeu:asdf", Some(("", "aoeu", "asdf")));
        check_split("aoeu:", Some(("", "aoeu", "")));
        check_split("http:aoeu:asdf", Some(("http", "aoeu", "asdf")));
        check_split("https:aoeu:", Some(("https", "aoeu", "")));
        check_split(":aoeu:asdf", Some(("", "aoeu", "asdf")));
        check_split(":asdf", None); // empty name
        check_split("aoeu:asdf:htns", None); // scheme `aoeu`
        check_split("http::asdf", None);
        check_split("http::", None);
        check_split("", None);
        check_split("HTTP:web:80", None); // case-sensitive scheme
        check_split("a:b:c:d", None); // 4+ parts
        check_split("http:a:b:c:d", None);
    }

    fn target(
        kind: ProxyKind,
        ns: Option<&str>,
        (scheme, name, port): (&str, &str, &str),
        sub: Option<&str>,
    ) -> ProxyTarget {
        ProxyTarget {
            kind,
            namespace: ns.map(str::to_owned),
            scheme: scheme.into(),
            name: name.into(),
            port: port.into(),
            sub_path: sub.map(str::to_owned),
        }
    }

    #[track_caller]
    fn check(path: &str, expected: Option<&Result<ProxyTarget, InvalidProxyId>>) {
        assert_eq!(parse_proxy_path(path).as_ref(), expected, "{path:?}");
    }

    #[test]
    fn proxy_urls() {
        use ProxyKind::*;
        check(
            "/api/v1/namespaces/ns/services/web/proxy",
            Some(&Ok(target(Service, Some("ns"), ("", "web", ""), None))),
        );
        check(
            "/api/v1/namespaces/ns/services/web:80/proxy/a/b",
            Some(&Ok(target(
                Service,
                Some("ns"),
                ("", "web", "80"),
                Some("/a/b"),
            ))),
        );
        check(
            "/api/v1/namespaces/ns/services/https:web:443/proxy/",
            Some(&Ok(target(
                Service,
                Some("ns"),
                ("https", "web", "443"),
                Some("/"),
            ))),
        );
        check(
            "/api/v1/namespaces/ns/services/web:http/proxy/x/",
            Some(&Ok(target(
                Service,
                Some("ns"),
                ("", "web", "http"),
                Some("/x/"),
            ))),
        );
        check(
            "/api/v1/namespaces/ns/pods/p:8080/proxy/metrics",
            Some(&Ok(target(
                Pod,
                Some("ns"),
                ("", "p", "8080"),
                Some("/metrics"),
            ))),
        );
        check(
            "/api/v1/nodes/node1:10250/proxy/stats",
            Some(&Ok(target(
                Node,
                None,
                ("", "node1", "10250"),
                Some("/stats"),
            ))),
        );
        check(
            "/api/v1/namespaces/ns/services/HTTP:web:80/proxy/",
            Some(&Err(InvalidProxyId {
                kind: Service,
                id: "HTTP:web:80".into(),
            })),
        );
        let err = parse_proxy_path("/api/v1/namespaces/ns/pods/:x/proxy")
            .expect("a proxy path")
            .expect_err("invalid id");
        assert_eq!(err.to_string(), r#"invalid pod request ":x""#);
        // Not proxy subresources.
        check("/api/v1/namespaces/ns/services/web", None);
        check("/api/v1/namespaces/ns/services/web/proxyx", None);
        check("/api/v1/namespaces/ns/configmaps/web/proxy", None);
        check("/apis/v1/namespaces/ns/services/web/proxy", None);
        check("/api/v1/namespaces/ns/pods/p/exec", None);
    }
}
