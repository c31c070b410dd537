//! Envoy-only behaviour with the real Envoy (`$ENVOY_BIN`) and bootstraps from the shipped
//! renderer (`shim envoy-bootstrap`) or `envoy/sidecar/render.sh`:
//! * direct service-proxy routing (dynamic forward proxy, `--connect-to`, TLS without
//!   verification, SNI, the 503 Status on transport failures), driven by the conformance guest,
//!   which (unlike kproxy's filter) leaves a client's `x-kproxy-upstream` alone;
//! * fail-closed: a trapping or memory-exhausting filter answers locally and forwards nothing,
//!   then or later; a looping one holds its request (Envoy has no CPU budget) and forwards
//!   nothing;
//! * token rotation by a kubelet-style `..data` symlink swap, without a restart;
//! * the filter's counters: Envoy's `/stats` and the shim's `--metrics-address` agree.
//!
//! A missing Envoy, shim or module is skipped locally and fails under `CI`.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::apiserver::{FakeApiServer, FakeOptions};
use crate::backend::{self, Backend, Running};
use crate::kubeconfig::{self, TempDir, Variant};
use crate::rawhttp::{self, RawResponse};

// --- helpers ---

/// The conformance guest, or `None` (printed) when it or Envoy is missing locally.
fn conformance_wasm() -> Option<PathBuf> {
    backend::require(Backend::Envoy)?;
    backend::conformance_wasm()
}

/// Envoy with the bootstrap `shim envoy-bootstrap <flags> --kubeconfig=<kc>` renders for `wasm`.
fn rendered_envoy(flags: &[String], kc: &Path, wasm: &Path, dir: &TempDir) -> Running {
    let listen_port = backend::free_port().expect("port");
    let admin_port = backend::free_port().expect("port");
    let config = crate::envoy::render_bootstrap(
        &backend::shim_bin(),
        &crate::envoy::BootstrapArgs {
            flags,
            kubeconfig: kc,
            listen_port,
            admin_port,
            wasm,
            output: &dir.path().join("envoy.yaml"),
            home: dir.path(),
        },
    )
    .unwrap_or_else(|e| panic!("envoy-bootstrap: {e:#}"));
    let bin = backend::envoy_bin().expect("ENVOY_BIN");
    backend::spawn_envoy(&bin, &config, listen_port, admin_port, dir)
        .unwrap_or_else(|e| panic!("envoy starts: {e:#}"))
}

/// `GET target` with `Host: host` and `extra` headers on a fresh connection.
fn get(addr: SocketAddr, target: &str, host: &str, extra: &[(&str, &str)]) -> RawResponse {
    let mut h = vec![("Host".to_owned(), host.to_owned())];
    h.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    h.push(("Connection".to_owned(), "close".to_owned()));
    let req = rawhttp::build_request("GET", target, "HTTP/1.1", &h, b"");
    rawhttp::send(addr, &req, false).unwrap_or_else(|e| panic!("GET {target}: {e:#}"))
}

fn admin(envoy: &Running) -> SocketAddr {
    envoy.admin().expect("envoy has an admin address")
}

