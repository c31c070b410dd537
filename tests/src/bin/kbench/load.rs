//! The measurements: `wrk` runs (request rate and latency), the time to the first answered
//! request, watch-stream and upgrade-tunnel throughput, and peak RSS from `/proc`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::standin::{LIST_PATH, TOKEN, TUNNEL_PATH};

/// How a client reaches a target: plain HTTP to a proxy, or TLS + token to the stand-in.
#[derive(Clone)]
pub(crate) struct Endpoint {
    /// Address.
    pub(crate) addr: SocketAddr,
    /// TLS client configuration (the stand-in itself); `None` for the proxies.
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl Endpoint {
    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The URL of `path` on this endpoint.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme(), self.addr)
    }

    /// The extra request headers the endpoint needs (the token when there is no proxy).
    pub(crate) fn auth_header(&self) -> Option<String> {
        self.tls
            .as_ref()
            .map(|_| format!("Authorization: Bearer {TOKEN}"))
    }

    async fn connect(&self) -> Result<Box<dyn Io>> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some(cfg) => {
                let name = rustls_pki_types::ServerName::try_from("127.0.0.1")?;
                let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                    .connect(name, tcp)
                    .await?;
                Ok(Box::new(tls))
            }
        }
    }

    fn request(&self, path: &str, extra: &str) -> String {
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: kbench\r\n",
            self.addr
        );
        if let Some(h) = self.auth_header() {
            req.push_str(&h);
            req.push_str("\r\n");
        }
        req.push_str(extra);
        req.push_str("\r\n");
        req
    }
}

/// Reads a response head; returns the status and the bytes read past it.
async fn read_head(io: &mut Box<dyn Io>) -> Result<(u16, Vec<u8>)> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed before the response head");
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(buf.get(..end).unwrap_or_default()).into_owned();
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .with_context(|| format!("bad status line: {head:?}"))?;
            let rest = buf.get(end + 4..).unwrap_or_default().to_vec();
            return Ok((status, rest));
        }
        if buf.len() > 64 * 1024 {
            bail!("response head too long");
        }
    }
}

