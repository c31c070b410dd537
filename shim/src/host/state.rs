//! Per-VM and per-stream host state (the `T` of `Store<T>`), and process-global shared state.
//!
//! [`HostState`] holds what hostcalls read and write: the context table, each stream's header
//! maps and bodies with their availability in the current callback, deferred actions (continue,
//! local reply, http calls, timer changes), metric ids. [`Shared`] holds what all VMs of a plugin
//! share: shared data per `vm_id` with a global CAS counter, and the metrics registry.
//! No guest-memory layout and no I/O here.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use wasmtime::{Memory, ResourceLimiter, TypedFunc};

use super::{
    HeaderList, LocalReply, LogLevel, MetricKind, MetricSample, PluginOptions, StreamInfo,
};

/// ABI status codes (only the ones the host returns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub(crate) enum Status {
    /// 0.
    Ok = 0,
    /// 1.
    NotFound = 1,
    /// 2.
    BadArgument = 2,
    /// 4.
    ParseFailure = 4,
    /// 6 (cpp-host's answer to a bad guest pointer; the SDK panics on it, like a trap).
    InvalidMemoryAccess = 6,
    /// 7.
    Empty = 7,
    /// 8.
    CasMismatch = 8,
    /// 12 (only for `proxy_continue_stream(upstream)`, as Envoy).
    Unimplemented = 12,
}

impl Status {
    /// The wasm return value.
    pub(crate) fn code(self) -> i32 {
        self as i32
    }
}

/// Which guest callback is running (decides buffer and map availability).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Callback {
    /// No callback (between calls) or `_initialize` (restricted phase).
    None,
    /// `_initialize` / `_start`: only logging and WASI are allowed.
    Initialize,
    /// `proxy_on_context_create`.
    ContextCreate,
    /// `proxy_on_vm_start`: buffer 6 readable.
    VmStart,
    /// `proxy_on_configure`: buffer 7 readable.
    Configure,
    /// A stream callback (maps depend on the stream's slots).
    Stream,
    /// `proxy_on_http_call_response`: maps 6/7 and buffer 4 readable.
    HttpCallResponse,
    /// `proxy_on_tick`.
    Tick,
    /// `proxy_on_log`: stream maps read-only.
    Log,
    /// `proxy_on_done` / `proxy_on_delete`.
    Done,
}

/// What a callback may do with a map or body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Unavailable: maps answer BadArgument, bodies answer Ok + empty.
    None,
    /// Readable; writes answer BadArgument.
    ReadOnly,
    /// Readable and writable.
    ReadWrite,
}

/// A header map or body together with its availability.
#[derive(Debug)]
pub(crate) struct Slot<T> {
    /// The data (kept after the phase, for properties and `on_log`).
    pub(crate) value: T,
    /// What the current callback may do with it.
    pub(crate) access: Access,
}

impl<T: Default> Default for Slot<T> {
    fn default() -> Self {
        Self {
            value: T::default(),
            access: Access::None,
        }
    }
}

/// One HTTP stream's state.
#[derive(Debug, Default)]
pub(crate) struct StreamState {
    /// The connection's addresses.
    pub(crate) info: StreamInfo,
    /// Map 0.
    pub(crate) request_headers: Slot<HeaderList>,
    /// Map 1.
    pub(crate) request_trailers: Slot<HeaderList>,
    /// Map 2.
    pub(crate) response_headers: Slot<HeaderList>,
    /// Map 3.
    pub(crate) response_trailers: Slot<HeaderList>,
    /// Buffer 0.
    pub(crate) request_body: Slot<Vec<u8>>,
    /// Buffer 1.
    pub(crate) response_body: Slot<Vec<u8>>,
    /// `proxy_continue_stream(0)` was called (consumed by the waiting request phase).
    pub(crate) resume_request: bool,
    /// `proxy_continue_stream(1)` was called.
    pub(crate) resume_response: bool,
    /// The first `proxy_send_local_response` of this stream, waiting to be sent.
    pub(crate) local_reply: Option<LocalReply>,
    /// A local reply was already produced (only one per stream).
    pub(crate) local_reply_sent: bool,
    /// `proxy_close_stream` was called.
    pub(crate) closed: bool,
    /// `proxy_set_property` values (filter state).
    pub(crate) properties: HashMap<Vec<u8>, Vec<u8>>,
    /// Woken when a deferred action (continue, local reply, close) targets this stream.
    pub(crate) wake: Rc<tokio::sync::Notify>,
}

/// The response of a `proxy_http_call`, readable during `proxy_on_http_call_response`.
#[derive(Debug, Default)]
pub(crate) struct CallResponse {
    /// Map 6.
    pub(crate) headers: HeaderList,
    /// Buffer 4.
    pub(crate) body: Vec<u8>,
    /// Map 7.
    pub(crate) trailers: HeaderList,
}

