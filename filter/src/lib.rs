//! kproxy's proxy-wasm HTTP filter: all of `kubectl proxy`'s request policy.
//!
//! Routing (Go `ServeMux` clean-up, subtree redirects, longest prefix, API-prefix stripping), the
//! accept/reject filter, credential and impersonation headers, and the routing decision of the
//! filter/host contract (ARCHITECTURE.md). Everything is pure and natively tested; only
//! [`plugin`] talks to the proxy-wasm host.

pub mod auth;
pub mod config;
pub mod decision;
pub mod direct;
mod gourl;
pub mod lookup;
pub mod pattern;
mod plugin;
pub mod policy;
pub mod rewrite;
pub mod route;
pub mod service;
pub mod status;

#[cfg(test)]
mod tests;

pub use config::{Config, ConfigError};
pub use decision::{Decision, Forward, HeaderOp, LocalReply, RequestHead, Upstream, decide};
