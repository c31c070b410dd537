//! Generators for the property tests: valid plugin configurations (as a [`Spec`] that also knows
//! its effective values) and request heads rich in the characters the mux and filter care about.
//!
//! Regexes come from atoms on which Go's RE2 and `regex-lite` agree; nothing here decides.

use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Value, json};

use crate::Config;
use crate::decision::RequestHead;

/// A generated configuration: `None` = field absent (kubectl's default).
#[derive(Clone, Debug, Default)]
pub(super) struct Spec {
    pub(super) api_prefix: Option<String>,
    pub(super) static_prefix: Option<String>,
    pub(super) accept_paths: Option<Vec<String>>,
    pub(super) reject_paths: Option<Vec<String>>,
    pub(super) accept_hosts: Option<Vec<String>>,
    pub(super) reject_methods: Option<Vec<String>>,
    pub(super) disable_filter: Option<bool>,
    pub(super) server_path: Option<String>,
    pub(super) credentials: Option<Value>,
    pub(super) impersonate: Option<Value>,
    pub(super) verbosity: Option<u32>,
}

fn owned(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// kubectl's flag defaults, written down again from `kubectl proxy --help`.
fn or_default(list: Option<&Vec<String>>, default: &[&str]) -> Vec<String> {
    list.cloned().unwrap_or_else(|| owned(default))
}

fn with_slash(p: &str) -> String {
    if p.ends_with('/') {
        p.to_owned()
    } else {
        format!("{p}/")
    }
}

// === impl Spec ===

impl Spec {
    /// The plugin JSON.
    pub(super) fn json(&self) -> String {
        let mut map = Map::new();
        let mut put = |key: &str, value: Option<Value>| {
            if let Some(v) = value {
                map.insert(key.to_owned(), v);
            }
        };
        put("api_prefix", self.api_prefix.clone().map(Value::from));
        put("static_prefix", self.static_prefix.clone().map(Value::from));
        put("accept_paths", self.accept_paths.clone().map(Value::from));
        put("reject_paths", self.reject_paths.clone().map(Value::from));
        put("accept_hosts", self.accept_hosts.clone().map(Value::from));
        put(
            "reject_methods",
            self.reject_methods.clone().map(Value::from),
        );
        put("disable_filter", self.disable_filter.map(Value::from));
        put("server_path", self.server_path.clone().map(Value::from));
        put("credentials", self.credentials.clone());
        put("impersonate", self.impersonate.clone());
        put("verbosity", self.verbosity.map(Value::from));
        Value::Object(map).to_string()
    }

    /// The parsed configuration; a generated one is always valid.
    pub(super) fn config(&self) -> Config {
        Config::parse(self.json().as_bytes())
            .unwrap_or_else(|e| panic!("generated config {}: {e}", self.json()))
    }

    pub(super) fn api_prefix(&self) -> String {
        with_slash(self.api_prefix.as_deref().unwrap_or("/"))
    }

    pub(super) fn static_prefix(&self) -> Option<String> {
        self.static_prefix.as_deref().map(with_slash)
    }

    /// Whether kubectl installs `stripLeaveSlash` (the prefix does not start with `/api`).
    pub(super) fn strips(&self) -> bool {
        !self.api_prefix().starts_with("/api")
    }

    pub(super) fn server_path(&self) -> String {
        match self.server_path.as_deref() {
            None | Some("") => String::new(),
            Some(p) => with_slash(p),
        }
    }

    pub(super) fn disable_filter(&self) -> bool {
        self.disable_filter.unwrap_or(false)
    }

    pub(super) fn accept_paths(&self) -> Vec<String> {
        or_default(self.accept_paths.as_ref(), &["^.*"])
    }

    pub(super) fn reject_paths(&self) -> Vec<String> {
        or_default(
            self.reject_paths.as_ref(),
            &["^/api/.*/pods/.*/exec", "^/api/.*/pods/.*/attach"],
        )
    }

    pub(super) fn accept_hosts(&self) -> Vec<String> {
        or_default(
            self.accept_hosts.as_ref(),
            &["^localhost$", r"^127\.0\.0\.1$", r"^\[::1\]$"],
        )
    }

    pub(super) fn reject_methods(&self) -> Vec<String> {
        or_default(self.reject_methods.as_ref(), &["^$"])
    }
}

const PREFIXES: &[&str] = &[
    "/",
    "/api",
    "/api/",
    "/apis/",
    "/custom",
    "/custom/",
    "/k8s-api",
    "/api-gw/",
    "/a/b/",
    "/static/",
    "/static",
    "/st%61tic/",
    "/x%2Fy/",
    "/custom/x/",
];

/// Path-regex atoms; concatenations of these mean the same in RE2 and `regex-lite`.
const PATH_ATOMS: &[&str] = &[
    "^",
    "$",
    ".*",
    ".+",
    ".",
    "/",
    "/api",
    "/api/",
    "/apis",
    "v1",
    "pods",
    "exec",
    "attach",
    "/exec",
    r"\.\.",
    r"\.",
    "%2e",
    "%",
    "[/.]",
    "(exec|attach)",
    "[a-z]+",
    "[^/]*",
    "custom",
    "static",
    "x?",
    "é",
    r"\?",
    "#",
    ";",
    r"\x00",
    "/pods/.*/exec",
];

const HOST_PATTERNS: &[&str] = &[
    "^localhost$",
    r"^127\.0\.0\.1$",
    r"^\[::1\]$",
    "^::1$",
    "evil",
    "^$",
    ".*",
    "^local",
    "host$",
    r"^\[",
    r"\]$",
    r"^127\.",
    ":",
];

const METHOD_PATTERNS: &[&str] = &[
    "^$",
    "POST",
    "^GET$",
    "(?i)^get$",
    "^[A-Z]+$",
    "DELETE|PATCH",
    "^ ",
    "T$",
    "[a-z]",
    ".",
    "^(PUT|POST)$",
];

fn path_pattern() -> impl Strategy<Value = String> {
    prop::collection::vec(select(PATH_ATOMS), 0..5).prop_map(|atoms| atoms.concat())
}

fn list(
    item: impl Strategy<Value = String> + 'static,
) -> impl Strategy<Value = Option<Vec<String>>> {
    prop::option::weighted(0.7, prop::collection::vec(item, 0..4))
}

fn credentials() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(json!({"token": "TOK"}))),
        Just(Some(json!({"basic": {"username": "u", "password": "p"}}))),
        Just(Some(json!({"shared_data_key": "k"}))),
    ]
}

