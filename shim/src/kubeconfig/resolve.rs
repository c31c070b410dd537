//! clientcmd's `DirectClientConfig` + `DeferredLoadingClientConfig`: picks context, cluster and
//! user, merges the command-line overrides, validates with kubectl's messages, falls back to the
//! in-cluster configuration, and turns the result into a [`Target`].
//!
//! Pure apart from reading token/CA files named by the configuration; no network.

use std::path::PathBuf;

use base64::Engine as _;

use super::file::{ClusterEntry, Merged, UserEntry};
use super::tls::{self, PemSource, TlsInputs};
use super::{
    Cluster, CredentialSource, Env, ExecConfig, Impersonate, KubeconfigError, Overrides, Target,
    go_os_error,
};

fn set(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

fn override_str(field: &mut Option<String>, value: &str) {
    if !value.is_empty() {
        *field = Some(value.to_owned());
    }
}

/// The server used when nothing is configured: `$KUBERNETES_MASTER` or `http://localhost:8080`.
fn default_server(env: &Env) -> String {
    env.kubernetes_master
        .clone()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "http://localhost:8080".to_owned())
}

pub(super) fn resolve(
    merged: &Merged,
    overrides: &Overrides,
    env: &Env,
) -> Result<Target, KubeconfigError> {
    let context_name = if overrides.context.is_empty() {
        merged.current_context.clone()
    } else {
        overrides.context.clone()
    };
    let context = merged
        .contexts
        .get(&context_name)
        .cloned()
        .unwrap_or_default();
    let user_name = if overrides.user.is_empty() {
        context.user.clone().unwrap_or_default()
    } else {
        overrides.user.clone()
    };
    let cluster_name = if overrides.cluster.is_empty() {
        context.cluster.clone().unwrap_or_default()
    } else {
        overrides.cluster.clone()
    };

    // Same order as clientcmd: auth info, context, cluster.
    let file_user = merged.users.get(&user_name);
    if !user_name.is_empty() && file_user.is_none() {
        return Err(KubeconfigError::AuthInfoNotFound(user_name));
    }
    if !context_name.is_empty() && !merged.contexts.contains_key(&context_name) {
        return Err(KubeconfigError::ContextNotFound(context_name));
    }
    let file_cluster = merged.clusters.get(&cluster_name);
    if !cluster_name.is_empty() && file_cluster.is_none() {
        return Err(KubeconfigError::ClusterNotFound(cluster_name));
    }

    let cluster = merge_cluster(file_cluster, overrides, env);
    let user = merge_user(file_user, overrides);

    let mut errors = validate_user(&user_name, &user);
    errors.extend(validate_cluster(&cluster_name, &cluster));
    if !errors.is_empty() {
        return Err(KubeconfigError::Invalid(errors));
    }

    let server = set(&cluster.server).unwrap_or_default().to_owned();
    let is_default = server == default_server(env) && !server.starts_with("https://");
    if is_default && in_cluster_possible(env) {
        return in_cluster(overrides, env);
    }
    build_target(&cluster, &user)
}

fn merge_cluster(file: Option<&ClusterEntry>, o: &Overrides, env: &Env) -> ClusterEntry {
    let mut c = file.cloned().unwrap_or_default();
    if set(&c.server).is_none() {
        c.server = Some(default_server(env));
    }
    override_str(&mut c.server, &o.server);
    override_str(&mut c.certificate_authority, &o.certificate_authority);
    // An override of --insecure-skip-tls-verify or --certificate-authority replaces the
    // kubeconfig's CA and insecure settings together.
    if o.insecure_skip_tls_verify || !o.certificate_authority.is_empty() {
        c.insecure_skip_tls_verify = Some(o.insecure_skip_tls_verify);
        c.certificate_authority = Some(o.certificate_authority.clone()).filter(|s| !s.is_empty());
        c.certificate_authority_data = None;
    }
    // --tls-server-name wins; --server alone clears the kubeconfig's tls-server-name.
    if !o.tls_server_name.is_empty() || !o.server.is_empty() {
        c.tls_server_name = Some(o.tls_server_name.clone()).filter(|s| !s.is_empty());
    }
    c
}

