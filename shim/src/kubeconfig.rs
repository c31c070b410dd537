//! The target cluster as kubectl resolves it (client-go `clientcmd`): kubeconfig loading and
//! merging, context/cluster/user selection with command-line overrides, validation with
//! kubectl's messages, in-cluster configuration, and the rustls client configuration.
//!
//! It produces plain data ([`Target`]); it must not run exec plugins, re-read token files or
//! open connections (that is `credentials.rs` and the upstream module).

mod file;
mod resolve;
mod tls;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use tls::{PemSource, insecure_verifier, server_name};

/// The API server to forward to.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// `scheme://host:port` (path removed, default port made explicit).
    pub server: http::Uri,
    /// The kubeconfig server URL's path (`""` if none or `/`), for `--append-server-path`.
    pub server_path: String,
    /// `host[:port]` exactly as in the server URL: the upstream `Host` header.
    pub host_header: String,
    /// Client TLS configuration for an `https` server (CA, client certificate, insecure, ALPN
    /// `http/1.1`); `None` for `http`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The name the server certificate is verified against (`tls-server-name` or the host).
    pub tls_server_name: rustls_pki_types::ServerName<'static>,
}

/// The kubectl global flags that select and override kubeconfig entries (`clientcmd`
/// `ConfigOverrides`). Empty strings mean "not set".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--context`.
    pub context: String,
    /// `--cluster`.
    pub cluster: String,
    /// `--user`.
    pub user: String,
    /// `-s/--server`.
    pub server: String,
    /// `--certificate-authority`.
    pub certificate_authority: String,
    /// `--insecure-skip-tls-verify`.
    pub insecure_skip_tls_verify: bool,
    /// `--tls-server-name`.
    pub tls_server_name: String,
    /// `--token`.
    pub token: String,
    /// `--username`.
    pub username: String,
    /// `--password`.
    pub password: String,
    /// `--client-certificate`.
    pub client_certificate: String,
    /// `--client-key`.
    pub client_key: String,
    /// `--as`.
    pub as_user: String,
    /// `--as-group` (repeatable).
    pub as_groups: Vec<String>,
    /// `--as-uid`.
    pub as_uid: String,
}

/// The process environment the resolution depends on (injectable for tests).
#[derive(Clone, Debug, Default)]
pub struct Env {
    /// `$KUBECONFIG` (a `:`-separated list).
    pub kubeconfig: Option<String>,
    /// `$HOME`, for `~/.kube/config`.
    pub home: Option<PathBuf>,
    /// `$KUBERNETES_MASTER`, the default server when nothing is configured.
    pub kubernetes_master: Option<String>,
    /// `$KUBERNETES_SERVICE_HOST` (in-cluster).
    pub service_host: Option<String>,
    /// `$KUBERNETES_SERVICE_PORT` (in-cluster).
    pub service_port: Option<String>,
    /// The service-account directory holding `token` and `ca.crt`:
    /// `$KPROXY_SERVICEACCOUNT_DIR`, else `/var/run/secrets/kubernetes.io/serviceaccount`.
    pub service_account_dir: PathBuf,
}

impl Env {
    /// The environment variable that overrides the in-cluster service-account directory
    /// (used by tests; `kubectl` has no such override).
    pub const SERVICE_ACCOUNT_DIR_VAR: &'static str = "KPROXY_SERVICEACCOUNT_DIR";

    /// Reads the real process environment.
    pub fn from_process() -> Self {
        let var = |name: &str| std::env::var(name).ok();
        Self {
            kubeconfig: var("KUBECONFIG"),
            home: std::env::var_os("HOME").map(PathBuf::from),
            kubernetes_master: var("KUBERNETES_MASTER"),
            service_host: var("KUBERNETES_SERVICE_HOST"),
            service_port: var("KUBERNETES_SERVICE_PORT"),
            service_account_dir: std::env::var_os(Self::SERVICE_ACCOUNT_DIR_VAR).map_or_else(
                || PathBuf::from("/var/run/secrets/kubernetes.io/serviceaccount"),
                PathBuf::from,
            ),
        }
    }
}

/// Where the bearer/basic credential comes from (only for an `https` server).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialSource {
    /// No credential header.
    None,
    /// `token` / `--token`.
    Token(String),
    /// `tokenFile` (also in-cluster): re-read periodically; `initial` is the kubeconfig `token`
    /// when both are set, else the file's content read at start-up.
    TokenFile {
        /// The file.
        path: PathBuf,
        /// The token to use until the first refresh.
        initial: String,
    },
    /// `username`/`password`.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// An exec credential plugin.
    Exec(ExecConfig),
}

/// A kubeconfig `exec` credential plugin.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecConfig {
    /// The command (a `$PATH` name or a path).
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// `client.authentication.k8s.io/v1` or `…/v1beta1`.
    pub api_version: String,
    /// Shown when the command is not found.
    pub install_hint: String,
    /// `provideClusterInfo`: add the cluster to `KUBERNETES_EXEC_INFO`.
    pub provide_cluster_info: bool,
    /// The cluster's server URL (for `provideClusterInfo`).
    pub cluster_server: String,
    /// The cluster's `tls-server-name` (for `provideClusterInfo`).
    pub cluster_tls_server_name: String,
    /// The cluster's `insecure-skip-tls-verify` (for `provideClusterInfo`).
    pub cluster_insecure: bool,
    /// The cluster's CA bundle, PEM (for `provideClusterInfo`).
    pub cluster_ca_data: Vec<u8>,
}

