//! A raw HTTP/1.x client: writes the request bytes exactly as given (so `Host`, absolute-form and
//! odd targets reach the proxy unchanged) and parses one response (Content-Length, chunked, or
//! read-to-close), recording when each body chunk arrived.
//!
//! It must not normalise anything it sends or receives.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// One parsed response.
#[derive(Clone, Debug, Default)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// Header names as sent and values, in order.
    pub headers: Vec<(String, String)>,
    /// The de-chunked body.
    pub body: Vec<u8>,
    /// When each body piece (chunk, or read) arrived, relative to sending the request.
    pub arrivals: Vec<(Duration, usize)>,
}

// === impl RawResponse ===

impl RawResponse {
    /// The first value of `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Builds a request: `METHOD TARGET VERSION`, the headers in order, `Content-Length` when a body
/// is given and none is named, then the body.
pub fn build_request(
    method: &str,
    target: &str,
    version: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = format!("{method} {target} {version}\r\n").into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    let named = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    if !body.is_empty() && !named("content-length") && !named("transfer-encoding") {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// Sends `request` to `addr` on a fresh connection and reads one response.
pub fn send(addr: SocketAddr, request: &[u8], head_only: bool) -> Result<RawResponse> {
    let mut conn = Conn::open(addr)?;
    conn.stream
        .write_all(request)
        .context("writing the request")?;
    conn.read_response(head_only)
}

/// A connection (also used for upgrades: after a 101 the stream is the tunnel).
pub struct Conn {
    /// The socket.
    pub stream: TcpStream,
    buf: Vec<u8>,
    start: Instant,
}

// === impl Conn ===

impl Conn {
    /// Connects with a 15 s read timeout.
    pub fn open(addr: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(15)))?;
        let _ = stream.set_nodelay(true);
        Ok(Self {
            stream,
            buf: Vec::new(),
            start: Instant::now(),
        })
    }

    /// Reads one response; `head_only` for HEAD requests (no body follows).
    pub fn read_response(&mut self, head_only: bool) -> Result<RawResponse> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if self.fill()? == 0 {
                bail!(
                    "connection closed before a full response head; got {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let mut parts = status_line.splitn(3, ' ');
        let _version = parts.next();
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {status_line:?}"))?;
        let reason = parts.next().unwrap_or("").to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect();
        let mut resp = RawResponse {
            status,
            reason,
            headers,
            ..RawResponse::default()
        };
        if head_only || status == 101 || status == 204 || status == 304 || status < 200 {
            return Ok(resp);
        }
        let chunked = resp
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            self.read_chunked(&mut resp)?;
        } else if let Some(len) = resp.header("content-length") {
            let len: usize = len.parse().context("bad content-length")?;
            while self.buf.len() < len {
                if self.fill()? == 0 {
                    bail!(
                        "connection closed after {} of {len} body bytes",
                        self.buf.len()
                    );
                }
            }
            resp.body = self.buf.drain(..len).collect();
            resp.arrivals.push((self.start.elapsed(), len));
        } else {
            while self.fill()? > 0 {}
            resp.body = std::mem::take(&mut self.buf);
            resp.arrivals.push((self.start.elapsed(), resp.body.len()));
        }
        Ok(resp)
    }

    fn read_chunked(&mut self, resp: &mut RawResponse) -> Result<()> {
        loop {
            let line_end = loop {
                if let Some(i) = find(&self.buf, b"\r\n") {
                    break i;
                }
                if self.fill()? == 0 {
                    bail!("connection closed inside a chunk header");
                }
            };
            let line = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
            let size_hex = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_hex, 16)
                .with_context(|| format!("bad chunk size {line:?}"))?;
            self.buf.drain(..line_end + 2);
            if size == 0 {
                // Trailers until an empty line.
                loop {
                    if let Some(i) = find(&self.buf, b"\r\n") {
                        let empty = i == 0;
                        self.buf.drain(..i + 2);
                        if empty {
                            return Ok(());
                        }
                    } else if self.fill()? == 0 {
                        return Ok(());
                    }
                }
            }
            while self.buf.len() < size + 2 {
                if self.fill()? == 0 {
                    bail!("connection closed inside a chunk");
                }
            }
            resp.body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
            resp.arrivals.push((self.start.elapsed(), size));
        }
    }

    /// Bytes already read past the response (the start of a tunnel after a 101).
    pub fn take_buffered(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    fn fill(&mut self) -> Result<usize> {
        let mut tmp = [0u8; 16384];
        let n = self.stream.read(&mut tmp).context("reading the response")?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