/// Polls Envoy's `/stats` until `name` is at least `want` (counters appear after a flush).
fn stat_at_least(envoy: &Running, name: &str, want: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = crate::envoy::stats(admin(envoy))
            .expect("admin /stats")
            .get(name)
            .copied()
            .unwrap_or(0);
        if got >= want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What a test backend saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    /// The TLS server name the client sent (`None`: plain TCP or no SNI).
    sni: Option<String>,
    /// The request line.
    line: String,
    /// The header fields, names lower-cased.
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 service on 127.0.0.1 (plain, or TLS with a self-signed certificate for a
/// name nobody asks for): records each request head and answers `200 service\n`.
struct Service {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Service {
    fn start(tls: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let config = tls.then(self_signed_config);
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let log = log.clone();
                let config = config.clone();
                std::thread::spawn(move || {
                    let _ = serve_one(stream, config, &log);
                });
            }
        });
        Self { addr, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn self_signed_config() -> Arc<rustls::ServerConfig> {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["self-signed.invalid".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("self-sign");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(rustls_pki_types::PrivatePkcs8KeyDer::from(
        key.serialize_der(),
    ));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .expect("server config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

fn serve_one(
    mut tcp: TcpStream,
    config: Option<Arc<rustls::ServerConfig>>,
    log: &Mutex<Vec<Seen>>,
) -> anyhow::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    match config {
        None => exchange(&mut tcp, None, log),
        Some(config) => {
            let mut conn = rustls::ServerConnection::new(config)?;
            while conn.is_handshaking() {
                conn.complete_io(&mut tcp)?;
            }
            let sni = conn.server_name().map(str::to_owned);
            let mut stream = rustls::StreamOwned::new(conn, tcp);
            exchange(&mut stream, sni, log)
        }
    }
}

fn exchange(
    stream: &mut (impl std::io::Read + std::io::Write),
    sni: Option<String>,
    log: &Mutex<Vec<Seen>>,
) -> anyhow::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let line = lines.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let upgrade = headers.iter().any(|(k, _)| k == "upgrade");
    if let Ok(mut log) = log.lock() {
        log.push(Seen { sni, line, headers });
    }
    if upgrade {
        // A tunnel: 101, then echo every byte.
        stream.write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        )?;
        stream.flush()?;
        let mut buf = [0u8; 1024];
        loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            stream.write_all(&buf[..n])?;
            stream.flush()?;
        }
    }
    stream.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\nConnection: close\r\n\r\nservice\n",
    )?;
    stream.flush()?;
    Ok(())
}

// --- direct mode: the renderer's service routes ---

#[test]
fn direct_mode_routes_services_unverified_with_status_on_failure() {
    let Some(conformance) = conformance_wasm() else {
        return;
    };
    let fake = FakeApiServer::start(FakeOptions::default()).expect("fake");
    let dir = TempDir::new("envoy-direct").expect("tempdir");
    let kc = kubeconfig::write(&dir, &fake, Variant::Token).expect("kubeconfig");
    let plain = Service::start(false);
    let tls = Service::start(true);
    let closed = backend::free_port().expect("port");
    let flags = [
        "--service-proxy=direct".to_owned(),
        "--cluster-domain=corp.example".to_owned(),
        r#"--filter-config={"mode":"add_header"}"#.to_owned(),
        format!(
            "--connect-to=web.default.svc.corp.example:80:127.0.0.1:{}",
            plain.addr.port()
        ),
        format!(
            "--connect-to=secure.default.svc.corp.example:443:127.0.0.1:{}",
            tls.addr.port()
        ),
    ];
    let envoy = rendered_envoy(&flags, &kc.path, &conformance, &dir);
    let route = |upstream: &str, host: &str| {
        get(
            envoy.addr(),
            "/some/path?q=1",
            host,
            &[("x-kproxy-upstream", upstream)],
        )
    };

    // Dynamic forward proxy, TLS: the self-signed certificate for another name is accepted;
    // SNI is the authority's host name; Host and path unchanged; routing header removed.
    let host = format!("localhost:{}", tls.addr.port());
    let resp = route("service-https", &host);
    assert_eq!(resp.status, 200, "{}\n{}", resp.text(), envoy.logs());
    assert_eq!(resp.text(), "service\n");
    let seen = tls.seen().pop().expect("the TLS service saw the request");
    assert_eq!(seen.sni.as_deref(), Some("localhost"), "{seen:?}");
    assert_eq!(seen.line, "GET /some/path?q=1 HTTP/1.1");
    assert_eq!(seen.header("host"), Some(host.as_str()), "{seen:?}");
    assert_eq!(seen.header("x-kproxy-upstream"), None, "{seen:?}");
    assert_eq!(seen.header("x-conformance"), Some("added"), "{seen:?}");
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("127.0.0.1"),
        "{seen:?}"
    );

    // An IP authority: no SNI.
    let resp = route("service-https", &format!("127.0.0.1:{}", tls.addr.port()));
    assert_eq!(resp.status, 200, "{}\n{}", resp.text(), envoy.logs());
    assert_eq!(tls.seen().pop().expect("seen").sni, None);

    // Plain HTTP through the dynamic forward proxy.
    let host = format!("localhost:{}", plain.addr.port());
    let resp = route("service-http", &host);
    assert_eq!(resp.status, 200, "{}\n{}", resp.text(), envoy.logs());
    let seen = plain
        .seen()
        .pop()
        .expect("the plain service saw the request");
    assert_eq!(seen.header("host"), Some(host.as_str()));
    assert_eq!(seen.header("x-kproxy-upstream"), None);

    // Upgrades tunnel to a service as to the API server (no timeout cuts them).
    let mut conn = rawhttp::Conn::open(envoy.addr()).expect("connect");
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nx-kproxy-upstream: service-http\r\n\r\n"
    );
    conn.stream.write_all(req.as_bytes()).expect("write");
    let resp = conn.read_response(true).expect("101");
    assert_eq!(resp.status, 101, "{resp:?}\n{}", envoy.logs());
    let mut echoed = conn.take_buffered();
    conn.stream
        .write_all(b"tunnel-bytes")
        .expect("write tunnel");
    while echoed.len() < b"tunnel-bytes".len() {
        let mut buf = [0u8; 64];
        let n = conn.stream.read(&mut buf).expect("read tunnel");
        assert!(n > 0, "tunnel closed early");
        echoed.extend_from_slice(&buf[..n]);
    }
    assert_eq!(echoed, b"tunnel-bytes");
    assert_eq!(
        plain.seen().pop().expect("upgrade seen").header("upgrade"),
        Some("websocket")
    );

    // --connect-to: the connection goes to the mapped address, Host stays the authority.
    let resp = route("service-http", "web.default.svc.corp.example:80");
    assert_eq!(resp.status, 200, "{}\n{}", resp.text(), envoy.logs());
    let seen = plain
        .seen()
        .pop()
        .expect("connect-to reached the plain service");
    assert_eq!(seen.header("host"), Some("web.default.svc.corp.example:80"));
    let resp = route("service-https", "Secure.default.svc.corp.example:443");
    assert_eq!(resp.status, 200, "{}\n{}", resp.text(), envoy.logs());
    let seen = tls
        .seen()
        .pop()
        .expect("connect-to reached the TLS service");
    assert_eq!(
        seen.sni.as_deref(),
        Some("secure.default.svc.corp.example"),
        "{seen:?}"
    );

    // Transport failures on service routes: the API server's 503 Status.
    let status_prefix = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"error trying to reach service: "#;
    let status_suffix = "\",\"reason\":\"ServiceUnavailable\",\"code\":503}\n";
    for (upstream, host) in [
        ("service-http", format!("127.0.0.1:{closed}")),
        ("service-https", format!("127.0.0.1:{closed}")),
        ("service-http", "no-such-host.invalid:80".to_owned()),
    ] {
        let resp = route(upstream, &host);
        let body = resp.text();
        assert_eq!(resp.status, 503, "{upstream} {host}: {body}");
        assert_eq!(
            resp.header("content-type"),
            Some("application/json"),
            "{upstream} {host}"
        );
        assert!(
            body.starts_with(status_prefix) && body.ends_with(status_suffix),
            "{upstream} {host}: {body:?}"
        );
        let json: Value = serde_json::from_str(&body).expect("the Status is JSON");
        assert_eq!(json["code"], 503);
    }

    // The API-server route keeps kubectl's 500 for its own transport failures (not the Status).
    drop(fake);
    let resp = route("apiserver", "127.0.0.1");
    assert_eq!(resp.status, 500, "{}", resp.text());
    assert!(!resp.text().contains("\"kind\""), "{}", resp.text());
}

