//! `kubectl proxy`-compatible command line: the raw [`Flags`] (pflag parsing, Go value syntax,
//! kubectl's error texts), their resolution into [`Settings`] (kubeconfig, warnings, checks in
//! kubectl's order), and the plugin configuration JSON handed to the filter
//! ([`plugin_config`]).
//!
//! It must not bind sockets or start the wasm VM; printing is left to `main.rs`.

mod direct;
mod goparse;
mod help;
mod klog;
mod spec;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use direct::{ConnectTo, ServiceProxy, bracketed};
pub use klog::klog_line;

use crate::credentials::Credentials;
use crate::kubeconfig::{self, CredentialSource, Env, KubeconfigError, Overrides, Target};

/// Where the proxy listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    /// `--address:--port` (the address as given, not bracketed; Go's `net.Listen` rules).
    Tcp {
        /// `--address`.
        address: String,
        /// `--port` (0 = the OS picks).
        port: u16,
    },
    /// `--unix-socket`.
    Unix(PathBuf),
}

/// `--www` and `--www-prefix`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticFiles {
    /// The directory served.
    pub dir: PathBuf,
    /// The mount point, with a trailing `/`.
    pub prefix: String,
}

/// Which proxy-wasm module runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterSource {
    /// The kproxy filter embedded at build time ([`crate::DEFAULT_FILTER`]).
    Embedded,
    /// `--filter PATH`.
    Path(PathBuf),
}

/// Everything the server needs to run.
#[derive(Debug)]
pub struct Settings {
    /// Listener.
    pub listen: Listen,
    /// Static files, if `--www` is set.
    pub www: Option<StaticFiles>,
    /// The wasm module.
    pub filter: FilterSource,
    /// JSON handed to the filter (or the `--filter-config` text).
    pub plugin_config: String,
    /// Upgrade-connection TCP keep-alive; `None` = off (`--keepalive` ≤ 0, deviation (c)).
    pub keepalive: Option<Duration>,
    /// `--disable-compression` (or the kubeconfig's `disable-compression`).
    pub disable_compression: bool,
    /// klog `-v`.
    pub verbosity: u8,
    /// The API server.
    pub cluster: Arc<kubeconfig::Cluster>,
    /// The live credential.
    pub credentials: Arc<Credentials>,
    /// Worker threads.
    pub workers: usize,
    /// `--metrics-address`.
    pub metrics_address: Option<SocketAddr>,
    /// `--service-proxy`.
    pub service_proxy: ServiceProxy,
    /// `--cluster-domain` (validated DNS name).
    pub cluster_domain: String,
    /// `--service-cache-ttl` (whole seconds).
    pub service_cache_ttl: Duration,
    /// `--connect-to`, in the order given (first match wins).
    pub connect_to: Vec<ConnectTo>,
    /// `--cross-site-protection`.
    pub cross_site_protection: bool,
}

/// The parsed command line (values typed, nothing resolved yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flags {
    /// `-p/--port` (Go int; validated at listen).
    pub port: i64,
    /// `--address`.
    pub address: String,
    /// `-u/--unix-socket`.
    pub unix_socket: String,
    /// `--api-prefix`.
    pub api_prefix: String,
    /// `-w/--www`.
    pub www: String,
    /// `-P/--www-prefix`.
    pub www_prefix: String,
    /// `--accept-paths`, split on `,`.
    pub accept_paths: Vec<String>,
    /// `--reject-paths`, split on `,`.
    pub reject_paths: Vec<String>,
    /// `--accept-hosts`, split on `,`.
    pub accept_hosts: Vec<String>,
    /// `--reject-methods`, split on `,`.
    pub reject_methods: Vec<String>,
    /// `--disable-filter`.
    pub disable_filter: bool,
    /// `--keepalive` in nanoseconds.
    pub keepalive_nanos: i64,
    /// `--append-server-path`.
    pub append_server_path: bool,
    /// `--kubeconfig`.
    pub kubeconfig: String,
    /// Context/cluster/user selection and overrides.
    pub overrides: Overrides,
    /// `--disable-compression`.
    pub disable_compression: bool,
    /// `-v/--v`.
    pub verbosity: u32,
    /// `--filter`.
    pub filter: Option<PathBuf>,
    /// `--filter-config` (text or `@FILE`).
    pub filter_config: Option<String>,
    /// `--workers` (0 = one per core).
    pub workers: usize,
    /// `--metrics-address`.
    pub metrics_address: Option<SocketAddr>,
    /// `--print-plugin-config`.
    pub print_plugin_config: bool,
    /// `--service-proxy`.
    pub service_proxy: ServiceProxy,
    /// `--cluster-domain`.
    pub cluster_domain: String,
    /// `--service-cache-ttl` in whole seconds.
    pub service_cache_ttl_seconds: u64,
    /// `--connect-to` (repeatable).
    pub connect_to: Vec<ConnectTo>,
    /// `--cross-site-protection`.
    pub cross_site_protection: bool,
    /// `envoy-bootstrap` subcommand and its flags (`None` = run the proxy).
    pub envoy: Option<crate::envoy::EnvoyFlags>,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// `-h/--help`: print this text to stdout and exit 0.
    Help(String),
    /// Run (or print the plugin configuration) with these flags.
    Run(Box<Flags>),
}

