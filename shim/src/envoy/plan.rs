//! The [`Plan`]: everything the bootstrap needs, already resolved (addresses looked up, paths
//! absolute, credentials in the form Envoy can carry), plus the steps that build it from the
//! shim's settings: the listener address with Go's `net.Listen` rules, the upstream endpoint
//! and TLS from the kubeconfig, and the credential placement.
//!
//! It may look up a host name and run an exec plugin; it must not render YAML or write files.

use crate::server::{resolve, split_host};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use crate::cli::{ConnectTo, Listen, bracketed};
use crate::credentials::Credentials;
use crate::kubeconfig::{Cluster, CredentialSource, PemSource, TlsMaterial};

use super::EnvoyError;

/// Everything the bootstrap is rendered from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The proxy listener.
    pub listener: ListenerAddr,
    /// Envoy's admin interface (`None` = none).
    pub admin: Option<SocketAddr>,
    /// The absolute path of `kproxy_filter.wasm`.
    pub wasm_path: PathBuf,
    /// The plugin configuration JSON, verbatim.
    pub plugin_config: String,
    /// `--www` is set: route `static` to a 501 local reply.
    pub static_files: bool,
    /// The API server.
    pub upstream: Upstream,
    /// A token file injected by `credential_injector` through file SDS.
    pub token_file: Option<TokenFile>,
    /// The plugin configuration carries a credential (the output must stay private).
    pub contains_secret: bool,
    /// `--service-proxy=direct`: routes and clusters for in-cluster services.
    pub services: Option<Services>,
}

/// Direct service-proxy mode: the filter routes service URLs with `x-kproxy-upstream:
/// service-http|service-https` and `:authority` = `name.ns.svc.domain:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Services {
    /// The `--connect-to` entries, in command-line order (first match wins).
    pub connect_to: Vec<ConnectRoute>,
}

/// One `--connect-to` entry as Envoy routes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectRoute {
    /// The entry as given (curl syntax), for names and comments.
    pub entry: String,
    /// Which `:authority` values it applies to.
    pub authority: AuthorityMatch,
    /// Where it connects; `None` = where the authority names (HOST2 and PORT2 both empty).
    pub target: Option<(String, u16)>,
}

/// A match on the `:authority` the filter set (always `host:port`, IPv6 in brackets), ignoring
/// case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthorityMatch {
    /// HOST1 and PORT1 given: `host:port` exactly.
    Exact(String),
    /// Only HOST1: `host:` followed by any port.
    Host(String),
    /// Only PORT1: any host followed by `:port`.
    Port(u16),
    /// Neither: every authority.
    Any,
}

/// Where the proxy listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenerAddr {
    /// A TCP address; `dual_stack` for Go's wildcard (`::` accepting IPv4 too).
    Tcp {
        /// The address bound.
        addr: SocketAddr,
        /// `ipv4_compat` on `::`.
        dual_stack: bool,
    },
    /// A unix socket (mode 0600).
    Unix(PathBuf),
}

/// The API server endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// Host name or IP address (no brackets).
    pub host: String,
    /// Port (the scheme default made explicit).
    pub port: u16,
    /// The `Host` header sent upstream (kubeconfig server `host[:port]` as written).
    pub host_header: String,
    /// TLS for an `https` server.
    pub tls: Option<UpstreamTls>,
}

/// Upstream TLS settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamTls {
    /// SNI (`None` for an IP address, as Go sends none).
    pub sni: Option<String>,
    /// Certificate verification: trusted CA and the expected SAN; `None` = insecure.
    pub verify: Option<(Pem, San)>,
    /// Client certificate chain and key.
    pub client: Option<(Pem, Pem)>,
}

/// PEM material: a file Envoy reads, or inline bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pem {
    /// An absolute file path.
    File(PathBuf),
    /// Inline PEM.
    Inline(Vec<u8>),
}

/// The subject alternative name the server certificate must carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum San {
    /// A DNS name (Envoy honours wildcard certificates).
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
}

/// A bearer token file Envoy injects itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenFile {
    /// The token file (absolute); its directory is watched.
    pub token_path: PathBuf,
    /// Where the SDS resource file is written (next to the bootstrap).
    pub sds_path: PathBuf,
}

