//! Fault handling of the real `shim` binary, end to end: a guest that traps, loops or exhausts
//! memory fails only the request that triggered it (a `500` with a short body) and the next
//! request is served by a recreated VM; an exec-plugin credential rejected with `401` is refreshed
//! and the idempotent request retried once, invisibly to the client.
//!
//! It must not look inside the shim; it sees only raw HTTP replies, the process, and what reached
//! the fake API server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;

use crate::apiserver::{FakeApiServer, FakeOptions};
use crate::backend::{self, Backend};
use crate::faults::Proc;
use crate::kubeconfig::TempDir;
use crate::rawhttp::{self, RawResponse};

/// The conformance guest, or `None` (printed) when it or the shim is missing locally.
fn conformance_wasm() -> Option<PathBuf> {
    backend::require(Backend::Shim)?;
    backend::conformance_wasm()
}

/// A kubeconfig for `fake` with the user entry `user`, written into `dir` (with the fake's CA
/// when it serves TLS).
fn kubeconfig(dir: &TempDir, fake: &FakeApiServer, user: &serde_json::Value) -> PathBuf {
    let mut cluster = json!({ "server": fake.url() });
    if let Some(ca) = fake.ca_pem() {
        cluster["certificate-authority"] = json!(dir.write("ca.crt", ca.as_bytes()).expect("ca"));
    }
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "fake", "cluster": cluster }],
        "users": [{ "name": "u", "user": user }],
        "contexts": [{ "name": "fake", "context": { "cluster": "fake", "user": "u" } }],
        "current-context": "fake",
    });
    dir.write(
        "kubeconfig",
        &serde_json::to_vec_pretty(&doc).expect("json"),
    )
    .expect("write kubeconfig")
}

#[test]
fn trapping_filter_fails_one_request_and_recovers() {
    let Some(guest) = conformance_wasm() else {
        return;
    };
    // The conformance guest injects no credentials: an anonymous plain-HTTP upstream.
    let fake = FakeApiServer::start(FakeOptions {
        tls: false,
        anonymous: true,
        ..FakeOptions::default()
    })
    .expect("fake");
    let dir = TempDir::new("faults-trap").expect("tempdir");
    let kc = kubeconfig(&dir, &fake, &json!({}));
    let flags = [
        format!("--filter={}", guest.display()),
        r#"--filter-config={"mode":"add_header"}"#.to_owned(),
        "--workers=1".to_owned(),
    ];
    let mut shim = Proc::shim(&flags, &kc, &dir).expect("shim");

    for (n, bad) in ["/trap", "/loop", "/oom"].into_iter().enumerate() {
        let started = Instant::now();
        let resp = shim.get(bad);
        let elapsed = started.elapsed();
        assert_eq!(resp.status, 500, "GET {bad}: {resp:?}\n{}", shim.output());
        assert!(
            resp.text().contains("wasm filter failed") && resp.body.len() < 200,
            "GET {bad}: body {:?}",
            resp.text()
        );
        assert!(
            elapsed < Duration::from_secs(20),
            "GET {bad} took {elapsed:?}"
        );
        assert!(
            fake.requests().iter().all(|r| r.path() != bad),
            "{bad} reached upstream"
        );

        let ok = shim.get(&format!("/api/v1/pods?after={n}"));
        assert_eq!(ok.status, 200, "after {bad}: {ok:?}\n{}", shim.output());
        let seen = fake
            .requests()
            .into_iter()
            .find(|r| r.target == format!("/api/v1/pods?after={n}"))
            .unwrap_or_else(|| panic!("after {bad}: the request did not reach the fake"));
        assert_eq!(
            seen.header("x-conformance"),
            Some("added"),
            "after {bad}: the recreated VM did not run the filter"
        );
        assert!(shim.alive(), "shim died after {bad}:\n{}", shim.output());
    }
}