/// A warning kubectl prints through klog (`W… proxy.go:NNN] text`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// kubectl's source location, for the klog header (`proxy.go:172`).
    pub location: &'static str,
    /// The text.
    pub text: String,
}

/// Command-line failures, each with kubectl's text and exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// pflag parse error: `Error: <msg>` + `See '… --help' for usage.`, exit 1.
    #[error("{0}")]
    Usage(String),
    /// Kubeconfig resolution failed: `error: <msg>` (or kubectl's configuration list), exit 1.
    #[error(transparent)]
    Kubeconfig(#[from] KubeconfigError),
    /// Invalid regular expression: klog fatal `Error compiling re: …`, exit 255.
    #[error("Error compiling re: {0}")]
    Regex(String),
    /// `--www-prefix` equals `--api-prefix` (kubectl panics in `ServeMux`), exit 2.
    #[error(
        "pattern {0:?} for --www-prefix conflicts with --api-prefix {0:?}: both match the same requests"
    )]
    PrefixConflict(String),
    /// Any other fatal error: `error: <msg>`, exit 1.
    #[error("{0}")]
    Fatal(String),
}

impl CliError {
    /// The process exit code kubectl uses for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Usage(_) | Self::Kubeconfig(_) | Self::Fatal(_) => 1,
            Self::Regex(_) => 255,
            Self::PrefixConflict(_) => 2,
        }
    }
}

/// Parses the arguments (without the program name).
pub fn parse<I, T>(args: I) -> Result<Command, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let raw = spec::tokenize(args).map_err(CliError::Usage)?;
    if raw.help {
        return Ok(Command::Help(help::render()));
    }
    Flags::from_raw(&raw).map(|f| Command::Run(Box::new(f)))
}

/// kubectl's `MakeRegexpArray` split: every `,`, no escaping; `""` is the empty list.
pub fn split_list(value: &str) -> Vec<String> {
    if value.is_empty() {
        Vec::new()
    } else {
        value.split(',').map(str::to_owned).collect()
    }
}

// === impl Flags ===

