//! Upgrade forwarding (kubectl `tryUpgrade`, kubectl-proxy.md §2.7): a fresh HTTP/1.1 connection
//! to the API server with the certificate verified (deviation b) and TCP keep-alive from
//! `--keepalive` (deviation c), all client headers verbatim plus `X-Forwarded-For`, `Host` and the
//! default `User-Agent`; a 101 is relayed and bytes are copied both ways until either side ends,
//! an error status is relayed with its body and the connection closed, anything else is a 500.
//!
//! It never decides whether a request is an upgrade (the server does) and never pools.

use std::net::IpAddr;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::kubeconfig::Cluster;
use crate::server::body::ProxyBody;
use crate::upstream::{Stream, append_forwarded_for, default_user_agent, dial};

/// What an upgrade needs from the worker and the connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UpgradeContext<'a> {
    /// The API server.
    pub(crate) cluster: &'a Cluster,
    /// TCP keep-alive for the tunnel (`None` = off).
    pub(crate) keepalive: Option<Duration>,
    /// The client IP for `X-Forwarded-For` (`None` on a unix socket).
    pub(crate) client_ip: Option<IpAddr>,
}

/// The upstream request headers: the client's verbatim plus XFF, Host and User-Agent.
pub(crate) fn upgrade_headers(
    mut headers: HeaderMap,
    host: &str,
    client_ip: Option<IpAddr>,
) -> HeaderMap {
    if let Some(ip) = client_ip {
        append_forwarded_for(&mut headers, ip);
    }
    if let Ok(host) = HeaderValue::from_str(host) {
        headers.insert(header::HOST, host);
    }
    if !headers.contains_key(header::USER_AGENT)
        && let Ok(ua) = HeaderValue::from_str(&default_user_agent())
    {
        headers.insert(header::USER_AGENT, ua);
    }
    headers
}

fn error(text: &str) -> Response<ProxyBody> {
    tracing::error!("Error while proxying request: {text}");
    crate::server::error_reply(text)
}

/// Forwards an upgrade request; on 101 the tunnel runs in a local task.
pub(crate) async fn forward(
    ctx: UpgradeContext<'_>,
    method: Method,
    path: &str,
    headers: HeaderMap,
    client: OnUpgrade,
) -> Response<ProxyBody> {
    let headers = upgrade_headers(headers, &ctx.cluster.host_header, ctx.client_ip);
    let stream = match dial(ctx.cluster, ctx.keepalive).await {
        Ok(stream) => stream,
        Err(e) => return error(&format!("error dialing backend: {e}")),
    };
    tunnel(stream, method, path, headers, client, &error).await
}

/// Sends the upgrade request on `stream` (already dialed) with `headers` as they are; a 101 is
/// relayed and the bytes copied both ways in a local task, an error status relayed with its
/// body and the connection closed; other answers and failures go through `fail`.
pub(crate) async fn tunnel(
    stream: Stream,
    method: Method,
    path: &str,
    headers: HeaderMap,
    client: OnUpgrade,
    fail: &dyn Fn(&str) -> Response<ProxyBody>,
) -> Response<ProxyBody> {
    let error = fail;
    let handshake = hyper::client::conn::http1::Builder::new()
        .title_case_headers(true)
        .handshake::<_, ProxyBody>(TokioIo::new(stream))
        .await;
    let (mut sender, conn) = match handshake {
        Ok(pair) => pair,
        Err(e) => return error(&format!("error dialing backend: {e}")),
    };
    tokio::task::spawn_local(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!("upgrade connection: {e}");
        }
    });
    let mut req = Request::new(ProxyBody::Empty);
    *req.method_mut() = method;
    *req.uri_mut() = match path.parse() {
        Ok(uri) => uri,
        Err(e) => return error(&format!("invalid upgrade path {path:?}: {e}")),
    };
    *req.headers_mut() = headers;
    let mut resp = match sender.send_request(req).await {
        Ok(resp) => resp,
        Err(e) => {
            return error(&if e.is_incomplete_message() {
                "EOF".to_owned()
            } else {
                e.to_string()
            });
        }
    };
    let status = resp.status();
    if status == StatusCode::SWITCHING_PROTOCOLS {
        let upstream = hyper::upgrade::on(&mut resp);
        let open = crate::gauges::TUNNELS_OPEN.hold();
        tokio::task::spawn_local(async move {
            let _open = open;
            match tokio::try_join!(upstream, client) {
                Ok((up, down)) => relay(TokioIo::new(down), TokioIo::new(up)).await,
                Err(e) => tracing::error!("Error proxying data from client to backend: {e}"),
            }
        });
        let (parts, _) = resp.into_parts();
        return Response::from_parts(parts, ProxyBody::Empty);
    }
    if status.as_u16() >= 400 {
        let (mut parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        parts.headers.remove(header::TRANSFER_ENCODING);
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Response::from_parts(parts, ProxyBody::full(body));
    }
    error(&format!(
        "invalid upgrade response: status code {}",
        status.as_u16()
    ))
}

