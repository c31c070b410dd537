//! kubectl's `FilterServer.accept`: reject-paths, then reject-methods, then accept-paths AND
//! accept-hosts, else reject; the host is `extractHost(Host)` (Go `net.SplitHostPort`, else the
//! whole value), except that a bracketed IPv6 host with a port keeps its brackets (deviation (a):
//! `[::1]:8001` is checked as `[::1]`).
//!
//! Pure decision on (method, path, host); no routing, no replies, no logging.

use crate::config::Config;
use crate::gourl;

/// The filter's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The path matches accept-paths and the host matches accept-hosts.
    Accept,
    /// The path matches reject-paths.
    RejectPath,
    /// The method matches reject-methods.
    RejectMethod,
    /// The path does not match accept-paths.
    RejectNotAcceptedPath,
    /// The host does not match accept-hosts.
    RejectHost,
}

impl Verdict {
    /// Whether the request may pass.
    pub fn is_accept(self) -> bool {
        self == Self::Accept
    }
}

/// The host part the filter checks for a `Host`/`:authority` value.
///
/// `localhost:8001` → `localhost`; `[::1]` (no port) → `[::1]`; `[::1]:8001` → `[::1]` (kubectl:
/// `::1`, deviation (a)); a value `SplitHostPort` rejects is used whole.
pub fn extract_host(authority: &str) -> &str {
    match gourl::split_host_port(authority) {
        Some((host, true)) => &authority[..host.len() + 2],
        Some((host, false)) => host,
        None => authority,
    }
}

/// Applies the accept/reject lists in kubectl's order; the first hit wins.
pub fn check(config: &Config, method: &str, path: &str, host: &str) -> Verdict {
    if config.reject_paths.is_match(path) {
        Verdict::RejectPath
    } else if config.reject_methods.is_match(method) {
        Verdict::RejectMethod
    } else if !config.accept_paths.is_match(path) {
        Verdict::RejectNotAcceptedPath
    } else if !config.accept_hosts.is_match(host) {
        Verdict::RejectHost
    } else {
        Verdict::Accept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_host(authority: &str, expected: &str) {
        assert_eq!(extract_host(authority), expected, "{authority:?}");
    }

    #[test]
    fn host_extraction() {
        check_host("127.0.0.1", "127.0.0.1");
        check_host("localhost:8001", "localhost");
        check_host("[::1]", "[::1]");
        check_host("[::1]:8001", "[::1]");
        check_host("[fe80::1%25en0]:80", "[fe80::1%25en0]");
        check_host("::1", "::1");
        check_host(":8001", "");
        check_host("localhost:abc", "localhost");
        check_host("", "");
        check_host("example.com:9999", "example.com");
    }

    #[test]
    fn order_of_checks() {
        let config = Config::parse(br#"{"reject_methods": ["POST"], "accept_paths": ["^/api/"]}"#)
            .expect("config");
        let exec = "/api/v1/namespaces/d/pods/p/exec";
        assert_eq!(check(&config, "POST", exec, "evil"), Verdict::RejectPath);
        assert_eq!(
            check(&config, "POST", "/api/v1", "evil"),
            Verdict::RejectMethod
        );
        assert_eq!(
            check(&config, "GET", "/metrics", "localhost"),
            Verdict::RejectNotAcceptedPath
        );
        assert_eq!(
            check(&config, "GET", "/api/v1", "evil"),
            Verdict::RejectHost
        );
        assert_eq!(
            check(&config, "GET", "/api/v1", "localhost"),
            Verdict::Accept
        );
    }
}