impl Flags {
    fn from_raw(raw: &spec::RawArgs) -> Result<Self, CliError> {
        let text = |long: &str| -> String {
            raw.last(long)
                .map(str::to_owned)
                .or_else(|| spec::spec(long).map(|s| s.default.to_owned()))
                .unwrap_or_default()
        };
        let boolean = |long: &str| -> Result<bool, CliError> {
            match raw.last(long) {
                Some(v) => goparse::parse_bool(v).map_err(|why| invalid(long, v, &why)),
                None => Ok(false),
            }
        };
        let port = match raw.last("port") {
            Some(v) => goparse::parse_int(v).map_err(|why| invalid("port", v, &why))?,
            None => 8001,
        };
        let keepalive_nanos = match raw.last("keepalive") {
            Some(v) => goparse::parse_duration(v).map_err(|why| invalid("keepalive", v, &why))?,
            None => 0,
        };
        if let Some(v) = raw.last("log-flush-frequency") {
            goparse::parse_duration(v).map_err(|why| invalid("log-flush-frequency", v, &why))?;
        }
        let verbosity = match raw.last("v") {
            Some(v) => goparse::parse_level(v).map_err(|why| invalid("v", v, &why))?,
            None => 0,
        };
        let workers = match raw.last("workers") {
            Some(v) => {
                let n = goparse::parse_int(v).map_err(|why| invalid("workers", v, &why))?;
                usize::try_from(n).map_err(|_| invalid("workers", v, "must not be negative"))?
            }
            None => 0,
        };
        let metrics_address = match raw.last("metrics-address").filter(|v| !v.is_empty()) {
            Some(v) => Some(
                v.parse()
                    .map_err(|e| invalid("metrics-address", v, &format!("{e}")))?,
            ),
            None => None,
        };
        let envoy = envoy_flags(raw)?;
        let service_proxy = match raw.last("service-proxy") {
            Some(v) => ServiceProxy::parse(v).map_err(|why| invalid("service-proxy", v, &why))?,
            None => ServiceProxy::default(),
        };
        let cluster_domain = text("cluster-domain");
        direct::check_cluster_domain(&cluster_domain)
            .map_err(|why| invalid("cluster-domain", &cluster_domain, &why))?;
        let service_cache_ttl_seconds = match raw.last("service-cache-ttl") {
            Some(v) => whole_seconds(v).map_err(|why| invalid("service-cache-ttl", v, &why))?,
            None => DEFAULT_SERVICE_CACHE_TTL_SECONDS,
        };
        let connect_to = raw
            .values
            .get("connect-to")
            .into_iter()
            .flatten()
            .map(|v| ConnectTo::parse(v).map_err(|why| invalid("connect-to", v, &why)))
            .collect::<Result<Vec<_>, _>>()?;
        boolean("match-server-version")?;
        boolean("warnings-as-errors")?;
        Ok(Self {
            port,
            address: text("address"),
            unix_socket: text("unix-socket"),
            api_prefix: text("api-prefix"),
            www: text("www"),
            www_prefix: text("www-prefix"),
            accept_paths: split_list(&text("accept-paths")),
            reject_paths: split_list(&text("reject-paths")),
            accept_hosts: split_list(&text("accept-hosts")),
            reject_methods: split_list(&text("reject-methods")),
            disable_filter: boolean("disable-filter")?,
            keepalive_nanos,
            append_server_path: boolean("append-server-path")?,
            kubeconfig: text("kubeconfig"),
            overrides: Overrides {
                context: text("context"),
                cluster: text("cluster"),
                user: text("user"),
                server: text("server"),
                certificate_authority: text("certificate-authority"),
                insecure_skip_tls_verify: boolean("insecure-skip-tls-verify")?,
                tls_server_name: text("tls-server-name"),
                token: text("token"),
                username: text("username"),
                password: text("password"),
                client_certificate: text("client-certificate"),
                client_key: text("client-key"),
                as_user: text("as"),
                as_groups: raw.values.get("as-group").cloned().unwrap_or_default(),
                as_uid: text("as-uid"),
            },
            disable_compression: boolean("disable-compression")?,
            verbosity,
            filter: raw
                .last("filter")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            filter_config: raw.last("filter-config").map(str::to_owned),
            workers,
            metrics_address,
            print_plugin_config: boolean("print-plugin-config")?,
            service_proxy,
            cluster_domain,
            service_cache_ttl_seconds,
            connect_to,
            cross_site_protection: boolean("cross-site-protection")?,
            envoy,
        })
    }

    /// The raw `--reject-paths`/`--reject-methods` emptiness kubectl HEAD warns about.
    fn relaxed(&self) -> bool {
        self.reject_paths.is_empty() || self.reject_methods.is_empty()
    }
}

/// `--service-cache-ttl`'s default (`10s`).
const DEFAULT_SERVICE_CACHE_TTL_SECONDS: u64 = 10;

/// A Go duration that is a whole, non-negative number of seconds.
fn whole_seconds(value: &str) -> Result<u64, String> {
    let nanos = goparse::parse_duration(value)?;
    if nanos < 0 {
        return Err("must not be negative".to_owned());
    }
    if nanos % 1_000_000_000 != 0 {
        return Err("must be a whole number of seconds".to_owned());
    }
    u64::try_from(nanos / 1_000_000_000).map_err(|_| "out of range".to_owned())
}

fn invalid(long: &str, value: &str, why: &str) -> CliError {
    let name = spec::spec(long).map_or_else(|| format!("--{long}"), spec::display_name);
    CliError::Usage(format!(
        "invalid argument {value:?} for {name:?} flag: {why}"
    ))
}

