//! Fault handling of the real `shim` binary, end to end: a guest that traps, loops or exhausts
//! memory fails only the request that triggered it (a `500` with a short body) and the next
//! request is served by a recreated VM; an exec-plugin credential rejected with `401` is refreshed
//! and the idempotent request retried once, invisibly to the client.
//!
//! It must not look inside the shim; it sees only raw HTTP replies, the process, and what reached
//! the fake API server.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::json;

use crate::apiserver::{FakeApiServer, FakeOptions};
use crate::backend::{self, Backend};
use crate::kubeconfig::TempDir;
use crate::rawhttp::{self, RawResponse};

/// A `shim` started with explicit flags (no implied `--filter`); killed on drop.
struct Shim {
    child: Child,
    addr: SocketAddr,
    stderr_path: PathBuf,
}

// === impl Shim ===

impl Shim {
    /// Starts the shim with `flags` and the kubeconfig `kubeconfig`, waiting for its banner.
    fn spawn(flags: &[String], kubeconfig: &Path, dir: &TempDir) -> Result<Self> {
        let stderr_path = dir.path().join("shim.stderr");
        let mut child = Command::new(backend::shim_bin())
            .env("HOME", dir.path())
            .env_remove("KUBECONFIG")
            .args(flags)
            .arg("--port=0")
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path)?)
            .spawn()
            .context("spawning shim")?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Some(addr) = line.strip_prefix("Starting to serve on ") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut shim = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr_path,
        };
        loop {
            if let Ok(addr) = rx.recv_timeout(Duration::from_millis(50)) {
                shim.addr = addr.parse().context("bad banner address")?;
                return Ok(shim);
            }
            if let Some(status) = shim.child.try_wait()? {
                bail!("shim exited ({status}) before serving:\n{}", shim.logs());
            }
            if Instant::now() > deadline {
                bail!("shim printed no banner within 30 s:\n{}", shim.logs());
            }
        }
    }

    /// `GET path` on a fresh connection.
    fn get(&self, path: &str) -> RawResponse {
        let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        rawhttp::send(self.addr, req.as_bytes(), false)
            .unwrap_or_else(|e| panic!("GET {path}: {e:#}\nshim stderr:\n{}", self.logs()))
    }

    /// Whether the process is still running.
    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `CONFORMANCE_WASM`, default `<workspace>/target/wasm32-wasip1/wasm/conformance_guest.wasm`;
/// `None` (after printing why) when it or the shim is missing, a panic under `CI`.
fn conformance_wasm() -> Option<PathBuf> {
    backend::require(Backend::Shim)?;
    let path = match std::env::var_os("CONFORMANCE_WASM") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => crate::workspace_root().join("target/wasm32-wasip1/wasm/conformance_guest.wasm"),
    };
    if path.is_file() {
        return Some(path);
    }
    let reason = format!("CONFORMANCE_WASM not found: {}", path.display());
    if std::env::var_os("CI").is_some() {
        panic!("the conformance guest is required under CI: {reason}");
    }
    println!("skipped: faults ({reason})");
    None
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
    let mut shim = Shim::spawn(&flags, &kc, &dir).expect("shim");

    for (n, bad) in ["/trap", "/loop", "/oom"].into_iter().enumerate() {
        let started = Instant::now();
        let resp = shim.get(bad);
        let elapsed = started.elapsed();
        assert_eq!(resp.status, 500, "GET {bad}: {resp:?}\n{}", shim.logs());
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
        assert_eq!(ok.status, 200, "after {bad}: {ok:?}\n{}", shim.logs());
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
        assert!(shim.alive(), "shim died after {bad}:\n{}", shim.logs());
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
    let shim = Shim::spawn(&[], &kc, &dir).expect("shim");
    let invocations = || {
        std::fs::read_to_string(&counter)
            .unwrap_or_default()
            .lines()
            .count()
    };

    let first = shim.get("/api/v1/namespaces?step=1");
    assert_eq!(first.status, 200, "first: {first:?}\n{}", shim.logs());
    let before = invocations();
    assert!(before >= 1, "the exec plugin never ran");

    fake.set_token("T2");
    std::fs::write(&token_src, b"T2").expect("rotate");
    let second = shim.get("/api/v1/namespaces?step=2");
    assert_eq!(
        second.status,
        200,
        "the client saw the rotation: {second:?}\n{}",
        shim.logs()
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
