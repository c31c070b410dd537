//! Security properties that a scenario row cannot express: oversized header blocks (431) and
//! overlong targets, pipelined request smuggling (what the proxy makes of the bytes after a
//! desynchronising request), the unix socket's mode, and the API-server token never appearing in
//! logs (shim `-v=0..10`, Envoy's wasm log), local error bodies, metrics or the static-file route.
//!
//! It drives processes over sockets only; expected answers come from kubectl proxy (run here as
//! the oracle where it applies) and kubectl-proxy.md §2.1.

use std::io::Write as _;
use std::time::Duration;

use crate::apiserver::{FakeApiServer, FakeOptions};
use crate::backend::{self, Backend, Running};
use crate::faults::{self, Proc};
use crate::kubeconfig::{self, TempDir, Variant};
use crate::rawhttp;

/// A token no test sends by accident; what the leak checks look for.
const SECRET: &str = "kp-secret-9b1f27c4e5a8d3";

fn fake() -> FakeApiServer {
    FakeApiServer::start(FakeOptions::default()).expect("fake")
}

/// Starts `backend` with `flags` against `fake`, or `None` when it is unavailable locally.
fn start(backend: Backend, flags: &[&str], fake: &FakeApiServer, dir: &TempDir) -> Option<Running> {
    backend::require(backend)?;
    let kc = kubeconfig::write(dir, fake, Variant::Token).expect("kubeconfig");
    let flags: Vec<String> = flags.iter().map(|s| (*s).to_owned()).collect();
    Some(
        backend
            .spawn(&flags, &kc, fake, dir)
            .unwrap_or_else(|e| panic!("{} did not start: {e:#}", backend.name())),
    )
}

/// What reached the fake, without the `kubectl-dispatcher` wrapper's own start-up `/version`
/// probe (kubectl on this machine is a dispatcher that asks the server for its version first).
fn upstream(fake: &FakeApiServer) -> Vec<crate::replies::Recorded> {
    fake.requests()
        .into_iter()
        .filter(|r| {
            !r.header("user-agent")
                .is_some_and(|ua| ua.starts_with("kubectl-dispatcher"))
        })
        .collect()
}

fn exchange(running: &Running, req: &[u8]) -> rawhttp::RawResponse {
    rawhttp::send(running.addr(), req, false).unwrap_or_else(|e| {
        panic!(
            "{}: no response: {e:#}\n{}",
            running.backend.name(),
            running.logs()
        )
    })
}

#[test]
fn oversized_header_block_is_431_and_large_headers_pass() {
    for b in Backend::ALL {
        let fake = fake();
        let dir = TempDir::new("sec-431").expect("tempdir");
        let Some(r) = start(b, &[], &fake, &dir) else {
            continue;
        };
        // Go's MaxHeaderBytes is 1 MiB (+4 KiB slack): 1.1 MiB of header is refused.
        let big = "a".repeat(1_150_000);
        let req = format!("GET /api/v1/pods HTTP/1.1\r\nHost: localhost\r\nX-Big: {big}\r\n\r\n");
        let resp = exchange(&r, req.as_bytes());
        assert_eq!(resp.status, 431, "{}: {}", b.name(), resp.text());
        assert!(upstream(&fake).is_empty(), "{}: forwarded", b.name());
        // 200 KiB is well under every limit: forwarded intact.
        let mid = "b".repeat(200 * 1024);
        let req = format!("GET /api/v1/pods HTTP/1.1\r\nHost: localhost\r\nX-Mid: {mid}\r\n\r\n");
        let resp = exchange(&r, req.as_bytes());
        assert_eq!(resp.status, 200, "{}", b.name());
        let seen = upstream(&fake);
        assert_eq!(seen.len(), 1, "{}", b.name());
        assert_eq!(seen[0].header("x-mid").map(str::len), Some(mid.len()));
    }
}

