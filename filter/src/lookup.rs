//! Service lookups for direct service-proxy mode: the `proxy_http_call` request, reading the API
//! server's answer (a Service, a verbatim 4xx, or a failure), choosing the port to dial the way
//! the apiserver's `ResourceLocation` chooses an endpoint port, and the shared-data cache entry.
//!
//! Pure: the caller does the call, passes the current time in, and stores the cache bytes.

use crate::auth::{self, Credentials, Impersonate};
use crate::decision::HeaderOp;

/// The `proxy_http_call` timeout of a lookup, in milliseconds.
pub const LOOKUP_TIMEOUT_MS: u64 = 10_000;

/// The parts of a Service the filter needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceInfo {
    /// `spec.type` (`ClusterIP` when absent).
    pub kind: String,
    /// `spec.clusterIP` is `None`.
    pub headless: bool,
    /// `spec.selector` is a non-empty map.
    pub has_selector: bool,
    /// `spec.ports`.
    pub ports: Vec<ServicePort>,
}

/// One `spec.ports` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServicePort {
    /// `name` (`""` when absent).
    pub name: String,
    /// `port`.
    pub port: i64,
    /// `targetPort` when it is a number.
    pub target_port: Option<i64>,
}

/// A lookup's answer the filter acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupAnswer {
    /// The Service exists.
    Service(ServiceInfo),
    /// The API server refused (4xx): passed to the client verbatim.
    Refused {
        /// The status code.
        status: u32,
        /// The body.
        body: String,
    },
    /// The lookup failed (5xx, reset, unreadable answer): the short reason.
    Failed(String),
}

/// The headers of the lookup request, `:path` included; credentials and impersonation as on
/// API-server routes (but never a client's own).
pub fn request_headers(
    server_path: &str,
    namespace: &str,
    name: &str,
    credentials: Option<&Credentials>,
    impersonate: Option<&Impersonate>,
) -> Vec<(String, String)> {
    let path = format!(
        "{}/api/v1/namespaces/{}/services/{}",
        server_path.trim_end_matches('/'),
        namespace,
        name
    );
    let mut headers = vec![
        (":method".to_owned(), "GET".to_owned()),
        (":path".to_owned(), path),
        (":authority".to_owned(), "kubernetes.default.svc".to_owned()),
        ("accept".to_owned(), "application/json".to_owned()),
        ("user-agent".to_owned(), "kproxy".to_owned()),
    ];
    for op in auth::header_ops(&[], credentials, impersonate) {
        match op {
            HeaderOp::Replace(n, v) => {
                headers.retain(|(h, _)| *h != n);
                headers.push((n, v));
            }
            HeaderOp::Add(n, v) => headers.push((n, v)),
            HeaderOp::Remove(n) => headers.retain(|(h, _)| *h != n),
        }
    }
    headers
}

/// Reads a Service object (the 200 body of the lookup). Walks a `serde_json::Value` (already
/// linked for the configuration diagnostics) instead of deriving deserializers, to keep the
/// `.wasm` small.
pub fn parse_service(body: &[u8]) -> Result<ServiceInfo, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("unreadable Service: {e}"))?;
    let not_a = |what: &str| format!("unreadable Service: {what}");
    let spec = match value.get("spec") {
        None | Some(serde_json::Value::Null) => &serde_json::Value::Null,
        Some(spec) if spec.is_object() => spec,
        Some(_) => return Err(not_a("spec is not an object")),
    };
    let text = |v: Option<&serde_json::Value>, field: &str| match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(not_a(&format!("{field} is not a string"))),
    };
    let kind = text(spec.get("type"), "spec.type")?
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| "ClusterIP".to_owned());
    let headless = text(spec.get("clusterIP"), "spec.clusterIP")?.as_deref() == Some("None");
    let has_selector = match spec.get("selector") {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Object(m)) => !m.is_empty(),
        Some(_) => return Err(not_a("spec.selector is not an object")),
    };
    let raw_ports = match spec.get("ports") {
        None | Some(serde_json::Value::Null) => &[][..],
        Some(serde_json::Value::Array(a)) => a.as_slice(),
        Some(_) => return Err(not_a("spec.ports is not a list")),
    };
    let mut ports = Vec::with_capacity(raw_ports.len());
    for p in raw_ports {
        let port = p
            .get("port")
            .and_then(serde_json::Value::as_i64)
            .ok_or_else(|| not_a("a spec.ports entry has no numeric port"))?;
        ports.push(ServicePort {
            name: text(p.get("name"), "spec.ports[].name")?.unwrap_or_default(),
            port,
            target_port: p.get("targetPort").and_then(serde_json::Value::as_i64),
        });
    }
    Ok(ServiceInfo {
        kind,
        headless,
        has_selector,
        ports,
    })
}

