//! Scenario files (`tests/scenarios/*.toml`): serde types and loading. A file holds default flags
//! and a kubeconfig variant, optionally the backends it applies to and `[[service]]` tables (fake
//! in-cluster Services for direct service-proxy mode), then `[[case]]` tables: one request each
//! and the expectations a backend must meet. Only what a case names is compared.
//!
//! Placeholders: `{fixtures}` in flags (the `tests/fixtures` directory, at load time), and
//! `{port:LABEL}` anywhere in flags, requests and expectations (the ephemeral port of the fake
//! service port `LABEL`, at run time; see [`ServiceDecl::labels`]).
//!
//! This module is data only; `runner` executes it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;

use crate::backend::Backend;
use crate::kubeconfig::Variant;
use crate::services::Serve;

/// One scenario file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// What the file covers.
    pub description: String,
    /// kubectl-proxy flags for every case (a case may override them); `{fixtures}` stands for the
    /// `tests/fixtures` directory.
    #[serde(default)]
    pub flags: Vec<String>,
    /// The kubeconfig variant (default `token`).
    #[serde(default)]
    pub kubeconfig: Variant,
    /// The backends this file applies to (default: all). The others do not run it (their test
    /// passes trivially, saying why) and the parity table shows them as `n/a`.
    pub backends: Option<Vec<String>>,
    /// Why the file is limited to `backends` (printed by the backends that do not run it).
    pub backends_reason: Option<String>,
    /// Fake Services: registered on the fake API server, each port served by a fake backend.
    #[serde(rename = "service", default)]
    pub services: Vec<ServiceDecl>,
    /// The cases.
    #[serde(rename = "case")]
    pub cases: Vec<Case>,
}

/// One request and its expectations.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Unique within the file, named after the behaviour.
    pub name: String,
    /// The kubectl-proxy.md §4 vector, if any: a number (`12`) or an id (`"A3"`).
    pub vector: Option<Vector>,
    /// Flags replacing the file's.
    pub flags: Option<Vec<String>>,
    /// Flags appended to the file's (or to `flags`).
    #[serde(default)]
    pub extra_flags: Vec<String>,
    /// Kubeconfig variant replacing the file's.
    pub kubeconfig: Option<Variant>,
    /// The method token (default `GET`).
    #[serde(default = "default_method")]
    pub method: String,
    /// The raw request target (default `/`).
    #[serde(default = "default_path")]
    pub path: String,
    /// The `Host` value (default `127.0.0.1`).
    #[serde(default = "default_host")]
    pub host: String,
    /// Send no `Host` line at all.
    #[serde(default)]
    pub no_host: bool,
    /// The protocol version (default `HTTP/1.1`).
    #[serde(default = "default_version")]
    pub version: String,
    /// Extra headers, in order: `[["Name", "value"], …]`.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The request body.
    #[serde(default)]
    pub body: String,
    /// Send the body with `Transfer-Encoding: chunked`.
    #[serde(default)]
    pub chunked: bool,
    /// After a `101`, write these bytes and expect them echoed back through the tunnel.
    pub tunnel: Option<String>,
    /// Backends that do not run this case, with the reason.
    #[serde(default)]
    pub skip: BTreeMap<String, String>,
    /// A documented kproxy deviation from kubectl (kubectl-proxy.md "Deliberate deviations").
    pub deviation: Option<String>,
    /// What kubectl (and, unless `kproxy` is given, every backend) must do.
    pub expect: Expect,
    /// What the kproxy backends (shim, Envoy) must do where it differs (a deviation).
    pub kproxy: Option<Expect>,
}

