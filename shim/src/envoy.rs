//! `shim envoy-bootstrap [kubectl proxy flags]`: an Envoy v3 bootstrap (YAML) that runs the same
//! `kproxy_filter.wasm` with the same plugin configuration as `shim` with those flags, so Envoy
//! behaves like `kubectl proxy` as far as Envoy can.
//!
//! Choices (verified on Envoy 1.40):
//! * Output: stdout, or `--output FILE` (mode 0600). The module is not written: Envoy loads
//!   `--wasm-path`, else `--filter`, else `$KPROXY_FILTER_WASM`. Admin: `--envoy-admin-address`
//!   (default `127.0.0.1:0`; find the port with `envoy --admin-address-path FILE`) or
//!   `--envoy-admin-port`; an empty address leaves admin out.
//! * Credentials: the shim's `credentials.shared_data_key` is replaced. A token, basic auth or an
//!   exec plugin's token (the plugin is run once, with a warning: it is never refreshed) is
//!   inlined, so the bootstrap then holds a secret. A token file (also in-cluster) stays out of
//!   the wasm: `credential_injector` on the API-server cluster reads it through a file-SDS
//!   resource written next to `--output` (`<stem>.token-sds.yaml`, so a token file needs
//!   `--output`) with the token's directory watched (rotation by atomic rename, kubelet style).
//! * Differences from the shim: `--www` is not served (the filter's `static` route answers 501
//!   `kproxy: static files are served by shim only`); X-Forwarded-For is joined with `,` not
//!   `, `; a client's X-Forwarded-Proto is dropped (Envoy always sets one, kubectl adds none);
//!   TLS files are read once at start; Envoy's transport-error bodies differ (status 500 kept).
//!
//! This module is the glue: it turns the resolved [`Settings`] and [`Target`] into a [`Plan`]
//! (listener address lookup, wasm path, system CA bundle, credential placement), renders it
//! ([`render`], pure) and writes the files. It must not parse flags or kubeconfigs itself (that
//! is `cli` and `kubeconfig`), nor start Envoy.

mod plan;
mod render;

#[cfg(test)]
mod tests;

use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

pub use plan::{
    AuthorityMatch, ConnectRoute, Credential, ListenerAddr, Pem, Plan, San, Services, TokenFile,
    Upstream, UpstreamTls,
};
pub use render::{
    APISERVER_CLUSTER, NO_UPSTREAM_BODY, Rendered, SERVICES_HTTP_CLUSTER, SERVICES_HTTPS_CLUSTER,
    STATIC_BODY, SdsFile, TOKEN_SECRET, render,
};

use crate::cli::{ServiceProxy, Settings};
use crate::kubeconfig::Target;

/// The first positional argument that selects this subcommand.
pub const SUBCOMMAND: &str = "envoy-bootstrap";

/// The environment variable naming the filter file when neither `--wasm-path` nor `--filter`
/// is given (the justfile exports it).
pub const WASM_ENV: &str = "KPROXY_FILTER_WASM";

/// The flags only `envoy-bootstrap` has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvoyFlags {
    /// `--output FILE`: write there (mode 0600) instead of stdout.
    pub output: Option<PathBuf>,
    /// `--wasm-path FILE`: the module Envoy loads.
    pub wasm_path: Option<PathBuf>,
    /// `--envoy-admin-address` (+ `--envoy-admin-port`); `None` = no admin interface.
    pub admin: Option<SocketAddr>,
}

/// Why no bootstrap could be made.
#[derive(Debug, thiserror::Error)]
pub enum EnvoyError {
    /// No module path: Envoy needs the filter as a file.
    #[error(
        "envoy-bootstrap needs the filter as a file: pass --wasm-path PATH (e.g. target/wasm32-wasip1/wasm/kproxy_filter.wasm), --filter PATH or set ${WASM_ENV}"
    )]
    NoWasmPath,
    /// The listen address cannot be used.
    #[error("{0}")]
    Listen(String),
    /// A token-file credential needs its SDS file on disk.
    #[error(
        "the credential is a token file ({0}): Envoy reads it through an SDS file, so envoy-bootstrap needs --output FILE (the SDS file is written next to it)"
    )]
    NeedsOutput(PathBuf),
    /// No CA was configured and no system bundle was found.
    #[error(
        "no certificate-authority in the kubeconfig and no system CA bundle found (set SSL_CERT_FILE or --certificate-authority)"
    )]
    NoSystemRoots,
    /// The exec credential plugin failed.
    #[error("{0}")]
    Exec(String),
    /// The plugin configuration is not a JSON object (only checked when credentials must be
    /// rewritten).
    #[error("plugin configuration: {0}")]
    PluginConfig(String),
    /// A `--connect-to` entry Envoy cannot express.
    #[error("{0}")]
    ConnectTo(String),
    /// Writing the output failed.
    #[error("{0}")]
    Write(String),
}

