//! Host tests: the conformance guest through the testing harness, linking, isolation.
//!
//! The guest is read from `$CONFORMANCE_WASM` or the workspace's
//! `target/wasm32-wasip1/wasm/conformance_guest.wasm`; a missing file fails with a hint.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use super::testing::{Harness, Outcome, TestRequest, TestResponse};
use super::{Action, ClusterTarget, HostError, LogLevel, Plugin, PluginOptions, StreamError, Vm};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn conformance_wasm() -> Vec<u8> {
    let path = std::env::var_os("CONFORMANCE_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let wasm = workspace().join("target/wasm32-wasip1/wasm/conformance_guest.wasm");
            let release = workspace().join("target/wasm32-wasip1/release/conformance_guest.wasm");
            if !wasm.exists() && release.exists() {
                release
            } else {
                wasm
            }
        });
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build it with `./just conformance-wasm` or set CONFORMANCE_WASM",
            path.display()
        )
    })
}

fn options(mode: &str) -> PluginOptions {
    PluginOptions {
        name: "conformance".to_owned(),
        root_id: "conformance-root".to_owned(),
        vm_id: format!("conformance-{mode}"),
        configuration: format!(r#"{{"mode":"{mode}"}}"#).into_bytes(),
        max_memory_bytes: 32 * 1024 * 1024,
        callback_deadline: Duration::from_millis(300),
        ..PluginOptions::default()
    }
}

fn harness(mode: &str) -> Harness {
    Harness::with_options(&conformance_wasm(), options(mode)).expect("the conformance guest starts")
}

fn get(h: &mut Harness, path: &str) -> Outcome {
    h.request("GET", path, "localhost", &[("x-echo", "echoed")])
}

#[track_caller]
fn check_header(out: &Outcome, name: &str, expected: Option<&str>) {
    assert_eq!(
        out.request_header(name),
        expected,
        "header {name} in {:?}",
        out.request_headers
    );
}

#[test]
fn plugin_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Plugin>();
    assert_send_sync::<std::sync::Arc<Plugin>>();
}

#[test]
fn links_with_every_import_satisfied() {
    let plugin = Plugin::new(&conformance_wasm(), options("add_header"));
    assert!(plugin.is_ok(), "{plugin:?}");
}

/// A module importing `imports` from `env` (type `() -> ()`), built byte by byte.
fn module_importing(imports: &[&str]) -> Vec<u8> {
    let mut section = vec![u8::try_from(imports.len()).unwrap()];
    for name in imports {
        section.extend([3, b'e', b'n', b'v', u8::try_from(name.len()).unwrap()]);
        section.extend(name.as_bytes());
        section.extend([0, 0]); // kind func, type 0
    }
    let mut wasm = vec![0, b'a', b's', b'm', 1, 0, 0, 0];
    wasm.extend([1, 4, 1, 0x60, 0, 0]); // type section: one `() -> ()`
    wasm.extend([2, u8::try_from(section.len()).unwrap()]);
    wasm.extend(section);
    wasm
}

#[test]
fn refuses_unknown_imports_naming_them() {
    let wasm = module_importing(&["proxy_log", "proxy_nonexistent", "proxy_get_configuration"]);
    match Plugin::new(&wasm, PluginOptions::default()) {
        Err(HostError::UnknownImports(names)) => {
            // proxy_log exists but with another signature: instantiate_pre would reject it.
            assert_eq!(
                names,
                ["env.proxy_nonexistent", "env.proxy_get_configuration"]
            );
        }
        other => panic!("expected UnknownImports, got {other:?}"),
    }
}

#[test]
fn refuses_a_module_without_the_abi_marker() {
    match Plugin::new(&module_importing(&[]), PluginOptions::default()) {
        Err(HostError::MissingExport(name)) => assert_eq!(name, "proxy_abi_version_0_2_1"),
        other => panic!("expected MissingExport, got {other:?}"),
    }
}

fn section(id: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![id, u8::try_from(content.len()).unwrap()];
    out.extend(content);
    out
}

fn name(s: &str) -> Vec<u8> {
    let mut out = vec![u8::try_from(s.len()).unwrap()];
    out.extend(s.as_bytes());
    out
}

