//! VM lifecycle: the compiled [`Plugin`], per-worker [`Vm`]s and the one call wrapper every
//! host → guest call goes through (set the context, arm the deadline, classify traps, then run
//! deferred work: http calls and timers on the worker's `LocalSet`).
//!
//! Streams ([`HttpStream`]) live in `stream.rs`. This module must not know about sockets or the
//! server; it never holds a borrow of the store across an `.await`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use wasmtime::{
    Cache, CacheConfig, Config, Engine, InstancePre, Linker, Module, Store, Trap, TypedFunc,
};

use super::client::{self, CallOutcome};
use super::state::{Callback, HostState, Shared, StreamState};
use super::{HostError, LogLevel, MetricSample, PluginOptions, StreamError, StreamInfo};

use super::stream::HttpStream;

/// How often the engine's epoch advances (the callback-deadline resolution).
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The process-wide engine (epoch interruption on) and its epoch ticker thread.
fn engine() -> Result<Engine, HostError> {
    static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut config = Config::new();
            config.epoch_interruption(true);
            // `KPROXY_WASM_PERFMAP=1`: write /tmp/perf-<pid>.map so `perf report` names guest
            // functions (profiling only; off by default).
            if std::env::var_os(PERFMAP_ENV).is_some_and(|v| v == "1") {
                config.profiler(wasmtime::ProfilingStrategy::PerfMap);
            }
            if let Some(dir) = cache_dir() {
                let mut cache = CacheConfig::new();
                cache.with_directory(dir);
                // A cache that cannot be set up only costs the compilation time.
                if let Ok(cache) = Cache::new(cache) {
                    config.cache(Some(cache));
                }
            }
            let engine = Engine::new(&config).map_err(|e| format!("{e:#}"))?;
            let weak = engine.weak();
            std::thread::Builder::new()
                .name("wasm-epoch".to_owned())
                .spawn(move || {
                    while let Some(engine) = weak.upgrade() {
                        engine.increment_epoch();
                        drop(engine);
                        std::thread::sleep(EPOCH_TICK);
                    }
                })
                .map_err(|e| format!("cannot start the epoch thread: {e}"))?;
            Ok(engine)
        })
        .clone()
        .map_err(HostError::Engine)
}

/// Set to `1` to write a perf map of the JIT code (`/tmp/perf-<pid>.map`) for `perf`.
pub const PERFMAP_ENV: &str = "KPROXY_WASM_PERFMAP";

/// The environment variable naming the compiled-module cache directory; empty disables it.
pub const CACHE_DIR_ENV: &str = "KPROXY_WASM_CACHE_DIR";

/// Where compiled modules are cached across processes (wasmtime's cache, keyed by a hash of the
/// module bytes, the engine configuration and the compiler version): `$KPROXY_WASM_CACHE_DIR`
/// (empty = no cache), else `$XDG_CACHE_HOME/kproxy/wasmtime`, else
/// `$HOME/.cache/kproxy/wasmtime`. Only absolute paths are used. A cache hit turns the
/// module's Cranelift compilation (hundreds of ms) into a file read and a mapping.
pub fn cache_dir() -> Option<std::path::PathBuf> {
    cache_dir_from(|k| std::env::var_os(k))
}

/// [`cache_dir`] with the environment as a function (testable without touching the process's).
pub(crate) fn cache_dir_from(
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    let dir = match env(CACHE_DIR_ENV) {
        Some(v) if v.is_empty() => return None,
        Some(v) => PathBuf::from(v),
        None => match env("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
            Some(x) => PathBuf::from(x).join("kproxy/wasmtime"),
            None => {
                PathBuf::from(env("HOME").filter(|v| !v.is_empty())?).join(".cache/kproxy/wasmtime")
            }
        },
    };
    dir.is_absolute().then_some(dir)
}

/// Compiles `bytes` once per process (an exact-bytes cache); `Module` is `Send + Sync`.
fn compile(engine: &Engine, bytes: &[u8]) -> Result<Module, HostError> {
    static CACHE: Mutex<Vec<(Vec<u8>, Module)>> = Mutex::new(Vec::new());
    let cached = {
        let cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .iter()
            .find(|(k, _)| k.as_slice() == bytes)
            .map(|(_, m)| m.clone())
    };
    if let Some(module) = cached {
        return Ok(module);
    }
    let module = Module::new(engine, bytes).map_err(|e| HostError::Compile(format!("{e:#}")))?;
    CACHE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((bytes.to_vec(), module.clone()));
    Ok(module)
}