/// Impersonation settings (`--as`, `--as-group`, `--as-uid`, kubeconfig `as*`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Impersonate {
    /// `Impersonate-User`.
    pub user: String,
    /// `Impersonate-Group`, one each.
    pub groups: Vec<String>,
    /// `Impersonate-Uid`.
    pub uid: String,
    /// `Impersonate-Extra-<key>`.
    pub extra: BTreeMap<String, Vec<String>>,
}

/// Everything resolved about the target cluster.
#[derive(Clone, Debug)]
pub struct Target {
    /// Where to connect and how.
    pub cluster: Cluster,
    /// Bearer/basic credential source (always `None` for `http`).
    pub credential: CredentialSource,
    /// Impersonation (always `None` for `http`).
    pub impersonate: Option<Impersonate>,
    /// The kubeconfig `disable-compression` of the cluster.
    pub disable_compression: bool,
    /// True when the in-cluster configuration was used.
    pub in_cluster: bool,
    /// Where the TLS material came from (`None` for `http`), for hosts that load it themselves
    /// (`shim envoy-bootstrap`).
    pub tls_material: Option<TlsMaterial>,
}

/// The kubeconfig's TLS settings as sources (files stay files, `*-data` stays inline).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsMaterial {
    /// `certificate-authority(-data)`; `None` = the system bundle.
    pub ca: Option<PemSource>,
    /// `client-certificate(-data)`.
    pub cert: Option<PemSource>,
    /// `client-key(-data)`.
    pub key: Option<PemSource>,
    /// `insecure-skip-tls-verify`.
    pub insecure: bool,
}

/// Errors resolving the target cluster; messages are kubectl's.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KubeconfigError {
    /// A kubeconfig file could not be read or parsed.
    #[error("{0}")]
    Load(String),
    /// The `--kubeconfig` file does not exist (kubectl reports it as `Error: stat …`).
    #[error("{0}")]
    Missing(String),
    /// `--context` (or current-context) names a missing context.
    #[error("context {0:?} does not exist")]
    ContextNotFound(String),
    /// `--user` (or the context's user) names a missing user.
    #[error("auth info {0:?} does not exist")]
    AuthInfoNotFound(String),
    /// `--cluster` (or the context's cluster) names a missing cluster.
    #[error("cluster {0:?} does not exist")]
    ClusterNotFound(String),
    /// clientcmd validation failed (one entry per problem).
    #[error("{}", invalid_text(.0))]
    Invalid(Vec<String>),
    /// The server URL cannot be used.
    #[error("{0}")]
    Server(String),
    /// The TLS material cannot be loaded.
    #[error("{0}")]
    Tls(String),
    /// A token file cannot be read at start-up, or token and basic auth are both set.
    #[error("{0}")]
    Credentials(String),
}

impl KubeconfigError {
    /// True when kubectl prints this as an `Error in configuration:` list rather than
    /// `error: <msg>`.
    pub fn is_configuration_list(&self) -> bool {
        matches!(self, Self::Invalid(list) if list.len() > 1)
    }
}

fn invalid_text(list: &[String]) -> String {
    match list {
        [one] => one.clone(),
        many => {
            let mut text = String::from("Error in configuration: ");
            for item in many {
                text.push_str("\n* ");
                text.push_str(item);
            }
            text
        }
    }
}

/// Resolves the target cluster: loads `explicit` (`--kubeconfig`) or `$KUBECONFIG` or
/// `~/.kube/config`, applies `overrides`, validates, falls back to in-cluster configuration,
/// and builds the TLS configuration.
pub fn load(explicit: &str, overrides: &Overrides, env: &Env) -> Result<Target, KubeconfigError> {
    let merged = file::load(&file::file_list(explicit, env))?;
    resolve::resolve(&merged, overrides, env)
}

/// Go's `*PathError` text: `open /x: no such file or directory`.
pub(crate) fn go_os_error(op: &str, path: &Path, err: &std::io::Error) -> String {
    format!("{op} {}: {}", path.display(), go_errno_text(err))
}

/// Go's text for an OS error (`no such file or directory`, `permission denied`, …).
pub(crate) fn go_errno_text(err: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match err.kind() {
        K::NotFound => "no such file or directory".to_owned(),
        K::PermissionDenied => "permission denied".to_owned(),
        K::IsADirectory => "is a directory".to_owned(),
        K::NotADirectory => "not a directory".to_owned(),
        _ => {
            let text = err.to_string();
            let text = text.split(" (os error").next().unwrap_or_default();
            let mut chars = text.chars();
            chars
                .next()
                .map_or_else(String::new, |c| c.to_lowercase().chain(chars).collect())
        }
    }
}
