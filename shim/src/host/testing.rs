//! A socket-free harness for filter authors: load a proxy-wasm module, feed it a request (and
//! optionally a canned upstream response), inspect what the filter did.
//!
//! The harness is synchronous: it owns a current-thread tokio runtime and a `LocalSet`, so
//! pauses, `proxy_http_call`s and ticks run exactly as in the server. A VM that failed is
//! replaced on the next request, as the server does. It must not open listening sockets.
//!
//! ```no_run
//! use shim::host::Action;
//! use shim::host::testing::Harness;
//!
//! let wasm = std::fs::read("target/wasm32-wasip1/wasm/kproxy_filter.wasm").unwrap();
//! let mut harness = Harness::new(&wasm, "{}").unwrap();
//! let out = harness.request("GET", "/api/v1/pods", "localhost", &[("accept", "application/json")]);
//! assert_eq!(out.action, Ok(Action::Continue));
//! assert_eq!(out.request_header("x-kproxy-upstream"), Some("apiserver"));
//! let out = harness.request("GET", "/api/v1/namespaces/default/pods/x/exec", "localhost", &[]);
//! assert_eq!(out.local_reply().map(|r| r.status), Some(403));
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{
    Action, HeaderList, HostError, LocalReply, LogLevel, MetricSample, Plugin, PluginOptions,
    StreamError, StreamInfo, Vm,
};

/// A request to feed through the filter.
#[derive(Clone, Debug, Default)]
pub struct TestRequest {
    /// `:method`.
    pub method: String,
    /// `:path`.
    pub path: String,
    /// `:authority` (the HTTP/1 `Host`).
    pub authority: String,
    /// Further headers (names are lowercased).
    pub headers: Vec<(String, String)>,
    /// A request body, fed in two chunks (`None`: headers end the stream).
    pub body: Option<Vec<u8>>,
    /// A canned upstream response, fed through the response callbacks if the request continues.
    pub response: Option<TestResponse>,
}

/// A canned upstream response.
#[derive(Clone, Debug, Default)]
pub struct TestResponse {
    /// Status code.
    pub status: u16,
    /// Headers (names are lowercased).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// What the filter did to the response.
#[derive(Clone, Debug)]
pub struct ResponseOutcome {
    /// The last response callback's result.
    pub action: Result<Action, StreamError>,
    /// The final response headers (with `:status`).
    pub headers: HeaderList,
    /// The final response body.
    pub body: Vec<u8>,
}

/// What the filter did to one request.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The request side's result: Continue, or a local reply, or the failure.
    pub action: Result<Action, StreamError>,
    /// The request headers after the filter.
    pub request_headers: HeaderList,
    /// The request body after the filter.
    pub request_body: Vec<u8>,
    /// The response side, when a canned response was given and the request continued.
    pub response: Option<ResponseOutcome>,
    /// Guest log lines during this exchange (including `on_log`), in order.
    pub logs: Vec<(LogLevel, String)>,
    /// The plugin's metrics after the exchange.
    pub metrics: Vec<MetricSample>,
}

impl Outcome {
    /// The first value of a final request header, as text.
    pub fn request_header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.request_headers
            .iter()
            .find(|(k, _)| k == name.as_bytes())
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The local reply, if the filter answered the request itself.
    pub fn local_reply(&self) -> Option<&LocalReply> {
        match &self.action {
            Ok(Action::LocalReply(r)) => Some(r),
            _ => None,
        }
    }

    /// A metric's value by name.
    pub fn metric(&self, name: &str) -> Option<i64> {
        self.metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }
}

/// The harness: one plugin, one VM (restarted after a failure), its own runtime.
pub struct Harness {
    plugin: Arc<Plugin>,
    runtime: tokio::runtime::Runtime,
    local: tokio::task::LocalSet,
    vm: Option<Vm>,
    info: StreamInfo,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("plugin", &self.plugin)
            .finish_non_exhaustive()
    }
}

static NEXT_VM_ID: AtomicU64 = AtomicU64::new(1);

impl Harness {
    /// Loads `wasm` with `config_json` as plugin configuration; plugin name `harness`, a VM id
    /// unique to this harness (so shared data is not shared between harnesses).
    pub fn new(wasm: &[u8], config_json: &str) -> Result<Harness, HostError> {
        let options = PluginOptions {
            name: "harness".to_owned(),
            root_id: "harness-root".to_owned(),
            vm_id: format!("harness-{}", NEXT_VM_ID.fetch_add(1, Ordering::Relaxed)),
            configuration: config_json.as_bytes().to_vec(),
            ..PluginOptions::default()
        };
        Self::with_options(wasm, options)
    }

