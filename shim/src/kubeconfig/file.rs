//! Kubeconfig files as written on disk (serde types) and clientcmd's loading rules: the file
//! list (`--kubeconfig`, `$KUBECONFIG`, `~/.kube/config`), relative paths resolved against each
//! file's directory, and the merge (first file wins per name; first non-empty current-context).
//!
//! It must not decide which context is used or touch TLS; that is `resolve.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Env, KubeconfigError, go_os_error};

/// One kubeconfig file (`apiVersion: v1`, `kind: Config`); unknown fields are ignored as in Go.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FileConfig {
    clusters: Option<Vec<Named<ClusterEntry>>>,
    users: Option<Vec<NamedUser>>,
    contexts: Option<Vec<Named<ContextEntry>>>,
    #[serde(rename = "current-context")]
    current_context: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Named<T> {
    name: String,
    /// The `cluster:` or `context:` body.
    #[serde(rename = "cluster", alias = "context")]
    entry: Option<T>,
}

#[derive(Debug, Deserialize)]
struct NamedUser {
    name: String,
    user: Option<UserEntry>,
}

/// A `clusters[].cluster` entry.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "kebab-case")]
pub(crate) struct ClusterEntry {
    pub(crate) server: Option<String>,
    pub(crate) certificate_authority: Option<String>,
    pub(crate) certificate_authority_data: Option<String>,
    pub(crate) insecure_skip_tls_verify: Option<bool>,
    pub(crate) tls_server_name: Option<String>,
    pub(crate) proxy_url: Option<String>,
    pub(crate) disable_compression: Option<bool>,
}

/// A `users[].user` entry.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "kebab-case")]
pub(crate) struct UserEntry {
    pub(crate) client_certificate: Option<String>,
    pub(crate) client_certificate_data: Option<String>,
    pub(crate) client_key: Option<String>,
    pub(crate) client_key_data: Option<String>,
    pub(crate) token: Option<String>,
    #[serde(rename = "tokenFile")]
    pub(crate) token_file: Option<String>,
    #[serde(rename = "as")]
    pub(crate) as_user: Option<String>,
    pub(crate) as_uid: Option<String>,
    pub(crate) as_groups: Option<Vec<String>>,
    pub(crate) as_user_extra: Option<BTreeMap<String, Vec<String>>>,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) exec: Option<ExecEntry>,
    pub(crate) auth_provider: Option<serde_yaml::Value>,
}

/// A `users[].user.exec` entry.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ExecEntry {
    pub(crate) command: String,
    pub(crate) args: Option<Vec<String>>,
    pub(crate) env: Option<Vec<ExecEnvVar>>,
    pub(crate) api_version: String,
    pub(crate) install_hint: String,
    pub(crate) provide_cluster_info: bool,
    pub(crate) interactive_mode: String,
}

/// One `exec.env` entry.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub(crate) struct ExecEnvVar {
    pub(crate) name: String,
    pub(crate) value: String,
}

/// A `contexts[].context` entry.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub(crate) struct ContextEntry {
    pub(crate) cluster: Option<String>,
    pub(crate) user: Option<String>,
    pub(crate) namespace: Option<String>,
}

/// The merged view of all loaded files.
#[derive(Debug, Default)]
pub(crate) struct Merged {
    pub(crate) clusters: BTreeMap<String, ClusterEntry>,
    pub(crate) users: BTreeMap<String, UserEntry>,
    pub(crate) contexts: BTreeMap<String, ContextEntry>,
    pub(crate) current_context: String,
}

/// The files to read, in precedence order, and whether a missing file is an error.
pub(crate) fn file_list(explicit: &str, env: &Env) -> Vec<(PathBuf, bool)> {
    if !explicit.is_empty() {
        return vec![(PathBuf::from(explicit), true)];
    }
    if let Some(list) = env.kubeconfig.as_deref().filter(|l| !l.is_empty()) {
        let mut seen = Vec::new();
        for part in list.split(':').filter(|p| !p.is_empty()) {
            let path = PathBuf::from(part);
            if !seen.iter().any(|(p, _)| *p == path) {
                seen.push((path, false));
            }
        }
        return seen;
    }
    env.home
        .iter()
        .map(|home| (home.join(".kube").join("config"), false))
        .collect()
}

/// Loads and merges `files`.
pub(crate) fn load(files: &[(PathBuf, bool)]) -> Result<Merged, KubeconfigError> {
    let mut merged = Merged::default();
    for (path, required) in files {
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KubeconfigError::Missing(go_os_error("stat", path, &e)));
            }
            Err(e) => return Err(KubeconfigError::Load(go_os_error("open", path, &e))),
        };
        let file = parse(&text).map_err(|message| {
            KubeconfigError::Load(format!(
                "error loading config file {:?}: {message}",
                path.display().to_string()
            ))
        })?;
        merge_file(&mut merged, file, path.parent().unwrap_or(Path::new("")));
    }
    Ok(merged)
}

fn parse(text: &[u8]) -> Result<FileConfig, String> {
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(FileConfig::default());
    }
    serde_yaml::from_slice::<Option<FileConfig>>(text)
        .map(Option::unwrap_or_default)
        .map_err(|e| e.to_string())
}

fn merge_file(merged: &mut Merged, file: FileConfig, base: &Path) {
    for named in file.clusters.unwrap_or_default() {
        let mut entry = named.entry.unwrap_or_default();
        resolve_path(&mut entry.certificate_authority, base);
        merged.clusters.entry(named.name).or_insert(entry);
    }
    for named in file.users.unwrap_or_default() {
        let mut entry = named.user.unwrap_or_default();
        resolve_path(&mut entry.client_certificate, base);
        resolve_path(&mut entry.client_key, base);
        resolve_path(&mut entry.token_file, base);
        if let Some(exec) = entry.exec.as_mut() {
            // Only a command with a path separator is file-relative; a bare name uses $PATH.
            if exec.command.contains('/') && !Path::new(&exec.command).is_absolute() {
                exec.command = base.join(&exec.command).display().to_string();
            }
        }
        merged.users.entry(named.name).or_insert(entry);
    }
    for named in file.contexts.unwrap_or_default() {
        merged
            .contexts
            .entry(named.name)
            .or_insert(named.entry.unwrap_or_default());
    }
    if merged.current_context.is_empty() {
        merged.current_context = file.current_context.unwrap_or_default();
    }
}

fn resolve_path(field: &mut Option<String>, base: &Path) {
    if let Some(value) = field.as_mut().filter(|v| !v.is_empty())
        && !Path::new(value.as_str()).is_absolute()
    {
        *value = base.join(value.as_str()).display().to_string();
    }
}
