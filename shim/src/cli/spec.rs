//! The flag table (one row per flag: names, kind, default, help) and a pflag-compatible
//! tokenizer on top of `clap`: `--flag=v`, `--flag v`, `-p v`, `-pv`, `--bool`, `--bool=false`,
//! repeatable arrays, ignored positional arguments, and pflag's error texts.
//!
//! It yields raw strings only; typing and validation happen in `cli.rs`.

use std::collections::HashMap;

use clap::{Arg, ArgAction, Command, builder::ValueParser, error::ContextKind, error::ErrorKind};

/// How a flag's value is parsed (and shown in help).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Go `string`.
    Str,
    /// Go `bool` (`--flag` alone means true; a value needs `=`).
    Bool,
    /// Go `int`.
    Int,
    /// Go `time.Duration`.
    Duration,
    /// klog `Level` (`-v`).
    Level,
    /// Go `[]string` filled by repeating the flag (`--as-group`).
    Array,
}

/// Where a flag is listed in `--help`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Group {
    /// `kubectl proxy`'s own options.
    Proxy,
    /// kubectl global options that the shim honours.
    Global,
    /// kubectl global options accepted for compatibility and ignored.
    Ignored,
    /// Options only the shim has.
    Shim,
}

/// One flag.
#[derive(Debug)]
pub(crate) struct Spec {
    pub(crate) long: &'static str,
    pub(crate) short: Option<char>,
    pub(crate) kind: Kind,
    /// The default as kubectl prints it (without quotes); `None` for shim flags without one.
    pub(crate) default: &'static str,
    pub(crate) help: &'static str,
    pub(crate) group: Group,
}

const fn flag(
    long: &'static str,
    short: Option<char>,
    kind: Kind,
    default: &'static str,
    group: Group,
    help: &'static str,
) -> Spec {
    Spec {
        long,
        short,
        kind,
        default,
        help,
        group,
    }
}

use Group::{Global, Ignored, Proxy, Shim};
use Kind::{Array, Bool, Duration, Int, Level, Str};

