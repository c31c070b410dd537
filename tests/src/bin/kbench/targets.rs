//! The targets under test and how each is started: `kubectl proxy`, the shim, Envoy with the
//! filter (bootstrap from `shim envoy-bootstrap`), Envoy with the native configuration in
//! `bench/envoy-native.yaml.tmpl`, and the stand-in itself (the ceiling).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

use crate::load::Endpoint;
use crate::standin::TOKEN;

/// A target of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `kubectl proxy` (the baseline).
    Kubectl,
    /// Our shim.
    Shim,
    /// Envoy running the filter.
    EnvoyFilter,
    /// Envoy with an equivalent native configuration.
    EnvoyNative,
    /// The stand-in API server, directly (TLS + token): the ceiling.
    Direct,
}

impl Kind {
    /// Every target, in report order.
    pub(crate) const ALL: [Kind; 5] = [
        Kind::Kubectl,
        Kind::Shim,
        Kind::EnvoyFilter,
        Kind::EnvoyNative,
        Kind::Direct,
    ];

    /// The short name used on the command line and in the report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Kubectl => "kubectl-proxy",
            Kind::Shim => "shim",
            Kind::EnvoyFilter => "envoy+filter",
            Kind::EnvoyNative => "envoy-native",
            Kind::Direct => "stand-in (ceiling)",
        }
    }

    /// Parses a command-line name.
    pub(crate) fn from_arg(s: &str) -> Option<Kind> {
        match s {
            "kubectl" | "kubectl-proxy" => Some(Kind::Kubectl),
            "shim" => Some(Kind::Shim),
            "envoy" | "envoy-filter" | "envoy+filter" => Some(Kind::EnvoyFilter),
            "native" | "envoy-native" => Some(Kind::EnvoyNative),
            "direct" | "standin" | "stand-in" => Some(Kind::Direct),
            _ => None,
        }
    }
}

/// What starting a target needs.
pub(crate) struct Setup {
    /// Scratch directory (kubeconfig, CA, bootstraps, logs).
    pub(crate) dir: PathBuf,
    /// The kubeconfig pointing at the stand-in.
    pub(crate) kubeconfig: PathBuf,
    /// The stand-in's CA file.
    pub(crate) ca_file: PathBuf,
    /// The stand-in's address.
    pub(crate) api: std::net::SocketAddr,
    /// TLS client configuration trusting the stand-in (for the direct target).
    pub(crate) client_tls: Arc<rustls::ClientConfig>,
    /// `kubectl`.
    pub(crate) kubectl: PathBuf,
    /// The (release) shim.
    pub(crate) shim: PathBuf,
    /// The Envoy binary (the real one, not the Python launcher).
    pub(crate) envoy: PathBuf,
    /// The filter `.wasm` Envoy loads.
    pub(crate) wasm: PathBuf,
    /// The native Envoy template.
    pub(crate) native_template: PathBuf,
    /// Envoy `--concurrency` and the shim's worker count are left at their defaults; this is
    /// the number of CPUs kbench saw.
    pub(crate) cpus: usize,
}

/// A started target.
pub(crate) struct Running {
    /// The process (none for the stand-in).
    pub(crate) child: Option<Child>,
    /// Where to send requests.
    pub(crate) endpoint: Endpoint,
    /// When the process was spawned.
    pub(crate) started: Instant,
}

impl Running {
    /// The process id, for `/proc` readings.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A free loopback port.
pub(crate) fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Writes the kubeconfig (token user, the stand-in's CA).
pub(crate) fn write_kubeconfig(
    dir: &Path,
    api: std::net::SocketAddr,
    ca: &Path,
) -> Result<PathBuf> {
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "bench", "cluster": {
            "server": format!("https://{api}"),
            "certificate-authority": ca,
        }}],
        "users": [{ "name": "bench", "user": { "token": TOKEN } }],
        "contexts": [{ "name": "bench", "context": { "cluster": "bench", "user": "bench" } }],
        "current-context": "bench",
        "preferences": {},
    });
    let path = dir.join("kubeconfig");
    std::fs::write(&path, serde_json::to_vec_pretty(&doc)?)?;
    Ok(path)
}

