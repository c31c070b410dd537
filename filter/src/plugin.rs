//! The proxy-wasm glue, and the only module that names `proxy_wasm`: defines the counters on VM
//! start, parses the configuration in `on_configure` (one error line and `false` when invalid),
//! and per request reads the headers, calls [`evaluate`], and applies the decision.
//!
//! Direct mode: a Service lookup is answered from the shared-data cache or made with
//! `dispatch_http_call` while the request is paused, then applied in `on_http_call_response`;
//! responses of requests sent to a Service get the apiserver's rewriting (CORS, `Location`,
//! HTML bodies).
//!
//! No policy lives here: every choice is made by the pure modules.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};

use crate::auth::RotationCache;
use crate::config::Config;
use crate::decision::{
    COUNTERS, Decision, Forward, HeaderOp, LocalReply, ROUTED_SERVICE, RequestHead,
    SERVICE_CACHE_HITS, SERVICE_LOOKUPS, evaluate,
};
use crate::direct::ServiceLookup;
use crate::lookup::{self, LookupAnswer};
use crate::rewrite::{self, BodyEncoding, RewriteContext};

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
            pending: None,
            rewrite: None,
            body_encoding: None,
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
    /// The service lookup this request waits for.
    pending: Option<Box<ServiceLookup>>,
    /// Set when the request went to a Service: its responses are rewritten.
    rewrite: Option<RewriteContext>,
    /// Set when the response body is HTML to rewrite.
    body_encoding: Option<BodyEncoding>,
}

impl Context for Http {
    fn on_http_call_response(
        &mut self,
        _token_id: u32,
        num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let (Some(lookup), Some(config)) = (self.pending.take(), self.config.clone()) else {
            return;
        };
        let status = if num_headers == 0 {
            None
        } else {
            self.get_http_call_response_header_bytes(":status")
                .and_then(|s| String::from_utf8(s).ok())
                .and_then(|s| s.parse().ok())
        };
        let body = self
            .get_http_call_response_body(0, body_size)
            .unwrap_or_default();
        let answer = lookup::read_answer(status, &body);
        if config.service_cache_ttl_seconds > 0 && lookup::cacheable(&answer) {
            let value = lookup::encode_cache(&answer, self.now_ms());
            // A CAS mismatch cannot happen without a CAS; either way only the cache is lost.
            let _ = self.set_shared_data(&lookup.cache_key(), Some(&value), None);
        }
        if config.verbosity >= 6 {
            log::info!(
                "Service lookup {}/{}: {}",
                lookup.namespace,
                lookup.name,
                status.map_or_else(|| "no response".to_owned(), |s| s.to_string())
            );
        }
        if self.finish(&config, &lookup, &answer) {
            self.resume_http_request();
        }
    }
}

impl Http {
    fn request_head(&self) -> RequestHead {
        let mut head = RequestHead::default();
        let mut host = None;
        for (mut name, value) in self.get_http_request_headers_bytes() {
            // Valid UTF-8 (nearly always) is taken as is, without a copy.
            let value = String::from_utf8(value)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
            match name.as_str() {
                ":method" => head.method = value,
                ":path" => head.path = value,
                ":authority" => head.authority = value,
                n if n.starts_with(':') => {}
                _ => {
                    name.make_ascii_lowercase();
                    if name == "host" && host.is_none() {
                        host = Some(value.clone());
                    }
                    head.headers.push((name, value));
                }
            }
        }
        if head.authority.is_empty() {
            head.authority = host.unwrap_or_default();
        }
        head
    }