/// Turns the call's result into an answer: `status` is `None` when the call produced no
/// response (reset, timeout without a response).
pub fn read_answer(status: Option<u32>, body: &[u8]) -> LookupAnswer {
    match status {
        None => LookupAnswer::Failed("no response from the API server".to_owned()),
        Some(200) => match parse_service(body) {
            Ok(svc) => LookupAnswer::Service(svc),
            Err(e) => LookupAnswer::Failed(e),
        },
        Some(s @ 400..=499) => LookupAnswer::Refused {
            status: s,
            body: String::from_utf8_lossy(body).into_owned(),
        },
        Some(s) => LookupAnswer::Failed(format!("the API server answered {s}")),
    }
}

/// Why no port could be chosen: a 503 message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortError {
    /// `no service port N found for service "<name>"`.
    NoServicePort(i64),
    /// `no endpoints available for service "<id>"`.
    NoEndpoints,
    /// ExternalName: `endpoints "<name>" not found` (404).
    NoEndpointsObject,
}

/// Chooses the port to dial for `port` (the id's port part), in the apiserver's order: a numeric
/// port must be a service port; then ExternalName has no Endpoints; a Service without selector
/// has no usable endpoints; a named port must exist. Headless Services are dialled on the
/// numeric `targetPort` (pods directly), others on the service port.
pub fn choose_port(svc: &ServiceInfo, port: &str) -> Result<i64, PortError> {
    let entry = match port.parse::<i64>() {
        Ok(n) => Some(
            svc.ports
                .iter()
                .find(|p| p.port == n)
                .ok_or(PortError::NoServicePort(n))?,
        ),
        Err(_) => None,
    };
    if svc.kind == "ExternalName" {
        return Err(PortError::NoEndpointsObject);
    }
    if !svc.has_selector {
        return Err(PortError::NoEndpoints);
    }
    let entry = match entry {
        Some(e) => e,
        None => svc
            .ports
            .iter()
            .find(|p| p.name == port)
            .ok_or(PortError::NoEndpoints)?,
    };
    Ok(if svc.headless {
        entry.target_port.unwrap_or(entry.port)
    } else {
        entry.port
    })
}

/// The shared-data key of a Service's cache entry.
pub fn cache_key(namespace: &str, name: &str) -> String {
    format!("kproxy.service/{namespace}/{name}")
}

/// Whether an answer may be cached: Services and 404s only.
pub fn cacheable(answer: &LookupAnswer) -> bool {
    matches!(
        answer,
        LookupAnswer::Service(_) | LookupAnswer::Refused { status: 404, .. }
    )
}

/// The cache value for `answer` fetched at `now_ms`: a line `kproxy-service-v1 <ms>`, then
/// `service <type> <headless 0|1> <selector 0|1>` and one `port <name|-> <port> <target|->`
/// line per port, or `refused <status>` and the body after the next newline. (Service types and
/// port names never contain spaces or newlines; the text format keeps serde's serializer out of
/// the module.)
pub fn encode_cache(answer: &LookupAnswer, now_ms: u64) -> Vec<u8> {
    let mut out = format!("{CACHE_MAGIC} {now_ms}\n");
    match answer {
        LookupAnswer::Service(svc) => {
            out.push_str(&format!(
                "service {} {} {}\n",
                token(&svc.kind),
                u8::from(svc.headless),
                u8::from(svc.has_selector)
            ));
            for p in &svc.ports {
                let name = if p.name.is_empty() {
                    "-"
                } else {
                    token(&p.name)
                };
                let target = p
                    .target_port
                    .map_or_else(|| "-".to_owned(), |t| t.to_string());
                out.push_str(&format!("port {name} {} {target}\n", p.port));
            }
        }
        LookupAnswer::Refused { status, body } => {
            out.push_str(&format!("refused {status}\n{body}"));
        }
        LookupAnswer::Failed(reason) => out.push_str(&format!("failed\n{reason}")),
    }
    out.into_bytes()
}

const CACHE_MAGIC: &str = "kproxy-service-v1";

/// A word that cannot break the line format (anything else is not a valid Kubernetes value).
fn token(s: &str) -> &str {
    if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c == '-' && s.len() == 1) {
        "?"
    } else {
        s
    }
}