fn impersonate() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(json!({"user": "jane", "groups": ["devs"], "extra": {"a b": ["1"]}}))),
    ]
}

/// Valid configurations.
pub(super) fn spec() -> impl Strategy<Value = Spec> {
    let prefixes = (
        prop::option::of(select(PREFIXES)),
        prop::option::of(select(PREFIXES)),
        prop::option::of(select(&["", "/k8s/clusters/c-1", "/base/path/", "/b"][..])),
    );
    let lists = (
        list(path_pattern()),
        list(path_pattern()),
        list(select(HOST_PATTERNS).prop_map(str::to_owned)),
        list(select(METHOD_PATTERNS).prop_map(str::to_owned)),
    );
    let rest = (
        prop::option::weighted(0.5, prop::bool::weighted(0.2)),
        credentials(),
        impersonate(),
        prop::option::of(0u32..5),
    );
    (prefixes, lists, rest).prop_map(
        |((api, stat, server), (ap, rp, ah, rm), (disable, creds, imp, verbosity))| {
            let mut spec = Spec {
                api_prefix: api.map(str::to_owned),
                static_prefix: stat.map(str::to_owned),
                accept_paths: ap,
                reject_paths: rp,
                accept_hosts: ah,
                reject_methods: rm,
                disable_filter: disable,
                server_path: server.map(str::to_owned),
                credentials: creds,
                impersonate: imp,
                verbosity,
            };
            if spec.static_prefix() == Some(spec.api_prefix()) {
                spec.static_prefix = None;
            }
            spec
        },
    )
}