/// Copies both ways until **either** direction ends (EOF or error), then closes both, as
/// kubectl's `UpgradeAwareHandler` does: a client that goes away never leaves the tunnel (and
/// the backend connection) open behind it.
async fn relay<A, B>(down: A, up: B)
where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite,
{
    use tokio::io::AsyncWriteExt as _;
    // tokio's `copy` moves 8 KiB at a time: every write is a small TLS record and a syscall.
    // 64 KiB fills whole 16 KiB records (Go's io.Copy, kubectl's, uses 32 KiB).
    const RELAY_BUFFER: usize = 64 * 1024;
    let (down_r, mut down_w) = tokio::io::split(down);
    let (up_r, mut up_w) = tokio::io::split(up);
    let mut down_r = tokio::io::BufReader::with_capacity(RELAY_BUFFER, down_r);
    let mut up_r = tokio::io::BufReader::with_capacity(RELAY_BUFFER, up_r);
    let result = tokio::select! {
        r = tokio::io::copy_buf(&mut down_r, &mut up_w) => r,
        r = tokio::io::copy_buf(&mut up_r, &mut down_w) => r,
    };
    if let Err(e) = result {
        tracing::debug!("upgrade tunnel ended: {e}");
    }
    let _ = up_w.shutdown().await;
    let _ = down_w.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Either side ending ends the tunnel, even when the other stays silent and open.
    #[tokio::test]
    async fn tunnel_ends_when_either_side_ends() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        for client_leaves in [true, false] {
            let (down, mut client) = tokio::io::duplex(64);
            let (up, mut backend) = tokio::io::duplex(64);
            let task = tokio::spawn(relay(down, up));
            client.write_all(b"ping").await.expect("write");
            let mut buf = [0u8; 4];
            backend.read_exact(&mut buf).await.expect("relayed");
            assert_eq!(&buf, b"ping");
            // One side goes away; the other keeps its end open and silent.
            let mut survivor = if client_leaves {
                drop(client);
                backend
            } else {
                drop(backend);
                client
            };
            tokio::time::timeout(std::time::Duration::from_secs(5), task)
                .await
                .expect("tunnel ended")
                .expect("task");
            let mut rest = Vec::new();
            let n = survivor.read_to_end(&mut rest).await.expect("closed");
            assert_eq!(n, 0, "the survivor sees EOF");
        }
    }

    #[test]
    fn upgrade_headers_keep_hop_by_hop_and_add_xff_host() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert("keep-alive", HeaderValue::from_static("300"));
        h.insert("proxy-authorization", HeaderValue::from_static("x"));
        h.insert("user-agent", HeaderValue::from_static("curl"));
        let out = upgrade_headers(
            h,
            "api:6443",
            Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
        );
        let mut got: Vec<String> = out
            .iter()
            .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("")))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                "connection: keep-alive, Upgrade",
                "host: api:6443",
                "keep-alive: 300",
                "proxy-authorization: x",
                "user-agent: curl",
                "x-forwarded-for: 127.0.0.1",
            ]
        );
    }
}