#[test]
fn exec_credentials_refreshed_after_401_without_client_seeing_it() {
    if backend::require(Backend::Shim).is_none() {
        return;
    }
    let fake = FakeApiServer::start(FakeOptions {
        token: "T1".to_owned(),
        basic: None,
        ..FakeOptions::default()
    })
    .expect("fake");
    let dir = TempDir::new("faults-exec").expect("tempdir");
    let token_src = dir.write("token-src", b"T1").expect("token");
    let counter = dir.path().join("invocations");
    let script = format!(
        "#!/bin/sh\necho x >> '{count}'\nprintf '{{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\
         \"kind\":\"ExecCredential\",\"status\":{{\"token\":\"%s\"}}}}\\n' \"$(cat '{src}')\"\n",
        count = counter.display(),
        src = token_src.display(),
    );
    let script = dir.write("exec.sh", script.as_bytes()).expect("script");
    make_executable(&script);
    let kc = kubeconfig(
        &dir,
        &fake,
        &json!({ "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": script,
            "interactiveMode": "Never",
        }}),
    );
    let shim = Proc::shim(&[], &kc, &dir).expect("shim");
    let invocations = || {
        std::fs::read_to_string(&counter)
            .unwrap_or_default()
            .lines()
            .count()
    };

    let first = shim.get("/api/v1/namespaces?step=1");
    assert_eq!(first.status, 200, "first: {first:?}\n{}", shim.output());
    let before = invocations();
    assert!(before >= 1, "the exec plugin never ran");

    fake.set_token("T2");
    std::fs::write(&token_src, b"T2").expect("rotate");
    let second = shim.get("/api/v1/namespaces?step=2");
    assert_eq!(
        second.status,
        200,
        "the client saw the rotation: {second:?}\n{}",
        shim.output()
    );
    let auth: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.target == "/api/v1/namespaces?step=2")
        .map(|r| r.header("authorization").unwrap_or_default().to_owned())
        .collect();
    assert_eq!(auth, ["Bearer T1", "Bearer T2"], "upstream attempts");
    assert!(
        invocations() > before,
        "the exec plugin was not re-run after the 401"
    );
}

fn make_executable(p: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

// --- API-server faults (issue 7): shim, kubectl proxy (the oracle) and Envoy against the same
// misbehaving server; every fault gives kubectl's status and message on the shim, and every proxy
// recovers when the server behaves again.

use crate::faults::{Fault, FaultServer};

/// One proxy under test, started against a plain-HTTP kubeconfig.
struct Target {
    backend: Backend,
    addr: SocketAddr,
    _guard: Box<dyn std::any::Any>,
}

/// kubectl, the shim and Envoy (those available) against `server_url`.
fn targets(dir: &TempDir, server: SocketAddr) -> Vec<Target> {
    let kc = crate::faults::kubeconfig(dir, &format!("http://{server}"), "TOK", None);
    let mut out = Vec::new();
    for b in Backend::ALL {
        if backend::require(b).is_none() {
            continue;
        }
        let t = match b {
            Backend::Kubectl => {
                let bin = b.binary().expect("kubectl");
                let p = Proc::spawn(&bin, &["proxy"], &[], &kc, dir).expect("kubectl proxy");
                Target {
                    backend: b,
                    addr: p.addr(),
                    _guard: Box::new(p),
                }
            }
            Backend::Shim => {
                let p = Proc::shim(&[], &kc, dir).expect("shim");
                Target {
                    backend: b,
                    addr: p.addr(),
                    _guard: Box::new(p),
                }
            }
            Backend::Envoy => {
                // `Backend::spawn` reads everything from the kubeconfig; the fake is unused.
                let unused = FakeApiServer::start(FakeOptions {
                    tls: false,
                    anonymous: true,
                    ..FakeOptions::default()
                })
                .expect("fake");
                let kconf = crate::kubeconfig::Kubeconfig {
                    path: kc.clone(),
                    variant: crate::kubeconfig::Variant::PlainHttp,
                    credentials: None,
                    token_file: None,
                    server_addr: server,
                };
                let r = b.spawn(&[], &kconf, &unused, dir).expect("envoy");
                Target {
                    backend: b,
                    addr: r.addr(),
                    _guard: Box::new((r, unused)),
                }
            }
        };
        out.push(t);
    }
    out
}

fn fetch(addr: SocketAddr, path: &str) -> Result<RawResponse> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    rawhttp::send(addr, req.as_bytes(), false)
}

