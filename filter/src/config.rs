//! The plugin configuration: `RawConfig` mirrors the JSON of ARCHITECTURE.md exactly (unknown
//! fields rejected), `Config` is the validated form the policy uses, `ConfigError` names the
//! offending field.
//!
//! Parsing and validation only; nothing here looks at requests or talks to the host.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::auth::{Credentials, Impersonate, is_header_value};
use crate::gourl;
use crate::pattern::{PatternError, PatternList};

/// kubectl's `--accept-paths` default.
pub const DEFAULT_ACCEPT_PATHS: &[&str] = &["^.*"];
/// kubectl's `--reject-paths` default.
pub const DEFAULT_REJECT_PATHS: &[&str] = &["^/api/.*/pods/.*/exec", "^/api/.*/pods/.*/attach"];
/// kubectl's `--accept-hosts` default.
pub const DEFAULT_ACCEPT_HOSTS: &[&str] = &["^localhost$", r"^127\.0\.0\.1$", r"^\[::1\]$"];
/// kubectl's `--reject-methods` default.
pub const DEFAULT_REJECT_METHODS: &[&str] = &["^$"];

/// The plugin JSON, field for field.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `--api-prefix`.
    pub api_prefix: Option<String>,
    /// `--www-prefix` when `--www` is set; `null` = no static handler.
    pub static_prefix: Option<String>,
    /// `--accept-paths`, already split on commas.
    pub accept_paths: Option<Vec<String>>,
    /// `--reject-paths`.
    pub reject_paths: Option<Vec<String>>,
    /// `--accept-hosts`.
    pub accept_hosts: Option<Vec<String>>,
    /// `--reject-methods`.
    pub reject_methods: Option<Vec<String>>,
    /// `--disable-filter`.
    pub disable_filter: Option<bool>,
    /// The kubeconfig server's path (`--append-server-path`).
    pub server_path: Option<String>,
    /// Credentials for API-server requests.
    pub credentials: Option<RawCredentials>,
    /// Impersonation (`--as`, `--as-group`, `--as-uid`).
    pub impersonate: Option<RawImpersonate>,
    /// kubectl `-v`.
    pub verbosity: Option<u32>,
    /// `--service-proxy`: `"apiserver"` (default) or `"direct"`.
    pub service_proxy: Option<String>,
    /// `--cluster-domain` (default `cluster.local`).
    pub cluster_domain: Option<String>,
    /// `--service-cache-ttl` in whole seconds (default 10; 0 = no cache).
    pub service_cache_ttl_seconds: Option<u64>,
    /// The `proxy_http_call` cluster of the API server (default `kube_apiserver`).
    pub apiserver_cluster: Option<String>,
    /// `--cross-site-protection` (default false).
    pub cross_site_protection: Option<bool>,
}

/// `credentials`: `token` or `basic`, plus an optional rotation key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredentials {
    /// A bearer token.
    pub token: Option<String>,
    /// Basic-auth user and password.
    pub basic: Option<RawBasic>,
    /// Shared-data key holding rotated credentials.
    pub shared_data_key: Option<String>,
}

/// `credentials.basic`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBasic {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
}

/// `impersonate`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawImpersonate {
    /// `Impersonate-User`.
    #[serde(default)]
    pub user: String,
    /// `Impersonate-Group`, one header each.
    #[serde(default)]
    pub groups: Vec<String>,
    /// `Impersonate-Uid`.
    #[serde(default)]
    pub uid: String,
    /// `Impersonate-Extra-<key>`.
    #[serde(default)]
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// The API prefix, starting and ending with `/`.
    pub api_prefix: String,
    /// The static prefix, starting and ending with `/`, if static files are served.
    pub static_prefix: Option<String>,
    /// Paths that may pass.
    pub accept_paths: PatternList,
    /// Paths always rejected.
    pub reject_paths: PatternList,
    /// Hosts that may pass.
    pub accept_hosts: PatternList,
    /// Methods always rejected.
    pub reject_methods: PatternList,
    /// Skip the accept/reject filter entirely.
    pub disable_filter: bool,
    /// Prepended to every API path (escaped form, ends with `/`), or empty.
    pub server_path: String,
    /// Credentials for API-server requests.
    pub credentials: Option<CredentialsConfig>,
    /// Identity to impersonate.
    pub impersonate: Option<Impersonate>,
    /// kubectl `-v`: 3 logs accept/reject decisions, 6 also the matching pattern.
    pub verbosity: u32,
    /// Where service proxy URLs go.
    pub service_proxy: ServiceProxy,
    /// The cluster DNS domain of `{name}.{ns}.svc.{domain}` (no leading or trailing dot).
    pub cluster_domain: String,
    /// How long a Service lookup stays cached, in seconds (0 = not cached).
    pub service_cache_ttl_seconds: u64,
    /// The `proxy_http_call` cluster (upstream) name of the API server.
    pub apiserver_cluster: String,
    /// Reject cross-site browser requests to forwarded routes.
    pub cross_site_protection: bool,
}

