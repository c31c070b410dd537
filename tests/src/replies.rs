//! Response bodies of the fake API server: discovery documents, a `ConfigMapList`, watch events,
//! `Status` objects and the echo document that describes the request it answers.
//!
//! Pure functions from request data to bytes; no sockets, no clocks.

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// What the fake saw of one request (also the source of the echo document).
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The method token as sent.
    pub method: String,
    /// The raw request target (origin form: path and query, exactly as sent).
    pub target: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// Header names (lower case) and values in arrival order; repeated names repeat.
    pub headers: Vec<(String, String)>,
    /// The request body.
    pub body: Vec<u8>,
}

// === impl Recorded ===

impl Recorded {
    /// What a server saw: the request head and its whole body.
    pub fn from_parts(parts: &http::request::Parts, body: Vec<u8>) -> Self {
        Self {
            method: parts.method.as_str().to_owned(),
            target: parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.to_string(), |pq| pq.as_str().to_owned()),
            version: format!("{:?}", parts.version),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body,
        }
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).into_iter().next()
    }

    /// The path part of the target (before `?`).
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The query part of the target, if any (without `?`).
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }
}

/// The echo document: `{"method","target","headers":[[k,v]...],"body_sha256","body_len"}`.
pub fn echo(r: &Recorded) -> Vec<u8> {
    let headers: Vec<Value> = r.headers.iter().map(|(k, v)| json!([k, v])).collect();
    let doc = json!({
        "method": r.method,
        "target": r.target,
        "version": r.version,
        "headers": headers,
        "body_sha256": hex(&Sha256::digest(&r.body)),
        "body_len": r.body.len(),
    });
    to_bytes(&doc)
}

/// A `Status` failure object as the apiserver sends it (field order as the apiserver writes it).
pub fn status(code: u16, reason: &str, message: &str) -> Vec<u8> {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    format!(
        r#"{{"kind":"Status","apiVersion":"v1","metadata":{{}},"status":"Failure","message":{},"reason":{},"code":{code}}}"#,
        q(message),
        q(reason)
    )
    .into_bytes()
}

/// `GET /api`: the core group's versions.
pub fn api_versions(server_addr: &str) -> Vec<u8> {
    to_bytes(&json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_addr}],
    }))
}

/// `GET /api/v1`: a resource list with namespaced configmaps and pods.
pub fn api_resources() -> Vec<u8> {
    let resource = |name: &str, kind: &str, short: &[&str]| {
        json!({
            "name": name,
            "singularName": name.trim_end_matches('s'),
            "namespaced": true,
            "kind": kind,
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            "shortNames": short,
            "storageVersionHash": "",
        })
    };
    to_bytes(&json!({
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            resource("configmaps", "ConfigMap", &["cm"]),
            resource("pods", "Pod", &["po"]),
        ],
    }))
}

/// `/version`: what `kubectl version` expects.
pub fn version() -> Vec<u8> {
    to_bytes(&json!({
        "major": "1", "minor": "32", "gitVersion": "v1.32.4", "gitCommit": "fake",
        "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23.8",
        "compiler": "gc", "platform": "linux/amd64",
    }))
}

/// A `ConfigMapList` with one config map per namespace (all namespaces when `ns` is `None`).
pub fn configmap_list(ns: Option<&str>) -> Vec<u8> {
    let namespaces: Vec<&str> = match ns {
        Some(ns) => vec![ns],
        None => vec!["default", "kube-system"],
    };
    let items: Vec<Value> = namespaces
        .iter()
        .map(|ns| {
            json!({
                "metadata": {
                    "name": "kube-root-ca.crt",
                    "namespace": ns,
                    "uid": format!("00000000-0000-0000-0000-{:012}", ns.len()),
                    "resourceVersion": "1",
                    "creationTimestamp": "2025-01-01T00:00:00Z",
                },
                "data": {"ca.crt": "fake"},
            })
        })
        .collect();
    to_bytes(&json!({
        "kind": "ConfigMapList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "1"},
        "items": items,
    }))
}

/// Watch event number `n`, newline-terminated (one JSON document per line, as the apiserver).
pub fn watch_event(n: usize) -> Vec<u8> {
    let mut out = to_bytes(&json!({
        "type": "ADDED",
        "object": {
            "kind": "ConfigMap",
            "apiVersion": "v1",
            "metadata": {"name": format!("event-{n}"), "namespace": "default",
                         "resourceVersion": format!("{}", n + 2)},
        },
    }));
    out.push(b'\n');
    out
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn to_bytes(v: &Value) -> Vec<u8> {
    // Serializing a `Value` cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}