/// Every target answers `path` under `fault`: returns (backend, status, body with the server's
/// port masked) per target.
fn answers(
    ts: &[Target],
    server: &FaultServer,
    fault: &Fault,
    path: &str,
) -> Vec<(Backend, u16, String)> {
    server.set(fault.clone());
    let port = server.addr().port().to_string();
    ts.iter()
        .map(|t| {
            let r = fetch(t.addr, path)
                .unwrap_or_else(|e| panic!("{} under {fault:?}: {e:#}", t.backend.name()));
            (
                t.backend,
                r.status,
                mask_client_port(&r.text().replace(&port, "PORT")),
            )
        })
        .collect()
}

/// `127.0.0.1:54321->` (the proxy's own ephemeral port in Go's error texts) → `127.0.0.1:N->`.
fn mask_client_port(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("127.0.0.1:") {
        let (head, tail) = rest.split_at(i + "127.0.0.1:".len());
        out.push_str(head);
        let digits = tail.len() - tail.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits > 0 && tail[digits..].starts_with("->") {
            out.push('N');
            rest = &tail[digits..];
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// Asserts kubectl gave `status` and a body starting with `prefix`, the shim the same status and
/// either exactly kubectl's body or, where the README documents a different error text
/// (`shim_prefix`), a body starting with that; Envoy a 5xx of its own; then that every target
/// recovers.
fn check_fault(name: &str, fault: &Fault, status: u16, prefix: &str, shim_prefix: Option<&str>) {
    let dir = TempDir::new("faults-api").expect("tempdir");
    let server = FaultServer::start(Fault::Healthy).expect("server");
    let ts = targets(&dir, server.addr());
    let got = answers(&ts, &server, fault, "/api/v1/pods");
    let kubectl = got.iter().find(|g| g.0 == Backend::Kubectl);
    for (b, s, body) in &got {
        match b {
            Backend::Envoy => assert!(*s >= 500, "{name}: envoy answered {s} {body:?}"),
            _ => {
                assert_eq!(*s, status, "{name}: {} answered {s} {body:?}", b.name());
                let want = match (b, shim_prefix) {
                    (Backend::Shim, Some(p)) => p,
                    _ => prefix,
                };
                assert!(body.starts_with(want), "{name}: {} body {body:?}", b.name());
            }
        }
    }
    if shim_prefix.is_some() {
        println!("{name}: {got:?}");
    } else if let (Some(k), Some(sh)) = (kubectl, got.iter().find(|g| g.0 == Backend::Shim)) {
        assert_eq!(
            (sh.1, &sh.2),
            (k.1, &k.2),
            "{name}: shim differs from kubectl proxy"
        );
    }
    println!("{name}: {got:?}");
    for (b, s, body) in answers(&ts, &server, &Fault::Healthy, "/api/v1/pods?recovered=1") {
        assert_eq!(s, 200, "{name}: {} did not recover: {body:?}", b.name());
    }
}

#[test]
fn api_server_closing_connections_gives_500_and_recovers() {
    // Go reads a reset (the server closes with the request unread).
    check_fault(
        "close",
        &Fault::Close,
        500,
        "read tcp 127.0.0.1:N->127.0.0.1:PORT: read: connection reset by peer",
        // README difference 12: hyper does not report Go's socket-level text.
        Some("net/http: HTTP/1.x transport connection broken: "),
    );
}

#[test]
fn api_server_answering_garbage_gives_500_and_recovers() {
    check_fault(
        "garbage",
        &Fault::Garbage,
        500,
        "net/http: HTTP/1.x transport connection broken: malformed HTTP status code \"garbage\"",
        // README difference 12: hyper's parser names the first thing it rejects.
        Some("net/http: HTTP/1.x transport connection broken: "),
    );
}

#[test]
fn api_server_slow_answer_is_waited_for() {
    let dir = TempDir::new("faults-slow").expect("tempdir");
    let server = FaultServer::start(Fault::Slow(Duration::from_secs(3))).expect("server");
    for t in targets(&dir, server.addr()) {
        let started = Instant::now();
        let r = fetch(t.addr, "/api/v1/pods").expect("answer");
        assert_eq!(r.status, 200, "{}: {}", t.backend.name(), r.text());
        assert!(started.elapsed() >= Duration::from_secs(3));
    }
}

#[test]
fn api_server_reset_mid_body_truncates_and_closes() {
    let dir = TempDir::new("faults-reset").expect("tempdir");
    let server = FaultServer::start(Fault::ResetMidBody).expect("server");
    let ts = targets(&dir, server.addr());
    for t in &ts {
        let started = Instant::now();
        // The 200 head (Content-Length 1000) is relayed; the body stops after 100 bytes and the
        // client connection is closed rather than left hanging.
        let r = fetch(t.addr, "/api/v1/pods");
        match r {
            Ok(resp) => assert!(
                resp.status >= 500 || resp.body.len() < 1000,
                "{}: a complete answer from a reset upstream: {}",
                t.backend.name(),
                resp.status
            ),
            Err(e) => assert!(
                format!("{e:#}").contains("closed") || format!("{e:#}").contains("reset"),
                "{}: {e:#}",
                t.backend.name()
            ),
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}: hung",
            t.backend.name()
        );
    }
    server.set(Fault::Healthy);
    for t in &ts {
        let r = fetch(t.addr, "/api/v1/pods?recovered=1").expect("after the reset");
        assert_eq!(r.status, 200, "{} did not recover", t.backend.name());
    }
}

#[test]
fn api_server_down_gives_500_and_recovery_when_it_returns() {
    let dir = TempDir::new("faults-down").expect("tempdir");
    let port = backend::free_port().expect("port");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let ts = targets(&dir, addr);
    for t in &ts {
        let r = fetch(t.addr, "/api/v1/pods").expect("answer while down");
        match t.backend {
            Backend::Envoy => assert!(r.status >= 500, "envoy: {}", r.status),
            _ => {
                assert_eq!(r.status, 500, "{}", t.backend.name());
                assert_eq!(
                    r.text(),
                    format!("dial tcp {addr}: connect: connection refused\n"),
                    "{}",
                    t.backend.name()
                );
            }
        }
    }
    let server = FaultServer::start_on(port, Fault::Healthy).expect("server back");
    for t in &ts {
        let ok = crate::faults::eventually(Duration::from_secs(10), || {
            fetch(t.addr, "/api/v1/pods?back=1").is_ok_and(|r| r.status == 200)
        });
        assert!(ok, "{} did not recover", t.backend.name());
    }
    assert!(server.connections() > 0);
}

#[test]
fn api_server_wrong_certificate_gives_kubectls_500() {
    let fake = FakeApiServer::start(FakeOptions::default()).expect("fake");
    let mut bodies = Vec::new();
    for b in [Backend::Kubectl, Backend::Shim] {
        if backend::require(b).is_none() {
            continue;
        }
        let dir = TempDir::new("faults-ca").expect("tempdir");
        let kc = crate::kubeconfig::write(&dir, &fake, crate::kubeconfig::Variant::WrongCa)
            .expect("kubeconfig");
        let r = b.spawn(&[], &kc, &fake, &dir).expect("start");
        let resp = fetch(r.addr(), "/api/v1/pods")
            .unwrap_or_else(|e| panic!("{}: {e:#}\n{}", b.name(), r.logs()));
        assert_eq!(resp.status, 500, "{}: {}", b.name(), resp.text());
        assert!(
            resp.text()
                .starts_with("tls: failed to verify certificate: x509: "),
            "{}: {:?}",
            b.name(),
            resp.text()
        );
        bodies.push((b, resp.text()));
    }
    if let [(_, k), (_, s)] = bodies.as_slice() {
        assert_eq!(s, k, "the shim's TLS error differs from kubectl's");
    }
}
