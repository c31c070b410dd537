//! Binding the proxy listener with Go's `net.Listen` rules: `address:port` split like
//! `net.SplitHostPort` (no bracketing, so `::1` fails), wildcard addresses bound dual-stack and
//! shown as `[::]:PORT`, `localhost` resolved to IPv4 first; unix sockets replace a stale socket
//! and get mode 0600. Only std listeners are made here; no runtime, no serving.

use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener, ToSocketAddrs};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use crate::cli::Listen;
use crate::errors::{ServeError, errno_text};

/// A bound listener, ready to be served.
#[derive(Debug)]
pub enum Bound {
    /// A TCP listener.
    Tcp(TcpListener),
    /// A unix socket listener and its path as given.
    Unix(UnixListener, PathBuf),
}

impl Bound {
    /// What `Starting to serve on <addr>` prints: `127.0.0.1:8001`, `[::]:8001`, or the path.
    pub fn display_address(&self) -> String {
        match self {
            Self::Tcp(l) => l.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            Self::Unix(_, path) => path.display().to_string(),
        }
    }

    /// The TCP address actually bound (`None` for unix sockets).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp(l) => l.local_addr().ok(),
            Self::Unix(..) => None,
        }
    }
}

/// Binds `listen`.
pub(crate) fn bind(listen: &Listen) -> Result<Bound, ServeError> {
    match listen {
        Listen::Tcp { address, port } => bind_tcp(address, *port),
        Listen::Unix(path) => bind_unix(path),
    }
}

/// Go's `net.SplitHostPort` on `address:port` as kubectl formats it (`fmt.Sprintf("%s:%d")`).
pub(crate) fn split_host(address: &str, port: u16) -> Result<String, ServeError> {
    let joined = format!("{address}:{port}");
    let err = |reason: &str| ServeError::Address {
        address: joined.clone(),
        reason: reason.to_owned(),
    };
    if let Some(rest) = address.strip_prefix('[') {
        let Some(host) = rest.strip_suffix(']') else {
            return Err(if rest.contains(']') {
                err("missing port in address")
            } else {
                err("missing ']' in address")
            });
        };
        if host.contains(['[', ']']) {
            return Err(err("unexpected '[' in address"));
        }
        return Ok(host.to_owned());
    }
    if address.contains(':') {
        return Err(err("too many colons in address"));
    }
    if address.contains(['[', ']']) {
        return Err(err("unexpected ']' in address"));
    }
    Ok(address.to_owned())
}

/// The socket address Go would listen on for `host` (already split).
pub(crate) fn resolve(host: &str, port: u16) -> Result<SocketAddr, ServeError> {
    if host.is_empty() {
        return Ok(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        // Go listens dual-stack on a wildcard address, whichever family it was written in.
        let ip = if ip.is_unspecified() {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            ip
        };
        return Ok(SocketAddr::new(ip, port));
    }
    let lookup = |reason: String| ServeError::Lookup {
        host: host.to_owned(),
        reason,
    };
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|_| lookup("no such host".to_owned()))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| lookup("no such host".to_owned()))
}

fn bind_tcp(address: &str, port: u16) -> Result<Bound, ServeError> {
    let host = split_host(address, port)?;
    let addr = resolve(&host, port)?;
    let shown = if addr.ip().is_unspecified() {
        format!("{host}:{port}")
    } else {
        addr.to_string()
    };
    let listener = TcpListener::bind(addr).map_err(|e| ServeError::Listen {
        network: "tcp",
        address: shown,
        syscall: "bind",
        reason: errno_text(&e),
    })?;
    Ok(Bound::Tcp(listener))
}

fn bind_unix(path: &Path) -> Result<Bound, ServeError> {
    let shown = path.display().to_string();
    let fail = |syscall: &'static str, e: &std::io::Error| ServeError::Listen {
        network: "unix",
        address: shown.clone(),
        syscall,
        reason: errno_text(e),
    };
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && meta.file_type().is_socket()
    {
        std::fs::remove_file(path).map_err(|e| fail("bind", &e))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| fail("bind", &e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| fail("chmod", &e))?;
    Ok(Bound::Unix(listener, path.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(address: &str, want: Result<&str, &str>) {
        let got = split_host(address, 8001)
            .and_then(|host| resolve(&host, 8001))
            .map(|a| a.to_string())
            .map_err(|e| e.to_string());
        assert_eq!(
            got.as_deref().map_err(String::as_str),
            want,
            "address {address:?}"
        );
    }

    #[test]
    fn listen_addresses_follow_go() {
        check("127.0.0.1", Ok("127.0.0.1:8001"));
        check("localhost", Ok("127.0.0.1:8001"));
        check("[::1]", Ok("[::1]:8001"));
        check("0.0.0.0", Ok("[::]:8001"));
        check("", Ok("[::]:8001"));
        check(
            "::1",
            Err("listen tcp: address ::1:8001: too many colons in address"),
        );
    }

    #[test]
    fn port_in_use_reads_like_kubectl() {
        let first = bind_tcp("127.0.0.1", 0).expect("bind");
        let port = first.local_addr().expect("tcp").port();
        let err = bind_tcp("127.0.0.1", port).expect_err("in use").to_string();
        assert_eq!(
            err,
            format!("listen tcp 127.0.0.1:{port}: bind: address already in use")
        );
    }

    #[test]
    fn unix_socket_replaces_stale_socket_and_refuses_files() {
        let dir = crate::test_support::TempDir::new();
        let sock = dir.path().join("s.sock");
        drop(bind_unix(&sock).expect("first bind"));
        let bound = bind_unix(&sock).expect("stale socket replaced");
        assert_eq!(bound.display_address(), sock.display().to_string());
        let mode = std::fs::metadata(&sock).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let file = dir.write("plain", "x");
        let err = bind_unix(&file).expect_err("regular file").to_string();
        assert_eq!(
            err,
            format!(
                "listen unix {}: bind: address already in use",
                file.display()
            )
        );
    }
}