fn merge_user(file: Option<&UserEntry>, o: &Overrides) -> UserEntry {
    let mut u = file.cloned().unwrap_or_default();
    override_str(&mut u.token, &o.token);
    override_str(&mut u.username, &o.username);
    override_str(&mut u.password, &o.password);
    override_str(&mut u.client_certificate, &o.client_certificate);
    override_str(&mut u.client_key, &o.client_key);
    override_str(&mut u.as_user, &o.as_user);
    override_str(&mut u.as_uid, &o.as_uid);
    if !o.as_groups.is_empty() {
        u.as_groups = Some(o.as_groups.clone());
    }
    u
}

/// clientcmd `validateAuthInfo`.
fn validate_user(name: &str, u: &UserEntry) -> Vec<String> {
    let mut errors = Vec::new();
    let mut methods = Vec::new();
    if set(&u.token).is_some() {
        methods.push("token");
    }
    if set(&u.username).is_some() || set(&u.password).is_some() {
        methods.push("basicAuth");
    }
    let (cert, cert_data) = (set(&u.client_certificate), set(&u.client_certificate_data));
    let (key, key_data) = (set(&u.client_key), set(&u.client_key_data));
    if cert.is_some() || cert_data.is_some() {
        if cert.is_some() && cert_data.is_some() {
            errors.push(format!("client-cert-data and client-cert are both specified for {name}. client-cert-data will override."));
        }
        if key.is_some() && key_data.is_some() {
            errors.push(format!("client-key-data and client-key are both specified for {name}; client-key-data will override"));
        }
        if key.is_none() && key_data.is_none() {
            errors.push(format!("client-key-data or client-key must be specified for {name} to use the clientCert authentication method."));
        }
        if let Some(path) = cert
            && let Err(e) = std::fs::File::open(path)
        {
            errors.push(format!(
                "unable to read client-cert {path} for {name} due to {}",
                go_os_error("open", path.as_ref(), &e)
            ));
        }
        if let Some(path) = key
            && let Err(e) = std::fs::File::open(path)
        {
            errors.push(format!(
                "unable to read client-key {path} for {name} due to {}",
                go_os_error("open", path.as_ref(), &e)
            ));
        }
    }
    if let Some(exec) = &u.exec {
        if u.auth_provider.is_some() {
            errors.push(format!(
                "authProvider cannot be provided in combination with an exec plugin for {name}"
            ));
        }
        if exec.command.is_empty() {
            errors.push(format!(
                "command must be specified for {name} to use exec authentication plugin"
            ));
        }
        if exec.api_version.is_empty() {
            errors.push(format!(
                "apiVersion must be specified for {name} to use exec authentication plugin"
            ));
        }
        if exec.env.iter().flatten().any(|v| v.name.is_empty()) {
            errors.push(format!(
                "env variable name must be specified for {name} to use exec authentication plugin"
            ));
        }
    }
    if methods.len() > 1 {
        errors.push(format!(
            "more than one authentication method found for {name}; found [{}], only one is allowed",
            methods.join(" ")
        ));
    }
    let wants_extra = set(&u.as_uid).is_some()
        || u.as_groups.as_ref().is_some_and(|g| !g.is_empty())
        || u.as_user_extra.as_ref().is_some_and(|e| !e.is_empty());
    if wants_extra && set(&u.as_user).is_none() {
        errors.push(format!(
            "requesting uid, groups or user-extra for {name} without impersonating a user"
        ));
    }
    errors
}

/// clientcmd `validateClusterInfo`.
fn validate_cluster(name: &str, c: &ClusterEntry) -> Vec<String> {
    let mut errors = Vec::new();
    if set(&c.certificate_authority).is_some() && set(&c.certificate_authority_data).is_some() {
        errors.push(format!("certificate-authority-data and certificate-authority are both specified for {name}. certificate-authority-data will override."));
    }
    if let Some(path) = set(&c.certificate_authority)
        && let Err(e) = std::fs::File::open(path)
    {
        errors.push(format!(
            "unable to read certificate-authority {path} for {name} due to {}",
            go_os_error("open", path.as_ref(), &e)
        ));
    }
    errors
}

fn in_cluster_possible(env: &Env) -> bool {
    let nonempty = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    nonempty(&env.service_host)
        && nonempty(&env.service_port)
        && std::fs::metadata(env.service_account_dir.join("token")).is_ok()
}