/// Every flag the shim accepts, in `--help` order within each group.
pub(crate) const SPECS: &[Spec] = &[
    flag(
        "accept-hosts",
        None,
        Str,
        r"^localhost$,^127\.0\.0\.1$,^\[::1\]$",
        Proxy,
        "Regular expression for hosts that the proxy should accept.",
    ),
    flag(
        "accept-paths",
        None,
        Str,
        "^.*",
        Proxy,
        "Regular expression for paths that the proxy should accept.",
    ),
    flag(
        "address",
        None,
        Str,
        "127.0.0.1",
        Proxy,
        "The IP address on which to serve on.",
    ),
    flag(
        "api-prefix",
        None,
        Str,
        "/",
        Proxy,
        "Prefix to serve the proxied API under.",
    ),
    flag(
        "append-server-path",
        None,
        Bool,
        "false",
        Proxy,
        "If true, enables automatic path appending of the kube context server path to each request.",
    ),
    flag(
        "disable-filter",
        None,
        Bool,
        "false",
        Proxy,
        "If true, disable request filtering in the proxy. This is dangerous, and can leave you vulnerable to XSRF attacks, when used with an accessible port.",
    ),
    flag(
        "keepalive",
        None,
        Duration,
        "0s",
        Proxy,
        "keepalive specifies the keep-alive period for an active network connection. Set to 0 to disable keepalive.",
    ),
    flag(
        "port",
        Some('p'),
        Int,
        "8001",
        Proxy,
        "The port on which to run the proxy. Set to 0 to pick a random port.",
    ),
    flag(
        "reject-methods",
        None,
        Str,
        "^$",
        Proxy,
        "Regular expression for HTTP methods that the proxy should reject (example --reject-methods='POST,PUT,PATCH'). ",
    ),
    flag(
        "reject-paths",
        None,
        Str,
        "^/api/.*/pods/.*/exec,^/api/.*/pods/.*/attach",
        Proxy,
        "Regular expression for paths that the proxy should reject. Paths specified here will be rejected even accepted by --accept-paths.",
    ),
    flag(
        "unix-socket",
        Some('u'),
        Str,
        "",
        Proxy,
        "Unix socket on which to run the proxy.",
    ),
    flag(
        "www",
        Some('w'),
        Str,
        "",
        Proxy,
        "Also serve static files from the given directory under the specified prefix.",
    ),
    flag(
        "www-prefix",
        Some('P'),
        Str,
        "/static/",
        Proxy,
        "Prefix to serve static files under, if static file directory is specified.",
    ),
    flag(
        "filter",
        None,
        Str,
        "",
        Shim,
        "Path to a proxy-wasm module to run instead of the embedded kproxy filter.",
    ),
    flag(
        "cluster-domain",
        None,
        Str,
        "cluster.local",
        Shim,
        "The cluster's DNS domain, used for Service host names ({name}.{namespace}.svc.DOMAIN) with --service-proxy=direct.",
    ),
    flag(
        "connect-to",
        None,
        Array,
        "[]",
        Shim,
        "HOST1:PORT1:HOST2:PORT2 (curl's syntax; IPv6 addresses in brackets): with --service-proxy=direct, connect to HOST2:PORT2 for a Service whose host and port are HOST1:PORT1 (an empty part matches any; an empty HOST2 or PORT2 keeps the Service's). The Host header is unchanged. This flag can be repeated; the first match wins.",
    ),
    flag(
        "cross-site-protection",
        None,
        Bool,
        "false",
        Shim,
        "If true, reject proxied requests a browser marks as cross-site (Sec-Fetch-Site cross-site or same-site, or an Origin that differs from the Host) with 403.",
    ),
    flag(
        "envoy-admin-address",
        None,
        Str,
        "127.0.0.1:0",
        Shim,
        "envoy-bootstrap only: IP:PORT of Envoy's admin interface in the bootstrap (port 0 = Envoy picks one; find it with envoy --admin-address-path). Empty = no admin interface.",
    ),
    flag(
        "envoy-admin-port",
        None,
        Int,
        "0",
        Shim,
        "envoy-bootstrap only: if given, replaces the port of --envoy-admin-address.",
    ),
    flag(
        "filter-config",
        None,
        Str,
        "",
        Shim,
        "Plugin configuration handed to the filter instead of the one derived from the flags: the text itself, or @FILE to read it from a file.",
    ),
    flag(
        "metrics-address",
        None,
        Str,
        "",
        Shim,
        "If set, serve the filter's metrics and the shim's own kproxy_shim_* gauges (open connections, live filter streams, open tunnels, callouts in flight) on this address (host:port).",
    ),
    flag(
        "output",
        None,
        Str,
        "",
        Shim,
        "envoy-bootstrap only: write the bootstrap to this file (mode 0600) instead of stdout; a token-file credential's SDS file is written next to it.",
    ),
    flag(
        "print-plugin-config",
        None,
        Bool,
        "false",
        Shim,
        "If true, print the plugin configuration the filter would receive and exit.",
    ),
    flag(
        "service-cache-ttl",
        None,
        Duration,
        "10s",
        Shim,
        "With --service-proxy=direct, how long a Service lookup is reused (whole seconds; 0 looks the Service up on every request).",
    ),
    flag(
        "service-proxy",
        None,
        Str,
        "apiserver",
        Shim,
        "Who serves /api/v1/namespaces/NS/services/NAME/proxy URLs: apiserver (through the API server, as kubectl does) or direct (the proxy looks the Service up with your credentials and connects to it itself, e.g. inside the cluster or with --connect-to).",
    ),
    flag(
        "wasm-path",
        None,
        Str,
        "",
        Shim,
        "envoy-bootstrap only: the kproxy_filter.wasm file Envoy loads (default: --filter, else $KPROXY_FILTER_WASM).",
    ),
    flag(
        "workers",
        None,
        Int,
        "0",
        Shim,
        "Number of worker threads, each with its own wasm VM. 0 means one per CPU core.",
    ),
    flag(
        "as",
        None,
        Str,
        "",
        Global,
        "Username to impersonate for the operation. User could be a regular user or a service account in a namespace.",
    ),
    flag(
        "as-group",
        None,
        Array,
        "[]",
        Global,
        "Group to impersonate for the operation, this flag can be repeated to specify multiple groups.",
    ),
    flag(
        "as-uid",
        None,
        Str,
        "",
        Global,
        "UID to impersonate for the operation.",
    ),
    flag(
        "cache-dir",
        None,
        Str,
        "$HOME/.kube/cache",
        Ignored,
        "Default cache directory",
    ),
    flag(
        "certificate-authority",
        None,
        Str,
        "",
        Global,
        "Path to a cert file for the certificate authority",
    ),
    flag(
        "client-certificate",
        None,
        Str,
        "",
        Global,
        "Path to a client certificate file for TLS",
    ),
    flag(
        "client-key",
        None,
        Str,
        "",
        Global,
        "Path to a client key file for TLS",
    ),
    flag(
        "cluster",
        None,
        Str,
        "",
        Global,
        "The name of the kubeconfig cluster to use",
    ),
    flag(
        "context",
        None,
        Str,
        "",
        Global,
        "The name of the kubeconfig context to use",
    ),
    flag(
        "disable-compression",
        None,
        Bool,
        "false",
        Global,
        "If true, opt-out of response compression for all requests to the server",
    ),
    flag(
        "insecure-skip-tls-verify",
        None,
        Bool,
        "false",
        Global,
        "If true, the server's certificate will not be checked for validity. This will make your HTTPS connections insecure",
    ),
    flag(
        "kubeconfig",
        None,
        Str,
        "",
        Global,
        "Path to the kubeconfig file to use for CLI requests.",
    ),
    flag(
        "log-flush-frequency",
        None,
        Duration,
        "5s",
        Ignored,
        "Maximum number of seconds between log flushes",
    ),
    flag(
        "match-server-version",
        None,
        Bool,
        "false",
        Ignored,
        "Require server version to match client version",
    ),
    flag(
        "namespace",
        Some('n'),
        Str,
        "",
        Ignored,
        "If present, the namespace scope for this CLI request",
    ),
    flag(
        "password",
        None,
        Str,
        "",
        Global,
        "Password for basic authentication to the API server",
    ),
    flag(
        "profile",
        None,
        Str,
        "none",
        Ignored,
        "Name of profile to capture. One of (none|cpu|heap|goroutine|threadcreate|block|mutex)",
    ),
    flag(
        "profile-output",
        None,
        Str,
        "profile.pprof",
        Ignored,
        "Name of the file to write the profile to",
    ),
    flag(
        "request-timeout",
        None,
        Str,
        "0",
        Ignored,
        "The length of time to wait before giving up on a single server request. Non-zero values should contain a corresponding time unit (e.g. 1s, 2m, 3h). A value of zero means don't timeout requests.",
    ),
    flag(
        "server",
        Some('s'),
        Str,
        "",
        Global,
        "The address and port of the Kubernetes API server",
    ),
    flag(
        "tls-server-name",
        None,
        Str,
        "",
        Global,
        "Server name to use for server certificate validation. If it is not provided, the hostname used to contact the server is used",
    ),
    flag(
        "token",
        None,
        Str,
        "",
        Global,
        "Bearer token for authentication to the API server",
    ),
    flag(
        "user",
        None,
        Str,
        "",
        Global,
        "The name of the kubeconfig user to use",
    ),
    flag(
        "username",
        None,
        Str,
        "",
        Global,
        "Username for basic authentication to the API server",
    ),
    flag(
        "v",
        Some('v'),
        Level,
        "0",
        Global,
        "number for the log level verbosity",
    ),
    flag(
        "vmodule",
        None,
        Str,
        "",
        Ignored,
        "comma-separated list of pattern=N settings for file-filtered logging (only works for the default text log format)",
    ),
    flag(
        "warnings-as-errors",
        None,
        Bool,
        "false",
        Ignored,
        "Treat warnings received from the server as errors and exit with a non-zero exit code",
    ),
];