// --- fail-closed ---

/// Envoy hosting the conformance guest (`add_header` mode) in front of a fake API server. The
/// guest makes no routing decision: a client's own `x-kproxy-upstream: apiserver` routes.
fn conformance_envoy(name: &str) -> Option<(FakeApiServer, Running, TempDir)> {
    let conformance = conformance_wasm()?;
    let fake = FakeApiServer::start(FakeOptions::default()).expect("fake");
    let dir = TempDir::new(name).expect("tempdir");
    let kc = kubeconfig::write(&dir, &fake, Variant::Token).expect("kubeconfig");
    let flags = [r#"--filter-config={"mode":"add_header"}"#.to_owned()];
    let envoy = rendered_envoy(&flags, &kc.path, &conformance, &dir);
    Some((fake, envoy, dir))
}

#[test]
fn trapping_filter_fails_closed_and_forwards_nothing() {
    let Some((fake, envoy, _dir)) = conformance_envoy("envoy-trap") else {
        return;
    };
    // The conformance guest makes no routing decision: the client's header routes, so a
    // request that passes the filter reaches the API server.
    let send = |target: &str| {
        get(
            envoy.addr(),
            target,
            "127.0.0.1",
            &[("x-kproxy-upstream", "apiserver")],
        )
    };
    let resp = send("/api/v1/namespaces?step=1");
    assert_eq!(
        resp.status,
        401,
        "the fake answers (no credentials): {}",
        resp.text()
    );
    let seen = fake.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].target, "/api/v1/namespaces?step=1");
    assert_eq!(seen[0].header("x-conformance"), Some("added"));

    // The guest traps in on_request_headers: Envoy answers locally, nothing is forwarded.
    let resp = send("/trap");
    assert_eq!(resp.status, 503, "{}\n{}", resp.text(), envoy.logs());
    // Envoy 1.40 FAIL_CLOSED: the VM stays failed; later requests get the same local reply
    // and are not forwarded either (no reload; FAIL_RELOAD would recreate it).
    for step in 2..=3 {
        let target = format!("/api/v1/namespaces?step={step}");
        let resp = send(&target);
        assert_eq!(resp.status, 503, "{target}: {}", resp.text());
    }
    std::thread::sleep(Duration::from_millis(200));
    let seen = fake.requests();
    assert_eq!(seen.len(), 1, "forwarded after the trap: {seen:?}");
    let stats = crate::envoy::stats(admin(&envoy)).expect("stats");
    assert_eq!(
        stats
            .get("wasm.kproxy.vm_reload_success")
            .copied()
            .unwrap_or(0),
        0,
        "{stats:?}"
    );
}