/// The real Envoy binary behind a launcher script (`.venv/bin/envoy` is a Python wrapper that
/// `exec`s `site-packages/envoy/_bin/envoy`; running it directly keeps Python out of the start
/// time).
pub(crate) fn real_envoy(bin: &Path) -> PathBuf {
    let is_script = std::fs::read(bin)
        .map(|b| b.starts_with(b"#!"))
        .unwrap_or(false);
    if !is_script {
        return bin.to_path_buf();
    }
    let venv = bin.parent().and_then(Path::parent);
    if let Some(lib) = venv.map(|v| v.join("lib"))
        && let Ok(entries) = std::fs::read_dir(&lib)
    {
        for e in entries.flatten() {
            let candidate = e.path().join("site-packages/envoy/_bin/envoy");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    bin.to_path_buf()
}

fn log_file(setup: &Setup, kind: Kind) -> Result<std::fs::File> {
    let name = kind.name().replace(['+', ' ', '(', ')'], "_");
    Ok(std::fs::File::create(
        setup.dir.join(format!("{name}.log")),
    )?)
}

/// Starts `kind`; `shim_env` is extra environment for the shim (the wasm cache directory).
pub(crate) fn start(setup: &Setup, kind: Kind, shim_env: &[(&str, &Path)]) -> Result<Running> {
    let plain = |port: u16| Endpoint {
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        tls: None,
    };
    let spawn = |mut cmd: Command| -> Result<(Child, Instant)> {
        let log = log_file(setup, kind)?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .env_remove("KUBECONFIG");
        let started = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", kind.name()))?;
        Ok((child, started))
    };
    match kind {
        Kind::Direct => Ok(Running {
            child: None,
            endpoint: Endpoint {
                addr: setup.api,
                tls: Some(setup.client_tls.clone()),
            },
            started: Instant::now(),
        }),
        Kind::Kubectl => {
            let port = free_port()?;
            let mut cmd = Command::new(&setup.kubectl);
            cmd.arg("proxy")
                .arg(format!("--port={port}"))
                .arg(format!("--kubeconfig={}", setup.kubeconfig.display()));
            let (child, started) = spawn(cmd)?;
            Ok(Running {
                child: Some(child),
                endpoint: plain(port),
                started,
            })
        }
        Kind::Shim => {
            let port = free_port()?;
            let mut cmd = Command::new(&setup.shim);
            // The same module Envoy loads (not the one embedded at build time).
            cmd.arg(format!("--port={port}"))
                .arg(format!("--kubeconfig={}", setup.kubeconfig.display()))
                .arg(format!("--filter={}", setup.wasm.display()));
            for (k, v) in shim_env {
                cmd.env(k, v);
            }
            let (child, started) = spawn(cmd)?;
            Ok(Running {
                child: Some(child),
                endpoint: plain(port),
                started,
            })
        }
        Kind::EnvoyFilter | Kind::EnvoyNative => {
            let port = free_port()?;
            let cfg = setup
                .dir
                .join(format!("{}.yaml", kind.name().replace('+', "-")));
            if kind == Kind::EnvoyFilter {
                let out = Command::new(&setup.shim)
                    .arg("envoy-bootstrap")
                    .arg(format!("--port={port}"))
                    .arg(format!("--kubeconfig={}", setup.kubeconfig.display()))
                    .arg(format!("--wasm-path={}", setup.wasm.display()))
                    .arg("--envoy-admin-address=")
                    .arg(format!("--output={}", cfg.display()))
                    .env_remove("KUBECONFIG")
                    .output()
                    .context("running shim envoy-bootstrap")?;
                if !out.status.success() {
                    bail!(
                        "shim envoy-bootstrap failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            } else {
                let tmpl = std::fs::read_to_string(&setup.native_template)
                    .with_context(|| format!("reading {}", setup.native_template.display()))?;
                let yaml = tmpl
                    .replace("{{LISTEN_PORT}}", &port.to_string())
                    .replace("{{API_PORT}}", &setup.api.port().to_string())
                    .replace("{{CA_FILE}}", &setup.ca_file.display().to_string())
                    .replace("{{TOKEN}}", TOKEN);
                std::fs::write(&cfg, yaml)?;
            }
            let mut cmd = Command::new(&setup.envoy);
            cmd.arg("-c")
                .arg(&cfg)
                .arg("--concurrency")
                .arg(setup.cpus.to_string())
                .args(["--disable-hot-restart", "--log-level", "error"]);
            let (child, started) = spawn(cmd)?;
            Ok(Running {
                child: Some(child),
                endpoint: plain(port),
                started,
            })
        }
    }
}
