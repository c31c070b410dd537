//! Fault-injection helpers for the security, fault, leak and soak tests: a misbehaving plain-HTTP
//! "API server" whose behaviour can be switched while it runs (refuse, reset mid-body, answer
//! slowly, answer garbage, or answer normally), a `shim` process started with explicit flags whose
//! stdout and stderr are kept whole (token-leak checks), and probes of a process from outside
//! (`/proc/<pid>/fd`, `VmRSS`, the `--metrics-address` gauges).
//!
//! It must not depend on the shim's or the filter's code; it sees processes and sockets only.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::kubeconfig::TempDir;
use crate::rawhttp::{self, RawResponse};

/// What the fault server does with each connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer `200` with a small JSON body (`{"ok":true,"n":N}`), or for `?watch=true&events=N`
    /// N chunked watch events `interval_ms` apart: the API server is back.
    Healthy,
    /// Accept the connection and close it at once, without reading.
    Close,
    /// Read the request head, send a `200` head promising 1000 bytes, 100 bytes, then reset.
    ResetMidBody,
    /// Read the request head and answer `Healthy`-style after this delay.
    Slow(Duration),
    /// Read the request head and answer bytes that are not HTTP, then close.
    Garbage,
    /// Read the request head and never answer (until the server stops).
    Hang,
}

/// A plain-HTTP server on `127.0.0.1` that misbehaves as told; stops when dropped.
pub struct FaultServer {
    addr: SocketAddr,
    fault: Arc<Mutex<Fault>>,
    stop: Arc<AtomicBool>,
    seen: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

// === impl FaultServer ===

impl FaultServer {
    /// Starts on a free port.
    pub fn start(fault: Fault) -> Result<Self> {
        Self::start_on(0, fault)
    }