/// The raw result of tokenizing: the values given per flag (last one wins except for arrays).
#[derive(Debug, Default)]
pub(crate) struct RawArgs {
    pub(crate) values: HashMap<&'static str, Vec<String>>,
    pub(crate) help: bool,
    /// Positional arguments (kubectl ignores them; the first may name a subcommand).
    pub(crate) positional: Vec<String>,
}

impl RawArgs {
    /// The last value given for `long`, if any.
    pub(crate) fn last(&self, long: &str) -> Option<&str> {
        self.values
            .get(long)
            .and_then(|v| v.last())
            .map(String::as_str)
    }
}

/// Finds a flag's row.
pub(crate) fn spec(long: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.long == long)
}

/// How pflag names a flag in `invalid argument` errors: `"-p, --port"` or `"--keepalive"`.
pub(crate) fn display_name(spec: &Spec) -> String {
    match spec.short {
        Some(c) => format!("-{c}, --{}", spec.long),
        None => format!("--{}", spec.long),
    }
}

fn command() -> Command {
    let mut cmd = Command::new("shim")
        .no_binary_name(true)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .args_override_self(true);
    for s in SPECS {
        let mut arg = Arg::new(s.long)
            .long(s.long)
            .value_parser(ValueParser::string());
        if let Some(c) = s.short {
            arg = arg.short(c);
        }
        arg = match s.kind {
            Kind::Bool => arg
                .num_args(0..=1)
                .require_equals(true)
                .default_missing_value("true")
                .action(ArgAction::Set),
            Kind::Array => arg
                .num_args(1)
                .allow_hyphen_values(true)
                .action(ArgAction::Append),
            _ => arg
                .num_args(1)
                .allow_hyphen_values(true)
                .action(ArgAction::Set),
        };
        cmd = cmd.arg(arg);
    }
    cmd.arg(
        Arg::new("help")
            .short('h')
            .long("help")
            .action(ArgAction::SetTrue),
    )
    .arg(
        Arg::new("positional")
            .num_args(0..)
            .action(ArgAction::Append)
            .value_parser(ValueParser::os_string()),
    )
}