/// A compiled plugin: the process-wide engine, its module compiled once, linker + `InstancePre`, and what all its VMs
/// share (shared data of its `vm_id`, metrics). `Send + Sync`: one per process, many [`Vm`]s.
pub struct Plugin {
    engine: Engine,
    pre: InstancePre<HostState>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.shared.options.name)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// Compiles `module` once, links every import, and refuses imports this host lacks (naming
    /// them) and modules without the proxy-wasm 0.2 ABI marker.
    pub fn new(module: &[u8], options: PluginOptions) -> Result<Arc<Plugin>, HostError> {
        let engine = engine()?;
        let module = compile(&engine, module)?;
        let mut linker: Linker<HostState> = Linker::new(&engine);
        super::add_to_linker(&mut linker).map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let shared = Arc::new(Shared::new(options));

        let mut probe = Store::new(&engine, HostState::new(shared.clone()));
        let unknown: Vec<String> = module
            .imports()
            .filter(|i| linker.get(&mut probe, i.module(), i.name()).is_err())
            .map(|i| format!("{}.{}", i.module(), i.name()))
            .collect();
        if !unknown.is_empty() {
            return Err(HostError::UnknownImports(unknown));
        }
        let exports: Vec<&str> = module.exports().map(|e| e.name()).collect();
        if !exports
            .iter()
            .any(|e| *e == "proxy_abi_version_0_2_1" || *e == "proxy_abi_version_0_2_0")
        {
            return Err(HostError::MissingExport(
                "proxy_abi_version_0_2_1".to_owned(),
            ));
        }
        if !exports.contains(&"memory") {
            return Err(HostError::MissingExport("memory".to_owned()));
        }
        if !exports.contains(&"proxy_on_memory_allocate") && !exports.contains(&"malloc") {
            return Err(HostError::MissingExport(
                "proxy_on_memory_allocate".to_owned(),
            ));
        }
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| HostError::Instantiate(format!("{e:#}")))?;
        Ok(Arc::new(Plugin {
            engine,
            pre,
            shared,
        }))
    }

    /// Writes a shared-data key from the host (credential rotation); readers see a new CAS.
    pub fn set_shared_data(&self, key: &str, value: &[u8]) {
        let _ = self.shared.data.set(key.as_bytes(), value, 0);
    }

    /// The plugin's metrics across all its VMs.
    pub fn metrics(&self) -> Vec<MetricSample> {
        self.shared.samples()
    }

    /// The options the plugin was created with.
    pub fn options(&self) -> &PluginOptions {
        &self.shared.options
    }
}

// === impl Exports ===

/// `(root, token, headers, body size, trailers)`.
type CallResponseArgs = (i32, i32, i32, i32, i32);

/// The guest's callbacks, looked up once per instance; a missing one takes its default.
#[derive(Default)]
pub(crate) struct Exports {
    initialize: Option<TypedFunc<(), ()>>,
    start: Option<TypedFunc<(), ()>>,
    pub(crate) context_create: Option<TypedFunc<(i32, i32), ()>>,
    vm_start: Option<TypedFunc<(i32, i32), i32>>,
    configure: Option<TypedFunc<(i32, i32), i32>>,
    tick: Option<TypedFunc<i32, ()>>,
    pub(crate) request_headers: Option<TypedFunc<(i32, i32, i32), i32>>,
    pub(crate) request_body: Option<TypedFunc<(i32, i32, i32), i32>>,
    pub(crate) request_trailers: Option<TypedFunc<(i32, i32), i32>>,
    pub(crate) response_headers: Option<TypedFunc<(i32, i32, i32), i32>>,
    pub(crate) response_body: Option<TypedFunc<(i32, i32, i32), i32>>,
    pub(crate) response_trailers: Option<TypedFunc<(i32, i32), i32>>,
    http_call_response: Option<TypedFunc<CallResponseArgs, ()>>,
    pub(crate) done: Option<TypedFunc<i32, i32>>,
    pub(crate) log: Option<TypedFunc<i32, ()>>,
    pub(crate) delete: Option<TypedFunc<i32, ()>>,
}