    /// Milliseconds since the Unix epoch, from the host.
    fn now_ms(&self) -> u64 {
        self.get_current_time()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// Applies a forward decision. `:path` is written only when it changed (`original`: the
    /// client's). Envoy clears its cached route on every request-header change, so the routing
    /// header takes effect without a `clear_route_cache` call.
    fn apply_forward(&self, forward: &Forward, original: Option<&str>) {
        for op in &forward.header_ops {
            match op {
                HeaderOp::Remove(name) => self.set_http_request_header(name, None),
                HeaderOp::Add(name, value) => self.add_http_request_header(name, value),
                HeaderOp::Replace(name, value) => {
                    self.set_http_request_header(name, Some(value));
                }
            }
        }
        if original != Some(forward.path.as_str()) {
            self.set_http_request_header(":path", Some(&forward.path));
        }
    }

    fn respond(&self, reply: &LocalReply) {
        let headers = reply
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let body = (!reply.body.is_empty()).then_some(reply.body.as_bytes());
        self.send_http_response(reply.status, headers, body);
    }

    /// Applies a lookup's answer; `true` when the request continues upstream.
    fn finish(&mut self, config: &Config, lookup: &ServiceLookup, answer: &LookupAnswer) -> bool {
        let resolved = lookup.finish(config, answer);
        match resolved.decision {
            Decision::Forward(forward) => {
                self.apply_forward(&forward, None);
                self.metrics.increment(ROUTED_SERVICE);
                self.rewrite = resolved.rewrite;
                true
            }
            Decision::Respond(reply) => {
                self.respond(&reply);
                false
            }
            Decision::Lookup(_) => false,
        }
    }

    /// Direct mode: answers from the cache, or dispatches the lookup and pauses.
    fn start_lookup(&mut self, config: &Config, lookup: Box<ServiceLookup>) -> Action {
        let key = lookup.cache_key();
        if config.service_cache_ttl_seconds > 0
            && let Some(bytes) = self.get_shared_data(&key).0
            && let Some(answer) =
                lookup::decode_cache(&bytes, self.now_ms(), config.service_cache_ttl_seconds)
        {
            self.metrics.increment(SERVICE_CACHE_HITS);
            return if self.finish(config, &lookup, &answer) {
                Action::Continue
            } else {
                Action::Pause
            };
        }
        let credentials = self.credentials(config);
        let headers = lookup::request_headers(
            &config.server_path,
            &lookup.namespace,
            &lookup.name,
            credentials.as_ref(),
            config.impersonate.as_ref(),
        );
        let headers = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        match self.dispatch_http_call(
            &config.apiserver_cluster,
            headers,
            None,
            Vec::new(),
            Duration::from_millis(lookup::LOOKUP_TIMEOUT_MS),
        ) {
            Ok(_token) => {
                self.metrics.increment(SERVICE_LOOKUPS);
                self.pending = Some(lookup);
                Action::Pause
            }
            Err(status) => {
                log::error!(
                    "cannot look up service {}/{} through cluster {:?}: {status:?}",
                    lookup.namespace,
                    lookup.name,
                    config.apiserver_cluster
                );
                let answer = LookupAnswer::Failed(format!(
                    "cannot call cluster {:?} ({status:?})",
                    config.apiserver_cluster
                ));
                self.finish(config, &lookup, &answer);
                Action::Pause
            }
        }
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
        // A client never chooses the upstream: every forward replaces `x-kproxy-upstream`, and
        // every other outcome is a local reply.
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
                self.apply_forward(&forward, Some(&head.path));
                Action::Continue
            }
            Decision::Respond(reply) => {
                self.respond(&reply);
                Action::Pause
            }
            Decision::Lookup(lookup) => self.start_lookup(&config, lookup),
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(ctx) = &self.rewrite else {
            return Action::Continue;
        };
        let headers = self.get_http_response_headers_bytes();
        let text = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| std::str::from_utf8(v).ok())
        };
        let mut cors: Vec<&str> = headers
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| rewrite::is_cors_header(n))
            .collect();
        cors.dedup();
        for name in cors {
            self.set_http_response_header(name, None);
        }
        if let Some(location) = text("location") {
            let rewritten = rewrite::rewrite_location(ctx, location);
            if rewritten != location {
                self.set_http_response_header("location", Some(&rewritten));
            }
        }
        // apimachinery rewrites either the Location or the body, never both.
        if !end_of_stream && text("location").is_none_or(str::is_empty) {
            self.body_encoding =
                rewrite::html_body_encoding(text("content-type"), text("content-encoding"));
            if self.body_encoding.is_some() {
                // The rewritten body has another length. Envoy turns a response-headers pause
                // into StopAllIteration (no body callbacks until the stream is continued), so
                // the head must go now: without content-length, the body goes out chunked.
                self.set_http_response_header("content-length", None);
            }
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let (Some(ctx), Some(enc)) = (&self.rewrite, self.body_encoding) else {
            return Action::Continue;
        };
        if !end_of_stream {
            return Action::Pause;
        }
        let body = self
            .get_http_response_body(0, body_size)
            .unwrap_or_default();
        match rewrite::rewrite_html_body(ctx, enc, &body) {
            Ok(new) => {
                if new != body {
                    self.set_http_response_body(0, body_size, &new);
                }
            }
            Err(e) => log::warn!("passing an HTML response body unchanged: {e}"),
        }
        Action::Continue
    }
}
