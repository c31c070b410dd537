//! A generic proxy-wasm ABI 0.2.1 host for HTTP filters on wasmtime.
//!
//! [`Plugin`] compiles a module once and links every import a proxy-wasm 0.2.x module may make
//! (the registration table is [`add_to_linker`] below); [`Vm`] is one instance per worker thread;
//! [`HttpStream`] drives one HTTP exchange through the filter's callbacks. The behaviour follows
//! Envoy 1.40 where it differs from the spec (`proxy-wasm-abi.md`).
//!
//! This module must not know about sockets, hyper servers or kubectl: the server hands it header
//! lists and bodies and routes on what comes back. It must never panic on guest input.
//!
//! Threading: a [`Plugin`] is shared by all workers; each worker thread runs a current-thread
//! runtime with a `LocalSet` and owns one [`Vm`]. `Vm::start`, `Vm::stream` and every
//! [`HttpStream`] call (and drop) must run inside that `LocalSet`: ticks and `proxy_http_call`s
//! are spawned on it with `spawn_local`.
//!
//! ```no_run
//! # async fn worker(wasm: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {
//! use shim::host::{Action, Plugin, PluginOptions, StreamInfo, Vm};
//!
//! let plugin = Plugin::new(&wasm, PluginOptions { configuration: b"{}".to_vec(), ..Default::default() })?;
//! // inside the worker's LocalSet:
//! let mut vm = Vm::start(plugin.clone())?;
//! let mut stream = vm.stream(StreamInfo::default());
//! let mut headers = vec![
//!     (b":method".to_vec(), b"GET".to_vec()),
//!     (b":path".to_vec(), b"/api/v1/pods".to_vec()),
//!     (b":authority".to_vec(), b"localhost".to_vec()),
//! ];
//! match stream.request_headers(&mut headers, true).await {
//!     Ok(Action::Continue) => { /* forward `headers` upstream, then the response callbacks */ }
//!     Ok(Action::LocalReply(reply)) => { /* answer `reply.status`, `reply.headers`, `reply.body` */ }
//!     Ok(Action::Buffer) => unreachable!("only body callbacks buffer"),
//!     Err(e) => {
//!         // answer 500; replace a failed VM
//!         if vm.is_failed() {
//!             vm = Vm::start(plugin.clone())?;
//!         }
//!         let _ = (e, &vm);
//!     }
//! }
//! drop(stream); // on_log, on_done, on_delete
//! # Ok(())
//! # }
//! ```

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod client;
mod hostcalls;
mod memory;
mod pairs;
mod state;
mod stream;
pub mod testing;
mod vm;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use client::in_flight as callouts_in_flight;
pub use stream::HttpStream;
pub use vm::{CACHE_DIR_ENV, PERFMAP_ENV, Plugin, Vm, cache_dir};

/// A header map: lowercase names, raw values; order and duplicates are kept.
pub type HeaderList = Vec<(Vec<u8>, Vec<u8>)>;

/// How a [`Plugin`] is configured: names, configurations, limits and the `proxy_http_call` clusters.
#[derive(Clone, Debug)]
pub struct PluginOptions {
    /// The plugin name (`plugin_name` property, log field).
    pub name: String,
    /// The root id (`plugin_root_id` property).
    pub root_id: String,
    /// The VM id (`plugin_vm_id`); shared data is shared between plugins with the same VM id.
    pub vm_id: String,
    /// The plugin configuration, buffer 7 during `proxy_on_configure`.
    pub configuration: Vec<u8>,
    /// The VM configuration, buffer 6 during `proxy_on_vm_start`.
    pub vm_configuration: Vec<u8>,
    /// The guest's linear memory limit in bytes (default 256 MiB).
    pub max_memory_bytes: usize,
    /// The longest a single callback may run before it is interrupted (default 1 s).
    pub callback_deadline: Duration,
    /// `proxy_http_call` targets: cluster name → where to send the request.
    pub clusters: HashMap<String, ClusterTarget>,
}

impl Default for PluginOptions {
    fn default() -> Self {
        Self {
            name: String::new(),
            root_id: String::new(),
            vm_id: String::new(),
            configuration: Vec::new(),
            vm_configuration: Vec::new(),
            max_memory_bytes: 256 * 1024 * 1024,
            callback_deadline: Duration::from_secs(1),
            clusters: HashMap::new(),
        }
    }
}

/// Where a `proxy_http_call` cluster sends its requests.
#[derive(Clone)]
pub struct ClusterTarget {
    /// The base URL `http://host:port` or `https://host:port`; the call's `:path` is appended.
    pub base_url: String,
    /// The TLS client configuration for an `https` base URL (default: none, `https` then fails).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The TLS server name (SNI and certificate name); `None` = the base URL's host.
    pub server_name: Option<rustls_pki_types::ServerName<'static>>,
}