/// `service_proxy`: who serves `/api/v1/namespaces/{ns}/services/{id}/proxy` URLs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServiceProxy {
    /// Forward them to the API server like every other API path (kubectl's behaviour).
    #[default]
    ApiServer,
    /// Look the Service up and send the request straight to its cluster DNS name.
    Direct,
}

impl ServiceProxy {
    /// The configuration value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiServer => "apiserver",
            Self::Direct => "direct",
        }
    }
}

/// The default `cluster_domain`.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
/// The default `service_cache_ttl_seconds`.
pub const DEFAULT_SERVICE_CACHE_TTL_SECONDS: u64 = 10;
/// The default `apiserver_cluster`.
pub const DEFAULT_APISERVER_CLUSTER: &str = "kube_apiserver";

/// Configured credentials and where rotated ones come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialsConfig {
    /// The static credentials, if any.
    pub static_credentials: Option<Credentials>,
    /// Shared-data key whose value replaces `static_credentials` when present.
    pub shared_data_key: Option<String>,
}

/// An invalid plugin configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The bytes are not JSON.
    Json(String),
    /// The JSON is not an object.
    NotAnObject,
    /// A field name that the configuration does not have.
    UnknownField(String),
    /// A field holds a value of the wrong type or shape.
    Field {
        /// The field, e.g. `credentials.token`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A pattern in a regex list cannot be used.
    Pattern {
        /// The list, e.g. `reject_paths`.
        field: &'static str,
        /// The index of the pattern in the list.
        index: usize,
        /// The pattern text.
        pattern: String,
        /// Why it cannot be used.
        error: PatternError,
    },
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Json(msg) => write!(f, "not valid JSON: {msg}"),
            Self::NotAnObject => f.write_str("must be a JSON object"),
            Self::UnknownField(name) => write!(
                f,
                "{name}: unknown field, expected one of {}",
                FIELDS.join(", ")
            ),
            Self::Field { field, message } => write!(f, "{field}: {message}"),
            Self::Pattern {
                field,
                index,
                pattern,
                error,
            } => write!(f, "{field}[{index}]: {error} (pattern {pattern:?})"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The top-level fields of the plugin configuration, in documentation order.
pub(crate) const FIELDS: &[&str] = &[
    "api_prefix",
    "static_prefix",
    "accept_paths",
    "reject_paths",
    "accept_hosts",
    "reject_methods",
    "disable_filter",
    "server_path",
    "credentials",
    "impersonate",
    "verbosity",
    "service_proxy",
    "cluster_domain",
    "service_cache_ttl_seconds",
    "apiserver_cluster",
    "cross_site_protection",
];

fn field_error(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        field: field.to_owned(),
        message: message.into(),
    }
}

// === impl Config ===

impl Default for Config {
    fn default() -> Self {
        Config::from_raw(RawConfig::default()).expect("kubectl defaults are valid")
    }
}

impl Config {
    /// Parses and validates the plugin JSON; empty input means all defaults.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Self::from_raw(RawConfig::default());
        }
        let raw: RawConfig = serde_json::from_slice(bytes).map_err(|e| diagnose(bytes, &e))?;
        Self::from_raw(raw)
    }

    /// Validates a raw configuration.
    pub fn from_raw(raw: RawConfig) -> Result<Self, ConfigError> {
        let api_prefix = prefix("api_prefix", raw.api_prefix.as_deref().unwrap_or("/"))?;
        let static_prefix = raw
            .static_prefix
            .as_deref()
            .map(|p| prefix("static_prefix", p))
            .transpose()?;
        if static_prefix.as_deref() == Some(api_prefix.as_str()) {
            return Err(field_error(
                "static_prefix",
                format!("conflicts with api_prefix {api_prefix:?}"),
            ));
        }
        let server_path = match raw.server_path.as_deref().unwrap_or("") {
            "" => String::new(),
            p if !p.starts_with('/') => {
                return Err(field_error(
                    "server_path",
                    "must be empty or start with '/'",
                ));
            }
            p if gourl::unescape_path(p).is_none() || !gourl::valid_encoded_path(p) => {
                return Err(field_error(
                    "server_path",
                    "is not a valid escaped URL path",
                ));
            }
            p if p.ends_with('/') => p.to_owned(),
            p => format!("{p}/"),
        };
        Ok(Self {
            api_prefix,
            static_prefix,
            accept_paths: patterns(
                "accept_paths",
                raw.accept_paths.as_ref(),
                DEFAULT_ACCEPT_PATHS,
            )?,
            reject_paths: patterns(
                "reject_paths",
                raw.reject_paths.as_ref(),
                DEFAULT_REJECT_PATHS,
            )?,
            accept_hosts: patterns(
                "accept_hosts",
                raw.accept_hosts.as_ref(),
                DEFAULT_ACCEPT_HOSTS,
            )?,
            reject_methods: patterns(
                "reject_methods",
                raw.reject_methods.as_ref(),
                DEFAULT_REJECT_METHODS,
            )?,
            disable_filter: raw.disable_filter.unwrap_or(false),
            server_path,
            credentials: raw.credentials.map(credentials).transpose()?,
            impersonate: raw.impersonate.map(impersonate).transpose()?,
            verbosity: raw.verbosity.unwrap_or(0),
            service_proxy: match raw.service_proxy.as_deref() {
                None | Some("apiserver") => ServiceProxy::ApiServer,
                Some("direct") => ServiceProxy::Direct,
                Some(other) => {
                    return Err(field_error(
                        "service_proxy",
                        format!("must be \"apiserver\" or \"direct\", not {other:?}"),
                    ));
                }
            },
            cluster_domain: cluster_domain(raw.cluster_domain.as_deref())?,
            service_cache_ttl_seconds: raw
                .service_cache_ttl_seconds
                .unwrap_or(DEFAULT_SERVICE_CACHE_TTL_SECONDS),
            apiserver_cluster: match raw.apiserver_cluster {
                None => DEFAULT_APISERVER_CLUSTER.to_owned(),
                Some(c) if c.is_empty() => {
                    return Err(field_error("apiserver_cluster", "must not be empty"));
                }
                Some(c) if !is_header_value(&c) || c.contains('\t') => {
                    return Err(field_error(
                        "apiserver_cluster",
                        "must not contain control characters",
                    ));
                }
                Some(c) => c,
            },
            cross_site_protection: raw.cross_site_protection.unwrap_or(false),
        })
    }
}

