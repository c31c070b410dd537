//! Clients that go away mid-request, mid-body, mid-stream (watch) and mid-upgrade must leave
//! nothing behind in the shim: its introspection gauges (`kproxy_shim_connections_open`,
//! `_streams_live` (filter HttpContexts), `_tunnels_open`, `_callouts_inflight`, served on
//! `--metrics-address`) return to their idle values and its open file descriptors to the baseline.
//! The gauges are first seen to move while the connections are open, so a gauge stuck at zero
//! fails too.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use crate::apiserver::{FakeApiServer, FakeOptions};
use crate::backend::{self, Backend};
use crate::faults::{self, GAUGES, Proc};
use crate::kubeconfig::{self, TempDir, Variant};

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    s
}

fn idle() -> BTreeMap<String, i64> {
    GAUGES.iter().map(|g| ((*g).to_owned(), 0)).collect()
}

/// Opens `n` watches and `t` upgrade tunnels, checks the gauges see them, and returns the sockets.
fn open_streams(addr: SocketAddr, metrics: SocketAddr, n: usize, t: usize) -> Vec<TcpStream> {
    let mut socks = Vec::new();
    for i in 0..n {
        let mut s = connect(addr);
        let req = format!(
            "GET /api/v1/configmaps?watch=true&events=1000&interval_ms=300&w={i} HTTP/1.1\r\nHost: localhost\r\n\r\n"
        );
        s.write_all(req.as_bytes()).expect("write");
        let (status, _) = faults::read_head(&mut s).expect("watch head");
        assert_eq!(status, 200);
        socks.push(s);
    }
    for i in 0..t {
        let mut s = connect(addr);
        let req = format!(
            "GET /api/v1/namespaces/default/pods/p{i}/portforward HTTP/1.1\r\nHost: localhost\r\n\
             Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n"
        );
        s.write_all(req.as_bytes()).expect("write");
        let (status, _) = faults::read_head(&mut s).expect("upgrade head");
        assert_eq!(status, 101);
        s.write_all(b"ping").expect("tunnel write");
        socks.push(s);
    }
    let m = faults::scrape(metrics).expect("metrics");
    let g = |name: &str| m.get(name).copied().unwrap_or(0);
    // After a 101 the connection is a tunnel (counted there), no longer an HTTP connection.
    let want = i64::try_from(n).unwrap_or(i64::MAX);
    assert!(
        g("kproxy_shim_connections_open") >= want,
        "connections gauge does not see the open connections: {m:?}"
    );
    assert!(
        g("kproxy_shim_streams_live") >= i64::try_from(n).unwrap_or(0),
        "streams gauge does not see the open watches: {m:?}"
    );
    assert!(
        g("kproxy_shim_tunnels_open") >= i64::try_from(t).unwrap_or(0),
        "tunnels gauge does not see the open tunnels: {m:?}"
    );
    socks
}

#[test]
fn client_disconnects_leak_no_connections_streams_tunnels_or_fds() {
    if backend::require(Backend::Shim).is_none() {
        return;
    }
    let fake = FakeApiServer::start(FakeOptions::default()).expect("fake");
    let dir = TempDir::new("leaks").expect("tempdir");
    let kc = kubeconfig::write(&dir, &fake, Variant::Token).expect("kubeconfig");
    let metrics = faults::free_addr();
    let shim = Proc::shim(
        &[
            format!("--metrics-address={metrics}"),
            "--workers=2".to_owned(),
        ],
        &kc.path,
        &dir,
    )
    .expect("shim");
    let addr = shim.addr();
    // Warm up every worker (VMs, upstream pools), then take the baseline.
    for _ in 0..8 {
        assert_eq!(shim.get("/api/v1/pods").status, 200);
    }
    let settled = faults::wait_gauges(metrics, &idle(), Duration::from_secs(10));
    assert_eq!(settled, idle(), "not idle after warm-up");
    std::thread::sleep(Duration::from_millis(500));
    let baseline_fds = faults::fd_count(shim.pid());

    for round in 0..3 {
        // Mid-request: half a request head, then gone.
        for _ in 0..10 {
            let mut s = connect(addr);
            let _ = s.write_all(b"GET /api/v1/pods HTTP/1.1\r\nHost: loc");
        }
        // Mid-body: a POST promising 100 000 bytes that sends ten.
        for _ in 0..10 {
            let mut s = connect(addr);
            let _ = s.write_all(
                b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: localhost\r\n\
                  Content-Length: 100000\r\n\r\n0123456789",
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Mid-stream and mid-tunnel: open, see the gauges move, then drop them all, some with
        // a half-close first.
        let socks = open_streams(addr, metrics, 8, 3);
        for (i, s) in socks.into_iter().enumerate() {
            if i % 2 == 0 {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        // Mid-upgrade: the upgrade request is sent and the client leaves before the 101.
        for i in 0..5 {
            let mut s = connect(addr);
            let _ = s.write_all(
                format!(
                    "GET /api/v1/namespaces/default/pods/q{i}/portforward HTTP/1.1\r\nHost: localhost\r\n\
                     Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n"
                )
                .as_bytes(),
            );
        }
        let after = faults::wait_gauges(metrics, &idle(), Duration::from_secs(15));
        assert_eq!(after, idle(), "round {round}: gauges not back to idle");
        let fds = faults::wait_fds(shim.pid(), baseline_fds, Duration::from_secs(15));
        assert!(
            fds <= baseline_fds,
            "round {round}: {fds} open fds, baseline {baseline_fds}"
        );
    }
    // Still serving.
    assert_eq!(shim.get("/api/v1/pods?after=leaks").status, 200);
}
