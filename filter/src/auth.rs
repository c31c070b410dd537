//! Credential and `Impersonate-*` injection with client-go's rules (`transport/round_trippers.go`):
//! each header is set only when the client did not send it, and a client `Impersonate-User`
//! disables all configured impersonation.
//!
//! Produces header operations for API-server routes only; it never decides routing and never
//! logs credential values.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::decision::HeaderOp;

/// Credentials the proxy adds to API-server requests that carry no `Authorization`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Credentials {
    /// `Authorization: Bearer <token>`.
    Token(String),
    /// `Authorization: Basic base64(username:password)`.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets, even in test failures.
        match self {
            Self::Token(_) => f.write_str("Credentials::Token(<redacted>)"),
            Self::Basic { username, .. } => write!(f, "Credentials::Basic({username}, <redacted>)"),
        }
    }
}

/// The identity to impersonate (`--as`, `--as-group`, `--as-uid`, kubeconfig `as-user-extra`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Impersonate {
    /// `Impersonate-User` (may be empty when only groups or extras are set).
    pub user: String,
    /// One `Impersonate-Group` each, in order.
    pub groups: Vec<String>,
    /// `Impersonate-Uid`, if non-empty.
    pub uid: String,
    /// `Impersonate-Extra-<escaped key>`, one header per value.
    pub extra: BTreeMap<String, Vec<String>>,
}

// === impl Credentials ===

impl Credentials {
    /// The `Authorization` value these credentials produce.
    pub fn authorization(&self) -> String {
        match self {
            Self::Token(token) => format!("Bearer {token}"),
            Self::Basic { username, password } => {
                format!(
                    "Basic {}",
                    base64(format!("{username}:{password}").as_bytes())
                )
            }
        }
    }

    /// Checks the values can be sent as a header.
    pub(crate) fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        match self {
            Self::Token(token) if token.is_empty() => Err(("token", "must not be empty")),
            Self::Token(token) if !is_header_value(token) => {
                Err(("token", "must not contain control characters"))
            }
            _ => Ok(()),
        }
    }
}

/// Whether `v` may be a header value (no control characters except tab).
pub(crate) fn is_header_value(v: &str) -> bool {
    !v.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
}

/// Parses the rotated credentials stored under `credentials.shared_data_key`: JSON of the same
/// shape as `credentials` without `shared_data_key`, i.e. `{"token": "…"}` or
/// `{"basic": {"username": "…", "password": "…"}}`.
pub fn parse_rotated(bytes: &[u8]) -> Result<Credentials, String> {
    let creds: Credentials = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    creds.validate().map_err(|(f, m)| format!("{f}: {m}"))?;
    Ok(creds)
}

/// The last rotated credentials read from shared data, cached by the value's CAS so an
/// unchanged value is parsed once.
#[derive(Debug, Default)]
pub struct RotationCache {
    cached: Option<(u32, Result<Credentials, String>)>,
}

impl RotationCache {
    /// Takes the shared-data value and CAS just read; returns the credentials to use instead of
    /// the configured ones (`None` = use the configured ones) and, the first time a value fails
    /// to parse, the message to log.
    pub fn resolve(
        &mut self,
        value: Option<&[u8]>,
        cas: Option<u32>,
    ) -> (Option<Credentials>, Option<String>) {
        let Some(value) = value else {
            self.cached = None;
            return (None, None);
        };
        if let (Some(cas), Some((cached_cas, cached))) = (cas, &self.cached)
            && cas == *cached_cas
        {
            return (cached.as_ref().ok().cloned(), None);
        }
        let parsed = parse_rotated(value);
        let result = (
            parsed.as_ref().ok().cloned(),
            parsed.as_ref().err().cloned(),
        );
        self.cached = cas.map(|cas| (cas, parsed));
        result
    }
}

/// The header operations client-go's wrappers would apply to `headers` (lower-case names).
///
/// Order as in `HTTPWrappersForConfig`: impersonation first, then `Authorization`.
pub fn header_ops(
    headers: &[(String, String)],
    credentials: Option<&Credentials>,
    impersonate: Option<&Impersonate>,
) -> Vec<HeaderOp> {
    let mut ops = Vec::new();
    if let Some(imp) = impersonate {
        // client-go uses `Impersonate-User` as the marker: a non-empty one skips everything.
        if first_value(headers, "impersonate-user").is_none_or(str::is_empty) {
            if !imp.user.is_empty() {
                ops.push(HeaderOp::Replace(
                    "impersonate-user".into(),
                    imp.user.clone(),
                ));
            }
            if !imp.uid.is_empty() {
                ops.push(HeaderOp::Replace("impersonate-uid".into(), imp.uid.clone()));
            }
            for group in &imp.groups {
                ops.push(HeaderOp::Add("impersonate-group".into(), group.clone()));
            }
            for (key, values) in &imp.extra {
                let name = format!("impersonate-extra-{}", header_key_escape(key));
                for value in values {
                    ops.push(HeaderOp::Add(name.clone(), value.clone()));
                }
            }
        }
    }
    if let Some(creds) = credentials
        && first_value(headers, "authorization").is_none_or(str::is_empty)
    {
        ops.push(HeaderOp::Replace(
            "authorization".into(),
            creds.authorization(),
        ));
    }
    ops
}

