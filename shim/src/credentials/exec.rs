//! Runs a client-go exec credential plugin (`client.authentication.k8s.io/v1` or `v1beta1`):
//! environment with `KUBERNETES_EXEC_INFO`, stdout parsed as an `ExecCredential`, client-go's
//! error texts.
//!
//! No caching here (that is `credentials.rs`); stdin is not connected (never interactive).

use std::process::Stdio;
use std::time::SystemTime;

use base64::Engine as _;
use serde::Deserialize;

use crate::kubeconfig::ExecConfig;

const V1: &str = "client.authentication.k8s.io/v1";
const V1BETA1: &str = "client.authentication.k8s.io/v1beta1";

/// What a successful run produced.
#[derive(Debug)]
pub(super) struct ExecOutput {
    pub(super) token: String,
    pub(super) expiry: Option<SystemTime>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecCredential {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    status: Option<Status>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    #[serde(default)]
    token: String,
    expiration_timestamp: Option<String>,
    #[serde(default)]
    client_certificate_data: String,
    #[serde(default)]
    client_key_data: String,
}

/// The `KUBERNETES_EXEC_INFO` value.
pub(super) fn exec_info(config: &ExecConfig) -> String {
    let mut spec = serde_json::json!({ "interactive": false });
    if config.provide_cluster_info {
        let mut cluster = serde_json::json!({ "server": config.cluster_server });
        if !config.cluster_tls_server_name.is_empty() {
            cluster["tls-server-name"] = config.cluster_tls_server_name.clone().into();
        }
        if config.cluster_insecure {
            cluster["insecure-skip-tls-verify"] = true.into();
        }
        if !config.cluster_ca_data.is_empty() {
            cluster["certificate-authority-data"] = base64::engine::general_purpose::STANDARD
                .encode(&config.cluster_ca_data)
                .into();
        }
        spec["cluster"] = cluster;
    }
    serde_json::json!({ "kind": "ExecCredential", "apiVersion": config.api_version, "spec": spec })
        .to_string()
}

/// Runs the plugin once.
pub(super) async fn run(config: &ExecConfig) -> Result<ExecOutput, String> {
    if config.api_version != V1 && config.api_version != V1BETA1 {
        return Err(format!(
            "exec plugin: invalid apiVersion {:?}",
            config.api_version
        ));
    }
    let mut command = tokio::process::Command::new(&config.command);
    command
        .args(&config.args)
        .envs(config.env.iter().map(|(k, v)| (k, v)))
        .env("KUBERNETES_EXEC_INFO", exec_info(config))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let output = match command.output().await {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut text = format!("exec: executable {} not found", config.command);
            if !config.install_hint.is_empty() {
                text.push_str("\n\n");
                text.push_str(&config.install_hint);
            }
            return Err(text);
        }
        Err(e) => {
            return Err(format!(
                "exec: fork/exec {}: {}",
                config.command,
                crate::kubeconfig::go_errno_text(&e)
            ));
        }
    };
    if !output.status.success() {
        let code = output.status.code().unwrap_or(-1);
        return Err(format!(
            "exec: executable {} failed with exit code {code}",
            config.command
        ));
    }
    parse(&config.api_version, &output.stdout)
}

/// Parses and checks the plugin's stdout.
pub(super) fn parse(api_version: &str, stdout: &[u8]) -> Result<ExecOutput, String> {
    let cred: ExecCredential =
        serde_json::from_slice(stdout).map_err(|e| format!("decoding stdout: {e}"))?;
    if cred.kind != "ExecCredential" && !cred.kind.is_empty() {
        return Err(format!("decoding stdout: unexpected kind {:?}", cred.kind));
    }
    if cred.api_version != api_version {
        return Err(format!(
            "exec plugin is configured to use API version {api_version}, plugin returned version {}",
            cred.api_version
        ));
    }
    let status = cred
        .status
        .ok_or("exec plugin didn't return a status field")?;
    let has_cert = !status.client_certificate_data.is_empty();
    let has_key = !status.client_key_data.is_empty();
    if has_cert != has_key {
        return Err("exec plugin returned only certificate or key, not both".to_owned());
    }
    if status.token.is_empty() && !has_cert {
        return Err("exec plugin didn't return a token or cert/key pair".to_owned());
    }
    if status.token.is_empty() {
        return Err(
            "exec plugin returned a client certificate, which kproxy does not support yet"
                .to_owned(),
        );
    }
    let expiry = match status.expiration_timestamp.as_deref() {
        None | Some("") => None,
        Some(ts) => Some(
            super::time::parse_rfc3339(ts)
                .ok_or_else(|| format!("decoding stdout: invalid expirationTimestamp {ts:?}"))?,
        ),
    };
    Ok(ExecOutput {
        token: status.token,
        expiry,
    })
}