#[test]
fn overlong_target_is_forwarded_verbatim_or_refused_whole() {
    for b in Backend::ALL {
        let fake = fake();
        let dir = TempDir::new("sec-long").expect("tempdir");
        let Some(r) = start(b, &[], &fake, &dir) else {
            continue;
        };
        let long = format!(
            "/api/v1/namespaces/default/configmaps/{}",
            "c".repeat(60_000)
        );
        let req = format!("GET {long} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let resp = exchange(&r, req.as_bytes());
        assert_eq!(resp.status, 200, "{}", b.name());
        assert_eq!(
            upstream(&fake).first().map(|s| s.target.clone()),
            Some(long),
            "{}: the long target was changed",
            b.name()
        );
        let huge = format!("/api/v1/pods?x={}", "d".repeat(1_150_000));
        let req = format!("GET {huge} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let resp = exchange(&r, req.as_bytes());
        assert!(
            resp.status == 431 || (b == Backend::Envoy && resp.status == 414),
            "{}: {} for a 1.1 MiB target",
            b.name(),
            resp.status
        );
        assert_eq!(upstream(&fake).len(), 1, "{}: forwarded", b.name());
    }
}

/// Writes `first` and then a hidden exec request on one connection; whatever the proxy makes of
/// it, no exec request may reach the API server and at most one request (the visible one) does.
fn smuggle(b: Backend, name: &str, first: &str) {
    let fake = fake();
    let dir = TempDir::new("sec-smuggle").expect("tempdir");
    let Some(r) = start(b, &[], &fake, &dir) else {
        return;
    };
    let hidden =
        "GET /api/v1/namespaces/default/pods/p/exec?command=sh HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let mut conn = rawhttp::Conn::open(r.addr()).expect("connect");
    conn.stream
        .write_all(format!("{first}{hidden}").as_bytes())
        .expect("write");
    let mut statuses = Vec::new();
    while let Ok(resp) = conn.read_response(false) {
        statuses.push(resp.status);
        if statuses.len() == 2 {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let seen = upstream(&fake);
    assert!(
        seen.iter()
            .all(|s| !s.target.contains("exec")
                && !String::from_utf8_lossy(&s.body).contains("exec")),
        "{name} on {}: the hidden exec reached the API server: {seen:?}",
        b.name()
    );
    assert!(seen.len() <= 1, "{name} on {}: {seen:?}", b.name());
    // The hidden request, if it was read as a request at all, was filtered.
    if let Some(&second) = statuses.get(1) {
        assert_eq!(second, 403, "{name} on {}: {statuses:?}", b.name());
    }
    println!("{name} on {}: statuses {statuses:?}", b.name());
}

#[test]
fn request_smuggling_never_reaches_exec() {
    for b in Backend::ALL {
        // Content-Length and chunked: chunked wins (Go, hyper) or the request is refused (Envoy).
        smuggle(
            b,
            "cl-te",
            "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: localhost\r\n\
             Content-Length: 80\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        );
        // Transfer-Encoding then Content-Length, in the other order.
        smuggle(
            b,
            "te-cl",
            "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: localhost\r\n\
             Transfer-Encoding: chunked\r\nContent-Length: 80\r\n\r\n0\r\n\r\n",
        );
        // Conflicting Content-Length values: refused.
        smuggle(
            b,
            "cl-cl",
            "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: localhost\r\n\
             Content-Length: 0\r\nContent-Length: 80\r\n\r\n",
        );
        // A GET whose body is the hidden request: Content-Length 0 means it is the next request.
        smuggle(
            b,
            "get-cl0",
            "GET /api/v1/pods HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n",
        );
    }
}

#[test]
fn cl_te_conflict_answers_per_backend() {
    // kubectl (Go) and the shim (hyper) read the chunked body and drop Content-Length; Envoy
    // refuses the request with its own 400 (documented in envoy/README.md).
    for b in Backend::ALL {
        let fake = fake();
        let dir = TempDir::new("sec-clte").expect("tempdir");
        let Some(r) = start(b, &[], &fake, &dir) else {
            continue;
        };
        let req = "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: localhost\r\n\
                   Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        let resp = exchange(&r, req.as_bytes());
        if b == Backend::Envoy {
            assert_eq!(resp.status, 400, "envoy");
            assert!(upstream(&fake).is_empty(), "envoy forwarded");
        } else {
            assert_eq!(resp.status, 200, "{}", b.name());
            let seen = upstream(&fake);
            assert_eq!(seen.len(), 1);
            assert_eq!(seen[0].body, b"hello", "{}", b.name());
            assert_eq!(seen[0].header("content-length"), None, "{}", b.name());
        }
    }
}

#[test]
fn unix_socket_is_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    if backend::require(Backend::Shim).is_none() {
        return;
    }
    let fake = fake();
    let dir = TempDir::new("sec-unix").expect("tempdir");
    let kc = kubeconfig::write(&dir, &fake, Variant::Token).expect("kubeconfig");
    let sock = dir.path().join("kproxy.sock");
    let mut child = std::process::Command::new(backend::shim_bin())
        .env("HOME", dir.path())
        .arg(format!("--unix-socket={}", sock.display()))
        .arg(format!("--kubeconfig={}", kc.path.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn shim");
    let up = faults::eventually(Duration::from_secs(20), || sock.exists());
    let mode = std::fs::metadata(&sock).map(|m| m.permissions().mode());
    let _ = child.kill();
    let _ = child.wait();
    assert!(up, "no socket at {}", sock.display());
    let mode = mode.expect("stat socket");
    assert_eq!(
        mode & 0o077,
        0,
        "socket mode {mode:o}: group/other bits set"
    );
}

/// Requests whose answers come from the proxy itself or from non-echo routes (the fake's echo
/// document would repeat the Authorization header back by design).
const LEAK_PROBES: &[&str] = &[
    "/version",
    "/api/v1/configmaps",
    "/api/v1/namespaces/default/pods/p/exec",
    "/api//v1/pods",
    "/api/v1/pods?fake-status=401",
    "/api/v1/pods?fake-status=500",
    "/api/v1/configmaps?watch=true&events=2&interval_ms=10",
    "/static/x.txt",
    "/static/nope",
    "/api/v1/namespaces/default/services/web/proxy/%zz",
];

fn assert_no_secret(what: &str, text: &str) {
    assert!(
        !text.contains(SECRET),
        "the API-server token appears in {what}:\n{}",
        text.lines()
            .filter(|l| l.contains(SECRET))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn token_never_in_shim_logs_bodies_or_metrics() {
    if backend::require(Backend::Shim).is_none() {
        return;
    }
    let fake = FakeApiServer::start(FakeOptions {
        token: SECRET.to_owned(),
        ..FakeOptions::default()
    })
    .expect("fake");
    let www = crate::scenario::fixture_dir().join("www");
    // One HOME for every run: the -v=0 run fills wasmtime's compilation cache, so the verbose
    // runs do not trace a whole cold compilation (see
    // `verbose_cold_start_still_answers_promptly`).
    let dir = TempDir::new("sec-leak").expect("tempdir");
    let kc = kubeconfig::write(&dir, &fake, Variant::Token).expect("kubeconfig");
    for v in 0..=10 {
        let metrics = faults::free_addr();
        let shim = Proc::shim(
            &[
                format!("-v={v}"),
                format!("--www={}", www.display()),
                format!("--metrics-address={metrics}"),
            ],
            &kc.path,
            &dir,
        )
        .expect("shim");
        for probe in LEAK_PROBES {
            let resp = shim.get(probe);
            let headers: String = resp
                .headers
                .iter()
                .map(|(k, v)| format!("{k}: {v}\n"))
                .collect();
            assert_no_secret(&format!("the answer to {probe} at -v={v}"), &headers);
            assert_no_secret(&format!("the answer to {probe} at -v={v}"), &resp.text());
        }
        // An upgrade through the tunnel, too.
        let up = shim.request(
            "GET",
            "/api/v1/namespaces/default/pods/p/portforward?fake-status=403",
            &[("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")],
        );
        assert_no_secret(&format!("an upgrade answer at -v={v}"), &up.text());
        let page = rawhttp::send(
            metrics,
            b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            false,
        )
        .expect("metrics");
        assert_eq!(page.status, 200);
        assert_no_secret(&format!("/metrics at -v={v}"), &page.text());
        std::thread::sleep(Duration::from_millis(100));
        assert_no_secret(&format!("the shim's output at -v={v}"), &shim.output());
    }
    // The token did reach the API server (the probes were real).
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.header("authorization") == Some(&format!("Bearer {SECRET}"))),
        "the token never reached the API server"
    );
}

#[test]
fn token_never_in_shim_output_when_api_server_fails() {
    if backend::require(Backend::Shim).is_none() {
        return;
    }
    let dir = TempDir::new("sec-leak-fail").expect("tempdir");
    let server = faults::FaultServer::start(faults::Fault::Garbage).expect("fault server");
    let kc = faults::kubeconfig(&dir, &format!("http://{}", server.addr()), SECRET, None);
    let shim = Proc::shim(&["-v=10".to_owned()], &kc, &dir).expect("shim");
    for fault in [
        faults::Fault::Garbage,
        faults::Fault::Close,
        faults::Fault::ResetMidBody,
    ] {
        server.set(fault.clone());
        // A reset mid-body truncates the answer: a transport error here is expected.
        let req = b"GET /api/v1/pods HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        if let Ok(resp) = rawhttp::send(shim.addr(), req, false) {
            assert_no_secret(&format!("the answer under {fault:?}"), &resp.text());
        }
    }
    assert_no_secret("the shim's output under faults", &shim.output());
}

#[test]
fn token_never_in_envoy_wasm_log_or_stats() {
    if backend::require(Backend::Envoy).is_none() {
        return;
    }
    let fake = FakeApiServer::start(FakeOptions {
        token: SECRET.to_owned(),
        ..FakeOptions::default()
    })
    .expect("fake");
    let dir = TempDir::new("sec-leak-envoy").expect("tempdir");
    let kc = kubeconfig::write(&dir, &fake, Variant::Token).expect("kubeconfig");
    let www = crate::scenario::fixture_dir().join("www");
    let r = Backend::Envoy
        .spawn(
            &["-v=10".to_owned(), format!("--www={}", www.display())],
            &kc,
            &fake,
            &dir,
        )
        .expect("envoy");
    for probe in LEAK_PROBES {
        let req = format!("GET {probe} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let resp = exchange(&r, req.as_bytes());
        assert_no_secret(&format!("Envoy's answer to {probe}"), &resp.text());
    }
    let admin = r.admin().expect("admin");
    for page in ["/stats", "/stats/prometheus"] {
        let text = crate::envoy::admin_get(admin, page).expect("admin page");
        assert_no_secret(&format!("Envoy admin {page}"), &text);
    }
    std::thread::sleep(Duration::from_millis(300));
    // Envoy's stderr runs with `--component-log-level wasm:trace`: every filter log line.
    assert_no_secret("Envoy's log (wasm:trace, filter -v=10)", &r.logs());
}

#[test]
fn verbose_cold_start_still_answers_promptly() {
    // kubectl's -v=8 logs request and response headers; it must not make the proxy unusable.
    // With no compilation cache (a fresh HOME) the shim must still answer within 30 s.
    if backend::require(Backend::Shim).is_none() {
        return;
    }
    let dir = TempDir::new("sec-verbose").expect("tempdir");
    let server = faults::FaultServer::start(faults::Fault::Healthy).expect("server");
    let kc = faults::kubeconfig(&dir, &format!("http://{}", server.addr()), SECRET, None);
    let shim = Proc::shim(&["-v=8".to_owned()], &kc, &dir).expect("shim");
    let addr = shim.addr();
    let answered = faults::with_timeout(Duration::from_secs(30), move || {
        rawhttp::send(
            addr,
            b"GET /api/v1/pods HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            false,
        )
        .map(|r| r.status)
        .ok()
    });
    let log_bytes = shim.output_len();
    drop(shim);
    assert_eq!(
        answered,
        Some(Some(200)),
        "no answer within 30 s at -v=8 on a cold start ({log_bytes} bytes of log so far)"
    );
}
