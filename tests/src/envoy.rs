//! The Envoy side of the harness: the plugin JSON for a set of kubectl-proxy flags (from
//! `shim --print-plugin-config` when the shim binary exists, else from a small translator here)
//! and the bootstrap rendered from `envoy/kproxy.yaml.tmpl`.
//!
//! It must not start Envoy (see `backend`); it only produces text.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use crate::kubeconfig::Kubeconfig;

/// Values for the template's placeholders.
pub struct Bootstrap<'a> {
    /// Admin port.
    pub admin_port: u16,
    /// Proxy listener port.
    pub listen_port: u16,
    /// The filter `.wasm`.
    pub filter_wasm: &'a Path,
    /// Plugin configuration JSON.
    pub plugin_config: &'a Value,
    /// API server address (IP).
    pub api_ip: std::net::IpAddr,
    /// API server port.
    pub api_port: u16,
    /// The CA file when the API server speaks TLS.
    pub api_ca: Option<&'a Path>,
}

/// The template, read from the repository.
pub fn template() -> Result<String> {
    let p = crate::workspace_root().join("envoy/kproxy.yaml.tmpl");
    std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
}

/// Fills the template.
pub fn render(template: &str, b: &Bootstrap<'_>) -> Result<String> {
    let config = serde_json::to_string(b.plugin_config)?;
    // A JSON string literal is a valid YAML double-quoted scalar.
    let config_literal = serde_json::to_string(&config)?;
    let api_host = format!("{}:{}", b.api_ip, b.api_port);
    let mut out = String::new();
    let mut in_tls = false;
    for line in template.lines() {
        match line.trim() {
            "# BEGIN tls" => in_tls = true,
            "# END tls" => in_tls = false,
            _ if in_tls && b.api_ca.is_none() => {}
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    let ca = b
        .api_ca
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let out = out
        .replace("@@ADMIN_PORT@@", &b.admin_port.to_string())
        .replace("@@LISTEN_PORT@@", &b.listen_port.to_string())
        .replace("@@FILTER_WASM@@", &b.filter_wasm.display().to_string())
        .replace("@@PLUGIN_CONFIG@@", &config_literal)
        .replace("@@API_ADDRESS@@", &b.api_ip.to_string())
        .replace("@@API_PORT@@", &b.api_port.to_string())
        .replace("@@API_HOST@@", &api_host)
        .replace("@@API_SNI@@", "localhost")
        .replace("@@API_CA@@", &ca)
        .replace("@@API_SAN_TYPE@@", "IP_ADDRESS")
        .replace("@@API_SAN@@", &b.api_ip.to_string());
    if out.contains("@@") {
        bail!("unfilled placeholder in the Envoy template");
    }
    Ok(out)
}

/// The plugin JSON Envoy gets for `flags`: the shim's translation when `shim` is given, else
/// [`translate_flags`]. Credentials are inlined from the kubeconfig (Envoy has no host that
/// fills the shim's shared-data key).
pub fn plugin_config(shim: Option<&Path>, flags: &[String], kc: &Kubeconfig) -> Result<Value> {
    let mut config = match shim {
        Some(shim) => {
            let out = Command::new(shim)
                .args(flags)
                .arg("--kubeconfig")
                .arg(&kc.path)
                .arg("--print-plugin-config")
                .env("HOME", kc.path.parent().unwrap_or(Path::new("/")))
                .output()
                .with_context(|| format!("running {}", shim.display()))?;
            if !out.status.success() {
                bail!(
                    "`shim --print-plugin-config` failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            serde_json::from_slice(&out.stdout).context("parsing the shim's plugin config")?
        }
        None => translate_flags(flags, kc)?,
    };
    if let Some(obj) = config.as_object_mut() {
        match &kc.credentials {
            Some(c) => obj.insert("credentials".to_owned(), c.clone()),
            None => obj.remove("credentials"),
        };
    }
    Ok(config)
}

/// kubectl-proxy flags → plugin JSON, for when no shim binary is built (a subset: the prefixes,
/// the four regex lists, `--disable-filter`, `--append-server-path`, `-v`, and impersonation of
/// the `impersonate` kubeconfig variant).
pub fn translate_flags(flags: &[String], kc: &Kubeconfig) -> Result<Value> {
    let mut config = json!({});
    let list = |v: &str| -> Value {
        if v.is_empty() {
            json!([])
        } else {
            json!(v.split(',').collect::<Vec<_>>())
        }
    };
    let mut www = false;
    let mut www_prefix = "/static/".to_owned();
    let mut append_server_path = false;
    let mut i = 0;
    while let Some(flag) = flags.get(i) {
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n.to_owned(), v.to_owned()),
            None if matches!(
                flag.as_str(),
                "--disable-filter" | "--append-server-path" | "--disable-compression"
            ) =>
            {
                (flag.clone(), "true".to_owned())
            }
            None => {
                i += 1;
                (flag.clone(), flags.get(i).cloned().unwrap_or_default())
            }
        };
        i += 1;
        match name.as_str() {
            "--api-prefix" => {
                let mut p = value;
                if !p.ends_with('/') {
                    p.push('/');
                }
                config["api_prefix"] = json!(p);
            }
            "--accept-paths" => config["accept_paths"] = list(&value),
            "--reject-paths" => config["reject_paths"] = list(&value),
            "--accept-hosts" => config["accept_hosts"] = list(&value),
            "--reject-methods" => config["reject_methods"] = list(&value),
            "--disable-filter" => config["disable_filter"] = json!(value == "true"),
            "--append-server-path" => append_server_path = value == "true",
            "--www" | "-w" => www = !value.is_empty(),
            "--www-prefix" | "-P" => www_prefix = value,
            "-v" | "--v" => config["verbosity"] = json!(value.parse::<u32>().unwrap_or(0)),
            "--as" => config["impersonate"]["user"] = json!(value),
            "--as-uid" => config["impersonate"]["uid"] = json!(value),
            "--as-group" => {
                let groups = &mut config["impersonate"]["groups"];
                match groups.as_array_mut() {
                    Some(g) => g.push(json!(value)),
                    None => *groups = json!([value]),
                }
            }
            // Host (transport) behaviour: nothing in the plugin configuration.
            "--disable-compression" => {}
            other => bail!("translate_flags: unsupported flag {other}"),
        }
    }
    if www {
        if !www_prefix.ends_with('/') {
            www_prefix.push('/');
        }
        config["static_prefix"] = json!(www_prefix);
    }
    if append_server_path && kc.variant == crate::kubeconfig::Variant::ServerPath {
        config["server_path"] = json!("/base/path");
    }
    if kc.variant == crate::kubeconfig::Variant::Impersonate {
        config["impersonate"] = json!({
            "user": "jane", "groups": ["g1", "g2"], "extra": {"scopes": ["s1"]},
        });
    }
    Ok(config)
}