/// Tokenizes `args` (without the program name) like pflag. `Err` holds pflag's message
/// (without the `Error: ` prefix).
pub(crate) fn tokenize<I, T>(args: I) -> Result<RawArgs, String>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let matches = command()
        .try_get_matches_from(args.iter().cloned())
        .map_err(|e| pflag_message(&e, &args))?;
    let mut raw = RawArgs {
        help: matches.get_flag("help"),
        positional: matches
            .get_many::<std::ffi::OsString>("positional")
            .into_iter()
            .flatten()
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
        ..RawArgs::default()
    };
    for s in SPECS {
        if matches.value_source(s.long) != Some(clap::parser::ValueSource::CommandLine) {
            continue;
        }
        let values: Vec<String> = matches
            .get_many::<String>(s.long)
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        raw.values.insert(s.long, values);
    }
    Ok(raw)
}

/// Rewrites a clap error into pflag's wording.
fn pflag_message(err: &clap::Error, args: &[std::ffi::OsString]) -> String {
    let invalid = match err.get(ContextKind::InvalidArg) {
        Some(clap::error::ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    // clap renders the argument as `--port <port>`; keep the flag token only.
    let token = invalid
        .split([' ', '='])
        .next()
        .unwrap_or_default()
        .to_owned();
    match err.kind() {
        ErrorKind::UnknownArgument => {
            if let Some(long) = token.strip_prefix("--") {
                format!("unknown flag: --{long}")
            } else {
                let short = token.trim_start_matches('-').chars().next().unwrap_or('?');
                let whole = args
                    .iter()
                    .filter_map(|a| a.to_str())
                    .find(|a| a.starts_with('-') && !a.starts_with("--") && a.contains(short))
                    .unwrap_or(&token)
                    .to_owned();
                format!("unknown shorthand flag: '{short}' in {whole}")
            }
        }
        ErrorKind::InvalidValue | ErrorKind::NoEquals | ErrorKind::WrongNumberOfValues => {
            let long = token.trim_start_matches('-');
            let Some(spec) = SPECS.iter().find(|s| s.long == long) else {
                return first_line(err);
            };
            let typed_short = spec.short.and_then(|c| {
                let short = format!("-{c}");
                args.iter()
                    .rev()
                    .filter_map(|a| a.to_str())
                    .find(|a| **a == short)
                    .map(|_| c)
            });
            match typed_short {
                Some(c) => format!("flag needs an argument: '{c}' in -{c}"),
                None => format!("flag needs an argument: --{}", spec.long),
            }
        }
        _ => first_line(err),
    }
}

fn first_line(err: &clap::Error) -> String {
    let text = err.to_string();
    let line = text.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line).to_owned()
}
