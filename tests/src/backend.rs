//! The three proxies under test, as child processes: our `shim`, a real Envoy 1.40 with the kproxy
//! filter (bootstrap from `shim envoy-bootstrap`), and `kubectl proxy` (the oracle). Each is
//! started with the same kubectl-proxy flags and kubeconfig on a free port, stopped (killed) on
//! drop, and its stderr is kept for failure messages.
//!
//! Availability is decided at run time: a missing binary is skipped locally and fails under `CI`.
//! It must not know about scenarios.

use std::io::{BufRead as _, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::apiserver::FakeApiServer;
use crate::kubeconfig::{Kubeconfig, TempDir};

/// A proxy implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Backend {
    /// `shim`, the native wasmtime host, with the kproxy filter.
    Shim,
    /// Envoy 1.40 with the kproxy filter.
    Envoy,
    /// `kubectl proxy`, the oracle.
    Kubectl,
}

// === impl Backend ===

impl Backend {
    /// Every backend, oracle first.
    pub const ALL: [Backend; 3] = [Backend::Kubectl, Backend::Shim, Backend::Envoy];

    /// Lower-case name, as used in scenario files and messages.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Shim => "shim",
            Backend::Envoy => "envoy",
            Backend::Kubectl => "kubectl",
        }
    }

    /// Parses a lower-case name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == s)
    }

    /// Whether this backend runs the kproxy filter (and so follows kproxy's deviations).
    pub fn is_kproxy(self) -> bool {
        self != Backend::Kubectl
    }

    /// The binary to run, or why it is unavailable (e.g. `ENVOY_BIN not found`).
    pub fn binary(self) -> Result<PathBuf, String> {
        match self {
            Backend::Kubectl => match std::env::var_os("KUBECTL_BIN") {
                Some(p) => existing(PathBuf::from(p), "KUBECTL_BIN"),
                None => which("kubectl").ok_or_else(|| "kubectl not found on PATH".to_owned()),
            },
            Backend::Shim => existing(shim_bin(), "SHIM_BIN"),
            Backend::Envoy => {
                let bin = envoy_bin()?;
                existing(filter_wasm(), "FILTER_WASM")?;
                // The bootstrap is rendered by `shim envoy-bootstrap`.
                existing(shim_bin(), "SHIM_BIN")?;
                Ok(bin)
            }
        }
    }

    /// Starts the backend with `flags` and the kubeconfig `kc`; `dir` holds its files. (`_fake`
    /// is the server `kc` points to; every backend reads what it needs from `kc`.)
    pub fn spawn(
        self,
        flags: &[String],
        kc: &Kubeconfig,
        _fake: &FakeApiServer,
        dir: &TempDir,
    ) -> Result<Running> {
        let bin = self.binary().map_err(anyhow::Error::msg)?;
        match self {
            Backend::Kubectl | Backend::Shim => {
                let stderr_path = dir
                    .path()
                    .join(format!("{}-{}.stderr", self.name(), unique()));
                let stderr = std::fs::File::create(&stderr_path)?;
                let mut cmd = Command::new(&bin);
                cmd.env("HOME", dir.path())
                    .env_remove("KUBECONFIG")
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(stderr);
                if self == Backend::Shim && std::env::var_os("KPROXY_WASM_CACHE_DIR").is_none() {
                    // One compiled-module cache for every shim the tests start: a debug build
                    // compiles the filter once, not once per process.
                    cmd.env("KPROXY_WASM_CACHE_DIR", wasm_cache_dir());
                }
                if self == Backend::Kubectl {
                    cmd.arg("proxy");
                }
                cmd.args(flags)
                    .arg("--port=0")
                    .arg(format!("--kubeconfig={}", kc.path.display()));
                if self == Backend::Shim && filter_wasm().is_file() {
                    cmd.arg(format!("--filter={}", filter_wasm().display()));
                }
                let child = cmd
                    .spawn()
                    .with_context(|| format!("spawning {}", bin.display()))?;
                Running::wait_for_banner(self, child, stderr_path)
            }
            Backend::Envoy => {
                let listen_port = free_port()?;
                let admin_port = free_port()?;
                let cfg_path = crate::envoy::render_bootstrap(
                    &shim_bin(),
                    &crate::envoy::BootstrapArgs {
                        flags,
                        kubeconfig: &kc.path,
                        listen_port,
                        admin_port,
                        wasm: &filter_wasm(),
                        output: &dir.path().join(format!("envoy-{}.yaml", unique())),
                        home: dir.path(),
                    },
                )?;
                spawn_envoy(&bin, &cfg_path, listen_port, admin_port, dir)
            }
        }
    }
}

/// Starts Envoy (`bin`) with the bootstrap `config` that listens on 127.0.0.1:`listen_port` with
/// its admin interface on 127.0.0.1:`admin_port`, and waits until admin `/ready` answers 200.
/// One worker thread (one wasm VM), so counters and VM failures are deterministic.
pub fn spawn_envoy(
    bin: &Path,
    config: &Path,
    listen_port: u16,
    admin_port: u16,
    dir: &TempDir,
) -> Result<Running> {
    let stderr_path = dir.path().join(format!("envoy-{}.stderr", unique()));
    let child = Command::new(bin)
        .env("HOME", dir.path())
        .arg("-c")
        .arg(config)
        .args(["--concurrency", "1", "--disable-hot-restart"])
        .args(["--log-level", "warning"])
        .args(["--component-log-level", "wasm:trace"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path)?)
        .spawn()
        .with_context(|| format!("spawning {}", bin.display()))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], listen_port));
    Running::wait_for_envoy(child, addr, admin_port, stderr_path)
}