/// client-go `inClusterClientConfig.ClientConfig`, with `--server`, `--token` and
/// `--certificate-authority` overriding.
fn in_cluster(o: &Overrides, env: &Env) -> Result<Target, KubeconfigError> {
    let host = env.service_host.clone().unwrap_or_default();
    let port = env.service_port.clone().unwrap_or_default();
    let joined = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut cluster = ClusterEntry {
        server: Some(format!("https://{joined}")),
        ..ClusterEntry::default()
    };
    override_str(&mut cluster.server, &o.server);
    let ca = env.service_account_dir.join("ca.crt");
    if !o.certificate_authority.is_empty() {
        cluster.certificate_authority = Some(o.certificate_authority.clone());
    } else if tls::load_roots(&PemSource::File(ca.clone())).is_ok() {
        cluster.certificate_authority = Some(ca.display().to_string());
    } else {
        tracing::error!(
            "Expected to load root CA config from {}, but got err",
            ca.display()
        );
    }
    let mut user = UserEntry::default();
    if o.token.is_empty() {
        user.token_file = Some(env.service_account_dir.join("token").display().to_string());
    } else {
        user.token = Some(o.token.clone());
    }
    let mut target = build_target(&cluster, &user)?;
    target.in_cluster = true;
    Ok(target)
}

fn decode(field: &str, value: &str) -> Result<Vec<u8>, KubeconfigError> {
    base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|e| KubeconfigError::Load(format!("{field}: illegal base64 data: {e}")))
}

fn build_target(c: &ClusterEntry, u: &UserEntry) -> Result<Target, KubeconfigError> {
    let raw = set(&c.server).unwrap_or_default();
    let has_tls_settings = set(&c.certificate_authority).is_some()
        || set(&c.certificate_authority_data).is_some()
        || c.insecure_skip_tls_verify == Some(true)
        || set(&u.client_certificate).is_some()
        || set(&u.client_certificate_data).is_some();
    let url = ServerUrl::parse(raw, has_tls_settings)?;
    let secure = url.scheme == "https";
    let server_name_text = set(&c.tls_server_name).map_or_else(|| url.host.clone(), str::to_owned);
    let tls_server_name = tls::server_name(&server_name_text)?;
    let server = http::Uri::builder()
        .scheme(url.scheme.as_str())
        .authority(url.authority_with_port())
        .path_and_query("/")
        .build()
        .map_err(|e| KubeconfigError::Server(format!("invalid server URL {raw:?}: {e}")))?;
    let mut target = Target {
        cluster: Cluster {
            server,
            server_path: url.path.clone(),
            host_header: url.host_header.clone(),
            tls: None,
            tls_server_name,
        },
        credential: CredentialSource::None,
        impersonate: None,
        disable_compression: c.disable_compression.unwrap_or(false),
        in_cluster: false,
        tls_material: None,
    };
    // "only try to read the auth information if we are secure"
    if !secure {
        return Ok(target);
    }
    let ca = match (
        set(&c.certificate_authority_data),
        set(&c.certificate_authority),
    ) {
        (Some(data), _) => Some(PemSource::Data(decode("certificate-authority-data", data)?)),
        (None, Some(path)) => Some(PemSource::File(PathBuf::from(path))),
        (None, None) => None,
    };
    let cert = match (set(&u.client_certificate_data), set(&u.client_certificate)) {
        (Some(data), _) => Some(PemSource::Data(decode("client-certificate-data", data)?)),
        (None, Some(path)) => Some(PemSource::File(PathBuf::from(path))),
        (None, None) => None,
    };
    let key = match (set(&u.client_key_data), set(&u.client_key)) {
        (Some(data), _) => Some(PemSource::Data(decode("client-key-data", data)?)),
        (None, Some(path)) => Some(PemSource::File(PathBuf::from(path))),
        (None, None) => None,
    };
    let insecure = c.insecure_skip_tls_verify == Some(true);
    let ca_data_for_exec = match &ca {
        Some(PemSource::Data(d)) => d.clone(),
        Some(PemSource::File(p)) => std::fs::read(p).unwrap_or_default(),
        None => Vec::new(),
    };
    let has_cert = cert.is_some();
    target.tls_material = Some(super::TlsMaterial {
        ca: ca.clone(),
        cert: cert.clone(),
        key: key.clone(),
        insecure,
    });
    target.cluster.tls = Some(tls::client_config(TlsInputs {
        ca,
        cert,
        key,
        insecure,
    })?);
    target.credential = credential(c, u, has_cert, raw, insecure, ca_data_for_exec)?;
    target.impersonate = impersonate(u);
    Ok(target)
}