#[test]
fn memory_exhausting_filter_fails_closed_and_forwards_nothing() {
    let Some((fake, envoy, _dir)) = conformance_envoy("envoy-oom") else {
        return;
    };
    let upstream = [("x-kproxy-upstream", "apiserver")];
    let resp = get(envoy.addr(), "/api?step=1", "127.0.0.1", &upstream);
    assert_eq!(resp.status, 401, "the fake answers: {}", resp.text());
    // The guest allocates 1 MiB blocks until memory.grow fails at Envoy's 1 GiB cap; the Rust
    // allocator then aborts, which is a trap: the same local reply as a trapping filter.
    let resp = get(envoy.addr(), "/oom", "127.0.0.1", &upstream);
    assert_eq!(resp.status, 503, "{}\n{}", resp.text(), envoy.logs());
    let resp = get(envoy.addr(), "/api?step=2", "127.0.0.1", &upstream);
    assert_eq!(
        resp.status,
        503,
        "FAIL_CLOSED keeps the VM failed: {}",
        resp.text()
    );
    std::thread::sleep(Duration::from_millis(200));
    let targets: Vec<String> = fake.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, ["/api?step=1"], "forwarded after the OOM");
}

#[test]
fn looping_filter_holds_the_request_and_forwards_nothing() {
    let Some((fake, envoy, _dir)) = conformance_envoy("envoy-loop") else {
        return;
    };
    // Envoy gives a wasm call no CPU budget (the shim does: an epoch deadline): a guest that
    // never returns keeps its worker thread. Fail-closed still holds: no answer, nothing sent.
    let mut conn = TcpStream::connect(envoy.addr()).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    conn.write_all(
        b"GET /loop HTTP/1.1\r\nHost: 127.0.0.1\r\nx-kproxy-upstream: apiserver\r\n\r\n",
    )
    .expect("send");
    let mut buf = [0u8; 256];
    match conn.read(&mut buf) {
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{e}"
        ),
        Ok(n) => panic!(
            "Envoy answered a looping filter: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
    }
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());
    // The main thread is not the worker: the admin endpoint still answers, and shows the
    // stuck request as active.
    let stats = crate::envoy::stats(admin(&envoy)).expect("admin /stats while a worker loops");
    assert_eq!(
        stats.get("http.kproxy.downstream_rq_active").copied(),
        Some(1),
        "{stats:?}"
    );
    // Dropping `envoy` kills the process (SIGKILL: a looping worker never joins a shutdown).
}