/// A validated `proxy_http_call`, dispatched after the VM call returns.
#[derive(Debug)]
pub(crate) struct PendingCall {
    /// The token handed to the guest.
    pub(crate) token: u32,
    /// Base URL of the cluster.
    pub(crate) target: super::ClusterTarget,
    /// Request headers including pseudo-headers.
    pub(crate) headers: HeaderList,
    /// Request body.
    pub(crate) body: Vec<u8>,
    /// `None` = no timeout (timeout 0).
    pub(crate) timeout: Option<Duration>,
}

/// The `T` of `Store<T>`: one per VM (worker).
pub(crate) struct HostState {
    /// What all VMs of the plugin share.
    pub(crate) shared: Arc<Shared>,
    /// Memory limit enforcement; `oom` records a refused growth.
    pub(crate) limiter: Limiter,
    /// `memory` export.
    pub(crate) memory: Option<Memory>,
    /// Guest allocator.
    pub(crate) alloc: Option<TypedFunc<i32, i32>>,
    /// Set while the guest allocator runs.
    pub(crate) allocating: bool,
    /// The running callback.
    pub(crate) callback: Callback,
    /// The root context id (1).
    pub(crate) root_id: u32,
    /// Next context id to hand out.
    pub(crate) next_context_id: u32,
    /// The context the current top-level call is for.
    pub(crate) current_context: u32,
    /// The context hostcalls act on (`proxy_set_effective_context`).
    pub(crate) effective_context: u32,
    /// Live streams by context id.
    pub(crate) streams: HashMap<u32, StreamState>,
    /// The http call response during `proxy_on_http_call_response`.
    pub(crate) call_response: Option<CallResponse>,
    /// `proxy_get_status`: code and message of the last callout.
    pub(crate) last_status: (u32, Vec<u8>),
    /// Next http-call token (4, 8, 12 …).
    pub(crate) next_token: u32,
    /// Http calls to dispatch after the VM call.
    pub(crate) pending_calls: Vec<PendingCall>,
    /// Which context started each pending http call.
    pub(crate) call_owners: HashMap<u32, u32>,
    /// Tick period of the root context; `Some` when changed during the last call.
    pub(crate) tick_change: Option<Duration>,
    /// Metric ids of this VM → global index.
    pub(crate) metric_ids: HashMap<u32, usize>,
    /// Metric name → id in this VM.
    pub(crate) metric_names: HashMap<(MetricKind, String), u32>,
    /// Next metric id per kind (counter, gauge, histogram).
    pub(crate) next_metric: [u32; 3],
    /// Captured guest logs (the testing harness), `None` when not capturing.
    pub(crate) captured_logs: Option<Vec<(LogLevel, String)>>,
    /// Forces `proxy_get_log_level` (the testing harness), else the tracing max level.
    pub(crate) log_level_override: Option<LogLevel>,
    /// The last error-or-worse guest log line (explains a configure failure).
    pub(crate) last_error_log: Option<String>,
    /// `proxy_done` was called by a root whose `on_done` returned false.
    pub(crate) done_called: bool,
    /// The root's `on_done` returned false and `proxy_done` is awaited.
    pub(crate) done_pending: bool,
}

impl HostState {
    /// A fresh state for one VM.
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let limit = shared.options.max_memory_bytes;
        Self {
            shared,
            limiter: Limiter { limit, oom: false },
            memory: None,
            alloc: None,
            allocating: false,
            callback: Callback::None,
            root_id: 1,
            next_context_id: 2,
            current_context: 0,
            effective_context: 0,
            streams: HashMap::new(),
            call_response: None,
            last_status: (0, Vec::new()),
            next_token: 4,
            pending_calls: Vec::new(),
            call_owners: HashMap::new(),
            tick_change: None,
            metric_ids: HashMap::new(),
            metric_names: HashMap::new(),
            next_metric: [4, 5, 6],
            captured_logs: None,
            log_level_override: None,
            last_error_log: None,
            done_called: false,
            done_pending: false,
        }
    }

    /// The stream hostcalls act on, if the effective context is a stream.
    pub(crate) fn stream(&mut self) -> Option<&mut StreamState> {
        self.streams.get_mut(&self.effective_context)
    }

    /// The plugin's options.
    pub(crate) fn options(&self) -> &PluginOptions {
        &self.shared.options
    }
}