/// The `envoy-bootstrap` subcommand (first positional argument) and its flags; those flags
/// without the subcommand are unknown, as for kubectl.
fn envoy_flags(raw: &spec::RawArgs) -> Result<Option<crate::envoy::EnvoyFlags>, CliError> {
    const ONLY: [&str; 4] = [
        "output",
        "wasm-path",
        "envoy-admin-address",
        "envoy-admin-port",
    ];
    if raw.positional.first().map(String::as_str) != Some(crate::envoy::SUBCOMMAND) {
        return match ONLY.iter().find(|long| raw.last(long).is_some()) {
            Some(long) => Err(CliError::Usage(format!("unknown flag: --{long}"))),
            None => Ok(None),
        };
    }
    let path = |long: &str| raw.last(long).filter(|v| !v.is_empty()).map(PathBuf::from);
    let admin_port = match raw.last("envoy-admin-port") {
        Some(v) => {
            let n = goparse::parse_int(v).map_err(|why| invalid("envoy-admin-port", v, &why))?;
            Some(u16::try_from(n).map_err(|_| invalid("envoy-admin-port", v, "out of range"))?)
        }
        None => None,
    };
    let admin_address = raw.last("envoy-admin-address").unwrap_or("127.0.0.1:0");
    let admin = if admin_address.is_empty() {
        None
    } else {
        let mut addr: SocketAddr = admin_address.parse().map_err(|e| {
            invalid(
                "envoy-admin-address",
                admin_address,
                &format!("{e} (want IP:PORT)"),
            )
        })?;
        if let Some(port) = admin_port {
            addr.set_port(port);
        }
        Some(addr)
    };
    Ok(Some(crate::envoy::EnvoyFlags {
        output: path("output"),
        wasm_path: path("wasm-path"),
        admin,
    }))
}

fn with_slash(prefix: &str) -> String {
    if prefix.ends_with('/') {
        prefix.to_owned()
    } else {
        format!("{prefix}/")
    }
}

/// Resolves flags into settings in kubectl's order (kubeconfig, server-path warning,
/// disable-filter warning, `--unix-socket`/`--port` check, static-dir warnings, regexes,
/// prefix conflict, port range). Warnings are appended to `warnings` even when it fails.
pub fn resolve(
    flags: &Flags,
    env: &Env,
    warnings: &mut Vec<Warning>,
) -> Result<Settings, CliError> {
    resolve_with_target(flags, env, warnings).map(|(settings, _)| settings)
}

/// [`resolve`], also returning the resolved [`Target`] (for `envoy-bootstrap`).
pub fn resolve_with_target(
    flags: &Flags,
    env: &Env,
    warnings: &mut Vec<Warning>,
) -> Result<(Settings, Target), CliError> {
    let target = kubeconfig::load(&flags.kubeconfig, &flags.overrides, env)?;
    if !flags.append_server_path && !target.cluster.server_path.is_empty() {
        warnings.push(Warning {
            location: "proxy.go:172",
            text: format!(
                "Your kube context contains a server path {}, use --append-server-path to automatically append the path to each request",
                target.cluster.server_path
            ),
        });
    }
    if flags.disable_filter && flags.unix_socket.is_empty() {
        warnings.push(Warning {
            location: "proxy.go:177",
            text: "Request filter disabled, your proxy is vulnerable to XSRF attacks, please be cautious".to_owned(),
        });
    } else if !flags.disable_filter && flags.relaxed() {
        warnings.push(Warning {
            location: "proxy.go:179",
            text: "Request filter has been relaxed, your proxy may be vulnerable to attacks, please be cautious".to_owned(),
        });
    }
    if !flags.unix_socket.is_empty() && flags.port != 8001 {
        return Err(CliError::Fatal(
            "cannot set --unix-socket and --port at the same time".to_owned(),
        ));
    }
    if !flags.www.is_empty() {
        match std::fs::metadata(&flags.www) {
            Err(e) => warnings.push(Warning {
                location: "proxy.go:200",
                text: format!(
                    "Failed to stat static file directory {}: {}",
                    flags.www,
                    kubeconfig::go_os_error("stat", flags.www.as_ref(), &e)
                ),
            }),
            Ok(meta) if !meta.is_dir() => warnings.push(Warning {
                location: "proxy.go:202",
                text: format!("Static file directory {} is not a directory", flags.www),
            }),
            Ok(_) => {}
        }
    }
    for list in [
        &flags.accept_paths,
        &flags.reject_paths,
        &flags.accept_hosts,
        &flags.reject_methods,
    ] {
        for pattern in list {
            if let Err(e) = regex_lite::Regex::new(pattern) {
                let reason = e
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                return Err(CliError::Regex(format!(
                    "error parsing regexp: {reason}: `{pattern}`"
                )));
            }
        }
    }
    let api_prefix = with_slash(&flags.api_prefix);
    for (flag, value) in [
        ("--api-prefix", &flags.api_prefix),
        ("--www-prefix", &flags.www_prefix),
    ] {
        if !value.starts_with('/') && (flag == "--api-prefix" || !flags.www.is_empty()) {
            return Err(CliError::Fatal(format!(
                "{flag} {value:?} must start with '/'"
            )));
        }
    }
    let www = (!flags.www.is_empty()).then(|| StaticFiles {
        dir: PathBuf::from(&flags.www),
        prefix: with_slash(&flags.www_prefix),
    });
    if www.as_ref().is_some_and(|www| www.prefix == api_prefix) {
        return Err(CliError::PrefixConflict(api_prefix));
    }
    let listen = if flags.unix_socket.is_empty() {
        let port = u16::try_from(flags.port).map_err(|_| {
            CliError::Fatal(format!("listen tcp: address {}: invalid port", flags.port))
        })?;
        Listen::Tcp {
            address: flags.address.clone(),
            port,
        }
    } else {
        Listen::Unix(PathBuf::from(&flags.unix_socket))
    };
    let credentials = Credentials::new(target.credential.clone());
    let plugin_config = match &flags.filter_config {
        Some(text) => match text.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| CliError::Fatal(kubeconfig::go_os_error("open", path.as_ref(), &e)))?,
            None => text.clone(),
        },
        None => {
            let json = plugin_config(flags, &target);
            serde_json::to_string_pretty(&json).unwrap_or_default()
        }
    };
    let workers = if flags.workers == 0 {
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    } else {
        flags.workers
    };
    Ok((
        Settings {
            listen,
            www,
            filter: flags
                .filter
                .clone()
                .map_or(FilterSource::Embedded, FilterSource::Path),
            plugin_config,
            keepalive: u64::try_from(flags.keepalive_nanos)
                .ok()
                .filter(|n| *n > 0)
                .map(Duration::from_nanos),
            disable_compression: flags.disable_compression || target.disable_compression,
            verbosity: u8::try_from(flags.verbosity).unwrap_or(u8::MAX),
            cluster: Arc::new(target.cluster.clone()),
            credentials: Arc::new(credentials),
            workers,
            metrics_address: flags.metrics_address,
            service_proxy: flags.service_proxy,
            cluster_domain: flags.cluster_domain.clone(),
            service_cache_ttl: Duration::from_secs(flags.service_cache_ttl_seconds),
            connect_to: flags.connect_to.clone(),
            cross_site_protection: flags.cross_site_protection,
        },
        target,
    ))
}

