//! Real kubeconfig files for the fake API server, written into a per-test temporary directory:
//! token (default), basic auth, `tokenFile`, an exec plugin script, impersonation (`as`), a
//! server path, a wrong or missing CA, and a plain-HTTP server.
//!
//! It must not start processes; backends read the files it writes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::apiserver::FakeApiServer;

/// A temporary directory removed on drop.
pub struct TempDir {
    path: PathBuf,
}

// === impl TempDir ===

impl TempDir {
    /// Creates a fresh directory under the system temp dir.
    pub fn new(tag: &str) -> Result<Self> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path =
            std::env::temp_dir().join(format!("kproxy-{tag}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `name` in the directory and returns its path.
    pub fn write(&self, name: &str, contents: &[u8]) -> Result<PathBuf> {
        let p = self.path.join(name);
        std::fs::write(&p, contents).with_context(|| format!("writing {}", p.display()))?;
        Ok(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Which kubeconfig a scenario runs with (`kubeconfig = "…"` in a scenario file).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// `token: TOK`.
    #[default]
    Token,
    /// `username: alice`, `password: s3cret`.
    Basic,
    /// `tokenFile: <dir>/token` holding `TOK`.
    TokenFile,
    /// An exec plugin script printing an `ExecCredential` with `TOK`.
    Exec,
    /// Token plus `as: jane`, `as-groups: [g1, g2]`, `as-user-extra: {scopes: [s1]}`.
    Impersonate,
    /// Token, server `https://API/base/path`.
    ServerPath,
    /// Token, but the CA file holds a CA that did not sign the server certificate.
    WrongCa,
    /// A plain `http://` server (the fake runs without TLS or authentication).
    PlainHttp,
    /// Token and the fake's CA, but the server is a loopback port nobody listens on.
    ClosedPort,
}

// === impl Variant ===

impl Variant {
    /// Whether the fake must run with TLS for this variant.
    pub fn tls(self) -> bool {
        self != Variant::PlainHttp
    }
}

/// A written kubeconfig and what went into it.
pub struct Kubeconfig {
    /// The kubeconfig file.
    pub path: PathBuf,
    /// The variant written.
    pub variant: Variant,
    /// The credential the proxy should send upstream, as plugin-config JSON
    /// (`{"token": …}` or `{"basic": {…}}`), `None` for plain HTTP.
    pub credentials: Option<Value>,
    /// The token file (for rotation tests).
    pub token_file: Option<PathBuf>,
    /// The server's `host:port` as written (the fake's, except for `closed-port`).
    pub server_addr: std::net::SocketAddr,
}

/// Writes a kubeconfig of `variant` for `fake` into `dir` (JSON, which kubeconfig loaders accept
/// as YAML).
pub fn write(dir: &TempDir, fake: &FakeApiServer, variant: Variant) -> Result<Kubeconfig> {
    let opts = fake.options();
    if variant.tls() != opts.tls {
        bail!(
            "kubeconfig variant {variant:?} needs a fake with tls = {}",
            variant.tls()
        );
    }
    let mut server_addr = fake.addr();
    if variant == Variant::ClosedPort {
        server_addr.set_port(crate::backend::free_port()?);
    }
    let scheme = if opts.tls { "https" } else { "http" };
    let mut server = format!("{scheme}://{server_addr}");
    if variant == Variant::ServerPath {
        server.push_str("/base/path");
    }
    let mut cluster = json!({ "server": server });
    if let Some(ca) = fake.ca_pem() {
        let ca = match variant {
            Variant::WrongCa => crate::tls::Pki::wrong_ca_pem()?,
            _ => ca.to_owned(),
        };
        let ca_path = dir.write("ca.crt", ca.as_bytes())?;
        cluster["certificate-authority"] = json!(ca_path);
    }
    let token = opts.token.clone();
    let mut token_file = None;
    let token_creds = json!({ "token": token });
    let (user, credentials) = match variant {
        Variant::Token | Variant::ServerPath | Variant::WrongCa | Variant::ClosedPort => {
            (json!({ "token": token }), Some(token_creds))
        }
        Variant::Impersonate => (
            json!({
                "token": token,
                "as": "jane",
                "as-groups": ["g1", "g2"],
                "as-user-extra": { "scopes": ["s1"] },
            }),
            Some(token_creds),
        ),
        Variant::Basic => {
            let (u, p) = opts.basic.clone().unwrap_or_default();
            (
                json!({ "username": u, "password": p }),
                Some(json!({ "basic": { "username": u, "password": p } })),
            )
        }
        Variant::TokenFile => {
            let p = dir.write("token", format!("{token}\n").as_bytes())?;
            token_file = Some(p.clone());
            (json!({ "tokenFile": p }), Some(token_creds))
        }
        Variant::Exec => {
            let script = format!(
                "#!/bin/sh\ncat <<'EOF'\n{}\nEOF\n",
                json!({
                    "apiVersion": "client.authentication.k8s.io/v1beta1",
                    "kind": "ExecCredential",
                    "status": { "token": token },
                })
            );
            let p = dir.write("exec-credential.sh", script.as_bytes())?;
            make_executable(&p)?;
            (
                json!({ "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1beta1",
                    "command": p,
                    "interactiveMode": "Never",
                }}),
                Some(token_creds),
            )
        }
        Variant::PlainHttp => (json!({ "token": token }), None),
    };
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "fake", "cluster": cluster }],
        "users": [{ "name": "fake-user", "user": user }],
        "contexts": [{ "name": "fake", "context": { "cluster": "fake", "user": "fake-user" } }],
        "current-context": "fake",
        "preferences": {},
    });
    let path = dir.write("kubeconfig", &serde_json::to_vec_pretty(&doc)?)?;
    Ok(Kubeconfig {
        path,
        variant,
        credentials,
        token_file,
        server_addr,
    })
}

fn make_executable(p: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut perm = std::fs::metadata(p)?.permissions();
    perm.set_mode(0o755);
    std::fs::set_permissions(p, perm)?;
    Ok(())
}
