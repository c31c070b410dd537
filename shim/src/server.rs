//! The proxy server: [`bind`] the listener with Go's rules, then [`serve`] it on `workers`
//! threads, each a current-thread tokio runtime with a `LocalSet` owning one wasm [`Vm`]
//! (Envoy's worker model, proxy-wasm-abi.md §5.4), all accepting on the same socket.
//!
//! Requests go through the filter (`exchange`), which decides: a local reply, the API server
//! (`upstream`, `upgrade`) or static files. This module owns threads and sockets; it must not
//! make routing decisions of its own beyond the filter's `x-kproxy-upstream`.

pub(crate) mod body;
mod conn;
mod exchange;
mod listen;
mod metrics;

#[cfg(test)]
mod direct_tests;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::io::Write as _;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use listen::Bound;
pub(crate) use listen::{resolve, split_host};

pub(crate) use exchange::error_reply;

use crate::cli::{FilterSource, Settings, StaticFiles};
use crate::credentials::{Credentials, SharedDataSink};
use crate::errors::{ServeError, errno_text};
use crate::host::{ClusterTarget, HostError, HttpStream, Plugin, PluginOptions, StreamInfo, Vm};
use crate::kubeconfig::Cluster;
use crate::upstream::Upstream;

/// Binds the listener of `settings` (TCP with Go's `net.Listen` rules, or a unix socket with
/// mode 0600). Nothing is served yet.
pub fn bind(settings: &Settings) -> Result<Bound, ServeError> {
    listen::bind(&settings.listen)
}

/// Prints `Starting to serve on <addr>`, loads the filter, starts the workers and serves until a
/// fatal error. Blocks the calling thread.
pub fn serve(settings: Settings, bound: Bound) -> Result<(), ServeError> {
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "Starting to serve on {}", bound.display_address());
    let _ = stdout.flush();
    let (plugin, shared) = prepare(settings)?;
    if let Some(addr) = shared.metrics_address {
        metrics::spawn(addr, plugin.clone())?;
    }
    let workers = spawn_workers(&bound, &plugin, &shared)?;
    // Every worker holds its own duplicate of the socket.
    drop(bound);
    for handle in workers {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(ServeError::Worker("a worker thread panicked".to_owned())),
        }
    }
    Ok(())
}

/// Compiles the plugin and publishes the credentials into its shared data.
fn prepare(settings: Settings) -> Result<(Arc<Plugin>, Arc<Shared>), ServeError> {
    let module = match &settings.filter {
        FilterSource::Embedded => crate::DEFAULT_FILTER.to_vec(),
        FilterSource::Path(path) => std::fs::read(path).map_err(|e| ServeError::ReadFilter {
            path: path.display().to_string(),
            reason: errno_text(&e),
        })?,
    };
    let mut options = PluginOptions {
        name: "kproxy".to_owned(),
        configuration: settings.plugin_config.clone().into_bytes(),
        ..PluginOptions::default()
    };
    options.clusters.insert(
        crate::cli::APISERVER_CLUSTER.to_owned(),
        apiserver_cluster(&settings.cluster),
    );
    let plugin = Plugin::new(&module, options)?;
    settings
        .credentials
        .attach(Arc::new(PluginSink(plugin.clone())));
    Ok((plugin, Arc::new(Shared::from(settings))))
}

/// The `proxy_http_call` cluster of the API server (the filter's Service lookups): the kubeconfig
/// server's scheme and authority (the filter adds `server_path` itself) and its TLS configuration,
/// client certificate included.
pub(crate) fn apiserver_cluster(cluster: &Cluster) -> ClusterTarget {
    let scheme = cluster.server.scheme_str().unwrap_or("http");
    let authority = cluster
        .server
        .authority()
        .map_or_else(|| cluster.host_header.clone(), |a| a.as_str().to_owned());
    let mut target = ClusterTarget::new(format!("{scheme}://{authority}"));
    target.tls.clone_from(&cluster.tls);
    if target.tls.is_some() {
        target.server_name = Some(cluster.tls_server_name.clone());
    }
    target
}