/// A minimal proxy-wasm module whose `_initialize` calls `env.<import>` (all-i32 params, returns
/// a status) with zeros.
fn module_initialize_calling(import: &str, params: u8) -> Vec<u8> {
    let mut types = vec![3, 0x60, params];
    types.extend(std::iter::repeat_n(0x7f, params.into()));
    types.extend([1, 0x7f, 0x60, 0, 0, 0x60, 1, 0x7f, 1, 0x7f]);
    let mut imports = vec![1];
    imports.extend(name("env"));
    imports.extend(name(import));
    imports.extend([0, 0]);
    let mut exports = vec![4];
    for (export, kind, index) in [
        ("memory", 2, 0),
        ("_initialize", 0, 1),
        ("proxy_abi_version_0_2_1", 0, 1),
        ("proxy_on_memory_allocate", 0, 2),
    ] {
        exports.extend(name(export));
        exports.extend([kind, index]);
    }
    let mut init = vec![0];
    for _ in 0..params {
        init.extend([0x41, 0]);
    }
    init.extend([0x10, 0, 0x1a, 0x0b]);
    let mut code = vec![2, u8::try_from(init.len()).unwrap()];
    code.extend(init);
    code.extend([4, 0, 0x41, 0, 0x0b]);
    let mut wasm = vec![0, b'a', b's', b'm', 1, 0, 0, 0];
    wasm.extend(section(1, &types));
    wasm.extend(section(2, &imports));
    wasm.extend(section(3, &[2, 1, 2]));
    wasm.extend(section(5, &[1, 0, 1]));
    wasm.extend(section(7, &exports));
    wasm.extend(section(10, &code));
    wasm
}

#[test]
fn restricted_start_up_phase() {
    // logging is allowed in `_initialize` …
    let plugin = Plugin::new(
        &module_initialize_calling("proxy_log", 3),
        PluginOptions::default(),
    )
    .unwrap();
    assert!(Vm::start(plugin).is_ok());
    // … defining a metric is not (V8's `restricted_callback`, as in Envoy)
    let plugin = Plugin::new(
        &module_initialize_calling("proxy_define_metric", 4),
        PluginOptions::default(),
    )
    .unwrap();
    match Vm::start(plugin) {
        Err(HostError::Start(msg)) => assert!(msg.contains("restricted_callback"), "{msg}"),
        other => panic!("expected a start failure, got {other:?}"),
    }
}

#[test]
fn add_header_and_logs() {
    let mut h = harness("add_header");
    let out = get(&mut h, "/x");
    assert_eq!(out.action, Ok(Action::Continue));
    check_header(&out, "x-conformance", Some("added"));
    check_header(&out, ":path", Some("/x"));
    assert!(
        out.logs
            .contains(&(LogLevel::Info, "request GET /x".to_owned())),
        "{:?}",
        out.logs
    );
    // on_log ran after the request, with read-only access to the request headers
    assert!(
        out.logs.contains(&(LogLevel::Debug, "log /x".to_owned())),
        "{:?}",
        out.logs
    );
}

#[test]
fn local_reply_runs_response_callbacks() {
    let mut h = harness("local_reply");
    let out = get(&mut h, "/x");
    let reply = out.local_reply().expect("a local reply");
    assert_eq!(reply.status, 403);
    assert_eq!(reply.body, b"denied by conformance\n");
    let header = |n: &str| {
        reply
            .headers
            .iter()
            .find(|(k, _)| k == n.as_bytes())
            .map(|(_, v)| v.as_slice())
    };
    assert_eq!(header("x-reason"), Some(&b"denied"[..]));
    assert_eq!(header("content-length"), Some(&b"22"[..]));
    assert_eq!(header("content-type"), Some(&b"text/plain"[..]));
    // the filter's own on_response_headers saw the reply (Envoy's encoder path)
    assert_eq!(header("x-conformance-response"), Some(&b"yes"[..]));
}

#[test]
fn trap_fails_the_request_then_a_fresh_vm_serves() {
    let mut h = harness("add_header");
    assert_eq!(get(&mut h, "/ok").action, Ok(Action::Continue));
    let out = get(&mut h, "/trap");
    match &out.action {
        Err(StreamError::Trap(msg)) => assert!(msg.contains("trap requested"), "{msg}"),
        other => panic!("expected a trap, got {other:?}"),
    }
    assert!(h.vm_failed());
    let out = get(&mut h, "/ok");
    assert_eq!(out.action, Ok(Action::Continue));
    check_header(&out, "x-conformance", Some("added"));
}

#[test]
fn trap_on_request_mode() {
    let mut h = harness("trap_on_request");
    assert!(matches!(
        get(&mut h, "/x").action,
        Err(StreamError::Trap(_))
    ));
}