/// Denies memory growth beyond the limit and remembers it (classifies the trap that follows).
pub(crate) struct Limiter {
    /// Maximum linear memory in bytes.
    pub(crate) limit: usize,
    /// A growth was refused.
    pub(crate) oom: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.oom = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

// === impl Shared ===

/// What all VMs of one plugin share across threads.
pub(crate) struct Shared {
    /// The plugin's options.
    pub(crate) options: PluginOptions,
    /// Shared data of this plugin's `vm_id`.
    pub(crate) data: Arc<SharedData>,
    /// Metrics defined by any VM of this plugin.
    pub(crate) metrics: Mutex<Vec<MetricCell>>,
}

impl Shared {
    /// Shared state for `options` (shared data is looked up by `vm_id`).
    pub(crate) fn new(options: PluginOptions) -> Self {
        let data = SharedData::for_vm_id(&options.vm_id);
        Self {
            options,
            data,
            metrics: Mutex::new(Vec::new()),
        }
    }

    /// The global index of the metric `name` of `kind`, defining it if new.
    pub(crate) fn metric_index(&self, kind: MetricKind, name: &str) -> usize {
        let mut metrics = self
            .metrics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(i) = metrics
            .iter()
            .position(|m| m.kind == kind && m.name == name)
        {
            return i;
        }
        metrics.push(MetricCell {
            name: name.to_owned(),
            kind,
            value: 0,
        });
        metrics.len() - 1
    }

    /// Applies `f` to the metric at `index`.
    pub(crate) fn with_metric<R>(
        &self,
        index: usize,
        f: impl FnOnce(&mut MetricCell) -> R,
    ) -> Option<R> {
        let mut metrics = self
            .metrics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        metrics.get_mut(index).map(f)
    }

    /// A snapshot of all metrics.
    pub(crate) fn samples(&self) -> Vec<MetricSample> {
        let metrics = self
            .metrics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        metrics
            .iter()
            .map(|m| MetricSample {
                name: m.name.clone(),
                kind: m.kind,
                value: m.value,
            })
            .collect()
    }
}

/// One metric's global value.
#[derive(Debug)]
pub(crate) struct MetricCell {
    /// The guest's name.
    pub(crate) name: String,
    /// Its kind.
    pub(crate) kind: MetricKind,
    /// Counter total, gauge value, histogram sum.
    pub(crate) value: i64,
}

// === impl SharedData ===

/// A shared-data value and its CAS.
type Entry = (Vec<u8>, u32);

/// Shared data of one `vm_id`: key → (value, cas), behind a mutex.
#[derive(Debug, Default)]
pub(crate) struct SharedData {
    entries: Mutex<HashMap<Vec<u8>, Entry>>,
}

/// The process-wide CAS counter (from 1, skips 0).
static NEXT_CAS: AtomicU32 = AtomicU32::new(1);

fn next_cas() -> u32 {
    loop {
        let cas = NEXT_CAS.fetch_add(1, Ordering::Relaxed);
        if cas != 0 {
            return cas;
        }
    }
}

/// The registry of shared data per `vm_id`; an entry lives as long as a plugin uses it.
fn registry() -> &'static Mutex<HashMap<String, Weak<SharedData>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Weak<SharedData>>>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

impl SharedData {
    /// The shared data of `vm_id`, shared with every live plugin of the same `vm_id`.
    pub(crate) fn for_vm_id(vm_id: &str) -> Arc<Self> {
        let mut reg = registry()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        reg.retain(|_, w| w.strong_count() > 0);
        if let Some(existing) = reg.get(vm_id).and_then(Weak::upgrade) {
            return existing;
        }
        let data = Arc::new(Self::default());
        reg.insert(vm_id.to_owned(), Arc::downgrade(&data));
        data
    }

    /// The value and CAS of `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Option<(Vec<u8>, u32)> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.get(key).cloned()
    }

    /// Writes `key`; `cas != 0` must match the stored CAS of an existing key.
    pub(crate) fn set(&self, key: &[u8], value: &[u8], cas: u32) -> Result<(), ()> {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, stored)) = entries.get(key)
            && cas != 0
            && *stored != cas
        {
            return Err(());
        }
        entries.insert(key.to_vec(), (value.to_vec(), next_cas()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_data_cas() {
        let data = SharedData::for_vm_id("state-test-cas");
        assert_eq!(data.get(b"k"), None);
        // a new key ignores the cas
        assert_eq!(data.set(b"k", b"1", 12345), Ok(()));
        let (v, cas) = data.get(b"k").unwrap_or_default();
        assert_eq!(v, b"1");
        assert_ne!(cas, 0);
        assert_eq!(data.set(b"k", b"2", cas.wrapping_add(1)), Err(()));
        assert_eq!(data.set(b"k", b"2", cas), Ok(()));
        assert_eq!(
            data.set(b"k", b"3", cas),
            Err(()),
            "the cas changed with the write"
        );
        assert_eq!(data.set(b"k", b"3", 0), Ok(()), "cas 0 always writes");
        // same vm_id, same table
        assert_eq!(
            SharedData::for_vm_id("state-test-cas")
                .get(b"k")
                .map(|e| e.0),
            Some(b"3".to_vec())
        );
        assert_eq!(SharedData::for_vm_id("other-vm").get(b"k"), None);
    }
}