/// Makes the plan from resolved settings; `warn` receives messages for stderr.
pub fn plan(
    flags: &EnvoyFlags,
    settings: &Settings,
    target: &Target,
    filter: Option<&Path>,
    warn: &mut dyn FnMut(String),
) -> Result<Plan, EnvoyError> {
    let wasm_path = flags
        .wasm_path
        .clone()
        .or_else(|| filter.map(Path::to_path_buf))
        .or_else(|| {
            std::env::var_os(WASM_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .ok_or(EnvoyError::NoWasmPath)?;
    let wasm_path = absolute(&wasm_path);
    if !wasm_path.is_file() {
        warn(format!(
            "the filter {} does not exist (yet); Envoy will refuse to start without it",
            wasm_path.display()
        ));
    }
    let credential = plan::credential(&target.credential, warn)?;
    let (plugin_config, credential) = plan::plugin_config(&settings.plugin_config, credential)?;
    let token_file = match &credential {
        Credential::TokenFile(token) => {
            let output = flags
                .output
                .as_deref()
                .ok_or_else(|| EnvoyError::NeedsOutput(token.clone()))?;
            Some(TokenFile {
                token_path: absolute(token),
                sds_path: sds_path(&absolute(output)),
            })
        }
        _ => None,
    };
    if settings.www.is_some() {
        warn(
            "Envoy cannot serve --www: requests under --www-prefix get 501 from Envoy (static files are served by shim only)".to_owned(),
        );
    }
    Ok(Plan {
        listener: plan::listener(&settings.listen).map_err(EnvoyError::Listen)?,
        admin: flags.admin,
        wasm_path,
        plugin_config,
        static_files: settings.www.is_some(),
        upstream: plan::upstream(
            &settings.cluster,
            target.tls_material.as_ref(),
            system_roots,
        )?,
        token_file,
        contains_secret: matches!(credential, Credential::Inline(_)),
        services: match settings.service_proxy {
            ServiceProxy::ApiServer => None,
            ServiceProxy::Direct => Some(Services {
                connect_to: plan::connect_routes(&settings.connect_to)?,
            }),
        },
    })
}

/// Renders `plan` and writes the bootstrap (and SDS file) to `output`, or prints it.
pub fn write(plan: &Plan, output: Option<&Path>) -> Result<(), EnvoyError> {
    let rendered = render(plan);
    let Some(output) = output else {
        print!("{}", rendered.bootstrap);
        return Ok(());
    };
    if let Some(sds) = &rendered.sds {
        write_private(&sds.path, &sds.yaml)?;
    }
    write_private(output, &rendered.bootstrap)
}

/// Writes `text` to `path` with mode 0600 (the bootstrap may hold a credential).
fn write_private(path: &Path, text: &str) -> Result<(), EnvoyError> {
    let fail =
        |e: &std::io::Error| EnvoyError::Write(crate::kubeconfig::go_os_error("open", path, e));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| fail(&e))?;
    // An existing file keeps its mode on open; tighten it.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| fail(&e))?;
    file.write_all(text.as_bytes()).map_err(|e| fail(&e))
}

/// `envoy.yaml` → `envoy.token-sds.yaml` in the same directory.
pub fn sds_path(output: &Path) -> PathBuf {
    let stem = output
        .file_stem()
        .map_or_else(|| "envoy".into(), |s| s.to_string_lossy().into_owned());
    output.with_file_name(format!("{stem}.token-sds.yaml"))
}

/// `path` made absolute against the current directory (Envoy may run elsewhere).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The system CA bundle file Envoy should trust when the kubeconfig names no CA (the same
/// candidates as the shim's rustls configuration).
fn system_roots() -> Option<PathBuf> {
    std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            [
                "/etc/ssl/certs/ca-certificates.crt",
                "/etc/pki/tls/certs/ca-bundle.crt",
                "/etc/ssl/ca-bundle.pem",
                "/etc/ssl/cert.pem",
            ]
            .map(PathBuf::from),
        )
        .find(|p| p.is_file())
}
