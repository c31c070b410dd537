//! The shim's own introspection gauges (`kproxy_shim_*` on `--metrics-address` only): open
//! client connections, live filter streams (HttpContexts), open upgrade tunnels, callouts in
//! flight (that one counted by the host). Process-wide counters moved by RAII guards, so every
//! exit path (client gone mid-request, mid-stream, mid-upgrade) brings them back down. Leak
//! tests read them.
//!
//! It only counts; it must not log or touch sockets.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::host::{MetricKind, MetricSample};

/// One gauge.
#[derive(Debug)]
pub(crate) struct Gauge {
    name: &'static str,
    value: AtomicI64,
}

impl Gauge {
    const fn new(name: &'static str) -> Self {
        Self {
            name,
            value: AtomicI64::new(0),
        }
    }

    /// Counts one more until the returned guard is dropped.
    pub(crate) fn hold(&'static self) -> Held {
        self.value.fetch_add(1, Ordering::Relaxed);
        Held(self)
    }

    /// The current value.
    pub(crate) fn get(&self) -> i64 {
        self.value.load(Ordering::Relaxed)
    }
}

/// Keeps its gauge one higher while alive.
#[derive(Debug)]
pub(crate) struct Held(&'static Gauge);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.value.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Client connections being served (TCP and unix).
pub(crate) static CONNECTIONS_OPEN: Gauge = Gauge::new("kproxy_shim_connections_open");
/// Filter HTTP contexts alive (created, not yet `on_delete`d).
pub(crate) static STREAMS_LIVE: Gauge = Gauge::new("kproxy_shim_streams_live");
/// Upgrade tunnels (after a 101) still copying.
pub(crate) static TUNNELS_OPEN: Gauge = Gauge::new("kproxy_shim_tunnels_open");

/// Every gauge as a metric sample (names already in Prometheus form).
pub(crate) fn samples() -> Vec<MetricSample> {
    let gauge = |name: &str, value: i64| MetricSample {
        name: name.to_owned(),
        kind: MetricKind::Gauge,
        value,
    };
    let mut samples: Vec<MetricSample> = [&CONNECTIONS_OPEN, &STREAMS_LIVE, &TUNNELS_OPEN]
        .into_iter()
        .map(|g| gauge(g.name, g.get()))
        .collect();
    // `proxy_http_call`s dispatched and not yet answered: counted by the host, which sees every
    // call, including those dropped with their stream or VM.
    samples.push(gauge(
        "kproxy_shim_callouts_inflight",
        crate::host::callouts_in_flight(),
    ));
    samples
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_up_and_back_down() {
        static G: Gauge = Gauge::new("test_gauge");
        let a = G.hold();
        let b = G.hold();
        assert_eq!(G.get(), 2);
        drop(a);
        assert_eq!(G.get(), 1);
        drop(b);
        assert_eq!(G.get(), 0);
        let names: Vec<String> = samples().into_iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "kproxy_shim_connections_open",
                "kproxy_shim_streams_live",
                "kproxy_shim_tunnels_open",
                "kproxy_shim_callouts_inflight"
            ]
        );
    }
}
