//! The direct service-proxy flags' value types: `--service-proxy`, `--cluster-domain` checks and
//! curl's `--connect-to HOST1:PORT1:HOST2:PORT2` mapping (parsing, matching, rendering).
//!
//! Pure functions only: no flag table knowledge, no I/O.

use std::fmt;

/// `--service-proxy`: who serves `/api/v1/namespaces/{ns}/services/{id}/proxy` URLs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServiceProxy {
    /// Through the API server's `services/proxy` subresource (kubectl's behaviour).
    #[default]
    ApiServer,
    /// The proxy looks the Service up and connects to it itself.
    Direct,
}

impl ServiceProxy {
    /// Parses the flag value (`apiserver` or `direct`, exactly).
    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "apiserver" => Ok(Self::ApiServer),
            "direct" => Ok(Self::Direct),
            _ => Err("must be one of \"apiserver\" or \"direct\"".to_owned()),
        }
    }

    /// The flag and plugin-configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiServer => "apiserver",
            Self::Direct => "direct",
        }
    }
}

impl fmt::Display for ServiceProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `--cluster-domain`: a DNS name (dot-separated labels of 1–63 letters, digits or `-`, not
/// starting or ending with `-`; at most 253 characters), no leading or trailing dot. The same
/// rule as the filter's `cluster_domain` field.
pub(super) fn check_cluster_domain(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if value.starts_with('.') || value.ends_with('.') {
        return Err("must not start or end with '.'".to_owned());
    }
    if value.len() > 253 {
        return Err("is longer than 253 characters".to_owned());
    }
    let bad_label = value.split('.').any(|label| {
        label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    if bad_label {
        return Err("is not a DNS name (dot-separated labels of 1-63 letters, digits or '-', not starting or ending with '-')".to_owned());
    }
    Ok(())
}

/// One `--connect-to HOST1:PORT1:HOST2:PORT2` entry (curl's syntax): requests whose authority
/// matches HOST1:PORT1 connect to HOST2:PORT2 instead. The `Host` header is not changed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConnectTo {
    /// HOST1, lower-cased, IPv6 without brackets; empty = any host.
    pub from_host: String,
    /// PORT1; `None` = any port.
    pub from_port: Option<u16>,
    /// HOST2, lower-cased, IPv6 without brackets; empty = keep the request's host.
    pub to_host: String,
    /// PORT2; `None` = keep the request's port.
    pub to_port: Option<u16>,
}

impl ConnectTo {
    /// Parses `HOST1:PORT1:HOST2:PORT2`; IPv6 addresses must be in brackets (`[::1]`).
    pub fn parse(value: &str) -> Result<Self, String> {
        let syntax = || "want HOST1:PORT1:HOST2:PORT2 (IPv6 addresses in brackets)".to_owned();
        let (from_host, rest) = host_field(value).ok_or_else(syntax)?;
        let rest = rest.strip_prefix(':').ok_or_else(syntax)?;
        let (from_port, rest) = rest.split_once(':').ok_or_else(syntax)?;
        let (to_host, rest) = host_field(rest).ok_or_else(syntax)?;
        let to_port = rest.strip_prefix(':').ok_or_else(syntax)?;
        if to_port.contains(':') {
            return Err(syntax());
        }
        Ok(Self {
            from_host: check_host(from_host)?,
            from_port: port_field(from_port)?,
            to_host: check_host(to_host)?,
            to_port: port_field(to_port)?,
        })
    }

    /// True when this entry applies to `host` (IPv6 with or without brackets) and `port`.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let host = bare(host);
        (self.from_host.is_empty() || self.from_host.eq_ignore_ascii_case(host))
            && self.from_port.is_none_or(|p| p == port)
    }

    /// Where a request for `host:port` connects: the first matching entry's HOST2/PORT2 (an
    /// empty part keeps the request's), or `host:port` itself. The host comes back without
    /// brackets.
    pub fn target(list: &[Self], host: &str, port: u16) -> (String, u16) {
        let host = bare(host);
        match list.iter().find(|c| c.matches(host, port)) {
            Some(c) => (
                if c.to_host.is_empty() {
                    host.to_owned()
                } else {
                    c.to_host.clone()
                },
                c.to_port.unwrap_or(port),
            ),
            None => (host.to_owned(), port),
        }
    }
}

impl fmt::Display for ConnectTo {
    /// curl's syntax, IPv6 hosts in brackets, absent ports empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = |p: Option<u16>| p.map(|p| p.to_string()).unwrap_or_default();
        write!(
            f,
            "{}:{}:{}:{}",
            bracketed(&self.from_host),
            port(self.from_port),
            bracketed(&self.to_host),
            port(self.to_port)
        )
    }
}

