//! Test harness: a fake API server, backends (shim, Envoy, kubectl proxy) and scenario files.
//!
//! Everything here drives processes over HTTP; it depends on neither the filter's nor the shim's
//! code. The tests themselves live in `tests.rs` (one test binary).

pub mod apiserver;
pub mod backend;
pub mod envoy;
pub mod faults;
pub mod kubeconfig;
pub mod parity;
pub mod rawhttp;
pub mod replies;
pub mod runner;
pub mod scenario;
pub mod services;
pub mod tls;

#[cfg(test)]
mod tests;

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> std::path::PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}
