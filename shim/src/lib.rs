//! `shim`: a proxy-wasm host in wasmtime that serves as a drop-in `kubectl proxy`.
//!
//! `host` runs any proxy-wasm module (ABI 0.2.1) the way Envoy does.

pub mod host;