/// `cluster_domain`: a DNS name (letters, digits, `-`, dot-separated labels of 1–63 characters,
/// at most 253 in all), without a leading or trailing dot.
fn cluster_domain(value: Option<&str>) -> Result<String, ConfigError> {
    let Some(value) = value else {
        return Ok(DEFAULT_CLUSTER_DOMAIN.to_owned());
    };
    let problem = if value.is_empty() {
        Some("must not be empty")
    } else if value.starts_with('.') || value.ends_with('.') {
        Some("must not start or end with '.'")
    } else if value.len() > 253 {
        Some("is longer than 253 characters")
    } else if value.split('.').any(|label| {
        label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    }) {
        Some(
            "is not a DNS name (dot-separated labels of 1-63 letters, digits or '-', \
             not starting or ending with '-')",
        )
    } else {
        None
    };
    match problem {
        Some(p) => Err(field_error("cluster_domain", format!("{value:?} {p}"))),
        None => Ok(value.to_owned()),
    }
}

/// Normalises a mux prefix like kubectl (trailing `/` appended) and rejects what Go's `ServeMux`
/// would refuse or never match.
fn prefix(field: &str, value: &str) -> Result<String, ConfigError> {
    if !value.starts_with('/') {
        return Err(field_error(field, format!("{value:?} must start with '/'")));
    }
    let p = if value.ends_with('/') {
        value.to_owned()
    } else {
        format!("{value}/")
    };
    if p.bytes()
        .any(|b| b <= b' ' || b == 0x7f || matches!(b, b'{' | b'}' | b'?' | b'#'))
    {
        return Err(field_error(
            field,
            format!(
                "{value:?} must not contain spaces, control characters, '{{', '}}', '?' or '#'"
            ),
        ));
    }
    if gourl::clean_path(&p) != p {
        return Err(field_error(
            field,
            format!("{value:?} is not a clean path (no '//', '.' or '..' segments)"),
        ));
    }
    Ok(p)
}