/// Expectations on the response and on what reached the fake API server.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The status code.
    pub status: Option<u16>,
    /// The exact body.
    pub body: Option<String>,
    /// A substring of the body, or a list of substrings that must all occur.
    pub body_contains: Option<Texts>,
    /// The exact body after undoing `Content-Encoding` (absent/identity, `gzip`, or raw
    /// `deflate`); also checks the framing: a `Content-Length` equal to the bytes sent and nothing
    /// after them.
    pub decoded_body: Option<String>,
    /// Named response headers: a value, `SOME` or `ABSENT`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `"none"`: nothing reached upstream; or a table describing the upstream request.
    pub upstream: Option<UpstreamExpect>,
    /// Like `upstream`, for the fake Services (direct mode): `"none"` or the request the first
    /// fake service that saw this case received.
    pub service: Option<UpstreamExpect>,
    /// How many Service GETs (`/api/v1/namespaces/{ns}/services/{name}`) reached the fake API
    /// server while the case ran (direct mode's lookups; 0 = answered from the cache or none).
    pub lookups: Option<usize>,
    /// The first and last body pieces arrived at least this many milliseconds apart (streaming).
    pub min_spread_ms: Option<u64>,
}

/// The upstream expectation.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum UpstreamExpect {
    /// Only `"none"` is allowed.
    Marker(String),
    /// The request the fake saw.
    Seen(SeenExpect),
}

/// The upstream request's named parts.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeenExpect {
    /// The method token.
    pub method: Option<String>,
    /// The raw target (path and query).
    pub target: Option<String>,
    /// Named headers: a value, a list of all values in order, `SOME` or `ABSENT`.
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderExpect>,
    /// The body as text.
    pub body: Option<String>,
    /// Fake services only: the label of the server that received it.
    pub server: Option<String>,
    /// Fake services only: the TLS SNI it received; `ABSENT` = a TLS connection without SNI,
    /// `PLAIN` = not TLS.
    pub sni: Option<String>,
}

/// A scenario vector: a §4 number or an id such as `A3`.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Vector {
    /// A number (kubectl-proxy.md §4.1-4.7).
    Number(u32),
    /// An id (kubectl-proxy.md §4.8: `A1` … `A22`).
    Id(String),
}

/// One or more texts.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Texts {
    /// One text.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// A fake Service (`[[service]]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceDecl {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `spec.type` (default `ClusterIP`).
    #[serde(rename = "type", default = "default_service_type")]
    pub service_type: String,
    /// `spec.clusterIP` (`None` = headless); absent = left out of the object.
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Option<String>,
    /// `spec.selector`; absent = no selector.
    pub selector: Option<BTreeMap<String, String>>,
    /// `spec.externalName` (type `ExternalName`).
    #[serde(rename = "externalName")]
    pub external_name: Option<String>,
    /// `spec.ports`.
    #[serde(default)]
    pub ports: Vec<PortDecl>,
}

/// One `spec.ports` entry and the fake backend serving it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortDecl {
    /// The port name (may be empty).
    #[serde(default)]
    pub name: String,
    /// The service port.
    pub port: u16,
    /// The target port: a number or a container port name; absent = left out.
    #[serde(rename = "targetPort")]
    pub target_port: Option<TargetPort>,
    /// Which fake backend serves this port (absent = none).
    pub serve: Option<Serve>,
}

/// `targetPort`: a number or a name.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum TargetPort {
    /// A port number.
    Number(u16),
    /// A named container port.
    Name(String),
}

/// One header expectation.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum HeaderExpect {
    /// A value (the first one), or `SOME`/`ABSENT`.
    One(String),
    /// Every value, in order.
    All(Vec<String>),
}

fn default_method() -> String {
    "GET".to_owned()
}
fn default_path() -> String {
    "/".to_owned()
}
fn default_host() -> String {
    "127.0.0.1".to_owned()
}
fn default_version() -> String {
    "HTTP/1.1".to_owned()
}
fn default_service_type() -> String {
    "ClusterIP".to_owned()
}

// === impl Scenario ===