impl ClusterTarget {
    /// A cluster sending plain requests to `base_url` (no TLS configuration).
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            tls: None,
            server_name: None,
        }
    }
}

impl std::fmt::Debug for ClusterTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTarget")
            .field("base_url", &self.base_url)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// The connection a stream arrived on (`source.address`, `destination.address`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamInfo {
    /// The client's address.
    pub source: Option<SocketAddr>,
    /// The local address the client connected to.
    pub destination: Option<SocketAddr>,
}

/// What the server does after a stream callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Go on with the (possibly modified) headers, body or trailers.
    Continue,
    /// Keep buffering the body and call again with more data (body callbacks only).
    Buffer,
    /// Answer the client with this response; the upstream is not (or no longer) used.
    LocalReply(LocalReply),
}

/// A response produced by the filter (`proxy_send_local_response`), built with Envoy's rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalReply {
    /// The HTTP status code.
    pub status: u16,
    /// Headers without `:status`: the plugin's headers, then `content-length`/`content-type`.
    pub headers: HeaderList,
    /// The response body (empty for `HEAD` requests).
    pub body: Vec<u8>,
    /// The response code details, spaces replaced by underscores.
    pub details: String,
}

/// Why a stream callback failed; the server answers 500 and drops the [`Vm`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The guest trapped (a panic, `unreachable`, a bad memory access …).
    #[error("wasm trap: {0}")]
    Trap(String),
    /// A callback ran longer than the callback deadline.
    #[error("wasm callback exceeded its deadline")]
    Deadline,
    /// The guest tried to grow its memory beyond the limit.
    #[error("wasm guest exceeded its memory limit")]
    OutOfMemory,
    /// The VM had already failed before this call.
    #[error("wasm vm has failed")]
    VmFailed,
}

/// Why a plugin could not be loaded or a VM could not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The wasm engine could not be configured.
    #[error("cannot configure the wasm engine: {0}")]
    Engine(String),
    /// The module does not compile.
    #[error("cannot compile the wasm module: {0}")]
    Compile(String),
    /// The module imports functions this host does not provide.
    #[error("the wasm module imports functions this host does not provide: {}", .0.join(", "))]
    UnknownImports(Vec<String>),
    /// The module lacks a required export (ABI marker, memory, allocator).
    #[error("the wasm module lacks the export {0}")]
    MissingExport(String),
    /// Linking or instantiating the module failed.
    #[error("cannot instantiate the wasm module: {0}")]
    Instantiate(String),
    /// A start-up callback (`_initialize`, context create, `on_vm_start`) trapped.
    #[error("wasm vm start failed: {0}")]
    Start(String),
    /// `proxy_on_vm_start` returned false.
    #[error("the plugin rejected the vm start")]
    VmStart,
    /// `proxy_on_configure` returned false; carries the guest's last error log line.
    #[error("the plugin rejected its configuration: {0}")]
    Configure(String),
}

/// The kind of a metric defined with `proxy_define_metric`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// A monotonic counter.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// A distribution; the sample's value is the sum of recorded values.
    Histogram,
}

/// One metric's current value, process-wide across all VMs of a plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricSample {
    /// The name the guest defined (no prefix).
    pub name: String,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// Counter total, gauge value, or histogram sum.
    pub value: i64,
}

/// The log levels of `proxy_log` (0 trace … 5 critical).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// 0.
    Trace,
    /// 1.
    Debug,
    /// 2.
    Info,
    /// 3.
    Warn,
    /// 4.
    Error,
    /// 5.
    Critical,
}

impl LogLevel {
    /// The level of an ABI value; `None` above 5.
    pub fn from_abi(level: i32) -> Option<Self> {
        Some(match level {
            0 => Self::Trace,
            1 => Self::Debug,
            2 => Self::Info,
            3 => Self::Warn,
            4 => Self::Error,
            5 => Self::Critical,
            _ => return None,
        })
    }
}

// === registration table ===

/// The module names WASI preview1 imports come from.
const WASI_MODULES: [&str; 2] = ["wasi_snapshot_preview1", "wasi_unstable"];

