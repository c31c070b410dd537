//! The Envoy side of the harness: a bootstrap rendered by the shipped renderer
//! (`shim envoy-bootstrap` with the same flags the shim gets), and reading Envoy's admin
//! interface (`/ready`, `/stats`).
//!
//! It must not start Envoy (see `backend`); it only produces files and reads the admin port.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

/// What `shim envoy-bootstrap` is run with.
pub struct BootstrapArgs<'a> {
    /// The kubectl-proxy flags (as the shim gets them).
    pub flags: &'a [String],
    /// The kubeconfig file.
    pub kubeconfig: &'a Path,
    /// The proxy listener port (`--port`).
    pub listen_port: u16,
    /// The admin port (`--envoy-admin-port`).
    pub admin_port: u16,
    /// The filter Envoy loads (`--wasm-path`).
    pub wasm: &'a Path,
    /// Where the bootstrap is written (`--output`; an SDS file may be written next to it).
    pub output: &'a Path,
    /// `HOME` for the shim (kubeconfig exec plugins, `~` expansion).
    pub home: &'a Path,
}

/// Runs `shim envoy-bootstrap` and returns the bootstrap path (`args.output`).
pub fn render_bootstrap(shim: &Path, args: &BootstrapArgs<'_>) -> Result<PathBuf> {
    let out = Command::new(shim)
        .arg("envoy-bootstrap")
        .args(args.flags)
        .arg(format!("--kubeconfig={}", args.kubeconfig.display()))
        .arg(format!("--port={}", args.listen_port))
        .arg(format!("--envoy-admin-port={}", args.admin_port))
        .arg(format!("--wasm-path={}", args.wasm.display()))
        .arg(format!("--output={}", args.output.display()))
        .env("HOME", args.home)
        .env_remove("KUBECONFIG")
        .output()
        .with_context(|| format!("running {} envoy-bootstrap", shim.display()))?;
    if !out.status.success() {
        bail!(
            "`shim envoy-bootstrap {:?}` failed ({}): {}",
            args.flags,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(args.output.to_path_buf())
}

/// `GET path` on Envoy's admin interface; the body when the status is 200.
pub fn admin_get(admin: SocketAddr, path: &str) -> Result<String> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
    let resp = crate::rawhttp::send(admin, req.as_bytes(), false)?;
    if resp.status != 200 {
        bail!("admin {path}: status {}: {}", resp.status, resp.text());
    }
    Ok(resp.text())
}

/// Envoy's counters and gauges (`/stats`, plain `name: value` lines; histograms left out).
pub fn stats(admin: SocketAddr) -> Result<BTreeMap<String, u64>> {
    let text = admin_get(admin, "/stats")?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(": ")?;
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect())
}