/// Calls an optional export, or returns `default` when the guest lacks it.
pub(crate) fn call_opt<P: wasmtime::WasmParams, R: wasmtime::WasmResults>(
    f: Option<&TypedFunc<P, R>>,
    store: &mut Store<HostState>,
    params: P,
    default: R,
) -> wasmtime::Result<R> {
    match f {
        Some(f) => f.call(store, params),
        None => Ok(default),
    }
}

/// The wasm value of a u32 id or size.
pub(crate) fn w(n: usize) -> i32 {
    u32::try_from(n).unwrap_or(u32::MAX).cast_signed()
}

// === impl Vm ===

/// What a [`Vm`] and its streams share on the worker thread.
pub(crate) struct VmInner {
    pub(crate) plugin: Arc<Plugin>,
    pub(crate) store: RefCell<Store<HostState>>,
    pub(crate) ex: Exports,
    pub(crate) failed: Cell<bool>,
    tick_generation: Cell<u64>,
    pub(crate) root: u32,
}

/// One instance of a plugin on one worker thread. `!Send`: create it, and use it and its streams,
/// inside a tokio `LocalSet` (timers and http calls are spawned there).
pub struct Vm {
    inner: Rc<VmInner>,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("failed", &self.inner.failed.get())
            .finish_non_exhaustive()
    }
}

impl Vm {
    /// Instantiates the plugin and runs `_initialize` (restricted), the root context's create,
    /// `on_vm_start` and `on_configure` (false ⇒ [`HostError::Configure`] with the guest's last
    /// error log line).
    pub fn start(plugin: Arc<Plugin>) -> Result<Vm, HostError> {
        Self::start_inner(plugin, false)
    }

    /// [`Vm::start`], optionally capturing guest logs for the testing harness.
    pub(crate) fn start_inner(plugin: Arc<Plugin>, capture_logs: bool) -> Result<Vm, HostError> {
        let mut state = HostState::new(plugin.shared.clone());
        if capture_logs {
            state.captured_logs = Some(Vec::new());
            state.log_level_override = Some(LogLevel::Trace);
        }
        let mut store = Store::new(&plugin.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(deadline_ticks(plugin.shared.options.callback_deadline));
        let instance = plugin
            .pre
            .instantiate(&mut store)
            .map_err(|e| HostError::Instantiate(format!("{e:#}")))?;
        let memory = instance.get_memory(&mut store, "memory");
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut store, "malloc")
            .or_else(|_| {
                instance.get_typed_func::<i32, i32>(&mut store, "proxy_on_memory_allocate")
            })
            .ok();
        store.data_mut().memory = memory;
        store.data_mut().alloc = alloc;
        let ex = {
            let mut get = |name: &str| instance.get_func(&mut store, name);
            let funcs: Vec<Option<wasmtime::Func>> = EXPORT_NAMES.iter().map(|n| get(n)).collect();
            load_exports(&funcs, &store)
        };
        let root = store.data().root_id;
        let inner = Rc::new(VmInner {
            plugin,
            store: RefCell::new(store),
            ex,
            failed: Cell::new(false),
            tick_generation: Cell::new(0),
            root,
        });
        let start_err = |e: StreamError| HostError::Start(e.to_string());
        inner
            .call(0, Callback::Initialize, |ex, st| {
                if ex.initialize.is_some() {
                    call_opt(ex.initialize.as_ref(), st, (), ())
                } else {
                    call_opt(ex.start.as_ref(), st, (), ())
                }
            })
            .map_err(start_err)?;
        let r = w(root as usize);
        inner
            .call(root, Callback::ContextCreate, |ex, st| {
                call_opt(ex.context_create.as_ref(), st, (r, 0), ())
            })
            .map_err(start_err)?;
        let vm_config_len = w(inner.plugin.shared.options.vm_configuration.len());
        let ok = inner
            .call(root, Callback::VmStart, |ex, st| {
                call_opt(ex.vm_start.as_ref(), st, (r, vm_config_len), 1)
            })
            .map_err(start_err)?;
        if ok == 0 {
            return Err(HostError::VmStart);
        }
        let config_len = w(inner.plugin.shared.options.configuration.len());
        let ok = inner
            .call(root, Callback::Configure, |ex, st| {
                call_opt(ex.configure.as_ref(), st, (r, config_len), 1)
            })
            .map_err(start_err)?;
        if ok == 0 {
            let line = inner
                .store
                .borrow()
                .data()
                .last_error_log
                .clone()
                .unwrap_or_default();
            return Err(HostError::Configure(line));
        }
        Ok(Vm { inner })
    }