/// Where the credential goes in Envoy.
#[derive(Clone, Debug, PartialEq)]
pub enum Credential {
    /// No credential.
    None,
    /// Inline in the plugin JSON (`{"token": …}` or `{"basic": {…}}`).
    Inline(serde_json::Value),
    /// Injected by Envoy from this file.
    TokenFile(PathBuf),
}

/// Places the kubeconfig credential. Exec plugins are run once now and their token inlined.
pub(super) fn credential(
    source: &CredentialSource,
    warn: &mut dyn FnMut(String),
) -> Result<Credential, EnvoyError> {
    Ok(match source {
        CredentialSource::None => Credential::None,
        CredentialSource::Token(token) => Credential::Inline(serde_json::json!({ "token": token })),
        CredentialSource::Basic { username, password } => Credential::Inline(
            serde_json::json!({ "basic": { "username": username, "password": password } }),
        ),
        CredentialSource::TokenFile { path, .. } => Credential::TokenFile(path.clone()),
        CredentialSource::Exec(config) => {
            let credentials = Credentials::new(source.clone());
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| EnvoyError::Exec(e.to_string()))?;
            runtime
                .block_on(credentials.ensure_fresh())
                .map_err(|e| EnvoyError::Exec(e.to_string()))?;
            let value: serde_json::Value = serde_json::from_slice(&credentials.current_json())
                .map_err(|e| EnvoyError::Exec(e.to_string()))?;
            if value.get("token").is_none() {
                warn(format!(
                    "the exec plugin {} returned no token; Envoy gets no credential",
                    config.command
                ));
                return Ok(Credential::None);
            }
            warn(format!(
                "the token of the exec plugin {} is written into the bootstrap and never refreshed: Envoy's requests fail once it expires; re-run envoy-bootstrap then",
                config.command
            ));
            Credential::Inline(value)
        }
    })
}

/// The plugin JSON for Envoy: the shim's, with `credentials.shared_data_key` (which only the
/// shim fills) replaced by the inline credential or removed. A configuration without the
/// shim's key (a `--filter-config` of the user's) is kept verbatim and gets no credential.
/// Returns the text and the credential Envoy must still provide.
pub(super) fn plugin_config(
    text: &str,
    credential: Credential,
) -> Result<(String, Credential), EnvoyError> {
    let Ok(mut json) = serde_json::from_str::<serde_json::Value>(text) else {
        return Ok((text.to_owned(), Credential::None));
    };
    let managed = json
        .pointer("/credentials/shared_data_key")
        .and_then(serde_json::Value::as_str)
        == Some(Credentials::SHARED_DATA_KEY);
    if !managed {
        return Ok((text.to_owned(), Credential::None));
    }
    let object = json
        .as_object_mut()
        .ok_or_else(|| EnvoyError::PluginConfig("not a JSON object".to_owned()))?;
    match &credential {
        Credential::Inline(value) => {
            object.insert("credentials".to_owned(), value.clone());
        }
        Credential::None | Credential::TokenFile(_) => {
            object.remove("credentials");
        }
    }
    let text =
        serde_json::to_string_pretty(&json).map_err(|e| EnvoyError::PluginConfig(e.to_string()))?;
    Ok((text, credential))
}

/// The listener with Go's `net.Listen("tcp", address:port)` rules (as the shim binds it):
/// `net.SplitHostPort` (so `::1` needs brackets), empty or unspecified = dual-stack wildcard,
/// a host name = its first IPv4 address (else the first one).
pub(super) fn listener(listen: &Listen) -> Result<ListenerAddr, String> {
    let (address, port) = match listen {
        Listen::Unix(path) => return Ok(ListenerAddr::Unix(path.clone())),
        Listen::Tcp { address, port } => (address.as_str(), *port),
    };
    // The same Go address rules as the shim's own listener, with its error texts.
    let host = split_host(address, port).map_err(|e| e.to_string())?;
    let addr = resolve(&host, port).map_err(|e| e.to_string())?;
    Ok(if addr.ip().is_unspecified() {
        wildcard(port)
    } else {
        ListenerAddr::Tcp {
            addr,
            dual_stack: false,
        }
    })
}