/// `host` with IPv6 brackets added when it contains a `:`.
pub fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// `host` without IPv6 brackets.
fn bare(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// Splits off a host field: `[v6]` or everything up to the next `:`. Returns the host (still
/// bracketed) and the rest starting at the `:`.
fn host_field(s: &str) -> Option<(&str, &str)> {
    if s.starts_with('[') {
        let end = s.find(']')?;
        Some((&s[..=end], &s[end + 1..]))
    } else {
        let end = s.find(':').unwrap_or(s.len());
        Some((&s[..end], &s[end..]))
    }
}

fn check_host(host: &str) -> Result<String, String> {
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').unwrap_or(inner);
        return match inner.parse::<std::net::Ipv6Addr>() {
            Ok(_) => Ok(inner.to_ascii_lowercase()),
            Err(_) => Err(format!("{host:?} is not an IPv6 address")),
        };
    }
    let valid = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if valid {
        Ok(host.to_ascii_lowercase())
    } else {
        Err(format!("{host:?} is not a host name or IP address"))
    }
}

fn port_field(port: &str) -> Result<Option<u16>, String> {
    if port.is_empty() {
        return Ok(None);
    }
    match port.parse::<u16>() {
        Ok(n) if n > 0 && port.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(n)),
        _ => Err(format!("port {port:?} is not a number from 1 to 65535")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(
        from_host: &str,
        from_port: Option<u16>,
        to_host: &str,
        to_port: Option<u16>,
    ) -> ConnectTo {
        ConnectTo {
            from_host: from_host.into(),
            from_port,
            to_host: to_host.into(),
            to_port,
        }
    }

    #[test]
    fn connect_to_parses_curl_syntax() {
        let table: &[(&str, Result<ConnectTo, &str>)] = &[
            (
                "web.default.svc.cluster.local:80:127.0.0.1:8080",
                Ok(entry(
                    "web.default.svc.cluster.local",
                    Some(80),
                    "127.0.0.1",
                    Some(8080),
                )),
            ),
            ("::127.0.0.1:9", Ok(entry("", None, "127.0.0.1", Some(9)))),
            (
                "A.Example:443::",
                Ok(entry("a.example", Some(443), "", None)),
            ),
            (":::", Ok(entry("", None, "", None))),
            (
                "[::1]:80:[FE80::1]:81",
                Ok(entry("::1", Some(80), "fe80::1", Some(81))),
            ),
            ("h:1:[::1]:", Ok(entry("h", Some(1), "::1", None))),
            (
                "h:1:h2",
                Err("want HOST1:PORT1:HOST2:PORT2 (IPv6 addresses in brackets)"),
            ),
            (
                "h:1:h2:2:3",
                Err("want HOST1:PORT1:HOST2:PORT2 (IPv6 addresses in brackets)"),
            ),
            (
                "::1:80:h:1",
                Err("want HOST1:PORT1:HOST2:PORT2 (IPv6 addresses in brackets)"),
            ),
            (
                "h:0:h2:1",
                Err("port \"0\" is not a number from 1 to 65535"),
            ),
            (
                "h:70000:h2:1",
                Err("port \"70000\" is not a number from 1 to 65535"),
            ),
            (
                "h:+1:h2:1",
                Err("port \"+1\" is not a number from 1 to 65535"),
            ),
            (
                "h:x:h2:1",
                Err("port \"x\" is not a number from 1 to 65535"),
            ),
            ("[nope]:1:h:1", Err("\"[nope]\" is not an IPv6 address")),
            (
                "[::1:1:h:1",
                Err("want HOST1:PORT1:HOST2:PORT2 (IPv6 addresses in brackets)"),
            ),
            ("a b:1:h:1", Err("\"a b\" is not a host name or IP address")),
            ("h:1:h/x:1", Err("\"h/x\" is not a host name or IP address")),
        ];
        for (input, want) in table {
            assert_eq!(
                ConnectTo::parse(input),
                want.clone().map_err(str::to_owned),
                "{input:?}"
            );
        }
    }

    #[test]
    fn connect_to_renders_back_to_curl_syntax() {
        for text in ["h:1:h2:2", ":::", "[::1]:80:[fe80::1]:", "::127.0.0.1:9"] {
            let parsed = ConnectTo::parse(text).expect("parses");
            assert_eq!(parsed.to_string(), text);
        }
    }

    #[test]
    fn connect_to_first_match_wins_and_empty_parts_keep_the_request() {
        let list: Vec<ConnectTo> = [
            "web.default.svc.cluster.local:80:127.0.0.1:18080",
            "web.default.svc.cluster.local::127.0.0.2:",
            ":443::8443",
            "[::1]:1:[::2]:2",
        ]
        .iter()
        .map(|s| ConnectTo::parse(s).expect("parses"))
        .collect();
        let t = |host: &str, port: u16| ConnectTo::target(&list, host, port);
        assert_eq!(
            t("web.default.svc.cluster.local", 80),
            ("127.0.0.1".to_owned(), 18080)
        );
        assert_eq!(
            t("WEB.default.svc.cluster.local", 80),
            ("127.0.0.1".to_owned(), 18080),
            "host match is case-insensitive"
        );
        assert_eq!(
            t("web.default.svc.cluster.local", 81),
            ("127.0.0.2".to_owned(), 81)
        );
        assert_eq!(
            t("web.default.svc.cluster.local", 443),
            ("127.0.0.2".to_owned(), 443),
            "the second entry matches first"
        );
        assert_eq!(t("other", 443), ("other".to_owned(), 8443));
        assert_eq!(t("other", 80), ("other".to_owned(), 80));
        assert_eq!(t("[::1]", 1), ("::2".to_owned(), 2));
        assert_eq!(t("::1", 1), ("::2".to_owned(), 2));
        assert_eq!(t("::1", 2), ("::1".to_owned(), 2));
    }

    #[test]
    fn service_proxy_and_cluster_domain_values() {
        assert_eq!(ServiceProxy::parse("direct"), Ok(ServiceProxy::Direct));
        assert_eq!(
            ServiceProxy::parse("apiserver"),
            Ok(ServiceProxy::ApiServer)
        );
        assert!(ServiceProxy::parse("Direct").is_err());
        assert!(ServiceProxy::parse("").is_err());
        assert_eq!(check_cluster_domain("cluster.local"), Ok(()));
        assert_eq!(check_cluster_domain("k8s-1.example"), Ok(()));
        assert!(check_cluster_domain("").is_err());
        assert!(check_cluster_domain(".cluster.local").is_err());
        assert!(check_cluster_domain("cluster.local.").is_err());
        assert!(check_cluster_domain("a..b").is_err());
        assert!(check_cluster_domain("-a.b").is_err());
        assert!(check_cluster_domain("a_b.c").is_err());
        assert!(check_cluster_domain(&"a".repeat(64)).is_err());
    }
}