/// The `proxy_http_call` cluster name of the API server (plugin field `apiserver_cluster`); the
/// shim registers it, the Envoy bootstrap names its API-server cluster the same.
pub const APISERVER_CLUSTER: &str = "kube_apiserver";

/// The plugin configuration JSON (ARCHITECTURE.md contract) for these flags and target. Every
/// field is written out; credentials appear only as a shared-data key (the shim publishes the
/// value), impersonation only for an `https` server.
pub fn plugin_config(flags: &Flags, target: &Target) -> serde_json::Value {
    let mut json = serde_json::json!({
        "api_prefix": with_slash(&flags.api_prefix),
        "static_prefix": if flags.www.is_empty() { None } else { Some(with_slash(&flags.www_prefix)) },
        "accept_paths": flags.accept_paths,
        "reject_paths": flags.reject_paths,
        "accept_hosts": flags.accept_hosts,
        "reject_methods": flags.reject_methods,
        "disable_filter": flags.disable_filter,
        "server_path": if flags.append_server_path { target.cluster.server_path.as_str() } else { "" },
        "verbosity": flags.verbosity,
        "service_proxy": flags.service_proxy.as_str(),
        "cluster_domain": flags.cluster_domain,
        "service_cache_ttl_seconds": flags.service_cache_ttl_seconds,
        "apiserver_cluster": APISERVER_CLUSTER,
        "cross_site_protection": flags.cross_site_protection,
    });
    if target.credential != CredentialSource::None {
        json["credentials"] =
            serde_json::json!({ "shared_data_key": Credentials::SHARED_DATA_KEY });
    }
    if let Some(imp) = &target.impersonate {
        let mut value = serde_json::json!({ "user": imp.user });
        if !imp.groups.is_empty() {
            value["groups"] = serde_json::json!(imp.groups);
        }
        if !imp.uid.is_empty() {
            value["uid"] = serde_json::json!(imp.uid);
        }
        if !imp.extra.is_empty() {
            value["extra"] = serde_json::json!(imp.extra);
        }
        json["impersonate"] = value;
    }
    json
}