fn wildcard(port: u16) -> ListenerAddr {
    ListenerAddr::Tcp {
        addr: SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
        dual_stack: true,
    }
}

/// The API server endpoint and TLS settings. `system_roots` finds the CA bundle used when the
/// kubeconfig names none (Envoy verifies nothing without one).
pub(super) fn upstream(
    cluster: &Cluster,
    material: Option<&TlsMaterial>,
    system_roots: impl FnOnce() -> Option<PathBuf>,
) -> Result<Upstream, EnvoyError> {
    let host = cluster
        .server
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let https = cluster.server.scheme_str() == Some("https");
    let port = cluster
        .server
        .port_u16()
        .unwrap_or(if https { 443 } else { 80 });
    let tls = match (https, material) {
        (true, Some(material)) => Some(upstream_tls(cluster, material, system_roots)?),
        _ => None,
    };
    Ok(Upstream {
        host,
        port,
        host_header: cluster.host_header.clone(),
        tls,
    })
}

fn upstream_tls(
    cluster: &Cluster,
    material: &TlsMaterial,
    system_roots: impl FnOnce() -> Option<PathBuf>,
) -> Result<UpstreamTls, EnvoyError> {
    let (sni, san) = match &cluster.tls_server_name {
        rustls_pki_types::ServerName::IpAddress(ip) => (None, San::Ip(IpAddr::from(*ip))),
        name => {
            let text = name.to_str().into_owned();
            (Some(text.clone()), San::Dns(text))
        }
    };
    let verify = if material.insecure {
        None
    } else {
        let ca = match &material.ca {
            Some(source) => pem(source),
            None => Pem::File(system_roots().ok_or(EnvoyError::NoSystemRoots)?),
        };
        Some((ca, san))
    };
    let client = match (&material.cert, &material.key) {
        (Some(cert), Some(key)) => Some((pem(cert), pem(key))),
        _ => None,
    };
    Ok(UpstreamTls {
        sni,
        verify,
        client,
    })
}

fn pem(source: &PemSource) -> Pem {
    match source {
        PemSource::File(path) => Pem::File(std::path::absolute(path).unwrap_or(path.clone())),
        PemSource::Data(data) => Pem::Inline(data.clone()),
    }
}

/// The `--connect-to` entries as routes. An entry whose HOST2 (or PORT2) is empty keeps the
/// request's host (port); Envoy's static clusters can only do that when HOST1 (PORT1) fixes it,
/// or when both are empty (the entry then goes to the dynamic forward proxy unchanged).
pub(super) fn connect_routes(entries: &[ConnectTo]) -> Result<Vec<ConnectRoute>, EnvoyError> {
    entries
        .iter()
        .map(|c| {
            let from_host = (!c.from_host.is_empty()).then(|| bracketed(&c.from_host));
            let authority = match (&from_host, c.from_port) {
                (Some(host), Some(port)) => AuthorityMatch::Exact(format!("{host}:{port}")),
                (Some(host), None) => AuthorityMatch::Host(host.clone()),
                (None, Some(port)) => AuthorityMatch::Port(port),
                (None, None) => AuthorityMatch::Any,
            };
            let to_host = if c.to_host.is_empty() {
                (!c.from_host.is_empty()).then(|| c.from_host.clone())
            } else {
                Some(c.to_host.clone())
            };
            let to_port = c.to_port.or(c.from_port);
            let target = match (to_host, to_port) {
                (Some(host), Some(port)) => Some((host, port)),
                _ if c.to_host.is_empty() && c.to_port.is_none() => None,
                _ => {
                    return Err(EnvoyError::ConnectTo(format!(
                        "--connect-to {c}: Envoy cannot keep the request's {} with a static cluster; name HOST2 and PORT2 (or HOST1 and PORT1)",
                        if c.to_host.is_empty() { "host" } else { "port" }
                    )));
                }
            };
            Ok(ConnectRoute {
                entry: c.to_string(),
                authority,
                target,
            })
        })
        .collect()
}