fn credential(
    c: &ClusterEntry,
    u: &UserEntry,
    has_cert: bool,
    server: &str,
    insecure: bool,
    ca_data: Vec<u8>,
) -> Result<CredentialSource, KubeconfigError> {
    let token = match (set(&u.token), set(&u.token_file)) {
        (Some(token), Some(path)) => Some(CredentialSource::TokenFile {
            path: path.into(),
            initial: token.to_owned(),
        }),
        (Some(token), None) => Some(CredentialSource::Token(token.to_owned())),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                KubeconfigError::Credentials(go_os_error("open", path.as_ref(), &e))
            })?;
            Some(CredentialSource::TokenFile {
                path: path.into(),
                initial: text.trim().to_owned(),
            })
        }
        (None, None) => None,
    };
    let basic = set(&u.username).is_some() || set(&u.password).is_some();
    if token.is_some() && basic {
        return Err(KubeconfigError::Credentials(
            "username/password or bearer token may be set, but not both".to_owned(),
        ));
    }
    if let Some(token) = token {
        return Ok(token);
    }
    if basic {
        return Ok(CredentialSource::Basic {
            username: u.username.clone().unwrap_or_default(),
            password: u.password.clone().unwrap_or_default(),
        });
    }
    match &u.exec {
        Some(exec) if !has_cert => Ok(CredentialSource::Exec(ExecConfig {
            command: exec.command.clone(),
            args: exec.args.clone().unwrap_or_default(),
            env: exec
                .env
                .iter()
                .flatten()
                .map(|v| (v.name.clone(), v.value.clone()))
                .collect(),
            api_version: exec.api_version.clone(),
            install_hint: exec.install_hint.clone(),
            provide_cluster_info: exec.provide_cluster_info,
            cluster_server: server.to_owned(),
            cluster_tls_server_name: c.tls_server_name.clone().unwrap_or_default(),
            cluster_insecure: insecure,
            cluster_ca_data: ca_data,
        })),
        _ => Ok(CredentialSource::None),
    }
}

fn impersonate(u: &UserEntry) -> Option<Impersonate> {
    let user = set(&u.as_user)?.to_owned();
    Some(Impersonate {
        user,
        groups: u.as_groups.clone().unwrap_or_default(),
        uid: u.as_uid.clone().unwrap_or_default(),
        extra: u.as_user_extra.clone().unwrap_or_default(),
    })
}

/// The parts of a server URL that matter (Go `url.Parse` after client-go's scheme defaulting).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ServerUrl {
    pub(super) scheme: String,
    /// Host without brackets.
    pub(super) host: String,
    /// Port as written, if any.
    pub(super) port: Option<u16>,
    /// `host[:port]` as written (brackets kept).
    pub(super) host_header: String,
    /// Path, `""` for none or `/`.
    pub(super) path: String,
}

impl ServerUrl {
    /// Parses `raw`; without a scheme, `https://` if TLS settings exist, else `http://`.
    pub(super) fn parse(raw: &str, default_tls: bool) -> Result<Self, KubeconfigError> {
        let bad = |why: &str| KubeconfigError::Server(format!("invalid server URL {raw:?}: {why}"));
        let with_scheme = if raw.contains("://") {
            raw.to_owned()
        } else if default_tls {
            format!("https://{raw}")
        } else {
            format!("http://{raw}")
        };
        let (scheme, rest) = with_scheme
            .split_once("://")
            .ok_or_else(|| bad("no scheme"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(bad("scheme must be http or https"));
        }
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        let mut path = rest[end..]
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .to_owned();
        if path == "/" {
            path.clear();
        }
        let host_header = authority.rsplit('@').next().unwrap_or_default().to_owned();
        let (host, port) = if let Some(stripped) = host_header.strip_prefix('[') {
            let (h, after) = stripped
                .split_once(']')
                .ok_or_else(|| bad("missing ']' in host"))?;
            (h.to_owned(), after.strip_prefix(':'))
        } else {
            match host_header.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (host_header.clone(), None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            Some("") | None => None,
            Some(p) => Some(p.parse::<u16>().map_err(|_| bad("invalid port"))?),
        };
        Ok(Self {
            scheme,
            host,
            port,
            host_header,
            path,
        })
    }

    /// `host:port` with the scheme's default port made explicit (IPv6 bracketed).
    pub(super) fn authority_with_port(&self) -> String {
        let port = self
            .port
            .unwrap_or(if self.scheme == "https" { 443 } else { 80 });
        if self.host.contains(':') {
            format!("[{}]:{port}", self.host)
        } else {
            format!("{}:{port}", self.host)
        }
    }
}