impl Scenario {
    /// Loads `tests/scenarios/<name>.toml` and checks it.
    pub fn load(name: &str) -> Result<Self> {
        let path = scenario_dir().join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut s: Scenario =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        s.expand_fixtures();
        s.validate()
            .with_context(|| format!("in {}", path.display()))?;
        Ok(s)
    }

    /// Replaces `{fixtures}` in every flag with the `tests/fixtures` directory.
    fn expand_fixtures(&mut self) {
        let dir = fixture_dir().display().to_string();
        let cases = self.cases.iter_mut().flat_map(|c| {
            let Case {
                flags, extra_flags, ..
            } = c;
            flags
                .as_mut()
                .into_iter()
                .chain(std::iter::once(extra_flags))
        });
        for flag in std::iter::once(&mut self.flags).chain(cases).flatten() {
            *flag = flag.replace("{fixtures}", &dir);
        }
    }

    fn validate(&self) -> Result<()> {
        let mut names = std::collections::BTreeSet::new();
        for c in &self.cases {
            if !names.insert(&c.name) {
                bail!("duplicate case name {}", c.name);
            }
            for e in std::iter::once(&c.expect).chain(c.kproxy.as_ref()) {
                if let Some(UpstreamExpect::Marker(m)) = &e.upstream
                    && m != "none"
                {
                    bail!("case {}: upstream must be \"none\" or a table", c.name);
                }
            }
            for b in c.skip.keys() {
                if Backend::from_name(b).is_none() {
                    bail!("case {}: unknown backend {b} in skip", c.name);
                }
            }
            for e in std::iter::once(&c.expect).chain(c.kproxy.as_ref()) {
                if let Some(UpstreamExpect::Seen(seen)) = &e.upstream
                    && (seen.server.is_some() || seen.sni.is_some())
                {
                    bail!(
                        "case {}: upstream.server/sni are for fake services (use `service`)",
                        c.name
                    );
                }
                if let Some(UpstreamExpect::Marker(m)) = &e.service
                    && m != "none"
                {
                    bail!("case {}: service must be \"none\" or a table", c.name);
                }
            }
        }
        for b in self.backends.iter().flatten() {
            if Backend::from_name(b).is_none() {
                bail!("unknown backend {b} in backends");
            }
        }
        let mut labels = std::collections::BTreeSet::new();
        for svc in &self.services {
            for label in svc.labels().into_iter().map(|(l, _)| l) {
                if !labels.insert(label.clone()) {
                    bail!("service port label {label} is not unique");
                }
            }
        }
        Ok(())
    }

    /// Whether `backend` runs this file (`backends`, default all).
    pub fn runs_on(&self, backend: Backend) -> bool {
        self.backends
            .as_ref()
            .is_none_or(|bs| bs.iter().any(|b| b == backend.name()))
    }
}

// === impl ServiceDecl ===

impl ServiceDecl {
    /// The fake-backend labels of this Service's served ports, each with the port's index:
    /// `{name}-{port name}` (when the port has a name) and `{name}-{port number}`.
    pub fn labels(&self) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        for (i, p) in self.ports.iter().enumerate() {
            if p.serve.is_none() {
                continue;
            }
            if !p.name.is_empty() {
                out.push((format!("{}-{}", self.name, p.name), i));
            }
            out.push((format!("{}-{}", self.name, p.port), i));
        }
        out
    }

    /// The Service object the fake API server returns.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::{Value, json};
        let ports: Vec<Value> = self
            .ports
            .iter()
            .map(|p| {
                let mut port = json!({"name": p.name, "protocol": "TCP", "port": p.port});
                match &p.target_port {
                    Some(TargetPort::Number(n)) => port["targetPort"] = json!(n),
                    Some(TargetPort::Name(n)) => port["targetPort"] = json!(n),
                    None => {}
                }
                if p.name.is_empty()
                    && let Some(o) = port.as_object_mut()
                {
                    o.remove("name");
                }
                port
            })
            .collect();
        let mut spec = json!({"type": self.service_type, "sessionAffinity": "None"});
        if !ports.is_empty() {
            spec["ports"] = json!(ports);
        }
        if let Some(ip) = &self.cluster_ip {
            spec["clusterIP"] = json!(ip);
            spec["clusterIPs"] = json!([ip]);
        }
        if let Some(sel) = &self.selector {
            spec["selector"] = json!(sel);
        }
        if let Some(ext) = &self.external_name {
            spec["externalName"] = json!(ext);
        }
        json!({
            "kind": "Service",
            "apiVersion": "v1",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "uid": format!("00000000-0000-0000-0000-{:012}", self.name.len()),
                "resourceVersion": "1",
                "creationTimestamp": "2025-01-01T00:00:00Z",
            },
            "spec": spec,
            "status": {"loadBalancer": {}},
        })
    }
}