/// Polls the endpoint until a list request is answered 200; the time since `started`.
pub(crate) async fn first_answer(
    ep: &Endpoint,
    started: Instant,
    limit: Duration,
) -> Result<Duration> {
    loop {
        if started.elapsed() > limit {
            bail!("no answer within {limit:?}");
        }
        let attempt = tokio::time::timeout(Duration::from_secs(2), async {
            let mut io = ep.connect().await?;
            io.write_all(ep.request(LIST_PATH, "Connection: close\r\n").as_bytes())
                .await?;
            read_head(&mut io).await
        })
        .await;
        if let Ok(Ok((200, _))) = attempt {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Reads a watch stream for `dur`; MiB/s of the body bytes received.
pub(crate) async fn watch_throughput(ep: &Endpoint, dur: Duration) -> Result<f64> {
    let mut io = ep.connect().await?;
    io.write_all(
        ep.request(&format!("{LIST_PATH}?watch=true"), "")
            .as_bytes(),
    )
    .await?;
    let (status, rest) = read_head(&mut io).await?;
    if status != 200 {
        bail!("watch answered {status}");
    }
    let mut total = rest.len() as u64;
    let mut buf = vec![0u8; 256 * 1024];
    let start = Instant::now();
    while start.elapsed() < dur {
        match tokio::time::timeout(Duration::from_secs(2), io.read(&mut buf)).await {
            Ok(Ok(0)) => bail!("watch stream ended after {total} bytes"),
            Ok(Ok(n)) => total += n as u64,
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => bail!("watch stream stalled"),
        }
    }
    Ok(mib_per_s(total, start.elapsed()))
}

/// Opens an upgrade tunnel and pumps data through the echoing stand-in for `dur`; MiB/s echoed.
pub(crate) async fn tunnel_throughput(ep: &Endpoint, dur: Duration) -> Result<f64> {
    let mut io = ep.connect().await?;
    let extra = "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n";
    io.write_all(ep.request(TUNNEL_PATH, extra).as_bytes())
        .await?;
    let (status, rest) = read_head(&mut io).await?;
    if status != 101 {
        bail!("upgrade answered {status}");
    }
    let (mut rd, mut wr) = tokio::io::split(io);
    let stop = Arc::new(AtomicBool::new(false));
    let stop_w = stop.clone();
    let writer = tokio::spawn(async move {
        let block = vec![0x5au8; 64 * 1024];
        while !stop_w.load(Ordering::Relaxed) {
            if wr.write_all(&block).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut total = rest.len() as u64;
    let mut buf = vec![0u8; 256 * 1024];
    let start = Instant::now();
    let mut result = Ok(());
    while start.elapsed() < dur {
        match tokio::time::timeout(Duration::from_secs(2), rd.read(&mut buf)).await {
            Ok(Ok(0)) => {
                result = Err(anyhow::anyhow!("tunnel closed after {total} bytes"));
                break;
            }
            Ok(Ok(n)) => total += n as u64,
            Ok(Err(e)) => {
                result = Err(e.into());
                break;
            }
            Err(_) => {
                result = Err(anyhow::anyhow!("tunnel stalled"));
                break;
            }
        }
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    writer.abort();
    result.map(|()| mib_per_s(total, elapsed))
}

fn mib_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64().max(1e-9)
}

/// One `wrk` run.
#[derive(Clone, Debug, Default)]
pub(crate) struct WrkResult {
    /// Requests per second.
    pub(crate) rps: f64,
    /// Median latency, µs.
    pub(crate) p50_us: f64,
    /// 99th percentile latency, µs.
    pub(crate) p99_us: f64,
    /// Requests completed.
    pub(crate) requests: u64,
    /// Answers that were not 2xx/3xx.
    pub(crate) non_2xx: u64,
    /// Connect/read/write/timeout errors.
    pub(crate) socket_errors: u64,
}

/// Runs `wrk` against the list path with `connections` connections for `dur`.
pub(crate) fn wrk(
    wrk_bin: &Path,
    ep: &Endpoint,
    connections: u32,
    dur: Duration,
) -> Result<WrkResult> {
    let threads = connections.clamp(1, 2);
    let mut cmd = Command::new(wrk_bin);
    cmd.arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", dur.as_secs().max(1)))
        .arg("--latency")
        .arg("--timeout=5s");
    if let Some(h) = ep.auth_header() {
        cmd.arg("-H").arg(h);
    }
    cmd.arg(ep.url(LIST_PATH));
    let out = cmd
        .output()
        .with_context(|| format!("running {}", wrk_bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "wrk failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_wrk(&text)
}

/// Parses wrk's `--latency` report.
pub(crate) fn parse_wrk(text: &str) -> Result<WrkResult> {
    let mut r = WrkResult::default();
    let mut seen_rps = false;
    for line in text.lines() {
        let t = line.trim();
        let words: Vec<&str> = t.split_whitespace().collect();
        match words.as_slice() {
            ["50%", v] => r.p50_us = duration_us(v)?,
            ["99%", v] => r.p99_us = duration_us(v)?,
            ["Requests/sec:", v] => {
                r.rps = v.parse()?;
                seen_rps = true;
            }
            [n, "requests", "in", ..] => r.requests = n.parse()?,
            ["Non-2xx", "or", "3xx", "responses:", n] => r.non_2xx = n.parse()?,
            ["Socket", "errors:", rest @ ..] => {
                r.socket_errors = rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum();
            }
            _ => {}
        }
    }
    if !seen_rps {
        bail!("no Requests/sec in wrk output:\n{text}");
    }
    Ok(r)
}

fn duration_us(v: &str) -> Result<f64> {
    let (num, mult) = if let Some(n) = v.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = v.strip_suffix('m') {
        (n, 60e6)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e6)
    } else {
        bail!("bad wrk duration {v:?}");
    };
    Ok(num.parse::<f64>()? * mult)
}

/// Peak resident set size (`VmHWM`) of `pid` in KiB.
pub(crate) fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_wrk_report() {
        let text = "Running 5s test @ http://127.0.0.1:8001/api\n  2 threads and 32 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency     1.10ms  300.00us   9.00ms   90.00%\n  Latency Distribution\n     50%  812.00us\n     75%    1.20ms\n     90%    1.50ms\n     99%    2.31ms\n  12345 requests in 5.00s, 1.23MB read\n  Non-2xx or 3xx responses: 7\n  Socket errors: connect 0, read 2, write 0, timeout 1\nRequests/sec:   2469.10\nTransfer/sec:    252.00KB\n";
        let r = parse_wrk(text).unwrap();
        assert!((r.rps - 2469.10).abs() < 1e-6);
        assert!((r.p50_us - 812.0).abs() < 1e-6);
        assert!((r.p99_us - 2310.0).abs() < 1e-6);
        assert_eq!(r.requests, 12345);
        assert_eq!(r.non_2xx, 7);
        assert_eq!(r.socket_errors, 3);
        assert!(parse_wrk("garbage").is_err());
        assert!((duration_us("1.5s").unwrap() - 1.5e6).abs() < 1e-6);
    }
}