// --- token rotation by a kubelet-style symlink swap ---

/// A service-account directory laid out as the kubelet's AtomicWriter does:
/// `..<stamp>/{token,ca.crt}`, `..data -> ..<stamp>`, `token -> ..data/token`,
/// `ca.crt -> ..data/ca.crt`.
struct SaDir {
    path: PathBuf,
    generation: u32,
}

impl SaDir {
    fn new(path: PathBuf, token: &str, ca: &str) -> Self {
        std::fs::create_dir_all(&path).expect("sa dir");
        let mut dir = Self {
            path,
            generation: 0,
        };
        dir.swap(token, ca);
        std::os::unix::fs::symlink("..data/token", dir.path.join("token")).expect("token link");
        std::os::unix::fs::symlink("..data/ca.crt", dir.path.join("ca.crt")).expect("ca link");
        dir
    }

    /// Writes a new timestamped directory and points `..data` at it with one rename, then
    /// removes the previous one.
    fn swap(&mut self, token: &str, ca: &str) {
        self.generation += 1;
        let old = format!("..2026_11_23_10_00_00.{:09}", self.generation - 1);
        let new = format!("..2026_11_23_10_00_00.{:09}", self.generation);
        let dir = self.path.join(&new);
        std::fs::create_dir(&dir).expect("timestamped dir");
        std::fs::write(dir.join("token"), token).expect("token");
        std::fs::write(dir.join("ca.crt"), ca).expect("ca");
        let tmp = self.path.join("..data_tmp");
        std::os::unix::fs::symlink(&new, &tmp).expect("..data_tmp");
        std::fs::rename(&tmp, self.path.join("..data")).expect("atomic swap");
        if self.generation > 1 {
            std::fs::remove_dir_all(self.path.join(old)).expect("remove old");
        }
    }
}

