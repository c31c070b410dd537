//! `shim`: a proxy-wasm host in wasmtime that serves as a drop-in `kubectl proxy`.
//!
//! `cli` turns kubectl's flags into [`cli::Settings`], `kubeconfig` resolves the target
//! cluster, `credentials` keeps the injected credential fresh, `host` runs the proxy-wasm
//! module; the server modules bind, route on the filter's decision and forward.

pub mod cli;
pub mod credentials;
pub mod envoy;
pub mod host;
pub mod kubeconfig;

pub mod errors;
mod gauges;
pub mod server;
mod services;
pub mod static_files;
pub mod upgrade;
pub mod upstream;

#[cfg(test)]
mod test_support;

/// The kproxy filter (`kproxy_filter.wasm`) embedded at build time (see `build.rs`).
pub static DEFAULT_FILTER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kproxy_filter.wasm"));