/// `ENVOY_BIN`, default `<workspace>/.venv/bin/envoy`, or why it is missing.
pub fn envoy_bin() -> Result<PathBuf, String> {
    existing(env_path("ENVOY_BIN", ".venv/bin/envoy"), "ENVOY_BIN")
}

/// The conformance test guest: `CONFORMANCE_WASM`, default
/// `<workspace>/target/wasm32-wasip1/wasm/conformance_guest.wasm`. `None` after printing
/// `skipped: …` when the file is missing; a panic under `CI` instead.
pub fn conformance_wasm() -> Option<PathBuf> {
    let path = match std::env::var_os("CONFORMANCE_WASM") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => crate::workspace_root().join("target/wasm32-wasip1/wasm/conformance_guest.wasm"),
    };
    if path.is_file() {
        return Some(path);
    }
    let reason = format!("CONFORMANCE_WASM not found: {}", path.display());
    assert!(
        std::env::var_os("CI").is_none(),
        "the conformance guest is required under CI: {reason}"
    );
    println!("skipped: {reason}");
    None
}

/// The shared compiled-module cache of the shims the tests start (`target/wasm-cache`).
pub fn wasm_cache_dir() -> PathBuf {
    crate::workspace_root().join("target/wasm-cache")
}

/// Whether a run may skip `backend`: `Some(())` to go on; `None` after printing
/// `skipped: <name> (<reason>)`. Panics under `CI` instead of skipping.
pub fn require(backend: Backend) -> Option<()> {
    match backend.binary() {
        Ok(_) => Some(()),
        Err(reason) if std::env::var_os("CI").is_some() => {
            panic!("{} is required under CI: {reason}", backend.name())
        }
        Err(reason) => {
            println!("skipped: {} ({reason})", backend.name());
            None
        }
    }
}

/// A started backend; killed on drop.
pub struct Running {
    /// Which backend.
    pub backend: Backend,
    child: Child,
    addr: SocketAddr,
    admin: Option<SocketAddr>,
    stderr_path: PathBuf,
}

// === impl Running ===

impl Running {
    /// Where the proxy listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Envoy's admin interface (`None` for the other backends).
    pub fn admin(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// The process id (to check that a process was not restarted).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last 150 lines of the backend's stderr, for failure messages.
    pub fn logs(&self) -> String {
        tail(&self.stderr_path, 150)
    }

    fn wait_for_banner(backend: Backend, mut child: Child, stderr_path: PathBuf) -> Result<Self> {
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Some(addr) = line.strip_prefix("Starting to serve on ") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(addr) = rx.recv_timeout(Duration::from_millis(50)) {
                let addr: SocketAddr = addr.parse().with_context(|| {
                    format!("{} printed a bad address {addr:?}", backend.name())
                })?;
                return Ok(Self {
                    backend,
                    child,
                    addr,
                    admin: None,
                    stderr_path,
                });
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{} exited ({status}) before serving; stderr:\n{}",
                    backend.name(),
                    tail(&stderr_path, 60)
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!(
                    "{} did not print `Starting to serve on` within 30 s; stderr:\n{}",
                    backend.name(),
                    tail(&stderr_path, 60)
                );
            }
        }
    }

    fn wait_for_envoy(
        mut child: Child,
        addr: SocketAddr,
        admin_port: u16,
        stderr_path: PathBuf,
    ) -> Result<Self> {
        let admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let req = b"GET /ready HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n";
            if let Ok(resp) = crate::rawhttp::send(admin, req, false)
                && resp.status == 200
            {
                return Ok(Self {
                    backend: Backend::Envoy,
                    child,
                    addr,
                    admin: Some(admin),
                    stderr_path,
                });
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "envoy exited ({status}) before becoming ready; stderr:\n{}",
                    tail(&stderr_path, 80)
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!(
                    "envoy not ready within 60 s; stderr:\n{}",
                    tail(&stderr_path, 80)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `FILTER_WASM`, default `<workspace>/target/wasm32-wasip1/wasm/kproxy_filter.wasm`.
pub fn filter_wasm() -> PathBuf {
    env_path(
        "FILTER_WASM",
        "target/wasm32-wasip1/wasm/kproxy_filter.wasm",
    )
}

/// `SHIM_BIN`, default `<workspace>/target/debug/shim`.
pub fn shim_bin() -> PathBuf {
    env_path("SHIM_BIN", "target/debug/shim")
}

fn env_path(var: &str, default: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => crate::workspace_root().join(default),
    }
}

fn existing(p: PathBuf, var: &str) -> Result<PathBuf, String> {
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!("{var} not found: {}", p.display()))
    }
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A port that was free a moment ago.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn tail(p: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(p).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