// === impl Case ===

impl Case {
    /// The flags this case runs with.
    pub fn flags(&self, s: &Scenario) -> Vec<String> {
        let mut flags = self.flags.clone().unwrap_or_else(|| s.flags.clone());
        flags.extend(self.extra_flags.iter().cloned());
        flags
    }

    /// The kubeconfig variant this case runs with.
    pub fn variant(&self, s: &Scenario) -> Variant {
        self.kubeconfig.unwrap_or(s.kubeconfig)
    }

    /// The expectation for `backend`.
    pub fn expect_for(&self, backend: Backend) -> &Expect {
        match (&self.kproxy, backend.is_kproxy()) {
            (Some(k), true) => k,
            _ => &self.expect,
        }
    }

    /// A copy with `f` applied to every text of the request and the expectations (not to the
    /// name, which tags the request, nor to the flags: see [`Case::flags`]).
    pub fn map_texts(&self, f: &dyn Fn(&str) -> String) -> Case {
        let mut c = self.clone();
        c.flags = c.flags.map(|fl| fl.iter().map(|s| f(s)).collect());
        c.extra_flags = c.extra_flags.iter().map(|s| f(s)).collect();
        c.path = f(&c.path);
        c.host = f(&c.host);
        c.body = f(&c.body);
        c.tunnel = c.tunnel.as_deref().map(f);
        for (_, v) in &mut c.headers {
            *v = f(v);
        }
        c.expect = c.expect.map_texts(f);
        c.kproxy = c.kproxy.map(|k| k.map_texts(f));
        c
    }
}

// === impl Expect ===

impl Expect {
    fn map_texts(&self, f: &dyn Fn(&str) -> String) -> Expect {
        let mut e = self.clone();
        e.body = e.body.as_deref().map(f);
        e.decoded_body = e.decoded_body.as_deref().map(f);
        e.body_contains = e.body_contains.map(|t| match t {
            Texts::One(s) => Texts::One(f(&s)),
            Texts::Many(v) => Texts::Many(v.iter().map(|s| f(s)).collect()),
        });
        for v in e.headers.values_mut() {
            *v = f(v);
        }
        for up in [&mut e.upstream, &mut e.service].into_iter().flatten() {
            if let UpstreamExpect::Seen(seen) = up {
                seen.target = seen.target.as_deref().map(f);
                seen.body = seen.body.as_deref().map(f);
                for h in seen.headers.values_mut() {
                    *h = match h {
                        HeaderExpect::One(s) => HeaderExpect::One(f(s)),
                        HeaderExpect::All(v) => HeaderExpect::All(v.iter().map(|s| f(s)).collect()),
                    };
                }
            }
        }
        e
    }
}

// === impl Texts ===

impl Texts {
    /// The texts as a slice.
    pub fn as_slice(&self) -> &[String] {
        match self {
            Texts::One(s) => std::slice::from_ref(s),
            Texts::Many(v) => v,
        }
    }
}

/// `tests/scenarios`.
pub fn scenario_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

/// `tests/fixtures` (static files for `--www`).
pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}
