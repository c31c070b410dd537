//! The proxy-wasm glue, and the only module that names `proxy_wasm`: defines the counters on VM
//! start, parses the configuration in `on_configure` (one error line and `false` when invalid),
//! and per request reads the headers, calls [`evaluate`], and applies the decision.
//!
//! No policy lives here: every choice is made by the pure modules.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};

use crate::auth::RotationCache;
use crate::config::Config;
use crate::decision::{COUNTERS, Decision, HeaderOp, RequestHead, UPSTREAM_HEADER, evaluate};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// Counter ids, in [`COUNTERS`] order; `None` where the host refused the definition.
#[derive(Debug, Default)]
struct Metrics {
    ids: Vec<Option<u32>>,
}

impl Metrics {
    fn define() -> Self {
        let ids = COUNTERS
            .iter()
            .map(|name| hostcalls::define_metric(MetricType::Counter, name).ok())
            .collect();
        Self { ids }
    }

    fn increment(&self, index: usize) {
        if let Some(Some(id)) = self.ids.get(index) {
            // NotFound/BadArgument only lose a count.
            let _ = hostcalls::increment_metric(*id, 1);
        }
    }
}

/// The root context: one per plugin configuration.
#[derive(Default)]
struct Root {
    config: Option<Rc<Config>>,
    metrics: Option<Rc<Metrics>>,
    rotation: Rc<RefCell<RotationCache>>,
}

impl Root {
    fn metrics(&mut self) -> Rc<Metrics> {
        self.metrics
            .get_or_insert_with(|| Rc::new(Metrics::define()))
            .clone()
    }
}

impl Context for Root {}

impl RootContext for Root {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        self.metrics();
        true
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        self.metrics();
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        match Config::parse(&bytes) {
            Ok(config) => {
                self.config = Some(Rc::new(config));
                true
            }
            Err(e) => {
                log::error!("invalid plugin configuration: {e}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http {
            config: self.config.clone(),
            metrics: self.metrics.clone().unwrap_or_default(),
            rotation: self.rotation.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One request.
struct Http {
    config: Option<Rc<Config>>,
    metrics: Rc<Metrics>,
    rotation: Rc<RefCell<RotationCache>>,
}

impl Context for Http {}

impl Http {
    fn request_head(&self) -> RequestHead {
        let mut head = RequestHead::default();
        let mut host = None;
        for (name, value) in self.get_http_request_headers_bytes() {
            let value = String::from_utf8_lossy(&value).into_owned();
            match name.as_str() {
                ":method" => head.method = value,
                ":path" => head.path = value,
                ":authority" => head.authority = value,
                n if n.starts_with(':') => {}
                n => {
                    let n = n.to_ascii_lowercase();
                    if n == "host" && host.is_none() {
                        host = Some(value.clone());
                    }
                    head.headers.push((n, value));
                }
            }
        }
        if head.authority.is_empty() {
            head.authority = host.unwrap_or_default();
        }
        head
    }

    /// The configured credentials, or the rotated ones from shared data when present.
    fn credentials(&self, config: &Config) -> Option<crate::auth::Credentials> {
        let creds = config.credentials.as_ref()?;
        if let Some(key) = &creds.shared_data_key {
            let (value, cas) = self.get_shared_data(key);
            let (rotated, error) = self.rotation.borrow_mut().resolve(value.as_deref(), cas);
            if let Some(e) = error {
                log::error!("ignoring credentials in shared data {key:?}: {e}");
            }
            if rotated.is_some() {
                return rotated;
            }
        }
        creds.static_credentials.clone()
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // A client never chooses the upstream.
        self.set_http_request_header(UPSTREAM_HEADER, None);
        let Some(config) = self.config.clone() else {
            log::error!("kproxy filter has no valid plugin configuration");
            self.send_http_response(
                500,
                vec![("content-type", "text/plain; charset=utf-8")],
                Some(b"kproxy filter is not configured\n"),
            );
            return Action::Pause;
        };
        let head = self.request_head();
        let credentials = self.credentials(&config);
        let evaluation = evaluate(&config, &head, credentials.as_ref());
        if let Some(line) = &evaluation.log {
            log::info!("{line}");
        }
        for &index in evaluation.outcome.counters() {
            self.metrics.increment(index);
        }
        match evaluation.decision {
            Decision::Forward(forward) => {
                for op in &forward.header_ops {
                    match op {
                        HeaderOp::Remove(name) => self.set_http_request_header(name, None),
                        HeaderOp::Add(name, value) => self.add_http_request_header(name, value),
                        HeaderOp::Replace(name, value) => {
                            self.set_http_request_header(name, Some(value));
                        }
                    }
                }
                self.set_http_request_header(":path", Some(&forward.path));
                // Envoy re-routes on the new headers; other hosts answer NotFound.
                let _ = self.call_foreign_function("clear_route_cache", None);
                Action::Continue
            }
            Decision::Respond(reply) => {
                let headers = reply
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                let body = (!reply.body.is_empty()).then_some(reply.body.as_bytes());
                self.send_http_response(reply.status, headers, body);
                Action::Pause
            }
        }
    }
}
