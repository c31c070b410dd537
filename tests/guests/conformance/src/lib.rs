//! A proxy-wasm 0.2 test filter for the shim's host tests: the plugin configuration JSON
//! (`{"mode": "…", …}`) selects the behaviour, as Kong's `hostcalls` test filter does.
//!
//! Modes: `add_header`, `local_reply`, `trap_on_request`, `loop_on_request`, `oom_on_request`,
//! `pause_then_http_call` (`cluster`, `path`; a response body starting with `deny` makes a 401
//! local reply instead of resuming), `tick`, `shared_data_counter`, `metrics`,
//! `read_properties`, `body_rewrite`, `response_header`, `reject_config`. Every request logs
//! `request <method> <path>` at info; in every mode the paths `/trap`, `/loop` and `/oom` trap,
//! loop forever and exhaust memory. This crate does no I/O of its own and must stay a plain
//! proxy-wasm filter (only SDK imports).

use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType, Status};
use serde::Deserialize;

/// The plugin configuration.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The behaviour to exhibit.
    pub mode: String,
    /// `pause_then_http_call`: the cluster to call.
    #[serde(default)]
    pub cluster: String,
    /// `pause_then_http_call`: the path to request.
    #[serde(default)]
    pub path: String,
    /// `pause_then_http_call`: the call's timeout in milliseconds (default 5000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// Metric ids defined at VM start.
#[derive(Clone, Copy, Debug, Default)]
struct Metrics {
    requests: u32,
    gauge: u32,
    histogram: u32,
}

/// The module's `_initialize`: installs the logger and the root context.
#[allow(
    unreachable_pub,
    reason = "the SDK macro exports `_initialize` from this private module"
)]
mod entry {
    use super::{LogLevel, Root, RootContext};

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Trace);
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
    }}
}

