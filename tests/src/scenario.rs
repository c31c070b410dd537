//! Scenario files (`tests/scenarios/*.toml`): serde types and loading. A file holds default flags
//! and a kubeconfig variant, then `[[case]]` tables: one request each and the expectations a
//! backend must meet. Only what a case names is compared.
//!
//! This module is data only; `runner` executes it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;

use crate::backend::Backend;
use crate::kubeconfig::Variant;

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
    /// The kubectl-proxy.md §4 vector number, if any.
    pub vector: Option<u32>,
    /// Flags replacing the file's.
    pub flags: Option<Vec<String>>,
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
    /// A substring of the body.
    pub body_contains: Option<String>,
    /// Named response headers: a value, `SOME` or `ABSENT`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `"none"`: nothing reached upstream; or a table describing the upstream request.
    pub upstream: Option<UpstreamExpect>,
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
        let cases = self.cases.iter_mut().filter_map(|c| c.flags.as_mut());
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
        }
        Ok(())
    }
}

// === impl Case ===

impl Case {
    /// The flags this case runs with.
    pub fn flags<'a>(&'a self, s: &'a Scenario) -> &'a [String] {
        self.flags.as_deref().unwrap_or(&s.flags)
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
}

/// `tests/scenarios`.
pub fn scenario_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

/// `tests/fixtures` (static files for `--www`).
pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}