#[test]
fn endless_loop_hits_the_deadline() {
    let mut h = harness("add_header");
    assert_eq!(get(&mut h, "/loop").action, Err(StreamError::Deadline));
    assert_eq!(get(&mut h, "/ok").action, Ok(Action::Continue));
    let mut h = harness("loop_on_request");
    assert_eq!(get(&mut h, "/x").action, Err(StreamError::Deadline));
}

#[test]
fn memory_exhaustion_is_out_of_memory() {
    let mut h = harness("add_header");
    assert_eq!(get(&mut h, "/oom").action, Err(StreamError::OutOfMemory));
    assert_eq!(get(&mut h, "/ok").action, Ok(Action::Continue));
    let mut h = harness("oom_on_request");
    assert_eq!(get(&mut h, "/x").action, Err(StreamError::OutOfMemory));
}

#[test]
fn rejected_configuration_names_the_guest_error() {
    match Harness::with_options(&conformance_wasm(), options("reject_config")) {
        Err(HostError::Configure(line)) => assert!(line.contains("rejected on purpose"), "{line}"),
        other => panic!("expected a configure error, got {other:?}"),
    }
}

/// A one-shot-per-connection HTTP server answering every request with `body`.
fn backend(body: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut buf = [0u8; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let path = String::from_utf8_lossy(&seen)
                .split(' ')
                .nth(1)
                .unwrap_or("")
                .to_owned();
            let body = format!("{body} {path}");
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}")
}