#[derive(Default)]
struct Root {
    settings: Settings,
    metrics: Metrics,
    ticks: u64,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_vm_start(&mut self, _size: usize) -> bool {
        let define = |t, name: &str| hostcalls::define_metric(t, name).unwrap_or(0);
        self.metrics = Metrics {
            requests: define(MetricType::Counter, "conformance.requests"),
            gauge: define(MetricType::Gauge, "conformance.gauge"),
            histogram: define(MetricType::Histogram, "conformance.histogram"),
        };
        true
    }

    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(bytes) = self.get_plugin_configuration() else {
            log::error!("conformance: no plugin configuration");
            return false;
        };
        match serde_json::from_slice::<Settings>(&bytes) {
            Ok(s) if s.mode == "reject_config" => {
                log::error!("conformance: configuration rejected on purpose");
                false
            }
            Ok(s) => {
                if s.mode == "tick" {
                    self.set_tick_period(Duration::from_millis(10));
                }
                self.settings = s;
                true
            }
            Err(e) => {
                log::error!("conformance: bad configuration: {e}");
                false
            }
        }
    }

    fn on_tick(&mut self) {
        self.ticks += 1;
        let _ = self.set_shared_data(
            "conformance.ticks",
            Some(self.ticks.to_string().as_bytes()),
            None,
        );
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            settings: self.settings.clone(),
            metrics: self.metrics,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Stream {
    settings: Settings,
    metrics: Metrics,
}

fn text(bytes: Option<Vec<u8>>) -> String {
    bytes.map_or_else(
        || "<none>".to_owned(),
        |b| String::from_utf8_lossy(&b).into_owned(),
    )
}

impl Stream {
    fn shared_counter(&self) -> u64 {
        loop {
            let (value, cas) = self.get_shared_data("conformance.counter");
            let n = text(value).parse::<u64>().unwrap_or(0) + 1;
            match self.set_shared_data("conformance.counter", Some(n.to_string().as_bytes()), cas) {
                Ok(()) => return n,
                Err(Status::CasMismatch) => continue,
                Err(_) => return 0,
            }
        }
    }

    fn metrics(&self) {
        let m = self.metrics;
        let _ = hostcalls::increment_metric(m.requests, 1);
        let _ = hostcalls::record_metric(m.gauge, 42);
        let _ = hostcalls::record_metric(m.histogram, 7);
        let zero = match hostcalls::increment_metric(m.requests, 0) {
            Ok(()) => "ok".to_owned(),
            Err(s) => format!("{s:?}"),
        };
        self.set_http_request_header("x-zero-increment", Some(&zero));
        let total = hostcalls::get_metric(m.requests).unwrap_or(0);
        self.set_http_request_header("x-requests", Some(&total.to_string()));
    }

    fn read_properties(&self) {
        let props: [(&str, &[&str]); 10] = [
            ("path", &["request", "path"]),
            ("method", &["request", "method"]),
            ("host", &["request", "host"]),
            ("scheme", &["request", "scheme"]),
            ("echo", &["request", "headers", "x-echo"]),
            ("source", &["source", "address"]),
            ("destination", &["destination", "address"]),
            ("plugin-name", &["plugin_name"]),
            ("root-id", &["plugin_root_id"]),
            ("vm-id", &["plugin_vm_id"]),
        ];
        for (name, path) in props {
            let value = text(self.get_property(path.to_vec()));
            self.set_http_request_header(&format!("x-prop-{name}"), Some(&value));
        }
        let missing = text(self.get_property(vec!["no", "such", "property"]));
        self.set_http_request_header("x-prop-missing", Some(&missing));
    }
}

impl Context for Stream {
    fn on_http_call_response(
        &mut self,
        _token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let status = self
            .get_http_call_response_header(":status")
            .unwrap_or_default();
        let body = text(self.get_http_call_response_body(0, body_size));
        if body.starts_with("deny") {
            // A local reply from a later top-level call, while the request is paused.
            self.send_http_response(
                401,
                vec![("x-callout", "denied")],
                Some(b"denied by callout"),
            );
            return;
        }
        self.set_http_request_header("x-call-status", Some(&status));
        self.set_http_request_header("x-call-body", Some(body.trim()));
        self.resume_http_request();
    }
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        let method = self.get_http_request_header(":method").unwrap_or_default();
        let path = self.get_http_request_header(":path").unwrap_or_default();
        log::info!("request {method} {path}");
        // In every mode, these paths misbehave (isolation tests on a VM that served before).
        let mode = match path.as_str() {
            "/trap" => "trap_on_request",
            "/loop" => "loop_on_request",
            "/oom" => "oom_on_request",
            _ => self.settings.mode.as_str(),
        };
        match mode {
            "add_header" => self.add_http_request_header("x-conformance", "added"),
            "local_reply" => {
                self.send_http_response(
                    403,
                    vec![("x-reason", "denied")],
                    Some(b"denied by conformance\n"),
                );
                return Action::Pause;
            }
            "trap_on_request" => panic!("trap requested"),
            "loop_on_request" => loop {
                std::hint::black_box(());
            },
            "oom_on_request" => {
                let mut hog: Vec<Vec<u8>> = Vec::new();
                loop {
                    hog.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hog);
                }
            }
            "pause_then_http_call" => {
                let headers = vec![
                    (":method", "GET"),
                    (":path", self.settings.path.as_str()),
                    (":authority", "conformance"),
                ];
                return match self.dispatch_http_call(
                    &self.settings.cluster,
                    headers,
                    None,
                    vec![],
                    Duration::from_millis(self.settings.timeout_ms.unwrap_or(5000)),
                ) {
                    Ok(_) => Action::Pause,
                    Err(s) => {
                        self.set_http_request_header("x-call-error", Some(&format!("{s:?}")));
                        Action::Continue
                    }
                };
            }
            "tick" => {
                let ticks = text(self.get_shared_data("conformance.ticks").0);
                self.set_http_request_header("x-ticks", Some(&ticks));
            }
            "shared_data_counter" => {
                let n = self.shared_counter();
                self.set_http_request_header("x-counter", Some(&n.to_string()));
            }
            "metrics" => self.metrics(),
            "read_properties" => self.read_properties(),
            _ => {}
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, eos: bool) -> Action {
        if self.settings.mode != "body_rewrite" {
            return Action::Continue;
        }
        if !eos {
            return Action::Pause;
        }
        let body = self.get_http_request_body(0, body_size).unwrap_or_default();
        self.set_http_request_body(0, body_size, &body.to_ascii_uppercase());
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
        if self.settings.mode == "response_header" || self.settings.mode == "local_reply" {
            self.add_http_response_header("x-conformance-response", "yes");
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        let path = self.get_http_request_header(":path").unwrap_or_default();
        log::debug!("log {path}");
    }
}