/// The cached answer if `bytes` hold an entry younger than `ttl_seconds` at `now_ms`.
pub fn decode_cache(bytes: &[u8], now_ms: u64, ttl_seconds: u64) -> Option<LookupAnswer> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (first, rest) = text.split_once('\n')?;
    let fetched: u64 = first
        .strip_prefix(CACHE_MAGIC)?
        .strip_prefix(' ')?
        .parse()
        .ok()?;
    let age = now_ms.checked_sub(fetched)?;
    if age >= ttl_seconds.saturating_mul(1000) {
        return None;
    }
    let (kind_line, body) = rest.split_once('\n').unwrap_or((rest, ""));
    let words: Vec<&str> = kind_line.split(' ').collect();
    let answer = match words.as_slice() {
        ["service", kind, headless, selector] => {
            let mut ports = Vec::new();
            for line in body.lines() {
                let ["port", name, port, target] = line.split(' ').collect::<Vec<_>>()[..] else {
                    return None;
                };
                ports.push(ServicePort {
                    name: if name == "-" {
                        String::new()
                    } else {
                        name.to_owned()
                    },
                    port: port.parse().ok()?,
                    target_port: if target == "-" {
                        None
                    } else {
                        Some(target.parse().ok()?)
                    },
                });
            }
            LookupAnswer::Service(ServiceInfo {
                kind: (*kind).to_owned(),
                headless: *headless == "1",
                has_selector: *selector == "1",
                ports,
            })
        }
        ["refused", status] => LookupAnswer::Refused {
            status: status.parse().ok()?,
            body: body.to_owned(),
        },
        _ => return None,
    };
    cacheable(&answer).then_some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(json: &str) -> ServiceInfo {
        parse_service(json.as_bytes()).expect("service")
    }

    const WEB: &str = r#"{"kind":"Service","apiVersion":"v1","metadata":{"name":"web","namespace":"ns"},
        "spec":{"type":"ClusterIP","clusterIP":"10.0.0.7","selector":{"app":"web"},
        "ports":[{"name":"http","port":80,"targetPort":8080,"protocol":"TCP"},
                 {"name":"metrics","port":9090,"targetPort":"prom"}]}}"#;

    #[test]
    fn reads_a_service() {
        let s = svc(WEB);
        assert_eq!(s.kind, "ClusterIP");
        assert!(!s.headless);
        assert!(s.has_selector);
        assert_eq!(
            s.ports,
            [
                ServicePort {
                    name: "http".into(),
                    port: 80,
                    target_port: Some(8080)
                },
                ServicePort {
                    name: "metrics".into(),
                    port: 9090,
                    target_port: None
                },
            ]
        );
        let bare = svc(r#"{"spec":{"ports":[{"port":8080}],"selector":{}}}"#);
        assert_eq!(bare.kind, "ClusterIP");
        assert!(!bare.has_selector);
        assert_eq!(bare.ports[0].name, "");
        assert!(parse_service(b"{\"spec\":{\"ports\":[{\"name\":\"x\"}]}}").is_err());
        assert!(parse_service(b"<html>").is_err());
        assert!(parse_service(br#"{"spec":{"ports":{}}}"#).is_err());
        assert!(parse_service(br#"{"spec":{"type":3}}"#).is_err());
        assert_eq!(
            parse_service(br#"{"kind":"Service"}"#),
            Ok(ServiceInfo {
                kind: "ClusterIP".into(),
                ..ServiceInfo::default()
            })
        );
    }

    #[test]
    fn port_choice_follows_resource_location() {
        let web = svc(WEB);
        // A3: numeric service port 80 → dial 80 (the Service VIP).
        assert_eq!(choose_port(&web, "80"), Ok(80));
        // A5: a port name.
        assert_eq!(choose_port(&web, "http"), Ok(80));
        assert_eq!(choose_port(&web, "metrics"), Ok(9090));
        // A7: not a service port (8080 is only a targetPort).
        assert_eq!(
            choose_port(&web, "8080"),
            Err(PortError::NoServicePort(8080))
        );
        assert_eq!(
            choose_port(&web, "+80"),
            Ok(80),
            "Go ParseInt accepts a sign"
        );
        // A8: no port given, all ports named.
        assert_eq!(choose_port(&web, ""), Err(PortError::NoEndpoints));
        assert_eq!(choose_port(&web, "nope"), Err(PortError::NoEndpoints));
        // An unnamed port matches the empty port.
        let single = svc(r#"{"spec":{"selector":{"a":"b"},"ports":[{"port":8000}]}}"#);
        assert_eq!(choose_port(&single, ""), Ok(8000));
        assert_eq!(choose_port(&single, "8000"), Ok(8000));
        // A9 as "no selector": never usable endpoints.
        let manual = svc(r#"{"spec":{"ports":[{"name":"http","port":80}]}}"#);
        assert_eq!(choose_port(&manual, "http"), Err(PortError::NoEndpoints));
        assert_eq!(choose_port(&manual, "80"), Err(PortError::NoEndpoints));
        // Headless: the numeric targetPort, else the port.
        let headless = svc(r#"{"spec":{"clusterIP":"None","selector":{"a":"b"},
            "ports":[{"name":"http","port":80,"targetPort":8080},{"name":"n","port":81,"targetPort":"web"}]}}"#);
        assert!(headless.headless);
        assert_eq!(choose_port(&headless, "80"), Ok(8080));
        assert_eq!(choose_port(&headless, "http"), Ok(8080));
        assert_eq!(choose_port(&headless, "n"), Ok(81));
        // ExternalName: no Endpoints object (after a numeric port check).
        let ext = svc(
            r#"{"spec":{"type":"ExternalName","externalName":"example.com","ports":[{"port":80}]}}"#,
        );
        assert_eq!(choose_port(&ext, ""), Err(PortError::NoEndpointsObject));
        assert_eq!(choose_port(&ext, "80"), Err(PortError::NoEndpointsObject));
        assert_eq!(choose_port(&ext, "81"), Err(PortError::NoServicePort(81)));
    }

    #[test]
    fn answers() {
        assert!(matches!(
            read_answer(Some(200), WEB.as_bytes()),
            LookupAnswer::Service(_)
        ));
        let nf = r#"{"kind":"Status","code":404}"#;
        assert_eq!(
            read_answer(Some(404), nf.as_bytes()),
            LookupAnswer::Refused {
                status: 404,
                body: nf.into()
            }
        );
        assert!(matches!(
            read_answer(Some(403), b"x"),
            LookupAnswer::Refused { status: 403, .. }
        ));
        assert_eq!(
            read_answer(Some(503), b""),
            LookupAnswer::Failed("the API server answered 503".into())
        );
        assert_eq!(
            read_answer(None, b""),
            LookupAnswer::Failed("no response from the API server".into())
        );
        assert!(matches!(
            read_answer(Some(200), b"nope"),
            LookupAnswer::Failed(m) if m.starts_with("unreadable Service")
        ));
    }

    #[test]
    fn cache_entries_expire() {
        let answer = read_answer(Some(200), WEB.as_bytes());
        let bytes = encode_cache(&answer, 1_000_000);
        assert_eq!(decode_cache(&bytes, 1_000_000, 10).as_ref(), Some(&answer));
        assert_eq!(decode_cache(&bytes, 1_009_999, 10).as_ref(), Some(&answer));
        assert_eq!(decode_cache(&bytes, 1_010_000, 10), None);
        assert_eq!(decode_cache(&bytes, 999_999, 10), None, "clock went back");
        assert_eq!(decode_cache(&bytes, 1_000_000, 0), None, "ttl 0");
        assert_eq!(decode_cache(b"garbage", 1_000_000, 10), None);
        assert_eq!(
            decode_cache(b"kproxy-service-v1 5\nservice X 0 1\nport a b -\n", 6, 10),
            None
        );
        let odd = LookupAnswer::Service(ServiceInfo {
            kind: "NodePort".into(),
            headless: true,
            has_selector: false,
            ports: vec![
                ServicePort {
                    name: String::new(),
                    port: 80,
                    target_port: None,
                },
                ServicePort {
                    name: "h".into(),
                    port: 443,
                    target_port: Some(8443),
                },
            ],
        });
        assert_eq!(decode_cache(&encode_cache(&odd, 7), 7, 1), Some(odd));
        let multi = LookupAnswer::Refused {
            status: 404,
            body: "line1\nline2\n".into(),
        };
        assert_eq!(decode_cache(&encode_cache(&multi, 7), 7, 1), Some(multi));
        let nf = LookupAnswer::Refused {
            status: 404,
            body: "{}".into(),
        };
        assert!(cacheable(&nf));
        assert_eq!(decode_cache(&encode_cache(&nf, 5), 6, 1), Some(nf));
        for not in [
            LookupAnswer::Refused {
                status: 403,
                body: String::new(),
            },
            LookupAnswer::Failed("x".into()),
        ] {
            assert!(!cacheable(&not));
            assert_eq!(decode_cache(&encode_cache(&not, 5), 6, 10), None);
        }
        assert_eq!(cache_key("ns", "web"), "kproxy.service/ns/web");
    }

    #[test]
    fn lookup_request() {
        let creds = Credentials::Token("TOK".into());
        let imp = Impersonate {
            user: "jane".into(),
            groups: vec!["g".into()],
            ..Impersonate::default()
        };
        let h = request_headers("/k8s/c/", "ns", "web", Some(&creds), Some(&imp));
        let get = |n: &str| {
            h.iter()
                .filter(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(get(":path"), ["/k8s/c/api/v1/namespaces/ns/services/web"]);
        assert_eq!(get(":method"), ["GET"]);
        assert_eq!(get(":authority"), ["kubernetes.default.svc"]);
        assert_eq!(get("accept"), ["application/json"]);
        assert_eq!(get("authorization"), ["Bearer TOK"]);
        assert_eq!(get("impersonate-user"), ["jane"]);
        assert_eq!(get("impersonate-group"), ["g"]);
        let bare = request_headers("", "ns", "web", None, None);
        assert_eq!(bare[1].1, "/api/v1/namespaces/ns/services/web");
        assert!(!bare.iter().any(|(k, _)| k == "authorization"));
    }
}
