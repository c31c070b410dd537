//! `--metrics-address`: the plugin's metrics as Prometheus text on `/metrics`, on its own
//! listener and thread (never the proxy port). Names have `.` replaced by `_`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Response, StatusCode, header};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use super::body::ProxyBody;
use crate::errors::{ServeError, errno_text};
use crate::host::{MetricKind, MetricSample, Plugin};

/// Prometheus text exposition of `samples`, sorted by name.
pub(crate) fn render(samples: &[MetricSample]) -> String {
    let mut samples: Vec<&MetricSample> = samples.iter().collect();
    samples.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = String::new();
    for s in samples {
        let name: String = s
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let kind = match s.kind {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "untyped",
        };
        out.push_str(&format!("# TYPE {name} {kind}\n{name} {}\n", s.value));
    }
    out
}

/// Binds `addr` and serves `/metrics` on a thread of its own.
pub(crate) fn spawn(addr: SocketAddr, plugin: Arc<Plugin>) -> Result<(), ServeError> {
    let listener = std::net::TcpListener::bind(addr).map_err(|e| ServeError::Listen {
        network: "tcp",
        address: addr.to_string(),
        syscall: "bind",
        reason: errno_text(&e),
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| ServeError::Worker(errno_text(&e)))?;
    std::thread::Builder::new()
        .name("kproxy-metrics".to_owned())
        .spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                loop {
                    let Ok((stream, _)) = listener.accept().await else { continue };
                    let plugin = plugin.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                            let plugin = plugin.clone();
                            async move { Ok::<_, Infallible>(answer(req.uri().path(), &plugin)) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        })
        .map_err(|e| ServeError::Worker(errno_text(&e)))?;
    Ok(())
}

fn answer(path: &str, plugin: &Plugin) -> Response<ProxyBody> {
    if path != "/metrics" {
        let mut resp = Response::new(ProxyBody::full("404 page not found\n"));
        *resp.status_mut() = StatusCode::NOT_FOUND;
        return resp;
    }
    let mut samples = plugin.metrics();
    samples.extend(crate::gauges::samples());
    let mut resp = Response::new(ProxyBody::full(render(&samples)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_replace_dots() {
        let samples = [
            MetricSample {
                name: "kproxy.routed.static".into(),
                kind: MetricKind::Counter,
                value: 2,
            },
            MetricSample {
                name: "kproxy.requests.accepted".into(),
                kind: MetricKind::Counter,
                value: 5,
            },
        ];
        assert_eq!(
            render(&samples),
            "# TYPE kproxy_requests_accepted counter\nkproxy_requests_accepted 5\n\
             # TYPE kproxy_routed_static counter\nkproxy_routed_static 2\n"
        );
    }
}