    /// Loads `wasm` with explicit options, and starts the first VM.
    pub fn with_options(wasm: &[u8], options: PluginOptions) -> Result<Harness, HostError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| HostError::Engine(format!("cannot build a tokio runtime: {e}")))?;
        let plugin = Plugin::new(wasm, options)?;
        let local = tokio::task::LocalSet::new();
        let vm = local.block_on(&runtime, async { Vm::start_inner(plugin.clone(), true) })?;
        let info = StreamInfo {
            source: "127.0.0.1:40000".parse().ok(),
            destination: "127.0.0.1:8001".parse().ok(),
        };
        Ok(Harness {
            plugin,
            runtime,
            local,
            vm: Some(vm),
            info,
        })
    }

    /// The plugin (metrics, shared data).
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// Whether the current VM has failed (it is replaced on the next request).
    pub fn vm_failed(&self) -> bool {
        self.vm.as_ref().is_none_or(Vm::is_failed)
    }

    /// Sets the connection addresses of later requests.
    pub fn set_stream_info(&mut self, info: StreamInfo) {
        self.info = info;
    }

    /// Lets timers and callouts run for `duration`.
    pub fn run_for(&mut self, duration: Duration) {
        self.local.block_on(
            &self.runtime,
            async move { tokio::time::sleep(duration).await },
        );
    }

    /// Feeds a header-only request: `method path` with `Host: authority` and `headers`.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        authority: &str,
        headers: &[(&str, &str)],
    ) -> Outcome {
        self.exchange(TestRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            authority: authority.to_owned(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: None,
            response: None,
        })
    }

    /// Feeds a full exchange (body, canned response).
    pub fn exchange(&mut self, request: TestRequest) -> Outcome {
        if self.vm_failed() {
            self.vm = None;
            match self.local.block_on(&self.runtime, async {
                Vm::start_inner(self.plugin.clone(), true)
            }) {
                Ok(vm) => self.vm = Some(vm),
                Err(e) => return self.failed_start(&e),
            }
        }
        let Some(vm) = self.vm.as_ref() else {
            return self.failed_start(&HostError::Start("no vm".to_owned()));
        };
        let info = self.info;
        let mut outcome = self.local.block_on(&self.runtime, run(vm, info, request));
        outcome.logs = vm.take_logs();
        outcome.metrics = self.plugin.metrics();
        outcome
    }
}

impl Harness {
    fn failed_start(&self, e: &HostError) -> Outcome {
        Outcome {
            action: Err(StreamError::Trap(e.to_string())),
            request_headers: Vec::new(),
            request_body: Vec::new(),
            response: None,
            logs: Vec::new(),
            metrics: self.plugin.metrics(),
        }
    }
}

fn header_list(pseudo: &[(&str, &str)], extra: &[(String, String)]) -> HeaderList {
    pseudo
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .chain(
            extra
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase().into_bytes(), v.as_bytes().to_vec())),
        )
        .collect()
}

async fn run(vm: &Vm, info: StreamInfo, request: TestRequest) -> Outcome {
    let mut stream = vm.stream(info);
    let mut headers = header_list(
        &[
            (":method", &request.method),
            (":path", &request.path),
            (":authority", &request.authority),
            (":scheme", "http"),
        ],
        &request.headers,
    );
    let mut action = stream
        .request_headers(&mut headers, request.body.is_none())
        .await;
    let mut forwarded = Vec::new();
    if let (Ok(Action::Continue), Some(body)) = (&action, &request.body) {
        let (first, second) = body.split_at(body.len() / 2);
        let chunks: Vec<&[u8]> = if first.is_empty() {
            vec![second]
        } else {
            vec![first, second]
        };
        let mut acc = Vec::new();
        let count = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            acc.extend_from_slice(chunk);
            action = stream.request_body(&mut acc, i + 1 == count).await;
            match action {
                Ok(Action::Buffer) => {}
                Ok(Action::Continue) => forwarded.append(&mut acc),
                _ => break,
            }
        }
        forwarded.append(&mut acc);
    }
    let mut response = None;
    if let (Ok(Action::Continue), Some(resp)) = (&action, request.response) {
        let mut rh = header_list(&[(":status", &resp.status.to_string())], &resp.headers);
        let mut body = resp.body;
        let mut raction = stream.response_headers(&mut rh, body.is_empty()).await;
        if matches!(raction, Ok(Action::Continue)) && !body.is_empty() {
            raction = stream.response_body(&mut body, true).await;
        }
        response = Some(ResponseOutcome {
            action: raction,
            headers: rh,
            body,
        });
    }
    drop(stream);
    Outcome {
        action,
        request_headers: headers,
        request_body: forwarded,
        response,
        logs: Vec::new(),
        metrics: Vec::new(),
    }
}