    /// Starts on `port` (0 = any), e.g. the port of a server that was down.
    pub fn start_on(port: u16, fault: Fault) -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .with_context(|| format!("binding 127.0.0.1:{port}"))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let fault = Arc::new(Mutex::new(fault));
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(AtomicUsize::new(0));
        let (f, s, n) = (fault.clone(), stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        n.fetch_add(1, Ordering::Relaxed);
                        let mode = f.lock().map(|m| m.clone()).unwrap_or(Fault::Close);
                        let s = s.clone();
                        std::thread::spawn(move || serve(conn, &mode, &s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Self {
            addr,
            fault,
            stop,
            seen,
            thread: Some(thread),
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes the behaviour for connections accepted from now on.
    pub fn set(&self, fault: Fault) {
        if let Ok(mut f) = self.fault.lock() {
            *f = fault;
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.seen.load(Ordering::Relaxed)
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut conn: TcpStream, mode: &Fault, stop: &AtomicBool) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    if *mode == Fault::Close {
        return;
    }
    // Read one request head.
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let target = String::from_utf8_lossy(&head)
        .split(' ')
        .nth(1)
        .unwrap_or("/")
        .to_owned();
    match mode {
        Fault::Close => {}
        Fault::Healthy => healthy(&mut conn, &target),
        Fault::Slow(delay) => {
            std::thread::sleep(*delay);
            healthy(&mut conn, &target);
        }
        Fault::ResetMidBody => {
            let _ = conn.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
            );
            let _ = conn.write_all(&[b'x'; 100]);
            let _ = conn.flush();
            std::thread::sleep(Duration::from_millis(200));
            reset(conn);
        }
        Fault::Garbage => {
            let _ = conn.write_all(b"SSH-2.0-not-http garbage\r\n\r\n");
            std::thread::sleep(Duration::from_millis(100));
        }
        Fault::Hang => {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn healthy(conn: &mut TcpStream, target: &str) {
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let param = |k: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(n, _)| *n == k)
            .and_then(|(_, v)| v.parse::<u64>().ok())
    };
    if query.split('&').any(|kv| kv == "watch=true") {
        let events = param("events").unwrap_or(3);
        let interval = Duration::from_millis(param("interval_ms").unwrap_or(100));
        let _ = conn.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        for n in 0..events {
            if n > 0 {
                std::thread::sleep(interval);
            }
            let ev = crate::replies::watch_event(usize::try_from(n).unwrap_or(0));
            let mut chunk = format!("{:x}\r\n", ev.len()).into_bytes();
            chunk.extend_from_slice(&ev);
            chunk.extend_from_slice(b"\r\n");
            if conn.write_all(&chunk).is_err() {
                return;
            }
        }
        let _ = conn.write_all(b"0\r\n\r\n");
        return;
    }
    let body = format!("{{\"ok\":true,\"target\":{}}}", serde_json::json!(target));
    let _ = conn.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
}

/// Closes with a TCP reset (`SO_LINGER` 0, set through tokio: std has no stable setter).
fn reset(conn: TcpStream) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    else {
        return;
    };
    let _guard = rt.enter();
    let _ = conn.set_nonblocking(true);
    if let Ok(t) = tokio::net::TcpStream::from_std(conn) {
        let _ = t.set_zero_linger();
        drop(t);
    }
}

/// A kubeconfig pointing at `server` (e.g. `http://127.0.0.1:PORT`) with bearer `token`, plus an
/// optional CA file contents.
pub fn kubeconfig(dir: &TempDir, server: &str, token: &str, ca_pem: Option<&str>) -> PathBuf {
    let mut cluster = serde_json::json!({ "server": server });
    if let Some(ca) = ca_pem {
        cluster["certificate-authority"] =
            serde_json::json!(dir.write("ca.crt", ca.as_bytes()).expect("ca"));
    }
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "c", "cluster": cluster }],
        "users": [{ "name": "u", "user": { "token": token } }],
        "contexts": [{ "name": "c", "context": { "cluster": "c", "user": "u" } }],
        "current-context": "c",
    });
    dir.write(
        "kubeconfig",
        &serde_json::to_vec_pretty(&doc).expect("json"),
    )
    .expect("write kubeconfig")
}

/// A proxy process (`shim` or `kubectl proxy`) started with explicit flags; stdout and stderr
/// go to files kept whole; killed on drop.
pub struct Proc {
    child: Child,
    addr: SocketAddr,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

// === impl Proc ===

impl Proc {
    /// Starts `bin` (`args` first, e.g. `proxy` for kubectl) with `flags`, `--port=0` and
    /// `--kubeconfig`, and waits for `Starting to serve on`.
    pub fn spawn(
        bin: &Path,
        args: &[&str],
        flags: &[String],
        kubeconfig: &Path,
        dir: &TempDir,
    ) -> Result<Self> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let stdout_path = dir.path().join(format!("proc-{n}.stdout"));
        let stderr_path = dir.path().join(format!("proc-{n}.stderr"));
        let child = Command::new(bin)
            .env("HOME", dir.path())
            .env_remove("KUBECONFIG")
            .args(args)
            .args(flags)
            .arg("--port=0")
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout_path)?)
            .stderr(std::fs::File::create(&stderr_path)?)
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        let mut p = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stdout_path,
            stderr_path,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = std::fs::read_to_string(&p.stdout_path).unwrap_or_default();
            if let Some(line) = out.lines().find(|l| l.starts_with("Starting to serve on ")) {
                p.addr = line["Starting to serve on ".len()..]
                    .trim()
                    .parse()
                    .context("bad banner address")?;
                return Ok(p);
            }
            if let Some(status) = p.child.try_wait()? {
                bail!("{} exited ({status}):\n{}", bin.display(), p.output());
            }
            if Instant::now() > deadline {
                bail!("no banner within 30 s:\n{}", p.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the shim (`SHIM_BIN`, with `--filter=FILTER_WASM` when that file exists).
    pub fn shim(flags: &[String], kubeconfig: &Path, dir: &TempDir) -> Result<Self> {
        let mut all = flags.to_vec();
        let wasm = crate::backend::filter_wasm();
        if wasm.is_file() && !flags.iter().any(|f| f.starts_with("--filter=")) {
            all.push(format!("--filter={}", wasm.display()));
        }
        Self::spawn(&crate::backend::shim_bin(), &[], &all, kubeconfig, dir)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything written to stdout and stderr so far.
    pub fn output(&self) -> String {
        format!(
            "{}{}",
            std::fs::read_to_string(&self.stdout_path).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
        )
    }

    /// Bytes written to stdout and stderr so far (without reading them).
    pub fn output_len(&self) -> u64 {
        [&self.stdout_path, &self.stderr_path]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// `METHOD path` with `Host: localhost` and extra `headers` on a fresh connection.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> RawResponse {
        let mut req =
            format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let sent = rawhttp::Conn::open(self.addr).and_then(|mut conn| {
            // Generous: at -v=10 the shim traces every wasm compilation step.
            conn.stream
                .set_read_timeout(Some(Duration::from_secs(120)))?;
            conn.stream.write_all(req.as_bytes())?;
            conn.read_response(method == "HEAD")
        });
        sent.unwrap_or_else(|e| {
            let out = self.output();
            let tail: String = out
                .chars()
                .skip(out.chars().count().saturating_sub(3000))
                .collect();
            panic!("{method} {path}: {e:#}\noutput (tail):\n{tail}")
        })
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> RawResponse {
        self.request("GET", path, &[])
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback address for `--metrics-address`.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from((
        [127, 0, 0, 1],
        crate::backend::free_port().expect("free port"),
    ))
}

/// The `name value` samples of a Prometheus text page at `http://addr/metrics`.
pub fn scrape(addr: SocketAddr) -> Result<BTreeMap<String, i64>> {
    let req = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let resp = rawhttp::send(addr, req, false)?;
    if resp.status != 200 {
        bail!("metrics answered {}", resp.status);
    }
    Ok(parse_metrics(&resp.text()))
}

/// Parses Prometheus text (`# …` lines skipped).
pub fn parse_metrics(text: &str) -> BTreeMap<String, i64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| Some((k.to_owned(), v.trim().parse().ok()?)))
        .collect()
}

/// The shim's introspection gauges.
pub const GAUGES: [&str; 4] = [
    "kproxy_shim_connections_open",
    "kproxy_shim_streams_live",
    "kproxy_shim_tunnels_open",
    "kproxy_shim_callouts_inflight",
];

/// Polls the metrics at `addr` until every gauge in `GAUGES` equals `want` (absent = 0) or
/// `timeout` passes; returns the last values.
pub fn wait_gauges(
    addr: SocketAddr,
    want: &BTreeMap<String, i64>,
    timeout: Duration,
) -> BTreeMap<String, i64> {
    let deadline = Instant::now() + timeout;
    loop {
        let now: BTreeMap<String, i64> = scrape(addr)
            .map(|m| {
                GAUGES
                    .iter()
                    .map(|g| ((*g).to_owned(), m.get(*g).copied().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
        if &now == want || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Open file descriptors of `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// Polls until `pid` has at most `max` open descriptors or `timeout` passes; returns the count.
pub fn wait_fds(pid: u32, max: usize, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let n = fd_count(pid);
        if n <= max || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Resident set size of `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Reads one HTTP response head from `stream` (for streaming bodies read afterwards); returns the
/// status and whatever body bytes came with the head.
pub fn read_head(stream: &mut TcpStream) -> Result<(u16, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).into_owned();
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .with_context(|| format!("bad head {head:?}"))?;
            return Ok((status, buf[i + 4..].to_vec()));
        }
        let n = stream.read(&mut tmp)?;
        if n == 0 {
            bail!(
                "closed before a response head: {:?}",
                String::from_utf8_lossy(&buf)
            );
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

/// Waits up to `timeout` for `f` to become true.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads lines from `stream` until `n` watch events (`"name":"event-K"`) arrived; returns their
/// indices in arrival order.
pub fn read_events(stream: &mut TcpStream, already: &[u8], n: usize) -> Result<Vec<usize>> {
    let mut text = String::from_utf8_lossy(already).into_owned();
    let mut reader = BufReader::new(stream);
    let mut found = event_indices(&text);
    while found.len() < n {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        text.push_str(&line);
        found = event_indices(&text);
    }
    Ok(found)
}

fn event_indices(text: &str) -> Vec<usize> {
    text.match_indices("\"name\":\"event-")
        .filter_map(|(i, m)| {
            let rest = &text[i + m.len()..];
            let end = rest.find('"')?;
            rest[..end].parse().ok()
        })
        .collect()
}

/// Runs `f` on a thread and returns its result, or `None` after `timeout`.
pub fn with_timeout<T: Send + 'static>(
    timeout: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(timeout).ok()
}
