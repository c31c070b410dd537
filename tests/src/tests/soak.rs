//! `soak` (ignored; `cargo test -p tests soak -- --ignored`, `just soak`): for `KPROXY_SOAK_SECS`
//! seconds (default 120) the shim carries mixed requests, 200 concurrent watches and a few upgrade
//! tunnels. Zero unexpected errors, every watch event delivered in order, RSS growth under 10%
//! after warm-up, and at the end the introspection gauges idle and the open fds back to baseline.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::apiserver::{FakeApiServer, FakeOptions};
use crate::backend::{self, Backend};
use crate::faults::{self, GAUGES, Proc};
use crate::kubeconfig::{self, TempDir, Variant};
use crate::rawhttp;

const WATCHES: usize = 200;
const EVENTS: usize = 10;
const TUNNELS: usize = 3;
const MIXED: usize = 4;

/// Counts and keeps the first few errors.
#[derive(Default)]
struct Errors {
    count: AtomicUsize,
    first: Mutex<Vec<String>>,
}

impl Errors {
    fn add(&self, msg: String) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut f) = self.first.lock()
            && f.len() < 10
        {
            f.push(msg);
        }
    }
}

fn watch_once(addr: SocketAddr, id: usize, n: usize) -> Result<usize, String> {
    let req = format!(
        "GET /api/v1/configmaps?watch=true&events={EVENTS}&interval_ms=500&w={id}-{n} HTTP/1.1\r\n\
         Host: localhost\r\nConnection: close\r\n\r\n"
    );
    let resp = rawhttp::send(addr, req.as_bytes(), false).map_err(|e| format!("watch: {e:#}"))?;
    if resp.status != 200 {
        return Err(format!("watch status {}", resp.status));
    }
    let text = resp.text();
    let got: Vec<usize> = text
        .match_indices("\"name\":\"event-")
        .filter_map(|(i, m)| {
            let rest = &text[i + m.len()..];
            rest[..rest.find('"')?].parse().ok()
        })
        .collect();
    let want: Vec<usize> = (0..EVENTS).collect();
    if got != want {
        return Err(format!("watch events {got:?}, want {want:?}"));
    }
    Ok(got.len())
}

fn mixed_once(addr: SocketAddr, i: usize) -> Result<(), String> {
    let cases: [(&str, &str, &str, u16); 5] = [
        ("GET", "/api/v1/pods", "", 200),
        ("GET", "/version", "", 200),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "{\"data\":1}",
            200,
        ),
        ("GET", "/api/v1/namespaces/default/pods/p/exec", "", 403),
        ("GET", "/api//v1/pods", "", 301),
    ];
    let (method, path, body, want) = cases[i % cases.len()];
    let headers = vec![
        ("Host".to_owned(), "localhost".to_owned()),
        ("Connection".to_owned(), "close".to_owned()),
    ];
    let req = rawhttp::build_request(method, path, "HTTP/1.1", &headers, body.as_bytes());
    let resp = rawhttp::send(addr, &req, false).map_err(|e| format!("{method} {path}: {e:#}"))?;
    if resp.status != want {
        return Err(format!("{method} {path}: {} (want {want})", resp.status));
    }
    Ok(())
}

fn tunnel_once(addr: SocketAddr, id: usize) -> Result<(), String> {
    let mut conn = rawhttp::Conn::open(addr).map_err(|e| format!("{e:#}"))?;
    let req = format!(
        "GET /api/v1/namespaces/default/pods/t{id}/portforward HTTP/1.1\r\nHost: localhost\r\n\
         Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n"
    );
    conn.stream
        .write_all(req.as_bytes())
        .map_err(|e| e.to_string())?;
    let resp = conn.read_response(false).map_err(|e| format!("{e:#}"))?;
    if resp.status != 101 {
        return Err(format!("upgrade status {}", resp.status));
    }
    let mut pending = conn.take_buffered();
    for k in 0..50 {
        let msg = format!("msg-{id}-{k};");
        conn.stream
            .write_all(msg.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 256];
        while pending.len() < msg.len() {
            let n = conn.stream.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("tunnel closed".to_owned());
            }
            pending.extend_from_slice(&buf[..n]);
        }
        let echoed: Vec<u8> = pending.drain(..msg.len()).collect();
        if echoed != msg.as_bytes() {
            return Err(format!(
                "tunnel echoed {:?}",
                String::from_utf8_lossy(&echoed)
            ));
        }
    }
    Ok(())
}