    /// Whether a callback trapped, hit the deadline or ran out of memory; the caller drops this
    /// VM and starts a new one.
    pub fn is_failed(&self) -> bool {
        self.inner.failed.get()
    }

    /// The plugin this VM runs.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.inner.plugin
    }

    /// Creates a stream context (`proxy_on_context_create(id, root)`).
    pub fn stream(&self, info: StreamInfo) -> HttpStream {
        HttpStream::create(self.inner.clone(), info)
    }

    /// The captured guest logs since the last call (testing harness only).
    pub(crate) fn take_logs(&self) -> Vec<(LogLevel, String)> {
        let Ok(mut store) = self.inner.store.try_borrow_mut() else {
            return Vec::new();
        };
        store
            .data_mut()
            .captured_logs
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }
}

/// Export names, in the order [`load_exports`] reads them.
const EXPORT_NAMES: [&str; 16] = [
    "_initialize",
    "_start",
    "proxy_on_context_create",
    "proxy_on_vm_start",
    "proxy_on_configure",
    "proxy_on_tick",
    "proxy_on_request_headers",
    "proxy_on_request_body",
    "proxy_on_request_trailers",
    "proxy_on_response_headers",
    "proxy_on_response_body",
    "proxy_on_response_trailers",
    "proxy_on_http_call_response",
    "proxy_on_done",
    "proxy_on_log",
    "proxy_on_delete",
];

fn load_exports(funcs: &[Option<wasmtime::Func>], store: &Store<HostState>) -> Exports {
    fn t<P: wasmtime::WasmParams, R: wasmtime::WasmResults>(
        funcs: &[Option<wasmtime::Func>],
        i: usize,
        store: &Store<HostState>,
    ) -> Option<TypedFunc<P, R>> {
        funcs.get(i)?.as_ref()?.typed::<P, R>(store).ok()
    }
    Exports {
        initialize: t(funcs, 0, store),
        start: t(funcs, 1, store),
        context_create: t(funcs, 2, store),
        vm_start: t(funcs, 3, store),
        configure: t(funcs, 4, store),
        tick: t(funcs, 5, store),
        request_headers: t(funcs, 6, store),
        request_body: t(funcs, 7, store),
        request_trailers: t(funcs, 8, store),
        response_headers: t(funcs, 9, store),
        response_body: t(funcs, 10, store),
        response_trailers: t(funcs, 11, store),
        http_call_response: t(funcs, 12, store),
        done: t(funcs, 13, store),
        log: t(funcs, 14, store),
        delete: t(funcs, 15, store),
    }
}

fn deadline_ticks(deadline: Duration) -> u64 {
    let ticks = deadline.as_nanos() / EPOCH_TICK.as_nanos().max(1);
    u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1)
}

/// Classifies a failed guest call.
fn classify(err: &wasmtime::Error, oom: bool, last_log: Option<String>) -> StreamError {
    if oom {
        return StreamError::OutOfMemory;
    }
    if err.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return StreamError::Deadline;
    }
    let mut msg = err.root_cause().to_string();
    if let Some(line) = last_log {
        msg.push_str("; guest: ");
        msg.push_str(&line.replace('\n', " "));
    }
    StreamError::Trap(msg)
}