fn call_harness(cluster: &str, clusters: HashMap<String, ClusterTarget>) -> Harness {
    let mut opts = options("pause_then_http_call");
    opts.configuration =
        format!(r#"{{"mode":"pause_then_http_call","cluster":"{cluster}","path":"/token","timeout_ms":300}}"#)
            .into_bytes();
    opts.clusters = clusters;
    Harness::with_options(&conformance_wasm(), opts).unwrap()
}

#[test]
fn pause_then_http_call_resumes_with_the_response() {
    let url = backend("called");
    let mut h = call_harness(
        "backend",
        HashMap::from([("backend".to_owned(), ClusterTarget::new(url))]),
    );
    let out = get(&mut h, "/x");
    assert_eq!(out.action, Ok(Action::Continue));
    check_header(&out, "x-call-status", Some("200"));
    check_header(&out, "x-call-body", Some("called /token"));
    // a second request gets the next token and works the same
    check_header(&get(&mut h, "/y"), "x-call-status", Some("200"));
}

#[test]
fn local_reply_from_a_callout_response_while_paused() {
    let url = backend("deny");
    let mut h = call_harness(
        "backend",
        HashMap::from([("backend".to_owned(), ClusterTarget::new(url))]),
    );
    let out = get(&mut h, "/x");
    let reply = out.local_reply().expect("a local reply");
    assert_eq!(reply.status, 401);
    assert_eq!(reply.body, b"denied by callout");
    assert!(
        reply
            .headers
            .contains(&(b"x-callout".to_vec(), b"denied".to_vec())),
        "{:?}",
        reply.headers
    );
}

#[test]
fn http_call_failures_as_envoy() {
    // unknown cluster: BadArgument before any I/O
    let mut h = call_harness("nope", HashMap::new());
    let out = get(&mut h, "/x");
    assert_eq!(out.action, Ok(Action::Continue));
    check_header(&out, "x-call-error", Some("BadArgument"));
    // connection refused: an ordinary 503 response
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let target = ClusterTarget::new(format!("http://{closed}"));
    let mut h = call_harness("down", HashMap::from([("down".to_owned(), target)]));
    let out = get(&mut h, "/x");
    check_header(&out, "x-call-status", Some("503"));
    // no answer within the timeout: an ordinary 504 response
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = ClusterTarget::new(format!("http://{}", silent.local_addr().unwrap()));
    let mut h = call_harness("silent", HashMap::from([("silent".to_owned(), target)]));
    let out = get(&mut h, "/x");
    check_header(&out, "x-call-status", Some("504"));
    check_header(&out, "x-call-body", Some("upstream request timeout"));
    drop(silent);
}

#[test]
fn ticks_reach_the_root_context() {
    let mut h = harness("tick");
    h.run_for(Duration::from_millis(80));
    let out = get(&mut h, "/x");
    let ticks: u64 = out
        .request_header("x-ticks")
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    assert!(ticks >= 1, "ticks {ticks}");
}

#[test]
fn shared_data_counter_with_cas_and_host_writes() {
    let mut h = harness("shared_data_counter");
    for expected in ["1", "2", "3"] {
        check_header(&get(&mut h, "/x"), "x-counter", Some(expected));
    }
    h.plugin().set_shared_data("conformance.counter", b"10");
    check_header(&get(&mut h, "/x"), "x-counter", Some("11"));
}

#[test]
fn metrics_follow_envoy_rules() {
    let mut h = harness("metrics");
    get(&mut h, "/x");
    let out = get(&mut h, "/x");
    check_header(&out, "x-zero-increment", Some("BadArgument"));
    check_header(&out, "x-requests", Some("2"));
    assert_eq!(out.metric("conformance.requests"), Some(2));
    assert_eq!(out.metric("conformance.gauge"), Some(42));
    assert_eq!(out.metric("conformance.histogram"), Some(14));
}

#[test]
fn read_properties() {
    let mut h = harness("read_properties");
    let out = get(&mut h, "/p?q=1");
    for (name, value) in [
        ("x-prop-path", "/p?q=1"),
        ("x-prop-method", "GET"),
        ("x-prop-host", "localhost"),
        ("x-prop-scheme", "http"),
        ("x-prop-echo", "echoed"),
        ("x-prop-source", "127.0.0.1:40000"),
        ("x-prop-destination", "127.0.0.1:8001"),
        ("x-prop-plugin-name", "conformance"),
        ("x-prop-root-id", "conformance-root"),
        ("x-prop-vm-id", "conformance-read_properties"),
        ("x-prop-missing", "<none>"),
    ] {
        check_header(&out, name, Some(value));
    }
}

#[test]
fn body_rewrite_buffers_until_end_of_stream() {
    let mut h = harness("body_rewrite");
    let out = h.exchange(TestRequest {
        method: "POST".to_owned(),
        path: "/b".to_owned(),
        authority: "localhost".to_owned(),
        body: Some(b"hello world".to_vec()),
        ..TestRequest::default()
    });
    assert_eq!(out.action, Ok(Action::Continue));
    assert_eq!(String::from_utf8_lossy(&out.request_body), "HELLO WORLD");
}

#[test]
fn response_header_added() {
    let mut h = harness("response_header");
    let out = h.exchange(TestRequest {
        method: "GET".to_owned(),
        path: "/r".to_owned(),
        authority: "localhost".to_owned(),
        response: Some(TestResponse {
            status: 200,
            headers: vec![],
            body: b"ok".to_vec(),
        }),
        ..TestRequest::default()
    });
    let resp = out.response.expect("the response ran");
    assert_eq!(resp.action, Ok(Action::Continue));
    assert!(
        resp.headers
            .contains(&(b"x-conformance-response".to_vec(), b"yes".to_vec())),
        "{:?}",
        resp.headers
    );
    assert_eq!(resp.body, b"ok");
}

#[test]
fn kproxy_filter_routes_and_rejects() {
    let path = std::env::var_os("KPROXY_FILTER_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "KPROXY_FILTER_WASM is unset; run through ./just or point it at kproxy_filter.wasm"
            )
        });
    let wasm = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; build it with `./just wasm`", path.display()));
    let mut h = Harness::new(&wasm, "{}").expect("the kproxy filter starts");
    let out = h.request(
        "GET",
        "/api/v1/namespaces/default/pods/x/exec",
        "localhost",
        &[],
    );
    assert_eq!(
        out.local_reply().map(|r| r.status),
        Some(403),
        "{:?}",
        out.action
    );
    let out = h.request("GET", "/api/v1/pods", "localhost", &[]);
    assert_eq!(out.action, Ok(Action::Continue));
    check_header(&out, "x-kproxy-upstream", Some("apiserver"));
}

#[test]
fn compiled_module_cache_directory_follows_the_environment() {
    use std::ffi::OsString;
    use std::path::PathBuf;
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| OsString::from(v))
        }
    };
    let dir = super::vm::cache_dir_from;
    assert_eq!(
        dir(env(&[(super::CACHE_DIR_ENV, "/c"), ("HOME", "/h")])),
        Some(PathBuf::from("/c"))
    );
    assert_eq!(
        dir(env(&[(super::CACHE_DIR_ENV, ""), ("HOME", "/h")])),
        None
    );
    assert_eq!(dir(env(&[(super::CACHE_DIR_ENV, "relative")])), None);
    assert_eq!(
        dir(env(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")])),
        Some(PathBuf::from("/x/kproxy/wasmtime"))
    );
    assert_eq!(
        dir(env(&[("XDG_CACHE_HOME", ""), ("HOME", "/h")])),
        Some(PathBuf::from("/h/.cache/kproxy/wasmtime"))
    );
    assert_eq!(dir(env(&[])), None);
}