/// Starts the worker threads; each reports whether its VM started before serving.
fn spawn_workers(
    bound: &Bound,
    plugin: &Arc<Plugin>,
    shared: &Arc<Shared>,
) -> Result<Vec<std::thread::JoinHandle<Result<(), ServeError>>>, ServeError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), HostError>>();
    let mut handles = Vec::new();
    for n in 0..shared.workers.max(1) {
        let listener =
            conn::Listener::try_clone(bound).map_err(|e| ServeError::Worker(errno_text(&e)))?;
        let (plugin, shared, ready) = (plugin.clone(), shared.clone(), ready_tx.clone());
        let handle = std::thread::Builder::new()
            .name(format!("kproxy-worker-{n}"))
            .spawn(move || conn::run_worker(listener, plugin, shared, &ready))
            .map_err(|e| ServeError::Worker(errno_text(&e)))?;
        handles.push(handle);
    }
    drop(ready_tx);
    for _ in 0..handles.len() {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => break,
        }
    }
    Ok(handles)
}

/// What every worker shares: the settings the request path needs.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) www: Option<StaticFiles>,
    pub(crate) keepalive: Option<Duration>,
    pub(crate) disable_compression: bool,
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) credentials: Arc<Credentials>,
    pub(crate) workers: usize,
    pub(crate) metrics_address: Option<std::net::SocketAddr>,
    pub(crate) connect_to: Vec<crate::cli::ConnectTo>,
}

impl From<Settings> for Shared {
    fn from(s: Settings) -> Self {
        Self {
            www: s.www,
            keepalive: s.keepalive,
            disable_compression: s.disable_compression,
            cluster: s.cluster,
            credentials: s.credentials,
            workers: s.workers,
            metrics_address: s.metrics_address,
            connect_to: s.connect_to,
        }
    }
}

/// Publishes credential JSON into the plugin's shared data.
struct PluginSink(Arc<Plugin>);

impl SharedDataSink for PluginSink {
    fn set_shared_data(&self, key: &str, value: &[u8]) {
        self.0.set_shared_data(key, value);
    }
}

// === impl Worker ===

/// One worker's state: its VM (recreated after a failure) and its upstream client.
#[derive(Debug)]
pub(crate) struct Worker {
    plugin: Arc<Plugin>,
    vm: RefCell<Option<Vm>>,
    last_start_failure: RefCell<Option<Instant>>,
    pub(crate) upstream: Upstream,
    pub(crate) services: crate::services::Services,
    pub(crate) shared: Arc<Shared>,
}

impl Worker {
    /// A worker with a started VM.
    pub(crate) fn start(plugin: Arc<Plugin>, shared: Arc<Shared>) -> Result<Rc<Self>, HostError> {
        let vm = Vm::start(plugin.clone())?;
        let upstream = Upstream::new(shared.cluster.clone());
        let services = crate::services::Services::new(&shared.connect_to);
        Ok(Rc::new(Self {
            plugin,
            vm: RefCell::new(Some(vm)),
            last_start_failure: RefCell::new(None),
            upstream,
            services,
            shared,
        }))
    }

    /// A new stream on the VM, restarting a failed VM first (at most once a second).
    pub(crate) fn stream(&self, info: StreamInfo) -> Result<LiveStream, String> {
        let mut vm = self.vm.borrow_mut();
        if vm.as_ref().is_none_or(Vm::is_failed) {
            *vm = None;
            if self
                .last_start_failure
                .borrow()
                .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
            {
                return Err("wasm vm is restarting".to_owned());
            }
            match Vm::start(self.plugin.clone()) {
                Ok(fresh) => {
                    tracing::info!("wasm vm restarted");
                    *vm = Some(fresh);
                }
                Err(e) => {
                    *self.last_start_failure.borrow_mut() = Some(Instant::now());
                    tracing::error!("wasm vm restart failed: {e}");
                    return Err(e.to_string());
                }
            }
        }
        match vm.as_ref() {
            Some(vm) => {
                let live = crate::gauges::STREAMS_LIVE.hold();
                Ok(LiveStream {
                    stream: vm.stream(info),
                    _live: live,
                })
            }
            None => Err("wasm vm is not running".to_owned()),
        }
    }
}

// === impl LiveStream ===

/// An [`HttpStream`] counted in `kproxy_shim_streams_live` until it is dropped (the stream's
/// `on_log`/`on_done`/`on_delete` run first: fields drop in declaration order).
#[derive(Debug)]
pub(crate) struct LiveStream {
    stream: HttpStream,
    _live: crate::gauges::Held,
}

impl std::ops::Deref for LiveStream {
    type Target = HttpStream;

    fn deref(&self) -> &HttpStream {
        &self.stream
    }
}

impl std::ops::DerefMut for LiveStream {
    fn deref_mut(&mut self) -> &mut HttpStream {
        &mut self.stream
    }
}