impl VmInner {
    /// The call wrapper: every top-level host → guest call goes through here.
    ///
    /// Sets the current and effective context, arms the deadline, calls `f`, classifies a
    /// failure (the VM is then failed and every waiting stream woken), and finally dispatches
    /// deferred work (http calls, timer changes).
    pub(crate) fn call<R>(
        self: &Rc<Self>,
        ctx: u32,
        callback: Callback,
        f: impl FnOnce(&Exports, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, StreamError> {
        if self.failed.get() {
            return Err(StreamError::VmFailed);
        }
        let result = {
            let Ok(mut store) = self.store.try_borrow_mut() else {
                return Err(StreamError::VmFailed);
            };
            let ticks = deadline_ticks(self.plugin.shared.options.callback_deadline);
            store.set_epoch_deadline(ticks);
            let st = store.data_mut();
            let saved = (st.current_context, st.effective_context, st.callback);
            st.current_context = ctx;
            st.effective_context = ctx;
            st.callback = callback;
            st.limiter.oom = false;
            st.last_error_log = None;
            let r = f(&self.ex, &mut store);
            let st = store.data_mut();
            (st.current_context, st.effective_context, st.callback) = saved;
            r.map_err(|e| classify(&e, st.limiter.oom, st.last_error_log.clone()))
        };
        match result {
            Ok(v) => {
                self.after_call();
                Ok(v)
            }
            Err(e) => {
                tracing::error!(target: "wasm", plugin = %self.plugin.shared.options.name, error = %e, "wasm vm failed");
                self.failed.set(true);
                if let Ok(store) = self.store.try_borrow() {
                    for s in store.data().streams.values() {
                        s.wake.notify_one();
                    }
                }
                Err(e)
            }
        }
    }

    /// Runs `f` on a stream's state (outside guest calls).
    pub(crate) fn with_stream<R>(
        &self,
        id: u32,
        f: impl FnOnce(&mut StreamState) -> R,
    ) -> Option<R> {
        let mut store = self.store.try_borrow_mut().ok()?;
        store.data_mut().streams.get_mut(&id).map(f)
    }

    /// Deferred work queued by hostcalls during the last call.
    fn after_call(self: &Rc<Self>) {
        let (calls, tick) = {
            let Ok(mut store) = self.store.try_borrow_mut() else {
                return;
            };
            let st = store.data_mut();
            (std::mem::take(&mut st.pending_calls), st.tick_change.take())
        };
        for call in calls {
            let token = call.token;
            let weak = Rc::downgrade(self);
            tokio::task::spawn_local(async move {
                let outcome = client::perform(call).await;
                if let Some(inner) = weak.upgrade() {
                    inner.deliver(token, outcome);
                }
            });
        }
        if let Some(period) = tick {
            self.arm_timer(period);
        }
    }

    /// Delivers a callout result: `proxy_on_http_call_response(root, token, headers, body, trailers)`.
    fn deliver(self: &Rc<Self>, token: u32, outcome: CallOutcome) {
        let counts = {
            let Ok(mut store) = self.store.try_borrow_mut() else {
                return;
            };
            let st = store.data_mut();
            st.call_owners.remove(&token);
            match outcome {
                CallOutcome::Response(r) => {
                    let counts = (w(r.headers.len()), w(r.body.len()), w(r.trailers.len()));
                    st.last_status = (0, Vec::new());
                    st.call_response = Some(r);
                    counts
                }
                CallOutcome::Reset => {
                    st.last_status = (11, b"reset".to_vec());
                    st.call_response = None;
                    (0, 0, 0)
                }
            }
        };
        let (r, tok) = (w(self.root as usize), token.cast_signed());
        let _ = self.call(self.root, Callback::HttpCallResponse, |ex, st| {
            call_opt(
                ex.http_call_response.as_ref(),
                st,
                (r, tok, counts.0, counts.1, counts.2),
                (),
            )
        });
        if let Ok(mut store) = self.store.try_borrow_mut() {
            store.data_mut().call_response = None;
        }
    }

    /// (Re)arms the root's timer: first tick after one period, re-armed after each handler.
    fn arm_timer(self: &Rc<Self>, period: Duration) {
        let generation = self.tick_generation.get().wrapping_add(1);
        self.tick_generation.set(generation);
        if period.is_zero() {
            return;
        }
        let weak = Rc::downgrade(self);
        tokio::task::spawn_local(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                if inner.failed.get() || inner.tick_generation.get() != generation {
                    return;
                }
                let r = w(inner.root as usize);
                let _ = inner.call(inner.root, Callback::Tick, |ex, st| {
                    call_opt(ex.tick.as_ref(), st, r, ())
                });
            }
        });
    }
}