/// Path pieces: separators, dots, escapes (valid, invalid, encoded dots and slashes, NUL,
/// non-UTF-8), query and fragment characters, and the words the default lists look for.
const PIECES: &[&str] = &[
    "/",
    "/",
    "/",
    ".",
    "..",
    "%2e",
    "%2E",
    "%2F",
    "%2f",
    "%",
    "%zz",
    "%00",
    "%25",
    "?",
    "#",
    ";",
    "api",
    "v1",
    "pods",
    "exec",
    "attach",
    "namespaces",
    "d",
    "p",
    "custom",
    "static",
    "st%61tic",
    "k8s-api",
    "apis",
    "api-gw",
    "a",
    " ",
    "\t",
    "é",
    "%C3%A9",
    "%FF",
    "%E0%A0",
    "%0a",
    "//",
    "x=1",
    "&",
    "%2e%2e",
    "%65xec",
    "\u{0}",
    "/api/v1/namespaces/d/pods/p/exec",
    "/api/v1/namespaces/d/pods/p/attach",
    "/custom/",
    "/static/",
    "/k8s-api/",
    "/api/",
];

/// Whole segments, mostly clean, so that many paths get past the mux's clean-up.
const SEGMENTS: &[&str] = &[
    "api",
    "v1",
    "namespaces",
    "d",
    "pods",
    "p",
    "exec",
    "attach",
    "custom",
    "static",
    "st%61tic",
    "k8s-api",
    "apis",
    "api-gw",
    "%2e%2e",
    "%2E",
    "a%2Fb",
    "%2F",
    "%65xec",
    "é",
    "%C3%A9",
    "%FF",
    "%E0%A0",
    "a;b",
    "x#y",
    ".x",
    "%00",
    "%25",
    "x",
    "",
    ".",
    "..",
];

fn raw_path() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        8 => select(PIECES).prop_map(str::to_owned),
        1 => (select(PIECES), 1..40usize).prop_map(|(p, n)| p.repeat(n)),
    ];
    let chaotic =
        prop::collection::vec(piece, 0..12).prop_map(|pieces| format!("/{}", pieces.concat()));
    let segmented = (
        prop::collection::vec(select(SEGMENTS), 0..7),
        select(&["", "/", "?", "?x=1&y=%zz", "?a/../b"][..]),
    )
        .prop_map(|(segments, tail)| format!("/{}{tail}", segments.join("/")));
    prop_oneof![1 => chaotic, 2 => segmented]
}

/// Authorities for `Host` and absolute-form targets (see `model::AUTHORITIES` for Go's reading).
const HOSTS: &[&str] = &[
    "localhost",
    "localhost:8001",
    "127.0.0.1",
    "127.0.0.1:8001",
    "[::1]",
    "[::1]:8001",
    "::1",
    "evil.com",
    "evil.com:443",
    "",
    ":8001",
    "localhost:abc",
    "[::1]x:80",
    "LOCALHOST",
    "127.0.0.1.",
    "[fe80::1%25en0]:80",
    "localhost:",
    "u@localhost",
    "evil.com@localhost",
    "localhost@evil.com",
    "u:p@localhost:8001",
    "[::1",
    "%6cocalhost",
];

fn target() -> impl Strategy<Value = String> {
    let absolute = (
        select(&["http", "https", "HTTP", "h+t", "1x", "ws"][..]),
        select(HOSTS),
        prop_oneof![Just(String::new()), raw_path()],
    )
        .prop_map(|(scheme, authority, path)| format!("{scheme}://{authority}{path}"));
    prop_oneof![
        12 => raw_path(),
        3 => absolute,
        1 => Just("*".to_owned()),
        1 => select(HOSTS).prop_map(str::to_owned),
        1 => "\\PC{0,16}",
        1 => ".{0,16}",
    ]
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(&["GET", "get", "Get", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS",
            "CONNECT", "", "G ET", "x"][..]).prop_map(str::to_owned),
        1 => "[A-Za-z]{0,7}",
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = select(
        &[
            "authorization",
            "Authorization",
            "impersonate-user",
            "x-kproxy-upstream",
            "X-Kproxy-Upstream",
            "impersonate-group",
            "accept",
        ][..],
    );
    let value = select(&["", "Bearer X", "static", "apiserver", "bob"][..]);
    prop::collection::vec((name, value), 0..4).prop_map(|v| {
        v.into_iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect()
    })
}

/// Request heads.
pub(super) fn head() -> impl Strategy<Value = RequestHead> {
    (
        method(),
        target(),
        prop_oneof![3 => select(HOSTS).prop_map(str::to_owned), 1 => "[a-z0-9.:\\[\\]]{0,12}"],
        headers(),
    )
        .prop_map(|(method, path, authority, headers)| RequestHead {
            method,
            path,
            authority,
            headers,
        })
}
