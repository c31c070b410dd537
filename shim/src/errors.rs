//! Errors of the server side and their Go wording.
//!
//! [`ServeError`] is what `bind`/`serve` return (main prints `error: <msg>`). The `go_*` functions
//! turn I/O, DNS and TLS failures into the text Go's `net`/`crypto/tls` packages print, because
//! kubectl's responder writes that text into the 500 body (`dial tcp 127.0.0.1:18299: connect:
//! connection refused`). This module only formats; it must not open sockets or log.

use std::io;

/// Why the proxy could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listen address is not a valid `host:port` (Go `net.SplitHostPort` wording).
    #[error("listen tcp: address {address}: {reason}")]
    Address {
        /// `address:port` as Go sees it.
        address: String,
        /// Go's reason (`too many colons in address`, `missing port in address` …).
        reason: String,
    },
    /// Binding or listening failed (`listen tcp 127.0.0.1:8001: bind: address already in use`).
    #[error("listen {network} {address}: {syscall}: {reason}")]
    Listen {
        /// `tcp` or `unix`.
        network: &'static str,
        /// The address (resolved for TCP, the path for unix).
        address: String,
        /// The failing step (`bind`, `listen`, `chmod`).
        syscall: &'static str,
        /// Go's errno text.
        reason: String,
    },
    /// The host name of `--address` does not resolve.
    #[error("listen tcp: lookup {host}: {reason}")]
    Lookup {
        /// The host name.
        host: String,
        /// Why.
        reason: String,
    },
    /// The wasm filter could not be read.
    #[error("cannot read the filter {path}: {reason}")]
    ReadFilter {
        /// The `--filter` path.
        path: String,
        /// Go-style errno text.
        reason: String,
    },
    /// The wasm module could not be loaded or its VM could not start.
    #[error(transparent)]
    Host(#[from] crate::host::HostError),
    /// A worker thread could not be started or its runtime failed.
    #[error("worker: {0}")]
    Worker(String),
}

/// Go's text for an errno-carrying I/O error: `connection refused`, `address already in use` …
///
/// Go prints `strerror` in lower case; Rust's `Display` adds ` (os error N)` and capitalises.
pub fn errno_text(e: &io::Error) -> String {
    if let Some(code) = e.raw_os_error() {
        let text = io::Error::from_raw_os_error(code).to_string();
        let text = text.split(" (os error").next().unwrap_or(&text).to_owned();
        return lower_first(&text);
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof => "EOF".to_owned(),
        io::ErrorKind::TimedOut => "i/o timeout".to_owned(),
        _ => lower_first(&e.to_string()),
    }
}

/// `dial tcp <addr>: connect: <errno>` (Go's `net.OpError` for a failed connect).
pub fn go_dial_error(addr: &str, e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::TimedOut && e.raw_os_error().is_none() {
        return format!("dial tcp {addr}: i/o timeout");
    }
    format!("dial tcp {addr}: connect: {}", errno_text(e))
}

/// `dial tcp: lookup <host>: no such host` (Go's `net.DNSError`, without the resolver address).
pub fn go_lookup_error(host: &str) -> String {
    format!("dial tcp: lookup {host}: no such host")
}

/// Go's text for a failed TLS handshake: `tls: failed to verify certificate: x509: …`, `tls: first
/// record does not look like a TLS handshake`, `remote error: tls: …`, or the I/O error.
pub fn go_tls_error(e: &io::Error) -> String {
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return match e.kind() {
            io::ErrorKind::UnexpectedEof => "EOF".to_owned(),
            _ => errno_text(e),
        };
    };
    go_rustls_error(tls)
}

/// Go's wording for a rustls handshake error.
pub fn go_rustls_error(e: &rustls::Error) -> String {
    use rustls::{CertificateError, Error};
    const VERIFY: &str = "tls: failed to verify certificate: x509: ";
    match e {
        Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                format!("{VERIFY}certificate signed by unknown authority")
            }
            CertificateError::Expired | CertificateError::NotValidYet => {
                format!("{VERIFY}certificate has expired or is not yet valid")
            }
            CertificateError::NotValidForName => {
                format!("{VERIFY}certificate is not valid for the requested name")
            }
            other => format!("{VERIFY}{}", lower_first(&format!("{other:?}"))),
        },
        Error::InvalidMessage(_) => {
            "tls: first record does not look like a TLS handshake".to_owned()
        }
        Error::AlertReceived(alert) => format!("remote error: tls: {}", alert_text(*alert)),
        other => format!("tls: {}", lower_first(&other.to_string())),
    }
}

/// Go's names of the common TLS alerts (`crypto/tls/alert.go`).
fn alert_text(alert: rustls::AlertDescription) -> String {
    use rustls::AlertDescription as A;
    match alert {
        A::HandshakeFailure => "handshake failure".to_owned(),
        A::BadCertificate => "bad certificate".to_owned(),
        A::UnknownCA => "unknown certificate authority".to_owned(),
        A::CertificateRequired => "certificate required".to_owned(),
        A::ProtocolVersion => "protocol version not supported".to_owned(),
        A::InternalError => "internal error".to_owned(),
        A::NoApplicationProtocol => "no application protocol".to_owned(),
        other => lower_first(&format!("{other:?}")),
    }
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(got: &str, want: &str) {
        assert_eq!(got, want);
    }

    #[test]
    fn connection_refused_reads_like_go() {
        let e = io::Error::from_raw_os_error(111);
        check(
            &go_dial_error("127.0.0.1:18299", &e),
            "dial tcp 127.0.0.1:18299: connect: connection refused",
        );
    }

    #[test]
    fn address_in_use_is_lower_case() {
        check(
            &errno_text(&io::Error::from_raw_os_error(98)),
            "address already in use",
        );
    }

    #[test]
    fn unknown_issuer_is_x509_unknown_authority() {
        let e = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        check(
            &go_tls_error(&e),
            "tls: failed to verify certificate: x509: certificate signed by unknown authority",
        );
    }

    #[test]
    fn plain_http_server_is_not_a_tls_handshake() {
        let e = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
        );
        check(
            &go_tls_error(&e),
            "tls: first record does not look like a TLS handshake",
        );
    }

    #[test]
    fn eof_during_handshake_is_eof() {
        check(
            &go_tls_error(&io::Error::from(io::ErrorKind::UnexpectedEof)),
            "EOF",
        );
    }

    #[test]
    fn listen_error_reads_like_kubectl() {
        let e = ServeError::Listen {
            network: "tcp",
            address: "127.0.0.1:8001".into(),
            syscall: "bind",
            reason: "address already in use".into(),
        };
        check(
            &e.to_string(),
            "listen tcp 127.0.0.1:8001: bind: address already in use",
        );
    }
}