/// Request → the fake sees token one; swap → within 10 s a request carries token two, with no
/// restart and `sds.<secret>.update_success` incremented.
fn check_rotation(
    envoy: &mut Running,
    fake: &FakeApiServer,
    sa: &mut SaDir,
    ca: &str,
    secret: &str,
) {
    let pid = envoy.pid();
    let update = format!("sds.{secret}.update_success");
    let resp = get(envoy.addr(), "/api/v1/namespaces?rot=1", "127.0.0.1", &[]);
    assert_eq!(resp.status, 200, "{}\n{}", resp.text(), envoy.logs());
    let last = fake.requests().pop().expect("upstream request");
    assert_eq!(
        last.header("authorization"),
        Some("Bearer token-one"),
        "{last:?}"
    );
    assert_eq!(last.header("x-kproxy-upstream"), None, "{last:?}");
    // overwrite: false: a client's own Authorization wins, as in client-go.
    let resp = get(
        envoy.addr(),
        "/api/v1/namespaces?rot=own",
        "127.0.0.1",
        &[("Authorization", "Bearer token-one")],
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let resp = get(
        envoy.addr(),
        "/api/v1/namespaces?rot=client",
        "127.0.0.1",
        &[("Authorization", "Bearer client-own")],
    );
    assert_eq!(
        resp.status,
        401,
        "the client's token was sent: {}",
        resp.text()
    );
    let last = fake.requests().pop().expect("upstream request");
    assert_eq!(last.header("authorization"), Some("Bearer client-own"));
    let before = stat_at_least(envoy, &update, 1);
    assert!(before >= 1, "{update} = {before}");

    fake.set_token("token-two");
    sa.swap("token-two", ca);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    loop {
        n += 1;
        let target = format!("/api/v1/namespaces?rot=2&n={n}");
        let resp = get(envoy.addr(), &target, "127.0.0.1", &[]);
        if resp.status == 200 {
            let last = fake.requests().pop().expect("upstream request");
            assert_eq!(last.header("authorization"), Some("Bearer token-two"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no request carried the new token within 10 s: {} {}\n{}",
            resp.status,
            resp.text(),
            envoy.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(envoy.alive(), "envoy exited");
    assert_eq!(envoy.pid(), pid, "envoy restarted");
    let after = stat_at_least(envoy, &update, before + 1);
    assert!(after > before, "{update}: {before} -> {after}");
}

/// A fake API server that wants `token-one`, its CA, and a service-account directory holding both.
struct Rotation {
    fake: FakeApiServer,
    ca: String,
    dir: TempDir,
    sa: SaDir,
}

impl Rotation {
    /// `None` (printed) when Envoy is missing locally.
    fn start(name: &str) -> Option<Self> {
        backend::require(Backend::Envoy)?;
        let fake = FakeApiServer::start(FakeOptions {
            token: "token-one".to_owned(),
            ..FakeOptions::default()
        })
        .expect("fake");
        let ca = fake.ca_pem().expect("tls").to_owned();
        let dir = TempDir::new(name).expect("tempdir");
        let sa = SaDir::new(dir.path().join("sa"), "token-one", &ca);
        Some(Self { fake, ca, dir, sa })
    }
}

#[test]
fn sidecar_token_rotates_with_symlink_swap() {
    let Some(Rotation {
        fake,
        ca,
        dir,
        mut sa,
    }) = Rotation::start("envoy-sidecar")
    else {
        return;
    };
    let listen_port = backend::free_port().expect("port");
    let admin_port = backend::free_port().expect("port");
    let out = dir.path().join("out");
    let render = crate::workspace_root().join("envoy/sidecar/render.sh");
    let status = std::process::Command::new("sh")
        .arg(&render)
        .arg(crate::workspace_root().join("envoy/sidecar"))
        .arg(&out)
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", fake.addr().port().to_string())
        .env("KPROXY_LISTEN_PORT", listen_port.to_string())
        .env("KPROXY_ADMIN_PORT", admin_port.to_string())
        .env("KPROXY_WASM", backend::filter_wasm())
        .env("KPROXY_SA_DIR", &sa.path)
        // The fake's certificate names localhost and 127.0.0.1.
        .env("KPROXY_APISERVER_NAME", "localhost")
        .status()
        .expect("render.sh runs");
    assert!(status.success(), "render.sh failed");
    let bin = backend::envoy_bin().expect("ENVOY_BIN");
    let mut envoy =
        backend::spawn_envoy(&bin, &out.join("envoy.yaml"), listen_port, admin_port, &dir)
            .unwrap_or_else(|e| panic!("envoy starts: {e:#}"));
    check_rotation(&mut envoy, &fake, &mut sa, &ca, "kube-sa-token");
}

#[test]
fn rendered_token_file_rotates_with_symlink_swap() {
    let Some(Rotation {
        fake,
        ca,
        dir,
        mut sa,
    }) = Rotation::start("envoy-tokenfile")
    else {
        return;
    };
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "fake", "cluster": {
            "server": fake.url(),
            "certificate-authority": sa.path.join("ca.crt"),
        }}],
        "users": [{ "name": "sa", "user": { "tokenFile": sa.path.join("token") } }],
        "contexts": [{ "name": "fake", "context": { "cluster": "fake", "user": "sa" } }],
        "current-context": "fake",
    });
    let kc = dir
        .write("kubeconfig", &serde_json::to_vec(&doc).expect("json"))
        .expect("kubeconfig");
    let mut envoy = rendered_envoy(&[], &kc, &backend::filter_wasm(), &dir);
    check_rotation(&mut envoy, &fake, &mut sa, &ca, "kproxy-token");
}

// --- metrics: Envoy's /stats and the shim's --metrics-address ---

/// The documented mapping: filter counter `kproxy.x.y` is `wasmcustom.kproxy.x.y` in Envoy's
/// `/stats` and `kproxy_x_y` on the shim's `--metrics-address`.
fn shim_name(counter: &str) -> String {
    counter.replace('.', "_")
}

fn shim_metrics(addr: SocketAddr) -> BTreeMap<String, u64> {
    let resp = get(addr, "/metrics", "127.0.0.1", &[]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.text()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.split_once(' ')?;
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

#[test]
fn counters_agree_between_envoy_stats_and_shim_metrics() {
    if backend::require(Backend::Envoy).is_none() || backend::require(Backend::Shim).is_none() {
        return;
    }
    let fake = FakeApiServer::start(FakeOptions::default()).expect("fake");
    let dir = TempDir::new("envoy-metrics").expect("tempdir");
    let kc = kubeconfig::write(&dir, &fake, Variant::Token).expect("kubeconfig");
    let flags = ["--reject-methods=^POST$".to_owned()];
    let envoy = rendered_envoy(&flags, &kc.path, &backend::filter_wasm(), &dir);
    let metrics_addr = SocketAddr::from(([127, 0, 0, 1], backend::free_port().expect("port")));
    let mut shim_flags = flags.to_vec();
    shim_flags.push(format!("--metrics-address={metrics_addr}"));
    let shim = Backend::Shim
        .spawn(&shim_flags, &kc, &fake, &dir)
        .unwrap_or_else(|e| panic!("shim starts: {e:#}"));

    // A debug-build shim compiles the module on its first request (seconds on a busy machine):
    // warm both up with the same accepted request, waiting as long as it takes.
    for addr in [envoy.addr(), shim.addr()] {
        let mut conn = rawhttp::Conn::open(addr).expect("connect");
        conn.stream
            .set_read_timeout(Some(Duration::from_secs(180)))
            .expect("timeout");
        conn.stream
            .write_all(b"GET /api HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .expect("write");
        let resp = conn.read_response(false).expect("warm-up response");
        assert_eq!(resp.status, 200, "warm-up on {addr}: {}", resp.text());
    }
    // One sequence, sent to both: accepted, rejected by path, method and host, redirected.
    let sequence: [(&str, &str, &str); 7] = [
        ("GET", "/api/v1/namespaces", "127.0.0.1"),
        ("GET", "/api/v1/pods", "localhost"),
        ("GET", "/api/v1/namespaces/default/pods/p/exec", "127.0.0.1"),
        ("POST", "/api/v1/namespaces", "127.0.0.1"),
        ("GET", "/api/v1/pods", "evil.example"),
        ("GET", "//api/v1/pods", "127.0.0.1"),
        ("GET", "/api/v1/configmaps", "127.0.0.1"),
    ];
    for addr in [envoy.addr(), shim.addr()] {
        for (method, target, host) in sequence {
            let h = [
                ("Host".to_owned(), host.to_owned()),
                ("Connection".to_owned(), "close".to_owned()),
            ];
            let req = rawhttp::build_request(method, target, "HTTP/1.1", &h, b"");
            rawhttp::send(addr, &req, method == "HEAD").unwrap_or_else(|e| {
                panic!(
                    "{method} {target} to {addr} (envoy {}): {e:#}\nenvoy:\n{}\nshim:\n{}",
                    envoy.addr(),
                    envoy.logs(),
                    shim.logs()
                )
            });
        }
    }
    let counters = [
        ("kproxy.requests.accepted", 4),
        ("kproxy.requests.rejected.path", 1),
        ("kproxy.requests.rejected.method", 1),
        ("kproxy.requests.rejected.host", 1),
        ("kproxy.requests.redirected", 1),
        ("kproxy.routed.apiserver", 4),
    ];
    // Envoy flushes stats every 5 s: wait for the last counter to arrive.
    for (name, _) in counters {
        stat_at_least(&envoy, &format!("wasmcustom.{name}"), 1);
    }
    let stats = crate::envoy::stats(admin(&envoy)).expect("stats");
    let shim_values = shim_metrics(metrics_addr);
    for (name, want) in counters {
        let in_envoy = stats.get(&format!("wasmcustom.{name}")).copied();
        let in_shim = shim_values.get(&shim_name(name)).copied();
        assert_eq!(in_envoy, Some(want), "envoy {name}: {stats:?}");
        assert_eq!(in_shim, Some(want), "shim {name}: {shim_values:?}");
    }
    // Every kproxy counter Envoy shows, the shim shows with the same value.
    for (name, value) in stats
        .iter()
        .filter(|(k, _)| k.starts_with("wasmcustom.kproxy."))
    {
        let counter = name.trim_start_matches("wasmcustom.");
        assert_eq!(
            shim_values.get(&shim_name(counter)),
            Some(value),
            "{counter}: envoy {value}, shim {shim_values:?}"
        );
    }
}
