//! `shim --help`: kubectl's help layout (`--flag='default':` then a tab-indented description),
//! rendered from the flag table so names, defaults and texts cannot drift.
//!
//! Text only; it must not parse or validate anything.

use std::fmt::Write as _;

use super::spec::{Group, Kind, SPECS, Spec};

const ABOUT: &str = "Creates a proxy server or application-level gateway between localhost and the Kubernetes API server. It also allows serving static content over specified HTTP path. All incoming data enters through one port and gets forwarded to the remote Kubernetes API server port, except for the path matching the static content path.

The request policy runs in a proxy-wasm filter (the embedded kproxy filter, or --filter PATH).";

const EXAMPLES: &str = "Examples:
  # To proxy all of the Kubernetes API and nothing else
  shim --api-prefix=/

  # To proxy only part of the Kubernetes API and also some static files
  # You can get pods info with 'curl localhost:8001/api/v1/pods'
  shim --www=/my/files --www-prefix=/static/ --api-prefix=/api/

  # To proxy the entire Kubernetes API at a different root
  # You can get pods info with 'curl localhost:8001/custom/api/v1/pods'
  shim --api-prefix=/custom/

  # Run a proxy to the Kubernetes API server on port 8011, serving static content from ./local/www/
  shim --port=8011 --www=./local/www/

  # Run a proxy to the Kubernetes API server on an arbitrary local port
  # The chosen port for the server will be output to stdout
  shim --port=0

  # Print the plugin configuration the filter would receive
  shim --reject-methods='POST,PUT' --print-plugin-config";

/// The complete `--help` text.
pub(crate) fn render() -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{ABOUT}\n\n{EXAMPLES}\n\nOptions:");
    section(&mut out, Group::Proxy);
    let _ = writeln!(out, "Shim options:");
    section(&mut out, Group::Shim);
    let _ = writeln!(out, "Kubectl global options:");
    section(&mut out, Group::Global);
    let _ = writeln!(out, "Accepted for compatibility with kubectl and ignored:");
    section(&mut out, Group::Ignored);
    let _ = write!(
        out,
        "Usage:\n  shim [--port=PORT] [--www=static-dir] [--www-prefix=prefix] [--api-prefix=prefix] [options]\n"
    );
    out
}

fn section(out: &mut String, group: Group) {
    for spec in SPECS.iter().filter(|s| s.group == group) {
        let _ = writeln!(
            out,
            "    {}={}:\n\t{}\n",
            names(spec),
            default(spec),
            spec.help
        );
    }
}

fn names(spec: &Spec) -> String {
    match spec.short {
        Some(c) => format!("-{c}, --{}", spec.long),
        None => format!("--{}", spec.long),
    }
}

fn default(spec: &Spec) -> String {
    match spec.kind {
        Kind::Str if spec.long == "vmodule" => String::new(),
        Kind::Str => format!("'{}'", spec.default),
        Kind::Bool | Kind::Int | Kind::Duration | Kind::Level | Kind::Array => {
            spec.default.to_owned()
        }
    }
}