/// Links every import a proxy-wasm 0.2.x module may make: all `env.proxy_*` of ABI 0.2.1 and the
/// WASI preview1 names. There is no unknown-import fallback: `Plugin::new` refuses the rest.
pub(crate) fn add_to_linker(
    linker: &mut wasmtime::Linker<state::HostState>,
) -> wasmtime::Result<()> {
    use hostcalls::{
        buffers, callouts, context, foreign, headers, metrics, properties, shared, stream,
    };
    const ENV: &str = "env";
    // context, logging, time
    linker.func_wrap(ENV, "proxy_log", context::proxy_log)?;
    linker.func_wrap(ENV, "proxy_get_log_level", context::proxy_get_log_level)?;
    linker.func_wrap(
        ENV,
        "proxy_set_effective_context",
        context::proxy_set_effective_context,
    )?;
    linker.func_wrap(ENV, "proxy_done", context::proxy_done)?;
    linker.func_wrap(
        ENV,
        "proxy_get_current_time_nanoseconds",
        context::proxy_get_current_time_nanoseconds,
    )?;
    linker.func_wrap(
        ENV,
        "proxy_set_tick_period_milliseconds",
        context::proxy_set_tick_period_milliseconds,
    )?;
    // buffers
    linker.func_wrap(
        ENV,
        "proxy_get_buffer_bytes",
        buffers::proxy_get_buffer_bytes,
    )?;
    linker.func_wrap(
        ENV,
        "proxy_set_buffer_bytes",
        buffers::proxy_set_buffer_bytes,
    )?;
    linker.func_wrap(
        ENV,
        "proxy_get_buffer_status",
        buffers::proxy_get_buffer_status,
    )?;
    // header maps
    linker.func_wrap(
        ENV,
        "proxy_get_header_map_pairs",
        headers::proxy_get_header_map_pairs,
    )?;
    linker.func_wrap(
        ENV,
        "proxy_set_header_map_pairs",
        headers::proxy_set_header_map_pairs,
    )?;
    linker.func_wrap(
        ENV,
        "proxy_get_header_map_value",
        headers::proxy_get_header_map_value,
    )?;
    linker.func_wrap(
        ENV,
        "proxy_add_header_map_value",
        headers::proxy_add_header_map_value,
    )?;
    linker.func_wrap(
        ENV,
        "proxy_replace_header_map_value",
        headers::proxy_replace_header_map_value,
    )?;
    linker.func_wrap(
        ENV,
        "proxy_remove_header_map_value",
        headers::proxy_remove_header_map_value,
    )?;
    linker.func_wrap(
        ENV,
        "proxy_get_header_map_size",
        headers::proxy_get_header_map_size,
    )?;
    // stream control
    linker.func_wrap(ENV, "proxy_continue_stream", stream::proxy_continue_stream)?;
    linker.func_wrap(ENV, "proxy_close_stream", stream::proxy_close_stream)?;
    linker.func_wrap(
        ENV,
        "proxy_send_local_response",
        stream::proxy_send_local_response,
    )?;
    // callouts
    linker.func_wrap(ENV, "proxy_http_call", callouts::proxy_http_call)?;
    linker.func_wrap(ENV, "proxy_get_status", callouts::proxy_get_status)?;
    linker.func_wrap(ENV, "proxy_grpc_call", callouts::proxy_grpc_call)?;
    linker.func_wrap(ENV, "proxy_grpc_stream", callouts::proxy_grpc_stream)?;
    linker.func_wrap(ENV, "proxy_grpc_send", callouts::proxy_grpc_send)?;
    linker.func_wrap(ENV, "proxy_grpc_cancel", callouts::proxy_grpc_cancel)?;
    linker.func_wrap(ENV, "proxy_grpc_close", callouts::proxy_grpc_close)?;
    // shared data and queues
    linker.func_wrap(ENV, "proxy_get_shared_data", shared::proxy_get_shared_data)?;
    linker.func_wrap(ENV, "proxy_set_shared_data", shared::proxy_set_shared_data)?;
    linker.func_wrap(
        ENV,
        "proxy_register_shared_queue",
        shared::proxy_register_shared_queue,
    )?;
    linker.func_wrap(
        ENV,
        "proxy_resolve_shared_queue",
        shared::proxy_resolve_shared_queue,
    )?;
    linker.func_wrap(
        ENV,
        "proxy_enqueue_shared_queue",
        shared::proxy_enqueue_shared_queue,
    )?;
    linker.func_wrap(
        ENV,
        "proxy_dequeue_shared_queue",
        shared::proxy_dequeue_shared_queue,
    )?;
    // metrics
    linker.func_wrap(ENV, "proxy_define_metric", metrics::proxy_define_metric)?;
    linker.func_wrap(
        ENV,
        "proxy_increment_metric",
        metrics::proxy_increment_metric,
    )?;
    linker.func_wrap(ENV, "proxy_record_metric", metrics::proxy_record_metric)?;
    linker.func_wrap(ENV, "proxy_get_metric", metrics::proxy_get_metric)?;
    // properties, foreign functions
    linker.func_wrap(ENV, "proxy_get_property", properties::proxy_get_property)?;
    linker.func_wrap(ENV, "proxy_set_property", properties::proxy_set_property)?;
    linker.func_wrap(
        ENV,
        "proxy_call_foreign_function",
        foreign::proxy_call_foreign_function,
    )?;
    // WASI preview1, under both module names cpp-host registers
    for module in WASI_MODULES {
        hostcalls::wasi::add_to_linker(linker, module)?;
    }
    Ok(())
}