#[test]
#[ignore = "long-running; `cargo test -p tests soak -- --ignored` (KPROXY_SOAK_SECS, default 120)"]
fn soak() {
    if backend::require(Backend::Shim).is_none() {
        return;
    }
    let secs: u64 = std::env::var("KPROXY_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let fake = FakeApiServer::start(FakeOptions::default()).expect("fake");
    let dir = TempDir::new("soak").expect("tempdir");
    let kc = kubeconfig::write(&dir, &fake, Variant::Token).expect("kubeconfig");
    let metrics = faults::free_addr();
    let shim = Proc::shim(&[format!("--metrics-address={metrics}")], &kc.path, &dir).expect("shim");
    let addr = shim.addr();
    let pid = shim.pid();
    for _ in 0..8 {
        assert_eq!(shim.get("/api/v1/pods").status, 200);
    }
    let idle: BTreeMap<String, i64> = GAUGES.iter().map(|g| ((*g).to_owned(), 0)).collect();
    assert_eq!(
        faults::wait_gauges(metrics, &idle, Duration::from_secs(10)),
        idle
    );
    std::thread::sleep(Duration::from_millis(500));
    let baseline_fds = faults::fd_count(pid);

    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let errors = Arc::new(Errors::default());
    let events = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for id in 0..WATCHES {
        let (errors, events) = (errors.clone(), events.clone());
        threads.push(std::thread::spawn(move || {
            // Stagger the start so the watches do not all end together.
            std::thread::sleep(Duration::from_millis(u64::try_from(id).unwrap_or(0) * 10));
            let mut n = 0;
            while Instant::now() < deadline {
                match watch_once(addr, id, n) {
                    Ok(k) => {
                        events.fetch_add(k, Ordering::Relaxed);
                    }
                    Err(e) => errors.add(format!("watch {id}: {e}")),
                }
                n += 1;
            }
        }));
    }
    for id in 0..MIXED {
        let (errors, requests) = (errors.clone(), requests.clone());
        threads.push(std::thread::spawn(move || {
            let mut i = id;
            while Instant::now() < deadline {
                match mixed_once(addr, i) {
                    Ok(()) => {
                        requests.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => errors.add(e),
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        }));
    }
    for id in 0..TUNNELS {
        let errors = errors.clone();
        threads.push(std::thread::spawn(move || {
            while Instant::now() < deadline {
                if let Err(e) = tunnel_once(addr, id) {
                    errors.add(format!("tunnel {id}: {e}"));
                }
            }
        }));
    }
    // RSS after warm-up (a fifth of the run, at least 10 s) and at the end.
    let warm = Duration::from_secs((secs / 5).max(10).min(secs));
    std::thread::sleep(warm);
    let rss_warm = faults::rss_kib(pid);
    let mut rss_peak = rss_warm;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(1));
        rss_peak = rss_peak.max(faults::rss_kib(pid));
    }
    let rss_end = faults::rss_kib(pid);
    for t in threads {
        t.join().expect("load thread");
    }
    let errs = errors.first.lock().map(|f| f.clone()).unwrap_or_default();
    let n_err = errors.count.load(Ordering::Relaxed);
    println!(
        "soak {secs}s: {} watch events, {} requests, {n_err} errors; RSS {rss_warm} KiB after warm-up, \
         {rss_end} KiB at the end (peak {rss_peak} KiB)",
        events.load(Ordering::Relaxed),
        requests.load(Ordering::Relaxed)
    );
    assert_eq!(n_err, 0, "unexpected errors: {errs:#?}");
    assert!(
        events.load(Ordering::Relaxed) >= WATCHES * EVENTS,
        "too few watch events"
    );
    assert!(
        rss_end * 10 <= rss_warm * 11,
        "RSS grew from {rss_warm} KiB to {rss_end} KiB (> 10%)"
    );
    let after = faults::wait_gauges(metrics, &idle, Duration::from_secs(20));
    assert_eq!(after, idle, "gauges not idle after the soak");
    // Idle upstream connections stay pooled for the pool's idle timeout (90 s, as client-go's
    // IdleConnTimeout); then every descriptor must be gone.
    let fds = faults::wait_fds(pid, baseline_fds, Duration::from_secs(100));
    assert!(
        fds <= baseline_fds,
        "{fds} open fds at the end, baseline {baseline_fds}"
    );
    drop(shim);
}