fn first_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// client-go `headerKeyEscape`: bytes outside the RFC 7230 token set, and `%`, become `%XX`.
pub fn header_key_escape(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for &b in key.as_bytes() {
        let legal = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        if legal {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Standard base64 with padding (RFC 4648), as Go's `base64.StdEncoding`.
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn add(n: &str, v: &str) -> HeaderOp {
        HeaderOp::Add(n.into(), v.into())
    }

    fn replace(n: &str, v: &str) -> HeaderOp {
        HeaderOp::Replace(n.into(), v.into())
    }

    fn jane() -> Impersonate {
        Impersonate {
            user: "jane".into(),
            groups: vec!["g1".into(), "g2".into()],
            uid: String::new(),
            extra: BTreeMap::from([("scopes".into(), vec!["s1".into()])]),
        }
    }

    #[track_caller]
    fn check(
        client: &[(&str, &str)],
        creds: Option<&Credentials>,
        imp: Option<&Impersonate>,
        expected: &[HeaderOp],
    ) {
        assert_eq!(header_ops(&headers(client), creds, imp), expected);
    }

    #[test]
    fn bearer_token_added_when_client_sent_none() {
        let tok = Credentials::Token("TOK".into());
        check(
            &[],
            Some(&tok),
            None,
            &[replace("authorization", "Bearer TOK")],
        );
        // An empty Authorization counts as absent (client-go checks `len(Get(...)) != 0`).
        check(
            &[("authorization", "")],
            Some(&tok),
            None,
            &[replace("authorization", "Bearer TOK")],
        );
    }

    #[test]
    fn client_authorization_wins_vector_92() {
        let tok = Credentials::Token("TOK".into());
        check(&[("authorization", "Bearer mine")], Some(&tok), None, &[]);
    }

    #[test]
    fn basic_auth_vector_94() {
        let basic = Credentials::Basic {
            username: "alice".into(),
            password: "s3cret".into(),
        };
        check(
            &[],
            Some(&basic),
            None,
            &[replace("authorization", "Basic YWxpY2U6czNjcmV0")],
        );
    }

    #[test]
    fn impersonation_from_kubeconfig_vector_95() {
        check(
            &[],
            None,
            Some(&jane()),
            &[
                replace("impersonate-user", "jane"),
                add("impersonate-group", "g1"),
                add("impersonate-group", "g2"),
                add("impersonate-extra-scopes", "s1"),
            ],
        );
    }

    #[test]
    fn client_impersonate_user_skips_all_vector_96() {
        let tok = Credentials::Token("TOK".into());
        check(
            &[("impersonate-user", "mallory")],
            Some(&tok),
            Some(&jane()),
            &[replace("authorization", "Bearer TOK")],
        );
    }

    #[test]
    fn client_impersonate_group_is_merged_vector_97() {
        // The client's `impersonate-group: admins` stays; configured groups are added.
        check(
            &[("impersonate-group", "admins")],
            None,
            Some(&jane()),
            &[
                replace("impersonate-user", "jane"),
                add("impersonate-group", "g1"),
                add("impersonate-group", "g2"),
                add("impersonate-extra-scopes", "s1"),
            ],
        );
    }

    #[test]
    fn as_flags_vector_98() {
        let imp = Impersonate {
            user: "bob".into(),
            groups: vec!["devs".into()],
            uid: "u-1".into(),
            extra: BTreeMap::new(),
        };
        check(
            &[],
            None,
            Some(&imp),
            &[
                replace("impersonate-user", "bob"),
                replace("impersonate-uid", "u-1"),
                add("impersonate-group", "devs"),
            ],
        );
    }

    #[test]
    fn extra_keys_are_escaped_like_client_go() {
        assert_eq!(header_key_escape("scopes"), "scopes");
        assert_eq!(header_key_escape("example.com/key"), "example.com%2Fkey");
        assert_eq!(header_key_escape("a b%c"), "a%20b%25c");
        assert_eq!(header_key_escape("ü"), "%C3%BC");
    }

    #[test]
    fn base64_matches_go() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"alice:s3cret"), "YWxpY2U6czNjcmV0");
    }

    #[test]
    fn rotation_cache_parses_each_cas_once() {
        let mut cache = RotationCache::default();
        let tok = |t: &str| Some(Credentials::Token(t.into()));
        assert_eq!(
            cache.resolve(None, None),
            (None, None),
            "no key: configured"
        );
        assert_eq!(
            cache.resolve(Some(br#"{"token":"a"}"#), Some(1)),
            (tok("a"), None)
        );
        // Same CAS: the cached value, even if the bytes were (impossibly) different.
        assert_eq!(cache.resolve(Some(b"garbage"), Some(1)), (tok("a"), None));
        assert_eq!(
            cache.resolve(Some(br#"{"token":"b"}"#), Some(2)),
            (tok("b"), None)
        );
        let (creds, err) = cache.resolve(Some(b"garbage"), Some(3));
        assert_eq!(creds, None, "unparsable: configured credentials");
        assert!(err.is_some(), "logged once");
        assert_eq!(
            cache.resolve(Some(b"garbage"), Some(3)),
            (None, None),
            "not logged again"
        );
        // Hosts without CAS: parsed every time.
        assert_eq!(
            cache.resolve(Some(br#"{"token":"c"}"#), None),
            (tok("c"), None)
        );
        assert_eq!(cache.resolve(None, None), (None, None), "key removed");
    }

    #[test]
    fn rotated_credentials_parse() {
        assert_eq!(
            parse_rotated(br#"{"token":"new"}"#),
            Ok(Credentials::Token("new".into()))
        );
        assert_eq!(
            parse_rotated(br#"{"basic":{"username":"u","password":"p"}}"#),
            Ok(Credentials::Basic {
                username: "u".into(),
                password: "p".into()
            })
        );
        assert!(parse_rotated(br#"{"token":"a","shared_data_key":"k"}"#).is_err());
        assert!(parse_rotated(br#"{"token":""}"#).is_err());
        assert!(parse_rotated(b"not json").is_err());
    }
}