fn patterns(
    field: &'static str,
    value: Option<&Vec<String>>,
    default: &[&str],
) -> Result<PatternList, ConfigError> {
    let result = match value {
        Some(list) => PatternList::new(list),
        None => PatternList::new(default),
    };
    result.map_err(|(index, error)| ConfigError::Pattern {
        field,
        index,
        pattern: value
            .and_then(|l| l.get(index).cloned())
            .unwrap_or_default(),
        error,
    })
}

fn credentials(raw: RawCredentials) -> Result<CredentialsConfig, ConfigError> {
    let static_credentials = match (raw.token, raw.basic) {
        (Some(_), Some(_)) => {
            return Err(field_error(
                "credentials",
                "token and basic are mutually exclusive",
            ));
        }
        (Some(token), None) => Some(Credentials::Token(token)),
        (None, Some(RawBasic { username, password })) => {
            Some(Credentials::Basic { username, password })
        }
        (None, None) => None,
    };
    if let Some(creds) = &static_credentials {
        creds
            .validate()
            .map_err(|(f, m)| field_error(&format!("credentials.{f}"), m))?;
    }
    match raw.shared_data_key.as_deref() {
        Some("") => Err(field_error(
            "credentials.shared_data_key",
            "must not be empty",
        )),
        None if static_credentials.is_none() => Err(field_error(
            "credentials",
            "one of token, basic or shared_data_key is required",
        )),
        _ => Ok(CredentialsConfig {
            static_credentials,
            shared_data_key: raw.shared_data_key,
        }),
    }
}

fn impersonate(raw: RawImpersonate) -> Result<Impersonate, ConfigError> {
    let check = |field: &str, v: &str| {
        if is_header_value(v) {
            Ok(())
        } else {
            Err(field_error(field, "must not contain control characters"))
        }
    };
    check("impersonate.user", &raw.user)?;
    check("impersonate.uid", &raw.uid)?;
    for (i, g) in raw.groups.iter().enumerate() {
        check(&format!("impersonate.groups[{i}]"), g)?;
    }
    for (key, values) in &raw.extra {
        if key.is_empty() {
            return Err(field_error("impersonate.extra", "keys must not be empty"));
        }
        for v in values {
            check(&format!("impersonate.extra.{key}"), v)?;
        }
    }
    if raw.user.is_empty() && raw.uid.is_empty() && raw.groups.is_empty() && raw.extra.is_empty() {
        return Err(field_error(
            "impersonate",
            "must set user, groups, uid or extra",
        ));
    }
    Ok(Impersonate {
        user: raw.user,
        groups: raw.groups,
        uid: raw.uid,
        extra: raw.extra,
    })
}

/// Finds which field made `serde_json` fail, so the message names it.
fn diagnose(bytes: &[u8], original: &serde_json::Error) -> ConfigError {
    let value: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return ConfigError::Json(e.to_string()),
    };
    let Some(map) = value.as_object() else {
        return ConfigError::NotAnObject;
    };
    for (key, v) in map {
        let result = match key.as_str() {
            "api_prefix" | "static_prefix" | "server_path" | "service_proxy" | "cluster_domain"
            | "apiserver_cluster" => try_field::<Option<String>>(v),
            "accept_paths" | "reject_paths" | "accept_hosts" | "reject_methods" => {
                try_field::<Option<Vec<String>>>(v)
            }
            "disable_filter" | "cross_site_protection" => try_field::<Option<bool>>(v),
            "service_cache_ttl_seconds" => try_field::<Option<u64>>(v),
            "credentials" => try_field::<Option<RawCredentials>>(v),
            "impersonate" => try_field::<Option<RawImpersonate>>(v),
            "verbosity" => try_field::<Option<u32>>(v),
            _ => return ConfigError::UnknownField(key.clone()),
        };
        if let Err(message) = result {
            return field_error(key, message);
        }
    }
    ConfigError::Json(original.to_string())
}

fn try_field<T: DeserializeOwned>(v: &serde_json::Value) -> Result<(), String> {
    T::deserialize(v).map(drop).map_err(|e| e.to_string())
}
